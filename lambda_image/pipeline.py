"""Uploads, from their events to their results and fire alerts: ordered results, at-least-once alerts.

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
5. With a results index (:mod:`lambda_image.results_index`), every result written is also put there, after the
   S3 write; a delivery that finds its version's result already written puts it again, so a failed index write is
   made good by the retry (and a re-enqueued upload rebuilds a lost item). The index orders its own writes.

Several uploads (an SQS batch, an event with several records) are processed together, so that their images go
through the model in one call: each is first looked up and opened, then every image is classified at once, then
each result is written and alerted in turn. One upload's failure never costs the others theirs.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Sequence

from botocore.exceptions import BotoCoreError, ClientError

from inference import Classifier, InvalidImage, Prediction, outcome_record
from inference.contract import ALERT_PENDING, ALERT_SENT, ServerlessResult

from .alerts import ALERT_TOPIC_ENV, fire_alert
from .events import Upload, compare_sequencers
from .results_index import ResultsIndex
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


class OutOfTime(RuntimeError):
    """The invocation ran short of time before this upload's turn: it is left, untouched, to a redelivery."""


class ResultConflict(RuntimeError):
    """The result kept changing under our conditional writes; raised so that Lambda retries the event."""


@dataclass(frozen=True)
class Job:
    """One upload to process, and the bucket its result goes to (the upload's own)."""

    upload: Upload
    bucket: Bucket


@dataclass
class _Opened:
    """An upload whose result is still to be written: the result found before (if any) and the object opened."""

    job: Job
    stored: StoredResult | None
    opened: OpenedObject


Ending = str | Exception  # how an upload ended (CLASSIFIED, STALE...), or the error that failed it


def process_upload(upload: Upload, clf: Classifier, bucket: Bucket, publish: Publish | None,
                   index: ResultsIndex | None = None) -> str:  # fmt: skip
    """Classify one upload, record its result and alert on fire; returns how it ended. Raises what failed it."""
    [ending] = process_uploads([Job(upload, bucket)], clf, publish, index)
    if isinstance(ending, Exception):
        raise ending
    return ending


def process_uploads(
    jobs: Sequence[Job], clf: Classifier, publish: Publish | None, index: ResultsIndex | None = None,
    out_of_time: Callable[[], bool] | None = None,
) -> list[Ending]:
    """Each job's ending, in order, or the exception that failed it; the images are classified in one model call.

    ``out_of_time`` is asked before each decode after the first: once it says yes, the uploads not yet decoded end
    with :class:`OutOfTime`, having written nothing, so that a batch of costly photos finishes what it started
    within the function's timeout instead of timing out as a whole (and failing its good neighbours with it).
    """  # fmt: skip
    endings: list[Ending | None] = [None] * len(jobs)
    opened: list[tuple[int, _Opened]] = []
    for slot, job in enumerate(jobs):
        try:
            step = _open(job, clf, publish, index)
        except Exception as error:  # noqa: BLE001  one upload's failure must not cost the others their turn
            endings[slot] = error
            continue
        if isinstance(step, _Opened):
            opened.append((slot, step))
        else:
            endings[slot] = step
    try:
        outcomes = _classify_all([step for _, step in opened], clf, out_of_time)
    except Exception as error:  # noqa: BLE001  the model itself failed: every upload waiting for it fails
        outcomes = [(error, None)] * len(opened)
    for (slot, step), (outcome, latency_ms) in zip(opened, outcomes):
        try:
            if isinstance(outcome, Exception) and not isinstance(outcome, InvalidImage):
                raise outcome
            endings[slot] = _finish(step, outcome, latency_ms, clf, publish, index)
        except Exception as error:  # noqa: BLE001
            endings[slot] = error
    return endings  # type: ignore[return-value]


def _open(job: Job, clf: Classifier, publish: Publish | None, index: ResultsIndex | None) -> _Opened | str:
    """Find the upload's result; settle a repeated event at once, else open the object (GONE if it is no more)."""
    upload, bucket = job.upload, job.bucket
    stored = bucket.read_result(upload.result_key)
    if stored is not None and _same_version(stored.record, upload.etag, upload.sequencer):
        return _settle(upload, stored, clf, bucket, publish, index)
    opened = bucket.open_upload(upload.key, upload.etag, upload.version_id)
    if opened is None:
        where = {"bucket": upload.bucket, "key": upload.key}
        logger.warning("Upload deleted or replaced since the event; its own event covers any new version", extra=where)
        return GONE
    return _Opened(job, stored, opened)


def _finish(
    step: _Opened, outcome: Prediction | InvalidImage, latency_ms: float | None, clf: Classifier,
    publish: Publish | None, index: ResultsIndex | None,
) -> str:  # fmt: skip
    """Write the upload's result in order, index it, and alert on fire."""
    upload, bucket, stored = step.job.upload, step.job.bucket, step.stored
    where = {"bucket": upload.bucket, "key": upload.key}
    result = _result(upload, step.opened, outcome)
    is_fire = isinstance(outcome, Prediction) and outcome.is_fire
    if is_fire and publish is None:
        logger.warning(f"Fire detected but {ALERT_TOPIC_ENV} is not set: no alert sent", extra=where)
    owes_alert = is_fire and publish is not None
    record = dataclasses.replace(result, alert=ALERT_PENDING if owes_alert else None).to_record()

    ending, stored = _write_in_order(upload, record, step.opened.etag, stored, bucket)
    if ending == STALE:
        count_outcome(outcome, latency_ms)
        logger.info("A newer event's result is already written: this older version's is not", extra=where)
        if owes_alert:  # the verdict is not recorded, but a fire upload always alerts
            _publish(publish, result.to_record(), _result_uri(upload), clf.threshold)
        return STALE
    if ending == DUPLICATE:  # another delivery of this event wrote it just now and owns its alert (and its index)
        logger.info("Another delivery of this event wrote the result first", extra=where)
        return DUPLICATE
    if ending == ALREADY_WRITTEN:
        return _settle(upload, stored, clf, bucket, publish, index)

    count_outcome(outcome, latency_ms)
    logger.info("Result written", extra={"result_uri": _result_uri(upload), "result": record})
    _index(index, upload, record)
    if owes_alert:
        _alert_and_record(upload, stored, clf, bucket, publish, index)
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


def _settle(
    upload: Upload, stored: StoredResult, clf: Classifier, bucket: Bucket, publish: Publish | None,
    index: ResultsIndex | None,
) -> str:  # fmt: skip
    """This version's result is already written: index it again (the earlier attempt may have failed before its index
    write) and send its alert if an earlier attempt left it owed."""
    where = {"bucket": upload.bucket, "key": upload.key}
    _index(index, upload, stored.record)
    if stored.record.get("alert") == ALERT_PENDING and publish is not None:
        logger.info("Result written by an earlier attempt, its fire alert still owed: sending it", extra=where)
        _alert_and_record(upload, stored, clf, bucket, publish, index)
        return ALERT_RETRIED
    logger.info("Result already written for this object version: repeated event", extra=where)
    return DUPLICATE


def _alert_and_record(
    upload: Upload, stored: StoredResult, clf: Classifier, bucket: Bucket, publish: Publish, index: ResultsIndex | None
) -> None:
    """Publish the alert of a pending result (a failure raises: the retry finds it pending), then mark it sent."""
    message_id = _publish(publish, stored.record, _result_uri(upload), clf.threshold)
    sent = {**stored.record, "alert": ALERT_SENT, "alert_message_id": message_id}
    try:
        if bucket.write_result(upload.result_key, sent, replacing=stored) is None:
            logger.info("Alert sent; the result changed meanwhile (a newer version, or a repeated event recorded it)", extra={"key": upload.key})
        else:
            _index(index, upload, sent)
    except (ClientError, BotoCoreError):
        # Raising would make the retry publish again for nothing: the alert is out, only its bookkeeping failed.
        logger.exception("Alert sent but not recorded as sent: a repeated event would alert again", extra={"key": upload.key})


def _index(index: ResultsIndex | None, upload: Upload, record: dict) -> None:
    """Put ``record`` in the results index (if there is one); an AWS error raises, so the delivery is retried."""
    if index is not None and not index.put(record, upload.result_key):
        logger.info("The results index already holds a newer (or final) item for this key", extra={"key": upload.key})


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


def _classify_all(
    steps: Sequence[_Opened], clf: Classifier, out_of_time: Callable[[], bool] | None = None
) -> list[tuple[Prediction | InvalidImage | Exception, float | None]]:
    """The core's verdict on every opened upload, in one model call; each with its inference latency (ms).

    Oversized objects are refused by their size, unread. The others are read one at a time as the core decodes
    them (``classify_many`` consumes its input lazily), so only one upload's bytes are held at once. An upload
    whose body cannot be read gets that error as its outcome. Closes every opened object, read or not. The latency
    of a batch is the share of one image in its decode and model time (reading from S3 excluded).
    """
    outcomes: list[Prediction | InvalidImage | Exception | None] = [None] * len(steps)
    to_read = []
    for slot, step in enumerate(steps):
        try:
            clf.limits.check_size(step.opened.size)
            to_read.append(slot)
        except InvalidImage as error:
            outcomes[slot] = error
    read_s = 0.0
    decoded: list[int] = []  # the slots handed to the core, in order

    def bodies():
        nonlocal read_s
        for slot in to_read:
            if decoded and out_of_time is not None and out_of_time():
                outcomes[slot] = OutOfTime("the invocation ran short of time before this upload's turn")
                continue
            decoded.append(slot)
            began = time.perf_counter()
            try:
                data = steps[slot].opened.body.read()
            except Exception as error:  # noqa: BLE001  this upload fails; the others are still classified
                outcomes[slot], data = error, b""
            finally:
                steps[slot].opened.close()
                read_s += time.perf_counter() - began
            yield data

    started = time.perf_counter()
    try:
        verdicts = clf.classify_many(bodies())
    finally:
        for step in steps:
            step.opened.close()
    latency_ms = (time.perf_counter() - started - read_s) * 1000.0 / max(1, len(to_read))
    for slot, verdict in zip(decoded, verdicts):
        if outcomes[slot] is None:  # not a read error
            outcomes[slot] = verdict
    return [(outcome, latency_ms if isinstance(outcome, Prediction) else None) for outcome in outcomes]  # type: ignore[misc]


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
