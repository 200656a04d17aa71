"""The web tier: the load balancer in front of the web servers, with its alarms and its part of the dashboard."""

from __future__ import annotations

from aws_cdk import CfnParameter
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from constructs import Construct

from stacks.capability import Capability
from stacks.config import ENVIRONMENT_DIMENSION, FirewatchConfig
from stacks.image import FirewatchImage
from stacks.load_balancer import PublicLoadBalancer
from stacks.observability import (
    FIVE_MINUTES, ONE_MINUTE, AlarmSpec, DashboardSection, borderline_share, graph, unfamiliar_uploads_alarm,
)
from stacks.user_data import AGENT_NAMESPACE
from stacks.web_firewall import WebFirewall
from stacks.web_servers import WebServers

ALB_5XX_PERCENT = 5
ASG_CPU_PERCENT = 80
# The worst instance, from the CloudWatch agent. The root disk holds the image's layers and upload bodies spooled
# past a worker's memory buffer (FIREWATCH_BODY_SPOOL_MB): a full disk stops both, and the next image pull.
WEB_DISK_PERCENT = 85
WEB_MEMORY_PERCENT = 90
WAF_REQUESTS = (("AllowedRequests", "allowed"), ("BlockedRequests", "blocked"))


class WebTier(Capability):
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
        self.env_name = config.env_name
        self.servers = WebServers(
            self.scope, config=config, vpc=vpc, image=image, results_bucket_name=results_bucket_name,
            results_table_name=results_table_name,
        )  # fmt: skip
        self.entry = PublicLoadBalancer(self.scope, config=config, vpc=vpc, targets=self.servers.auto_scaling_group)
        self.firewall = (
            WebFirewall(self.scope, config=config, load_balancer=self.entry.load_balancer) if config.waf else None
        )

    @property
    def url(self) -> str:
        return f"{self.entry.scheme}://{self.entry.load_balancer.load_balancer_dns_name}"

    # ---- monitoring ----------------------------------------------------------------------------------------------

    def _asg_metric(self, name: str, statistic: str = "Average", namespace: str = "AWS/EC2") -> cw.Metric:
        return cw.Metric(
            namespace=namespace,
            metric_name=name,
            dimensions_map={"AutoScalingGroupName": self.servers.auto_scaling_group.auto_scaling_group_name},
            statistic=statistic,
            period=FIVE_MINUTES,
        )

    def _alb_5xx_percent(self) -> cw.MathExpression:
        metrics = self.entry.load_balancer.metrics
        return cw.MathExpression(
            expression="IF(requests > 0, 100 * (FILL(elb5xx, 0) + FILL(target5xx, 0)) / requests, 0)",
            using_metrics={
                "requests": metrics.request_count(statistic="Sum", period=FIVE_MINUTES),
                "elb5xx": metrics.http_code_elb(elbv2.HttpCodeElb.ELB_5XX_COUNT, statistic="Sum", period=FIVE_MINUTES),
                "target5xx": metrics.http_code_target(
                    elbv2.HttpCodeTarget.TARGET_5XX_COUNT, statistic="Sum", period=FIVE_MINUTES
                ),
            },
            label="ALB 5xx (% of requests)",
            period=FIVE_MINUTES,
        )

    def _verdicts(self, field: str, label: str) -> cw.Metric:
        return self.servers.verdict_filters[field].metric(
            statistic="Sum", period=FIVE_MINUTES, label=label, dimensions_map={ENVIRONMENT_DIMENSION: self.env_name}
        )

    def _classified_and_borderline(self) -> tuple[cw.Metric, cw.Metric]:
        return self._verdicts("classified", "classified"), self._verdicts("borderline", "borderline")

    def alarm_specs(self) -> list[AlarmSpec]:
        targets = self.entry.target_group.metrics
        return [
            AlarmSpec(
                "Alb5xxRate", self._alb_5xx_percent(), ALB_5XX_PERCENT, 2,
                f"Over {ALB_5XX_PERCENT}% of web requests answered 5xx for 10 minutes",
            ),
            AlarmSpec(
                "UnhealthyHosts", targets.unhealthy_host_count(statistic="Maximum", period=ONE_MINUTE), 1, 5,
                "A web instance failed its /healthz check for 5 minutes",
            ),
            AlarmSpec(
                "WebCpuHigh", self._asg_metric("CPUUtilization"), ASG_CPU_PERCENT, 3,
                f"Web tier CPU above {ASG_CPU_PERCENT}% for 15 minutes (scaling out is not keeping up)",
            ),
            AlarmSpec(
                "WebDiskFull", self._asg_metric("disk_used_percent", "Maximum", AGENT_NAMESPACE), WEB_DISK_PERCENT, 2,
                f"A web instance's root disk {WEB_DISK_PERCENT}% full or more for 10 minutes: spooled uploads go to "
                "threads instead, and the next image pull may fail. Look at what fills it (docker system df; du -x /)",
            ),
            AlarmSpec(
                "WebMemoryHigh", self._asg_metric("mem_used_percent", "Maximum", AGENT_NAMESPACE), WEB_MEMORY_PERCENT,
                3, f"A web instance's memory {WEB_MEMORY_PERCENT}% used or more for 15 minutes: the kernel may kill the "
                "server. Lower FIREWATCH_DECODES_PER_WORKER or FIREWATCH_BODY_BUFFER_MB, or choose a larger instance",
            ),
            # How often the model is unsure of what people upload (the classifier has the same alarm).
            unfamiliar_uploads_alarm(
                "WebUnfamiliarUploads", *self._classified_and_borderline(), "photos classified by the web app",
            ),
        ]  # fmt: skip

    def dashboard_section(self) -> DashboardSection:
        lb, tg = self.entry.load_balancer.metrics, self.entry.target_group.metrics
        percentiles = ("p50", "p90", "p99")
        firewall = []
        if self.firewall:
            requests = [self.firewall.requests_metric(name, label) for name, label in WAF_REQUESTS]
            firewall = [[graph("WAF requests allowed / blocked", requests, width=24)]]
        return DashboardSection(
            "web tier",
            [
                [
                    graph("ALB requests", [lb.request_count(statistic="Sum", period=FIVE_MINUTES)]),
                    graph(
                        "Target response time (s)",
                        [lb.target_response_time(statistic=s, period=FIVE_MINUTES, label=s) for s in percentiles],
                    ),
                    graph(
                        "ALB 4xx / 5xx",
                        [
                            lb.http_code_target(elbv2.HttpCodeTarget.TARGET_4XX_COUNT, statistic="Sum", period=FIVE_MINUTES),
                            lb.http_code_target(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, statistic="Sum", period=FIVE_MINUTES),
                            lb.http_code_elb(elbv2.HttpCodeElb.ELB_4XX_COUNT, statistic="Sum", period=FIVE_MINUTES),
                            lb.http_code_elb(elbv2.HttpCodeElb.ELB_5XX_COUNT, statistic="Sum", period=FIVE_MINUTES),
                        ],
                    ),
                ],
                [
                    graph(
                        "Healthy / unhealthy hosts",
                        [
                            tg.healthy_host_count(statistic="Minimum", period=ONE_MINUTE),
                            tg.unhealthy_host_count(statistic="Maximum", period=ONE_MINUTE),
                        ],
                    ),
                    graph("EC2 CPU utilisation (%)", [self._asg_metric("CPUUtilization")]),
                    graph(
                        "EC2 memory / root disk used (%)",
                        [
                            self._asg_metric("mem_used_percent", namespace=AGENT_NAMESPACE),
                            self._asg_metric("disk_used_percent", namespace=AGENT_NAMESPACE),
                        ],
                    ),
                ],
                [
                    graph(
                        "EC2 network in / out (bytes)",
                        [self._asg_metric("NetworkIn", "Sum"), self._asg_metric("NetworkOut", "Sum")],
                        width=12,
                    ),
                    graph(
                        "EC2 packets in / out",
                        [self._asg_metric("NetworkPacketsIn", "Sum"), self._asg_metric("NetworkPacketsOut", "Sum")],
                        width=12,
                    ),
                ],
                [
                    graph(
                        "Web images classified / fire / borderline",
                        [self._verdicts(field, field) for field in ("classified", "fire", "borderline")],
                        width=12,
                    ),
                    graph(
                        "Web borderline verdicts (% of images classified)",
                        [borderline_share(*self._classified_and_borderline())],
                        width=12,
                    ),
                ],
                *firewall,
            ],
        )
