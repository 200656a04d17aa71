"""Parsing S3 event notifications: decoded keys, the uploads/ filter, records that are not new objects, malformed
records and foreign buckets, result keys within S3's limit, and the order of sequencers."""

from __future__ import annotations

import pytest

from lambda_image.events import IGNORED, MALFORMED, REFUSED, Skipped, Upload, compare_sequencers, parse_event

from .conftest import s3_event, s3_record

SEQUENCER = "0055AED6DCD90281E5"  # what s3_record puts in by default


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
    assert upload == Upload(bucket="b", key=key, size=10, etag="abc", sequencer=SEQUENCER)


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


def test_missing_size_etag_and_sequencer_are_tolerated():
    record = s3_record("b", "uploads/a.jpg", 1, "e", sequencer=None)
    del record["s3"]["object"]["size"], record["s3"]["object"]["eTag"]
    assert _only(s3_event(record)) == Upload(bucket="b", key="uploads/a.jpg", size=None, etag=None, sequencer=None)


def test_version_id_and_sequencer_are_kept():
    record = s3_record("b", "uploads/a.jpg", 1, "e", sequencer="0A1B", version_id="3HL4kqtJlcpXroDTDmjVBH40Nrjfkd")
    upload = _only(s3_event(record))
    assert (upload.version_id, upload.sequencer) == ("3HL4kqtJlcpXroDTDmjVBH40Nrjfkd", "0A1B")


def _broken(change) -> dict:
    record = s3_record("b", "uploads/broken.jpg", 1, "e")
    change(record)
    return record


MALFORMED_RECORDS = {
    "not an object": "uploads/a.jpg",
    "no s3 part": _broken(lambda r: r.pop("s3")),
    "s3 part is a list": _broken(lambda r: r.update(s3=[])),
    "no bucket name": _broken(lambda r: r["s3"]["bucket"].pop("name")),
    "key is a number": _broken(lambda r: r["s3"]["object"].update(key=12)),
    "size is text": _broken(lambda r: r["s3"]["object"].update(size="12 bytes")),
    "negative size": _broken(lambda r: r["s3"]["object"].update(size=-1)),
    "etag is a list": _broken(lambda r: r["s3"]["object"].update(eTag=["e"])),
    "sequencer not hex": _broken(lambda r: r["s3"]["object"].update(sequencer="0055-not-hex")),
}


@pytest.mark.parametrize("broken", MALFORMED_RECORDS.values(), ids=MALFORMED_RECORDS.keys())
def test_a_malformed_record_is_reported_and_the_others_still_parsed(broken):
    event = s3_event(s3_record("b", "uploads/1.jpg", 1, "e"), broken, s3_record("b", "uploads/2.jpg", 1, "e"))
    items = list(parse_event(event))
    assert [type(item) for item in items] == [Upload, Skipped, Upload]
    assert items[1].kind == MALFORMED and items[1].reason
    assert [items[0].key, items[2].key] == ["uploads/1.jpg", "uploads/2.jpg"]


@pytest.mark.parametrize("event", [[], "Records", {"Records": {"s3": {}}}])
def test_an_event_that_is_not_an_s3_event_is_one_malformed_item(event):
    [item] = parse_event(event)
    assert item.kind == MALFORMED


def test_records_from_other_buckets_are_refused_when_a_bucket_is_configured():
    event = s3_event(s3_record("uploads-bucket", "uploads/1.jpg", 1, "e"), s3_record("someone-else", "uploads/2.jpg", 1, "e"))
    items = list(parse_event(event, accepted_bucket="uploads-bucket"))
    assert isinstance(items[0], Upload)
    assert isinstance(items[1], Skipped) and items[1].kind == REFUSED and "someone-else" in items[1].reason
    assert all(isinstance(item, Upload) for item in parse_event(event, accepted_bucket=None))


def test_records_not_for_this_function_are_ignored_not_rejected():
    item = _only(s3_event(s3_record("b", "results/a.jpg.json", 1, "e")))
    assert item.kind == IGNORED


@pytest.mark.parametrize(
    "older, newer",
    [("0055AED6DCD90281E5", "0055AED6DCD90281E6"), ("9", "10"), ("FF", "0100"), ("0a", "0B"), ("00FF", "100")],
)
def test_sequencers_compare_as_s3_documents(older, newer):
    assert compare_sequencers(older, newer) == -1
    assert compare_sequencers(newer, older) == 1
    assert compare_sequencers(older, "0" + older) == 0


# --- upload queue messages and the index's ordering key ---------------------------------------------------------------


def test_a_message_body_is_an_s3_notification():
    import json

    from lambda_image.events import parse_message_body

    [upload] = parse_message_body(json.dumps(s3_event(s3_record("b", "uploads/a b.jpg", 3, "e"))))
    assert upload == Upload(bucket="b", key="uploads/a b.jpg", size=3, etag="e", sequencer=SEQUENCER)
    assert list(parse_message_body(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"}))) == []


@pytest.mark.parametrize("body", ["not json", "[1, 2]", '"text"', '{"hello": 1}', None, '{"Records": "x"}'])
def test_a_body_that_is_not_a_notification_is_malformed(body):
    from lambda_image.events import parse_message_body

    [skipped] = parse_message_body(body)
    assert isinstance(skipped, Skipped) and skipped.kind == MALFORMED


def test_the_sort_key_orders_sequencers_as_s3_documents():
    import itertools
    import random

    from lambda_image.events import sequencer_sort_key

    rng = random.Random(7)
    samples = ["0", "00", "A", "0a", "0055AED6DCD90281E5", "55AED6DCD90281E5", "55aed6dcd90281e6", "FFFF", "10000"]
    samples += ["0" * rng.randrange(4) + "".join(rng.choice("0123456789ABCDEF") for _ in range(rng.randrange(1, 20)))
                for _ in range(60)]  # fmt: skip
    for a, b in itertools.product(samples, repeat=2):
        key_a, key_b = sequencer_sort_key(a), sequencer_sort_key(b)
        assert (key_a > key_b) - (key_a < key_b) == compare_sequencers(a, b), (a, b)
