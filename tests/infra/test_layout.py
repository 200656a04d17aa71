"""The stacks' layout: capabilities composed into stacks without changing what an upgrade deploys, the image declared
by each stack that runs it, and monitoring composed from what each capability offers."""

from __future__ import annotations

import json
from pathlib import Path

from tests.infra.conftest import cdk_json_context

RELEASED_LOGICAL_IDS = json.loads((Path(__file__).parent / "logical_ids.json").read_text())


def _logical_ids(template) -> dict[str, str]:
    resources = template.to_json()["Resources"]
    return {k: v["Type"] for k, v in resources.items() if v["Type"] != "AWS::CDK::Metadata"}


def test_upgrading_replaces_no_resource(synth):
    """Same logical IDs and types as the released layout: CloudFormation would replace any resource whose ID changed
    (a new bucket, queue or key; a new load balancer with a new DNS name)."""
    for name in ("serverless", "web", "monitoring"):
        assert _logical_ids(getattr(synth, name)) == RELEASED_LOGICAL_IDS[name], name


def test_path_derived_names_are_those_of_the_flat_layout(synth):
    """The CDK also writes construct paths into Name tags and rule ids: a changed path would roll every web instance
    (the launch template's tags) or fail the deploy (a security-group rule replaced by its own duplicate)."""
    web = synth.web.to_json()["Resources"]
    launch_template = next(r for r in web.values() if r["Type"] == "AWS::EC2::LaunchTemplate")["Properties"]
    for spec in launch_template["TagSpecifications"] + launch_template["LaunchTemplateData"]["TagSpecifications"]:
        assert {t["Key"]: t["Value"] for t in spec["Tags"]}["Name"] == "firewatch-dev-web/LaunchTemplate"
    vpc = next(r for r in web.values() if r["Type"] == "AWS::EC2::VPC")
    assert {t["Key"]: t["Value"] for t in vpc["Properties"]["Tags"]}["Name"] == "firewatch-dev-web/Vpc"


def test_the_web_stack_declares_the_image_it_runs(synth):
    """Nothing crosses between the two paths as an object: each stack declares the image from the same source, so both
    name one asset (one build, one tag), and the web stack deploys on its own once the bucket parameter exists."""
    outdir = Path(synth.app.outdir)
    images = [json.loads((outdir / f"firewatch-dev-{s}.assets.json").read_text())["dockerImages"] for s in ("serverless", "web")]
    assert images[0].keys() == images[1].keys() and len(images[0]) == 1
    assert synth.stacks.web.image.asset.asset_hash == synth.stacks.serverless.image.asset.asset_hash
    assert "Fn::ImportValue" not in json.dumps(synth.web.to_json())


def test_monitoring_is_composed_from_what_each_capability_offers(tmp_path):
    """The monitoring stack knows no resource: a probe capability's alarm spec becomes an alarm on the topic, and its
    section lands on the dashboard under its title, before the alarm status widget."""
    import aws_cdk as cdk
    from aws_cdk import aws_cloudwatch as cw
    from aws_cdk.assertions import Template

    from stacks.config import FirewatchConfig
    from stacks.monitoring import MonitoringStack
    from stacks.observability import AlarmSpec, DashboardSection, graph

    metric = cw.Metric(namespace="Probe", metric_name="Faults", statistic="Sum")

    class Probe:
        def alarm_specs(self):
            return [AlarmSpec("ProbeFaults", metric, 3, 2, "The probe reported faults")]

        def dashboard_section(self):
            return DashboardSection("probe", [[graph("Probe faults", [metric], width=24)]])

    app = cdk.App(outdir=str(tmp_path), context=cdk_json_context())
    stack = MonitoringStack(app, "probe-monitoring", config=FirewatchConfig(), monitored=[Probe()])
    template = Template.from_stack(stack).to_json()
    (alarm_id, alarm), = [(k, v["Properties"]) for k, v in template["Resources"].items() if v["Type"] == "AWS::CloudWatch::Alarm"]
    topic = next(k for k, v in template["Resources"].items() if v["Type"] == "AWS::SNS::Topic")
    assert alarm_id.startswith("ProbeFaults") and alarm["AlarmDescription"] == "The probe reported faults"
    assert (alarm["Threshold"], alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (3, 2, 2)
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold" and alarm["TreatMissingData"] == "notBreaching"
    assert alarm["AlarmActions"] == alarm["OKActions"] == [{"Ref": topic}]
    body = next(v for v in template["Resources"].values() if v["Type"] == "AWS::CloudWatch::Dashboard")
    parts = body["Properties"]["DashboardBody"]["Fn::Join"][1]
    widgets = json.loads("".join(p if isinstance(p, str) else "<ref>" for p in parts))["widgets"]
    assert [w["type"] for w in widgets] == ["text", "metric", "alarm"]
    assert widgets[0]["properties"]["markdown"] == "# Firewatch: probe"
    assert widgets[1]["properties"]["title"] == "Probe faults"

