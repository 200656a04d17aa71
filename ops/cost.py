"""``python -m ops cost``: what the app costs for given settings, read from its synthesized templates.

Two figures, each item with its quantity and unit price (``ops/prices.py``, us-east-1 list prices):

- **always on, per month:** what runs with no traffic at all (NAT gateways, the load balancer, the minimum of web
  instances and their volumes, public IPv4 addresses, alarms, dashboards, custom metrics, KMS keys, WAF);
- **per million images:** what each upload adds (Lambda requests and compute, S3 requests, logs, SNS for the fire
  share, and SQS and DynamoDB when the templates have them).

Only what the templates declare is priced, so a shape without the web tier (no NAT gateway, no load balancer)
costs what it really does. Every assumption that is not in a template is stated in the output.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field

from ops import prices
from ops.synth import SynthError, parse_context, synthesize

# Assumptions (printed with the figures).
NAT_GB_PER_MONTH = 10  # instance traffic through NAT: image pulls on launch, OS updates, CloudWatch, SSM
ALB_LCU_AVERAGE = 1.0  # light traffic; an idle load balancer uses less, a busy one more
IMAGE_GB_IN_ECR = 0.2  # the compressed image in the bootstrap ECR repository
# The README's benchmark: a warm 12 MP camera JPEG takes ~40 ms on one full vCPU; Lambda gives one vCPU per 1,769 MB.
WARM_MS_ONE_VCPU = 40
FULL_VCPU_MB = 1769
LOG_KB_PER_IMAGE = 2.0  # the function's JSON log lines, EMF metrics and Lambda's START/END/REPORT lines
IMAGE_MB = 1.0  # an upload, for storage
FIRE_SHARE = 0.01  # share of images that are fire (each sends one alert)
ALERT_EMAILS = 1  # e-mail subscribers of the fire alert topic
S3_GETS_PER_IMAGE = 2  # the result (usually absent) and the upload
S3_PUTS_PER_IMAGE = 2  # the upload itself and its result; a fire result is written once more
SQS_REQUESTS_PER_IMAGE = 3  # send, receive, delete, unbatched (batches make it less)
# The CloudWatch agent publishes memory and disk use per instance and per Auto Scaling group.
AGENT_METRICS = 2


class CostError(ValueError):
    """The templates hold something this estimate cannot price; the message says what to add."""


@dataclass(frozen=True)
class Line:
    item: str
    quantity: float
    unit: str
    unit_price: float
    usd: float


@dataclass
class Inventory:
    """What the templates declare that has a price."""

    stacks: list[str] = field(default_factory=list)
    types: Counter = field(default_factory=Counter)
    nat_gateways: int = 0
    public_ipv4: int = 0
    load_balancers: int = 0
    instances: list[tuple[str, int, int, str]] = field(default_factory=list)  # type, min count, volume GB, volume type
    alarm_metrics: int = 0
    dashboards: int = 0
    kms_keys: int = 0
    web_acl_rules: list[int] = field(default_factory=list)  # rules per web ACL
    functions: list[tuple[int, str]] = field(default_factory=list)  # memory MB, architecture (container image ones)
    queue_fed_functions: int = 0  # SQS event source mappings
    tables: list[bool] = field(default_factory=list)  # point-in-time recovery on, per on-demand table
    # write units one item write costs, per table: the table's own and one per global secondary index it lands in
    table_write_units: list[int] = field(default_factory=list)


def inventory(templates: dict[str, dict]) -> Inventory:
    """Count the priced resources of ``templates`` (stack name -> CloudFormation template)."""
    found = Inventory(stacks=sorted(templates))
    for template in templates.values():
        resources = template.get("Resources", {})
        for logical_id, resource in resources.items():
            kind, props = resource["Type"], resource.get("Properties", {})
            found.types[kind] += 1
            if kind == "AWS::EC2::NatGateway":
                found.nat_gateways += 1
            elif kind == "AWS::EC2::EIP":
                found.public_ipv4 += 1
            elif kind == "AWS::ElasticLoadBalancingV2::LoadBalancer" and props.get("Type", "application") == "application":
                found.load_balancers += 1
                if props.get("Scheme", "internet-facing") == "internet-facing":  # one address per subnet (AZ)
                    found.public_ipv4 += len(props.get("Subnets", [])) or 2
            elif kind == "AWS::AutoScaling::AutoScalingGroup":
                found.instances.append(_instances(props, resources, logical_id))
            elif kind == "AWS::CloudWatch::Alarm":
                found.alarm_metrics += _alarm_metrics(props)
            elif kind == "AWS::CloudWatch::Dashboard":
                found.dashboards += 1
            elif kind == "AWS::KMS::Key":
                found.kms_keys += 1
            elif kind == "AWS::WAFv2::WebACL":
                found.web_acl_rules.append(len(props.get("Rules", [])))
            elif kind == "AWS::Lambda::Function" and props.get("PackageType") == "Image":
                found.functions.append((int(props.get("MemorySize", 128)), (props.get("Architectures") or ["x86_64"])[0]))
            elif kind == "AWS::Lambda::EventSourceMapping" and _is_queue(props.get("EventSourceArn"), resources):
                found.queue_fed_functions += 1
            elif kind == "AWS::DynamoDB::Table":
                if props.get("BillingMode") != "PAY_PER_REQUEST":
                    raise CostError(f"table {logical_id} is provisioned; only on-demand tables are priced")
                pitr = props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled", False)
                found.tables.append(bool(pitr))
                found.table_write_units.append(1 + len(props.get("GlobalSecondaryIndexes", [])))
    return found


def _instances(asg: dict, resources: dict, logical_id: str) -> tuple[str, int, int, str]:
    reference = asg.get("LaunchTemplate", {}).get("LaunchTemplateId", {})
    template = resources.get(reference.get("Ref", "") if isinstance(reference, dict) else "", {})
    data = template.get("Properties", {}).get("LaunchTemplateData", {})
    if "InstanceType" not in data:
        raise CostError(f"Auto Scaling group {logical_id} has no launch template in the same stack to read its instance type from")
    volumes = [m["Ebs"] for m in data.get("BlockDeviceMappings", []) if "Ebs" in m]
    size = sum(int(v.get("VolumeSize", 8)) for v in volumes) or 8  # AL2023's own root volume is 8 GB
    volume_type = volumes[0].get("VolumeType", "gp2") if volumes else "gp3"
    return data["InstanceType"], int(asg.get("MinSize", 0)), size, volume_type


def _alarm_metrics(alarm: dict) -> int:
    """An alarm is billed per metric it evaluates: one, or each metric of its math expression."""
    queries = alarm.get("Metrics")
    return sum(1 for q in queries if "MetricStat" in q) if queries else 1


def _is_queue(arn, resources: dict) -> bool:
    if isinstance(arn, dict) and "Fn::GetAtt" in arn:
        return resources.get(arn["Fn::GetAtt"][0], {}).get("Type") == "AWS::SQS::Queue"
    return isinstance(arn, str) and ":sqs:" in arn


def monthly(found: Inventory) -> list[Line]:
    """The always-on cost per month (730 hours)."""
    hours = prices.HOURS_PER_MONTH
    lines = []
    if found.nat_gateways:
        lines.append(Line("NAT gateway", found.nat_gateways, "gateway-month", prices.NAT_GATEWAY_HOUR * hours,
                          found.nat_gateways * prices.NAT_GATEWAY_HOUR * hours))  # fmt: skip
        lines.append(Line(f"NAT data processed (assumed {NAT_GB_PER_MONTH} GB)", NAT_GB_PER_MONTH, "GB",
                          prices.NAT_GATEWAY_GB, NAT_GB_PER_MONTH * prices.NAT_GATEWAY_GB))  # fmt: skip
    if found.load_balancers:
        lines.append(Line("Application Load Balancer", found.load_balancers, "ALB-month", prices.ALB_HOUR * hours,
                          found.load_balancers * prices.ALB_HOUR * hours))  # fmt: skip
        lcu_hours = found.load_balancers * ALB_LCU_AVERAGE * hours
        lines.append(Line(f"ALB capacity units (assumed {ALB_LCU_AVERAGE:g} LCU)", lcu_hours, "LCU-hour",
                          prices.ALB_LCU_HOUR, lcu_hours * prices.ALB_LCU_HOUR))  # fmt: skip
    if found.public_ipv4:
        lines.append(Line("public IPv4 addresses (NAT, ALB)", found.public_ipv4, "address-month",
                          prices.PUBLIC_IPV4_HOUR * hours, found.public_ipv4 * prices.PUBLIC_IPV4_HOUR * hours))  # fmt: skip
    for instance_type, count, volume_gb, volume_type in found.instances:
        if instance_type not in prices.EC2_HOURLY:
            raise CostError(f"no price for instance type {instance_type!r}: add it to EC2_HOURLY in ops/prices.py "
                            f"(known: {', '.join(sorted(prices.EC2_HOURLY))})")  # fmt: skip
        hourly = prices.EC2_HOURLY[instance_type]
        lines.append(Line(f"EC2 {instance_type} (minimum capacity)", count, "instance-month", hourly * hours, count * hourly * hours))
        per_gb = prices.EBS_GB_MONTH.get(volume_type, prices.EBS_GB_MONTH["gp2"])
        lines.append(Line(f"EBS {volume_type} root volumes ({volume_gb} GB each)", count * volume_gb, "GB-month", per_gb,
                          count * volume_gb * per_gb))  # fmt: skip
        agent = AGENT_METRICS * (count + 1)  # per instance, and per group
        lines.append(Line("custom metrics: CloudWatch agent (memory, disk)", agent, "metric-month",
                          prices.CUSTOM_METRIC_MONTH, agent * prices.CUSTOM_METRIC_MONTH))  # fmt: skip
    filtered = found.types["AWS::Logs::MetricFilter"]  # one metric each: their one dimension is the deployment
    if filtered:
        lines.append(Line("custom metrics: the web servers' log filters", filtered, "metric-month",
                          prices.CUSTOM_METRIC_MONTH, filtered * prices.CUSTOM_METRIC_MONTH))  # fmt: skip
    if found.functions:
        from inference.contract import CUSTOM_METRICS  # standard library only

        emf = (len(CUSTOM_METRICS) + 1) * len(found.functions)  # and Powertools' ColdStart
        lines.append(Line("custom metrics: the function's (EMF)", emf, "metric-month", prices.CUSTOM_METRIC_MONTH,
                          emf * prices.CUSTOM_METRIC_MONTH))  # fmt: skip
        lines.append(Line(f"container image in ECR (assumed {IMAGE_GB_IN_ECR:g} GB)", IMAGE_GB_IN_ECR, "GB-month",
                          prices.ECR_GB_MONTH, IMAGE_GB_IN_ECR * prices.ECR_GB_MONTH))  # fmt: skip
    if found.alarm_metrics:
        lines.append(Line(f"CloudWatch alarms ({found.types['AWS::CloudWatch::Alarm']})", found.alarm_metrics,
                          "alarm metric-month", prices.ALARM_METRIC_MONTH, found.alarm_metrics * prices.ALARM_METRIC_MONTH))  # fmt: skip
    if found.dashboards:
        lines.append(Line("CloudWatch dashboards", found.dashboards, "dashboard-month", prices.DASHBOARD_MONTH,
                          found.dashboards * prices.DASHBOARD_MONTH))  # fmt: skip
    if found.kms_keys:
        lines.append(Line("KMS customer managed keys", found.kms_keys, "key-month", prices.KMS_KEY_MONTH,
                          found.kms_keys * prices.KMS_KEY_MONTH))  # fmt: skip
    if found.web_acl_rules:
        acls, rules = len(found.web_acl_rules), sum(found.web_acl_rules)
        lines.append(Line("WAF web ACLs", acls, "ACL-month", prices.WAF_WEB_ACL_MONTH, acls * prices.WAF_WEB_ACL_MONTH))
        lines.append(Line("WAF rules", rules, "rule-month", prices.WAF_RULE_MONTH, rules * prices.WAF_RULE_MONTH))
    return lines


def per_million_images(found: Inventory, *, duration_ms: float | None = None, fire_share: float = FIRE_SHARE) -> list[Line]:
    """What one million uploads add, at the function's configured memory."""
    million = 1_000_000
    lines = []
    for memory_mb, architecture in found.functions:
        lines.append(Line("Lambda requests", million, "request", prices.LAMBDA_MILLION_REQUESTS / million,
                          prices.LAMBDA_MILLION_REQUESTS))  # fmt: skip
        billed_ms = math.ceil(duration_ms if duration_ms is not None else WARM_MS_ONE_VCPU * max(1.0, FULL_VCPU_MB / memory_mb))
        gb_seconds = million * billed_ms / 1000 * memory_mb / 1024
        per_gb_s = prices.LAMBDA_GB_SECOND[architecture]
        lines.append(Line(f"Lambda compute ({memory_mb} MB {architecture}, {billed_ms} ms)", gb_seconds, "GB-second",
                          per_gb_s, gb_seconds * per_gb_s))  # fmt: skip
    if not found.functions:
        return lines
    log_gb = million * LOG_KB_PER_IMAGE / 1024 / 1024
    lines.append(Line(f"CloudWatch Logs ingestion (assumed {LOG_KB_PER_IMAGE:g} KB per image)", log_gb, "GB",
                      prices.LOGS_INGEST_GB, log_gb * prices.LOGS_INGEST_GB))  # fmt: skip
    puts = million * (S3_PUTS_PER_IMAGE + fire_share)
    lines.append(Line("S3 PUT (upload, result, fire's second write)", puts, "request", prices.S3_PUT_THOUSAND / 1000,
                      puts * prices.S3_PUT_THOUSAND / 1000))  # fmt: skip
    gets = million * S3_GETS_PER_IMAGE
    lines.append(Line("S3 GET (result check, upload)", gets, "request", prices.S3_GET_THOUSAND / 1000,
                      gets * prices.S3_GET_THOUSAND / 1000))  # fmt: skip
    if found.queue_fed_functions:
        requests = million * SQS_REQUESTS_PER_IMAGE
        lines.append(Line(f"SQS requests (assumed {SQS_REQUESTS_PER_IMAGE} per image)", requests, "request",
                          prices.SQS_MILLION_REQUESTS / million, requests * prices.SQS_MILLION_REQUESTS / million))  # fmt: skip
    for units in found.table_write_units:  # one item write per image (under 1 KB), each index written too
        writes = million * units
        lines.append(Line(f"DynamoDB on-demand write units (table + {units - 1} index)", writes, "write unit",
                          prices.DYNAMODB_MILLION_WRITES / million, writes * prices.DYNAMODB_MILLION_WRITES / million))  # fmt: skip
    alerts = million * fire_share
    lines.append(Line(f"SNS publishes (assumed {fire_share:.0%} fire)", alerts, "publish", prices.SNS_MILLION_PUBLISHES / million,
                      alerts * prices.SNS_MILLION_PUBLISHES / million))  # fmt: skip
    emails = alerts * ALERT_EMAILS
    lines.append(Line(f"SNS e-mails ({ALERT_EMAILS} subscriber)", emails, "e-mail", prices.SNS_EMAIL_THOUSAND / 1000,
                      emails * prices.SNS_EMAIL_THOUSAND / 1000))  # fmt: skip
    return lines


def storage_notes(found: Inventory) -> list[str]:
    """Costs that grow with what is kept, not with time or traffic alone."""
    notes = [f"S3 storage: ${prices.S3_GB_MONTH}/GB-month; a million {IMAGE_MB:g} MB uploads kept a month: "
             f"${IMAGE_MB * 1_000_000 / 1024 * prices.S3_GB_MONTH:,.2f} (old versions expire after 30 days)",
             f"CloudWatch Logs storage: ${prices.LOGS_STORE_GB_MONTH}/GB-month, for the retention set (logRetentionDays)"]  # fmt: skip
    if found.tables:
        notes.append(f"DynamoDB storage ${prices.DYNAMODB_GB_MONTH}/GB-month"
                     + (f", point-in-time recovery ${prices.DYNAMODB_PITR_GB_MONTH}/GB-month" if any(found.tables) else ""))
    if found.nat_gateways:
        notes.append(f"NAT gateway data beyond the assumed {NAT_GB_PER_MONTH} GB: ${prices.NAT_GATEWAY_GB}/GB")
    if found.web_acl_rules:
        notes.append(f"WAF requests: ${prices.WAF_MILLION_REQUESTS} per million web requests")
    return notes


def estimate(templates: dict[str, dict], **assumptions) -> dict:
    found = inventory(templates)
    always, per_use = monthly(found), per_million_images(found, **assumptions)
    return {
        "stacks": found.stacks,
        "prices": f"{prices.REGION} list prices as of {prices.AS_OF}",
        "monthly": [asdict(line) for line in always],
        "monthly_total_usd": round(sum(line.usd for line in always), 2),
        "per_million_images": [asdict(line) for line in per_use],
        "per_million_images_total_usd": round(sum(line.usd for line in per_use), 2),
        "notes": storage_notes(found),
        "sources": prices.SOURCES,
    }


def render(report: dict) -> str:
    width = max([len(line["item"]) for part in ("monthly", "per_million_images") for line in report[part]] + [20])
    out = [f"Firewatch cost estimate for {', '.join(report['stacks'])}", f"({report['prices']}, USD, no free tier)", ""]
    for part, title, total in (("monthly", "Always on, per month (730 h)", "monthly_total_usd"),
                               ("per_million_images", "Per million images", "per_million_images_total_usd")):  # fmt: skip
        out.append(title)
        out.append(f"  {'item':<{width}}  {'quantity':>14}  {'unit price':>14}  {'USD':>10}")
        for line in report[part]:
            out.append(f"  {line['item']:<{width}}  {_quantity(line['quantity']):>14}  {_price(line['unit_price']):>14}  {line['usd']:>10,.2f}")
        out.append(f"  {'total':<{width}}  {'':>14}  {'':>14}  {report[total]:>10,.2f}")
        out.append("")
    out.append("Also:")
    out += [f"  {note}" for note in report["notes"]]
    out.append("Prices from:")
    out += [f"  {what}: {url}" for what, url in report["sources"].items()]
    return "\n".join(out)


def _price(value: float) -> str:
    if value >= 0.01:  # cents, or a tenth of a cent where the price has one ($0.045)
        text = f"{value:,.3f}"
        return "$" + (text[:-1] if text.endswith("0") else text)
    return "$" + f"{value:.8f}".rstrip("0")


def _quantity(value: float) -> str:
    value = round(value, 6)  # 1e6 x 2.01 is 2010000.0000000002
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting (CDK context), repeatable: the shape to price")  # fmt: skip
    parser.add_argument("--region", default=prices.REGION, help="the region you deploy to (prices are us-east-1's)")
    parser.add_argument("--duration-ms", type=float, help=f"billed Lambda duration per image (default: {WARM_MS_ONE_VCPU} ms "
                        f"on one vCPU, the benchmark's warm 12 MP JPEG, scaled to the memory)")  # fmt: skip
    parser.add_argument("--fire-share", type=float, default=FIRE_SHARE, help="share of images that are fire (0-1)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.fire_share <= 1:
        print("error: --fire-share must lie between 0 and 1", file=sys.stderr)
        return 2
    try:
        report = estimate(synthesize(parse_context(args.context)), duration_ms=args.duration_ms, fire_share=args.fire_share)
    except (SynthError, CostError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.region != prices.REGION:
        report["note"] = f"prices are {prices.REGION}'s; {args.region} may cost more (see the pricing pages)"
    print(json.dumps(report, indent=2) if args.json else render(report))
    if "note" in report and not args.json:
        print(f"\nNote: {report['note']}")
    return 0
