"""moto's S3 and SQS for the operator commands: an upload bucket, the upload queue and its dead-letter queue."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from ops.__main__ import main

BUCKET = "firewatch-ops-test"
REGION = "us-east-1"


def aws_env(monkeypatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SQS", "AWS_PROFILE",
                 "FIREWATCH_UPLOAD_QUEUE_URL"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


class Account:
    def __init__(self, endpoint_url: str | None = None) -> None:
        self.s3 = boto3.client("s3", region_name=REGION, endpoint_url=endpoint_url)
        self.sqs = boto3.client("sqs", region_name=REGION, endpoint_url=endpoint_url)
        self.s3.create_bucket(Bucket=BUCKET)
        self.dlq_url = self.sqs.create_queue(QueueName="uploads-dlq")["QueueUrl"]
        dlq_arn = self.sqs.get_queue_attributes(QueueUrl=self.dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.queue_url = self.sqs.create_queue(
            QueueName="uploads",
            Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})},
        )["QueueUrl"]

    def upload(self, key: str, data: bytes = b"\xff\xd8\xff photo") -> str:
        return self.s3.put_object(Bucket=BUCKET, Key=key, Body=data)["ETag"].strip('"')

    def put_result(self, upload_key: str, etag: str) -> None:
        from inference.contract import result_key_for

        record = {"label": "nofire", "fire_probability": 0.1, "key": upload_key, "etag": etag}
        self.s3.put_object(Bucket=BUCKET, Key=result_key_for(upload_key), Body=json.dumps(record).encode())

    def drain(self, queue_url: str) -> list[dict]:
        """Every message of the queue (bounded), deleted as read."""
        found = []
        for _ in range(100):
            batch = self.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                             MessageAttributeNames=["All"]).get("Messages", [])  # fmt: skip
            if not batch:
                return found
            found += batch
            for message in batch:
                self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        raise AssertionError("the queue did not empty")


@pytest.fixture
def account(monkeypatch):
    aws_env(monkeypatch)
    with mock_aws():
        yield Account()


def ops(*argv: str) -> int:
    return main(list(argv))


def notify_queue(account: Account) -> None:
    """The bucket notifies the upload queue of new uploads, as the stack sets it up."""
    arn = account.sqs.get_queue_attributes(QueueUrl=account.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    account.s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={"QueueConfigurations": [{
        "QueueArn": arn, "Events": ["s3:ObjectCreated:*"],
        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "uploads/"}]}},
    }]})  # fmt: skip
    account.drain(account.queue_url)  # S3's test event
