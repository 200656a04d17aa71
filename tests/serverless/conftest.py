"""A moto AWS account with the upload bucket and the alert topic (read through a subscribed SQS queue),
real S3 event records for what the tests upload, the handler's stdout split into EMF metrics and logs, failure
injection into the handler's AWS calls, and (``iam_lab``) the same account enforcing the function role's policy as
the CDK stack synthesizes it."""

from __future__ import annotations

import itertools
import json
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import quote_plus

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import set_initial_no_auth_action_count

from inference.contract import results_table_definition

from .function_role import FunctionRole

BUCKET = "firewatch-uploads-test"
RESULTS_TABLE = "firewatch-results-test"
REGION = "us-east-1"
MAX_KEY_BYTES = 1024  # S3's key limit, which moto does not apply


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


def s3_record(
    bucket: str,
    key: str,
    size: int,
    etag: str,
    event_name: str = "ObjectCreated:Put",
    *,
    sequencer: str | None = "0055AED6DCD90281E5",
    version_id: str | None = None,
) -> dict:
    """One record as S3 sends it: the key URL-encoded with '+' for spaces, the etag without quotes."""
    obj = {"key": quote_plus(key, safe="/"), "size": size, "eTag": etag}
    if version_id is not None:
        obj["versionId"] = version_id
    if sequencer is not None:
        obj["sequencer"] = sequencer
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
            "object": obj,
        },
    }


def s3_event(*records: dict) -> dict:
    return {"Records": list(records)}


_message_ids = itertools.count(1)


def sqs_message(body: dict | str, message_id: str | None = None, receive_count: int = 1) -> dict:
    """One SQS record as the event source mapping delivers it; a dict body is sent as JSON (an S3 notification)."""
    message_id = message_id or f"00000000-0000-4000-8000-{next(_message_ids):012d}"
    return {
        "messageId": message_id,
        "receiptHandle": f"receipt-{message_id}",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {"ApproximateReceiveCount": str(receive_count), "SentTimestamp": "1764460800000",
                       "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1764460800001"},
        "messageAttributes": {},
        "md5OfBody": "0" * 32,
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:firewatch-uploads",
        "awsRegion": REGION,
    }  # fmt: skip


def sqs_batch(*messages: dict) -> dict:
    return {"Records": list(messages)}


def failed_ids(response: dict) -> list[str]:
    """The message ids of an SQS batch response's batchItemFailures."""
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


def summary(**counts: int) -> dict:
    """The handler's response: how many records ended which way (every other count 0)."""
    names = ("classified", "invalid", "duplicate", "alert_retried", "stale", "gone", "skipped", "refused", "malformed", "failed")
    return {name: counts.get(name, 0) for name in names}


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
        self.role: FunctionRole | None = None  # set by iam_lab
        self.bucket_name = BUCKET
        self.results_table = RESULTS_TABLE
        self.s3 = boto3.client("s3", region_name=REGION)
        self.sns = boto3.client("sns", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.dynamodb = boto3.client("dynamodb", region_name=REGION)
        self.s3.create_bucket(Bucket=BUCKET)
        self._create_results_table()
        # Versioned, like the stack's upload bucket: events then name the object version.
        self.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        self._sequencer = itertools.count(0x0055AED6DCD90281E5)
        self.topic_arn = self.sns.create_topic(Name="firewatch-alerts")["TopicArn"]
        self.queue_url = self.sqs.create_queue(QueueName="alerts-inbox")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.sns.subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=queue_arn)

    def _create_results_table(self) -> None:
        """The results index as the stack declares it (inference/contract.py's key, index and attributes)."""
        self.dynamodb.create_table(**results_table_definition(RESULTS_TABLE))

    def indexed(self, key: str) -> dict | None:
        """The results index's item for upload ``key`` (plain Python values; numbers as Decimal), or ``None``."""
        from boto3.dynamodb.types import TypeDeserializer

        item = self.dynamodb.get_item(TableName=RESULTS_TABLE, Key={"key": {"S": key}}, ConsistentRead=True).get("Item")
        return None if item is None else {name: TypeDeserializer().deserialize(value) for name, value in item.items()}

    def upload(self, key: str, data: bytes, bucket: str = BUCKET) -> dict:
        """Put ``data`` at ``key`` and return the event record S3 would send for it (sequencers grow, as S3's do)."""
        put = self.s3.put_object(Bucket=bucket, Key=key, Body=data)
        return s3_record(
            bucket, key, len(data), put["ETag"].strip('"'),
            sequencer=f"{next(self._sequencer):018X}", version_id=put.get("VersionId"),
        )  # fmt: skip

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

    def invoke(self, event: dict, context=None) -> Invocation:
        """Run the handler on ``event`` (with ``context``, else a fresh invocation's 30 s) and capture its output."""
        from lambda_image.handler import handler, logger

        context = context or LambdaContext()

        logger.registered_handler.stream = sys.stdout  # logs and metrics on one stdout, as in Lambda
        self.capsys.readouterr()
        self.handler_client("s3")  # created now, so that S3's key limit applies to it from the first call
        if self.role is not None:  # every AWS call of the handler is authorized against the role's policy
            response = self.as_function(handler, event, context)
        else:
            response = handler(event, context)
        return self.split_output(response)

    def as_function(self, call, *args, **kwargs):
        """``call(*args, **kwargs)`` with IAM enforced, as the handler's calls are in ``iam_lab``."""
        return set_initial_no_auth_action_count(0)(call)(*args, **kwargs)

    # --- the handler's own clients: S3's key limit, failures and interleavings injected into its calls ------------

    def handler_client(self, service: str):
        """The client the handler uses for ``service`` (created on first use, cached per execution environment)."""
        from lambda_image import handler

        client = {"s3": handler._s3, "sns": handler._sns, "dynamodb": handler._dynamodb}[service]()
        if service == "s3" and not getattr(client, "_firewatch_lab", False):
            client._firewatch_lab = True
            client.meta.events.register("before-parameter-build.s3.*", _refuse_keys_over_s3s_limit)
            if self.role is not None:
                self.role.apply_missing_key_rule(client)
        return client

    def on_call(self, service: str, operation: str, action, *, times: int = 1, when=lambda params: True) -> None:
        """Run ``action(params)`` before the next ``times`` calls of ``operation`` by the handler that ``when``
        accepts; an action that raises makes the call fail with that error, as if AWS had answered it."""
        left = [times]

        def hook(params, **_):
            if left[0] and when(params):
                left[0] -= 1
                action(params)

        self.handler_client(service).meta.events.register(f"before-parameter-build.{service}.{operation}", hook)

    def fail(self, service: str, operation: str, code: str = "ServiceUnavailable", *, times: int = 1, when=lambda p: True):
        """Make the handler's next ``times`` matching calls fail as AWS would, after botocore's own retries."""

        def answer(params):
            raise ClientError({"Error": {"Code": code, "Message": f"injected {code}"}}, operation)

        self.on_call(service, operation, answer, times=times, when=when)

    def split_output(self, response=None) -> Invocation:
        invocation = Invocation(response)
        for line in self.capsys.readouterr().out.splitlines():
            if not line.startswith("{"):
                continue
            document = json.loads(line)
            (invocation.emf if "_aws" in document else invocation.logs).append(document)
        return invocation


def _refuse_keys_over_s3s_limit(params, **_):
    key = params.get("Key")
    if isinstance(key, str) and len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise ClientError({"Error": {"Code": "KeyTooLongError", "Message": "Your key is too long"}}, "S3")


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
    unset = ("FIREWATCH_MAX_BYTES", "FIREWATCH_MAX_PIXELS", "FIREWATCH_MODEL_PATH", "AWS_ENDPOINT_URL", "AWS_PROFILE",
             "FIREWATCH_BUCKET", "FIREWATCH_RESULTS_TTL_DAYS")
    for name in unset:
        monkeypatch.delenv(name, raising=False)
    from lambda_image import handler

    # Powertools' log handler holds the stream it found at import; invoke() points it at the captured stdout.
    monkeypatch.setattr(handler.logger.registered_handler, "stream", handler.logger.registered_handler.stream)
    with mock_aws():
        # The handler keeps its clients and model per execution environment; each test is a fresh one.
        for cached in (handler._s3, handler._sns, handler._dynamodb, handler.classifier):
            cached.cache_clear()
        lab = Lab(capsys)
        monkeypatch.setenv("ALERT_TOPIC_ARN", lab.topic_arn)
        monkeypatch.setenv("FIREWATCH_RESULTS_TABLE", RESULTS_TABLE)
        yield lab
        for cached in (handler._s3, handler._sns, handler._dynamodb, handler.classifier):
            cached.cache_clear()


@pytest.fixture(scope="session")
def function_role_template(tmp_path_factory) -> dict:
    """The serverless stack's CloudFormation template, synthesized once per session (jsii costs seconds)."""
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    from stacks.config import FirewatchConfig
    from stacks.serverless import ServerlessStack
    from tests.infra.conftest import cdk_json_context

    app = cdk.App(outdir=str(tmp_path_factory.mktemp("cdk-serverless")), context=cdk_json_context())
    stack = ServerlessStack(app, "firewatch-test-serverless", config=FirewatchConfig.from_context(app.node.try_get_context))
    return Template.from_stack(stack).to_json()


@pytest.fixture
def iam_lab(lab, function_role_template, monkeypatch):
    """``lab``, with the handler running as the function role: exactly the statements the stack gives it, and
    moto enforcing them on every call the handler makes (moto enforces IAM only when asked)."""
    from lambda_image import handler

    role = FunctionRole.create(function_role_template, lab, monkeypatch)
    # The handler's clients pick up the role's credentials (boto3's default session caches the ones it found).
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    for cached in (handler._s3, handler._sns, handler._dynamodb):
        cached.cache_clear()
    lab.role = role
    monkeypatch.setenv("FIREWATCH_BUCKET", BUCKET)
    yield lab


def _photo_where(classifier, photos, is_fire: bool) -> bytes:
    """A photo the current model labels as asked (the interim model is imperfect, so look rather than assume)."""
    for path in photos:
        data = path.read_bytes()
        if classifier.classify(data).is_fire == is_fire:
            return data
    pytest.skip(f"the current model labels none of the sample photos {'fire' if is_fire else 'nofire'}")


@pytest.fixture
def fire_bytes(classifier, fire_photos):
    return _photo_where(classifier, fire_photos, is_fire=True)


@pytest.fixture
def nofire_bytes(classifier, nofire_photos):
    return _photo_where(classifier, nofire_photos, is_fire=False)
