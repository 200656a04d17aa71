"""What every operator command needs from AWS: clients (with ``--endpoint-url`` for the local demo) and the deployed
stack's names, found in the serverless stack's outputs when not given on the command line."""

from __future__ import annotations

import argparse
import json
import os
from functools import cached_property

from inference.contract import UPLOAD_PREFIX

# Outputs of firewatch-<envName>-serverless that the commands read (stacks/serverless.py). The upload queue and its
# dead-letter queue are found from the bucket itself (its notification, then the queue's redrive policy) when the
# stack has no output for them.
UPLOAD_BUCKET_OUTPUT = "UploadBucketName"
UPLOAD_QUEUE_OUTPUT = "UploadQueueUrl"
DEAD_LETTER_QUEUE_OUTPUT = "UploadDeadLetterQueueUrl"
FUNCTION_OUTPUT = "ClassifierFunctionArn"
BATCH_ROLE_OUTPUT = "BatchOperationsRoleArn"


class OperatorError(Exception):
    """A problem the operator can fix (a missing name, a stack without the output...): printed, exit status 2."""


def add_aws_arguments(parser: argparse.ArgumentParser) -> None:
    aws = parser.add_argument_group("AWS")
    aws.add_argument("--env-name", default="dev", help="the deployment's envName, to find its stack outputs (default: dev)")
    aws.add_argument("--region", help="AWS region (default: the AWS CLI's)")
    aws.add_argument("--profile", help="AWS CLI profile (default: the AWS CLI's)")
    aws.add_argument(
        "--endpoint-url", help="a local AWS endpoint, e.g. http://127.0.0.1:4566 for `make demo` (no stack lookups)"
    )


class Aws:
    """Clients for one command run, and the stack's outputs, read once and only when a name is not given."""

    def __init__(self, args: argparse.Namespace, session=None) -> None:
        import boto3  # imported when a command runs, not for --help

        self.args = args
        self.session = session or boto3.session.Session(region_name=args.region, profile_name=args.profile)

    def client(self, service: str, pool: int = 10):
        """A client of ``service``; ``pool``: connections kept for threads that share it (botocore keeps 10)."""
        from botocore.config import Config

        config = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=pool)
        return self.session.client(service, endpoint_url=self.args.endpoint_url, config=config)

    @cached_property
    def region(self) -> str:
        return self.session.region_name or "us-east-1"

    @property
    def stack_name(self) -> str:
        return f"firewatch-{self.args.env_name}-serverless"

    @cached_property
    def outputs(self) -> dict[str, str]:
        if self.args.endpoint_url:
            raise OperatorError("with --endpoint-url there is no stack to read names from: give them on the command line")
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            stacks = self.client("cloudformation").describe_stacks(StackName=self.stack_name)["Stacks"]
        except (BotoCoreError, ClientError) as error:
            raise OperatorError(f"cannot read the outputs of stack {self.stack_name}: {error}") from error
        return {output["OutputKey"]: output["OutputValue"] for output in stacks[0].get("Outputs", [])}

    def name(self, given: str | None, output: str, option: str, env: str | None = None, find=None) -> str:
        """``given`` (the option's value), else the environment variable ``env``, else the stack output ``output``,
        else what ``find()`` finds (None: nothing)."""
        if given:
            return given
        if env and os.environ.get(env):
            return os.environ[env]
        value = None
        if find is None or not self.args.endpoint_url:  # a local endpoint has no stack: look it up there at once
            try:
                value = self.outputs.get(output)
            except OperatorError:
                if find is None:
                    raise
        if not value and find is not None:
            value = find()
        if not value:
            where = "the local endpoint" if self.args.endpoint_url else f"stack {self.stack_name} (output {output})"
            raise OperatorError(f"cannot find it in {where}: give {option}")
        return value

    def upload_queue_url(self, bucket: str) -> str | None:
        """The SQS queue the bucket notifies of new uploads (its one queue notification covering uploads/)."""
        config = self.client("s3").get_bucket_notification_configuration(Bucket=bucket)
        arns = {entry["QueueArn"] for entry in config.get("QueueConfigurations", []) if _covers_uploads(entry)}
        if len(arns) > 1:
            raise OperatorError(f"bucket {bucket} notifies {len(arns)} queues of uploads: give --queue-url")
        return queue_url_for(self.client("sqs"), arns.pop()) if arns else None

    def dead_letter_queue_url(self, queue_url: str) -> str | None:
        """The dead-letter queue of ``queue_url`` (its redrive policy's target)."""
        sqs = self.client("sqs")
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"]).get("Attributes", {})
        if "RedrivePolicy" not in attributes:
            return None
        return queue_url_for(sqs, json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"])


def queue_url_for(sqs, arn: str) -> str:
    """arn:aws:sqs:REGION:ACCOUNT:NAME -> the queue's URL."""
    _, _, _, _, account, name = arn.split(":", 5)
    return sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]


def _covers_uploads(entry: dict) -> bool:
    if not any(event.startswith("s3:ObjectCreated:") for event in entry.get("Events", [])):
        return False
    rules = entry.get("Filter", {}).get("Key", {}).get("FilterRules", [])
    prefix = next((rule["Value"] for rule in rules if rule.get("Name", "").lower() == "prefix"), "")
    return UPLOAD_PREFIX.startswith(prefix)
