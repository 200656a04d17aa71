"""Serverless path: upload bucket -> S3 event (``uploads/`` only) -> container-image function -> ``results/`` + alerts.

Bucket, notification and function live in one stack: splitting them creates a cyclic cross-stack reference.
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


class ServerlessStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: FirewatchConfig, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self.image = FirewatchImage(self, "Image", config=config)
        self.store = UploadStore(self)
        self.alerts = FireAlerts(self, email=config.alert_email)
        self.classifier = Classifier(
            self, config=config, image=self.image, bucket=self.store.bucket, alert_topic=self.alerts.topic
        )
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
        CfnOutput(self, "UploadBucketName", value=bucket.bucket_name, description="Upload images under uploads/")
        CfnOutput(self, "AlertTopicArn", value=self.alerts.topic.topic_arn, description="Fire alerts are published here")
        CfnOutput(self, "ClassifierFunctionArn", value=self.classifier.function.function_arn, description="The classifier")
