"""The fire alert as its readers get it: a readable e-mail (subject, text, console link), JSON for programs."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns.models import sns_backends

from lambda_image.alerts import JSON_PROTOCOLS, MAX_SUBJECT, console_url, fire_alert, publish_fire_alert, subject

REGION = "eu-west-1"


def _message(key: str = "uploads/cam1/0420.jpg", probability: float = 0.9731) -> dict:
    result = {
        "bucket": "firewatch-uploads", "key": key, "etag": "abc", "sequencer": "0055AED6DCD90281E5",
        "fire_probability": probability, "model_version": "2026-11-29-e5c2675d",
        "source": f"s3://firewatch-uploads/{key}", "classified_at": "2026-11-29T20:01:02.123+00:00",
    }  # fmt: skip
    return fire_alert(result, f"s3://firewatch-uploads/results/{key.removeprefix('uploads/')}.json", 0.42)


def test_subject_names_the_image_and_its_probability_rounded_down():
    assert subject(_message()) == "Fire detected: uploads/cam1/0420.jpg (97 %)"
    assert subject(_message(probability=0.996)) == "Fire detected: uploads/cam1/0420.jpg (99 %)"
    assert subject(_message(probability=0.29)) == "Fire detected: uploads/cam1/0420.jpg (29 %)"  # not 28 (binary float)


@pytest.mark.parametrize(
    "key",
    ["uploads/" + "a" * 1000 + "/last.jpg", "uploads/caméra\n🔥/feu.jpg", "uploads/x\r\ny\tz.jpg"],
)
def test_subject_is_ascii_one_line_and_under_snss_limit_whatever_the_key(key):
    text = subject(_message(key))
    assert len(text) <= MAX_SUBJECT < 100
    assert text.isascii() and all(" " <= c <= "~" for c in text)
    assert text.startswith("Fire detected: ") and text.endswith(" (97 %)")
    assert "jpg" in text  # a long key keeps its end: the file name


def test_console_link_encodes_the_whole_key():
    url = console_url("firewatch-uploads", "uploads/camera 1/ridge+(east)&x=1.jpg", "eu-west-1")
    assert url == (
        "https://eu-west-1.console.aws.amazon.com/s3/object/firewatch-uploads?region=eu-west-1"
        "&prefix=uploads%2Fcamera%201%2Fridge%2B%28east%29%26x%3D1.jpg"
    )


@pytest.fixture
def sns():
    with mock_aws():
        yield boto3.client("sns", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")


def test_people_get_text_and_programs_get_the_json_document(sns):
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    sqs = boto3.client("sqs", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    message = _message("uploads/camera 1/0420.jpg")

    message_id = publish_fire_alert(sns, topic, message)

    # What SNS was asked to send, per protocol.
    (sent_id, body, sent_subject, _, _), = sns_backends[DEFAULT_ACCOUNT_ID][REGION].topics[topic].sent_notifications
    assert sent_id == message_id and sent_subject == "Fire detected: uploads/camera 1/0420.jpg (97 %)"
    structure = json.loads(body)
    assert set(structure) == {"default", "email", *JSON_PROTOCOLS} and structure["email"] == structure["default"]
    for protocol in JSON_PROTOCOLS:
        assert json.loads(structure[protocol]) == message  # every field the JSON always had, unchanged
    email = structure["default"]
    for line in ("Image:       uploads/camera 1/0420.jpg", "Verdict:     fire, probability 97.3 % (threshold 42.0 %)",
                 "Classified:  2026-11-29T20:01:02.123+00:00", "Model:       2026-11-29-e5c2675d"):
        assert line in email
    assert console_url("firewatch-uploads", "uploads/camera 1/0420.jpg", REGION) in email
    assert "prefix=uploads%2Fcamera%201%2F0420.jpg" in email and "{" not in email

    # What an SQS subscriber received: the JSON document in the SNS envelope.
    (received,) = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert json.loads(json.loads(received["Body"])["Message"]) == message
