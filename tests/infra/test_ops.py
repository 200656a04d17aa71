"""The operator commands on the real synthesized app: what `ops cost` counts, what `ops destroy` says it keeps."""

from __future__ import annotations

import pytest

from ops import cost
from ops.deploy import retained_resources
from ops.synth import synthesize
from tests.infra.conftest import ROOT


def _templates(synth) -> dict[str, dict]:
    return {stack.stack_name: template.to_json() for stack, template in (
        (synth.stacks.serverless, synth.serverless), (synth.stacks.web, synth.web), (synth.stacks.monitoring, synth.monitoring))
        if stack is not None}  # fmt: skip


def test_cost_counts_the_default_shape(synth):
    found = cost.inventory(_templates(synth))
    assert (found.nat_gateways, found.load_balancers, found.public_ipv4) == (1, 1, 3)
    assert found.instances == [("t3.small", 2, 20, "gp3")]
    assert found.functions == [(1024, "x86_64")]
    assert found.kms_keys == 1 and found.dashboards == 1
    assert found.alarm_metrics >= len(synth.monitoring.find_resources("AWS::CloudWatch::Alarm"))


@pytest.mark.parametrize("fixture, heading", [
    ("synth", "For the default settings"),
    ("synth_serverless_only", "For the serverless-only shape"),
])  # fmt: skip
def test_the_readme_s_cost_estimates_are_what_the_command_prints(fixture, heading, request):
    """The README shows `make cost`'s output (whole, or its main lines); an added alarm or instance changes it."""
    readme = (ROOT / "README.md").read_text()
    shown = readme.split(heading, 1)[1].split("```text\n", 1)[1].split("```", 1)[0].splitlines()
    printed = iter(cost.render(cost.estimate(_templates(request.getfixturevalue(fixture)))).splitlines())
    missing = [line for line in shown if line not in printed]  # in order: each search goes on from the last match
    assert not missing, f"run `make cost` and copy its output into the README: {missing}"


def test_cost_follows_the_settings(synth_custom):
    found = cost.inventory(_templates(synth_custom))
    assert found.nat_gateways == 2 and found.public_ipv4 == 4
    assert found.instances == [("t4g.small", 3, 20, "gp3")]
    assert found.functions == [(3538, "arm64")]


def test_destroy_names_the_retained_buckets(synth):
    kept = retained_resources(_templates(synth))
    buckets = [line for line in kept if "AWS::S3::Bucket" in line]
    assert len(buckets) == 2 and all(line.startswith("firewatch-dev-serverless: ") for line in buckets)


@pytest.mark.slow
def test_synthesize_runs_the_app_with_the_given_settings():
    templates = synthesize({"envName": "costcheck", "lambdaMemoryMb": "2048"})
    assert sorted(templates) == [f"firewatch-costcheck-{part}" for part in ("monitoring", "serverless", "web")]
    assert cost.inventory(templates).functions == [(2048, "x86_64")]
