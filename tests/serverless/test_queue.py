"""The upload queue's SQS batches (one bad message never fails its neighbours; one model call per batch) and the
results index beside results/*.json (ordered, idempotent, repaired by redelivery), against moto."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from lambda_image.results_index import ResultsIndex

from .conftest import BUCKET, RESULTS_TABLE, LambdaContext, failed_ids, s3_event, sqs_batch, sqs_message

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


def _message(record: dict, **kwargs) -> dict:
    """An upload queue message as S3 sends it: the body is a notification with one record."""
    return sqs_message(s3_event(record), **kwargs)


def _count_model_calls(monkeypatch) -> list[int]:
    """The batch size of each call into the model, recorded as the handler's classifier makes them."""
    from lambda_image.handler import classifier

    predictor = classifier().predictor
    sizes: list[int] = []
    original = predictor.predict

    def predict(images):
        sizes.append(len(images))
        return original(images)

    monkeypatch.setattr(predictor, "predict", predict)
    return sizes


def test_a_batch_is_classified_in_one_model_call_and_every_result_is_written_and_indexed(
    lab, monkeypatch, classifier, fire_bytes, nofire_bytes
):
    model_calls = _count_model_calls(monkeypatch)
    records = [lab.upload("uploads/fire.jpg", fire_bytes)] + [
        lab.upload(f"uploads/forest-{i}.jpg", nofire_bytes) for i in range(3)
    ]
    run = lab.invoke(sqs_batch(*(_message(record) for record in records)))

    assert run.response == {"batchItemFailures": []}
    assert model_calls == [4]
    assert lab.keys("results/") == ["results/fire.jpg.json"] + [f"results/forest-{i}.jpg.json" for i in range(3)]
    assert [alert["key"] for alert in lab.alerts()] == ["uploads/fire.jpg"]
    assert run.metric("ImagesClassified") == 4 and run.metric("FireDetected") == 1
    assert run.metric("BatchItemFailures") == 0

    result = lab.result("results/fire.jpg.json")
    item = lab.indexed("uploads/fire.jpg")
    assert item["alert"] == "sent" and item["alert_message_id"] == result["alert_message_id"]
    assert item["result_key"] == "results/fire.jpg.json"
    assert item["day"] == result["classified_at"][:10]
    assert item["fire_probability"] == Decimal(str(result["fire_probability"]))  # a DynamoDB number, not a float
    assert {k: v for k, v in item.items() if k not in ("result_key", "day", "sequencer_order", "fire_probability")} == {
        k: v for k, v in result.items() if k != "fire_probability"
    }
    assert "expires_at" not in item  # no TTL configured


def test_one_poison_message_among_good_ones_fails_alone(lab, nofire_bytes):
    good = [_message(lab.upload(f"uploads/good-{i}.jpg", nofire_bytes)) for i in range(2)]
    poison = sqs_message("this is not JSON")
    not_a_notification = sqs_message({"hello": "world"})

    run = lab.invoke(sqs_batch(good[0], poison, not_a_notification, good[1]))

    assert failed_ids(run.response) == [poison["messageId"], not_a_notification["messageId"]]
    assert lab.keys("results/") == ["results/good-0.jpg.json", "results/good-1.jpg.json"]
    assert run.metric("MalformedRecords") == 2 and run.metric("BatchItemFailures") == 2
    malformed = [log for log in run.logs if log["message"] == "Record malformed"]
    assert {log["message_id"] for log in malformed} == {poison["messageId"], not_a_notification["messageId"]}


def test_an_upload_that_fails_fails_only_its_message_and_the_redelivery_completes_it(lab, nofire_bytes, fire_bytes):
    ok = _message(lab.upload("uploads/ok.jpg", nofire_bytes))
    unlucky = _message(lab.upload("uploads/unlucky.jpg", fire_bytes))
    lab.fail("s3", "GetObject", "SlowDown", when=lambda params: params["Key"] == "uploads/unlucky.jpg")

    first = lab.invoke(sqs_batch(ok, unlucky))
    assert failed_ids(first.response) == [unlucky["messageId"]]
    assert first.metric("BatchItemFailures") == 1
    assert lab.keys("results/") == ["results/ok.jpg.json"]

    # SQS delivers the failed message again, maybe beside a repeat of one already done.
    second = lab.invoke(sqs_batch(unlucky, ok))
    assert second.response == {"batchItemFailures": []}
    assert lab.keys("results/") == ["results/ok.jpg.json", "results/unlucky.jpg.json"]
    assert [alert["key"] for alert in lab.alerts()] == ["uploads/unlucky.jpg"]
    assert lab.indexed("uploads/unlucky.jpg")["alert"] == "sent"


def test_every_message_failing_is_a_response_not_an_error(lab, nofire_bytes):
    messages = [_message(lab.upload(f"uploads/{i}.jpg", nofire_bytes)) for i in range(2)]
    lab.fail("s3", "GetObject", "ServiceUnavailable", times=10)
    run = lab.invoke(sqs_batch(*messages))
    assert failed_ids(run.response) == [m["messageId"] for m in messages]


def test_s3_test_event_and_foreign_or_other_records_are_not_retried(lab, monkeypatch, nofire_bytes):
    monkeypatch.setenv("FIREWATCH_BUCKET", BUCKET)
    lab.s3.create_bucket(Bucket="someone-elses-bucket")
    test_event = sqs_message({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET})
    foreign = _message(lab.upload("uploads/x.jpg", nofire_bytes, bucket="someone-elses-bucket"))
    result_written = _message(lab.upload("results/x.jpg.json", b"{}"))

    run = lab.invoke(sqs_batch(test_event, foreign, result_written))

    assert run.response == {"batchItemFailures": []}
    assert run.metric("RefusedRecords") == 1
    assert lab.keys("results/") == ["results/x.jpg.json"]


def test_a_malformed_record_in_a_notification_fails_its_message_after_the_good_records_are_done(lab, nofire_bytes):
    good = lab.upload("uploads/good.jpg", nofire_bytes)
    broken = lab.upload("uploads/broken.jpg", nofire_bytes)
    broken["s3"]["object"]["size"] = "a lot"
    message = sqs_message(s3_event(good, broken))

    run = lab.invoke(sqs_batch(message))

    assert failed_ids(run.response) == [message["messageId"]]  # to the dead-letter queue, body intact, in the end
    assert lab.keys("results/") == ["results/good.jpg.json"]
    again = lab.invoke(sqs_batch(message))  # the redelivery repeats nothing for the good record
    assert failed_ids(again.response) == [message["messageId"]]
    assert again.metric("ImagesClassified") == 0


def test_redelivery_is_idempotent(lab, fire_bytes):
    message = _message(lab.upload("uploads/fire.jpg", fire_bytes))
    lab.invoke(sqs_batch(message))
    result, item = lab.result("results/fire.jpg.json"), lab.indexed("uploads/fire.jpg")

    again = lab.invoke(sqs_batch(message, message))  # SQS may even deliver a message twice in one batch

    assert again.response == {"batchItemFailures": []}
    assert lab.result("results/fire.jpg.json") == result
    assert lab.indexed("uploads/fire.jpg") == item
    assert len(lab.alerts()) == 1


def test_an_older_event_never_replaces_a_newer_one_in_results_or_index(lab, fire_bytes, nofire_bytes):
    v1 = lab.upload("uploads/photo.jpg", fire_bytes)
    v2 = lab.upload("uploads/photo.jpg", nofire_bytes)

    lab.invoke(sqs_batch(_message(v2)))
    lab.invoke(sqs_batch(_message(v1)))  # the older version's message arrives late

    newest = v2["s3"]["object"]
    assert lab.result("results/photo.jpg.json")["etag"] == newest["eTag"]
    item = lab.indexed("uploads/photo.jpg")
    assert (item["etag"], item["sequencer"], item["label"]) == (newest["eTag"], newest["sequencer"], "nofire")


def test_two_versions_of_one_key_in_one_batch_leave_the_newer(lab, fire_bytes, nofire_bytes):
    v1 = lab.upload("uploads/photo.jpg", nofire_bytes)
    v2 = lab.upload("uploads/photo.jpg", fire_bytes)
    run = lab.invoke(sqs_batch(_message(v2), _message(v1)))
    assert run.response == {"batchItemFailures": []}
    assert lab.result("results/photo.jpg.json")["etag"] == v2["s3"]["object"]["eTag"]
    assert lab.indexed("uploads/photo.jpg")["etag"] == v2["s3"]["object"]["eTag"]


def test_a_failed_index_write_fails_the_message_and_the_redelivery_indexes_the_result(lab, nofire_bytes):
    message = _message(lab.upload("uploads/a.jpg", nofire_bytes))
    lab.fail("dynamodb", "PutItem", "ProvisionedThroughputExceededException")

    first = lab.invoke(sqs_batch(message))
    assert failed_ids(first.response) == [message["messageId"]]
    assert lab.result("results/a.jpg.json") is not None and lab.indexed("uploads/a.jpg") is None

    assert lab.invoke(sqs_batch(message)).response == {"batchItemFailures": []}
    assert lab.indexed("uploads/a.jpg")["etag"] == lab.result("results/a.jpg.json")["etag"]


def test_results_expire_when_a_ttl_is_configured(lab, monkeypatch, nofire_bytes):
    from datetime import datetime

    monkeypatch.setenv("FIREWATCH_RESULTS_TTL_DAYS", "30")
    lab.invoke(sqs_batch(_message(lab.upload("uploads/a.jpg", nofire_bytes))))
    item = lab.indexed("uploads/a.jpg")
    classified = datetime.fromisoformat(item["classified_at"]).timestamp()
    assert item["expires_at"] == int(classified) + 30 * 86400


@pytest.mark.parametrize("days", ["thirty", "0", "-1"])
def test_a_bad_ttl_setting_is_named(monkeypatch, days):
    monkeypatch.setenv("FIREWATCH_RESULTS_TABLE", RESULTS_TABLE)
    monkeypatch.setenv("FIREWATCH_RESULTS_TTL_DAYS", days)
    with pytest.raises(ValueError, match="FIREWATCH_RESULTS_TTL_DAYS=.* is not a positive number of days"):
        ResultsIndex.from_env(lambda: None)


def test_without_a_table_the_handler_writes_results_only(lab, monkeypatch, nofire_bytes):
    monkeypatch.delenv("FIREWATCH_RESULTS_TABLE")
    run = lab.invoke(sqs_batch(_message(lab.upload("uploads/a.jpg", nofire_bytes))))
    assert run.response == {"batchItemFailures": []}
    assert lab.keys("results/") == ["results/a.jpg.json"] and lab.indexed("uploads/a.jpg") is None


# --- the index's own ordering rule, writer against writer ---------------------------------------------------------


def _record(sequencer: str | None, **fields) -> dict:
    record = {"source": "s3://b/uploads/k.jpg", "label": "fire", "fire_probability": 0.9731, "model_version": "m",
              "bucket": "b", "key": "uploads/k.jpg", "size": 1, "etag": f"etag-{sequencer}",
              "classified_at": "2026-11-29T20:00:00.000+00:00", **fields}  # fmt: skip
    if sequencer:
        record["sequencer"] = sequencer
    return record


@pytest.fixture
def index(lab):
    return ResultsIndex(lab.dynamodb, RESULTS_TABLE)


def test_index_refuses_an_older_sequencer_whatever_its_length(lab, index):
    assert index.put(_record("0055AED6DCD90281E6"), "results/k.jpg.json")
    # Shorter but older (S3 pads sequencers with zeros before comparing), then plainly older.
    assert not index.put(_record("55AED6DCD90281E5"), "results/k.jpg.json")
    assert not index.put(_record("0055AED6DCD90281E0"), "results/k.jpg.json")
    assert lab.indexed("uploads/k.jpg")["sequencer"] == "0055AED6DCD90281E6"
    assert index.put(_record("055AED6DCD90281E7"), "results/k.jpg.json")  # shorter and newer
    assert lab.indexed("uploads/k.jpg")["sequencer"] == "055AED6DCD90281E7"


def test_index_keeps_a_sent_alert_against_a_late_pending_write_of_the_same_event(lab, index):
    assert index.put(_record("0A", alert="pending"), "results/k.jpg.json")
    assert index.put(_record("0A", alert="sent", alert_message_id="m-1"), "results/k.jpg.json")
    assert not index.put(_record("0A", alert="pending"), "results/k.jpg.json")
    assert lab.indexed("uploads/k.jpg")["alert"] == "sent"


def test_index_orders_hand_made_results_by_arrival(lab, index):
    assert index.put(_record("0B"), "results/k.jpg.json")
    assert index.put(_record(None, label="nofire"), "results/k.jpg.json")
    assert lab.indexed("uploads/k.jpg")["label"] == "nofire" and "sequencer_order" not in lab.indexed("uploads/k.jpg")
    assert index.put(_record("01"), "results/k.jpg.json")  # any sequenced result follows an unsequenced one


def test_index_item_has_the_contract_fields_and_error_records_fit(index):
    error = {"source": "s3://b/uploads/k.jpg", "error": {"code": "corrupt_image", "message": "damaged"}, "bucket": "b",
             "key": "uploads/k.jpg", "size": 3, "etag": "e", "classified_at": "2026-11-29T23:59:59.999+00:00"}  # fmt: skip
    item = ResultsIndex(None, RESULTS_TABLE, ttl_days=1).item(error, "results/k.jpg.json")
    assert item["key"] == "uploads/k.jpg" and item["day"] == "2026-11-29"
    assert item["expires_at"] == 1796083199  # 2026-11-30T23:59:59Z
    assert index.put(error, "results/k.jpg.json")
    assert json.dumps(item)  # plain values; DynamoDB types are made only when written


class ShortOfTime(LambdaContext):
    """An invocation whose clock runs down by ``step_ms`` each time the handler looks at it."""

    def __init__(self, start_ms: int, step_ms: int) -> None:
        self.left_ms, self.step_ms = start_ms, step_ms

    def get_remaining_time_in_millis(self) -> int:
        left, self.left_ms = self.left_ms, self.left_ms - self.step_ms
        return left


def test_a_batch_short_of_time_finishes_what_it_started_and_leaves_the_rest_to_a_redelivery(iam_lab, nofire_bytes):
    """A batch of costly photos must not run into the function's timeout: that would fail every message of the
    batch, good neighbours included, and send them all to the dead-letter queue after three tries. Under the stack's
    policy: the uploads decoded in time get their results; the others are untouched and come back."""
    messages = [_message(iam_lab.upload(f"uploads/slow-{i}.jpg", nofire_bytes)) for i in range(4)]
    # 30 s at the start (10 s kept back), 12 s gone at each look after: the 2nd upload starts with 18 s left, the
    # 3rd would with 6 s.
    run = iam_lab.invoke(sqs_batch(*messages), ShortOfTime(30_000, 12_000))

    assert failed_ids(run.response) == [messages[2]["messageId"], messages[3]["messageId"]]
    assert iam_lab.keys("results/") == ["results/slow-0.jpg.json", "results/slow-1.jpg.json"]
    assert iam_lab.indexed("uploads/slow-2.jpg") is None
    assert any(log["message"].startswith("Upload left to a redelivery") for log in run.logs)

    again = iam_lab.invoke(sqs_batch(messages[2], messages[3]))  # the redelivery, with time to spare
    assert again.response == {"batchItemFailures": []}
    assert iam_lab.keys("results/") == [f"results/slow-{i}.jpg.json" for i in range(4)]


def test_the_first_upload_is_decoded_however_little_time_is_left(lab, nofire_bytes):
    """Deferring every upload would make no progress at all: the first one always gets its turn."""
    messages = [_message(lab.upload(f"uploads/late-{i}.jpg", nofire_bytes)) for i in range(2)]
    run = lab.invoke(sqs_batch(*messages), ShortOfTime(1_000, 1_000))
    assert failed_ids(run.response) == [messages[1]["messageId"]]
    assert lab.keys("results/") == ["results/late-0.jpg.json"]
