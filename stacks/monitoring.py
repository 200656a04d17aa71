"""Monitoring: one CloudWatch dashboard over both paths, and alarms that notify an SNS alarm topic.

The stack knows no resource of the other stacks: each monitored capability (the classifier, the web tier) brings
its alarm specs and its dashboard section, and this stack wires the alarms to the topic and lays the sections out.
"""

from __future__ import annotations

from typing import Sequence

from aws_cdk import Aws, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from stacks.capability import Capability
from stacks.config import FirewatchConfig
from stacks.observability import DASHBOARD_WIDTH, AlarmSpec, Monitored


class AlarmNotifications(Capability):
    """The alarm topic, encrypted with a key CloudWatch may use (it cannot publish to a topic under the AWS managed
    key), and the e-mail subscription."""

    def __init__(self, scope: Construct, *, email: str | None) -> None:
        super().__init__(scope)
        key = kms.Key(
            self.scope,
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
        self.topic = sns.Topic(self.scope, "AlarmTopic", display_name="Firewatch alarms", master_key=key, enforce_ssl=True)
        if email:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))

    def alarm(self, scope: Construct, spec: AlarmSpec) -> cw.Alarm:
        """An alarm from ``spec`` that notifies this topic when it fires and when it clears."""
        alarm = spec.metric.create_alarm(
            scope,
            spec.name,
            alarm_description=spec.description,
            threshold=spec.threshold,
            evaluation_periods=spec.periods,
            datapoints_to_alarm=spec.periods,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(cw_actions.SnsAction(self.topic))
        alarm.add_ok_action(cw_actions.SnsAction(self.topic))
        return alarm


class MonitoringStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: FirewatchConfig,
        monitored: Sequence[Monitored],
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.notifications = AlarmNotifications(self, email=config.alarm_recipient)
        self.alarm_topic = self.notifications.topic
        self.alarms = {
            spec.name: self.notifications.alarm(self, spec) for capability in monitored for spec in capability.alarm_specs()
        }
        self.dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=config.stack_name("dashboard"))
        for capability in monitored:
            section = capability.dashboard_section()
            self.dashboard.add_widgets(
                cw.TextWidget(markdown=f"# Firewatch: {section.title}", width=DASHBOARD_WIDTH, height=1)
            )
            for row in section.rows:
                self.dashboard.add_widgets(*row)
        self.dashboard.add_widgets(
            cw.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms.values()), width=DASHBOARD_WIDTH, height=3)
        )

        url = (
            f"https://{Aws.REGION}.console.aws.amazon.com/cloudwatch/home?region={Aws.REGION}"
            f"#dashboards:name={config.stack_name('dashboard')}"
        )
        CfnOutput(self, "DashboardUrl", value=url, description="CloudWatch dashboard")
        CfnOutput(self, "AlarmTopicArn", value=self.alarm_topic.topic_arn, description="Alarm notifications")
