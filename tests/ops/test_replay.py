"""``python -m ops replay``: SQS's redrive (StartMessageMoveTask, followed with ListMessageMoveTasks) through
botocore's Stubber, since moto 5.2.5 does not implement it; the local fallback against a moto server on loopback."""

from __future__ import annotations

import argparse
import json

import boto3
import pytest
from botocore.stub import Stubber

import ops.replay as replay
from ops.aws import Aws

from .conftest import REGION, Account, aws_env, ops

DLQ_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/uploads-dlq"
DLQ_ARN = "arn:aws:sqs:us-east-1:123456789012:uploads-dlq"
QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/uploads"
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:uploads"
HANDLE = "eyJ0YXNrSWQiOiJkYzE2OWUwNC0wZTU1LTQ0ZDItYWE5MC1jMDgwY2ExZjM2ZjciLCJzb3VyY2VBcm4iOiJhcm46YXdzOnNxcyJ9"


def args(*extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    replay.add_arguments(parser)
    return parser.parse_args(["--dlq-url", DLQ_URL, *extra])


@pytest.fixture
def stubbed(monkeypatch):
    aws_env(monkeypatch)
    sqs = boto3.client("sqs", region_name=REGION)
    monkeypatch.setattr(Aws, "client", lambda self, name, **options: sqs)
    with Stubber(sqs) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def count(stubber: Stubber, queue_url: str, n: int) -> None:
    stubber.add_response("get_queue_attributes", {"Attributes": {"ApproximateNumberOfMessages": str(n)}},
                         {"QueueUrl": queue_url, "AttributeNames": ["ApproximateNumberOfMessages"]})  # fmt: skip


def arn(stubber: Stubber, queue_url: str, queue_arn: str) -> None:
    stubber.add_response("get_queue_attributes", {"Attributes": {"QueueArn": queue_arn}},
                         {"QueueUrl": queue_url, "AttributeNames": ["QueueArn"]})  # fmt: skip


def task(stubber: Stubber, status: str, moved: int, to_move: int = 12, **extra) -> None:
    entry = {"Status": status, "SourceArn": DLQ_ARN, "ApproximateNumberOfMessagesMoved": moved,
             "ApproximateNumberOfMessagesToMove": to_move, "StartedTimestamp": 1764400000000, **extra}  # fmt: skip
    if status == "RUNNING":
        entry["TaskHandle"] = HANDLE
    stubber.add_response("list_message_move_tasks", {"Results": [entry]}, {"SourceArn": DLQ_ARN, "MaxResults": 1})


def test_redrive_moves_the_messages_back_and_follows_the_task(stubbed, capsys):
    count(stubbed, DLQ_URL, 12)
    arn(stubbed, DLQ_URL, DLQ_ARN)
    arn(stubbed, QUEUE_URL, QUEUE_ARN)
    stubbed.add_response("start_message_move_task", {"TaskHandle": HANDLE},
                         {"SourceArn": DLQ_ARN, "DestinationArn": QUEUE_ARN, "MaxNumberOfMessagesPerSecond": 50})  # fmt: skip
    task(stubbed, "RUNNING", 0)
    task(stubbed, "RUNNING", 7)
    task(stubbed, "COMPLETED", 12)
    count(stubbed, DLQ_URL, 0)
    sleeps = []
    assert replay.run(args("--queue-url", QUEUE_URL, "--max-per-second", "50"), sleep=sleeps.append) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"before": 12, "moved": 12, "after": 0, "status": "COMPLETED"}
    assert "12 message(s) waiting" in err and "0 message(s) waiting (was 12)" in err
    assert sleeps == [replay.POLL_SECONDS] * 2


def test_without_a_queue_the_messages_go_back_where_they_came_from(stubbed, capsys):
    count(stubbed, DLQ_URL, 3)
    arn(stubbed, DLQ_URL, DLQ_ARN)
    stubbed.add_response("start_message_move_task", {"TaskHandle": HANDLE}, {"SourceArn": DLQ_ARN})
    task(stubbed, "COMPLETED", 3, 3)
    count(stubbed, DLQ_URL, 0)
    assert replay.run(args(), sleep=lambda s: None) == 0


def test_a_failed_task_fails_the_command_with_its_reason(stubbed, capsys):
    count(stubbed, DLQ_URL, 5)
    arn(stubbed, DLQ_URL, DLQ_ARN)
    stubbed.add_response("start_message_move_task", {"TaskHandle": HANDLE}, {"SourceArn": DLQ_ARN})
    task(stubbed, "FAILED", 2, 5, FailureReason="AccessDenied: kms:Decrypt")
    count(stubbed, DLQ_URL, 3)
    assert replay.run(args(), sleep=lambda s: None) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["status"] == "FAILED" and "AccessDenied: kms:Decrypt" in err


def test_following_a_long_task_stops_at_the_timeout_and_says_how_to_cancel(stubbed, capsys):
    count(stubbed, DLQ_URL, 500)
    arn(stubbed, DLQ_URL, DLQ_ARN)
    stubbed.add_response("start_message_move_task", {"TaskHandle": HANDLE}, {"SourceArn": DLQ_ARN})
    task(stubbed, "RUNNING", 10, 500)
    task(stubbed, "RUNNING", 20, 500)
    count(stubbed, DLQ_URL, 480)
    now = [0.0]
    assert replay.run(args("--timeout", "4"), sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0]) == 1
    assert f"cancel-message-move-task --task-handle {HANDLE}" in capsys.readouterr().err


def test_dry_run_only_counts(stubbed, capsys):
    count(stubbed, DLQ_URL, 4)
    assert replay.run(args("--dry-run")) == 0
    assert json.loads(capsys.readouterr().out) == {"waiting": 4}


@pytest.fixture
def moto_server(moto_endpoint, monkeypatch):
    aws_env(monkeypatch)
    return moto_endpoint


def test_local_endpoint_moves_by_hand_send_before_delete(moto_server, capsys):
    account = Account(moto_server)
    for i in range(23):
        account.sqs.send_message(QueueUrl=account.dlq_url, MessageBody=json.dumps({"Records": [i]}),
                                 MessageAttributes={"n": {"DataType": "Number", "StringValue": str(i)}})  # fmt: skip
    # --queue-url is found from the dead-letter queue itself (the queue whose redrive policy names it).
    assert ops("replay", "--endpoint-url", moto_server, "--dlq-url", account.dlq_url) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"before": 23, "moved": 23, "after": 0, "status": "COMPLETED"}
    moved = account.drain(account.queue_url)
    assert sorted(json.loads(m["Body"])["Records"][0] for m in moved) == list(range(23))
    assert {m["MessageAttributes"]["n"]["StringValue"] for m in moved} == {str(i) for i in range(23)}
    assert account.drain(account.dlq_url) == []


def test_local_move_keeps_what_could_not_be_sent(moto_server, capsys, monkeypatch):
    account = Account(moto_server)
    for i in range(3):
        account.sqs.send_message(QueueUrl=account.dlq_url, MessageBody=f"m{i}")
    real_move = replay.move_by_hand

    def move(sqs, dlq_url, queue_url, expected):
        original = sqs.send_message_batch

        def send_message_batch(QueueUrl, Entries):
            response = original(QueueUrl=QueueUrl, Entries=[e for e in Entries if e["Id"] != "1"])
            response.setdefault("Failed", []).append({"Id": "1", "SenderFault": False, "Code": "Injected", "Message": "no"})
            return response

        sqs.send_message_batch = send_message_batch  # SQS refuses the second entry of each batch
        return real_move(sqs, dlq_url, queue_url, expected)

    monkeypatch.setattr(replay, "move_by_hand", move)
    assert ops("replay", "--endpoint-url", moto_server, "--dlq-url", account.dlq_url, "--queue-url", account.queue_url) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["moved"] == 2 and json.loads(out)["status"] == "INCOMPLETE"
    assert "not moved (stays in the dead-letter queue): Injected" in err
    assert len(account.drain(account.queue_url)) == 2
    # Not deleted: it is back in the dead-letter queue once its visibility timeout ends.
    name = "ApproximateNumberOfMessagesNotVisible"
    assert account.sqs.get_queue_attributes(QueueUrl=account.dlq_url, AttributeNames=[name])["Attributes"][name] == "1"


def test_the_dead_letter_queue_is_found_from_the_bucket(capsys, monkeypatch):
    from moto import mock_aws

    from .conftest import BUCKET, notify_queue

    aws_env(monkeypatch)
    with mock_aws():
        account = Account()
        notify_queue(account)
        for i in range(3):
            account.sqs.send_message(QueueUrl=account.dlq_url, MessageBody=f"m{i}")
        assert ops("replay", "--bucket", BUCKET, "--dry-run") == 0
    assert json.loads(capsys.readouterr().out) == {"waiting": 3}
