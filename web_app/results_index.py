"""The newest results, read from the results index (a DynamoDB table) page by page, for the panel and the API.

The table's ``newest`` index is partitioned by UTC day and sorted by ``classified_at`` (``inference.contract``), so
the newest results are found by querying today's partition newest first, then yesterday's, and so on. Each request
does a bounded amount of work whatever the table holds: it stops once it has ``limit`` results, has looked at
``lookback_days`` days without any, or has spent ``deadline_seconds``; then it hands back an opaque cursor (the day
and DynamoDB's LastEvaluatedKey, base64url JSON) from which the next request goes on. Days older than
``horizon_days`` are never looked at, so the walk ends.

Needs exactly what the instance role grants: dynamodb:Query on the table's ``newest`` index.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Callable

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from inference.contract import INDEX_KEY, NEWEST_INDEX, NEWEST_PARTITION, NEWEST_SORT, result_key_for

from .results import ResultsUnavailable, public_record

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
LOOKBACK_DAYS = 7  # days without a result one request looks at before it answers with a cursor
HORIZON_DAYS = 366  # how far back the walk goes at all
DEADLINE_SECONDS = 2.0  # a request stops querying after this long and answers with what it has, and a cursor
MAX_CURSOR_CHARS = 4096
# A query answers in milliseconds; a silent endpoint costs a request at most 2 x (1 + 2) s before it is a 503.
CLIENT_CONFIG = Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 2, "mode": "standard"})

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CURSOR_KEY_ATTRIBUTES = frozenset({INDEX_KEY, NEWEST_PARTITION, NEWEST_SORT})  # an index's LastEvaluatedKey


LOOKBACK_ENV = "FIREWATCH_RESULTS_LOOKBACK_DAYS"


def lookback_days_from_env(environ=os.environ) -> int:
    """LOOKBACK_ENV, or LOOKBACK_DAYS when unset; a bad value stops the app from starting, with what is allowed."""
    raw = environ.get(LOOKBACK_ENV, "").strip()
    if not raw:
        return LOOKBACK_DAYS
    if not re.fullmatch(r"[0-9]{1,3}", raw) or not 1 <= int(raw) <= HORIZON_DAYS:
        raise ValueError(f"{LOOKBACK_ENV} must be a whole number of days from 1 to {HORIZON_DAYS}, got {raw!r}")
    return int(raw)


class BadCursor(ValueError):
    """The cursor is not one this server handed out (edited, truncated, or from another API)."""


@dataclass(frozen=True)
class Page:
    results: list[dict]
    next_cursor: str | None  # None: there is nothing older to look at


def encode_cursor(day: str, after: dict | None) -> str:
    payload = {"day": day} if after is None else {"day": day, "after": after}
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).rstrip(b"=").decode()


def decode_cursor(text: str) -> tuple[str, dict | None]:
    """``(day, LastEvaluatedKey or None)`` from a cursor; raises BadCursor for anything this module did not write."""
    if not text or len(text) > MAX_CURSOR_CHARS or not re.fullmatch(r"[A-Za-z0-9_-]+", text):
        raise BadCursor("the cursor is not one this server handed out")
    try:
        payload = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError):
        raise BadCursor("the cursor is not one this server handed out") from None
    if not isinstance(payload, dict) or set(payload) - {"day", "after"}:
        raise BadCursor("the cursor is not one this server handed out")
    day, after = payload.get("day"), payload.get("after")
    if not isinstance(day, str) or not _is_day(day):
        raise BadCursor("the cursor names no valid day")
    if after is not None:
        if not isinstance(after, dict) or set(after) != _CURSOR_KEY_ATTRIBUTES:
            raise BadCursor("the cursor's position is not a position in the results index")
        for value in after.values():
            if not isinstance(value, dict) or set(value) != {"S"} or not isinstance(value["S"], str) or not value["S"]:
                raise BadCursor("the cursor's position is not a position in the results index")
        if after[NEWEST_PARTITION]["S"] != day:
            raise BadCursor("the cursor's position is not in its day")
    return day, after


def _is_day(text: str) -> bool:
    if not _DAY.match(text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _plain(value):
    """DynamoDB numbers come back as Decimal: whole ones as int, others as float (JSON has no Decimal)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {name: _plain(inner) for name, inner in value.items()}
    if isinstance(value, list):
        return [_plain(inner) for inner in value]
    return value


@functools.cache
def _deserializer():
    from boto3.dynamodb.types import TypeDeserializer  # boto3 is imported only when the feature is on

    return TypeDeserializer()


class IndexReader:
    """Pages through the newest results of one table; one per app, safe across threads (no shared state but the
    boto3 client, which is thread-safe)."""

    default_limit, max_limit, pages = DEFAULT_LIMIT, MAX_LIMIT, True

    def __init__(
        self,
        table: str,
        bucket: str | None = None,
        *,
        client=None,
        lookback_days: int = LOOKBACK_DAYS,
        horizon_days: int = HORIZON_DAYS,
        deadline_seconds: float = DEADLINE_SECONDS,
        today: Callable[[], date] = lambda: datetime.now(timezone.utc).date(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if lookback_days < 1:
            raise ValueError("lookback_days must be at least 1")
        self.table, self.bucket = table, bucket
        self._client = client
        self.lookback_days, self.horizon_days, self.deadline_seconds = lookback_days, horizon_days, deadline_seconds
        self._today, self._clock = today, clock

    @property
    def client(self):
        if self._client is None:
            import boto3  # only when the feature is on

            self._client = boto3.client("dynamodb", config=CLIENT_CONFIG)
        return self._client

    def prefetch(self) -> None:
        """Nothing to warm: each request queries the index (the S3 reader's interface)."""

    def latest(self, limit: int = DEFAULT_LIMIT) -> list[dict]:
        return self.page(limit).results

    def page(self, limit: int = DEFAULT_LIMIT, cursor: str | None = None) -> Page:
        """Up to ``limit`` results, newest first, from ``cursor`` on (None: from now). Raises BadCursor for a cursor
        this server did not write, ResultsUnavailable when the table cannot be read."""
        today = self._today()
        day_text, after = decode_cursor(cursor) if cursor is not None else (today.isoformat(), None)
        day, oldest = date.fromisoformat(day_text), today - timedelta(days=self.horizon_days)
        deadline = self._clock() + self.deadline_seconds
        results: list[dict] = []
        empty_days = 0
        try:
            while day >= oldest:
                items, after = self._query(day.isoformat(), after, limit - len(results))
                results.extend(record for record in map(self._record, items) if record is not None)
                if after is None:  # this day is done: go on with the day before
                    empty_days += not items
                    day -= timedelta(days=1)
                if len(results) >= limit or empty_days >= self.lookback_days or self._clock() >= deadline:
                    break
        except (BotoCoreError, ClientError) as error:
            log.warning("cannot query the %s index of table %s: %s", NEWEST_INDEX, self.table, error)
            raise ResultsUnavailable("the results table cannot be read") from error
        return Page(results, encode_cursor(day.isoformat(), after) if day >= oldest else None)

    def _query(self, day: str, after: dict | None, limit: int) -> tuple[list[dict], dict | None]:
        request = {
            "TableName": self.table,
            "IndexName": NEWEST_INDEX,
            "KeyConditionExpression": "#day = :day",
            "ExpressionAttributeNames": {"#day": NEWEST_PARTITION},
            "ExpressionAttributeValues": {":day": {"S": day}},
            "ScanIndexForward": False,  # newest first
            "Limit": limit,
        }
        if after is not None:
            request["ExclusiveStartKey"] = after
        response = self.client.query(**request)
        return response.get("Items", []), response.get("LastEvaluatedKey") or None

    def _record(self, item: dict) -> dict | None:
        deserializer = _deserializer()
        raw = _plain({name: deserializer.deserialize(value) for name, value in item.items()})
        key, result_key = raw.get(INDEX_KEY), raw.get("result_key")
        if not isinstance(result_key, str) or not result_key:
            result_key = result_key_for(key) if isinstance(key, str) and key else None
        record = public_record(raw, result_key, None) if result_key else None
        if record is None:
            log.warning("skipping item %r of table %s: not a result", key, self.table)
        return record
