"""Monitoring: one CloudWatch dashboard over both paths, and alarms that notify an SNS alarm topic."""

from __future__ import annotations

from aws_cdk import Aws, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from stacks.config import METRICS_NAMESPACE, SERVICE_NAME, FirewatchConfig
from stacks.serverless import ServerlessStack
from stacks.web import WebStack

FIVE_MINUTES = Duration.minutes(5)
ONE_MINUTE = Duration.minutes(1)
DURATION_ALARM_FRACTION = 0.8  # of the function timeout
ALB_5XX_PERCENT = 5
ASG_CPU_PERCENT = 80
WIDTH = 24  # dashboard grid width


class MonitoringStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: FirewatchConfig,
        serverless: ServerlessStack,
        web: WebStack,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.serverless, self.web = serverless, web
        self.alarm_topic = self._alarm_topic(config)
        self.alarms = self._alarms(config)
        self.dashboard = self._dashboard(config)

        url = (
            f"https://{Aws.REGION}.console.aws.amazon.com/cloudwatch/home?region={Aws.REGION}"
            f"#dashboards:name={config.stack_name('dashboard')}"
        )
        CfnOutput(self, "DashboardUrl", value=url, description="CloudWatch dashboard")
        CfnOutput(self, "AlarmTopicArn", value=self.alarm_topic.topic_arn, description="Alarm notifications")

    # ---- metrics -------------------------------------------------------------------------------------------------

    def _custom(self, name: str, statistic: str = "Sum") -> cw.Metric:
        """A metric the handler emits through Powertools (namespace Firewatch, dimension service=firewatch)."""
        return cw.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=name,
            dimensions_map={"service": SERVICE_NAME},
            statistic=statistic,
            period=FIVE_MINUTES,
        )

    def _asg_metric(self, name: str, statistic: str = "Average", namespace: str = "AWS/EC2") -> cw.Metric:
        return cw.Metric(
            namespace=namespace,
            metric_name=name,
            dimensions_map={"AutoScalingGroupName": self.web.auto_scaling_group.auto_scaling_group_name},
            statistic=statistic,
            period=FIVE_MINUTES,
        )

    def _alb_5xx_percent(self) -> cw.MathExpression:
        metrics = self.web.load_balancer.metrics
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

    # ---- alarms --------------------------------------------------------------------------------------------------

    def _alarm_topic(self, config: FirewatchConfig) -> sns.Topic:
        # CloudWatch can only publish to an encrypted topic whose key policy lets it: a customer managed key.
        key = kms.Key(
            self,
            "AlarmTopicKey",
            description="Encrypts the Firewatch alarm topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
            pending_window=Duration.days(7),
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            )
        )
        topic = sns.Topic(self, "AlarmTopic", display_name="Firewatch alarms", master_key=key, enforce_ssl=True)
        if config.alert_email:
            topic.add_subscription(subscriptions.EmailSubscription(config.alert_email))
        return topic

    def _alarms(self, config: FirewatchConfig) -> dict[str, cw.Alarm]:
        fn = self.serverless.function
        timeout_ms = config.lambda_timeout_seconds * 1000
        tg_metrics = self.web.target_group.metrics
        specs = {
            "LambdaErrors": (
                fn.metric_errors(statistic="Sum", period=FIVE_MINUTES), 1, 1,
                "The classifier function failed (the event is retried, then sent to the dead-letter queue)",
            ),
            "LambdaDurationNearTimeout": (
                fn.metric_duration(statistic="Maximum", period=FIVE_MINUTES), DURATION_ALARM_FRACTION * timeout_ms, 1,
                f"An invocation took over {int(DURATION_ALARM_FRACTION * 100)}% of the {config.lambda_timeout_seconds} s timeout",
            ),
            "LambdaThrottles": (
                fn.metric_throttles(statistic="Sum", period=FIVE_MINUTES), 1, 1,
                "Invocations were throttled (concurrency limit reached)",
            ),
            "DeadLetterQueueNotEmpty": (
                self.serverless.dead_letter_queue.metric_approximate_number_of_messages_visible(
                    statistic="Maximum", period=FIVE_MINUTES
                ), 1, 1,
                "Upload events that failed every retry are waiting in the dead-letter queue",
            ),
            "RejectedEventRecords": (
                cw.MathExpression(
                    expression="refused + malformed",
                    using_metrics={"refused": self._custom("RefusedRecords"), "malformed": self._custom("MalformedRecords")},
                    period=FIVE_MINUTES,
                    label="Rejected event records",
                ), 1, 1,
                "The function received event records it refused (another bucket) or could not parse; see its log",
            ),
            "Alb5xxRate": (
                self._alb_5xx_percent(), ALB_5XX_PERCENT, 2,
                f"Over {ALB_5XX_PERCENT}% of web requests answered 5xx for 10 minutes",
            ),
            "UnhealthyHosts": (
                tg_metrics.unhealthy_host_count(statistic="Maximum", period=ONE_MINUTE), 1, 5,
                "A web instance failed its /healthz check for 5 minutes",
            ),
            "WebCpuHigh": (
                self._asg_metric("CPUUtilization"), ASG_CPU_PERCENT, 3,
                f"Web tier CPU above {ASG_CPU_PERCENT}% for 15 minutes (scaling out is not keeping up)",
            ),
        }  # fmt: skip
        alarms = {}
        for name, (metric, threshold, periods, description) in specs.items():
            alarm = metric.create_alarm(
                self,
                name,
                alarm_description=description,
                threshold=threshold,
                evaluation_periods=periods,
                datapoints_to_alarm=periods,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            )
            alarm.add_alarm_action(cw_actions.SnsAction(self.alarm_topic))
            alarm.add_ok_action(cw_actions.SnsAction(self.alarm_topic))
            alarms[name] = alarm
        return alarms

    # ---- dashboard -----------------------------------------------------------------------------------------------

    def _dashboard(self, config: FirewatchConfig) -> cw.Dashboard:
        fn = self.serverless.function
        lb = self.web.load_balancer.metrics
        tg = self.web.target_group.metrics
        invocations = fn.metric_invocations(statistic="Sum", period=FIVE_MINUTES)
        errors = fn.metric_errors(statistic="Sum", period=FIVE_MINUTES)
        success_rate = cw.MathExpression(
            expression="IF(invocations > 0, 100 * (invocations - FILL(errors, 0)) / invocations)",
            using_metrics={"invocations": invocations, "errors": errors},
            label="Success rate (%)",
            period=FIVE_MINUTES,
        )

        def graph(title: str, left: list, width: int = 8, right: list | None = None) -> cw.GraphWidget:
            return cw.GraphWidget(title=title, left=left, right=right or [], width=width, height=6)

        dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=config.stack_name("dashboard"))
        dashboard.add_widgets(cw.TextWidget(markdown="# Firewatch: serverless classifier", width=WIDTH, height=1))
        dashboard.add_widgets(
            graph("Lambda invocations and errors", [invocations, errors]),
            graph(
                "Lambda duration (ms)",
                [fn.metric_duration(statistic=s, period=FIVE_MINUTES, label=s) for s in ("p50", "p90", "p99")],
            ),
            graph("Lambda success rate (%)", [success_rate]),
        )
        dashboard.add_widgets(
            graph("Lambda throttles", [fn.metric_throttles(statistic="Sum", period=FIVE_MINUTES)]),
            graph(
                "Lambda concurrent executions",
                [fn.metric("ConcurrentExecutions", statistic="Maximum", period=FIVE_MINUTES)],
            ),
            graph(
                "Dead-letter queue depth",
                [self.serverless.dead_letter_queue.metric_approximate_number_of_messages_visible(
                    statistic="Maximum", period=FIVE_MINUTES)],
            ),  # fmt: skip
        )
        dashboard.add_widgets(
            graph(
                "Images classified / fire / invalid",
                [self._custom("ImagesClassified"), self._custom("FireDetected"), self._custom("InvalidImages")],
                width=12,
            ),
            graph(
                "Event records refused / malformed",
                [self._custom("RefusedRecords"), self._custom("MalformedRecords")],
                width=12,
            ),
            graph(
                "Inference latency (ms)",
                [self._custom("InferenceLatency", s) for s in ("p50", "p90", "p99")],
                width=12,
            ),
        )
        log_group = self.serverless.log_group.log_group_name
        dashboard.add_widgets(
            cw.LogQueryWidget(
                title="Recent function log events",
                log_group_names=[log_group],
                query_lines=[
                    "fields @timestamp, @message",
                    "filter @message not like /^(START|END|REPORT) RequestId/",
                    "sort @timestamp desc",
                    "limit 50",
                ],
                width=12,
                height=6,
            ),
            cw.LogQueryWidget(
                title="Function cold starts, duration and memory",
                log_group_names=[log_group],
                query_lines=[
                    'filter @type = "REPORT"',
                    "stats count(*) as invocations, count(@initDuration) as coldStarts, avg(@duration) as avgMs,"
                    " max(@duration) as maxMs, max(@maxMemoryUsed / 1000 / 1000) as maxMemoryMB by bin(1h)",
                ],
                width=12,
                height=6,
            ),
        )
        dashboard.add_widgets(cw.TextWidget(markdown="# Firewatch: web tier", width=WIDTH, height=1))
        dashboard.add_widgets(
            graph("ALB requests", [lb.request_count(statistic="Sum", period=FIVE_MINUTES)]),
            graph(
                "Target response time (s)",
                [lb.target_response_time(statistic=s, period=FIVE_MINUTES, label=s) for s in ("p50", "p90", "p99")],
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
        )
        dashboard.add_widgets(
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
                    self._asg_metric("mem_used_percent", namespace="CWAgent"),
                    self._asg_metric("disk_used_percent", namespace="CWAgent"),
                ],
            ),
        )
        dashboard.add_widgets(
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
        )
        dashboard.add_widgets(
            cw.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms.values()), width=WIDTH, height=3)
        )
        return dashboard

