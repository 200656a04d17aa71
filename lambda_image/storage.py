"""The bucket side: open an upload (its size known before its bytes are read), read and write its result.

Results are written conditionally (``If-None-Match``/``If-Match`` on the result object's ETag): of two writers
that read the same state, one wins and the other learns it, re-reads and decides again.

Needs s3:GetObject (and s3:GetObjectVersion) on uploads, s3:GetObject and s3:PutObject on results, and
s3:ListBucket on the bucket: without it S3 answers 403, not 404, for a result that does not exist yet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

# Answers that mean "the world moved on", not a failure worth a retry.
_MISSING = {"NoSuchKey", "NoSuchVersion", "404"}
_PRECONDITION_FAILED = {"PreconditionFailed", "412"}
# S3 refuses a conditional write while another one on the same key is in flight: also a lost race.
_CONFLICT = {"ConditionalRequestConflict", "409"}


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


@dataclass
class OpenedObject:
    """An upload whose metadata has arrived and whose body has not been read yet."""

    size: int
    etag: str  # without quotes, like the etag in S3 events
    body: Any  # botocore StreamingBody: read it, or close it unread

    def close(self) -> None:
        self.body.close()


@dataclass(frozen=True)
class StoredResult:
    record: dict
    object_etag: str  # the result object's own ETag, for a conditional overwrite


class Bucket:
    """One bucket's uploads and results, through ``s3_client``."""

    def __init__(self, s3_client, name: str) -> None:
        self._s3 = s3_client
        self.name = name

    def open_upload(self, key: str, etag: str | None, version_id: str | None = None) -> OpenedObject | None:
        """Open the object version the event names, or ``None`` if it is gone.

        With a version id (versioned buckets), that version is read even after a newer one replaced it, so a retry
        still sees the bytes its event was about. Without one, ``If-Match`` on the event's etag: a replaced object
        has an event of its own, which will classify it.
        """
        request = {"Bucket": self.name, "Key": key}
        if version_id:
            request["VersionId"] = version_id
        if etag:
            request["IfMatch"] = f'"{etag}"'
        try:
            response = self._s3.get_object(**request)
        except ClientError as error:
            if _error_code(error) in _MISSING | _PRECONDITION_FAILED:
                return None
            raise
        return OpenedObject(size=int(response["ContentLength"]), etag=response["ETag"].strip('"'), body=response["Body"])

    def read_result(self, key: str) -> StoredResult | None:
        try:
            response = self._s3.get_object(Bucket=self.name, Key=key)
        except ClientError as error:
            if _error_code(error) in _MISSING:
                return None
            raise
        with response["Body"] as body:
            raw = body.read()
        try:
            record = json.loads(raw)
        except ValueError:
            record = {}  # not ours or damaged: it gets replaced
        return StoredResult(record if isinstance(record, dict) else {}, response["ETag"])

    def write_result(self, key: str, record: dict, replacing: StoredResult | None) -> str | None:
        """Write ``record`` unless someone else wrote this result since ``replacing`` was read.

        Returns the new result object's ETag (for a later conditional update), or ``None`` if the race was lost.
        """
        condition = {"IfMatch": replacing.object_etag} if replacing else {"IfNoneMatch": "*"}
        try:
            response = self._s3.put_object(
                Bucket=self.name,
                Key=key,
                Body=json.dumps(record).encode("utf-8"),
                ContentType="application/json",
                **condition,
            )
        except ClientError as error:
            if _error_code(error) in _PRECONDITION_FAILED | _CONFLICT:
                return None
            raise
        return response["ETag"]
