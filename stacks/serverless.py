"""Serverless path: upload bucket -> S3 event (``uploads/`` only) -> container-image Lambda -> ``results/`` + alert topic.

Bucket, notification and function live in one stack: splitting them creates a cyclic cross-stack reference.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from stacks.buckets import data_bucket, log_bucket
from stacks.config import METRICS_NAMESPACE, RESULTS_PREFIX, SERVICE_NAME, UPLOADS_PREFIX, FirewatchConfig
from stacks.image import FirewatchImage
from stacks.logs import log_retention
from stacks.nag import acknowledge


class ServerlessStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: FirewatchConfig, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self.image = FirewatchImage(self, "Image", config=config)

        access_logs = log_bucket(self, "AccessLogs")
        self.bucket = data_bucket(self, "Uploads", access_logs=access_logs)

        self.alert_topic = sns.Topic(
            self,
            "AlertTopic",
            display_name="Firewatch fire alerts",
            # The AWS managed key lets any publisher of this account encrypt: the function needs no KMS grant.
            master_key=kms.Alias.from_alias_name(self, "SnsManagedKey", "alias/aws/sns"),
            enforce_ssl=True,
        )
        if config.alert_email:
            self.alert_topic.add_subscription(subscriptions.EmailSubscription(config.alert_email))

        self.dead_letter_queue = sqs.Queue(
            self,
            "FailedEvents",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(self.dead_letter_queue, "AwsSolutions-SQS3", "This queue is itself the function's dead-letter queue.")

        self.log_group = logs.LogGroup(
            self,
            "FunctionLogs",
            retention=log_retention(config.log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.function = self._function(config)
        self.bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3n.LambdaDestination(self.function),
            # Results are written under results/: filtering on uploads/ means a result can never re-trigger the function.
            s3.NotificationKeyFilter(prefix=UPLOADS_PREFIX),
        )
        self._acknowledge_notifications_handler()

        # Published for the web stack: a parameter, not a CloudFormation export, so neither stack locks the other.
        ssm.StringParameter(
            self,
            "UploadBucketNameParameter",
            parameter_name=config.upload_bucket_parameter,
            string_value=self.bucket.bucket_name,
            description="Name of the Firewatch upload bucket (read by the web stack)",
        )
        CfnOutput(self, "UploadBucketName", value=self.bucket.bucket_name, description="Upload images under uploads/")
        CfnOutput(self, "AlertTopicArn", value=self.alert_topic.topic_arn, description="Fire alerts are published here")

    def _function(self, config: FirewatchConfig) -> lambda_.DockerImageFunction:
        role = iam.Role(
            self,
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
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[f"{self.log_group.log_group_arn}:*"]
            )
        )
        for prefix in (UPLOADS_PREFIX, RESULTS_PREFIX):
            acknowledge(
                role,
                f"AwsSolutions-IAM5[Resource::<{self.get_logical_id(self.bucket.node.default_child)}.Arn>/{prefix}*]",
                f"Object access is limited to the {prefix} prefix of the one upload bucket.",
            )
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::<{self.get_logical_id(self.log_group.node.default_child)}.Arn>:*]",
            "Log streams of the function's own log group; stream names are created at run time.",
        )

        asset = self.image.asset
        architecture = lambda_.Architecture.ARM_64 if config.architecture == "arm64" else lambda_.Architecture.X86_64
        function = lambda_.DockerImageFunction(
            self,
            "Classifier",
            description="Classifies images uploaded under uploads/ and writes results under results/",
            code=lambda_.DockerImageCode.from_ecr(asset.repository, tag_or_digest=asset.image_tag),
            architecture=architecture,
            memory_size=config.lambda_memory_mb,
            timeout=Duration.seconds(config.lambda_timeout_seconds),
            reserved_concurrent_executions=config.lambda_reserved_concurrency,
            role=role,
            log_group=self.log_group,
            environment={
                "ALERT_TOPIC_ARN": self.alert_topic.topic_arn,
                # The handler refuses records from any other bucket.
                "FIREWATCH_BUCKET": self.bucket.bucket_name,
                "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
                "FIREWATCH_THREADS": str(config.lambda_threads),
            },
        )
        # S3 invokes asynchronously: after the retries, the event lands in the dead-letter queue. Declared at the
        # CloudFormation level so the role gets sqs:SendMessage only (the L2 destination also grants read actions).
        role.add_to_policy(iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[self.dead_letter_queue.queue_arn]))
        lambda_.CfnEventInvokeConfig(
            self,
            "ClassifierAsyncConfig",
            function_name=function.function_name,
            qualifier="$LATEST",
            maximum_retry_attempts=2,
            maximum_event_age_in_seconds=int(Duration.hours(6).to_seconds()),
            destination_config=lambda_.CfnEventInvokeConfig.DestinationConfigProperty(
                on_failure=lambda_.CfnEventInvokeConfig.OnFailureProperty(destination=self.dead_letter_queue.queue_arn)
            ),
        )
        return function

    def _acknowledge_notifications_handler(self) -> None:
        """The CDK's own singleton Lambda that configures bucket notifications (a deploy-time custom resource)."""
        for child in self.node.children:
            if child.node.id.startswith("BucketNotificationsHandler"):
                acknowledge(
                    child,
                    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
                    "CDK-provided deploy-time handler that sets the bucket notification; it only writes its own logs.",
                )
