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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from inference.contract import RESULT_FIELD_TYPES, RESULT_PREFIX, upload_name_for

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 10
MAX_LIMIT = 50
# S3 lists keys by name, never by time: the newest results are found by listing every key under results/ and
# keeping the newest MAX_LIMIT (a heap, so memory stays small). One LIST request returns 1,000 keys, so a
# listing costs ceil(N / 1,000) requests. Bounded: beyond MAX_LISTED_KEYS (100 requests, a few seconds) the
# panel shows the newest of the first MAX_LISTED_KEYS keys by name, and says so in the log.
PAGE_SIZE = 1000
MAX_LISTED_KEYS = 100_000
MAX_OBJECT_BYTES = 64 * 1024  # a result is ~300 bytes; anything far bigger is not one
# A listing is reused this long; a page full of pollers costs each worker one listing per interval. Bigger
# buckets are listed less often: at least one second per page, so at most about one LIST request per second.
LISTING_TTL_SECONDS = 2.0
SECONDS_PER_PAGE = 1.0
FAILURE_TTL_SECONDS = 10.0  # during an S3 outage, don't make every poll start another doomed listing
# A request waits this long at most for S3; S3 itself is read on a thread of its own (see ResultsReader).
WAIT_SECONDS = 1.0
FETCH_THREADS = 8  # result objects are read in parallel: 50 sequential GETs would take over a second
CACHED_RECORDS = 4 * MAX_LIMIT
CLIENT_CONFIG = Config(connect_timeout=2, read_timeout=3, retries={"max_attempts": 2, "mode": "standard"},
                       max_pool_connections=FETCH_THREADS)


class ResultsUnavailable(Exception):
    """The bucket could not be read (missing, denied, unreachable)."""


class ResultsLoading(ResultsUnavailable):
    """The first listing has not finished yet (S3 is slow to answer, or the worker has just started)."""


class _Gone(Exception):
    """The object was deleted between the listing and the read."""


_MISSING = object()  # not in the record cache yet
_GONE = object()  # deleted between the listing and the read


@dataclass(frozen=True)
class _Listed:
    key: str
    last_modified: datetime
    size: int
    etag: str


def clean_record(raw: object, listed: _Listed) -> dict | None:
    """The public form of one stored result, or None when the object is not a result we can show."""
    return public_record(raw, listed.key, listed.last_modified)


def public_record(raw: object, result_key: str, last_modified: datetime | None) -> dict | None:
    """The public form of a result record (an S3 object's JSON or an index item), or None when it is not one.

    ``last_modified`` is when S3 stored the object; an index item has none, and then ``last_modified`` is left out.
    """
    if not isinstance(raw, dict):
        return None
    stored_key = raw.get("key")
    key = stored_key if isinstance(stored_key, str) and stored_key else upload_name_for(result_key)
    record = {"result_key": result_key, "name": key.rsplit("/", 1)[-1] or key}
    record.update({name: raw[name] for name, kind in RESULT_FIELD_TYPES.items() if type(raw.get(name)) is kind})
    error, label, probability = raw.get("error"), raw.get("label"), raw.get("fire_probability")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        record["error"] = {"code": str(error.get("code", "")), "message": error["message"]}
    elif isinstance(label, str) and type(probability) in (int, float) and 0 <= probability <= 1:
        record.update(label=label, fire_probability=probability)
    else:
        return None
    if last_modified is not None:
        record["last_modified"] = last_modified.astimezone(timezone.utc).isoformat()
    if _parse_time(record.get("classified_at")) is None:
        if last_modified is None:
            return None  # nothing to show a time from
        record["classified_at"] = record["last_modified"]  # so pages can always show a time
    return record


def _parse_time(text: str | None) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text or "")
    except ValueError:
        return None
    return moment if moment.tzinfo else None


def utc_time(text: str) -> str:
    """An ISO-8601 time as the page shows it without script: ``2025-01-31 14:05:09 UTC``."""
    moment = _parse_time(text)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else text


class ResultsReader:
    """Reads the newest results of one bucket; one per app (so one per gunicorn worker), safe across threads.

    S3 is read on a thread of the reader's own, one refresh at a time. A request starts a refresh when the last
    one is old, waits ``wait_seconds`` at most for it, and otherwise answers from the previous refresh: a slow
    or silent S3 endpoint never holds a page for longer than that.
    """

    default_limit, max_limit, pages = DEFAULT_LIMIT, MAX_LIMIT, False  # no cursor: the newest MAX_LIMIT only

    def __init__(self, bucket: str, client=None, clock=time.monotonic, wait_seconds: float = WAIT_SECONDS) -> None:
        self.bucket = bucket
        self._client = client  # created on first use, in the worker process that uses it
        self._clock = clock
        self.wait_seconds = wait_seconds
        self._lock = threading.Lock()
        self._refreshed = threading.Condition(self._lock)
        self._refreshing = False
        self._newest: list[dict] | None = None  # the last refresh's records, newest first
        self._fresh_until = float("-inf")
        self._failed_at = float("-inf")
        self._records: OrderedDict[tuple[str, str], dict | None] = OrderedDict()  # by (key, ETag)

    def latest(self, limit: int = DEFAULT_LIMIT) -> list[dict]:
        """Up to ``limit`` results, newest first; raises ResultsUnavailable when S3 cannot be read."""
        with self._lock:
            if self._clock() - self._failed_at < FAILURE_TTL_SECONDS:
                raise ResultsUnavailable("the results bucket could not be read a moment ago")
            if self._clock() >= self._fresh_until:
                if not self._refreshing:
                    self._start_refresh()
                self._refreshed.wait_for(lambda: not self._refreshing, timeout=self.wait_seconds)
            if self._clock() - self._failed_at < FAILURE_TTL_SECONDS:
                raise ResultsUnavailable("the results bucket cannot be read")
            if self._newest is None:
                raise ResultsLoading("the results bucket has not answered yet")
            return self._newest[:limit]

    def prefetch(self) -> None:
        """Start reading the bucket now, without waiting (a worker calls this as it starts)."""
        with self._lock:
            if not self._refreshing:
                self._start_refresh()

    def _start_refresh(self) -> None:  # with the lock held
        self._refreshing = True
        threading.Thread(target=self._refresh, name="results-refresh", daemon=True).start()

    @property
    def client(self):
        if self._client is None:
            import boto3  # only when the feature is on

            self._client = boto3.client("s3", config=CLIENT_CONFIG)
        return self._client

    def _refresh(self) -> None:
        started = self._clock()
        newest, pages, failed = None, 0, False
        try:
            listed, pages = self._list_newest()
            newest = self._read_records(listed)
        except (BotoCoreError, ClientError) as error:
            failed = True
            log.warning("cannot read s3://%s/%s: %s", self.bucket, RESULT_PREFIX, error)
        except Exception:  # a bug here must not leave requests waiting for a refresh that never ends
            failed = True
            log.exception("reading s3://%s/%s failed", self.bucket, RESULT_PREFIX)
        with self._lock:
            if failed:
                self._failed_at = self._clock()
            else:
                self._newest = newest
                self._failed_at = float("-inf")
                self._fresh_until = started + max(LISTING_TTL_SECONDS, SECONDS_PER_PAGE * pages)
            self._refreshing = False
            self._refreshed.notify_all()

    def _list_newest(self) -> tuple[list[_Listed], int]:
        """The MAX_LIMIT newest objects under results/ (every page, up to MAX_LISTED_KEYS), and the pages read."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=RESULT_PREFIX,
            PaginationConfig={"MaxItems": MAX_LISTED_KEYS, "PageSize": PAGE_SIZE},
        )
        newest: list[tuple[tuple, _Listed]] = []  # a min-heap of the newest seen so far
        count = read = 0
        for page in pages:
            read += 1
            for obj in page.get("Contents", []):
                item = _Listed(obj["Key"], obj["LastModified"], obj.get("Size", 0), obj.get("ETag", ""))
                entry = ((item.last_modified, item.key), item)
                if len(newest) < MAX_LIMIT:
                    heapq.heappush(newest, entry)
                elif entry[0] > newest[0][0]:
                    heapq.heapreplace(newest, entry)
                count += 1
        if count >= MAX_LISTED_KEYS:
            log.warning("s3://%s/%s holds over %d objects; the panel shows the newest of the first %d by name",
                        self.bucket, RESULT_PREFIX, MAX_LISTED_KEYS, MAX_LISTED_KEYS)
        return [item for _, item in sorted(newest, reverse=True)], read

    def _read_records(self, listed: list[_Listed]) -> list[dict]:
        """The records of ``listed`` (skipping objects that are not results), newest first."""
        with self._lock:
            cached = {item: self._records.get((item.key, item.etag), _MISSING) for item in listed}
        missing = [item for item, record in cached.items() if record is _MISSING]
        if missing:
            with ThreadPoolExecutor(max_workers=FETCH_THREADS) as pool:
                fetched = dict(zip(missing, pool.map(self._fetch_or_gone, missing)))
            with self._lock:
                for item, record in fetched.items():
                    if record is not _GONE:  # not cached: the key may come back
                        self._records[(item.key, item.etag)] = record
                        self._records.move_to_end((item.key, item.etag))
                while len(self._records) > CACHED_RECORDS:
                    self._records.popitem(last=False)
            cached.update(fetched)
        found = [(item.last_modified, record) for item, record in cached.items() if isinstance(record, dict)]
        # Same-second LastModified ties (S3 has 1 s resolution) are broken by the handler's own timestamp.
        found.sort(key=lambda pair: (pair[0], _parse_time(pair[1]["classified_at"])), reverse=True)
        return [record for _, record in found]

    def _fetch_or_gone(self, item: _Listed):
        try:
            return self._fetch(item)
        except _Gone:
            return _GONE

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
