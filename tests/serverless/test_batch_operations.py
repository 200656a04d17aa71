"""S3 Batch Operations invocations (schema 2.0) through the Lambda handler, against moto's S3 and SNS."""

from __future__ import annotations

from urllib.parse import quote_plus

import pytest

from lambda_image.batch_operations import is_batch_operations, parse_task

from .conftest import BUCKET, s3_event

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


def batch_event(*tasks: dict, version: str = "2.0") -> dict:
    return {
        "invocationSchemaVersion": version,
        "invocationId": "YXNkbGZqYWRmaiBhc2RmdW9hZHNmZGpmaGFzbGtkaGZza2RmaAo",
        "job": {"id": "f3cc4f60-61f6-4a2b-8a21-d07600c373ce", "userArguments": {}},
        "tasks": list(tasks),
    }


def task(task_id: str, key: str, bucket: str = BUCKET, version_id: str | None = None) -> dict:
    """A task as Batch Operations sends it: the key as the manifest holds it (URL-encoded)."""
    return {"taskId": task_id, "s3Bucket": bucket, "s3Key": quote_plus(key, safe="/"), "s3VersionId": version_id}


def codes(response: dict) -> dict[str, str]:
    return {r["taskId"]: r["resultCode"] for r in response["results"]}


def test_tasks_go_through_the_pipeline_and_get_result_codes(lab, monkeypatch, fire_bytes, nofire_bytes):
    monkeypatch.setenv("FIREWATCH_BUCKET", BUCKET)
    fire_key = "uploads/camera 1/ridge (east)+1.jpg"
    version = lab.upload(fire_key, fire_bytes)["s3"]["object"]["versionId"]
    lab.upload("uploads/forest.jpg", nofire_bytes)
    run = lab.invoke(batch_event(
        task("t-fire", fire_key, version_id=version),
        task("t-forest", "uploads/forest.jpg"),
        task("t-missing", "uploads/never-uploaded.jpg"),
        task("t-results", "results/forest.jpg.json"),
        task("t-foreign", "uploads/x.jpg", bucket="someone-elses-bucket"),
        {"taskId": "t-malformed", "s3BucketArn": f"arn:aws:s3:::{BUCKET}", "s3Key": "uploads/x.jpg"},  # schema 1.0's shape
    ))  # fmt: skip
    response = run.response
    assert response["invocationSchemaVersion"] == "2.0" and response["treatMissingKeysAs"] == "PermanentFailure"
    assert response["invocationId"] == "YXNkbGZqYWRmaiBhc2RmdW9hZHNmZGpmaGFzbGtkaGZza2RmaAo"
    assert codes(response) == {
        "t-fire": "Succeeded", "t-forest": "Succeeded", "t-missing": "PermanentFailure", "t-results": "PermanentFailure",
        "t-foreign": "PermanentFailure", "t-malformed": "PermanentFailure",
    }  # fmt: skip
    strings = {r["taskId"]: r["resultString"] for r in response["results"]}
    assert strings["t-fire"] == "classified" and "gone" in strings["t-missing"] and "s3Bucket" in strings["t-malformed"]
    assert lab.keys("results/") == ["results/camera 1/ridge (east)+1.jpg.json", "results/forest.jpg.json"]
    assert lab.result("results/camera 1/ridge (east)+1.jpg.json")["version_id"] == version
    assert [alert["key"] for alert in lab.alerts()] == [fire_key]  # the same alerting as upload events
    assert lab.indexed(fire_key)["version_id"] == version  # and the same results index item
    assert lab.indexed("uploads/forest.jpg")["label"] == "nofire"
    assert run.metric("ImagesClassified") == 2


def test_a_task_already_classified_succeeds_without_a_second_alert(lab, fire_bytes):
    lab.invoke(s3_event(lab.upload("uploads/fire.jpg", fire_bytes)))
    result = lab.result("results/fire.jpg.json")
    response = lab.invoke(batch_event(task("t1", "uploads/fire.jpg"))).response
    assert codes(response) == {"t1": "Succeeded"} and response["results"][0]["resultString"] == "duplicate"
    assert lab.result("results/fire.jpg.json") == result
    assert len(lab.alerts()) == 1


def test_an_aws_error_is_a_temporary_failure_and_the_other_tasks_go_on(lab, nofire_bytes):
    lab.upload("uploads/a.jpg", nofire_bytes)
    lab.upload("uploads/b.jpg", nofire_bytes)
    lab.fail("s3", "GetObject", "SlowDown", when=lambda params: params["Key"] == "uploads/a.jpg")
    response = lab.invoke(batch_event(task("ta", "uploads/a.jpg"), task("tb", "uploads/b.jpg"))).response
    assert codes(response) == {"ta": "TemporaryFailure", "tb": "Succeeded"}
    assert "SlowDown" in response["results"][0]["resultString"]
    assert lab.keys("results/") == ["results/b.jpg.json"]


def test_another_schema_version_is_refused_task_by_task(lab, nofire_bytes):
    lab.upload("uploads/a.jpg", nofire_bytes)
    response = lab.invoke(batch_event(task("t1", "uploads/a.jpg"), version="1.0")).response
    assert codes(response) == {"t1": "PermanentFailure"} and "2.0" in response["results"][0]["resultString"]
    assert lab.keys("results/") == []


def test_upload_events_are_not_taken_for_batch_operations():
    assert not is_batch_operations({"Records": []}) and not is_batch_operations([]) and not is_batch_operations(None)
    assert is_batch_operations(batch_event())


def test_keys_are_decoded_as_the_manifest_encodes_them():
    parsed = parse_task(task("t", "uploads/a b+c%.jpg", version_id="v9"), BUCKET)
    assert parsed.upload.key == "uploads/a b+c%.jpg" and parsed.upload.version_id == "v9"
