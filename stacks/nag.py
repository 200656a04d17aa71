"""cdk-nag (AwsSolutions) wiring and a helper to acknowledge a finding with its reason next to the construct."""

from __future__ import annotations

from aws_cdk import Acknowledgment, App, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct


def enable_checks(app: App) -> None:
    """Run the AwsSolutions pack at synth: synth fails while any finding is unacknowledged."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding (``RuleId`` or ``RuleId[FindingId]``) on ``scope`` and its children."""
    if not reason.strip():
        raise ValueError(f"acknowledging {rule} needs a reason")
    # The plain rule id, as cdk-nag documents it: both cdk-nag and the CDK's validation report honour it.
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))
