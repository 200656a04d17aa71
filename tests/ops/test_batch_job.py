"""``python -m ops backfill --batch-operations``: the manifest in the bucket and the CreateJob request (moto's S3;
botocore's Stubber for s3control, which moto does not serve)."""

from __future__ import annotations

import json

import boto3
from botocore.stub import ANY, Stubber

import ops.batch_job as batch_job
from ops.aws import Aws

from .conftest import BUCKET, REGION, ops

FUNCTION_ARN = f"arn:aws:lambda:{REGION}:123456789012:function:firewatch-dev-Classifier"
ROLE_ARN = "arn:aws:iam::123456789012:role/firewatch-dev-serverless-BatchOperationsRole"
NAMES = ("--bucket", BUCKET, "--function-arn", FUNCTION_ARN, "--role-arn", ROLE_ARN)


def test_the_job_invokes_the_function_with_schema_2_on_a_manifest_of_every_upload(account, capsys):
    account.upload("uploads/a b+c.jpg")
    account.upload("uploads/d.jpg")
    account.s3.put_object(Bucket=BUCKET, Key="results/d.jpg.json", Body=b"{}")
    assert ops("backfill", "--batch-operations", *NAMES) == 0
    request = json.loads(capsys.readouterr().out)

    assert request["Operation"] == {"LambdaInvoke": {"FunctionArn": FUNCTION_ARN, "InvocationSchemaVersion": "2.0"}}
    assert request["AccountId"] == "123456789012" and request["RoleArn"] == ROLE_ARN
    assert request["Report"]["Bucket"] == f"arn:aws:s3:::{BUCKET}" and request["Report"]["Prefix"] == "batch-operations/reports"
    location = request["Manifest"]["Location"]
    key = location["ObjectArn"].removeprefix(f"arn:aws:s3:::{BUCKET}/")
    assert key.startswith("batch-operations/manifests/backfill-") and key.endswith(".csv")
    head = account.s3.head_object(Bucket=BUCKET, Key=key)
    assert location["ETag"] == head["ETag"].strip('"')
    assert request["Manifest"]["Spec"] == {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]}
    lines = account.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode().splitlines()
    assert lines == [f"{BUCKET},uploads/a%20b%2Bc.jpg", f"{BUCKET},uploads/d.jpg"]  # URL-encoded, results left out


def test_skip_done_leaves_classified_uploads_out(account, capsys):
    account.upload("uploads/a.jpg")
    account.put_result("uploads/b.jpg", account.upload("uploads/b.jpg"))
    assert ops("backfill", "--batch-operations", "--skip-done", *NAMES) == 0
    key = json.loads(capsys.readouterr().out)["Manifest"]["Location"]["ObjectArn"].split("/", 1)[1]
    assert account.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode().splitlines() == [f"{BUCKET},uploads/a.jpg"]


def test_an_inventory_report_is_a_manifest_without_listing(account, capsys):
    manifest_key = "batch-operations/manifests/inventory/firewatch/daily/2026-03-10T01-00Z/manifest.json"
    account.s3.put_object(Bucket=BUCKET, Key=manifest_key, Body=b'{"files": []}')
    uri = f"s3://{BUCKET}/{manifest_key}"
    assert ops("backfill", "--batch-operations", "--inventory-manifest", uri, *NAMES) == 0
    manifest = json.loads(capsys.readouterr().out)["Manifest"]
    assert manifest["Spec"] == {"Format": "S3InventoryReport_CSV_20161130"}
    assert manifest["Location"]["ObjectArn"] == f"arn:aws:s3:::{BUCKET}/{manifest_key}"
    assert ops("backfill", "--batch-operations", "--inventory-manifest", "s3://b/not-a-manifest.csv", *NAMES) == 2


def test_start_creates_the_job(account, capsys, monkeypatch):
    account.upload("uploads/a.jpg")
    s3control = boto3.client("s3control", region_name=REGION)
    stubber = Stubber(s3control)
    expected = {"AccountId": "123456789012", "ConfirmationRequired": False, "Operation": ANY, "Manifest": ANY,
                "Report": ANY, "Priority": 10, "RoleArn": ROLE_ARN, "ClientRequestToken": ANY, "Description": ANY}  # fmt: skip
    stubber.add_response("create_job", {"JobId": "job-0123"}, expected)
    real_client = Aws.client
    monkeypatch.setattr(
        Aws, "client", lambda self, name, **options: s3control if name == "s3control" else real_client(self, name, **options)
    )
    with stubber:
        assert ops("backfill", "--batch-operations", "--start", *NAMES) == 0
        stubber.assert_no_pending_responses()
    assert json.loads(capsys.readouterr().out)["JobId"] == "job-0123"


def test_dry_run_counts_and_writes_nothing(account, capsys):
    account.upload("uploads/a.jpg")
    assert ops("backfill", "--batch-operations", "--dry-run", "--bucket", BUCKET) == 0
    assert json.loads(capsys.readouterr().out) == {"would_list_in_manifest": 1}
    assert account.s3.list_objects_v2(Bucket=BUCKET, Prefix="batch-operations/").get("KeyCount") == 0


def test_the_prefixes_are_those_the_role_grants():
    from stacks import batch_operations

    copies = (batch_job.MANIFEST_PREFIX, batch_job.REPORT_PREFIX)
    assert copies == (batch_operations.MANIFEST_PREFIX, batch_operations.REPORT_PREFIX)


def test_a_role_arn_that_is_not_one_is_a_clear_error(account, capsys):
    account.upload("uploads/a.jpg")
    assert ops("backfill", "--batch-operations", "--bucket", BUCKET, "--function-arn", FUNCTION_ARN,
               "--role-arn", "BatchOperationsRole") == 2  # fmt: skip
    assert "is not an IAM role ARN" in capsys.readouterr().err
