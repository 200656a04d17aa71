"""The demo's stand-in for Lambda's SQS event source mapping, against local SQS and fake handlers."""

from __future__ import annotations

import json
import threading

import boto3
import pytest
from moto import mock_aws

from demo.local_aws import create_resources
from demo.poller import QueuePoller, failed_message_ids, sqs_event

BUCKET = "firewatch-poller-test"


@pytest.fixture
def aws(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        session = boto3.session.Session()
        # visibility timeout 0: a failed message is back at once, so retries need no waiting here
        resources = create_resources(session, BUCKET, max_receives=3, visibility_timeout=0)
        sqs = session.client("sqs")
        drain(sqs, resources.queue_url)  # S3's set-up message (s3:TestEvent)
        yield sqs, resources


def drain(sqs, url: str) -> list[dict]:
    messages = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        messages += batch
        sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                                                         for n, m in enumerate(batch)])
    return messages


def counts(sqs, url: str) -> tuple[int, int]:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


class Recorder:
    """A handler that records its events and fails the messages whose body is in ``failing``."""

    def __init__(self, failing=(), answer=None, raises=False):
        self.events, self.failing, self.answer, self.raises = [], set(failing), answer, raises

    def __call__(self, event, context):
        self.events.append(event)
        if self.raises:
            raise RuntimeError("boom")
        if self.answer is not None:
            return self.answer
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] in self.failing]}


def poller(sqs, resources, handler, **options) -> QueuePoller:
    options.setdefault("batching_window", 0)  # no waiting for fuller batches, except where a test is about that
    return QueuePoller(sqs, resources.queue_url, handler, lambda: None, **options)


def send(sqs, url: str, bodies) -> None:
    for body in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=body)


def test_the_event_is_shaped_like_lambdas(aws):
    sqs, resources = aws
    send(sqs, resources.queue_url, ["one"])
    handler = Recorder()
    poller(sqs, resources, handler).poll_once(wait_seconds=0)
    (record,) = handler.events[0]["Records"]
    assert record["body"] == "one" and record["eventSource"] == "aws:sqs"
    assert record["messageId"] and record["receiptHandle"]
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["eventSourceARN"].endswith(":firewatch-uploads") and record["awsRegion"] == "us-east-1"


def test_batches_hold_at_most_the_batch_size_and_successes_are_deleted(aws):
    sqs, resources = aws
    send(sqs, resources.queue_url, [f"m{n}" for n in range(25)])
    handler = Recorder()
    mapping = poller(sqs, resources, handler, batch_size=10)
    sizes = []
    while (outcome := mapping.poll_once(wait_seconds=0)) is not None:
        sizes.append(len(outcome.messages))
        assert outcome.failed == []
    assert sizes == [10, 10, 5]
    assert counts(sqs, resources.queue_url) == (0, 0)


def test_a_batching_window_gathers_a_fuller_batch(aws):
    sqs, resources = aws
    url = sqs.create_queue(QueueName="window-test", Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    send(sqs, url, ["first"])
    timer = threading.Timer(0.2, send, (sqs, url, ["second"]))
    timer.start()
    mapping = QueuePoller(sqs, url, Recorder(), lambda: None, batch_size=5, batching_window=1.5)
    outcome = mapping.poll_once(wait_seconds=0)
    timer.join()
    assert sorted(m.body for m in outcome.messages) == ["first", "second"]


def test_without_a_window_a_batch_is_what_the_queue_has_now(aws):
    sqs, resources = aws
    send(sqs, resources.queue_url, ["a"])
    outcome = poller(sqs, resources, Recorder(), batch_size=5).poll_once(wait_seconds=0)
    assert [m.body for m in outcome.messages] == ["a"]


def test_only_the_failed_items_stay_and_come_back(aws):
    sqs, resources = aws
    send(sqs, resources.queue_url, ["good", "bad", "fine"])
    handler = Recorder(failing={"bad"})
    mapping = poller(sqs, resources, handler)
    outcome = mapping.poll_once(wait_seconds=0)
    assert [m.body for m in outcome.failed] == ["bad"] and sorted(m.body for m in outcome.succeeded) == ["fine", "good"]
    again = mapping.poll_once(wait_seconds=0)
    assert [m.body for m in again.messages] == ["bad"] and again.messages[0].receive_count == 2


def test_a_message_that_keeps_failing_goes_to_the_dead_letter_queue_without_blocking_others(aws):
    sqs, resources = aws
    send(sqs, resources.queue_url, ["poison"])
    handler = Recorder(failing={"poison"})
    mapping = poller(sqs, resources, handler)
    for attempt in (1, 2, 3):
        outcome = mapping.poll_once(wait_seconds=0)
        assert [m.receive_count for m in outcome.messages] == [attempt]
    send(sqs, resources.queue_url, ["after"])
    outcome = mapping.poll_once(wait_seconds=0)
    assert [m.body for m in outcome.messages] == ["after"] and outcome.failed == []
    assert [m["Body"] for m in drain(sqs, resources.dead_letter_queue_url)] == ["poison"]


def test_a_handler_that_raises_fails_the_whole_batch(aws):
    sqs, resources = aws
    send(sqs, resources.queue_url, ["a", "b"])
    outcome = poller(sqs, resources, Recorder(raises=True)).poll_once(wait_seconds=0)
    assert len(outcome.failed) == 2 and "RuntimeError: boom" in outcome.error
    assert counts(sqs, resources.queue_url)[0] == 2  # both back (visibility timeout 0)


@pytest.mark.parametrize("answer", [{"batchItemFailures": [{"itemIdentifier": "not-in-the-batch"}]},
                                    {"batchItemFailures": [{"itemIdentifier": ""}]},
                                    {"batchItemFailures": [{"id": "x"}]}, "ok"])
def test_an_answer_naming_no_message_of_the_batch_fails_it_all(aws, answer):
    sqs, resources = aws
    send(sqs, resources.queue_url, ["a"])
    outcome = poller(sqs, resources, Recorder(answer=answer)).poll_once(wait_seconds=0)
    assert len(outcome.failed) == 1 and outcome.error


@pytest.mark.parametrize("answer", [None, {}, {"batchItemFailures": []}, {"batchItemFailures": None}])
def test_answers_that_mean_success(answer):
    assert failed_message_ids(answer, ["a", "b"]) == (frozenset(), None)


def test_failed_ids_are_those_named():
    answer = {"batchItemFailures": [{"itemIdentifier": "b"}]}
    assert failed_message_ids(answer, ["a", "b"]) == (frozenset({"b"}), None)


def test_sqs_event_passes_attributes_on():
    from demo.poller import Message

    event = sqs_event([Message("id", "rh", "body", 2, {"SentTimestamp": "1"})], "arn:aws:sqs:us-east-1:1:q", "us-east-1")
    assert event["Records"][0]["attributes"] == {"ApproximateReceiveCount": "2", "SentTimestamp": "1"}


def test_uploads_are_notified_to_the_queue_and_results_are_public_only_locally(aws):
    sqs, resources = aws
    s3 = boto3.client("s3")
    s3.put_object(Bucket=BUCKET, Key="uploads/a b.jpg", Body=b"x")
    s3.put_object(Bucket=BUCKET, Key="elsewhere/c.jpg", Body=b"x")
    (message,) = drain(sqs, resources.queue_url)
    (record,) = json.loads(message["Body"])["Records"]
    assert record["s3"]["bucket"]["name"] == BUCKET and "a" in record["s3"]["object"]["key"]
    policy = json.loads(s3.get_bucket_policy(Bucket=BUCKET)["Policy"])
    assert [s["Resource"] for s in policy["Statement"]] == [f"arn:aws:s3:::{BUCKET}/results/*"]


def test_the_demo_feeds_the_handler_as_the_deployed_mapping_does():
    """Batch size, batching window and receives before the dead-letter queue: the stacks' defaults."""
    import re

    from demo import local_aws, poller
    from stacks.config import FirewatchConfig
    from tests.conftest import ROOT

    assert poller.BATCH_SIZE == FirewatchConfig.queue_batch_size
    assert poller.BATCHING_WINDOW_SECONDS == FirewatchConfig.queue_batch_window_seconds
    # stacks/upload_queue.py imports the CDK: read its constant rather than import it (seconds of jsii start-up)
    source = (ROOT / "stacks" / "upload_queue.py").read_text()
    assert local_aws.MAX_RECEIVES == int(re.search(r"^MAX_RECEIVE_COUNT = (\d+)", source, re.M).group(1))
