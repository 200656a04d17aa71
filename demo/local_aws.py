"""The demo's AWS resources on the local endpoint, shaped like the deployed ones.

The upload bucket notifies an SQS queue of every object created under ``uploads/``; the queue hands a message to
its dead-letter queue after ``max_receives`` receives; the results table has the contract's key and ``newest``
index; fire alerts go to an SNS topic, which a queue of the demo's own reads to print them. Local only: results
are readable without credentials (a bucket policy on ``results/*``), so that ``curl`` can fetch them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from inference.contract import RESULT_PREFIX, UPLOAD_PREFIX, results_table_definition

UPLOAD_QUEUE = "firewatch-uploads"
DEAD_LETTER_QUEUE = "firewatch-uploads-dlq"
RESULTS_TABLE = "firewatch-results"
ALERT_TOPIC = "firewatch-alerts"
ALERT_PRINTER_QUEUE = "firewatch-alerts-local"
MAX_RECEIVES = 3  # receives before a message goes to the dead-letter queue
VISIBILITY_TIMEOUT_SECONDS = 5  # a failed message is retried this long after it was received


@dataclass(frozen=True)
class LocalResources:
    bucket: str
    queue_url: str
    dead_letter_queue_url: str
    table: str
    alert_topic_arn: str
    alert_printer_url: str


def create_resources(session, bucket: str, max_receives: int = MAX_RECEIVES,
                     visibility_timeout: int = VISIBILITY_TIMEOUT_SECONDS) -> LocalResources:
    """Create everything on the endpoint ``session``'s clients point at; returns their names and URLs."""
    s3, sqs, sns, dynamodb = (session.client(name) for name in ("s3", "sqs", "sns", "dynamodb"))
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(results_readable_policy(bucket)))

    dead_letter_url = sqs.create_queue(QueueName=DEAD_LETTER_QUEUE)["QueueUrl"]
    queue_url = sqs.create_queue(QueueName=UPLOAD_QUEUE, Attributes={
        "VisibilityTimeout": str(visibility_timeout),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": queue_arn(sqs, dead_letter_url),
                                     "maxReceiveCount": max_receives}),
    })["QueueUrl"]
    notify_queue_of_uploads(s3, bucket, queue_arn(sqs, queue_url))
    # The notification's set-up message (s3:TestEvent) is the handler's to skip, as in AWS: left in the queue.

    create_results_table(dynamodb, RESULTS_TABLE)

    topic_arn = sns.create_topic(Name=ALERT_TOPIC)["TopicArn"]
    printer_url = sqs.create_queue(QueueName=ALERT_PRINTER_QUEUE)["QueueUrl"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn(sqs, printer_url),
                  Attributes={"RawMessageDelivery": "true"})
    return LocalResources(bucket, queue_url, dead_letter_url, RESULTS_TABLE, topic_arn, printer_url)


def queue_arn(sqs, queue_url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def notify_queue_of_uploads(s3, bucket: str, arn: str) -> None:
    """S3 -> SQS for objects created under uploads/ (the deployed bucket's notification)."""
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [{
        "Id": "firewatch-uploads", "QueueArn": arn, "Events": ["s3:ObjectCreated:*"],
        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": UPLOAD_PREFIX}]}},
    }]})


def results_readable_policy(bucket: str) -> dict:
    """Anyone may read results/* of the LOCAL bucket (so curl can); the deployed bucket blocks public access."""
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "LocalDemoResultsAreReadable", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/{RESULT_PREFIX}*",
    }]}


def create_results_table(dynamodb, name: str) -> None:
    """The results index: one item per upload key, and the ``newest`` index (day, classified_at)."""
    dynamodb.create_table(**results_table_definition(name))
