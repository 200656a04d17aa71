"""The Lambda entry point: S3 ``ObjectCreated`` events under ``uploads/`` -> ``results/<key>.json`` and fire alerts.

Thin on purpose: parse the event, hand each upload to :mod:`lambda_image.pipeline`, count and log. Every record is
processed on its own: a malformed one, or one from a bucket other than ``FIREWATCH_BUCKET``, is reported and
skipped; an upload whose processing fails (an AWS error) does not stop the others, and the invocation then raises so
that Lambda retries the event (the uploads already done find their results and do nothing) and, after its retries,
sends it to the function's on-failure destination with the error.
"""

from __future__ import annotations

import functools
import os
from collections import Counter

import boto3
from botocore.config import Config

from inference import Classifier

from .alerts import ALERT_TOPIC_ENV, publish_fire_alert
from .batch_operations import handle_batch_operations, is_batch_operations
from .events import IGNORED, MALFORMED, REFUSED, Skipped, configured_bucket, parse_event
from .pipeline import ALERT_RETRIED, CLASSIFIED, DUPLICATE, GONE, INVALID, STALE, Publish, process_upload
from .storage import Bucket
from .telemetry import count_rejected, logger, metrics

SKIPPED, FAILED = "skipped", "failed"
SUMMARY = (CLASSIFIED, INVALID, DUPLICATE, ALERT_RETRIED, STALE, GONE, SKIPPED, REFUSED, MALFORMED, FAILED)
_SKIP_STATUS = {IGNORED: SKIPPED, REFUSED: REFUSED, MALFORMED: MALFORMED}

# Standard retry mode backs off on throttling and 5xx before an error reaches Lambda's own retries; short socket
# timeouts (botocore's default is 60 s) keep a stuck call well inside the function's timeout.
_AWS_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=15)


class UploadsFailed(RuntimeError):
    """Some uploads of the event could not be processed; the message names each one and its error."""


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


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict, context) -> dict:
    if is_batch_operations(event):  # an S3 Batch Operations job (python -m ops backfill --batch-operations)
        return handle_batch_operations(event, classifier(), lambda name: Bucket(_s3(), name), _publisher(), configured_bucket())
    return handle_event(event, classifier())


def handle_event(event: dict, clf: Classifier) -> dict:
    """Process every record of ``event`` with ``clf``; returns how many records ended which way."""
    counts: Counter[str] = Counter()
    failures: list[str] = []
    publish = _publisher()
    for item in parse_event(event, configured_bucket()):
        if isinstance(item, Skipped):
            _report_skipped(item)
            counts[_SKIP_STATUS[item.kind]] += 1
            continue
        try:
            counts[process_upload(item, clf, Bucket(_s3(), item.bucket), publish)] += 1
        except Exception as error:  # noqa: BLE001  one upload's failure must not cost the others their turn
            logger.exception("Upload failed; the event will be retried", extra={"bucket": item.bucket, "key": item.key})
            failures.append(f"{item.uri}: {type(error).__name__}: {error}")
            counts[FAILED] += 1
    summary = {name: counts[name] for name in SUMMARY}
    logger.info("Event processed", extra=summary)
    if failures:
        raise UploadsFailed(f"{len(failures)} upload(s) failed: " + "; ".join(failures))
    return summary


def _publisher() -> Publish | None:
    topic_arn = os.environ.get(ALERT_TOPIC_ENV)
    if not topic_arn:
        return None

    def publish(message: dict) -> str:
        return publish_fire_alert(_sns(), topic_arn, message)  # the SNS client is made on the first fire only

    return publish


def _report_skipped(item: Skipped) -> None:
    details = {"reason": item.reason, "event_name": item.event_name, "bucket": item.bucket, "key": item.key}
    if item.kind == IGNORED:
        logger.info("Record skipped", extra=details)
    else:
        logger.warning(f"Record {item.kind}", extra=details)
        count_rejected(item.kind)
