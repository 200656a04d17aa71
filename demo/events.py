"""Turn bucket changes into the S3 ``ObjectCreated`` events Lambda would receive.

Local S3 has no event notifications, so the demo lists ``uploads/`` and emits an event for each
object version it has not seen (key + ETag), with the key URL-encoded as S3 encodes it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from urllib.parse import quote_plus

from inference.contract import UPLOAD_PREFIX


def object_created_event(bucket: str, key: str, size: int, etag: str, region: str = "us-east-1") -> dict:
    """One S3 notification record, shaped like the real ones (see the AWS S3 event message structure)."""
    now = dt.datetime.now(dt.timezone.utc)
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": region,
                "eventTime": now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "LOCAL"},
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {"x-amz-request-id": uuid.uuid4().hex[:16].upper(), "x-amz-id-2": "local"},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "firewatch-local-uploads",
                    "bucket": {"name": bucket, "ownerIdentity": {"principalId": "LOCAL"}, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": quote_plus(key, safe="/"), "size": size, "eTag": etag.strip('"'), "sequencer": f"{now.timestamp():.6f}".replace(".", "")},
                },
            }
        ]
    }


@dataclass
class BucketWatcher:
    s3: object  # a boto3 S3 client
    bucket: str
    seen: set[tuple[str, str]] = field(default_factory=set)

    def new_events(self) -> list[dict]:
        """Events for objects under uploads/ that are new or changed since the last call."""
        events = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=UPLOAD_PREFIX):
            for obj in page.get("Contents", []):
                marker = (obj["Key"], obj["ETag"])
                if marker in self.seen or obj["Key"].endswith("/"):
                    continue
                self.seen.add(marker)
                events.append(object_created_event(self.bucket, obj["Key"], obj["Size"], obj["ETag"]))
        return events
