"""The latest results the serverless path wrote to ``s3://BUCKET/results/``, for the page's panel and the API.

Needs exactly what the instance role grants: s3:ListBucket on the prefix ``results/`` and s3:GetObject on
``results/*`` (no HeadObject, no GetBucketLocation). boto3 reads AWS_ENDPOINT_URL(_S3) for the local demo.
"""

from __future__ import annotations

import heapq
import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from flask import current_app

log = logging.getLogger(__name__)

RESULTS_PREFIX = "results/"
DEFAULT_LIMIT = 10
MAX_LIMIT = 50
# S3 lists keys by name, not by time, so the newest results are found by listing: bound that work.
MAX_LISTED_KEYS = 5_000
MAX_OBJECT_BYTES = 64 * 1024  # a result is ~300 bytes; anything far bigger is not one
LISTING_TTL_SECONDS = 2.0  # a page full of pollers costs each worker one listing per interval
FAILURE_TTL_SECONDS = 10.0  # during an S3 outage, don't make every poll wait for a timeout
CACHED_RECORDS = 4 * MAX_LIMIT
# Short timeouts: the page renders the panel inline and must not hang on a slow endpoint.
CLIENT_CONFIG = Config(connect_timeout=2, read_timeout=3, retries={"max_attempts": 2, "mode": "standard"})

# Contract fields passed through when present with the right type (ARCHITECTURE.md, "Serverless result").
_FIELDS = {"source": str, "bucket": str, "key": str, "size": int, "etag": str, "model_version": str, "classified_at": str}


class ResultsUnavailable(Exception):
    """The bucket could not be read (missing, denied, unreachable)."""


class _Gone(Exception):
    """The object was deleted between the listing and the read."""


@dataclass(frozen=True)
class _Listed:
    key: str
    last_modified: datetime
    size: int
    etag: str


def clean_record(raw: object, listed: _Listed) -> dict | None:
    """The public form of one stored result, or None when the object is not a result we can show."""
    if not isinstance(raw, dict):
        return None
    upload_key = listed.key[len(RESULTS_PREFIX) :].removesuffix(".json")
    record = {"result_key": listed.key, "name": upload_key.rsplit("/", 1)[-1] or upload_key}
    record.update({name: raw[name] for name, kind in _FIELDS.items() if type(raw.get(name)) is kind})
    error, label, probability = raw.get("error"), raw.get("label"), raw.get("fire_probability")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        record["error"] = {"code": str(error.get("code", "")), "message": error["message"]}
    elif isinstance(label, str) and type(probability) in (int, float) and 0 <= probability <= 1:
        record.update(label=label, fire_probability=probability)
    else:
        return None
    record["last_modified"] = listed.last_modified.astimezone(timezone.utc).isoformat()
    if _parse_time(record.get("classified_at")) is None:
        record["classified_at"] = record["last_modified"]  # so pages can always show a time
    return record


def _parse_time(text: str | None) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text or "")
    except ValueError:
        return None
    return moment if moment.tzinfo else None


def get_reader() -> ResultsReader | None:
    """The app's reader, or None when FIREWATCH_RESULTS_BUCKET is unset (the feature is off)."""
    return current_app.extensions.get("firewatch.results")


def utc_time(text: str) -> str:
    """An ISO-8601 time as the page shows it without script: ``2025-01-31 14:05:09 UTC``."""
    moment = _parse_time(text)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else text


class ResultsReader:
    """Reads the newest results of one bucket; one per app (so one per gunicorn worker), safe across threads."""

    def __init__(self, bucket: str, client=None, clock=time.monotonic) -> None:
        self.bucket = bucket
        self._client = client  # created on first use, in the worker process that uses it
        self._clock = clock
        self._lock = threading.Lock()
        self._newest: list[_Listed] = []
        self._listed_at = float("-inf")
        self._failed_at = float("-inf")
        self._records: OrderedDict[tuple[str, str], dict | None] = OrderedDict()  # by (key, ETag)

    def latest(self, limit: int = DEFAULT_LIMIT) -> list[dict]:
        """Up to ``limit`` results, newest first; raises ResultsUnavailable when S3 cannot be read."""
        with self._lock:  # one listing at a time per worker; the others then use its fresh cache
            now = self._clock()
            if now - self._failed_at < FAILURE_TTL_SECONDS:
                raise ResultsUnavailable("the results bucket could not be read a moment ago")
            try:
                if now - self._listed_at >= LISTING_TTL_SECONDS:
                    self._newest = self._list_newest()
                    self._listed_at = self._clock()
                found = []
                for item in self._newest:  # skipped objects make room for older ones
                    if (record := self._record(item)) is not None:
                        found.append((item.last_modified, record))
                        if len(found) == limit:
                            break
            except (BotoCoreError, ClientError) as error:
                self._failed_at = self._clock()
                log.warning("cannot read s3://%s/%s: %s", self.bucket, RESULTS_PREFIX, error)
                raise ResultsUnavailable(str(error)) from error
        # Same-second LastModified ties (S3 has 1 s resolution) are broken by the handler's own timestamp.
        found.sort(key=lambda pair: (pair[0], _parse_time(pair[1]["classified_at"])), reverse=True)
        return [record for _, record in found]

    @property
    def client(self):
        if self._client is None:
            import boto3  # only when the feature is on

            self._client = boto3.client("s3", config=CLIENT_CONFIG)
        return self._client

    def _list_newest(self) -> list[_Listed]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=RESULTS_PREFIX, PaginationConfig={"MaxItems": MAX_LISTED_KEYS, "PageSize": 1000}
        )
        listed = [
            _Listed(obj["Key"], obj["LastModified"], obj.get("Size", 0), obj.get("ETag", ""))
            for page in pages
            for obj in page.get("Contents", [])
        ]
        if len(listed) >= MAX_LISTED_KEYS:
            log.warning("s3://%s/%s holds over %d objects; the panel shows the newest of the first %d by name",
                        self.bucket, RESULTS_PREFIX, MAX_LISTED_KEYS, MAX_LISTED_KEYS)
        return heapq.nlargest(MAX_LIMIT, listed, key=lambda item: (item.last_modified, item.key))

    def _record(self, item: _Listed) -> dict | None:
        cache_key = (item.key, item.etag)
        if cache_key in self._records:
            self._records.move_to_end(cache_key)
            return self._records[cache_key]
        try:
            record = self._fetch(item)
        except _Gone:
            return None  # not cached: the key may come back
        self._records[cache_key] = record
        while len(self._records) > CACHED_RECORDS:
            self._records.popitem(last=False)
        return record

    def _fetch(self, item: _Listed) -> dict | None:
        if item.size > MAX_OBJECT_BYTES:
            log.warning("skipping s3://%s/%s: %d bytes is too large for a result", self.bucket, item.key, item.size)
            return None
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=item.key)["Body"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise _Gone from error
            raise
        with body:
            data = body.read(MAX_OBJECT_BYTES + 1)
        if len(data) > MAX_OBJECT_BYTES:
            log.warning("skipping s3://%s/%s: larger than %d bytes", self.bucket, item.key, MAX_OBJECT_BYTES)
            return None
        try:
            record = clean_record(json.loads(data), item)
        except (UnicodeDecodeError, json.JSONDecodeError):
            record = None
        if record is None:
            log.warning("skipping s3://%s/%s: not a result object", self.bucket, item.key)
        return record
