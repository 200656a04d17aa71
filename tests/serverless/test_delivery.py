"""Fire alerts at least once and results in event order, under failures and interleavings injected into the
handler's AWS calls, and (``iam_lab``) with moto enforcing the function role's policy from the synthesized stack."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from lambda_image.handler import UploadsFailed, handle_event

from .conftest import BUCKET, RESULTS_TABLE, failed_ids, s3_event, sqs_batch, sqs_message, summary
from .function_role import table_arn, upload_queue_arn

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

RESULT = "results/fire.jpg.json"


def _is_result_write(params) -> bool:
    return params.get("Key", "").startswith("results/")


def _is_claim(params) -> bool:
    """The first write of a result (the pending fire result), as opposed to the update that marks it sent."""
    return _is_result_write(params) and params.get("IfNoneMatch") == "*"


def _is_mark_sent(params) -> bool:
    return _is_result_write(params) and "IfMatch" in params


class LambdaTimeout(Exception):
    """Stands for the invocation being killed: no code of the handler runs after it."""


# --- with the function role's policy enforced ------------------------------------------------------------------------


def test_under_the_stacks_policy_a_fire_upload_is_classified_and_alerted_once(iam_lab, fire_bytes):
    event = s3_event(iam_lab.upload("uploads/fire.jpg", fire_bytes))
    assert iam_lab.invoke(event).response == summary(classified=1)
    assert iam_lab.result(RESULT)["alert"] == "sent"
    assert [alert["key"] for alert in iam_lab.alerts()] == ["uploads/fire.jpg"]
    assert iam_lab.invoke(event).response == summary(duplicate=1)
    assert iam_lab.alerts() == []


def test_under_the_stacks_policy_a_throttled_alert_is_sent_by_the_retry_exactly_once(iam_lab, fire_bytes):
    """SNS throttles past botocore's own retries: the invocation fails, and Lambda's retry sends the alert."""
    event = s3_event(iam_lab.upload("uploads/fire.jpg", fire_bytes))
    iam_lab.fail("sns", "Publish", "Throttling")

    with pytest.raises(UploadsFailed, match="Throttling"):
        iam_lab.invoke(event)
    assert iam_lab.alerts() == []
    assert iam_lab.result(RESULT)["alert"] == "pending"

    assert iam_lab.invoke(event).response == summary(alert_retried=1)
    assert iam_lab.invoke(event).response == summary(duplicate=1)  # a third delivery: nothing more
    assert [alert["key"] for alert in iam_lab.alerts()] == ["uploads/fire.jpg"]


def test_under_the_stacks_policy_a_failed_result_write_is_retried_and_alerts_once(iam_lab, fire_bytes):
    event = s3_event(iam_lab.upload("uploads/fire.jpg", fire_bytes))
    iam_lab.fail("s3", "PutObject", "SlowDown", when=_is_claim)

    with pytest.raises(UploadsFailed, match="SlowDown"):
        iam_lab.invoke(event)
    assert iam_lab.result(RESULT) is None and iam_lab.alerts() == []

    assert iam_lab.invoke(event).response == summary(classified=1)
    assert [alert["key"] for alert in iam_lab.alerts()] == ["uploads/fire.jpg"]


def test_under_the_stacks_policy_events_from_another_bucket_are_refused(iam_lab, fire_bytes):
    iam_lab.s3.create_bucket(Bucket="someone-elses-bucket")
    foreign = iam_lab.upload("uploads/fire.jpg", fire_bytes, bucket="someone-elses-bucket")
    run = iam_lab.invoke(s3_event(foreign))
    assert run.response == summary(refused=1)
    assert run.metric("RefusedRecords") == 1
    assert iam_lab.s3.list_objects_v2(Bucket="someone-elses-bucket", Prefix="results/").get("KeyCount") == 0


def test_the_role_may_not_delete_results_and_moto_does_enforce_it(iam_lab):
    """Least privilege: nothing in the protocol deletes, so the role cannot; and the lab really refuses it."""
    iam_lab.s3.put_object(Bucket=BUCKET, Key="results/a.jpg.json", Body=b"{}")
    assert iam_lab.role.allows("s3:PutObject", f"arn:aws:s3:::{BUCKET}/results/a.jpg.json")
    assert not iam_lab.role.allows("s3:DeleteObject", f"arn:aws:s3:::{BUCKET}/results/a.jpg.json")
    assert not iam_lab.role.allows("s3:PutObject", f"arn:aws:s3:::{BUCKET}/uploads/a.jpg")

    s3 = iam_lab.handler_client("s3")
    with pytest.raises(ClientError, match="AccessDenied"):
        iam_lab.as_function(s3.delete_object, Bucket=BUCKET, Key="results/a.jpg.json")
    assert iam_lab.as_function(s3.get_object, Bucket=BUCKET, Key="results/a.jpg.json")["Body"].read() == b"{}"
    other_topic = iam_lab.sns.create_topic(Name="not-the-alert-topic")["TopicArn"]
    with pytest.raises(ClientError, match="AuthorizationError|AccessDenied"):
        iam_lab.as_function(iam_lab.handler_client("sns").publish, TopicArn=other_topic, Message="x")


def test_under_the_stacks_policy_an_sqs_batch_is_classified_indexed_and_alerted(iam_lab, fire_bytes, nofire_bytes):
    records = [iam_lab.upload("uploads/fire.jpg", fire_bytes), iam_lab.upload("uploads/forest.jpg", nofire_bytes)]
    messages = [sqs_message(s3_event(record)) for record in records]

    assert iam_lab.invoke(sqs_batch(*messages)).response == {"batchItemFailures": []}
    assert iam_lab.keys("results/") == ["results/fire.jpg.json", "results/forest.jpg.json"]
    assert iam_lab.indexed("uploads/fire.jpg")["alert"] == "sent"  # the table write is allowed by the policy
    assert iam_lab.indexed("uploads/forest.jpg")["label"] == "nofire"
    assert [alert["key"] for alert in iam_lab.alerts()] == ["uploads/fire.jpg"]

    # Redelivered (at least once), the batch writes and alerts nothing new.
    item = iam_lab.indexed("uploads/fire.jpg")
    assert iam_lab.invoke(sqs_batch(*messages)).response == {"batchItemFailures": []}
    assert iam_lab.indexed("uploads/fire.jpg") == item and iam_lab.alerts() == []


def test_under_the_stacks_policy_one_poison_message_fails_alone(iam_lab, nofire_bytes):
    good = sqs_message(s3_event(iam_lab.upload("uploads/good.jpg", nofire_bytes)))
    poison = sqs_message("{not json")
    run = iam_lab.invoke(sqs_batch(poison, good))
    assert failed_ids(run.response) == [poison["messageId"]]
    assert iam_lab.keys("results/") == ["results/good.jpg.json"] and iam_lab.indexed("uploads/good.jpg")


def test_under_the_stacks_policy_an_older_event_never_replaces_the_newer_index_item(iam_lab, fire_bytes, nofire_bytes):
    v1 = iam_lab.upload("uploads/photo.jpg", fire_bytes)
    v2 = iam_lab.upload("uploads/photo.jpg", nofire_bytes)
    iam_lab.invoke(sqs_batch(sqs_message(s3_event(v2))))
    iam_lab.invoke(sqs_batch(sqs_message(s3_event(v1))))
    assert iam_lab.indexed("uploads/photo.jpg")["sequencer"] == v2["s3"]["object"]["sequencer"]


def test_the_role_may_only_put_items_and_consume_its_own_queue(iam_lab):
    table = table_arn(RESULTS_TABLE)
    assert iam_lab.role.allows("dynamodb:PutItem", table)
    for action in ("dynamodb:DeleteItem", "dynamodb:Scan", "dynamodb:UpdateItem", "dynamodb:GetItem"):
        assert not iam_lab.role.allows(action, table), action
    assert not iam_lab.role.allows("dynamodb:PutItem", table_arn("another-table"))
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
        assert iam_lab.role.allows(action, upload_queue_arn()), action
    assert not iam_lab.role.allows("sqs:SendMessage", upload_queue_arn())
    dynamodb = iam_lab.handler_client("dynamodb")
    with pytest.raises(ClientError, match="AccessDenied"):
        iam_lab.as_function(dynamodb.delete_item, TableName=RESULTS_TABLE, Key={"key": {"S": "uploads/a.jpg"}})


# --- failures at each step of the protocol ---------------------------------------------------------------------------


def test_alert_sent_but_not_recorded_is_not_sent_again_by_the_same_invocation(lab, fire_bytes):
    """The update to "sent" fails after the publish: the invocation succeeds (no retry, no second alert)."""
    event = s3_event(lab.upload("uploads/fire.jpg", fire_bytes))
    lab.fail("s3", "PutObject", "InternalError", when=_is_mark_sent)

    run = lab.invoke(event)
    assert run.response == summary(classified=1)
    assert len(lab.alerts()) == 1
    assert lab.result(RESULT)["alert"] == "pending"
    assert any(log["message"].startswith("Alert sent but not recorded") for log in run.logs)


def test_an_invocation_killed_between_publish_and_record_alerts_again_on_retry(lab, fire_bytes):
    """The one window of at-least-once: the retry cannot know the alert went out, so it sends it again."""
    event = s3_event(lab.upload("uploads/fire.jpg", fire_bytes))

    def timeout(params):
        raise LambdaTimeout("Task timed out after 30.00 seconds")

    lab.on_call("s3", "PutObject", timeout, when=_is_mark_sent)
    with pytest.raises(UploadsFailed, match="timed out"):
        lab.invoke(event)
    assert lab.invoke(event).response == summary(alert_retried=1)
    assert len(lab.alerts()) == 2
    assert lab.result(RESULT)["alert"] == "sent"


def test_a_delivery_that_loses_the_race_leaves_the_alert_to_the_winner(lab, fire_bytes):
    """Two deliveries of one event: the other one writes its pending result just before this one."""
    record = lab.upload("uploads/fire.jpg", fire_bytes)
    obj = record["s3"]["object"]

    def other_delivery_claims_first(params):
        winner = {**json.loads(params["Body"]), "classified_at": "2026-11-29T00:00:00.000+00:00"}
        assert winner["etag"] == obj["eTag"] and winner["alert"] == "pending"
        lab.s3.put_object(Bucket=BUCKET, Key=RESULT, Body=json.dumps(winner).encode())

    lab.on_call("s3", "PutObject", other_delivery_claims_first, when=_is_claim)
    assert lab.invoke(s3_event(record)).response == summary(duplicate=1)
    assert lab.alerts() == []  # the winner publishes it
    assert lab.result(RESULT)["classified_at"] == "2026-11-29T00:00:00.000+00:00"


def test_results_that_keep_changing_make_the_event_fail_for_a_later_retry(lab, nofire_bytes):
    record = lab.upload("uploads/busy.jpg", nofire_bytes)

    writes = iter(range(100))

    def someone_writes(params):  # a different body each time, so a different ETag
        lab.s3.put_object(Bucket=BUCKET, Key="results/busy.jpg.json", Body=json.dumps({"etag": f"another-{next(writes)}"}))

    lab.on_call("s3", "PutObject", someone_writes, times=10, when=_is_result_write)
    with pytest.raises(UploadsFailed, match="ResultConflict"):
        lab.invoke(s3_event(record))
    assert lab.result("results/busy.jpg.json")["etag"].startswith("another-")  # never overwritten blindly


# --- ordering: an older event never replaces a newer result ----------------------------------------------------------


@pytest.mark.parametrize("between", ["before reading the result", "before reading the upload"])
def test_an_older_event_processed_alongside_a_newer_one_keeps_the_newer_result(
    lab, classifier, fire_bytes, nofire_bytes, between
):
    """Version 1's invocation is under way when version 2 is uploaded and processed to the end."""
    v1 = lab.upload("uploads/photo.jpg", nofire_bytes)
    prefix = "results/" if between == "before reading the result" else "uploads/"
    v2 = {}

    def version_2_arrives_and_is_processed(params):
        v2.update(lab.upload("uploads/photo.jpg", fire_bytes))
        assert handle_event(s3_event(v2), classifier)["classified"] == 1

    lab.on_call("s3", "GetObject", version_2_arrives_and_is_processed, when=lambda p: p["Key"].startswith(prefix))
    assert lab.invoke(s3_event(v1)).response == summary(stale=1)

    result = lab.result("results/photo.jpg.json")
    assert (result["etag"], result["sequencer"]) == (v2["s3"]["object"]["eTag"], v2["s3"]["object"]["sequencer"])
    assert result["label"] == "fire"
    assert len(lab.alerts()) == 1


def test_an_older_fire_event_arriving_late_still_alerts_but_keeps_the_newer_result(lab, fire_bytes, nofire_bytes):
    v1 = lab.upload("uploads/photo.jpg", fire_bytes)
    v2 = lab.upload("uploads/photo.jpg", nofire_bytes)
    lab.invoke(s3_event(v2))

    run = lab.invoke(s3_event(v1))
    assert run.response == summary(stale=1)
    assert lab.result("results/photo.jpg.json")["etag"] == v2["s3"]["object"]["eTag"]
    alerts = lab.alerts()
    assert [(a["key"], a["etag"]) for a in alerts] == [("uploads/photo.jpg", v1["s3"]["object"]["eTag"])]


def test_a_retry_after_a_failed_alert_sends_it_even_if_a_newer_version_came_meanwhile(lab, fire_bytes, nofire_bytes):
    v1 = lab.upload("uploads/photo.jpg", fire_bytes)
    lab.fail("sns", "Publish", "Throttling")
    with pytest.raises(UploadsFailed):
        lab.invoke(s3_event(v1))
    v2 = lab.upload("uploads/photo.jpg", nofire_bytes)
    lab.invoke(s3_event(v2))

    assert lab.invoke(s3_event(v1)).response == summary(stale=1)  # Lambda's retry of version 1's event
    assert lab.result("results/photo.jpg.json")["etag"] == v2["s3"]["object"]["eTag"]
    assert [a["etag"] for a in lab.alerts()] == [v1["s3"]["object"]["eTag"]]


def test_events_without_a_sequencer_are_ordered_by_arrival(lab, fire_bytes, nofire_bytes):
    """Hand-made events (tests, the demo, a manual invoke) carry no sequencer: the later one wins, as before."""
    first = lab.upload("uploads/photo.jpg", nofire_bytes)
    lab.invoke(s3_event(first))
    second = lab.upload("uploads/photo.jpg", fire_bytes)
    for record in (first, second):
        del record["s3"]["object"]["sequencer"], record["s3"]["object"]["versionId"]

    assert lab.invoke(s3_event(second)).response == summary(classified=1)
    assert lab.invoke(s3_event(second)).response == summary(duplicate=1)
    result = lab.result("results/photo.jpg.json")
    assert result["etag"] == second["s3"]["object"]["eTag"] and "sequencer" not in result
