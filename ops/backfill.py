"""Classify what is already in the bucket: every object under uploads/ without a result of its own version goes to
the upload queue, as the S3 notification S3 would have sent for it (``--batch-operations``: an S3 Batch Operations job
for archives of millions of objects instead).

An object is done when ``results/<key>.json`` exists and names the object's current ETag: the result object is the
durable record the function itself checks, results written before the results index existed are only there, and
index items may expire (TTL) while results stay. Checking costs one small GET per object, read in parallel.
Idempotent: a second run finds the results of the first and enqueues only what is still missing. Resumable: it
prints the last key done, and ``--start-after KEY`` goes on from there.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterator
from urllib.parse import quote_plus

from inference.contract import UPLOAD_PREFIX, UPLOAD_QUEUE_ENV, result_key_for

from .aws import UPLOAD_BUCKET_OUTPUT, UPLOAD_QUEUE_OUTPUT, Aws, add_aws_arguments

PAGE_SIZE = 1000  # keys per LIST request (S3's most)
BATCH_SIZE = 10  # entries per SendMessageBatch (SQS's most)
SEND_ATTEMPTS = 4  # a failed entry is sent again this many times in all, with backoff, before it is reported
CHECK_THREADS = 16
EVENT_NAME = "ObjectCreated:Put"  # what the function's parser accepts; the record says where it came from


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bucket", help="the upload bucket (default: the stack's UploadBucketName output)")
    parser.add_argument(
        "--queue-url",
        help=f"the upload queue (default: ${UPLOAD_QUEUE_ENV}, else the stack's {UPLOAD_QUEUE_OUTPUT} output, else the "
        "queue the bucket notifies of uploads)",
    )
    parser.add_argument("--start-after", metavar="KEY", default="", help="resume after this key (printed by an earlier run)")
    parser.add_argument("--dry-run", action="store_true", help="count what would be enqueued; send nothing")
    parser.add_argument("--max-objects", type=int, metavar="N", help="stop after listing N objects (try it on a few first)")
    batch = parser.add_argument_group("S3 Batch Operations (archives of millions of objects)")
    batch.add_argument(
        "--batch-operations", action="store_true",
        help="print the S3 Batch Operations job that invokes the function on every upload (a CSV manifest is written "
        "to the bucket, unless --inventory-manifest is given); --start creates it",
    )  # fmt: skip
    batch.add_argument("--start", action="store_true", help="create the job (s3control CreateJob), not just print it")
    batch.add_argument(
        "--inventory-manifest", metavar="S3_URI", help="an S3 Inventory report's manifest.json as the job's manifest"
    )
    batch.add_argument("--skip-done", action="store_true", help="leave objects that have a result out of the CSV manifest")
    batch.add_argument("--function-arn", help="the classifier (default: the stack's ClassifierFunctionArn output)")
    batch.add_argument("--role-arn", help="the role the job runs as (default: the stack's BatchOperationsRoleArn output)")
    add_aws_arguments(parser)


@dataclass
class Progress:
    listed: int = 0
    done: int = 0  # already had a result of their current version
    enqueued: int = 0
    failed: list[dict] = field(default_factory=list)  # {"key", "code", "message"} of entries SQS kept refusing
    last_key: str = ""  # every key up to this one is dealt with

    def summary(self, dry_run: bool) -> dict:
        return {"listed": self.listed, "already_classified": self.done,
                ("would_enqueue" if dry_run else "enqueued"): self.enqueued, "failed": len(self.failed),
                "last_key": self.last_key}  # fmt: skip


def run(args: argparse.Namespace) -> int:
    aws = Aws(args)
    bucket = aws.name(args.bucket, UPLOAD_BUCKET_OUTPUT, "--bucket")
    if args.batch_operations:
        from .batch_job import run_batch_operations

        return run_batch_operations(args, aws, bucket)
    queue_url = None if args.dry_run else aws.name(
        args.queue_url, UPLOAD_QUEUE_OUTPUT, "--queue-url", UPLOAD_QUEUE_ENV, find=lambda: aws.upload_queue_url(bucket)
    )
    from botocore.exceptions import BotoCoreError, ClientError

    progress = Progress(last_key=args.start_after)
    try:
        sqs = aws.client("sqs") if queue_url else None
        backfill(aws.client("s3", pool=CHECK_THREADS), sqs, bucket, queue_url, aws.region, progress,
                 start_after=args.start_after, max_objects=args.max_objects)  # fmt: skip
    except (KeyboardInterrupt, BotoCoreError, ClientError) as error:
        stopped = "interrupted" if isinstance(error, KeyboardInterrupt) else f"stopped: {error}"
        print(f"\n{stopped}; resume with --start-after {json.dumps(progress.last_key)}", file=sys.stderr)
        print(json.dumps(progress.summary(args.dry_run)))
        return 130 if isinstance(error, KeyboardInterrupt) else 1
    for failure in progress.failed:
        print(f"not enqueued: {failure['key']}: {failure['code']}: {failure['message']}", file=sys.stderr)
    print(f"last key done: {progress.last_key or '(none)'}", file=sys.stderr)
    print(json.dumps(progress.summary(args.dry_run)))
    return 1 if progress.failed else 0


def backfill(s3, sqs, bucket: str, queue_url: str | None, region: str, progress: Progress, *,
             start_after: str = "", max_objects: int | None = None) -> Progress:  # fmt: skip
    """Enqueue every upload of ``bucket`` after ``start_after`` that has no result of its version (``sqs`` None:
    count only). ``progress`` is updated as it goes, so an interrupted run still says where it got to."""
    from tqdm import tqdm

    with tqdm(desc="backfill", unit=" objects", file=sys.stderr, dynamic_ncols=True) as bar, \
            ThreadPoolExecutor(max_workers=CHECK_THREADS) as pool:  # fmt: skip
        for page in list_uploads(s3, bucket, start_after, max_objects):
            todo = [obj for obj, done in zip(page, pool.map(lambda obj: has_result(s3, bucket, obj), page)) if not done]
            for start in range(0, len(todo), BATCH_SIZE):
                batch = todo[start : start + BATCH_SIZE]
                failed = [] if sqs is None else send_batch(
                    sqs, queue_url, [notification_body(bucket, obj, region) for obj in batch], [obj["Key"] for obj in batch]
                )  # fmt: skip
                progress.failed += failed
                progress.enqueued += len(batch) - len(failed)
            progress.listed += len(page)
            progress.done += len(page) - len(todo)
            progress.last_key = page[-1]["Key"]
            bar.update(len(page))
            bar.set_postfix(enqueued=progress.enqueued, classified=progress.done, failed=len(progress.failed))
    return progress


def list_uploads(s3, bucket: str, start_after: str = "", max_objects: int | None = None) -> Iterator[list[dict]]:
    """Pages of objects under uploads/ (folders' placeholder keys left out), in key order, after ``start_after``."""
    request = {"Bucket": bucket, "Prefix": UPLOAD_PREFIX, "PaginationConfig": {"PageSize": PAGE_SIZE}}
    if start_after:
        request["StartAfter"] = start_after
    if max_objects is not None:
        request["PaginationConfig"]["MaxItems"] = max_objects
    for page in s3.get_paginator("list_objects_v2").paginate(**request):
        objects = [obj for obj in page.get("Contents", []) if not obj["Key"].endswith("/")]
        if objects:
            yield objects


def has_result(s3, bucket: str, obj: dict) -> bool:
    """Whether ``results/<key>.json`` exists and is the result of this version of the object (same ETag)."""
    from botocore.exceptions import ClientError

    try:
        body = s3.get_object(Bucket=bucket, Key=result_key_for(obj["Key"]))["Body"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return False
        raise
    with body:
        data = body.read(64 * 1024)
    try:
        record = json.loads(data)
    except ValueError:
        return False  # not a result: let the function write one
    if not isinstance(record, dict) or not isinstance(record.get("etag"), str):
        return False  # not a result: let the function write one
    return record["etag"].strip('"') == obj.get("ETag", "").strip('"')


def notification_body(bucket: str, obj: dict, region: str) -> str:
    """The S3 event notification S3 would have sent for ``obj`` (the contract's queue message), without a sequencer:
    the function then orders it by arrival, and a result of the same ETag makes it a duplicate."""
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": now,
        "eventName": EVENT_NAME,
        "userIdentity": {"principalId": "firewatch-backfill"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "firewatch-backfill",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            # Keys are URL-encoded in notifications ('+' for a space); the function decodes them.
            "object": {"key": quote_plus(obj["Key"], safe="/"), "size": obj.get("Size", 0),
                       "eTag": obj.get("ETag", "").strip('"')},  # fmt: skip
        },
    }
    return json.dumps({"Records": [record]}, separators=(",", ":"))


def send_batch(sqs, queue_url: str, bodies: list[str], keys: list[str], sleep=time.sleep) -> list[dict]:
    """Send up to 10 bodies in one SendMessageBatch. Entries SQS fails on its side are sent again, with backoff, up to
    SEND_ATTEMPTS times in all; entries refused as the sender's fault are not. Returns the entries that never went,
    each with SQS's reason."""
    pending = {str(i): (body, key) for i, (body, key) in enumerate(zip(bodies, keys))}
    last_error: dict[str, dict] = {}
    given_up: list[dict] = []
    for attempt in range(SEND_ATTEMPTS):
        if not pending:
            break
        if attempt:
            sleep(min(2.0, 0.2 * 2**attempt))
        entries = [{"Id": entry_id, "MessageBody": body} for entry_id, (body, _) in pending.items()]
        response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        for entry in response.get("Successful", []):
            pending.pop(entry["Id"], None)
        for entry in response.get("Failed", []):
            key = pending[entry["Id"]][1]
            reason = {"key": key, "code": entry.get("Code", ""), "message": entry.get("Message", "")}
            if entry.get("SenderFault"):
                given_up.append(reason)  # sending it again cannot help
                del pending[entry["Id"]]
            else:
                last_error[entry["Id"]] = reason
    unanswered = {"code": "NotSent", "message": "SQS answered neither success nor failure"}
    return given_up + [last_error.get(entry_id, {"key": key, **unanswered}) for entry_id, (_, key) in pending.items()]
