"""Web path: internet -> ALB (public subnets) -> Auto Scaling group of EC2 instances (private subnets) running the
web server from the shared image.
"""

from __future__ import annotations

from aws_cdk import Annotations, Aws, CfnOutput, CfnParameter, Duration, RemovalPolicy, Stack
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.config import APP_PORT, HEALTH_CHECK_PATH, RESULTS_PREFIX, FirewatchConfig
from stacks.image import FirewatchImage
from stacks.logs import log_retention
from stacks.nag import acknowledge
from stacks.user_data import web_server_user_data

CPU_TARGET_PERCENT = 60


class WebStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: FirewatchConfig,
        image: FirewatchImage,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self.upload_bucket_name = CfnParameter(
            self,
            "UploadBucketName",
            type="AWS::SSM::Parameter::Value<String>",
            default=config.upload_bucket_parameter,
            description="SSM parameter with the upload bucket name (published by the serverless stack)",
        )
        results_bucket = s3.Bucket.from_bucket_name(self, "UploadBucket", self.upload_bucket_name.value_as_string)
        self.vpc = self._vpc(config)

        self.alb_security_group = ec2.SecurityGroup(
            self, "LoadBalancerSecurityGroup", vpc=self.vpc, allow_all_outbound=False,
            description="Firewatch load balancer: HTTP(S) from the allowed CIDR; out only to the web instances",
        )  # fmt: skip
        ports = [80, 443] if config.certificate_arn else [80]
        for port in ports:
            self.alb_security_group.add_ingress_rule(
                ec2.Peer.ipv4(config.allowed_cidr), ec2.Port.tcp(port), f"Port {port} from the allowed CIDR"
            )
        if config.allowed_cidr == "0.0.0.0/0":
            acknowledge(
                self.alb_security_group,
                "AwsSolutions-EC23",
                "Public web page: the internet-facing load balancer is open to all by default (context allowedCidr).",
            )

        self.instance_security_group = ec2.SecurityGroup(
            self, "InstanceSecurityGroup", vpc=self.vpc, allow_all_outbound=False,
            description="Firewatch web instances: the app port from the load balancer only; HTTPS out",
        )  # fmt: skip
        self.instance_security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to ECR, S3, SSM, CloudWatch, CloudFormation, package repos"
        )

        self.web_log_group = logs.LogGroup(
            self, "WebServerLogs", retention=log_retention(config.log_retention_days), removal_policy=RemovalPolicy.DESTROY
        )
        role = self._instance_role(image, results_bucket)
        user_data = web_server_user_data(
            image_uri=image.asset.image_uri,
            region=Aws.REGION,
            results_bucket=results_bucket.bucket_name,
            log_group=self.web_log_group.log_group_name,
        )
        self.auto_scaling_group = self._auto_scaling_group(config, role, user_data)
        # The signal comes from the script's exit trap: success only once the server answers its health check.
        user_data.add_signal_on_exit_command(self.auto_scaling_group)
        if config.desired_capacity is not None:
            Annotations.of(self.auto_scaling_group).acknowledge_warning(
                "@aws-cdk/aws-autoscaling:desiredCapacitySet",
                "desiredCapacity was set on purpose: each deploy resets the group to it (stacks/config.py).",
            )
        acknowledge(
            self.auto_scaling_group,
            "AwsSolutions-AS3",
            "Scaling is visible in the group's activity history and the dashboard; failures raise the alarms.",
        )
        self.auto_scaling_group.scale_on_cpu_utilization("CpuTracking", target_utilization_percent=CPU_TARGET_PERCENT)

        self.load_balancer, self.target_group = self._load_balancer(config)
        scheme = "https" if config.certificate_arn else "http"
        CfnOutput(self, "WebUrl", value=f"{scheme}://{self.load_balancer.load_balancer_dns_name}", description="Web page")

    def _vpc(self, config: FirewatchConfig) -> ec2.Vpc:
        flow_logs = logs.LogGroup(
            self, "VpcFlowLogs", retention=log_retention(config.log_retention_days), removal_policy=RemovalPolicy.DESTROY
        )
        return ec2.Vpc(
            self,
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

    def _instance_role(self, image: FirewatchImage, results_bucket: s3.IBucket) -> iam.Role:
        role = iam.Role(
            self,
            "InstanceRole",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description="Firewatch web instances: SSM sessions, CloudWatch agent, image pull, read results",
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name("AmazonSSMManagedInstanceCore"),
                iam.ManagedPolicy.from_aws_managed_policy_name("CloudWatchAgentServerPolicy"),
            ],
        )
        image.asset.repository.grant_pull(role)
        # The page lists the latest serverless results: read-only, results/ only.
        role.add_to_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[results_bucket.arn_for_objects(f"{RESULTS_PREFIX}*")])
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[results_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [RESULTS_PREFIX, f"{RESULTS_PREFIX}*"]}},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[f"{self.web_log_group.log_group_arn}:*"]
            )
        )
        acknowledge(role, "AwsSolutions-IAM5[Resource::*]", "ecr:GetAuthorizationToken has no resource-level scope.")
        bucket_parameter = self.get_logical_id(self.upload_bucket_name)
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::<{bucket_parameter}>/{RESULTS_PREFIX}*]",
            f"Read-only access limited to the {RESULTS_PREFIX} prefix of the upload bucket.",
        )
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::<{self.get_logical_id(self.web_log_group.node.default_child)}.Arn>:*]",
            "Log streams of the web server's own log group; stream names are instance ids known at boot.",
        )
        for policy in ("AmazonSSMManagedInstanceCore", "CloudWatchAgentServerPolicy"):
            acknowledge(
                role,
                f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{policy}]",
                "AWS-maintained policy for the SSM agent (Session Manager, no SSH) and the CloudWatch agent.",
            )
        return role

    def _auto_scaling_group(
        self, config: FirewatchConfig, role: iam.Role, user_data: ec2.UserData
    ) -> autoscaling.AutoScalingGroup:
        cpu = ec2.AmazonLinuxCpuType.ARM_64 if config.architecture == "arm64" else ec2.AmazonLinuxCpuType.X86_64
        launch_template = ec2.LaunchTemplate(
            self,
            "LaunchTemplate",
            # Resolved at deploy time from the public SSM parameter: no lookup, no account needed at synth.
            machine_image=ec2.MachineImage.latest_amazon_linux2023(cpu_type=cpu),
            instance_type=ec2.InstanceType(config.instance_type),
            role=role,
            security_group=self.instance_security_group,
            user_data=user_data,
            require_imdsv2=True,
            http_tokens=ec2.LaunchTemplateHttpTokens.REQUIRED,
            # 2 hops: the container (one hop behind the Docker bridge) needs the instance role's credentials.
            http_put_response_hop_limit=2,
            block_devices=[
                ec2.BlockDevice(
                    device_name="/dev/xvda",
                    volume=ec2.BlockDeviceVolume.ebs(20, encrypted=True, volume_type=ec2.EbsDeviceVolumeType.GP3),
                )
            ],
        )
        return autoscaling.AutoScalingGroup(
            self,
            "WebServers",
            vpc=self.vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            launch_template=launch_template,
            min_capacity=config.min_capacity,
            max_capacity=config.max_capacity,
            desired_capacity=config.desired_capacity,
            health_checks=autoscaling.HealthChecks.with_additional_checks(
                additional_types=[autoscaling.AdditionalHealthCheckType.ELB], grace_period=Duration.minutes(5)
            ),
            cooldown=Duration.minutes(5),
            signals=autoscaling.Signals.wait_for_min_capacity(timeout=Duration.minutes(15)),
            # A new image URI changes the user data, hence the launch template version: instances are replaced one
            # at a time, each new one must signal healthy before the next old one goes.
            update_policy=autoscaling.UpdatePolicy.rolling_update(
                max_batch_size=1,
                min_instances_in_service=max(0, min(config.min_capacity, config.max_capacity - 1)),
            ),
        )

    def _load_balancer(self, config: FirewatchConfig) -> tuple[elbv2.ApplicationLoadBalancer, elbv2.ApplicationTargetGroup]:
        load_balancer = elbv2.ApplicationLoadBalancer(
            self,
            "LoadBalancer",
            vpc=self.vpc,
            internet_facing=True,
            security_group=self.alb_security_group,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            drop_invalid_header_fields=True,
            idle_timeout=Duration.seconds(60),
        )
        acknowledge(
            load_balancer,
            "AwsSolutions-ELB2",
            "Access logs need the region's ELB log-delivery principal, unknown to an environment-agnostic synth; "
            "requests, latency and status codes are on the dashboard and alarms.",
        )
        target_group = elbv2.ApplicationTargetGroup(
            self,
            "WebTargets",
            vpc=self.vpc,
            port=APP_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            targets=[self.auto_scaling_group],
            deregistration_delay=Duration.seconds(30),
            health_check=elbv2.HealthCheck(
                path=HEALTH_CHECK_PATH,
                healthy_http_codes="200",
                interval=Duration.seconds(15),
                timeout=Duration.seconds(5),
                healthy_threshold_count=2,
                unhealthy_threshold_count=3,
            ),
        )
        # open=False: the listener adds no ingress rule; the security group above holds the only ones.
        if config.certificate_arn:
            load_balancer.add_listener(
                "Https",
                port=443,
                protocol=elbv2.ApplicationProtocol.HTTPS,
                certificates=[elbv2.ListenerCertificate.from_arn(config.certificate_arn)],
                default_target_groups=[target_group],
                open=False,
            )
            load_balancer.add_listener(
                "Http",
                port=80,
                protocol=elbv2.ApplicationProtocol.HTTP,
                default_action=elbv2.ListenerAction.redirect(protocol="HTTPS", port="443", permanent=True),
                open=False,
            )
        else:
            load_balancer.add_listener(
                "Http", port=80, protocol=elbv2.ApplicationProtocol.HTTP, default_target_groups=[target_group], open=False
            )
        return load_balancer, target_group
