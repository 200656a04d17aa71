"""Fire alerts: one SNS message per image classified as fire, readable by people and parseable by programs.

The message is published with ``MessageStructure="json"``: e-mail (and SMS, which reads ``default``) gets a subject
naming the image and a short text with a console link; ``sqs``, ``lambda``, ``http(s)``, ``email-json`` and
``firehose`` subscribers get the JSON document of :func:`fire_alert`, whose fields are unchanged.

Delivery is at least once (see ``lambda_image.pipeline``): ``bucket``, ``key``, ``etag`` and ``sequencer`` together
name the object version, so a subscriber can drop the rare repeat.
"""

from __future__ import annotations

import json
import math
from urllib.parse import quote

ALERT_TOPIC_ENV = "ALERT_TOPIC_ARN"
# SNS subjects: ASCII, no line breaks or control characters, fewer than 100 characters.
MAX_SUBJECT = 99
# Protocols that receive the JSON document; every other one (email, sms...) reads the `default` text.
JSON_PROTOCOLS = ("sqs", "lambda", "http", "https", "email-json", "firehose")


def fire_alert(result: dict, result_uri: str, threshold: float) -> dict:
    """The alert's body: enough to act on without opening the result."""
    return {
        "alert": "fire_detected",
        "bucket": result["bucket"],
        "key": result["key"],
        "etag": result.get("etag"),
        "sequencer": result.get("sequencer"),
        "fire_probability": result["fire_probability"],
        "threshold": threshold,
        "model_version": result["model_version"],
        "image_uri": result["source"],
        "result_uri": result_uri,
        "classified_at": result["classified_at"],
    }


def subject(message: dict) -> str:
    """``Fire detected: <key> (97 %)``: the key made ASCII-safe, and shortened from the front when too long."""
    key = "".join(c if " " <= c <= "~" else "?" for c in message["key"])
    head, tail = "Fire detected: ", f" ({_percent(message['fire_probability'], 0)})"
    room = MAX_SUBJECT - len(head) - len(tail)
    if len(key) > room:  # the end of a key (the file name) says more than its start
        key = "..." + key[len(key) - room + 3 :]
    return head + key + tail


def console_url(bucket: str, key: str, region: str) -> str:
    """The S3 console page of the object (the key fully URL-encoded)."""
    return f"https://{region}.console.aws.amazon.com/s3/object/{bucket}?region={region}&prefix={quote(key, safe='')}"


def text(message: dict, region: str) -> str:
    """The e-mail body: what was seen, how sure, when, and where to look."""
    return "\n".join(
        [
            "Firewatch classified an uploaded image as fire.",
            "",
            f"Image:       {message['key']}",
            f"Bucket:      {message['bucket']}",
            f"Verdict:     fire, probability {_percent(message['fire_probability'], 1)}"
            f" (threshold {_percent(message['threshold'], 1)})",
            f"Model:       {message['model_version']}",
            f"Classified:  {message['classified_at']}",
            "",
            f"Open the image: {console_url(message['bucket'], message['key'], region)}",
            f"Result:         {message['result_uri']}",
        ]
    )


def structured(message: dict, region: str) -> str:
    """The ``MessageStructure="json"`` body: readable text by default, the JSON document for programs."""
    readable, document = text(message, region), json.dumps(message)
    return json.dumps({"default": readable, "email": readable, **{protocol: document for protocol in JSON_PROTOCOLS}})


def publish_fire_alert(sns_client, topic_arn: str, message: dict) -> str:
    """Publish ``message`` (readable for people, JSON for programs); returns the SNS message id."""
    response = sns_client.publish(
        TopicArn=topic_arn,
        Subject=subject(message),
        Message=structured(message, sns_client.meta.region_name),
        MessageStructure="json",
    )
    return response["MessageId"]


def _percent(probability: float, digits: int) -> str:
    """Rounded down, so 0.996 reads 99 %, not a certainty the model did not give."""
    scale = 10**digits
    # round() first: 0.29 * 100 is 28.999999999999996 in binary floating point
    return f"{math.floor(round(probability * 100 * scale, 6)) / scale:.{digits}f} %"
