"""The operator commands on the real synthesized app: what `ops cost` counts, what `ops destroy` says it keeps."""

from __future__ import annotations

import pytest

from ops import cost
from ops.deploy import retained_resources
from ops.synth import synthesize


def _templates(synth) -> dict[str, dict]:
    return {stack.stack_name: template.to_json() for stack, template in (
        (synth.stacks.serverless, synth.serverless), (synth.stacks.web, synth.web), (synth.stacks.monitoring, synth.monitoring))}  # fmt: skip


def test_cost_counts_the_default_shape(synth):
    found = cost.inventory(_templates(synth))
    assert (found.nat_gateways, found.load_balancers, found.public_ipv4) == (1, 1, 3)
    assert found.instances == [("t3.small", 2, 20, "gp3")]
    assert found.functions == [(1024, "x86_64")]
    assert found.kms_keys == 1 and found.dashboards == 1
    assert found.alarm_metrics >= len(synth.monitoring.find_resources("AWS::CloudWatch::Alarm"))


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
