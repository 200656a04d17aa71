"""One synthesized Firewatch app per test session (jsii start-up costs seconds), plus cached context variants."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def cdk_json_context() -> dict:
    """The feature flags and context of cdk.json, so in-process synthesis matches `cdk synth`."""
    from stacks import cdk_json_context as from_cdk_json

    return from_cdk_json()


class Synthesized:
    """A built app and a `Template` per stack (serverless, web, monitoring)."""

    def __init__(self, outdir: Path, context: dict | None = None) -> None:
        import aws_cdk as cdk
        from aws_cdk.assertions import Template

        from stacks import build_app

        self.app = cdk.App(outdir=str(outdir), context={**cdk_json_context(), **(context or {})})
        self.stacks = build_app(self.app)
        self.serverless = Template.from_stack(self.stacks.serverless)
        self.web = Template.from_stack(self.stacks.web) if self.stacks.web else None
        self.monitoring = Template.from_stack(self.stacks.monitoring)


@pytest.fixture(scope="session")
def synth(tmp_path_factory) -> Synthesized:
    """The app with default settings."""
    return Synthesized(tmp_path_factory.mktemp("cdk-default"))


@pytest.fixture(scope="session")
def synth_custom(tmp_path_factory) -> Synthesized:
    """The app with every optional setting given (later apps in one process cost well under a second)."""
    return Synthesized(
        tmp_path_factory.mktemp("cdk-custom"),
        {
            "envName": "prod",
            "architecture": "arm64",
            "minCapacity": "3",
            "maxCapacity": "6",
            "desiredCapacity": "4",
            "lambdaMemoryMb": "3538",
            "lambdaTimeoutSeconds": "120",
            "lambdaReservedConcurrency": "20",
            "alertEmail": "ops@example.com",
            "certificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789",
            "allowedCidr": "203.0.113.0/24",
            "natGateways": "2",
            "logRetentionDays": "90",
            "queueBatchSize": "5",
            "queueBatchWindowSeconds": "20",
            "queueMaxConcurrency": "15",
            "resultsTtlDays": "90",
            "wafRateLimit": "500",
            "wafLogging": "true",
        },
    )


@pytest.fixture(scope="session")
def synth_serverless_only(tmp_path_factory) -> Synthesized:
    """The serverless-only shape: `-c web=false`."""
    return Synthesized(tmp_path_factory.mktemp("cdk-serverless-only"), {"web": "false"})


def resources(template, resource_type: str) -> dict:
    return template.find_resources(resource_type)


def only(template, resource_type: str) -> dict:
    """The properties of the one resource of this type (fails if there are zero or several)."""
    found = template.find_resources(resource_type)
    assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
    return next(iter(found.values())).get("Properties", {})
