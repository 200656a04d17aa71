"""One upload, from its event to its result and its fire alert: ordered results, at-least-once alerts.

The result object ``results/<key>.json`` is the only state, and the function needs no delete permission:

1. Results are written conditionally on what was read (no object, or that object's ETag). Of two writers, one wins;
   the other re-reads and decides again.
2. A result never replaces the result of a newer event for the same key: S3's ``sequencer`` orders them, and the
   result keeps it. Events without one (hand-made) are ordered by arrival.
3. A fire result is written with ``"alert": "pending"`` before the alert is published, and updated to ``"sent"``
   after. A failed publish raises, so Lambda retries; the retry finds the pending result of its own object version
   and publishes again (without the upload, which may be gone by then). An alert is lost only if every attempt
   fails, and then the event is in the dead-letter queue with the error.
4. An alert goes out twice for one version only if an attempt dies after publishing and before recording
   ``"sent"`` (a timeout, a failed S3 write), or if a repeated event starts while the first is between the two.
   A writer that loses the race to another delivery of its own event leaves the alert to that delivery.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timezone
from typing import Callable

from botocore.exceptions import BotoCoreError, ClientError

from inference import Classifier, InvalidImage, Prediction, outcome_record
from inference.contract import ALERT_PENDING, ALERT_SENT, ServerlessResult

from .alerts import ALERT_TOPIC_ENV, fire_alert
from .events import Upload, compare_sequencers
from .storage import Bucket, OpenedObject, StoredResult
from .telemetry import count_outcome, logger

CLASSIFIED, INVALID, DUPLICATE, ALERT_RETRIED, STALE, GONE = (
    "classified", "invalid", "duplicate", "alert_retried", "stale", "gone",
)  # fmt: skip
# How an ordered write ended, besides STALE and DUPLICATE: written now, or this version's result was already there.
WRITTEN, ALREADY_WRITTEN = "written", "already_written"
# Each lost race means another writer changed the result meanwhile; past this many, let Lambda retry later.
MAX_WRITE_ATTEMPTS = 4

Publish = Callable[[dict], str]  # an alert message -> its SNS message id


class ResultConflict(RuntimeError):
    """The result kept changing under our conditional writes; raised so that Lambda retries the event."""


def process_upload(upload: Upload, clf: Classifier, bucket: Bucket, publish: Publish | None) -> str:
    """Classify ``upload``, record its result and alert on fire; returns how it ended (CLASSIFIED, STALE...).

    ``bucket`` is the upload's own bucket, where its result goes.
    """
    where = {"bucket": upload.bucket, "key": upload.key}
    stored = bucket.read_result(upload.result_key)
    if stored is not None and _same_version(stored.record, upload.etag, upload.sequencer):
        return _settle(upload, stored, clf, bucket, publish)

    opened = bucket.open_upload(upload.key, upload.etag, upload.version_id)
    if opened is None:
        logger.warning("Upload deleted or replaced since the event; its own event covers any new version", extra=where)
        return GONE
    outcome, latency_ms = _classify(opened, clf)
    result = _result(upload, opened, outcome)
    is_fire = isinstance(outcome, Prediction) and outcome.is_fire
    if is_fire and publish is None:
        logger.warning(f"Fire detected but {ALERT_TOPIC_ENV} is not set: no alert sent", extra=where)
    owes_alert = is_fire and publish is not None
    record = dataclasses.replace(result, alert=ALERT_PENDING if owes_alert else None).to_record()

    ending, stored = _write_in_order(upload, record, opened.etag, stored, bucket)
    if ending == STALE:
        count_outcome(outcome, latency_ms)
        logger.info("A newer event's result is already written: this older version's is not", extra=where)
        if owes_alert:  # the verdict is not recorded, but a fire upload always alerts
            _publish(publish, result.to_record(), _result_uri(upload), clf.threshold)
        return STALE
    if ending == DUPLICATE:  # another delivery of this event wrote it just now and owns its alert
        logger.info("Another delivery of this event wrote the result first", extra=where)
        return DUPLICATE
    if ending == ALREADY_WRITTEN:
        return _settle(upload, stored, clf, bucket, publish)

    count_outcome(outcome, latency_ms)
    logger.info("Result written", extra={"result_uri": _result_uri(upload), "result": record})
    if owes_alert:
        _alert_and_record(upload, stored, clf, bucket, publish)
    return INVALID if isinstance(outcome, InvalidImage) else CLASSIFIED


def _write_in_order(
    upload: Upload, record: dict, etag: str, stored: StoredResult | None, bucket: Bucket
) -> tuple[str, StoredResult | None]:
    """Write ``record`` over ``stored`` unless a newer event's result is there; a lost race re-reads and decides again.

    Returns how it ended and the result as it now stands: WRITTEN (``record``, with its new ETag), STALE (a newer
    event's result), ALREADY_WRITTEN (this version's result was there before we raced) or DUPLICATE (another delivery
    of this event wrote it while we raced).
    """
    raced = False
    for _ in range(MAX_WRITE_ATTEMPTS):
        if stored is not None and _newer(stored.record, upload.sequencer):
            return STALE, stored
        if stored is not None and _same_version(stored.record, etag, upload.sequencer):
            return (DUPLICATE if raced else ALREADY_WRITTEN), stored
        written = bucket.write_result(upload.result_key, record, replacing=stored)
        if written is not None:
            return WRITTEN, StoredResult(record, written)
        raced = True
        stored = bucket.read_result(upload.result_key)
    raise ResultConflict(f"{_result_uri(upload)} changed under {MAX_WRITE_ATTEMPTS} conditional writes; retry the event")


def _settle(upload: Upload, stored: StoredResult, clf: Classifier, bucket: Bucket, publish: Publish | None) -> str:
    """This version's result is already written: send its alert if an earlier attempt left it owed."""
    where = {"bucket": upload.bucket, "key": upload.key}
    if stored.record.get("alert") == ALERT_PENDING and publish is not None:
        logger.info("Result written by an earlier attempt, its fire alert still owed: sending it", extra=where)
        _alert_and_record(upload, stored, clf, bucket, publish)
        return ALERT_RETRIED
    logger.info("Result already written for this object version: repeated event", extra=where)
    return DUPLICATE


def _alert_and_record(upload: Upload, stored: StoredResult, clf: Classifier, bucket: Bucket, publish: Publish) -> None:
    """Publish the alert of a pending result (a failure raises: the retry finds it pending), then mark it sent."""
    message_id = _publish(publish, stored.record, _result_uri(upload), clf.threshold)
    sent = {**stored.record, "alert": ALERT_SENT, "alert_message_id": message_id}
    try:
        if bucket.write_result(upload.result_key, sent, replacing=stored) is None:
            logger.info("Alert sent; the result changed meanwhile (a newer version, or a repeated event recorded it)", extra={"key": upload.key})
    except (ClientError, BotoCoreError):
        # Raising would make the retry publish again for nothing: the alert is out, only its bookkeeping failed.
        logger.exception("Alert sent but not recorded as sent: a repeated event would alert again", extra={"key": upload.key})


def _publish(publish: Publish, result: dict, result_uri: str, threshold: float) -> str:
    message_id = publish(fire_alert(result, result_uri, threshold))
    logger.info("Fire alert published", extra={"message_id": message_id, "result_uri": result_uri})
    return message_id


def _same_version(record: dict, etag: str | None, sequencer: str | None) -> bool:
    """Whether ``record`` is the result of this object version (the same event, or a repeat of it)."""
    if not etag or record.get("etag") != etag:
        return False
    stored = _sequencer(record)
    return not (stored and sequencer) or compare_sequencers(stored, sequencer) == 0


def _newer(record: dict, sequencer: str | None) -> bool:
    stored = _sequencer(record)
    return bool(stored and sequencer) and compare_sequencers(stored, sequencer) > 0


def _sequencer(record: dict) -> str | None:
    value = record.get("sequencer")
    return value if isinstance(value, str) and value and all(c in "0123456789abcdefABCDEF" for c in value) else None


def _result_uri(upload: Upload) -> str:
    return f"s3://{upload.bucket}/{upload.result_key}"


def _classify(opened: OpenedObject, clf: Classifier) -> tuple[Prediction | InvalidImage, float | None]:
    """The core's verdict, refusing oversized objects before their bytes are read (no /tmp: bytes in memory).

    Closes ``opened``, read or not."""
    try:
        clf.limits.check_size(opened.size)
        data = opened.body.read()
        started = time.perf_counter()
        prediction = clf.classify(data)
    except InvalidImage as error:
        return error, None
    finally:
        opened.close()
    return prediction, (time.perf_counter() - started) * 1000.0


def _result(upload: Upload, opened: OpenedObject, outcome: Prediction | InvalidImage) -> ServerlessResult:
    """The contract's fields, plus what orders this version against others of the same key."""
    return ServerlessResult(
        verdict=outcome_record(upload.uri, outcome),
        bucket=upload.bucket,
        key=upload.key,
        size=opened.size,
        etag=opened.etag,
        classified_at=datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        version_id=upload.version_id,
        sequencer=upload.sequencer,
    )
