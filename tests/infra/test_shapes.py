"""The two shapes of the app: the full default (serverless + web + monitoring), and serverless only (`-c web=false`):
S3 -> function -> results and alerts, with its monitoring, and no VPC, NAT gateway, load balancer or instances."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.infra.conftest import resources

WEB_ONLY_TYPES = ("AWS::EC2::VPC", "AWS::EC2::NatGateway", "AWS::ElasticLoadBalancingV2::LoadBalancer",
                  "AWS::AutoScaling::AutoScalingGroup", "AWS::WAFv2::WebACL")  # fmt: skip


def _all_resource_types(synthesized) -> set[str]:
    templates = [t for t in (synthesized.serverless, synthesized.web, synthesized.monitoring) if t is not None]
    return {r["Type"] for t in templates for r in t.to_json()["Resources"].values()}


def test_the_default_shape_has_both_paths(synth):
    assert synth.stacks.config.web is True
    assert set(WEB_ONLY_TYPES) <= _all_resource_types(synth)


def test_serverless_only_has_no_web_stack(synth_serverless_only):
    app = synth_serverless_only
    assert app.stacks.web is None
    stacks = {stack.stack_name for stack in app.app.node.children if hasattr(stack, "stack_name")}
    assert stacks == {"firewatch-dev-serverless", "firewatch-dev-monitoring"}
    assert not set(WEB_ONLY_TYPES) & _all_resource_types(app)


def test_the_serverless_path_is_the_same_in_both_shapes(synth, synth_serverless_only):
    """Switching shapes replaces nothing of the serverless path: bucket, function, alerts are the same template."""
    assert synth_serverless_only.serverless.to_json() == synth.serverless.to_json()


def test_serverless_only_monitoring_watches_the_classifier_alone(synth, synth_serverless_only):
    alarms = lambda t: set(resources(t, "AWS::CloudWatch::Alarm"))  # noqa: E731
    web_alarms = {a for a in alarms(synth.monitoring)
                  if a.startswith(("Alb5xxRate", "UnhealthyHosts", "Web"))}  # fmt: skip
    assert len(web_alarms) == 6
    # The classifier's alarms keep their logical IDs: switching shapes replaces none of them.
    assert alarms(synth_serverless_only.monitoring) == alarms(synth.monitoring) - web_alarms
    dashboard = json.dumps(synth_serverless_only.monitoring.to_json())
    assert "# Firewatch: serverless classifier" in dashboard
    assert "web tier" not in dashboard and "AWS/ApplicationELB" not in dashboard and "firewatch-dev-web" not in dashboard


def test_serverless_only_passes_cdk_nag(synth_serverless_only):
    from cdk_nag import AwsSolutionsChecks

    report = AwsSolutionsChecks().validate_scope(synth_serverless_only.app)
    assert report.success and [v.rule_name for v in report.violations] == []


def test_serverless_only_passes_cfn_lint(synth_serverless_only):
    from tests.infra.test_checks import CFN_LINT_IGNORED

    outdir = Path(synth_serverless_only.app.outdir)
    templates = sorted(str(t) for t in outdir.glob("*.template.json"))
    names = [Path(t).name for t in templates]
    assert names == ["firewatch-dev-monitoring.template.json", "firewatch-dev-serverless.template.json"]
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--ignore-checks", *CFN_LINT_IGNORED, "--", *templates],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
