"""Conditional result writes: what lets two racing deliveries of one event produce one result and one alert."""

from __future__ import annotations

from lambda_image.storage import Bucket

from .conftest import BUCKET


def test_first_writer_wins_and_the_second_learns_it(lab):
    bucket = Bucket(lab.s3, BUCKET)
    written = bucket.write_result("results/a.jpg.json", {"etag": "one"}, replacing=None)
    assert written == lab.s3.head_object(Bucket=BUCKET, Key="results/a.jpg.json")["ETag"]
    assert bucket.write_result("results/a.jpg.json", {"etag": "two"}, replacing=None) is None
    assert lab.result("results/a.jpg.json") == {"etag": "one"}


def test_replacing_needs_the_result_that_was_read(lab):
    bucket = Bucket(lab.s3, BUCKET)
    bucket.write_result("results/a.jpg.json", {"etag": "one"}, replacing=None)
    seen = bucket.read_result("results/a.jpg.json")
    assert seen.record == {"etag": "one"}

    assert bucket.write_result("results/a.jpg.json", {"etag": "two"}, replacing=seen) is not None
    # A writer still holding the old read loses: someone replaced the result since.
    assert bucket.write_result("results/a.jpg.json", {"etag": "three"}, replacing=seen) is None
    assert lab.result("results/a.jpg.json") == {"etag": "two"}


def test_unreadable_result_reads_as_empty_and_can_be_replaced(lab):
    lab.s3.put_object(Bucket=BUCKET, Key="results/a.jpg.json", Body=b"not json")
    bucket = Bucket(lab.s3, BUCKET)
    seen = bucket.read_result("results/a.jpg.json")
    assert seen.record == {}
    assert bucket.write_result("results/a.jpg.json", {"etag": "x"}, replacing=seen) is not None


def test_opening_an_upload_checks_its_etag(lab):
    record = lab.upload("uploads/a.jpg", b"12345")
    etag = record["s3"]["object"]["eTag"]
    bucket = Bucket(lab.s3, BUCKET)

    opened = bucket.open_upload("uploads/a.jpg", etag)
    assert (opened.size, opened.etag) == (5, etag)
    assert opened.body.read() == b"12345"
    opened.close()

    assert bucket.open_upload("uploads/a.jpg", "0" * 32) is None  # replaced since that event
    assert bucket.open_upload("uploads/missing.jpg", None) is None  # deleted since


def test_an_upload_version_stays_readable_after_a_newer_one(lab):
    first = lab.upload("uploads/a.jpg", b"first")
    lab.upload("uploads/a.jpg", b"second version")
    bucket = Bucket(lab.s3, BUCKET)
    obj = first["s3"]["object"]

    opened = bucket.open_upload("uploads/a.jpg", obj["eTag"], obj["versionId"])
    assert opened.body.read() == b"first"
    opened.close()
    assert bucket.open_upload("uploads/a.jpg", obj["eTag"], None) is None  # without the version: replaced

    lab.s3.delete_object(Bucket=BUCKET, Key="uploads/a.jpg", VersionId=obj["versionId"])
    assert bucket.open_upload("uploads/a.jpg", obj["eTag"], obj["versionId"]) is None  # that version deleted
