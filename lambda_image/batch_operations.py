"""S3 Batch Operations invocations (schema 2.0) -> the same pipeline as upload events -> one result code per task.

A Batch Operations job (``python -m ops backfill --batch-operations``) invokes the function synchronously with
``{"invocationSchemaVersion": "2.0", "invocationId", "job", "tasks": [{"taskId", "s3Bucket", "s3Key",
"s3VersionId"}]}`` and reads back a result code per task for its completion report:

- ``Succeeded``: classified, already classified, or a newer version's result is in place;
- ``TemporaryFailure``: an AWS error (throttling, a timeout...) or a lost write race; Batch Operations retries it;
- ``PermanentFailure``: a task that can never succeed: not an upload, another bucket, malformed, or the object is gone.

Keys arrive URL-encoded as the manifest holds them (``+`` for a space), like S3 event keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable
from urllib.parse import unquote_plus

from botocore.exceptions import BotoCoreError, ClientError

from inference import Classifier
from inference.contract import UPLOAD_PREFIX

from .events import Upload
from .pipeline import GONE, Publish, ResultConflict, process_upload
from .results_index import ResultsIndex
from .storage import Bucket
from .telemetry import logger

SCHEMA_VERSION = "2.0"
SUCCEEDED, TEMPORARY_FAILURE, PERMANENT_FAILURE = "Succeeded", "TemporaryFailure", "PermanentFailure"


def is_batch_operations(event: object) -> bool:
    """Whether ``event`` is a Batch Operations invocation (any schema version; only 2.0 is served)."""
    return isinstance(event, dict) and "invocationSchemaVersion" in event and "tasks" in event


@dataclass(frozen=True)
class Task:
    task_id: str
    upload: Upload | None  # None: the task names no upload this function classifies
    reason: str = ""  # why, when upload is None


def parse_task(task: object, accepted_bucket: str | None) -> Task:
    if not isinstance(task, dict) or not isinstance(task.get("taskId"), str):
        return Task(str(task.get("taskId", "")) if isinstance(task, dict) else "", None, "malformed task: no taskId")
    task_id, bucket, raw_key, version = task["taskId"], task.get("s3Bucket"), task.get("s3Key"), task.get("s3VersionId")
    if not isinstance(bucket, str) or not bucket:
        return Task(task_id, None, "malformed task: no s3Bucket (invocation schema 2.0 names the bucket)")
    if not isinstance(raw_key, str) or not raw_key:
        return Task(task_id, None, "malformed task: no s3Key")
    key = unquote_plus(raw_key)
    if accepted_bucket is not None and bucket != accepted_bucket:
        return Task(task_id, None, f"bucket {bucket!r} is not the upload bucket {accepted_bucket!r}")
    if not key.startswith(UPLOAD_PREFIX) or key == UPLOAD_PREFIX or key.endswith("/"):
        return Task(task_id, None, f"{key!r} is not an object under {UPLOAD_PREFIX}")
    version_id = version if isinstance(version, str) and version else None
    return Task(task_id, Upload(bucket, key, version_id=version_id))


def handle_batch_operations(
    event: dict, clf: Classifier, bucket_for: Callable[[str], Bucket], publish: Publish | None,
    accepted_bucket: str | None, index: ResultsIndex | None = None,
) -> dict:  # fmt: skip
    """Process every task of a Batch Operations invocation; the response Batch Operations expects."""
    invocation_id = event.get("invocationId")
    version = event.get("invocationSchemaVersion")
    tasks = event.get("tasks") if isinstance(event.get("tasks"), list) else []
    if version != SCHEMA_VERSION:
        reason = f"invocation schema {version!r} is not served; create the job with InvocationSchemaVersion 2.0"
        results = [_result(parse_task(task, accepted_bucket).task_id, PERMANENT_FAILURE, reason) for task in tasks]
    else:
        results = [_run(parse_task(task, accepted_bucket), clf, bucket_for, publish, index) for task in tasks]
    logger.info("Batch Operations tasks processed", extra={
        "job_id": (event.get("job") or {}).get("id") if isinstance(event.get("job"), dict) else None,
        "codes": {code: sum(r["resultCode"] == code for r in results)
                  for code in (SUCCEEDED, TEMPORARY_FAILURE, PERMANENT_FAILURE)},
    })  # fmt: skip
    return {
        "invocationSchemaVersion": SCHEMA_VERSION,
        "treatMissingKeysAs": PERMANENT_FAILURE,
        "invocationId": invocation_id,
        "results": results,
    }


def _run(task: Task, clf: Classifier, bucket_for: Callable[[str], Bucket], publish: Publish | None,
         index: ResultsIndex | None) -> dict:  # fmt: skip
    if task.upload is None:
        logger.warning("Batch Operations task refused", extra={"task_id": task.task_id, "reason": task.reason})
        return _result(task.task_id, PERMANENT_FAILURE, task.reason)
    upload = task.upload
    try:
        outcome = process_upload(upload, clf, bucket_for(upload.bucket), publish, index)
    except (BotoCoreError, ClientError, ResultConflict) as error:
        logger.exception("Batch Operations task failed; Batch Operations retries it", extra={"key": upload.key})
        return _result(task.task_id, TEMPORARY_FAILURE, f"{type(error).__name__}: {error}")
    except Exception as error:  # noqa: BLE001  one task's bug must not cost the other tasks their result codes
        logger.exception("Batch Operations task failed", extra={"key": upload.key})
        return _result(task.task_id, PERMANENT_FAILURE, f"{type(error).__name__}: {error}")
    if outcome == GONE:
        return _result(task.task_id, PERMANENT_FAILURE, f"{upload.uri} is gone (deleted or replaced)")
    return _result(task.task_id, SUCCEEDED, outcome)


def _result(task_id: str, code: str, text: str) -> dict:
    return {"taskId": task_id, "resultCode": code, "resultString": text[:1024]}
