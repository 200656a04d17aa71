"""The demo's log: one readable line per upload, per failed message and per fire alert."""

from __future__ import annotations

import json
from urllib.parse import unquote_plus

from botocore.exceptions import ClientError

from inference.contract import INDEX_KEY, result_key_for

from .poller import BatchOutcome, Message


def upload_keys(body: str) -> list[str]:
    """The object keys an S3 notification body names (decoded as S3 encodes them); [] for anything else."""
    try:
        event = json.loads(body)
        return [unquote_plus(record["s3"]["object"]["key"]) for record in event["Records"]]
    except (ValueError, KeyError, TypeError):
        return []


def is_test_event(body: str) -> bool:
    """S3's one-off message when a notification is configured."""
    try:
        return json.loads(body).get("Event") == "s3:TestEvent"
    except (ValueError, AttributeError):
        return False


def verdict(record: dict | None) -> str:
    """``fire 0.97``, ``nofire 0.03`` or ``error corrupt_image: <message>``."""
    if record is None:
        return "no result"
    error = record.get("error")
    if isinstance(error, dict):
        return f"error {error.get('code')}: {error.get('message')}"
    return f"{record.get('label')} {float(record.get('fire_probability', 0)):.2f}"


def batch_lines(outcome: BatchOutcome, results: dict[str, dict | None], max_receives: int,
                retry_seconds: int) -> list[str]:
    """The lines for one handler invocation: each upload's verdict, each failed message's fate."""
    took = f"{outcome.seconds * 1000:.0f} ms" + (f", batch of {len(outcome.messages)}" if len(outcome.messages) > 1 else "")
    lines = []
    for message in outcome.succeeded:
        for key in upload_keys(message.body):
            lines.append(f"[serverless] {key} -> {verdict(results.get(key))} ({took})")
    for message in outcome.failed:
        lines.append(failure_line(message, outcome.error, max_receives, retry_seconds))
    return lines


def failure_line(message: Message, why: str | None, max_receives: int, retry_seconds: int) -> str:
    keys = upload_keys(message.body)
    what = ", ".join(keys) if keys else f"message {message.message_id} (not an S3 notification)"
    reason = f": {why}" if why else ""
    if message.receive_count >= max_receives:
        fate = "moves to the dead-letter queue"
    else:
        fate = f"retried in {retry_seconds} s"
    return f"[serverless] {what} failed (attempt {message.receive_count} of {max_receives}){reason}; {fate}"


def alert_line(body: str) -> str:
    try:
        alert = json.loads(body)
        return f"[alert] fire in {alert['key']} (fire probability {float(alert['fire_probability']):.2f}), sent to SNS"
    except (ValueError, KeyError, TypeError):
        return f"[alert] {body[:200]}"


class ResultReader:
    """The results of uploads: from the results table when the handler wrote it, else from results/<key>.json."""

    def __init__(self, s3, dynamodb, bucket: str, table: str) -> None:
        self.s3, self.dynamodb, self.bucket, self.table = s3, dynamodb, bucket, table

    def read(self, keys: list[str]) -> dict[str, dict | None]:
        found = self._from_table(sorted(set(keys)))
        for key in keys:
            if found.get(key) is None:
                found[key] = self._from_bucket(key)
        return found

    def _from_table(self, keys: list[str]) -> dict[str, dict | None]:
        from boto3.dynamodb.types import TypeDeserializer

        found: dict[str, dict | None] = {}
        deserialize = TypeDeserializer().deserialize
        for start in range(0, len(keys), 100):  # BatchGetItem takes 100 keys
            request = {self.table: {"Keys": [{INDEX_KEY: {"S": key}} for key in keys[start : start + 100]]}}
            try:
                items = self.dynamodb.batch_get_item(RequestItems=request)["Responses"].get(self.table, [])
            except ClientError:
                return found
            for item in items:
                record = {name: deserialize(value) for name, value in item.items()}
                found[record[INDEX_KEY]] = record
        return found

    def _from_bucket(self, key: str) -> dict | None:
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=result_key_for(key))["Body"].read()
            return json.loads(body)
        except (ClientError, ValueError):
            return None
