"""The web stack: VPC, security groups, ALB and listeners, launch template + user data, Auto Scaling group, IAM."""

from __future__ import annotations

import json
import subprocess

from tests.conftest import ROOT
from tests.infra.conftest import only, resources

SSM_AL2023 = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.1-{}"


def _logical_id(template, resource_type: str, **properties) -> str:
    found = template.find_resources(resource_type, {"Properties": properties} if properties else None)
    assert len(found) == 1, sorted(found)
    return next(iter(found))


def _security_groups(template) -> tuple[str, str]:
    groups = resources(template, "AWS::EC2::SecurityGroup")
    alb = [k for k in groups if k.startswith("LoadBalancerSecurityGroup")]
    instances = [k for k in groups if k.startswith("InstanceSecurityGroup")]
    assert len(alb) == 1 and len(instances) == 1 and len(groups) == 2, sorted(groups)
    return alb[0], instances[0]


def _user_data(template) -> str:
    """The launch template's user data, CloudFormation references rendered as `{...}` JSON."""
    data = only(template, "AWS::EC2::LaunchTemplate")["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Join"]
    assert data[0] == ""
    return "".join(part if isinstance(part, str) else json.dumps(part, sort_keys=True) for part in data[1])


def _statements(template) -> set[tuple]:
    trust = {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}}
    role = _logical_id(template, "AWS::IAM::Role", AssumeRolePolicyDocument={"Statement": [trust], "Version": "2012-10-17"})
    policies = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in resources(template, "AWS::IAM::Policy").values()
        if p["Properties"]["Roles"] == [{"Ref": role}]
    ]
    assert len(policies) == 1
    found = set()
    for s in policies[0]:
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        found.add((tuple(sorted(actions)), json.dumps(s["Resource"], sort_keys=True), json.dumps(s.get("Condition"))))
    return found


def test_vpc_spans_two_azs_with_public_and_private_subnets(synth, synth_custom):
    subnets = resources(synth.web, "AWS::EC2::Subnet")
    public = [s for s in subnets.values() if s["Properties"]["MapPublicIpOnLaunch"]]
    assert len(subnets) == 4 and len(public) == 2
    azs = {json.dumps(s["Properties"]["AvailabilityZone"], sort_keys=True) for s in public}
    assert len(azs) == 2
    assert len(resources(synth.web, "AWS::EC2::NatGateway")) == 1
    assert len(resources(synth_custom.web, "AWS::EC2::NatGateway")) == 2
    endpoint = only(synth.web, "AWS::EC2::VPCEndpoint")
    assert endpoint["VpcEndpointType"] == "Gateway" and "s3" in json.dumps(endpoint["ServiceName"])
    flow_log = only(synth.web, "AWS::EC2::FlowLog")
    assert flow_log["TrafficType"] == "ALL" and flow_log["LogDestinationType"] == "cloud-watch-logs"


def test_load_balancer_accepts_only_http_from_the_allowed_cidr_by_default(synth):
    alb, instances = _security_groups(synth.web)
    props = resources(synth.web, "AWS::EC2::SecurityGroup")[alb]["Properties"]
    assert props["SecurityGroupIngress"] == [
        {"CidrIp": "0.0.0.0/0", "Description": "Port 80 from the allowed CIDR", "FromPort": 80, "IpProtocol": "tcp", "ToPort": 80}
    ]
    assert "SecurityGroupEgress" not in props  # no allow-all; the only egress rule is to the instances
    egress = only(synth.web, "AWS::EC2::SecurityGroupEgress")
    assert egress["GroupId"] == {"Fn::GetAtt": [alb, "GroupId"]}
    assert egress["DestinationSecurityGroupId"] == {"Fn::GetAtt": [instances, "GroupId"]}
    assert (egress["IpProtocol"], egress["FromPort"], egress["ToPort"]) == ("tcp", 8080, 8080)


def test_allowed_cidr_and_https_port_follow_the_context(synth_custom):
    alb, _ = _security_groups(synth_custom.web)
    ingress = resources(synth_custom.web, "AWS::EC2::SecurityGroup")[alb]["Properties"]["SecurityGroupIngress"]
    rules = [(r["CidrIp"], r["FromPort"], r["ToPort"]) for r in ingress]
    assert rules == [("203.0.113.0/24", 80, 80), ("203.0.113.0/24", 443, 443)]


def test_instances_accept_only_the_app_port_from_the_load_balancer(synth):
    alb, instances = _security_groups(synth.web)
    props = resources(synth.web, "AWS::EC2::SecurityGroup")[instances]["Properties"]
    assert "SecurityGroupIngress" not in props
    ingress = only(synth.web, "AWS::EC2::SecurityGroupIngress")  # the one ingress rule in the whole stack
    assert ingress["GroupId"] == {"Fn::GetAtt": [instances, "GroupId"]}
    assert ingress["SourceSecurityGroupId"] == {"Fn::GetAtt": [alb, "GroupId"]}
    assert (ingress["IpProtocol"], ingress["FromPort"], ingress["ToPort"]) == ("tcp", 8080, 8080)
    assert [(r["CidrIp"], r["FromPort"], r["ToPort"]) for r in props["SecurityGroupEgress"]] == [("0.0.0.0/0", 443, 443)]


def test_load_balancer_is_internet_facing_in_public_subnets(synth):
    props = only(synth.web, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    assert props["Scheme"] == "internet-facing" and props["Type"] == "application"
    assert all(s["Ref"].startswith("Vpcpublic") for s in props["Subnets"])
    attributes = {a["Key"]: a["Value"] for a in props["LoadBalancerAttributes"]}
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"
    assert attributes["idle_timeout.timeout_seconds"] == "60"


def test_target_group_checks_healthz_on_the_app_port(synth):
    props = only(synth.web, "AWS::ElasticLoadBalancingV2::TargetGroup")
    assert (props["Port"], props["Protocol"], props["TargetType"]) == (8080, "HTTP", "instance")
    assert props["HealthCheckPath"] == "/healthz"
    assert props["Matcher"] == {"HttpCode": "200"}


def test_http_listener_forwards_without_a_certificate(synth):
    listener = only(synth.web, "AWS::ElasticLoadBalancingV2::Listener")
    target_group = _logical_id(synth.web, "AWS::ElasticLoadBalancingV2::TargetGroup")
    assert (listener["Port"], listener["Protocol"]) == (80, "HTTP")
    assert listener["DefaultActions"] == [{"TargetGroupArn": {"Ref": target_group}, "Type": "forward"}]
    synth.web.has_output("WebUrl", {"Value": {"Fn::Join": ["", ["http://", {"Fn::GetAtt": [
        _logical_id(synth.web, "AWS::ElasticLoadBalancingV2::LoadBalancer"), "DNSName"]}]]}})  # fmt: skip


def test_https_listener_and_redirect_with_a_certificate(synth_custom):
    found = resources(synth_custom.web, "AWS::ElasticLoadBalancingV2::Listener").values()
    listeners = {listener["Properties"]["Port"]: listener["Properties"] for listener in found}
    assert sorted(listeners) == [80, 443]
    https = listeners[443]
    assert https["Protocol"] == "HTTPS"
    certificate = "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
    assert https["Certificates"] == [{"CertificateArn": certificate}]
    assert https["DefaultActions"][0]["Type"] == "forward"
    assert listeners[80]["DefaultActions"] == [
        {"RedirectConfig": {"Port": "443", "Protocol": "HTTPS", "StatusCode": "HTTP_301"}, "Type": "redirect"}
    ]
    output = synth_custom.web.find_outputs("WebUrl")["WebUrl"]["Value"]["Fn::Join"][1]
    assert output[0] == "https://"


def test_launch_template_hardening(synth):
    data = only(synth.web, "AWS::EC2::LaunchTemplate")["LaunchTemplateData"]
    assert data["MetadataOptions"] == {"HttpPutResponseHopLimit": 2, "HttpTokens": "required"}
    assert "KeyName" not in data
    root_volume = {"DeviceName": "/dev/xvda", "Ebs": {"Encrypted": True, "VolumeSize": 20, "VolumeType": "gp3"}}
    assert data["BlockDeviceMappings"] == [root_volume]
    assert data["InstanceType"] == "t3.small"
    parameter = data["ImageId"]["Ref"]
    assert synth.web.to_json()["Parameters"][parameter]["Default"] == SSM_AL2023.format("x86_64")
    assert not resources(synth.web, "AWS::AutoScaling::LaunchConfiguration")


def test_arm64_uses_graviton_and_the_arm_ami(synth_custom):
    data = only(synth_custom.web, "AWS::EC2::LaunchTemplate")["LaunchTemplateData"]
    assert data["InstanceType"] == "t4g.small"
    assert synth_custom.web.to_json()["Parameters"][data["ImageId"]["Ref"]]["Default"] == SSM_AL2023.format("arm64")


def test_user_data_runs_the_web_server_from_the_image_with_a_restart_policy(synth):
    script = _user_data(synth.web)
    asset_hash = synth.stacks.web.image.asset.asset_hash
    assert "dnf install -y docker amazon-cloudwatch-agent" in script
    assert "aws ecr get-login-password" in script and "docker login --username AWS --password-stdin" in script
    image_line = next(line for line in script.splitlines() if line.startswith("IMAGE="))
    image = json.loads(image_line[len('IMAGE="') : -1])["Fn::Sub"]
    assert image == (
        "${AWS::AccountId}.dkr.ecr.${AWS::Region}.${AWS::URLSuffix}/"
        f"cdk-hnb659fds-container-assets-${{AWS::AccountId}}-${{AWS::Region}}:{asset_hash}"
    )
    run = next(line for line in script.splitlines() if line.startswith("docker run"))
    assert "--restart=always" in run and "--publish 8080:8080" in run
    assert '--entrypoint python "$IMAGE" -m web_app --host 0.0.0.0 --port 8080' in run
    # The same launch path the Dockerfile states for the web target.
    dockerfile = (ROOT / "lambda_image" / "Dockerfile").read_text()
    assert "--entrypoint python firewatch -m web_app --host 0.0.0.0 --port 8080" in dockerfile
    assert '--env FIREWATCH_RESULTS_BUCKET={"Ref": "UploadBucketName"}' in run
    assert '--env FIREWATCH_RESULTS_TABLE={"Ref": "ResultsTableName"}' in run
    assert "--log-driver=awslogs" in run
    assert "curl -fsS http://127.0.0.1:8080/healthz && exit 0" in script
    assert "aws cloudformation signal-resource" in script and "cfn-signal" not in script  # tests/infra/test_user_data.py
    assert "amazon-cloudwatch-agent-ctl -a fetch-config" in script


def test_container_stops_gracefully_without_privileges(synth):
    import runpy

    from tests.conftest import ROOT

    run = next(line for line in _user_data(synth.web).splitlines() if line.startswith("docker run"))
    stop_timeout = int(run.split("--stop-timeout ", 1)[1].split()[0])
    graceful = runpy.run_path(str(ROOT / "web_app" / "gunicorn.conf.py"))["graceful_timeout"]
    assert stop_timeout > graceful  # Docker's SIGKILL comes after gunicorn has finished in-flight requests
    assert "--cap-drop=ALL" in run and "--security-opt=no-new-privileges" in run
    assert "--user" not in run and "--privileged" not in run  # the image's own non-root user


def test_container_may_open_the_files_the_web_workers_need(synth):
    """Not the AMI's Docker default, which has been as low as 1,024: each worker holds up to worker_connections
    connections, each a socket and, for a slow upload past its body buffer, a file."""
    import runpy

    from gunicorn.config import Config

    from tests.conftest import ROOT
    from web_app.worker import open_files_needed

    run = next(line for line in _user_data(synth.web).splitlines() if line.startswith("docker run"))
    soft, hard = map(int, run.split("--ulimit nofile=", 1)[1].split()[0].split(":"))
    settings = runpy.run_path(str(ROOT / "web_app" / "gunicorn.conf.py"))
    connections = settings.get("worker_connections", Config().worker_connections)
    assert open_files_needed(connections) <= soft <= hard


def test_user_data_is_valid_bash(synth):
    result = subprocess.run(["bash", "-n"], input=_user_data(synth.web), text=True, capture_output=True)
    assert result.returncode == 0, result.stderr


def test_auto_scaling_group_in_private_subnets_with_rolling_updates(synth):
    resource = resources(synth.web, "AWS::AutoScaling::AutoScalingGroup")
    assert len(resource) == 1
    asg = next(iter(resource.values()))
    props = asg["Properties"]
    assert (props["MinSize"], props["MaxSize"]) == ("2", "4")
    assert "DesiredCapacity" not in props
    assert all(s["Ref"].startswith("Vpcapp") for s in props["VPCZoneIdentifier"]) and len(props["VPCZoneIdentifier"]) == 2
    assert props["HealthCheckType"] == "ELB"
    launch_template = _logical_id(synth.web, "AWS::EC2::LaunchTemplate")
    assert props["LaunchTemplate"] == {
        "LaunchTemplateId": {"Ref": launch_template},
        "Version": {"Fn::GetAtt": [launch_template, "LatestVersionNumber"]},
    }
    assert props["TargetGroupARNs"] == [{"Ref": _logical_id(synth.web, "AWS::ElasticLoadBalancingV2::TargetGroup")}]
    rolling = asg["UpdatePolicy"]["AutoScalingRollingUpdate"]
    assert rolling["MaxBatchSize"] == 1 and rolling["MinInstancesInService"] == 2 and rolling["WaitOnResourceSignals"] is True
    assert asg["CreationPolicy"]["ResourceSignal"] == {"Count": 2, "Timeout": "PT15M"}


def test_capacity_follows_the_context(synth_custom):
    props = only(synth_custom.web, "AWS::AutoScaling::AutoScalingGroup")
    assert (props["MinSize"], props["DesiredCapacity"], props["MaxSize"]) == ("3", "4", "6")


def test_scaling_tracks_cpu(synth):
    policy = only(synth.web, "AWS::AutoScaling::ScalingPolicy")
    assert policy["PolicyType"] == "TargetTrackingScaling"
    assert policy["TargetTrackingConfiguration"] == {
        "PredefinedMetricSpecification": {"PredefinedMetricType": "ASGAverageCPUUtilization"},
        "TargetValue": 60,
    }


def test_instance_role_is_least_privilege(synth):
    role = resources(synth.web, "AWS::IAM::Role")
    instance_role = next(r["Properties"] for k, r in role.items() if k.startswith("InstanceRole"))
    # No AWS managed policy: AmazonSSMManagedInstanceCore reads every SSM parameter in the account, and
    # CloudWatchAgentServerPolicy writes any metric namespace and any log group.
    assert "ManagedPolicyArns" not in instance_role
    repository_name = {"Fn::Sub": "cdk-hnb659fds-container-assets-${AWS::AccountId}-${AWS::Region}"}
    repository = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":ecr:", {"Ref": "AWS::Region"}, ":",
        {"Ref": "AWS::AccountId"}, ":repository/", repository_name]]}  # fmt: skip
    log_group = next(k for k in resources(synth.web, "AWS::Logs::LogGroup") if k.startswith("WebServerLogs"))

    def entry(actions, resource, condition=None):
        return (tuple(sorted(actions)), json.dumps(resource, sort_keys=True), json.dumps(condition))

    session_manager = ["ssm:UpdateInstanceInformation", "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
                       "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel"]  # fmt: skip
    assert _statements(synth.web) == {
        entry(["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], repository),
        entry(["ec2:DescribeTags", "ecr:GetAuthorizationToken", *session_manager], "*"),
        entry(["cloudwatch:PutMetricData"], "*", {"StringEquals": {"cloudwatch:namespace": "CWAgent"}}),
        entry(["dynamodb:Query"], {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":dynamodb:", {"Ref": "AWS::Region"},
              ":", {"Ref": "AWS::AccountId"}, ":table/", {"Ref": "ResultsTableName"}, "/index/newest"]]}),  # fmt: skip
        entry(["logs:CreateLogStream", "logs:PutLogEvents"], {"Fn::Join": ["", [{"Fn::GetAtt": [log_group, "Arn"]}, ":*"]]}),
        entry(["cloudformation:SignalResource"], {"Ref": "AWS::StackId"}),
    }


def test_upload_bucket_comes_from_the_serverless_stack_parameter(synth):
    parameter = synth.web.to_json()["Parameters"]["UploadBucketName"]
    assert parameter == {
        "Type": "AWS::SSM::Parameter::Value<String>",
        "Default": "/firewatch/dev/upload-bucket-name",
        "Description": "SSM parameter with the upload bucket name (published by the serverless stack)",
    }
    assert "Fn::ImportValue" not in json.dumps(synth.web.to_json())


def test_results_table_comes_from_the_serverless_stack_parameter(synth, synth_custom):
    parameter = synth.web.to_json()["Parameters"]["ResultsTableName"]
    assert parameter == {
        "Type": "AWS::SSM::Parameter::Value<String>",
        "Default": "/firewatch/dev/results-table-name",
        "Description": "SSM parameter with the results table name (published by the serverless stack)",
    }
    assert synth_custom.web.to_json()["Parameters"]["ResultsTableName"]["Default"] == "/firewatch/prod/results-table-name"


def test_the_web_servers_may_only_query_the_newest_index(synth):
    """Least privilege for the results index: Query, on the index only: no Scan, GetItem or writes, not the table."""
    statements = [s for s in _statements(synth.web) if any(a.startswith("dynamodb:") for a in s[0])]
    assert len(statements) == 1
    actions, resource, condition = statements[0]
    assert actions == ("dynamodb:Query",) and condition == "null"
    assert json.loads(resource)["Fn::Join"][1][-2:] == [{"Ref": "ResultsTableName"}, "/index/newest"]


def test_log_groups_have_retention(synth):
    assert {g["Properties"]["RetentionInDays"] for g in resources(synth.web, "AWS::Logs::LogGroup").values()} == {30}


# ---- HSTS ---------------------------------------------------------------------------------------------------------


def _docker_run(template) -> str:
    return next(line for line in _user_data(template).splitlines() if line.startswith("docker run"))


def test_hsts_only_with_a_certificate(synth, synth_custom):
    """Without a certificate the site is plain HTTP: Strict-Transport-Security there would lock browsers out."""
    assert "FIREWATCH_HSTS" not in _user_data(synth.web)
    assert "--env FIREWATCH_HSTS=1 " in _docker_run(synth_custom.web)


def test_the_web_server_knows_its_deployment_for_its_metrics(synth, synth_custom):
    """The access log's environment field is the web metrics' dimension (see test_monitoring)."""
    assert "--env FIREWATCH_ENVIRONMENT=dev " in _docker_run(synth.web)
    assert "--env FIREWATCH_ENVIRONMENT=prod " in _docker_run(synth_custom.web)


# ---- WAF ----------------------------------------------------------------------------------------------------------


def _rules(template) -> dict[str, dict]:
    acl = only(template, "AWS::WAFv2::WebACL")
    return {rule["Name"]: rule for rule in acl["Rules"]}


def test_web_acl_guards_the_load_balancer_by_default(synth):
    acl = only(synth.web, "AWS::WAFv2::WebACL")
    assert acl["Scope"] == "REGIONAL" and acl["DefaultAction"] == {"Allow": {}}
    association = only(synth.web, "AWS::WAFv2::WebACLAssociation")
    load_balancer = _logical_id(synth.web, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    assert association["ResourceArn"] == {"Ref": load_balancer}
    assert association["WebACLArn"] == {"Fn::GetAtt": [_logical_id(synth.web, "AWS::WAFv2::WebACL"), "Arn"]}
    visibility = [acl["VisibilityConfig"]] + [rule["VisibilityConfig"] for rule in acl["Rules"]]
    assert all(v["CloudWatchMetricsEnabled"] and v["SampledRequestsEnabled"] for v in visibility)
    assert acl["VisibilityConfig"]["MetricName"] == "firewatch-dev-web"
    assert not resources(synth.web, "AWS::WAFv2::LoggingConfiguration")  # logging is opt-in


def test_web_acl_rate_limits_each_ip(synth, synth_custom):
    rule = _rules(synth.web)["RateLimitPerIp"]
    assert rule["Priority"] == 0 and rule["Action"] == {"Block": {}}
    assert rule["Statement"]["RateBasedStatement"] == {"AggregateKeyType": "IP", "EvaluationWindowSec": 300, "Limit": 1000}
    assert _rules(synth_custom.web)["RateLimitPerIp"]["Statement"]["RateBasedStatement"]["Limit"] == 500


def test_common_rules_let_photo_uploads_through_and_block_large_bodies_elsewhere(synth):
    """SizeRestrictions_BODY blocks every body over 8 KB, i.e. every photo: it only counts (labels), and a rule of
    our own blocks that label on every path but the two upload paths."""
    rules = _rules(synth.web)
    common = rules["AWSManagedRulesCommonRuleSet"]
    assert common["OverrideAction"] == {"None": {}}
    group = common["Statement"]["ManagedRuleGroupStatement"]
    assert (group["VendorName"], group["Name"]) == ("AWS", "AWSManagedRulesCommonRuleSet")
    overrides = {o["Name"]: o["ActionToUse"] for o in group["RuleActionOverrides"]}
    assert overrides == {"SizeRestrictions_BODY": {"Count": {}}, "CrossSiteScripting_BODY": {"Count": {}}}

    block = rules["BlockUploadBodyRulesOutsideUploads"]
    assert block["Action"] == {"Block": {}} and block["Priority"] > common["Priority"]
    labelled, elsewhere = block["Statement"]["AndStatement"]["Statements"]
    labels = {s["LabelMatchStatement"]["Key"] for s in labelled["OrStatement"]["Statements"]}
    assert labels == {"awswaf:managed:aws:core-rule-set:SizeRestrictions_Body",
                      "awswaf:managed:aws:core-rule-set:CrossSiteScripting_Body"}  # fmt: skip
    paths = elsewhere["NotStatement"]["Statement"]["OrStatement"]["Statements"]
    matches = {(m["ByteMatchStatement"]["SearchString"], m["ByteMatchStatement"]["PositionalConstraint"]) for m in paths}
    assert matches == {("/api/v1/classify", "EXACTLY"), ("/", "EXACTLY")}
    assert all(m["ByteMatchStatement"]["FieldToMatch"] == {"UriPath": {}} for m in paths)


def test_the_upload_routes_are_the_ones_the_firewall_lets_through(classifier):
    """The exempt paths are the app's only routes that take a body (a renamed route would be blocked)."""
    from stacks.web_firewall import UPLOAD_PATHS
    from web_app import create_app

    rules = create_app(classifier).url_map.iter_rules()
    assert {rule.rule for rule in rules if rule.methods & {"POST", "PUT", "PATCH"}} == set(UPLOAD_PATHS)


def test_waf_logging_and_switching_waf_off(synth_custom, tmp_path):
    logging = only(synth_custom.web, "AWS::WAFv2::LoggingConfiguration")
    assert logging["ResourceArn"] == {"Fn::GetAtt": [_logical_id(synth_custom.web, "AWS::WAFv2::WebACL"), "Arn"]}
    (destination,) = logging["LogDestinationConfigs"]
    assert "log-group:aws-waf-logs-firewatch-prod" == destination["Fn::Join"][1][-1].split(":", 1)[1]
    groups = resources(synth_custom.web, "AWS::Logs::LogGroup")
    assert {g["Properties"].get("LogGroupName") for g in groups.values()} >= {"aws-waf-logs-firewatch-prod"}

    from tests.infra.conftest import Synthesized

    without = Synthesized(tmp_path, {"waf": "false"})
    assert not resources(without.web, "AWS::WAFv2::WebACL") and not resources(without.web, "AWS::WAFv2::WebACLAssociation")
