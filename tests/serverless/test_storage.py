"""Conditional result writes: what lets two racing deliveries of one event produce one result and one alert."""

from __future__ import annotations

from lambda_image.storage import Bucket

from .conftest import BUCKET


def test_first_writer_wins_and_the_second_learns_it(lab):
    bucket = Bucket(lab.s3)
    assert bucket.write_result(BUCKET, "results/a.jpg.json", {"etag": "one"}, replacing=None) is True
    assert bucket.write_result(BUCKET, "results/a.jpg.json", {"etag": "two"}, replacing=None) is False
    assert lab.result("results/a.jpg.json") == {"etag": "one"}


def test_replacing_needs_the_result_that_was_read(lab):
    bucket = Bucket(lab.s3)
    bucket.write_result(BUCKET, "results/a.jpg.json", {"etag": "one"}, replacing=None)
    seen = bucket.read_result(BUCKET, "results/a.jpg.json")
    assert seen.record == {"etag": "one"}

    assert bucket.write_result(BUCKET, "results/a.jpg.json", {"etag": "two"}, replacing=seen) is True
    # A writer still holding the old read loses: someone replaced the result since.
    assert bucket.write_result(BUCKET, "results/a.jpg.json", {"etag": "three"}, replacing=seen) is False
    assert lab.result("results/a.jpg.json") == {"etag": "two"}


def test_unreadable_result_reads_as_empty_and_can_be_replaced(lab):
    lab.s3.put_object(Bucket=BUCKET, Key="results/a.jpg.json", Body=b"not json")
    bucket = Bucket(lab.s3)
    seen = bucket.read_result(BUCKET, "results/a.jpg.json")
    assert seen.record == {}
    assert bucket.write_result(BUCKET, "results/a.jpg.json", {"etag": "x"}, replacing=seen) is True


def test_opening_an_upload_checks_its_etag(lab):
    record = lab.upload("uploads/a.jpg", b"12345")
    etag = record["s3"]["object"]["eTag"]
    bucket = Bucket(lab.s3)

    opened = bucket.open_upload(BUCKET, "uploads/a.jpg", etag)
    assert (opened.size, opened.etag) == (5, etag)
    assert opened.body.read() == b"12345"
    opened.close()

    assert bucket.open_upload(BUCKET, "uploads/a.jpg", "0" * 32) is None  # replaced since that event
    assert bucket.open_upload(BUCKET, "uploads/missing.jpg", None) is None  # deleted since
