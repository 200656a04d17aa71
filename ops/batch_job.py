"""``python -m ops backfill --batch-operations``: an S3 Batch Operations job that invokes the classifier on every
upload, for archives too large to enqueue from one machine. S3 reads the manifest, calls the function with
invocation schema 2.0 (``lambda_image/batch_operations.py``), retries temporary failures, and writes a completion
report of the failed tasks under ``batch-operations/reports/``.

The manifest is a CSV of ``bucket,key`` lines written under ``batch-operations/manifests/`` (listing costs one LIST
request per 1,000 objects), or an S3 Inventory report's ``manifest.json`` (``--inventory-manifest``), which costs no
listing at all. The job's role may read manifests only under that prefix: point the inventory's destination there.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import uuid
from datetime import datetime, timezone
from urllib.parse import quote, urlparse

from .aws import BATCH_ROLE_OUTPUT, FUNCTION_OUTPUT, Aws, OperatorError
from .backfill import has_result, list_uploads

# Copies of stacks/batch_operations.py's prefixes (the role's grants); tests/ops holds them equal.
MANIFEST_PREFIX = "batch-operations/manifests/"
REPORT_PREFIX = "batch-operations/reports/"
CSV_MANIFEST_FORMAT = "S3BatchOperations_CSV_20180820"
INVENTORY_MANIFEST_FORMAT = "S3InventoryReport_CSV_20161130"
INVOCATION_SCHEMA_VERSION = "2.0"
JOB_PRIORITY = 10


def run_batch_operations(args: argparse.Namespace, aws: Aws, bucket: str) -> int:
    s3 = aws.client("s3")
    if args.dry_run and not args.inventory_manifest:
        count = sum(len(page) for page in list_uploads(s3, bucket, args.start_after, args.max_objects))
        print(json.dumps({"would_list_in_manifest": count}))
        return 0
    function_arn = aws.name(args.function_arn, FUNCTION_OUTPUT, "--function-arn")
    role_arn = aws.name(args.role_arn, BATCH_ROLE_OUTPUT, "--role-arn")
    if args.inventory_manifest:
        manifest = inventory_manifest(s3, args.inventory_manifest)
    else:
        manifest = write_csv_manifest(s3, bucket, start_after=args.start_after, max_objects=args.max_objects,
                                      skip_done=args.skip_done)  # fmt: skip
    account = re.match(r"^arn:aws[a-z-]*:iam::(\d{12}):role/", role_arn)
    if account is None:
        raise OperatorError(f"--role-arn {role_arn!r} is not an IAM role ARN")
    request = create_job_request(account[1], bucket, function_arn, role_arn, manifest)
    if not args.start:
        print(json.dumps(request, indent=2))
        print("create it with --start, or: aws s3control create-job --cli-input-json file://job.json", file=sys.stderr)
        return 0
    job_id = aws.client("s3control").create_job(**request)["JobId"]
    print(json.dumps({"JobId": job_id, "reports": f"s3://{bucket}/{REPORT_PREFIX}"}))
    print(f"follow it with: aws s3control describe-job --account-id {request['AccountId']} --job-id {job_id}", file=sys.stderr)
    return 0


def write_csv_manifest(s3, bucket: str, *, start_after: str = "", max_objects: int | None = None,
                       skip_done: bool = False, now=None) -> dict:  # fmt: skip
    """List the uploads into a CSV manifest in the bucket; the job's ``Manifest`` (spec and location)."""
    from tqdm import tqdm

    key = f"{MANIFEST_PREFIX}backfill-{(now or datetime.now(timezone.utc)).strftime('%Y%m%dT%H%M%SZ')}.csv"
    count = 0
    with tempfile.NamedTemporaryFile("w+", encoding="utf-8", suffix=".csv") as csv, \
            tqdm(desc="manifest", unit=" objects", file=sys.stderr, dynamic_ncols=True) as bar:  # fmt: skip
        for page in list_uploads(s3, bucket, start_after, max_objects):
            for obj in page:
                if skip_done and has_result(s3, bucket, obj):
                    continue
                # Keys URL-encoded, as the manifest format asks ('%20' for a space, so '+' stays unambiguous).
                csv.write(f"{bucket},{quote(obj['Key'], safe='/')}\n")
                count += 1
            bar.update(len(page))
        csv.flush()
        s3.upload_file(csv.name, bucket, key)
    etag = s3.head_object(Bucket=bucket, Key=key)["ETag"]
    print(f"manifest: s3://{bucket}/{key} ({count} objects)", file=sys.stderr)
    return {
        "Spec": {"Format": CSV_MANIFEST_FORMAT, "Fields": ["Bucket", "Key"]},
        "Location": {"ObjectArn": f"arn:aws:s3:::{bucket}/{key}", "ETag": etag.strip('"')},
    }


def inventory_manifest(s3, uri: str) -> dict:
    """The job's ``Manifest`` for an S3 Inventory report's manifest.json at ``s3://bucket/key``."""
    parsed = urlparse(uri)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    if parsed.scheme != "s3" or not bucket or not key.endswith("manifest.json"):
        raise OperatorError(f"--inventory-manifest {uri!r} is not s3://BUCKET/.../manifest.json")
    if not key.startswith(MANIFEST_PREFIX):
        print(f"note: the job's role reads manifests under {MANIFEST_PREFIX} only", file=sys.stderr)
    etag = s3.head_object(Bucket=bucket, Key=key)["ETag"]
    return {
        "Spec": {"Format": INVENTORY_MANIFEST_FORMAT},
        "Location": {"ObjectArn": f"arn:aws:s3:::{bucket}/{key}", "ETag": etag.strip('"')},
    }


def create_job_request(account_id: str, bucket: str, function_arn: str, role_arn: str, manifest: dict) -> dict:
    """The s3control CreateJob request (also the AWS CLI's --cli-input-json)."""
    return {
        "AccountId": account_id,
        "ConfirmationRequired": False,
        "Operation": {
            "LambdaInvoke": {"FunctionArn": function_arn, "InvocationSchemaVersion": INVOCATION_SCHEMA_VERSION}
        },
        "Manifest": manifest,
        "Report": {
            "Bucket": f"arn:aws:s3:::{bucket}",
            "Prefix": REPORT_PREFIX.rstrip("/"),
            "Format": "Report_CSV_20180820",
            "Enabled": True,
            "ReportScope": "FailedTasksOnly",
        },
        "Priority": JOB_PRIORITY,
        "RoleArn": role_arn,
        "ClientRequestToken": str(uuid.uuid4()),
        "Description": f"Firewatch backfill of s3://{bucket}/uploads/",
    }
