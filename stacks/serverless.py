"""Serverless path: upload bucket -> S3 event (``uploads/`` only) -> upload queue -> container-image function ->
``results/``, the results index and alerts.

Bucket, notification, queue and function live in one stack: splitting them creates a cyclic cross-stack reference.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from stacks.alerts import FireAlerts
from stacks.batch_operations import BatchOperationsRole
from stacks.buckets import UploadStore

from stacks.classifier import Classifier
from stacks.config import FirewatchConfig
from stacks.image import FirewatchImage
from stacks.observability import Monitored
from stacks.results_index import ResultsIndex
from stacks.upload_queue import UploadQueue


class ServerlessStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: FirewatchConfig, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self.image = FirewatchImage(self, "Image", config=config)
        self.store = UploadStore(self)
        self.alerts = FireAlerts(self, email=config.alert_email)
        self.upload_queue = UploadQueue(self, config=config, bucket=self.store.bucket)
        self.results_index = ResultsIndex(self, config=config)
        self.classifier = Classifier(
            self, config=config, image=self.image, bucket=self.store.bucket, alert_topic=self.alerts.topic,
            upload_queue=self.upload_queue, results_index=self.results_index,
        )  # fmt: skip
        BatchOperationsRole(self, bucket=self.store.bucket, function=self.classifier.function)
        bucket = self.store.bucket
        # Published for the web stack: a parameter, not a CloudFormation export, so neither stack locks the other.
        ssm.StringParameter(
            self,
            "UploadBucketNameParameter",
            parameter_name=config.upload_bucket_parameter,
            string_value=bucket.bucket_name,
            description="Name of the Firewatch upload bucket (read by the web stack)",
        )
        table = self.results_index.table
        ssm.StringParameter(
            self,
            "ResultsTableNameParameter",
            parameter_name=config.results_table_parameter,
            string_value=table.table_name,
            description="Name of the Firewatch results index table (read by the web stack)",
        )
        CfnOutput(self, "UploadBucketName", value=bucket.bucket_name, description="Upload images under uploads/")
        CfnOutput(self, "ResultsTableName", value=table.table_name, description="The results index (DynamoDB)")
        CfnOutput(
            self, "UploadQueueUrl", value=self.upload_queue.queue.queue_url,
            description="The upload queue (S3 notifications of uploads/); backfills send S3-notification bodies here",
        )  # fmt: skip
        CfnOutput(self, "AlertTopicArn", value=self.alerts.topic.topic_arn, description="Fire alerts are published here")
        CfnOutput(self, "ClassifierFunctionArn", value=self.classifier.function.function_arn, description="The classifier")

    @property
    def monitored(self) -> list[Monitored]:
        """The capabilities of this stack that bring alarms and a dashboard section."""
        return [self.classifier, self.upload_queue, self.results_index]
