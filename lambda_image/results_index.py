"""The results index: each result as an item of a DynamoDB table, beside ``results/<key>.json`` (the durable artefact).

One item per upload key (``inference.contract``'s "results index"). Writes are conditional, so the index keeps the
order of the S3 result whatever order writers reach it in:

- an item from an older event (a lower S3 ``sequencer``) never replaces a newer one; the comparison is
  :func:`lambda_image.events.sequencer_sort_key`, the same rule as :func:`~lambda_image.events.compare_sequencers`,
  made into a string DynamoDB can compare itself, so no read is needed and two writers cannot interleave;
- for the same event, a result whose alert is ``sent`` is final: a late ``pending`` write does not undo it;
- results of hand-made events (no sequencer) are ordered by arrival, as their S3 results are.

Needs dynamodb:PutItem on the table, nothing else.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError

from inference.contract import ALERT_SENT, INDEX_EXPIRES_AT, INDEX_KEY, NEWEST_PARTITION, RESULTS_TABLE_ENV, index_day

from .events import sequencer_sort_key

# Set by the stack when results expire (the table's TTL): days after classified_at. Unset: items never expire.
RESULTS_TTL_DAYS_ENV = "FIREWATCH_RESULTS_TTL_DAYS"
RESULT_KEY = "result_key"
# The item's sequencer as a comparable string (sequencer_sort_key); present when the result has a sequencer.
SEQUENCER_ORDER = "sequencer_order"

_serializer = TypeSerializer()
# Newer event, or the same event's result not yet final (its alert is not recorded as sent).
_IN_ORDER = (
    "attribute_not_exists(#order) OR #order < :order"
    " OR (#order = :order AND (attribute_not_exists(#alert) OR #alert <> :sent))"
)


class ResultsIndex:
    """One table's items, through a DynamoDB ``client``."""

    def __init__(self, client, table_name: str, ttl_days: int | None = None) -> None:
        self._client = client
        self.table_name = table_name
        self.ttl_days = ttl_days

    @classmethod
    def from_env(cls, client_factory) -> "ResultsIndex | None":
        """The index the function's environment names (``FIREWATCH_RESULTS_TABLE``), or ``None`` when unset."""
        table = os.environ.get(RESULTS_TABLE_ENV)
        if not table:
            return None
        days = os.environ.get(RESULTS_TTL_DAYS_ENV, "").strip()
        if days and not (days.isdigit() and int(days) > 0):
            # A setting, not an input: failing every invocation loudly (the errors alarm, this message in the log) is
            # better than writing items that expire at the wrong time or never.
            raise ValueError(f"{RESULTS_TTL_DAYS_ENV}={days!r} is not a positive number of days")
        return cls(client_factory(), table, int(days) if days else None)

    def item(self, record: dict, result_key: str) -> dict[str, Any]:
        """The item for ``record`` (a stored result): its fields, plus ``result_key``, ``day``, the ordering key and,
        with a TTL, ``expires_at``."""
        item = {**record, INDEX_KEY: record["key"], RESULT_KEY: result_key, NEWEST_PARTITION: index_day(record["classified_at"])}
        sequencer = record.get("sequencer")
        if isinstance(sequencer, str) and sequencer:
            item[SEQUENCER_ORDER] = sequencer_sort_key(sequencer)
        if self.ttl_days is not None:
            classified = datetime.fromisoformat(record["classified_at"])
            item[INDEX_EXPIRES_AT] = int((classified + timedelta(days=self.ttl_days)).timestamp())
        return item

    def put(self, record: dict, result_key: str) -> bool:
        """Write ``record``'s item unless a newer one (or this event's final one) is there; returns whether it did."""
        item = self.item(record, result_key)
        request: dict[str, Any] = {"TableName": self.table_name, "Item": _attributes(item)}
        if SEQUENCER_ORDER in item:
            request.update(
                ConditionExpression=_IN_ORDER,
                ExpressionAttributeNames={"#order": SEQUENCER_ORDER, "#alert": "alert"},
                ExpressionAttributeValues={
                    ":order": {"S": item[SEQUENCER_ORDER]},
                    ":sent": {"S": ALERT_SENT},
                },
            )
        try:
            self._client.put_item(**request)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True


def _attributes(item: dict) -> dict:
    """DynamoDB's typed attributes; floats become Decimal (DynamoDB numbers are decimal; boto3 refuses floats)."""
    return {name: _serializer.serialize(_decimals(value)) for name, value in item.items()}


def _decimals(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _decimals(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decimals(v) for v in value]
    return value
