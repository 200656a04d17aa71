"""The Lambda handler against moto's S3 and SNS, with real photos and real S3 event records."""

from __future__ import annotations

import math
from datetime import datetime

import pytest
from aws_lambda_powertools.metrics.provider import cold_start

from lambda_image.handler import UploadsFailed

from .conftest import BUCKET, s3_event, s3_record, summary

# A flush with no application metric (all records repeated or skipped) warns; that is expected here.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

CORRUPT_JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64  # a JPEG signature and nothing decodable after it


def _expected(classifier, data: bytes, key: str) -> dict:
    """What the contract says the result holds, with the verdict the core gives for the same bytes."""
    return {**classifier.classify(data).to_dict(f"s3://{BUCKET}/{key}"), "bucket": BUCKET, "key": key, "size": len(data)}


def test_event_with_several_records_writes_one_result_per_upload(lab, classifier, fire_bytes, nofire_bytes):
    fire_key = "uploads/camera 1/ridge (east)+1.jpg"  # spaces, brackets and a literal '+': all URL-encoded in events
    nofire_key = "uploads/forest.jpg"
    event = s3_event(
        lab.upload(fire_key, fire_bytes),
        lab.upload(nofire_key, nofire_bytes),
        lab.upload("incoming/elsewhere.jpg", fire_bytes),
    )
    assert event["Records"][0]["s3"]["object"]["key"] == "uploads/camera+1/ridge+%28east%29%2B1.jpg"

    run = lab.invoke(event)

    assert run.response == summary(classified=2, skipped=1)
    assert lab.keys("results/") == ["results/camera 1/ridge (east)+1.jpg.json", "results/forest.jpg.json"]
    for key, data, record in zip((fire_key, nofire_key), (fire_bytes, nofire_bytes), event["Records"]):
        result = lab.result("results/" + key.removeprefix("uploads/") + ".json")
        head = lab.s3.head_object(Bucket=BUCKET, Key=key)
        bookkeeping = ("etag", "classified_at", "sequencer", "version_id", "alert", "alert_message_id")
        assert {k: v for k, v in result.items() if k not in bookkeeping} == _expected(classifier, data, key)
        assert result["etag"] == head["ETag"].strip('"')
        assert datetime.fromisoformat(result["classified_at"]).utcoffset().total_seconds() == 0
        assert result["sequencer"] == record["s3"]["object"]["sequencer"]
        assert result["version_id"] == head["VersionId"]
    assert lab.result("results/camera 1/ridge (east)+1.jpg.json")["alert"] == "sent"
    assert "alert" not in lab.result("results/forest.jpg.json")

    alerts = lab.alerts()
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["subject"] == f"Fire detected: {fire_key} ({math.floor(alert['fire_probability'] * 100)} %)"
    assert alert["bucket"] == BUCKET and alert["key"] == fire_key
    assert alert["fire_probability"] == classifier.classify(fire_bytes).fire_probability >= classifier.threshold
    assert alert["image_uri"] == f"s3://{BUCKET}/{fire_key}"
    assert alert["result_uri"] == f"s3://{BUCKET}/results/camera 1/ridge (east)+1.jpg.json"
    assert alert["etag"] == event["Records"][0]["s3"]["object"]["eTag"]
    assert alert["sequencer"] == event["Records"][0]["s3"]["object"]["sequencer"]
    assert lab.result("results/camera 1/ridge (east)+1.jpg.json")["alert_message_id"]

    assert run.metric("ImagesClassified") == 2
    assert run.metric("FireDetected") == 1
    assert run.metric("InvalidImages") == 0
    assert run.metric("BorderlineVerdicts") == sum(classifier.classify(d).certainty == "borderline" for d in (fire_bytes, nofire_bytes))
    latencies = run.values("InferenceLatency")
    assert len(latencies) == 2 and all(0 < ms < 10_000 for ms in latencies)
    declared = {m["Name"]: m["Unit"] for doc in run.emf for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert declared["InferenceLatency"] == "Milliseconds" and declared["ImagesClassified"] == "Count"
    assert {d["Namespace"] for doc in run.emf for d in doc["_aws"]["CloudWatchMetrics"]} == {"Firewatch"}
    # The dashboard and alarms of one deployment read its metrics only: service and environment (here unset: local).
    # (Powertools' own ColdStart metric carries function_name and service only.)
    ours = [doc for doc in run.emf if "ColdStart" not in doc]
    assert {frozenset(dims) for doc in ours for d in doc["_aws"]["CloudWatchMetrics"] for dims in d["Dimensions"]} == {
        frozenset({"service", "environment"})}
    assert {(doc["service"], doc["environment"]) for doc in ours} == {("firewatch", "local")}


def test_borderline_verdicts_are_counted(lab, monkeypatch, fire_photos, nofire_bytes):
    """The dashboard's share of unsure verdicts: one photo judged at its own probability is borderline, one is not."""
    import functools

    from inference import BORDERLINE, CLEAR, Classifier
    from lambda_image import handler
    from tests.conftest import MODEL_PATH

    served = Classifier.load(MODEL_PATH)
    unsure = next(d for d in (p.read_bytes() for p in fire_photos) if 0.05 < served.classify(d).fire_probability < 0.95)
    at_its_probability = Classifier.load(MODEL_PATH, threshold=served.classify(unsure).fire_probability)
    assert at_its_probability.classify(unsure).certainty == BORDERLINE
    assert at_its_probability.classify(nofire_bytes).certainty == CLEAR
    monkeypatch.setattr(handler, "classifier", functools.cache(lambda: at_its_probability))

    run = lab.invoke(s3_event(lab.upload("uploads/unsure.jpg", unsure), lab.upload("uploads/clear.jpg", nofire_bytes)))

    assert run.response == summary(classified=2)
    assert run.metric("ImagesClassified") == 2 and run.metric("BorderlineVerdicts") == 1
    declared = {m["Name"]: m["Unit"] for doc in run.emf for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert declared["BorderlineVerdicts"] == "Count"


def test_repeated_event_yields_the_same_result_and_no_second_alert(lab, fire_bytes):
    event = s3_event(lab.upload("uploads/fire.jpg", fire_bytes))
    first = lab.invoke(event)
    result = lab.result("results/fire.jpg.json")

    second = lab.invoke(event)

    assert first.response["classified"] == 1
    assert second.response == summary(duplicate=1)
    assert lab.result("results/fire.jpg.json") == result  # not rewritten: same classified_at
    assert len(lab.alerts()) == 1
    assert first.metric("FireDetected") == 1
    assert second.metric("FireDetected") == 0 and second.metric("ImagesClassified") == 0


def test_new_version_of_an_upload_replaces_its_result(lab, fire_bytes, nofire_bytes, classifier):
    old = lab.upload("uploads/same-name.jpg", nofire_bytes)
    lab.invoke(s3_event(old))
    new = lab.upload("uploads/same-name.jpg", fire_bytes)

    repeated = lab.invoke(s3_event(old))  # the old version's event, delivered again after the overwrite
    assert repeated.response == summary(duplicate=1)
    assert lab.result("results/same-name.jpg.json")["etag"] == old["s3"]["object"]["eTag"]

    lab.invoke(s3_event(new))
    result = lab.result("results/same-name.jpg.json")
    assert result["etag"] == new["s3"]["object"]["eTag"] != old["s3"]["object"]["eTag"]
    assert result["fire_probability"] == classifier.classify(fire_bytes).fire_probability
    assert len(lab.alerts()) == 1


def test_unreadable_image_gets_an_error_result_and_metric_not_an_exception(lab):
    event = s3_event(
        lab.upload("uploads/broken.jpg", CORRUPT_JPEG),
        lab.upload("uploads/notes.jpg", b"these are not the pixels you are looking for"),
    )
    run = lab.invoke(event)

    assert run.response["invalid"] == 2
    broken = lab.result("results/broken.jpg.json")
    assert broken["error"]["code"] == "corrupt_image" and broken["error"]["message"]
    assert broken["source"] == f"s3://{BUCKET}/uploads/broken.jpg"
    assert broken["size"] == len(CORRUPT_JPEG) and broken["etag"] and broken["classified_at"]
    assert "label" not in broken
    assert lab.result("results/notes.jpg.json")["error"]["code"] == "unsupported_format"
    assert run.metric("InvalidImages") == 2 and run.metric("ImagesClassified") == 0
    assert lab.alerts() == []


def test_oversized_object_is_refused_by_its_size(lab, monkeypatch, fire_bytes):
    from lambda_image.handler import classifier

    monkeypatch.setenv("FIREWATCH_MAX_BYTES", str(len(fire_bytes) - 1))
    classifier.cache_clear()  # a new execution environment picks up the new limit
    run = lab.invoke(s3_event(lab.upload("uploads/huge.jpg", fire_bytes)))

    result = lab.result("results/huge.jpg.json")
    assert result["error"]["code"] == "too_large"
    assert f"{len(fire_bytes):,} bytes" in result["error"]["message"]
    assert result["size"] == len(fire_bytes)
    assert run.metric("InvalidImages") == 1
    assert lab.alerts() == []


def test_records_that_are_not_new_uploads_are_skipped(lab, fire_bytes):
    upload = lab.upload("uploads/fire.jpg", fire_bytes)
    removed = {**upload, "eventName": "ObjectRemoved:Delete"}
    result_written = lab.upload("results/fire.jpg.json", b"{}")
    folder_marker = lab.upload("uploads/", b"")

    run = lab.invoke(s3_event(removed, result_written, folder_marker))

    assert run.response["skipped"] == 3 and run.response["classified"] == 0
    assert lab.keys("results/") == ["results/fire.jpg.json"]
    skipped = [log for log in run.logs if log.get("message") == "Record skipped"]
    assert [log["key"] for log in skipped] == ["uploads/fire.jpg", "results/fire.jpg.json", "uploads/"]


def test_s3_test_event_is_accepted_and_does_nothing(lab):
    run = lab.invoke({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET, "RequestId": "X", "HostId": "Y"})
    assert sum(run.response.values()) == 0
    assert lab.keys() == []


def test_upload_deleted_before_processing_is_skipped(lab, nofire_bytes):
    record = lab.upload("uploads/gone.jpg", nofire_bytes)
    lab.s3.delete_object(Bucket=BUCKET, Key="uploads/gone.jpg", VersionId=record["s3"]["object"]["versionId"])
    run = lab.invoke(s3_event(record))
    assert run.response["gone"] == 1
    assert lab.keys("results/") == []


def test_hand_made_event_for_a_replaced_object_is_skipped(lab, nofire_bytes, fire_bytes):
    """Without a version id, the event can only mean the object as it was: a replaced one has its own event."""
    record = lab.upload("uploads/replaced.jpg", nofire_bytes)
    del record["s3"]["object"]["versionId"], record["s3"]["object"]["sequencer"]
    lab.upload("uploads/replaced.jpg", fire_bytes)
    assert lab.invoke(s3_event(record)).response == summary(gone=1)
    assert lab.keys("results/") == []


def test_aws_error_raises_so_lambda_retries(lab, nofire_bytes):
    record = s3_record("no-such-bucket-here", "uploads/a.jpg", len(nofire_bytes), "0" * 32)
    with pytest.raises(UploadsFailed) as raised:
        lab.invoke(s3_event(record))
    # The error names the upload and AWS's answer: Lambda puts it in the dead-letter record after the retries.
    assert "s3://no-such-bucket-here/uploads/a.jpg: NoSuchBucket" in str(raised.value)


def test_failed_alert_raises_and_the_retry_still_alerts(lab, monkeypatch, fire_bytes):
    event = s3_event(lab.upload("uploads/fire.jpg", fire_bytes))
    monkeypatch.setenv("ALERT_TOPIC_ARN", lab.topic_arn + "-missing")
    with pytest.raises(UploadsFailed, match="NotFound"):
        lab.invoke(event)
    assert lab.result("results/fire.jpg.json")["alert"] == "pending"  # so the retry knows the alert is owed

    monkeypatch.setenv("ALERT_TOPIC_ARN", lab.topic_arn)
    retry = lab.invoke(event)
    assert retry.response == summary(alert_retried=1)
    assert [alert["key"] for alert in lab.alerts()] == ["uploads/fire.jpg"]
    assert lab.result("results/fire.jpg.json")["alert"] == "sent"
    assert lab.invoke(event).response == summary(duplicate=1)  # and a third delivery sends nothing
    assert lab.alerts() == []


def test_without_a_topic_fire_is_recorded_but_not_alerted(lab, monkeypatch, fire_bytes):
    monkeypatch.delenv("ALERT_TOPIC_ARN")
    run = lab.invoke(s3_event(lab.upload("uploads/fire.jpg", fire_bytes)))
    assert run.response["classified"] == 1
    assert lab.result("results/fire.jpg.json")["label"] == "fire"
    assert run.metric("FireDetected") == 1
    assert lab.alerts() == []


def test_cold_start_metric_only_on_the_first_invocation(lab, nofire_bytes):
    cold_start.reset_cold_start_flag()
    first = lab.invoke(s3_event(lab.upload("uploads/a.jpg", nofire_bytes)))
    second = lab.invoke(s3_event(lab.upload("uploads/b.jpg", nofire_bytes)))
    assert first.metric("ColdStart") == 1
    assert second.metric("ColdStart") == 0
    cold = next(doc for doc in first.emf if "ColdStart" in doc)
    assert cold["function_name"] == "firewatch-classify"


def test_logs_are_structured_json_with_the_lambda_context(lab, nofire_bytes):
    run = lab.invoke(s3_event(lab.upload("uploads/a.jpg", nofire_bytes)))
    written = next(log for log in run.logs if log["message"] == "Result written")
    assert written["level"] == "INFO" and written["service"] == "firewatch"
    assert written["function_request_id"] == "c6af9ac6-7b61-11e6-9a41-93e812345678"
    assert written["result"]["key"] == "uploads/a.jpg"
    assert written["result_uri"] == f"s3://{BUCKET}/results/a.jpg.json"


# --- isolation: one record never costs the others their turn ---------------------------------------------------------


def test_a_malformed_record_is_reported_and_the_records_after_it_are_processed(lab, nofire_bytes):
    first, broken, last = (lab.upload(f"uploads/{name}.jpg", nofire_bytes) for name in ("first", "broken", "last"))
    broken["s3"]["object"]["size"] = "a lot"
    event = s3_event(first, broken, {"eventSource": "aws:s3", "s3": "not an object"}, last)

    run = lab.invoke(event)

    assert run.response == summary(classified=2, malformed=2)
    assert lab.keys("results/") == ["results/first.jpg.json", "results/last.jpg.json"]
    assert run.metric("MalformedRecords") == 2
    warnings = [log for log in run.logs if log["message"] == "Record malformed"]
    assert [log["level"] for log in warnings] == ["WARNING", "WARNING"]
    assert "size" in warnings[0]["reason"] and warnings[0]["key"] == "uploads/broken.jpg"


def test_an_upload_that_fails_does_not_stop_the_others_and_the_event_is_retried(lab, nofire_bytes):
    failing = s3_record("no-such-bucket-here", "uploads/a.jpg", len(nofire_bytes), "0" * 32)
    event = s3_event(failing, lab.upload("uploads/fine.jpg", nofire_bytes))

    with pytest.raises(UploadsFailed, match="no-such-bucket-here"):
        lab.invoke(event)
    run = lab.split_output()
    assert lab.keys("results/") == ["results/fine.jpg.json"]
    processed = next(log for log in run.logs if log["message"] == "Event processed")
    assert (processed["classified"], processed["failed"]) == (1, 1)
    assert run.metric("ImagesClassified") == 1  # metrics are flushed even though the invocation fails


def test_records_from_a_bucket_other_than_the_configured_one_are_refused(lab, monkeypatch, fire_bytes, nofire_bytes):
    monkeypatch.setenv("FIREWATCH_BUCKET", BUCKET)
    lab.s3.create_bucket(Bucket="someone-elses-bucket")
    foreign = lab.upload("uploads/fire.jpg", fire_bytes, bucket="someone-elses-bucket")
    ours = lab.upload("uploads/forest.jpg", nofire_bytes)

    run = lab.invoke(s3_event(foreign, ours))

    assert run.response == summary(classified=1, refused=1)
    assert lab.s3.list_objects_v2(Bucket="someone-elses-bucket", Prefix="results/")["KeyCount"] == 0
    assert lab.alerts() == []
    assert run.metric("RefusedRecords") == 1
    refused = next(log for log in run.logs if log["message"] == "Record refused")
    assert refused["bucket"] == "someone-elses-bucket" and BUCKET in refused["reason"]


def test_without_a_configured_bucket_any_bucket_is_processed(lab, nofire_bytes):
    lab.s3.create_bucket(Bucket="another-bucket")
    run = lab.invoke(s3_event(lab.upload("uploads/a.jpg", nofire_bytes, bucket="another-bucket")))
    assert run.response == summary(classified=1)
    assert lab.s3.get_object(Bucket="another-bucket", Key="results/a.jpg.json")


def test_a_key_too_long_for_the_plain_result_key_gets_a_shortened_one(lab, fire_bytes):
    key = "uploads/" + "camera-ridge-east/" * 56 + "fire.jpg"  # 1,024 bytes: the longest key S3 allows
    assert len(key.encode()) == 1024
    run = lab.invoke(s3_event(lab.upload(key, fire_bytes)))

    assert run.response == summary(classified=1)
    [result_key] = lab.keys("results/")
    assert len(result_key.encode()) <= 1024
    assert result_key.startswith("results/camera-ridge-east/camera-ridge-east/") and result_key.endswith(".json")
    result = lab.result(result_key)
    assert result["key"] == key and result["alert"] == "sent"
    assert [alert["result_uri"] for alert in lab.alerts()] == [f"s3://{BUCKET}/{result_key}"]
