"""The one price table of ``python -m ops cost``: AWS list prices in us-east-1 (N. Virginia), on-demand, in USD.

Transcribed 2026-11 from the pages in ``SOURCES`` without free tiers, savings plans or reserved prices. The
development machines have no internet access, so the figures could not be re-read there: check the pages before
relying on a total. Other regions cost up to about a third more.
"""

from __future__ import annotations

REGION = "us-east-1"
AS_OF = "2026-11"
HOURS_PER_MONTH = 730

SOURCES = {
    "EC2, EBS": "https://aws.amazon.com/ec2/pricing/on-demand/ , https://aws.amazon.com/ebs/pricing/",
    "NAT gateway, public IPv4": "https://aws.amazon.com/vpc/pricing/",
    "Application Load Balancer": "https://aws.amazon.com/elasticloadbalancing/pricing/",
    "CloudWatch (alarms, dashboards, metrics, logs)": "https://aws.amazon.com/cloudwatch/pricing/",
    "KMS": "https://aws.amazon.com/kms/pricing/",
    "WAF": "https://aws.amazon.com/waf/pricing/",
    "Lambda": "https://aws.amazon.com/lambda/pricing/",
    "S3": "https://aws.amazon.com/s3/pricing/",
    "SQS": "https://aws.amazon.com/sqs/pricing/",
    "DynamoDB": "https://aws.amazon.com/dynamodb/pricing/on-demand/",
    "SNS": "https://aws.amazon.com/sns/pricing/",
    "ECR": "https://aws.amazon.com/ecr/pricing/",
}

# EC2 on-demand Linux, per hour. The web tier's choices; another type needs its line here.
EC2_HOURLY = {
    "t3.micro": 0.0104, "t3.small": 0.0208, "t3.medium": 0.0416, "t3.large": 0.0832,
    "t3a.small": 0.0188, "t3a.medium": 0.0376,
    "t4g.micro": 0.0084, "t4g.small": 0.0168, "t4g.medium": 0.0336, "t4g.large": 0.0672,
    "c6i.large": 0.085, "c7i.large": 0.08925, "m6i.large": 0.096, "m7i.large": 0.1008,
    "c6g.large": 0.068, "c7g.large": 0.0725, "m6g.large": 0.077, "m7g.large": 0.0816,
}  # fmt: skip
EBS_GB_MONTH = {"gp3": 0.08, "gp2": 0.10}

NAT_GATEWAY_HOUR = 0.045
NAT_GATEWAY_GB = 0.045
PUBLIC_IPV4_HOUR = 0.005  # every public IPv4 address, the NAT gateway's and the load balancer's included
ALB_HOUR = 0.0225
ALB_LCU_HOUR = 0.008

ALARM_METRIC_MONTH = 0.10  # standard resolution, per metric an alarm evaluates
DASHBOARD_MONTH = 3.00
CUSTOM_METRIC_MONTH = 0.30  # first 10,000 metrics
LOGS_INGEST_GB = 0.50
LOGS_STORE_GB_MONTH = 0.03

KMS_KEY_MONTH = 1.00  # customer managed; AWS managed keys (alias/aws/sns) cost nothing
WAF_WEB_ACL_MONTH = 5.00
WAF_RULE_MONTH = 1.00
WAF_MILLION_REQUESTS = 0.60

LAMBDA_MILLION_REQUESTS = 0.20
LAMBDA_GB_SECOND = {"x86_64": 0.0000166667, "arm64": 0.0000133334}

S3_PUT_THOUSAND = 0.005
S3_GET_THOUSAND = 0.0004
S3_GB_MONTH = 0.023
SQS_MILLION_REQUESTS = 0.40  # standard queue, per 64 KB chunk
DYNAMODB_MILLION_WRITES = 0.625  # on-demand write request units
DYNAMODB_GB_MONTH = 0.25
DYNAMODB_PITR_GB_MONTH = 0.20
SNS_MILLION_PUBLISHES = 0.50
SNS_EMAIL_THOUSAND = 0.02  # $2.00 per 100,000 e-mail deliveries
ECR_GB_MONTH = 0.10
