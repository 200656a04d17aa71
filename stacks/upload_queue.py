"""The upload queue: ``uploads/`` notifications -> an SQS queue the classifier consumes in batches, with its own
dead-letter queue. AWS's recommended shape for a high-volume S3 pipeline: the queue absorbs bursts, the function
takes up to ``queueBatchSize`` uploads per invocation, and a message that keeps failing is set aside after
``MAX_RECEIVE_COUNT`` receives instead of blocking or looping. It also offers its alarms and its part of the dashboard.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.capability import Capability
from stacks.config import UPLOADS_PREFIX, FirewatchConfig
from stacks.nag import acknowledge
from stacks.observability import FIVE_MINUTES, AlarmSpec, DashboardSection, graph

# Receives before a message goes to the dead-letter queue: a transient error (throttling, an S3 hiccup) gets two
# more tries, a poison message costs three small invocations at most.
MAX_RECEIVE_COUNT = 3
RETENTION = Duration.days(4)  # SQS's default, kept explicit: the dead-letter queue must keep messages longer
DEAD_LETTER_RETENTION = Duration.days(14)  # SQS's maximum: time to read, fix and redrive


class UploadQueue(Capability):
    def __init__(self, scope: Construct, *, config: FirewatchConfig, bucket: s3.Bucket) -> None:
        super().__init__(scope)
        self.config = config
        self.dead_letters = sqs.Queue(
            self.scope,
            "UploadDeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=DEAD_LETTER_RETENTION,
        )
        # No AwsSolutions-SQS3 finding to acknowledge: cdk-nag sees the upload queue's redrive policy name this queue.
        self.queue = sqs.Queue(
            self.scope,
            "UploadQueue",
            # SQS-managed keys: S3 cannot send to a queue under the AWS managed KMS key (aws/sqs).
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=RETENTION,
            visibility_timeout=Duration.seconds(config.queue_visibility_timeout_seconds),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letters, max_receive_count=MAX_RECEIVE_COUNT),
        )
        bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3n.SqsDestination(self.queue),
            # Results are written under results/: filtering on uploads/ means a result can never re-trigger the function.
            s3.NotificationKeyFilter(prefix=UPLOADS_PREFIX),
        )
        self._acknowledge_notifications_handler(bucket)

    @staticmethod
    def _acknowledge_notifications_handler(bucket: s3.Bucket) -> None:
        """The CDK's own singleton Lambda that configures bucket notifications (a deploy-time custom resource)."""
        for child in Stack.of(bucket).node.children:
            if child.node.id.startswith("BucketNotificationsHandler"):
                acknowledge(
                    child,
                    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
                    "CDK-provided deploy-time handler that sets the bucket notification; it only writes its own logs.",
                )

    # ---- monitoring ----------------------------------------------------------------------------------------------

    @property
    def oldest_message_alarm_seconds(self) -> int:
        """Older than any message still being retried can be (every receive plus its visibility timeout): a backlog."""
        return MAX_RECEIVE_COUNT * self.config.queue_visibility_timeout_seconds + 60

    def _oldest(self) -> cw.Metric:
        return self.queue.metric_approximate_age_of_oldest_message(statistic="Maximum", period=FIVE_MINUTES)

    def _dead_letters(self) -> cw.Metric:
        return self.dead_letters.metric_approximate_number_of_messages_visible(statistic="Maximum", period=FIVE_MINUTES)

    def alarm_specs(self) -> list[AlarmSpec]:
        return [
            AlarmSpec(
                "UploadQueueOldestMessage", self._oldest(), self.oldest_message_alarm_seconds, 1,
                "Uploads wait in the upload queue longer than its retries take: the classifier is not keeping up",
            ),
            AlarmSpec(
                "UploadDeadLettersNotEmpty", self._dead_letters(), 1, 1,
                f"Upload queue messages failed {MAX_RECEIVE_COUNT} receives and wait in its dead-letter queue",
            ),
        ]  # fmt: skip

    def dashboard_section(self) -> DashboardSection:
        q = self.queue
        return DashboardSection(
            "upload queue",
            [
                [
                    graph(
                        "Upload queue: sent / received / deleted",
                        [
                            q.metric_number_of_messages_sent(statistic="Sum", period=FIVE_MINUTES),
                            q.metric_number_of_messages_received(statistic="Sum", period=FIVE_MINUTES),
                            q.metric_number_of_messages_deleted(statistic="Sum", period=FIVE_MINUTES),
                        ],
                    ),
                    graph(
                        "Upload queue: visible / in flight",
                        [
                            q.metric_approximate_number_of_messages_visible(statistic="Maximum", period=FIVE_MINUTES),
                            q.metric_approximate_number_of_messages_not_visible(statistic="Maximum", period=FIVE_MINUTES),
                        ],
                    ),
                    graph("Upload queue: age of oldest message (s)", [self._oldest()]),
                ],
            ],
        )
