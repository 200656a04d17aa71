"""S3 event notifications -> the uploads this function classifies, and the records it skips (with why)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator
from urllib.parse import unquote_plus

UPLOAD_PREFIX = "uploads/"
RESULT_PREFIX = "results/"
RESULT_SUFFIX = ".json"


@dataclass(frozen=True)
class Upload:
    """One uploaded object named by an ``ObjectCreated`` record. ``key`` is decoded (``+`` is a space)."""

    bucket: str
    key: str
    size: int | None = None
    etag: str | None = None  # without quotes, as S3 events carry it

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def result_key(self) -> str:
        """``uploads/<name>`` -> ``results/<name>.json`` (the serverless contract)."""
        return RESULT_PREFIX + self.key[len(UPLOAD_PREFIX) :] + RESULT_SUFFIX


@dataclass(frozen=True)
class Skipped:
    """A record this function does not handle, kept for the log."""

    reason: str
    event_name: str | None
    bucket: str | None
    key: str | None


def parse_event(event: dict) -> Iterator[Upload | Skipped]:
    """Each record of an S3 event in order: an :class:`Upload` to classify or a :class:`Skipped`.

    S3 sends one-off ``s3:TestEvent`` messages with no ``Records``: they yield nothing.
    """
    for record in event.get("Records") or []:
        yield _parse_record(record)


def _parse_record(record: dict) -> Upload | Skipped:
    event_name = record.get("eventName")
    s3 = record.get("s3") or {}
    bucket = (s3.get("bucket") or {}).get("name")
    obj = s3.get("object") or {}
    raw_key = obj.get("key")
    # Keys arrive URL-encoded, spaces as '+': "uploads/camera+1/fire%281%29.jpg".
    key = unquote_plus(raw_key) if isinstance(raw_key, str) else None

    if record.get("eventSource") != "aws:s3" or not bucket or not key:
        return Skipped("not an S3 object record", event_name, bucket, key)
    if not (event_name or "").startswith("ObjectCreated:"):
        return Skipped("not an ObjectCreated event", event_name, bucket, key)
    if not key.startswith(UPLOAD_PREFIX) or key == UPLOAD_PREFIX or key.endswith("/"):
        return Skipped(f"key is not an object under {UPLOAD_PREFIX}", event_name, bucket, key)
    size = obj.get("size")
    return Upload(bucket=bucket, key=key, size=int(size) if size is not None else None, etag=obj.get("eTag") or None)
