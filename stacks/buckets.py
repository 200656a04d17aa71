"""S3 buckets with the project's baseline: no public access, encryption at rest, TLS-only, owner-enforced objects."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.capability import Capability

# What every bucket of the project has.
BASELINE = dict(
    block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
    encryption=s3.BucketEncryption.S3_MANAGED,
    enforce_ssl=True,
    object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
    removal_policy=RemovalPolicy.RETAIN,
)


def log_bucket(scope: Construct, construct_id: str, *, expire_after_days: int = 365) -> s3.Bucket:
    """A bucket that receives S3 server access logs (SSE-S3: server access logging cannot write to SSE-KMS buckets)."""
    return s3.Bucket(
        scope,
        construct_id,
        **BASELINE,
        lifecycle_rules=[s3.LifecycleRule(id="expire-logs", expiration=Duration.days(expire_after_days))],
    )


def data_bucket(scope: Construct, construct_id: str, *, access_logs: s3.IBucket, noncurrent_days: int = 30) -> s3.Bucket:
    """A versioned data bucket that logs its access to ``access_logs`` and expires old object versions."""
    return s3.Bucket(
        scope,
        construct_id,
        **BASELINE,
        versioned=True,
        server_access_logs_bucket=access_logs,
        server_access_logs_prefix=f"s3/{construct_id}/",
        lifecycle_rules=[
            s3.LifecycleRule(
                id="expire-old-versions",
                noncurrent_version_expiration=Duration.days(noncurrent_days),
                expired_object_delete_marker=True,
            ),
            s3.LifecycleRule(id="abort-incomplete-uploads", abort_incomplete_multipart_upload_after=Duration.days(7)),
        ],
    )



class UploadStore(Capability):
    """The upload bucket (``uploads/`` in, ``results/`` out) and the bucket its access logs go to."""

    def __init__(self, scope: Construct) -> None:
        super().__init__(scope)
        self.access_logs = log_bucket(self.scope, "AccessLogs")
        self.bucket = data_bucket(self.scope, "Uploads", access_logs=self.access_logs)
