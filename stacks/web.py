"""Web path: internet -> ALB (public subnets) -> Auto Scaling group of EC2 instances (private subnets) running the
web server from the one image; the page lists the serverless path's results, read from the upload bucket.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, CfnParameter, Stack
from constructs import Construct


from stacks.config import FirewatchConfig
from stacks.image import FirewatchImage
from stacks.network import Network
from stacks.web_tier import WebTier


class WebStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: FirewatchConfig, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        # The serverless stack publishes the bucket's name in SSM; CloudFormation reads it at deploy time.
        self.upload_bucket_name = CfnParameter(
            self,
            "UploadBucketName",
            type="AWS::SSM::Parameter::Value<String>",
            default=config.upload_bucket_parameter,
            description="SSM parameter with the upload bucket name (published by the serverless stack)",
        )
        # The results index's table, published the same way: the page reads the newest results from it.
        self.results_table_name = CfnParameter(
            self,
            "ResultsTableName",
            type="AWS::SSM::Parameter::Value<String>",
            default=config.results_table_parameter,
            description="SSM parameter with the results table name (published by the serverless stack)",
        )
        # The same source as the serverless stack's image, hence the same content hash and tag: one image.
        self.image = FirewatchImage(self, "Image", config=config)
        self.network = Network(self, config=config)
        self.web_tier = WebTier(
            self, config=config, vpc=self.network.vpc, image=self.image, results_bucket_name=self.upload_bucket_name,
            results_table_name=self.results_table_name,
        )  # fmt: skip
        CfnOutput(self, "WebUrl", value=self.web_tier.url, description="Web page")
