"""A moto AWS account with the upload bucket and the alert topic (read through a subscribed SQS queue),
real S3 event records for what the tests upload, and the handler's stdout split into EMF metrics and logs."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import quote_plus

import boto3
import pytest
from moto import mock_aws

BUCKET = "firewatch-uploads-test"
REGION = "us-east-1"


class LambdaContext:
    """The attributes of Lambda's context object that Powertools reads."""

    function_name = "firewatch-classify"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:firewatch-classify"
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    log_group_name = "/aws/lambda/firewatch-classify"
    log_stream_name = "2026/11/25/[$LATEST]0123456789abcdef"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


def s3_record(bucket: str, key: str, size: int, etag: str, event_name: str = "ObjectCreated:Put") -> dict:
    """One record as S3 sends it: the key URL-encoded with '+' for spaces, the etag without quotes."""
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": REGION,
        "eventTime": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "eventName": event_name,
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "203.0.113.7"},
        "responseElements": {"x-amz-request-id": "EXAMPLE123456789", "x-amz-id-2": "EXAMPLE123/abc"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "firewatch-uploads",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "EXAMPLE"}, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {"key": quote_plus(key, safe="/"), "size": size, "eTag": etag, "sequencer": "0055AED6DCD90281E5"},
        },
    }


def s3_event(*records: dict) -> dict:
    return {"Records": list(records)}


@dataclass
class Invocation:
    response: dict
    emf: list[dict] = field(default_factory=list)  # one CloudWatch embedded-metric-format document per line
    logs: list[dict] = field(default_factory=list)

    def metric(self, name: str) -> float:
        """Sum of every value of metric ``name`` over the EMF documents (0 when absent)."""
        total = 0.0
        for document in self.emf:
            declared = {m["Name"] for d in document["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
            if name in declared:
                value = document[name]
                total += sum(value) if isinstance(value, list) else value
        return total

    def values(self, name: str) -> list[float]:
        found = []
        for document in self.emf:
            if name in document and "_aws" in document:
                value = document[name]
                found.extend(value if isinstance(value, list) else [value])
        return found


class Lab:
    """The moto account the handler runs against."""

    def __init__(self, capsys) -> None:
        self.capsys = capsys
        self.s3 = boto3.client("s3", region_name=REGION)
        self.sns = boto3.client("sns", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.s3.create_bucket(Bucket=BUCKET)
        self.topic_arn = self.sns.create_topic(Name="firewatch-alerts")["TopicArn"]
        self.queue_url = self.sqs.create_queue(QueueName="alerts-inbox")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.sns.subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=queue_arn)

    def upload(self, key: str, data: bytes, bucket: str = BUCKET) -> dict:
        """Put ``data`` at ``key`` and return the event record S3 would send for it."""
        self.s3.put_object(Bucket=bucket, Key=key, Body=data)
        head = self.s3.head_object(Bucket=bucket, Key=key)
        return s3_record(bucket, key, head["ContentLength"], head["ETag"].strip('"'))

    def result(self, key: str) -> dict | None:
        try:
            body = self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return None
        return json.loads(body)

    def keys(self, prefix: str = "") -> list[str]:
        listing = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def alerts(self) -> list[dict]:
        """Every alert published so far (SNS envelopes unwrapped), draining the queue."""
        found = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return found
            for message in batch:
                envelope = json.loads(message["Body"])
                found.append({"subject": envelope.get("Subject"), **json.loads(envelope["Message"])})
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def invoke(self, event: dict) -> Invocation:
        from lambda_image.handler import handler, logger

        logger.registered_handler.stream = sys.stdout  # logs and metrics on one stdout, as in Lambda
        self.capsys.readouterr()
        response = handler(event, LambdaContext())
        return self.split_output(response)

    def split_output(self, response=None) -> Invocation:
        invocation = Invocation(response)
        for line in self.capsys.readouterr().out.splitlines():
            if not line.startswith("{"):
                continue
            document = json.loads(line)
            (invocation.emf if "_aws" in document else invocation.logs).append(document)
        return invocation


@pytest.fixture
def lab(monkeypatch, capsys):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "POWERTOOLS_SERVICE_NAME": "firewatch",
        "POWERTOOLS_METRICS_NAMESPACE": "Firewatch",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("FIREWATCH_MAX_BYTES", "FIREWATCH_MAX_PIXELS", "FIREWATCH_MODEL_PATH", "AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    from lambda_image import handler

    # Powertools' log handler holds the stream it found at import; invoke() points it at the captured stdout.
    monkeypatch.setattr(handler.logger.registered_handler, "stream", handler.logger.registered_handler.stream)
    with mock_aws():
        # The handler keeps its clients and model per execution environment; each test is a fresh one.
        for cached in (handler._s3, handler._sns, handler.classifier):
            cached.cache_clear()
        lab = Lab(capsys)
        monkeypatch.setenv("ALERT_TOPIC_ARN", lab.topic_arn)
        yield lab
        for cached in (handler._s3, handler._sns, handler.classifier):
            cached.cache_clear()
