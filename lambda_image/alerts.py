"""Fire alerts: one SNS message per image classified as fire.

Delivery is at least once (see ``lambda_image.pipeline``): ``bucket``, ``key``, ``etag`` and ``sequencer`` together
name the object version, so a subscriber can drop the rare repeat.
"""

from __future__ import annotations

import json

ALERT_TOPIC_ENV = "ALERT_TOPIC_ARN"
# SNS subjects must be ASCII without line breaks; keys can be anything, so they go in the body only.
SUBJECT = "Firewatch: fire detected"


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


def publish_fire_alert(sns_client, topic_arn: str, message: dict) -> str:
    """Publish ``message`` as JSON; returns the SNS message id."""
    response = sns_client.publish(TopicArn=topic_arn, Subject=SUBJECT, Message=json.dumps(message))
    return response["MessageId"]
