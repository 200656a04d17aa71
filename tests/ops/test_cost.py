"""`python -m ops cost`: counting priced resources in templates, the arithmetic, and the command's output."""

from __future__ import annotations

import json

import pytest

from ops import cost, prices
from ops.__main__ import main


def _serverless(memory: int = 1024, architecture: str = "x86_64", **extra) -> dict:
    return {"Resources": {
        "Classifier": {"Type": "AWS::Lambda::Function",
                       "Properties": {"PackageType": "Image", "MemorySize": memory, "Architectures": [architecture]}},
        "Handler": {"Type": "AWS::Lambda::Function", "Properties": {"Runtime": "nodejs22.x"}},  # not priced per image
        "Errors": {"Type": "AWS::CloudWatch::Alarm", "Properties": {"MetricName": "Errors"}},
        "Rate": {"Type": "AWS::CloudWatch::Alarm", "Properties": {"Metrics": [
            {"Id": "a", "MetricStat": {}}, {"Id": "b", "MetricStat": {}}, {"Id": "rate", "Expression": "a/b"}]}},
        "Key": {"Type": "AWS::KMS::Key", "Properties": {}},
        "Dashboard": {"Type": "AWS::CloudWatch::Dashboard", "Properties": {}},
        **extra,
    }}  # fmt: skip


WEB = {"Resources": {
    "Eip": {"Type": "AWS::EC2::EIP", "Properties": {}},
    "Nat": {"Type": "AWS::EC2::NatGateway", "Properties": {}},
    "Alb": {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer",
            "Properties": {"Type": "application", "Scheme": "internet-facing", "Subnets": [{"Ref": "A"}, {"Ref": "B"}]}},
    "Lt": {"Type": "AWS::EC2::LaunchTemplate", "Properties": {"LaunchTemplateData": {
        "InstanceType": "t3.small", "BlockDeviceMappings": [{"Ebs": {"VolumeSize": 20, "VolumeType": "gp3"}}]}}},
    "Asg": {"Type": "AWS::AutoScaling::AutoScalingGroup",
            "Properties": {"MinSize": "2", "MaxSize": "4", "LaunchTemplate": {"LaunchTemplateId": {"Ref": "Lt"}}}},
    "Verdicts": {"Type": "AWS::Logs::MetricFilter", "Properties": {}},
    "Borderline": {"Type": "AWS::Logs::MetricFilter", "Properties": {}},
}}  # fmt: skip


def _usd(lines, starts: str) -> float:
    (line,) = [line for line in lines if line.item.startswith(starts)]
    return line.usd


def test_resources_are_counted_by_what_is_billed():
    found = cost.inventory({"s": _serverless(), "w": WEB})
    assert (found.nat_gateways, found.load_balancers, found.public_ipv4) == (1, 1, 3)  # the EIP, 2 ALB nodes
    assert found.instances == [("t3.small", 2, 20, "gp3")]
    assert found.alarm_metrics == 3  # a plain alarm, and a math alarm over two metrics
    assert (found.dashboards, found.kms_keys) == (1, 1)
    assert found.functions == [(1024, "x86_64")]  # the container-image function only


def test_always_on_arithmetic():
    lines = cost.monthly(cost.inventory({"s": _serverless(), "w": WEB}))
    assert _usd(lines, "NAT gateway") == pytest.approx(0.045 * 730)
    assert _usd(lines, "Application Load Balancer") == pytest.approx(0.0225 * 730)
    assert _usd(lines, "public IPv4") == pytest.approx(3 * 0.005 * 730)
    assert _usd(lines, "EC2 t3.small") == pytest.approx(2 * 0.0208 * 730)
    assert _usd(lines, "EBS gp3") == pytest.approx(2 * 20 * 0.08)
    assert _usd(lines, "CloudWatch alarms") == pytest.approx(0.30)
    assert _usd(lines, "KMS") == 1.00 and _usd(lines, "CloudWatch dashboards") == 3.00
    assert _usd(lines, "custom metrics: the web servers' log filters") == pytest.approx(2 * 0.30)  # one metric each
    assert not [line for line in cost.monthly(cost.inventory({"s": _serverless()})) if "log filters" in line.item]


def test_lambda_compute_follows_memory_architecture_and_the_assumed_duration():
    default = cost.per_million_images(cost.inventory({"s": _serverless()}))
    # 40 ms on a full vCPU, 1769/1024 slower at 1024 MB: 69.1 -> billed 70 ms; 1e6 x 0.070 s x 1 GB.
    assert _usd(default, "Lambda compute") == pytest.approx(70_000 * prices.LAMBDA_GB_SECOND["x86_64"])
    assert _usd(default, "Lambda requests") == pytest.approx(0.20)
    graviton = cost.per_million_images(cost.inventory({"s": _serverless(2048, "arm64")}), duration_ms=50)
    assert _usd(graviton, "Lambda compute (2048 MB arm64, 50 ms)") == pytest.approx(100_000 * 0.0000133334)
    assert _usd(default, "S3 PUT") == pytest.approx(2.01e6 * 0.005 / 1000)
    assert _usd(default, "SNS publishes") == pytest.approx(10_000 * 0.50 / 1e6)


def test_a_serverless_only_shape_costs_less_and_has_no_nat_or_load_balancer():
    full = cost.estimate({"s": _serverless(), "w": WEB})
    serverless = cost.estimate({"s": _serverless()})
    items = [line["item"] for line in serverless["monthly"]]
    assert not any(item.startswith(("NAT", "Application Load", "EC2", "public IPv4")) for item in items)
    assert serverless["monthly_total_usd"] < full["monthly_total_usd"] - 90
    assert serverless["per_million_images_total_usd"] == full["per_million_images_total_usd"]


def test_queues_tables_and_waf_are_priced_when_the_templates_have_them():
    extra = {
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {}},
        "Feed": {"Type": "AWS::Lambda::EventSourceMapping", "Properties": {"EventSourceArn": {"Fn::GetAtt": ["Queue", "Arn"]}}},
        "Results": {"Type": "AWS::DynamoDB::Table", "Properties": {"BillingMode": "PAY_PER_REQUEST",
                    "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                    "GlobalSecondaryIndexes": [{"IndexName": "newest"}]}},
        "Acl": {"Type": "AWS::WAFv2::WebACL", "Properties": {"Rules": [{"Name": "a"}, {"Name": "b"}, {"Name": "c"}]}},
    }  # fmt: skip
    report = cost.estimate({"s": _serverless(**extra)})
    by_item = {line["item"]: line["usd"] for line in report["monthly"] + report["per_million_images"]}
    assert by_item["WAF web ACLs"] == 5.00 and by_item["WAF rules"] == 3.00
    assert by_item["SQS requests (assumed 3 per image)"] == pytest.approx(3 * 0.40)
    # an item write is a write unit for the table and one for each index it lands in
    assert by_item["DynamoDB on-demand write units (table + 1 index)"] == pytest.approx(2 * 0.625)
    assert any("point-in-time recovery" in note for note in report["notes"])
    plain = cost.estimate({"s": _serverless()})
    assert not any(line["item"].startswith(("SQS", "DynamoDB")) for line in plain["per_million_images"])


def test_an_instance_type_without_a_price_is_named():
    web = json.loads(json.dumps(WEB))
    web["Resources"]["Lt"]["Properties"]["LaunchTemplateData"]["InstanceType"] = "x9.huge"
    with pytest.raises(cost.CostError, match="x9.huge.*ops/prices.py"):
        cost.monthly(cost.inventory({"w": web}))


def test_the_command_prints_a_table_or_json_and_notes_another_region(monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(cost, "synthesize", lambda context: seen.append(context) or {"s": _serverless(), "w": WEB})
    assert main(["cost", "-c", "envName=prod", "--region", "eu-west-1"]) == 0
    out = capsys.readouterr().out
    assert seen == [{"envName": "prod"}]
    assert "Always on, per month" in out and "Per million images" in out and "https://aws.amazon.com/vpc/pricing/" in out
    assert "us-east-1 list prices as of" in out and "prices are us-east-1's; eu-west-1 may cost more" in out
    assert main(["cost", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["monthly_total_usd"] == pytest.approx(sum(line["usd"] for line in report["monthly"]), abs=0.01)
    assert "note" not in report
    assert main(["cost", "--fire-share", "2"]) == 2
