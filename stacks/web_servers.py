"""The web servers: an Auto Scaling group in the private subnets, each instance running the web server from the
one image under Docker, replaced one at a time when the image changes, scaled on CPU."""

from __future__ import annotations

from aws_cdk import Annotations, Aws, CfnParameter, Duration, RemovalPolicy, Stack
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.capability import Capability
from stacks.config import ENVIRONMENT_DIMENSION, METRICS_NAMESPACE, NEWEST_INDEX, VERDICT_LOG_FIELDS, FirewatchConfig
from stacks.image import FirewatchImage
from stacks.logs import log_retention
from stacks.nag import acknowledge
from stacks.user_data import AGENT_NAMESPACE, signal_on_exit, web_server_user_data

CPU_TARGET_PERCENT = 60
# Session Manager's minimal instance permissions (AWS's "custom IAM role for Session Manager"); Run Command, Patch
# Manager, Inventory and Parameter Store reads need AmazonSSMManagedInstanceCore, which the role leaves out.
SESSION_MANAGER_ACTIONS = [
    "ssm:UpdateInstanceInformation",
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
]


class WebServers(Capability):
    def __init__(
        self,
        scope: Construct,
        *,
        config: FirewatchConfig,
        vpc: ec2.IVpc,
        image: FirewatchImage,
        results_bucket_name: CfnParameter,
        results_table_name: CfnParameter,
    ) -> None:
        super().__init__(scope)
        self.security_group = ec2.SecurityGroup(
            self.scope, "InstanceSecurityGroup", vpc=vpc, allow_all_outbound=False,
            description="Firewatch web instances: the app port from the load balancer only; HTTPS out",
        )  # fmt: skip
        self.security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to ECR, S3, SSM, CloudWatch, CloudFormation, package repos"
        )
        self.log_group = logs.LogGroup(
            self.scope, "WebServerLogs", retention=log_retention(config.log_retention_days), removal_policy=RemovalPolicy.DESTROY
        )
        # A request that classified photos logs how many, how many were fire and how many borderline; these filters
        # make metrics of them, as the function's EMF metrics do for the serverless path.
        self.verdict_filters = {
            field: self.log_group.add_metric_filter(
                f"{metric}Filter",
                filter_pattern=logs.FilterPattern.number_value("$.classified", ">", 0),
                metric_namespace=METRICS_NAMESPACE,
                metric_name=metric,
                metric_value=f"$.{field}",
                dimensions={ENVIRONMENT_DIMENSION: f"$.{ENVIRONMENT_DIMENSION}"},
            )
            for field, metric in VERDICT_LOG_FIELDS.items()
        }
        # The bucket's name only labels the page's results; they are read from the index, not the bucket.
        role = self._instance_role(image)
        self._grant_results_index(role, results_table_name)
        user_data = web_server_user_data(
            image_uri=image.asset.image_uri,
            region=Aws.REGION,
            results_bucket=results_bucket_name.value_as_string,
            results_table=results_table_name.value_as_string,
            log_group=self.log_group.log_group_name,
            environment=config.env_name,
            hsts=config.certificate_arn is not None,
        )
        self.auto_scaling_group = self._auto_scaling_group(config, vpc, self._launch_template(config, role, user_data))
        # The signal comes from the script's exit trap: success only once the server answers its health check,
        # failure as soon as a step fails.
        signal_on_exit(user_data, self.auto_scaling_group)
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

    def _instance_role(self, image: FirewatchImage) -> iam.Role:
        # Scoped statements instead of AWS managed policies: AmazonSSMManagedInstanceCore would also let the
        # instances read every SSM parameter in the account and run all of Systems Manager's agents' calls, and
        # CloudWatchAgentServerPolicy would let them write any metric namespace and any log group.
        role = iam.Role(
            self.scope,
            "InstanceRole",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description="Firewatch web instances: SSM sessions, CloudWatch agent, image pull, query the results index",
        )
        image.asset.repository.grant_pull(role)  # this repository's layers, and ECR's account-wide login token
        # Session Manager (shell access without SSH), and nothing else of Systems Manager: AWS's minimal set.
        role.add_to_policy(iam.PolicyStatement(actions=SESSION_MANAGER_ACTIONS, resources=["*"]))
        # The CloudWatch agent: its metrics, in its own namespace only; the group-name dimension from the tags.
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": AGENT_NAMESPACE}},
            )
        )
        role.add_to_policy(iam.PolicyStatement(actions=["ec2:DescribeTags"], resources=["*"]))
        # Docker's awslogs driver: the server's output, into its own log group only.
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[f"{self.log_group.log_group_arn}:*"]
            )
        )
        stack = Stack.of(self.scope)
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "No resource-level scope exists for ecr:GetAuthorizationToken, ec2:DescribeTags, the Session Manager "
            "channel actions or cloudwatch:PutMetricData (limited to the agent's namespace by a condition instead).",
        )
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::<{stack.get_logical_id(self.log_group.node.default_child)}.Arn>:*]",
            "Log streams of the web server's own log group; stream names are instance ids known at boot.",
        )
        return role

    def _grant_results_index(self, role: iam.Role, table_name: CfnParameter) -> None:
        """The page reads the newest results through the table's newest-first index: Query on that index only (no
        GetItem, no Scan, no writes, and not the table itself)."""
        stack = Stack.of(self.scope)
        index_arn = stack.format_arn(
            service="dynamodb", resource="table", resource_name=f"{table_name.value_as_string}/index/{NEWEST_INDEX}"
        )
        role.add_to_policy(iam.PolicyStatement(actions=["dynamodb:Query"], resources=[index_arn]))

    def _launch_template(self, config: FirewatchConfig, role: iam.Role, user_data: ec2.UserData) -> ec2.LaunchTemplate:
        cpu = ec2.AmazonLinuxCpuType.ARM_64 if config.architecture == "arm64" else ec2.AmazonLinuxCpuType.X86_64
        return ec2.LaunchTemplate(
            self.scope,
            "LaunchTemplate",
            # Resolved at deploy time from the public SSM parameter: no lookup, no account needed at synth.
            machine_image=ec2.MachineImage.latest_amazon_linux2023(cpu_type=cpu),
            instance_type=ec2.InstanceType(config.instance_type),
            role=role,
            security_group=self.security_group,
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

    def _auto_scaling_group(
        self, config: FirewatchConfig, vpc: ec2.IVpc, launch_template: ec2.LaunchTemplate
    ) -> autoscaling.AutoScalingGroup:
        return autoscaling.AutoScalingGroup(
            self.scope,
            "WebServers",
            vpc=vpc,
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
