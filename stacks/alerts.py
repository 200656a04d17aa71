"""Fire alerts: the SNS topic the classifier publishes to when it sees fire."""

from __future__ import annotations

from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from stacks.capability import Capability


class FireAlerts(Capability):
    def __init__(self, scope: Construct, *, email: str | None) -> None:
        super().__init__(scope)
        self.topic = sns.Topic(
            self.scope,
            "AlertTopic",
            display_name="Firewatch fire alerts",
            # The AWS managed key lets any publisher of this account encrypt: the function needs no KMS grant.
            master_key=kms.Alias.from_alias_name(self.scope, "SnsManagedKey", "alias/aws/sns"),
            enforce_ssl=True,
        )
        if email:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
