"""Parsing S3 event notifications: decoded keys, the uploads/ filter, records that are not new objects."""

from __future__ import annotations

import pytest

from lambda_image.events import Skipped, Upload, parse_event

from .conftest import s3_event, s3_record


def _only(event: dict):
    items = list(parse_event(event))
    assert len(items) == 1
    return items[0]


@pytest.mark.parametrize(
    "key",
    ["uploads/a.jpg", "uploads/camera 1/fire (1).jpg", "uploads/a+b=c&d.jpg", "uploads/été/🔥.jpg", "uploads/100%.png"],
)
def test_keys_are_decoded_as_s3_encodes_them(key):
    upload = _only(s3_event(s3_record("b", key, 10, "abc")))
    assert upload == Upload(bucket="b", key=key, size=10, etag="abc")


def test_plus_in_an_event_key_is_a_space():
    record = s3_record("b", "uploads/x.jpg", 1, "e")
    record["s3"]["object"]["key"] = "uploads/my+photo%2B1.jpg"
    assert _only(s3_event(record)).key == "uploads/my photo+1.jpg"


def test_result_key_and_uri_follow_the_contract():
    upload = Upload(bucket="bkt", key="uploads/cams/east 1.jpg")
    assert upload.result_key == "results/cams/east 1.jpg.json"
    assert upload.uri == "s3://bkt/uploads/cams/east 1.jpg"


@pytest.mark.parametrize("key", ["results/a.jpg.json", "upload/a.jpg", "a.jpg", "uploads/", "uploads/folder/", "UPLOADS/a.jpg"])
def test_keys_outside_uploads_are_skipped(key):
    item = _only(s3_event(s3_record("b", key, 1, "e")))
    assert isinstance(item, Skipped) and item.key == key and "uploads/" in item.reason


@pytest.mark.parametrize("name", ["ObjectRemoved:Delete", "ObjectRestore:Completed", "LifecycleExpiration:Delete"])
def test_events_other_than_object_created_are_skipped(name):
    item = _only(s3_event(s3_record("b", "uploads/a.jpg", 1, "e", event_name=name)))
    assert isinstance(item, Skipped) and item.event_name == name


def test_every_object_created_kind_is_handled():
    names = ["ObjectCreated:Put", "ObjectCreated:Post", "ObjectCreated:Copy", "ObjectCreated:CompleteMultipartUpload"]
    event = s3_event(*(s3_record("b", f"uploads/{i}.jpg", 1, "e", event_name=n) for i, n in enumerate(names)))
    assert [item.key for item in parse_event(event)] == [f"uploads/{i}.jpg" for i in range(4)]


def test_records_keep_their_order_and_non_s3_records_are_skipped():
    other = {"eventSource": "aws:sqs", "body": "{}"}
    event = s3_event(s3_record("b", "uploads/1.jpg", 1, "e"), other, s3_record("b", "uploads/2.jpg", 1, "e"))
    items = list(parse_event(event))
    assert [type(item) for item in items] == [Upload, Skipped, Upload]
    assert items[1].reason == "not an S3 object record"


@pytest.mark.parametrize("event", [{}, {"Records": []}, {"Event": "s3:TestEvent", "Service": "Amazon S3"}])
def test_events_without_records_yield_nothing(event):
    assert list(parse_event(event)) == []


def test_missing_size_and_etag_are_tolerated():
    record = s3_record("b", "uploads/a.jpg", 1, "e")
    del record["s3"]["object"]["size"], record["s3"]["object"]["eTag"]
    assert _only(s3_event(record)) == Upload(bucket="b", key="uploads/a.jpg", size=None, etag=None)
