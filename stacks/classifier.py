"""The classifier: upload queue batches -> container-image function -> ``results/``, the results index and the alert
topic. Events sent to the function directly (asynchronous invocations) keep their retries and a dead-letter queue
of their own. It also offers its alarms and its part of the dashboard.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.capability import Capability
from stacks.config import (
    BATCH_ITEM_FAILURES, BORDERLINE_VERDICTS, ENVIRONMENT_DIMENSION, ENVIRONMENT_ENV, METRICS_NAMESPACE, RESULTS_PREFIX,
    RESULTS_TABLE_ENV, RESULTS_TTL_DAYS_ENV, SERVICE_NAME, UPLOADS_PREFIX, FirewatchConfig,
)  # fmt: skip
from stacks.image import FirewatchImage
from stacks.logs import log_retention
from stacks.nag import acknowledge
from stacks.observability import (
    FIVE_MINUTES, AlarmSpec, DashboardSection, borderline_share, graph, unfamiliar_uploads_alarm,
)
from stacks.results_index import ResultsIndex
from stacks.upload_queue import UploadQueue

DURATION_ALARM_FRACTION = 0.8  # of the function timeout
MAXIMUM_RETRY_ATTEMPTS = 2  # asynchronous invocations: after these retries the event goes to the dead-letter queue


class Classifier(Capability):
    def __init__(
        self,
        scope: Construct,
        *,
        config: FirewatchConfig,
        image: FirewatchImage,
        bucket: s3.Bucket,
        alert_topic: sns.ITopic,
        upload_queue: UploadQueue,
        results_index: ResultsIndex,
    ) -> None:
        super().__init__(scope)
        self.config, self.bucket, self.alert_topic = config, bucket, alert_topic
        self.upload_queue, self.results_table = upload_queue, results_index.table
        self.dead_letter_queue = sqs.Queue(
            self.scope,
            "FailedEvents",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(self.dead_letter_queue, "AwsSolutions-SQS3", "This queue is itself the function's dead-letter queue.")
        # Direct asynchronous invocations (an operator re-sending an S3 event, another service) keep their retries and
        # this dead-letter queue; uploads come through the upload queue, which has a dead-letter queue of its own.
        self.log_group = logs.LogGroup(
            self.scope, "FunctionLogs", retention=log_retention(config.log_retention_days), removal_policy=RemovalPolicy.DESTROY
        )
        self.role = self._role()
        self.function = self._function(image)
        self._send_failed_events_to_the_queue()
        self._consume_the_upload_queue()

    def _role(self) -> iam.Role:
        role = iam.Role(
            self.scope,
            "FunctionRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Firewatch classifier: read uploads, read and write results, publish alerts, write its own logs",
        )
        # GetObjectVersion: events from the versioned bucket name a version, which a retry still reads after a
        # newer upload replaced it.
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=[self.bucket.arn_for_objects(f"{UPLOADS_PREFIX}*")],
            )
        )
        # GetObject on results/ lets the handler find an existing result: a repeated event, an alert still owed, a
        # newer event's result. Results are only ever overwritten conditionally, never deleted: no DeleteObject.
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:PutObject"], resources=[self.bucket.arn_for_objects(f"{RESULTS_PREFIX}*")]
            )
        )
        # Without ListBucket, S3 answers 403 AccessDenied, not 404, for a result that does not exist yet (every new
        # upload). The bucket holds only uploads/ and results/, which the function reads anyway.
        role.add_to_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[self.bucket.bucket_arn]))
        role.add_to_policy(iam.PolicyStatement(actions=["sns:Publish"], resources=[self.alert_topic.topic_arn]))
        # The handler only ever puts whole items (conditionally): no reads, updates or deletes, and not the indexes.
        role.add_to_policy(iam.PolicyStatement(actions=["dynamodb:PutItem"], resources=[self.results_table.table_arn]))
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[f"{self.log_group.log_group_arn}:*"]
            )
        )
        stack = Stack.of(self.scope)
        for prefix in (UPLOADS_PREFIX, RESULTS_PREFIX):
            acknowledge(
                role,
                f"AwsSolutions-IAM5[Resource::<{stack.get_logical_id(self.bucket.node.default_child)}.Arn>/{prefix}*]",
                f"Object access is limited to the {prefix} prefix of the one upload bucket.",
            )
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::<{stack.get_logical_id(self.log_group.node.default_child)}.Arn>:*]",
            "Log streams of the function's own log group; stream names are created at run time.",
        )
        return role

    def _function(self, image: FirewatchImage) -> lambda_.DockerImageFunction:
        config = self.config
        architecture = lambda_.Architecture.ARM_64 if config.architecture == "arm64" else lambda_.Architecture.X86_64
        return lambda_.DockerImageFunction(
            self.scope,
            "Classifier",
            description="Classifies images uploaded under uploads/ and writes results under results/",
            code=lambda_.DockerImageCode.from_ecr(image.asset.repository, tag_or_digest=image.asset.image_tag),
            architecture=architecture,
            memory_size=config.lambda_memory_mb,
            timeout=Duration.seconds(config.lambda_timeout_seconds),
            reserved_concurrent_executions=config.lambda_reserved_concurrency,
            role=self.role,
            log_group=self.log_group,
            environment={
                "ALERT_TOPIC_ARN": self.alert_topic.topic_arn,
                # The handler refuses records from any other bucket.
                "FIREWATCH_BUCKET": self.bucket.bucket_name,
                "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
                ENVIRONMENT_ENV: config.env_name,
                "FIREWATCH_THREADS": str(config.lambda_threads),
                RESULTS_TABLE_ENV: self.results_table.table_name,
                **({RESULTS_TTL_DAYS_ENV: str(config.results_ttl_days)} if config.results_ttl_days else {}),
            },
        )

    def _send_failed_events_to_the_queue(self) -> None:
        # Declared at the CloudFormation level so the role gets sqs:SendMessage only (the L2 destination also grants
        # read actions).
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[self.dead_letter_queue.queue_arn])
        )
        lambda_.CfnEventInvokeConfig(
            self.scope,
            "ClassifierAsyncConfig",
            function_name=self.function.function_name,
            qualifier="$LATEST",
            maximum_retry_attempts=MAXIMUM_RETRY_ATTEMPTS,
            maximum_event_age_in_seconds=int(Duration.hours(6).to_seconds()),
            destination_config=lambda_.CfnEventInvokeConfig.DestinationConfigProperty(
                on_failure=lambda_.CfnEventInvokeConfig.OnFailureProperty(destination=self.dead_letter_queue.queue_arn)
            ),
        )

    def _consume_the_upload_queue(self) -> None:
        """The event source mapping: batches from the upload queue, with partial-batch responses."""
        queue = self.upload_queue.queue
        # What Lambda's poller needs, as the function's role (the L2 SqsEventSource would also grant
        # ChangeMessageVisibility and GetQueueUrl, which neither the poller nor the handler uses).
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"], resources=[queue.queue_arn]
            )
        )
        config = self.config
        lambda_.EventSourceMapping(
            self.scope,
            "UploadQueueSource",
            target=self.function,
            event_source_arn=queue.queue_arn,
            batch_size=config.queue_batch_size,
            max_batching_window=Duration.seconds(config.queue_batch_window_seconds),
            # The handler names the messages that failed; only they are delivered again.
            report_batch_item_failures=True,
            max_concurrency=config.queue_max_concurrency,
        )

    # ---- monitoring ----------------------------------------------------------------------------------------------

    def _custom(self, name: str, statistic: str = "Sum") -> cw.Metric:
        """A metric the handler emits through Powertools (namespace Firewatch, dimensions service=firewatch and
        environment=envName: another deployment in the account counts under its own)."""
        return cw.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=name,
            dimensions_map={"service": SERVICE_NAME, ENVIRONMENT_DIMENSION: self.config.env_name},
            statistic=statistic,
            period=FIVE_MINUTES,
        )

    def _queue_depth(self) -> cw.Metric:
        return self.dead_letter_queue.metric_approximate_number_of_messages_visible(statistic="Maximum", period=FIVE_MINUTES)

    def _both_dead_letter_queues(self) -> list[cw.Metric]:
        upload_dead_letters = self.upload_queue.dead_letters.metric_approximate_number_of_messages_visible(
            statistic="Maximum", period=FIVE_MINUTES, label="upload queue's dead letters"
        )
        return [self._queue_depth().with_(label="failed direct invocations"), upload_dead_letters]

    def alarm_specs(self) -> list[AlarmSpec]:
        fn, timeout_s = self.function, self.config.lambda_timeout_seconds
        rejected = cw.MathExpression(
            expression="refused + malformed",
            using_metrics={"refused": self._custom("RefusedRecords"), "malformed": self._custom("MalformedRecords")},
            period=FIVE_MINUTES,
            label="Rejected event records",
        )
        return [
            AlarmSpec(
                "LambdaErrors", fn.metric_errors(statistic="Sum", period=FIVE_MINUTES), 1, 1,
                "The classifier function failed (the event is retried, then sent to the dead-letter queue)",
            ),
            AlarmSpec(
                "LambdaDurationNearTimeout", fn.metric_duration(statistic="Maximum", period=FIVE_MINUTES),
                DURATION_ALARM_FRACTION * (timeout_s * 1000), 1,
                f"An invocation took over {int(DURATION_ALARM_FRACTION * 100)}% of the {timeout_s} s timeout",
            ),
            AlarmSpec(
                "LambdaThrottles", fn.metric_throttles(statistic="Sum", period=FIVE_MINUTES), 1, 1,
                "Invocations were throttled (concurrency limit reached)",
            ),
            AlarmSpec(
                "DeadLetterQueueNotEmpty", self._queue_depth(), 1, 1,
                "Upload events that failed every retry are waiting in the dead-letter queue",
            ),
            AlarmSpec(
                "RejectedEventRecords", rejected, 1, 1,
                "The function received event records it refused (another bucket) or could not parse; see its log",
            ),
            AlarmSpec(
                "BatchItemFailures", self._custom(BATCH_ITEM_FAILURES), 1, 1,
                "Upload queue messages failed and will be delivered again (then dead-lettered); see the function's log",
            ),
            unfamiliar_uploads_alarm(
                "UnfamiliarUploads", self._custom("ImagesClassified"), self._custom(BORDERLINE_VERDICTS), "uploaded images",
            ),
        ]  # fmt: skip

    def dashboard_section(self) -> DashboardSection:
        fn = self.function
        invocations = fn.metric_invocations(statistic="Sum", period=FIVE_MINUTES)
        errors = fn.metric_errors(statistic="Sum", period=FIVE_MINUTES)
        success_rate = cw.MathExpression(
            expression="IF(invocations > 0, 100 * (invocations - FILL(errors, 0)) / invocations)",
            using_metrics={"invocations": invocations, "errors": errors},
            label="Success rate (%)",
            period=FIVE_MINUTES,
        )
        # How often the model is unsure: out of fold (sources it never saw) a third of verdicts are borderline; on
        # photos like its training sources about 5 %; a rise means uploads unlike what it learned from.
        borderline = borderline_share(self._custom("ImagesClassified"), self._custom(BORDERLINE_VERDICTS))
        percentiles = ("p50", "p90", "p99")
        return DashboardSection(
            "serverless classifier",
            [
                [
                    graph("Lambda invocations and errors", [invocations, errors]),
                    graph(
                        "Lambda duration (ms)",
                        [fn.metric_duration(statistic=s, period=FIVE_MINUTES, label=s) for s in percentiles],
                    ),
                    graph("Lambda success rate (%)", [success_rate]),
                ],
                [
                    graph("Lambda throttles", [fn.metric_throttles(statistic="Sum", period=FIVE_MINUTES)]),
                    graph(
                        "Lambda concurrent executions",
                        [fn.metric("ConcurrentExecutions", statistic="Maximum", period=FIVE_MINUTES)],
                    ),
                    graph("Dead-letter queue depth", self._both_dead_letter_queues()),
                ],
                [
                    graph(
                        "Images classified / fire / invalid",
                        [self._custom("ImagesClassified"), self._custom("FireDetected"), self._custom("InvalidImages")],
                        width=12,
                    ),
                    graph(
                        "Event records refused / malformed, batch item failures",
                        [self._custom("RefusedRecords"), self._custom("MalformedRecords"), self._custom(BATCH_ITEM_FAILURES)],
                        width=12,
                    ),
                    graph("Inference latency (ms)", [self._custom("InferenceLatency", s) for s in percentiles], width=12),
                    graph("Borderline verdicts (% of images classified)", [borderline], width=12),
                ],
                [self._log_query_recent(), self._log_query_cold_starts()],
            ],
        )

    def _log_query_recent(self) -> cw.LogQueryWidget:
        return cw.LogQueryWidget(
            title="Recent function log events",
            log_group_names=[self.log_group.log_group_name],
            query_lines=[
                "fields @timestamp, @message",
                "filter @message not like /^(START|END|REPORT) RequestId/",
                "sort @timestamp desc",
                "limit 50",
            ],
            width=12,
            height=6,
        )

    def _log_query_cold_starts(self) -> cw.LogQueryWidget:
        return cw.LogQueryWidget(
            title="Function cold starts, duration and memory",
            log_group_names=[self.log_group.log_group_name],
            query_lines=[
                'filter @type = "REPORT"',
                "stats count(*) as invocations, count(@initDuration) as coldStarts, avg(@duration) as avgMs,"
                " max(@duration) as maxMs, max(@maxMemoryUsed / 1000 / 1000) as maxMemoryMB by bin(1h)",
            ],
            width=12,
            height=6,
        )
