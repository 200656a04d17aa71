"""Stub executables on PATH in place of the CDK CLI and Docker: they record how they were called, and the CLI
writes a sample outputs file; no AWS, no Node, no Docker. And moto's S3 and SQS for the commands that work on a
deployment: an upload bucket, the upload queue and its dead-letter queue."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from ops.__main__ import main
from tests.conftest import throwaway_aws

# What `cdk deploy --all --outputs-file` writes for the default shape (names as CloudFormation makes them).
SAMPLE_OUTPUTS = {
    "firewatch-prod-serverless": {
        "UploadBucketName": "firewatch-prod-serverless-uploads1a2b3c4d-5e6f7g8h9i0j",
        "AlertTopicArn": "arn:aws:sns:eu-west-1:123456789012:firewatch-prod-serverless-AlertTopic-AbCdEf",
    },
    "firewatch-prod-web": {"WebUrl": "http://firewa-LoadB-1234567890.eu-west-1.elb.amazonaws.com"},
    "firewatch-prod-monitoring": {
        "DashboardUrl": "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#dashboards:name=firewatch-prod-dashboard",
        "AlarmTopicArn": "arn:aws:sns:eu-west-1:123456789012:firewatch-prod-monitoring-AlarmTopic-GhIjKl",
    },
}

RECORDER = """#!{python}
import json, os, sys
with open({log!r}, "a") as log:
    log.write(json.dumps({{"tool": {tool!r}, "argv": sys.argv[1:], "env": dict(os.environ)}}) + "\\n")
if {tool!r} == "npx" and "--outputs-file" in sys.argv:
    with open(sys.argv[sys.argv.index("--outputs-file") + 1], "w") as out:
        out.write({outputs!r})
sys.exit(int(os.environ.get("FAKE_{upper}_STATUS", "0")))
"""


class Tools:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.log = folder / "calls.jsonl"
        self.outputs = dict(SAMPLE_OUTPUTS)

    def install(self, tool: str) -> None:
        script = self.folder / tool
        script.write_text(RECORDER.format(python=sys.executable, log=str(self.log), tool=tool,
                                          outputs=json.dumps(self.outputs), upper=tool.upper()))
        script.chmod(0o755)

    def calls(self, tool: str) -> list[dict]:
        if not self.log.exists():
            return []
        return [c for c in map(json.loads, self.log.read_text().splitlines()) if c["tool"] == tool]


@pytest.fixture
def tools(tmp_path, monkeypatch) -> Tools:
    """`npx` and `docker` stubs as the only programs on PATH, fake credentials, no region, no AWS config."""
    folder = tmp_path / "bin"
    folder.mkdir()
    found = Tools(folder)
    found.install("npx")
    found.install("docker")
    monkeypatch.setenv("PATH", str(folder))
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata lookup for credentials
    return found


BUCKET = "firewatch-ops-test"
REGION = "us-east-1"


def aws_env(monkeypatch) -> None:
    throwaway_aws(monkeypatch, REGION)
    monkeypatch.delenv("FIREWATCH_UPLOAD_QUEUE_URL", raising=False)


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
