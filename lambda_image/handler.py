"""The Lambda entry point: S3 ``ObjectCreated`` events under ``uploads/`` -> ``results/<key>.json``.

Thin on purpose: parse the event, fetch the object, call the inference core, write the result, count, alert.
Delivery is at least once, so a repeated event for the same object version finds the result already written
(same etag) and does nothing: no second result, no second alert. An image the core cannot read gets an error
result (no exception, so no retries); an AWS error raises, so Lambda retries and, after its retries, sends
the event to the function's on-failure destination.
"""

from __future__ import annotations

import functools
import os
import time
from collections import Counter
from datetime import datetime, timezone

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from botocore.config import Config

from inference import Classifier, InvalidImage, Prediction, outcome_record

from .alerts import ALERT_TOPIC_ENV, fire_alert, publish_fire_alert
from .events import Skipped, Upload, parse_event
from .storage import Bucket

# Named by POWERTOOLS_SERVICE_NAME and POWERTOOLS_METRICS_NAMESPACE where set (the function sets both); else these.
logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or "firewatch")
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "Firewatch")

CLASSIFIED, INVALID, DUPLICATE, GONE, SKIPPED = "classified", "invalid", "duplicate", "gone", "skipped"

# Standard retry mode backs off on throttling and 5xx before an error reaches Lambda's own retries; short socket
# timeouts (botocore's default is 60 s) keep a stuck call well inside the function's timeout.
_AWS_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=15)


@functools.cache
def classifier() -> Classifier:
    """The model, loaded once per execution environment (on first use) and reused by every invocation."""
    clf = Classifier()
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
    return handle_event(event, classifier())


def handle_event(event: dict, clf: Classifier) -> dict:
    """Process every record of ``event`` with ``clf``; returns how many records ended which way."""
    counts: Counter[str] = Counter()
    for item in parse_event(event):
        if isinstance(item, Skipped):
            logger.info("Record skipped", extra={"reason": item.reason, "event_name": item.event_name,
                                                 "bucket": item.bucket, "key": item.key})
            counts[SKIPPED] += 1
        else:
            counts[process_upload(item, clf)] += 1
    summary = {name: counts[name] for name in (CLASSIFIED, INVALID, DUPLICATE, GONE, SKIPPED)}
    logger.info("Event processed", extra=summary)
    return summary


def process_upload(upload: Upload, clf: Classifier) -> str:
    bucket = Bucket(_s3())
    where = {"bucket": upload.bucket, "key": upload.key}
    opened = bucket.open_upload(upload.bucket, upload.key, upload.etag)
    if opened is None:
        logger.warning("Upload deleted or replaced since the event; its own event covers any new version", extra=where)
        return GONE
    try:
        previous = bucket.read_result(upload.bucket, upload.result_key)
        if previous is not None and previous.record.get("etag") == opened.etag:
            logger.info("Result already written for this object version: repeated event", extra=where)
            return DUPLICATE
        outcome, latency_ms = _classify(opened, clf)
    finally:
        opened.close()

    result = {
        **outcome_record(upload.uri, outcome),
        "bucket": upload.bucket,
        "key": upload.key,
        "size": opened.size,
        "etag": opened.etag,
        "classified_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
    }
    if not bucket.write_result(upload.bucket, upload.result_key, result, replacing=previous):
        logger.info("Another delivery of this event wrote the result first", extra=where)
        return DUPLICATE

    result_uri = f"s3://{upload.bucket}/{upload.result_key}"
    if isinstance(outcome, Prediction) and outcome.is_fire:
        try:
            _alert(result, result_uri, clf.threshold)
        except Exception:
            # Without this, Lambda's retry would find the result, take the event for a repeat and never alert.
            bucket.delete_result(upload.bucket, upload.result_key)
            raise
    _count(outcome, latency_ms)
    logger.info("Result written", extra={"result_uri": result_uri, "result": result})
    return INVALID if isinstance(outcome, InvalidImage) else CLASSIFIED


def _classify(opened, clf: Classifier) -> tuple[Prediction | InvalidImage, float | None]:
    """The core's verdict, refusing oversized objects before their bytes are read (no /tmp: bytes in memory)."""
    try:
        clf.limits.check_size(opened.size)
        data = opened.body.read()
        started = time.perf_counter()
        prediction = clf.classify(data)
    except InvalidImage as error:
        return error, None
    return prediction, (time.perf_counter() - started) * 1000.0


def _alert(result: dict, result_uri: str, threshold: float) -> None:
    topic_arn = os.environ.get(ALERT_TOPIC_ENV)
    if not topic_arn:
        logger.warning(f"Fire detected but {ALERT_TOPIC_ENV} is not set: no alert sent", extra={"result_uri": result_uri})
        return
    message_id = publish_fire_alert(_sns(), topic_arn, fire_alert(result, result_uri, threshold))
    logger.info("Fire alert published", extra={"message_id": message_id, "result_uri": result_uri})


def _count(outcome: Prediction | InvalidImage, latency_ms: float | None) -> None:
    if isinstance(outcome, InvalidImage):
        metrics.add_metric(name="InvalidImages", unit=MetricUnit.Count, value=1)
        return
    metrics.add_metric(name="ImagesClassified", unit=MetricUnit.Count, value=1)
    if outcome.is_fire:
        metrics.add_metric(name="FireDetected", unit=MetricUnit.Count, value=1)
    if latency_ms is not None:
        metrics.add_metric(name="InferenceLatency", unit=MetricUnit.Milliseconds, value=round(latency_ms, 3))
