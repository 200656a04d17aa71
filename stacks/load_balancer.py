"""The way in: an internet-facing Application Load Balancer in the public subnets, reachable from the allowed CIDR
only, forwarding to the web servers on the app port (HTTPS with a certificate, HTTP redirected to it)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from constructs import Construct

from stacks.capability import Capability
from stacks.config import APP_PORT, HEALTH_CHECK_PATH, FirewatchConfig
from stacks.nag import acknowledge


class PublicLoadBalancer(Capability):
    def __init__(
        self,
        scope: Construct,
        *,
        config: FirewatchConfig,
        vpc: ec2.IVpc,
        targets: elbv2.IApplicationLoadBalancerTarget,
    ) -> None:
        super().__init__(scope)
        self.security_group = self._security_group(config, vpc)
        self.load_balancer = elbv2.ApplicationLoadBalancer(
            self.scope,
            "LoadBalancer",
            vpc=vpc,
            internet_facing=True,
            security_group=self.security_group,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            drop_invalid_header_fields=True,
            idle_timeout=Duration.seconds(60),
        )
        acknowledge(
            self.load_balancer,
            "AwsSolutions-ELB2",
            "Access logs need the region's ELB log-delivery principal, unknown to an environment-agnostic synth; "
            "requests, latency and status codes are on the dashboard and alarms.",
        )
        self.target_group = elbv2.ApplicationTargetGroup(
            self.scope,
            "WebTargets",
            vpc=vpc,
            port=APP_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            targets=[targets],
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
        self._listen(config)
        self.scheme = "https" if config.certificate_arn else "http"

    def _security_group(self, config: FirewatchConfig, vpc: ec2.IVpc) -> ec2.SecurityGroup:
        group = ec2.SecurityGroup(
            self.scope, "LoadBalancerSecurityGroup", vpc=vpc, allow_all_outbound=False,
            description="Firewatch load balancer: HTTP(S) from the allowed CIDR; out only to the web instances",
        )  # fmt: skip
        for port in [80, 443] if config.certificate_arn else [80]:
            group.add_ingress_rule(ec2.Peer.ipv4(config.allowed_cidr), ec2.Port.tcp(port), f"Port {port} from the allowed CIDR")
        if config.allowed_cidr == "0.0.0.0/0":
            acknowledge(
                group,
                "AwsSolutions-EC23",
                "Public web page: the internet-facing load balancer is open to all by default (context allowedCidr).",
            )
        return group

    def _listen(self, config: FirewatchConfig) -> None:
        # open=False: the listener adds no ingress rule; the security group above holds the only ones.
        if not config.certificate_arn:
            self.load_balancer.add_listener(
                "Http", port=80, protocol=elbv2.ApplicationProtocol.HTTP, default_target_groups=[self.target_group], open=False
            )
            return
        self.load_balancer.add_listener(
            "Https",
            port=443,
            protocol=elbv2.ApplicationProtocol.HTTPS,
            certificates=[elbv2.ListenerCertificate.from_arn(config.certificate_arn)],
            default_target_groups=[self.target_group],
            open=False,
        )
        self.load_balancer.add_listener(
            "Http",
            port=80,
            protocol=elbv2.ApplicationProtocol.HTTP,
            default_action=elbv2.ListenerAction.redirect(protocol="HTTPS", port="443", permanent=True),
            open=False,
        )
