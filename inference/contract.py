"""The vocabulary every part of Firewatch shares: bucket layout, result keys and records, error codes and their
HTTP statuses, metric names and labels.

One home, so that the Lambda handler, the web app, the demo and the tests cannot drift apart. It needs nothing but
the standard library and the core's own names (error codes, labels), which it re-exports rather than re-spells.
The CDK stacks import no runtime code; ``tests/infra/test_config.py`` holds their copies of these names to this
module instead.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

from .errors import CORRUPT_IMAGE, EMPTY_FILE, NOT_FOUND, TOO_COMPLEX, TOO_LARGE, TOO_MANY_PIXELS, UNSUPPORTED_FORMAT
from .model import NEGATIVE_LABEL as NOFIRE
from .model import POSITIVE_LABEL as FIRE

LABELS = (NOFIRE, FIRE)

# ---------------------------------------------------------------------------------------------------- bucket layout
# Uploads under uploads/ trigger the function; results go under results/. The trigger is filtered on uploads/, so
# writing a result can never trigger the function again.
UPLOAD_PREFIX = "uploads/"
RESULT_PREFIX = "results/"
RESULT_SUFFIX = ".json"
MAX_KEY_BYTES = 1024  # S3's limit on a key, in UTF-8 bytes


def result_key_for(key: str) -> str:
    """``uploads/<name>`` -> ``results/<name>.json``, within S3's 1,024-byte key limit.

    A key too long for that (over 1,019 bytes) keeps the first bytes of ``<name>`` that fit and ends with ``~``, the
    SHA-256 of the whole upload key in hex and ``.json``: distinct keys keep distinct results, and the result itself
    holds the full ``key``.
    """
    name = key[len(UPLOAD_PREFIX) :] if key.startswith(UPLOAD_PREFIX) else key
    plain = RESULT_PREFIX + name + RESULT_SUFFIX
    if len(plain.encode("utf-8")) <= MAX_KEY_BYTES:
        return plain
    tail = "~" + hashlib.sha256(key.encode("utf-8")).hexdigest() + RESULT_SUFFIX
    room = MAX_KEY_BYTES - len(RESULT_PREFIX) - len(tail)
    # Cutting bytes can split a character: "ignore" drops the broken end.
    head = name.encode("utf-8")[:room].decode("utf-8", "ignore")
    return RESULT_PREFIX + head + tail


def upload_name_for(result_key: str) -> str:
    """The part of the upload key a result key shows: ``results/<name>.json`` -> ``<name>`` (inverse of the above,
    except for the shortened form of over-long keys, whose full key is in the result's ``key`` field)."""
    return result_key.removeprefix(RESULT_PREFIX).removesuffix(RESULT_SUFFIX)


# ---------------------------------------------------------------------------------------------------- result record
# Fields of a stored result that readers pass on when present with this type (the serverless contract: the CLI's
# object plus bucket, key, size, etag, classified_at). ``label``/``fire_probability`` or ``error`` come on top.
RESULT_FIELD_TYPES: dict[str, type] = {
    "source": str,
    "bucket": str,
    "key": str,
    "size": int,
    "etag": str,
    "model_version": str,
    "classified_at": str,
}
ALERT_PENDING, ALERT_SENT = "pending", "sent"


@dataclass(frozen=True)
class ServerlessResult:
    """The object ``results/<key>.json``: one upload's verdict (or error), where it came from, and bookkeeping.

    ``verdict`` is the CLI's JSON object (``source`` and ``label``/``fire_probability``/``model_version``, or
    ``source`` and ``error``). ``version_id`` and ``sequencer`` come from the event and order versions of one key;
    ``alert`` and ``alert_message_id`` record a fire alert's delivery (``pending``, then ``sent``).
    """

    verdict: dict[str, Any]
    bucket: str
    key: str
    size: int
    etag: str
    classified_at: str
    version_id: str | None = None
    sequencer: str | None = None
    alert: str | None = None
    alert_message_id: str | None = None

    def to_record(self) -> dict[str, Any]:
        """The JSON object as stored, in the contract's key order, without the fields that are unset."""
        record = {**self.verdict, "bucket": self.bucket, "key": self.key, "size": self.size, "etag": self.etag,
                  "classified_at": self.classified_at}  # fmt: skip
        optional = {"version_id": self.version_id, "sequencer": self.sequencer, "alert": self.alert,
                    "alert_message_id": self.alert_message_id}  # fmt: skip
        record.update({name: value for name, value in optional.items() if value is not None})
        return record


# ---------------------------------------------------------------------------------------------------- error codes
# The core's codes (re-exported) and those of the web API. Each has one HTTP status: 415 when the bytes are not a
# format the service reads, 422 when they are but this file cannot be classified.
MISSING_FILE = "missing_file"
BAD_REQUEST = "bad_request"
TOO_MANY_PARTS = "too_many_parts"
REQUEST_TIMEOUT = "request_timeout"
BUSY = "busy"
METHOD_NOT_ALLOWED = "method_not_allowed"
URI_TOO_LONG = "uri_too_long"
HEADERS_TOO_LARGE = "headers_too_large"
INTERNAL_ERROR = "internal_error"
RESULTS_DISABLED = "results_disabled"
RESULTS_UNAVAILABLE = "results_unavailable"
MAP_UNAVAILABLE = "map_unavailable"

HTTP_STATUS_BY_CODE: dict[str, int] = {
    MISSING_FILE: 400,
    BAD_REQUEST: 400,
    TOO_LARGE: 413,
    TOO_MANY_PARTS: 413,  # the form, not the photo: more parts (or a larger text field) than the limits
    REQUEST_TIMEOUT: 408,  # the upload arrived too slowly (web_app/worker.py)
    BUSY: 503,  # too many large photos waiting to be decoded (web_app/admission.py)
    UNSUPPORTED_FORMAT: 415,
    EMPTY_FILE: 422,
    CORRUPT_IMAGE: 422,
    TOO_MANY_PIXELS: 422,
    TOO_COMPLEX: 422,
    NOT_FOUND: 404,
    METHOD_NOT_ALLOWED: 405,
    INTERNAL_ERROR: 500,
    RESULTS_DISABLED: 404,  # this server has no results bucket configured
    RESULTS_UNAVAILABLE: 503,  # the results bucket cannot be read right now
    MAP_UNAVAILABLE: 409,  # a fire map was asked of a model without one (a 4xx: no server fault, no 5xx alarm)
}
# What gunicorn answers before the app runs (web_app/worker.py), in the same error form; not app responses.
SERVER_ERROR_CODES: dict[int, str] = {400: BAD_REQUEST, 403: "forbidden", 414: URI_TOO_LONG, 417: "expectation_failed",
                                      431: HEADERS_TOO_LARGE, 500: INTERNAL_ERROR, 501: "not_implemented"}


def http_status(code: str) -> int:
    """The HTTP status of an error code (400 for a code this table does not know)."""
    return HTTP_STATUS_BY_CODE.get(code, 400)


# ---------------------------------------------------------------------------------------------------- metrics
SERVICE_NAME = "firewatch"  # POWERTOOLS_SERVICE_NAME: the `service` dimension of the custom metrics
# The deployment's envName, the `environment` dimension of every custom metric: two deployments in one account and
# region (dev and prod) must not count into each other's dashboards and alarms. Unset (a local run): "local".
ENVIRONMENT_ENV = "FIREWATCH_ENVIRONMENT"
ENVIRONMENT_DIMENSION = "environment"
LOCAL_ENVIRONMENT = "local"
METRICS_NAMESPACE = "Firewatch"  # POWERTOOLS_METRICS_NAMESPACE
IMAGES_CLASSIFIED = "ImagesClassified"
FIRE_DETECTED = "FireDetected"
# Classified images whose verdict is borderline (Prediction.certainty): as a share of ImagesClassified, how often the
# model is unsure. A rise means uploads unlike the photos it was trained on (a new camera, indoor scenes, night).
BORDERLINE_VERDICTS = "BorderlineVerdicts"
INVALID_IMAGES = "InvalidImages"
INFERENCE_LATENCY = "InferenceLatency"  # milliseconds
REFUSED_RECORDS = "RefusedRecords"  # event records from a bucket other than the upload bucket
MALFORMED_RECORDS = "MalformedRecords"  # event records not shaped like an S3 notification
BATCH_ITEM_FAILURES = "BatchItemFailures"  # upload queue messages reported failed (delivered again, then dead-lettered)
# The web app's counterpart: its access log line carries these counts for a request that classified photos, and
# metric filters on its log group (stacks/web_servers.py) turn them into the WEB_* metrics.
VERDICT_LOG_FIELDS = {"classified": "WebImagesClassified", "fire": "WebFireDetected", "borderline": "WebBorderlineVerdicts"}
CUSTOM_METRICS = (IMAGES_CLASSIFIED, FIRE_DETECTED, BORDERLINE_VERDICTS, INVALID_IMAGES, INFERENCE_LATENCY, REFUSED_RECORDS,
                  MALFORMED_RECORDS, BATCH_ITEM_FAILURES)


def environment() -> str:
    """This deployment's name, for the ``environment`` dimension (``FIREWATCH_ENVIRONMENT``, else ``local``)."""
    return os.environ.get(ENVIRONMENT_ENV) or LOCAL_ENVIRONMENT


# ---------------------------------------------------------------------------------------------------- results index
# Every result is also an item of a DynamoDB table (results/<key>.json stays the durable artefact users read). The
# function writes it; the web app, the demo and the ops commands read it. One item per upload key:
#   key (partition key, S)     the upload's object key, "uploads/..."
#   the result record's fields (ServerlessResult.to_record(): label/fire_probability/model_version or error,
#   bucket, size, etag, classified_at, version_id, sequencer, alert...), plus result_key (S) and, when a TTL is
#   configured, expires_at (N, epoch seconds; the table's TTL attribute).
# Newest first: the global secondary index NEWEST_INDEX, partition NEWEST_PARTITION (the UTC day "YYYY-MM-DD" of
# classified_at, so writes spread over one partition a day instead of one for ever) and sort key
# NEWEST_SORT (classified_at, ISO 8601 UTC, which sorts as text). Readers walk days backwards.
RESULTS_TABLE_ENV = "FIREWATCH_RESULTS_TABLE"
INDEX_KEY = "key"
NEWEST_INDEX = "newest"
NEWEST_PARTITION = "day"
NEWEST_SORT = "classified_at"
INDEX_EXPIRES_AT = "expires_at"


def results_table_definition(name: str) -> dict:
    """``CreateTable`` arguments for the results index as the stack declares it (stacks/results_index.py): what the
    local demo, the benchmarks and the tests create, so that none of them can drift from this contract."""
    return {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": attribute, "AttributeType": "S"}
                                 for attribute in (INDEX_KEY, NEWEST_PARTITION, NEWEST_SORT)],  # fmt: skip
        "KeySchema": [{"AttributeName": INDEX_KEY, "KeyType": "HASH"}],
        "GlobalSecondaryIndexes": [{
            "IndexName": NEWEST_INDEX,
            "KeySchema": [{"AttributeName": NEWEST_PARTITION, "KeyType": "HASH"},
                          {"AttributeName": NEWEST_SORT, "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"},
        }],
    }  # fmt: skip


def index_day(classified_at: str) -> str:
    """The NEWEST_PARTITION value of a result: the UTC date part of its ``classified_at``."""
    return classified_at[:10]


# ---------------------------------------------------------------------------------------------------- upload queue
# uploads/ notifications reach the function through an SQS queue. A message body is an S3 event notification
# (what S3 sends: {"Records": [...]}, or S3's one-off "s3:TestEvent", which is skipped). The backfill command
# enqueues bodies of the same shape for objects already in the bucket (no sequencer), so one parser serves both.
# The function answers an SQS batch with {"batchItemFailures": [{"itemIdentifier": <messageId>}, ...]}.
UPLOAD_QUEUE_ENV = "FIREWATCH_UPLOAD_QUEUE_URL"
