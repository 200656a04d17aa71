"""The Lambda entry point: S3 ``ObjectCreated`` events under ``uploads/`` -> ``results/<key>.json`` and fire alerts.

Thin on purpose: parse the event, hand its uploads to :mod:`lambda_image.pipeline` (one model call for all of
them), count and log. Two kinds of event arrive:

- **An SQS batch** from the upload queue, each message body an S3 notification. The answer is
  ``{"batchItemFailures": [...]}``: only the messages that failed are delivered again, never their neighbours.
- **A plain S3 notification** (a direct or hand-made invocation). Every record is processed on its own: a
  malformed one, or one from a bucket other than ``FIREWATCH_BUCKET``, is reported and skipped; an upload whose
  processing fails (an AWS error) does not stop the others, and the invocation then raises so that Lambda retries
  the event (the uploads already done find their results and do nothing) and, after its retries, sends it to the
  function's on-failure destination with the error.
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from typing import Callable

import boto3
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.config import Config

from inference import Classifier

from .alerts import ALERT_TOPIC_ENV, publish_fire_alert
from .batch_operations import handle_batch_operations, is_batch_operations
from .events import IGNORED, MALFORMED, REFUSED, Skipped, Upload, configured_bucket, parse_event, parse_message_body
from .pipeline import (
    ALERT_RETRIED, CLASSIFIED, DUPLICATE, GONE, INVALID, STALE, Job, OutOfTime, Publish, process_uploads,
)  # fmt: skip
from .results_index import ResultsIndex
from .storage import Bucket
from .telemetry import count_batch_failures, count_rejected, logger, metrics

SKIPPED, FAILED = "skipped", "failed"
SUMMARY = (CLASSIFIED, INVALID, DUPLICATE, ALERT_RETRIED, STALE, GONE, SKIPPED, REFUSED, MALFORMED, FAILED)
_SKIP_STATUS = {IGNORED: SKIPPED, REFUSED: REFUSED, MALFORMED: MALFORMED}

# Standard retry mode backs off on throttling and 5xx before an error reaches Lambda's own retries; short socket
# timeouts (botocore's default is 60 s) keep a stuck call well inside the function's timeout.
_AWS_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=15)
# Time a queue batch keeps back once it stops starting decodes: the costliest photo within the limits takes about
# 3-5 s to decode at 1,024 MB (README, costly inputs), then come the model call and up to 10 results' writes.
TIME_RESERVE_MS = 10_000


class UploadsFailed(RuntimeError):
    """Some uploads of the event could not be processed; the message names each one and its error."""


class MessageFailed(RuntimeError):
    """An upload queue message to deliver again: the message names each failed upload, or why the body is malformed."""


@functools.cache
def classifier() -> Classifier:
    """The model, loaded once per execution environment (on first use) and reused by every invocation."""
    clf = Classifier.load()
    logger.info("Model loaded", extra={"model_version": clf.version, "threshold": clf.threshold})
    return clf


@functools.cache
def _s3():
    return boto3.client("s3", config=_AWS_CONFIG)


@functools.cache
def _sns():
    return boto3.client("sns", config=_AWS_CONFIG)


@functools.cache
def _dynamodb():
    return boto3.client("dynamodb", config=_AWS_CONFIG)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict, context) -> dict:
    if is_batch_operations(event):  # an S3 Batch Operations job (python -m ops backfill --batch-operations)
        return handle_batch_operations(event, classifier(), lambda name: Bucket(_s3(), name), _publisher(),
                                       configured_bucket(), ResultsIndex.from_env(_dynamodb))  # fmt: skip
    if is_queue_batch(event):
        return handle_queue_batch(event, classifier(), context)
    return handle_event(event, classifier())


def is_queue_batch(event: object) -> bool:
    """Whether ``event`` is a batch of SQS messages (from the upload queue's event source mapping)."""
    records = event.get("Records") if isinstance(event, dict) else None
    return bool(records) and isinstance(records, list) and all(
        isinstance(record, dict) and record.get("eventSource") == "aws:sqs" for record in records
    )


def handle_event(event: dict, clf: Classifier) -> dict:
    """Process every record of ``event`` with ``clf``; returns how many records ended which way."""
    counts: Counter[str] = Counter()
    uploads: list[Upload] = []
    for item in parse_event(event, configured_bucket()):
        if isinstance(item, Skipped):
            _report_skipped(item)
            counts[_SKIP_STATUS[item.kind]] += 1
        else:
            uploads.append(item)
    failures = [f"{upload.uri}: {failure}" for upload, failure in _process(uploads, clf, counts) if failure]
    summary = {name: counts[name] for name in SUMMARY}
    logger.info("Event processed", extra=summary)
    if failures:
        raise UploadsFailed(f"{len(failures)} upload(s) failed: " + "; ".join(failures))
    return summary


def handle_queue_batch(event: dict, clf: Classifier, context=None) -> dict:
    """Process an SQS batch whose message bodies are S3 notifications; returns the messages to deliver again.

    A message fails when one of its uploads failed (an AWS error: the redelivery finds the uploads already done and
    does nothing for them) or when its body is malformed (not JSON, not an S3 notification, or a record that is not
    one). A malformed body is failed, not dropped, although retrying cannot fix it: after the queue's
    ``maxReceiveCount`` receives it lands in the queue's dead-letter queue, whose alarm calls an operator, with the
    body intact to read and, once the cause is fixed (a producer, or this parser), to redrive. Dropped, it would
    leave only a log line and a metric, and the uploads it named would have no result. Records from another bucket
    and records not meant for this function are skipped, as in a plain event: no redelivery changes them.
    """
    counts: Counter[str] = Counter()
    reasons: dict[str, list[str]] = {}
    uploads: list[Upload] = []
    owners: list[str] = []  # the message each upload came from
    for message in (SQSRecord(record) for record in event["Records"]):
        reasons[message.message_id] = []
        for item in parse_message_body(message.body, configured_bucket()):
            if isinstance(item, Skipped):
                _report_skipped(item, message_id=message.message_id)
                counts[_SKIP_STATUS[item.kind]] += 1
                if item.kind == MALFORMED:
                    reasons[message.message_id].append(f"malformed: {item.reason}")
            else:
                uploads.append(item)
                owners.append(message.message_id)
    for owner, (upload, failure) in zip(owners, _process(uploads, clf, counts, _time_guard(context))):
        if failure:
            reasons[owner].append(f"{upload.uri}: {failure}")

    def report(record: SQSRecord) -> None:  # Powertools turns each raise into a batch item failure
        if reasons[record.message_id]:
            raise MessageFailed("; ".join(reasons[record.message_id]))

    # The model takes the whole batch in one call, so the batch is processed above; Powertools then reports each
    # message's outcome in Lambda's partial-batch response (every message failed is a response too, not an error).
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    response = process_partial_response(event=event, record_handler=report, processor=processor, context=context)
    failed = len(response.get("batchItemFailures", []))
    count_batch_failures(failed)
    logger.info("Batch processed", extra={**{name: counts[name] for name in SUMMARY}, "messages": len(reasons),
                                          "failed_messages": failed})  # fmt: skip
    return response


def _time_guard(context) -> Callable[[], bool] | None:
    """Whether the batch should start no more decodes: a third of the time left at its start (at most
    TIME_RESERVE_MS) is kept for the decode under way, the model call and the writes of the results."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    reserve_ms = min(TIME_RESERVE_MS, remaining() / 3)
    return lambda: remaining() < reserve_ms


def _process(
    uploads: list[Upload], clf: Classifier, counts: Counter[str], out_of_time: Callable[[], bool] | None = None
) -> list[tuple[Upload, str | None]]:
    """Process ``uploads`` together; each with ``None`` or what failed it (also counted and logged)."""
    jobs = [Job(upload, Bucket(_s3(), upload.bucket)) for upload in uploads]
    index = ResultsIndex.from_env(_dynamodb)
    failures: list[tuple[Upload, str | None]] = []
    for upload, ending in zip(uploads, process_uploads(jobs, clf, _publisher(), index, out_of_time)):
        if isinstance(ending, Exception):
            where = {"bucket": upload.bucket, "key": upload.key}
            if isinstance(ending, OutOfTime):  # not an error: the redelivery classifies it
                logger.warning("Upload left to a redelivery: the invocation ran short of time", extra=where)
            else:
                logger.error("Upload failed; it will be retried", exc_info=ending, extra=where)
            counts[FAILED] += 1
            failures.append((upload, f"{type(ending).__name__}: {ending}"))
        else:
            counts[ending] += 1
            failures.append((upload, None))
    return failures


def _publisher() -> Publish | None:
    topic_arn = os.environ.get(ALERT_TOPIC_ENV)
    if not topic_arn:
        return None

    def publish(message: dict) -> str:
        return publish_fire_alert(_sns(), topic_arn, message)  # the SNS client is made on the first fire only

    return publish


def _report_skipped(item: Skipped, **context) -> None:
    details = {"reason": item.reason, "event_name": item.event_name, "bucket": item.bucket, "key": item.key, **context}
    if item.kind == IGNORED:
        logger.info("Record skipped", extra=details)
    else:
        logger.warning(f"Record {item.kind}", extra=details)
        count_rejected(item.kind)
