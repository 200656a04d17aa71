"""What every operator command needs from AWS: clients (with ``--endpoint-url`` for the local demo) and the deployed
stack's names, found in the serverless stack's outputs when not given on the command line."""

from __future__ import annotations

import argparse
import os
from functools import cached_property

# Outputs of firewatch-<envName>-serverless that the commands read (stacks/serverless.py and the queue's module).
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
    aws.add_argument(
        "--endpoint-url", help="a local AWS endpoint, e.g. http://127.0.0.1:4566 for `make demo` (no stack lookups)"
    )


class Aws:
    """Clients for one command run, and the stack's outputs, read once and only when a name is not given."""

    def __init__(self, args: argparse.Namespace, session=None) -> None:
        import boto3  # imported when a command runs, not for --help

        self.args = args
        self.session = session or boto3.session.Session(region_name=args.region)

    def client(self, service: str):
        return self.session.client(service, endpoint_url=self.args.endpoint_url)

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

    def name(self, given: str | None, output: str, option: str, env: str | None = None) -> str:
        """``given`` (the option's value), else the environment variable ``env``, else the stack output ``output``."""
        if given:
            return given
        if env and os.environ.get(env):
            return os.environ[env]
        value = self.outputs.get(output)
        if not value:
            raise OperatorError(f"stack {self.stack_name} has no output {output}: give {option}")
        return value
