"""The role S3 Batch Operations assumes to run a backfill job (``python -m ops backfill --batch-operations``): read
the job's manifest, invoke the classifier on every object it lists, write the completion report. Nothing else: the
function reads the uploads with its own role."""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.capability import Capability
from stacks.nag import acknowledge

# Under the upload bucket, beside uploads/ and results/ (neither triggers nor holds results). The ops command writes
# manifests here, an S3 Inventory report meant as a manifest goes here too, and Batch Operations writes its reports.
MANIFEST_PREFIX = "batch-operations/manifests/"
REPORT_PREFIX = "batch-operations/reports/"


class BatchOperationsRole(Capability):
    def __init__(self, scope: Construct, *, bucket: s3.IBucket, function: lambda_.IFunction) -> None:
        super().__init__(scope)
        self.role = iam.Role(
            self.scope,
            "BatchOperationsRole",
            assumed_by=iam.ServicePrincipal("batchoperations.s3.amazonaws.com"),
            description="S3 Batch Operations backfill jobs: read the manifest, invoke the classifier, write the report",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:GetObjectVersion"], resources=[bucket.arn_for_objects(f"{MANIFEST_PREFIX}*")]
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[bucket.arn_for_objects(f"{REPORT_PREFIX}*")])
        )
        self.role.add_to_policy(iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[function.function_arn]))
        stack = Stack.of(self.scope)
        for prefix, what in ((MANIFEST_PREFIX, "the job manifests"), (REPORT_PREFIX, "the completion reports")):
            acknowledge(
                self.role,
                f"AwsSolutions-IAM5[Resource::<{stack.get_logical_id(bucket.node.default_child)}.Arn>/{prefix}*]",
                f"Object access is limited to {what} under {prefix} of the one upload bucket; job ids name them.",
            )
        CfnOutput(
            self.scope, "BatchOperationsRoleArn", value=self.role.role_arn,
            description="Role for S3 Batch Operations backfill jobs (python -m ops backfill --batch-operations)",
        )  # fmt: skip
