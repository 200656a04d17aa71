"""S3 event notifications -> the uploads this function classifies, and the records it passes over (with why).

A record is never allowed to stop the records after it: one that is not shaped like an S3 notification comes back
as a ``malformed`` :class:`Skipped`, one from a bucket other than the configured upload bucket as ``refused``.

Parsed here, not with Powertools' ``S3Event``: in Powertools 3.37 its notification classes raise ``KeyError`` on a
record missing a field (so each access would need its own guard to keep the other records going), coerce ``size``
with ``int()``, and leave the key URL-encoded (only the EventBridge variant decodes it).
"""

from __future__ import annotations

import json
import os
import string
from dataclasses import dataclass
from typing import Iterator
from urllib.parse import unquote_plus

from inference.contract import UPLOAD_PREFIX, result_key_for

# The stack sets it to the upload bucket's name; unset, records from any bucket are processed.
BUCKET_ENV = "FIREWATCH_BUCKET"

# Why a record is passed over: not meant for this function (normal), from a foreign bucket, or unreadable.
IGNORED, REFUSED, MALFORMED = "ignored", "refused", "malformed"

_HEX = frozenset(string.hexdigits)


@dataclass(frozen=True)
class Upload:
    """One uploaded object named by an ``ObjectCreated`` record. ``key`` is decoded (``+`` is a space)."""

    bucket: str
    key: str
    size: int | None = None
    etag: str | None = None  # without quotes, as S3 events carry it
    version_id: str | None = None  # in events from versioned buckets
    sequencer: str | None = None  # orders the events of one key; absent from hand-made events

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def result_key(self) -> str:
        return result_key_for(self.key)


@dataclass(frozen=True)
class Skipped:
    """A record this function does not process, kept for the log: ``kind`` is IGNORED, REFUSED or MALFORMED."""

    reason: str
    event_name: str | None
    bucket: str | None
    key: str | None
    kind: str = IGNORED


def compare_sequencers(a: str, b: str) -> int:
    """-1, 0 or 1 as event sequencer ``a`` is older than, equal to or newer than ``b`` (same key only).

    S3 documents the rule: left-pad the shorter hexadecimal string with zeros, then compare as strings.
    """
    width = max(len(a), len(b))
    a, b = a.upper().rjust(width, "0"), b.upper().rjust(width, "0")
    return (a > b) - (a < b)


def sequencer_sort_key(sequencer: str) -> str:
    """A string whose plain comparison orders sequencers as :func:`compare_sequencers` does, whatever their lengths.

    For a store that compares strings itself (a DynamoDB condition): the significant digits (upper case, leading
    zeros dropped), prefixed with their count, so a longer number sorts after a shorter one.
    """
    digits = sequencer.upper().lstrip("0")
    return f"{len(digits):04d}:{digits}"


def configured_bucket() -> str | None:
    return os.environ.get(BUCKET_ENV) or None


def parse_event(event: object, accepted_bucket: str | None = None) -> Iterator[Upload | Skipped]:
    """Each record of an S3 event in order: an :class:`Upload` to classify or a :class:`Skipped`.

    ``accepted_bucket``: records naming any other bucket are refused (``None`` accepts every bucket).
    S3 sends one-off ``s3:TestEvent`` messages with no ``Records``: they yield nothing.
    """
    if not isinstance(event, dict):
        yield Skipped(f"the event is a {type(event).__name__}, not a JSON object", None, None, None, MALFORMED)
        return
    records = event.get("Records") or []
    if not isinstance(records, list):
        yield Skipped("the event's Records is not a list", None, None, None, MALFORMED)
        return
    for record in records:
        yield _parse_record(record, accepted_bucket)


def parse_message_body(body: object, accepted_bucket: str | None = None) -> Iterator[Upload | Skipped]:
    """The uploads of an SQS message whose body is an S3 event notification (the upload queue's messages).

    S3's one-off ``s3:TestEvent`` yields nothing. A body that is not JSON, or not a notification (no ``Records``),
    yields one ``malformed`` :class:`Skipped`; each record is then parsed as :func:`parse_event` does.
    """
    try:
        notification = json.loads(body) if isinstance(body, (str, bytes)) else None
    except ValueError:
        notification = None
    if not isinstance(notification, dict):
        yield Skipped("the message body is not a JSON object", None, None, None, MALFORMED)
        return
    if notification.get("Event") == "s3:TestEvent":
        return
    if "Records" not in notification:
        yield Skipped("the message body is not an S3 event notification (no Records)", None, None, None, MALFORMED)
        return
    yield from parse_event(notification, accepted_bucket)


def _parse_record(record: object, accepted_bucket: str | None) -> Upload | Skipped:
    if not isinstance(record, dict):
        return Skipped(f"the record is a {type(record).__name__}, not a JSON object", None, None, None, MALFORMED)
    event_name = _text(record.get("eventName"))
    if record.get("eventSource") != "aws:s3":
        return Skipped("not an S3 object record", event_name, None, None)
    s3 = _mapping(record.get("s3"))
    bucket = _text(_mapping(s3.get("bucket")).get("name"))
    obj = _mapping(s3.get("object"))
    raw_key = obj.get("key")
    # Keys arrive URL-encoded, spaces as '+': "uploads/camera+1/fire%281%29.jpg".
    key = unquote_plus(raw_key) if isinstance(raw_key, str) else None

    def malformed(why: str) -> Skipped:
        return Skipped(f"malformed S3 record: {why}", event_name, bucket, key, MALFORMED)

    if not bucket:
        return malformed("no s3.bucket.name")
    if not key:
        return malformed("no s3.object.key")
    if accepted_bucket is not None and bucket != accepted_bucket:
        return Skipped(f"bucket {bucket!r} is not the upload bucket {accepted_bucket!r}", event_name, bucket, key, REFUSED)
    if not (event_name or "").startswith("ObjectCreated:"):
        return Skipped("not an ObjectCreated event", event_name, bucket, key)
    if not key.startswith(UPLOAD_PREFIX) or key == UPLOAD_PREFIX or key.endswith("/"):
        return Skipped(f"key is not an object under {UPLOAD_PREFIX}", event_name, bucket, key)

    size, etag, version_id, sequencer = obj.get("size"), obj.get("eTag"), obj.get("versionId"), obj.get("sequencer")
    if size is not None and (type(size) is not int or size < 0):
        return malformed(f"s3.object.size {size!r} is not a byte count")
    for name, value in (("eTag", etag), ("versionId", version_id), ("sequencer", sequencer)):
        if value is not None and not isinstance(value, str):
            return malformed(f"s3.object.{name} {value!r} is not a string")
    if sequencer and not set(sequencer) <= _HEX:
        return malformed(f"s3.object.sequencer {sequencer!r} is not hexadecimal")
    return Upload(bucket, key, size, etag or None, version_id or None, sequencer or None)


def _mapping(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
