"""The network of the web path: a VPC over two AZs, public subnets for the load balancer, private ones for the
instances, an S3 gateway endpoint and flow logs."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.capability import Capability
from stacks.config import FirewatchConfig
from stacks.logs import log_retention


class Network(Capability):
    def __init__(self, scope: Construct, *, config: FirewatchConfig) -> None:
        super().__init__(scope)
        flow_logs = logs.LogGroup(
            self.scope, "VpcFlowLogs", retention=log_retention(config.log_retention_days), removal_policy=RemovalPolicy.DESTROY
        )
        self.vpc = ec2.Vpc(
            self.scope,
            "Vpc",
            max_azs=2,
            nat_gateways=config.nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(name="app", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=24),
            ],
            # Image layers and results come from S3: the gateway endpoint keeps that traffic off the NAT gateway.
            gateway_endpoints={"S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3)},
            flow_logs={
                "All": ec2.FlowLogOptions(
                    destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
                    traffic_type=ec2.FlowLogTrafficType.ALL,
                )
            },
        )
