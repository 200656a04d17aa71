"""The monitoring stack: alarms (metrics, thresholds, actions), the dashboard's widgets, the alarm topic, outputs."""

from __future__ import annotations

import json

import pytest

from tests.infra.conftest import Synthesized, only, resources


def _alarms(synth) -> dict[str, dict]:
    """Alarms by their construct id (the logical id without its hash suffix)."""
    return {k[:-8]: v["Properties"] for k, v in resources(synth.monitoring, "AWS::CloudWatch::Alarm").items()}


def _dashboard(synth) -> dict:
    """The dashboard body as JSON; every CloudFormation reference becomes the string "<ref>"."""
    parts = only(synth.monitoring, "AWS::CloudWatch::Dashboard")["DashboardBody"]["Fn::Join"][1]
    return json.loads("".join(p if isinstance(p, str) else "<ref>" for p in parts))


def _metrics_of(widget: dict) -> list[tuple[str, str, str]]:
    """(namespace, metric name, statistic) of each metric line of a graph widget (math expressions skipped)."""
    found = []
    for line in widget["properties"].get("metrics", []):
        if isinstance(line[0], dict):
            continue
        options = line[-1] if isinstance(line[-1], dict) else {}
        found.append((line[0], line[1], options.get("stat", "Average")))
    return found


def _widget(dashboard: dict, title: str) -> dict:
    matches = [w for w in dashboard["widgets"] if w["properties"].get("title") == title]
    assert len(matches) == 1, [w["properties"].get("title") for w in dashboard["widgets"]]
    return matches[0]


ALARMS = {
    # name: (namespace, metric, statistic, period, threshold, evaluation periods)
    "LambdaErrors": ("AWS/Lambda", "Errors", "Sum", 300, 1, 1),
    "LambdaDurationNearTimeout": ("AWS/Lambda", "Duration", "Maximum", 300, 24000, 1),
    "LambdaThrottles": ("AWS/Lambda", "Throttles", "Sum", 300, 1, 1),
    "DeadLetterQueueNotEmpty": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", 300, 1, 1),
    "UploadDeadLettersNotEmpty": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", 300, 1, 1),
    # Older than a message being retried can get (3 receives x 181 s visibility, plus a minute): a backlog.
    "UploadQueueOldestMessage": ("AWS/SQS", "ApproximateAgeOfOldestMessage", "Maximum", 300, 3 * 181 + 60, 1),
    "BatchItemFailures": ("Firewatch", "BatchItemFailures", "Sum", 300, 1, 1),
    "UnhealthyHosts": ("AWS/ApplicationELB", "UnHealthyHostCount", "Maximum", 60, 1, 5),
    "WebCpuHigh": ("AWS/EC2", "CPUUtilization", "Average", 300, 80, 3),
    # The worst instance's, as the CloudWatch agent publishes them (the group's Average would hide one full disk).
    "WebDiskFull": ("CWAgent", "disk_used_percent", "Maximum", 300, 85, 2),
    "WebMemoryHigh": ("CWAgent", "mem_used_percent", "Maximum", 300, 90, 3),
}


@pytest.mark.parametrize("name", sorted(ALARMS))
def test_metric_alarms(synth, name):
    namespace, metric, statistic, period, threshold, periods = ALARMS[name]
    alarm = _alarms(synth)[name]
    metric_stat = (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"], alarm["Period"])
    assert metric_stat == (namespace, metric, statistic, period)
    assert alarm["Threshold"] == threshold
    assert alarm["EvaluationPeriods"] == periods and alarm["DatapointsToAlarm"] == periods
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"


def test_alarm_set_and_actions(synth):
    alarms = _alarms(synth)
    assert set(alarms) == set(ALARMS) | {"Alb5xxRate", "RejectedEventRecords", "ResultsTableThrottles", "UnfamiliarUploads",
                                         "WebUnfamiliarUploads"}
    topic = next(iter(resources(synth.monitoring, "AWS::SNS::Topic")))
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == [{"Ref": topic}] and alarm["OKActions"] == [{"Ref": topic}]


def test_alarm_dimensions_point_at_the_deployed_resources(synth):
    alarms = _alarms(synth)
    dims = {name: [d["Name"] for d in alarms[name]["Dimensions"]] for name in ALARMS}
    assert dims["LambdaErrors"] == ["FunctionName"]
    assert dims["DeadLetterQueueNotEmpty"] == ["QueueName"]
    assert dims["UnhealthyHosts"] == ["LoadBalancer", "TargetGroup"]
    assert dims["WebCpuHigh"] == ["AutoScalingGroupName"]
    assert dims["WebDiskFull"] == dims["WebMemoryHigh"] == ["AutoScalingGroupName"]
    assert "Classifier" in json.dumps(alarms["LambdaErrors"]["Dimensions"])


def test_alb_5xx_rate_alarm_is_a_percentage_of_requests(synth):
    alarm = _alarms(synth)["Alb5xxRate"]
    assert alarm["Threshold"] == 5 and alarm["EvaluationPeriods"] == 2 and alarm["DatapointsToAlarm"] == 2
    metrics = {m["Id"]: m for m in alarm["Metrics"]}
    expression = next(m for m in alarm["Metrics"] if "Expression" in m)
    assert expression["Expression"] == "IF(requests > 0, 100 * (FILL(elb5xx, 0) + FILL(target5xx, 0)) / requests, 0)"
    assert expression["ReturnData"] is True
    assert metrics["requests"]["MetricStat"]["Metric"]["MetricName"] == "RequestCount"
    assert metrics["elb5xx"]["MetricStat"]["Metric"]["MetricName"] == "HTTPCode_ELB_5XX_Count"
    assert metrics["target5xx"]["MetricStat"]["Metric"]["MetricName"] == "HTTPCode_Target_5XX_Count"
    assert {m["MetricStat"]["Stat"] for m in alarm["Metrics"] if "MetricStat" in m} == {"Sum"}


def test_rejected_event_records_alarm_adds_the_handler_s_two_counts(synth):
    from lambda_image.telemetry import REJECTED_METRICS

    alarm = _alarms(synth)["RejectedEventRecords"]
    assert alarm["Threshold"] == 1 and alarm["EvaluationPeriods"] == 1
    expression = next(m for m in alarm["Metrics"] if "Expression" in m)
    assert expression["Expression"] == "refused + malformed"
    named = {m["Id"]: m["MetricStat"]["Metric"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert {k: v["MetricName"] for k, v in named.items()} == REJECTED_METRICS, "the names the handler emits"
    assert {v["Namespace"] for v in named.values()} == {"Firewatch"}


def test_duration_alarm_follows_the_timeout(synth_custom):
    assert _alarms(synth_custom)["LambdaDurationNearTimeout"]["Threshold"] == 0.8 * 120_000


def test_alarm_topic_is_encrypted_with_a_rotated_key_cloudwatch_may_use(synth):
    key_id = next(iter(resources(synth.monitoring, "AWS::KMS::Key")))
    key = only(synth.monitoring, "AWS::KMS::Key")
    assert key["EnableKeyRotation"] is True
    cloudwatch = [s for s in key["KeyPolicy"]["Statement"] if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    assert len(cloudwatch) == 1 and sorted(cloudwatch[0]["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    topic = only(synth.monitoring, "AWS::SNS::Topic")
    assert topic["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert not resources(synth.monitoring, "AWS::SNS::Subscription")


def test_alert_email_subscribes_to_the_alarm_topic(synth_custom):
    subscription = only(synth_custom.monitoring, "AWS::SNS::Subscription")
    assert (subscription["Protocol"], subscription["Endpoint"]) == ("email", "ops@example.com")


def test_alarm_email_takes_the_alarms_and_alert_email_keeps_the_fire_alerts(tmp_path):
    apart = Synthesized(tmp_path, {"alertEmail": "fire@example.com", "alarmEmail": "oncall@example.com"})
    assert only(apart.monitoring, "AWS::SNS::Subscription")["Endpoint"] == "oncall@example.com"
    assert only(apart.serverless, "AWS::SNS::Subscription")["Endpoint"] == "fire@example.com"


DASHBOARD_METRICS = {
    "Lambda invocations and errors": {("AWS/Lambda", "Invocations", "Sum"), ("AWS/Lambda", "Errors", "Sum")},
    "Lambda duration (ms)": {("AWS/Lambda", "Duration", s) for s in ("p50", "p90", "p99")},
    "Lambda throttles": {("AWS/Lambda", "Throttles", "Sum")},
    "Lambda concurrent executions": {("AWS/Lambda", "ConcurrentExecutions", "Maximum")},
    "Dead-letter queue depth": {("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum")},
    "Upload queue: age of oldest message (s)": {("AWS/SQS", "ApproximateAgeOfOldestMessage", "Maximum")},
    "Upload queue: visible / in flight": {
        ("AWS/SQS", m, "Maximum") for m in ("ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesNotVisible")
    },
    "Upload queue: sent / received / deleted": {
        ("AWS/SQS", m, "Sum") for m in ("NumberOfMessagesSent", "NumberOfMessagesReceived", "NumberOfMessagesDeleted")
    },
    "Event records refused / malformed, batch item failures": {
        ("Firewatch", m, "Sum") for m in ("RefusedRecords", "MalformedRecords", "BatchItemFailures")
    },
    "Results index: throttle events": {("AWS/DynamoDB", m, "Sum") for m in ("ReadThrottleEvents", "WriteThrottleEvents")},
    "Results index: consumed write / read units": {
        ("AWS/DynamoDB", m, "Sum") for m in ("ConsumedWriteCapacityUnits", "ConsumedReadCapacityUnits")
    },
    "Images classified / fire / invalid": {
        ("Firewatch", m, "Sum") for m in ("ImagesClassified", "FireDetected", "InvalidImages")
    },
    "Inference latency (ms)": {("Firewatch", "InferenceLatency", s) for s in ("p50", "p90", "p99")},
    "ALB requests": {("AWS/ApplicationELB", "RequestCount", "Sum")},
    "Target response time (s)": {("AWS/ApplicationELB", "TargetResponseTime", s) for s in ("p50", "p90", "p99")},
    "ALB 4xx / 5xx": {
        ("AWS/ApplicationELB", m, "Sum")
        for m in ("HTTPCode_Target_4XX_Count", "HTTPCode_Target_5XX_Count", "HTTPCode_ELB_4XX_Count", "HTTPCode_ELB_5XX_Count")
    },
    "Healthy / unhealthy hosts": {
        ("AWS/ApplicationELB", "HealthyHostCount", "Minimum"),
        ("AWS/ApplicationELB", "UnHealthyHostCount", "Maximum"),
    },
    "EC2 CPU utilisation (%)": {("AWS/EC2", "CPUUtilization", "Average")},
    "EC2 memory / root disk used (%)": {("CWAgent", "mem_used_percent", "Average"), ("CWAgent", "disk_used_percent", "Average")},
    "EC2 network in / out (bytes)": {("AWS/EC2", "NetworkIn", "Sum"), ("AWS/EC2", "NetworkOut", "Sum")},
    "EC2 packets in / out": {("AWS/EC2", "NetworkPacketsIn", "Sum"), ("AWS/EC2", "NetworkPacketsOut", "Sum")},
}


@pytest.mark.parametrize("title", sorted(DASHBOARD_METRICS))
def test_dashboard_graphs(synth, title):
    assert set(_metrics_of(_widget(_dashboard(synth), title))) == DASHBOARD_METRICS[title]


def _firewatch_dimensions(synth) -> list[tuple[str, dict]]:
    """(metric name, dimensions) of every Firewatch metric on the dashboard and in the alarms."""
    lines = [line for widget in _dashboard(synth)["widgets"] for line in widget["properties"].get("metrics", [])
             if not isinstance(line[0], dict) and line[0] == "Firewatch"]  # fmt: skip
    found = [(line[1], dict(zip(line[2:-1:2], line[3:-1:2])) if isinstance(line[-1], dict) else dict(zip(line[2::2], line[3::2])))
             for line in lines]  # fmt: skip
    for alarm in _alarms(synth).values():
        stats = [alarm] if "MetricName" in alarm else [m["MetricStat"]["Metric"] for m in alarm["Metrics"] if "MetricStat" in m]
        found += [(s["MetricName"], {d["Name"]: d["Value"] for d in s.get("Dimensions", [])})
                  for s in stats if s.get("Namespace") == "Firewatch"]  # fmt: skip
    return found


@pytest.mark.parametrize("fixture, env", [("synth", "dev"), ("synth_custom", "prod")])
def test_custom_metrics_are_this_deployments_own(fixture, env, request):
    """Two deployments in one account and region (dev and prod) share the Firewatch namespace: each dashboard and
    alarm reads its own deployment's metrics only, by the environment dimension (the function's, and the web log
    filters' from each access log line)."""
    from inference.contract import CUSTOM_METRICS

    found = _firewatch_dimensions(request.getfixturevalue(fixture))
    assert {"RejectedEventRecords", "BatchItemFailures"} <= set(_alarms(request.getfixturevalue(fixture)))
    assert len({name for name, _ in found}) >= 8
    for name, dimensions in found:
        expected = {"service": "firewatch", "environment": env} if name in CUSTOM_METRICS else {"environment": env}
        assert dimensions == expected, name


def test_dashboard_borderline_share_is_of_the_metrics_the_handler_emits(synth):
    from inference.contract import BORDERLINE_VERDICTS, IMAGES_CLASSIFIED

    widget = _widget(_dashboard(synth), "Borderline verdicts (% of images classified)")
    lines = widget["properties"]["metrics"]
    assert lines[0][0]["expression"] == "IF(classified >= 1, 100 * FILL(borderline, 0) / classified)"
    used = {line[-1]["id"]: tuple(line[:2]) for line in lines[1:]}
    assert used == {"classified": ("Firewatch", IMAGES_CLASSIFIED), "borderline": ("Firewatch", BORDERLINE_VERDICTS)}


@pytest.mark.parametrize("name, classified, borderline", [
    ("UnfamiliarUploads", "ImagesClassified", "BorderlineVerdicts"),
    ("WebUnfamiliarUploads", "WebImagesClassified", "WebBorderlineVerdicts"),
])  # fmt: skip
def test_a_rising_borderline_share_alarms_on_both_targets(synth, name, classified, borderline):
    """About 5 % of verdicts are borderline on photos like the training photos, a third on sources the model never saw:
    20 % of an hour's images, three hours running, says the uploads are unlike what it learned from. A quiet hour (under
    20 images) counts as no data, which does not breach."""
    alarm = _alarms(synth)[name]
    assert alarm["Threshold"] == 20 and alarm["EvaluationPeriods"] == 3 and alarm["DatapointsToAlarm"] == 3
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold" and alarm["TreatMissingData"] == "notBreaching"
    expression = next(m for m in alarm["Metrics"] if "Expression" in m)
    assert expression["Expression"] == "IF(classified >= 20, 100 * FILL(borderline, 0) / classified)"
    named = {m["Id"]: m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert {k: v["Metric"]["MetricName"] for k, v in named.items()} == {"classified": classified, "borderline": borderline}
    assert {(v["Metric"]["Namespace"], v["Stat"], v["Period"]) for v in named.values()} == {("Firewatch", "Sum", 3600)}
    assert {d["Name"] for v in named.values() for d in v["Metric"]["Dimensions"]} >= {"environment"}, "this deployment's"


def _web_verdict_filters(synth) -> dict[str, dict]:
    filters = synth.web.to_json()["Resources"].values()
    return {f["Properties"]["MetricTransformations"][0]["MetricName"]: f["Properties"]
            for f in filters if f["Type"] == "AWS::Logs::MetricFilter"}  # fmt: skip


def test_every_custom_metric_on_the_dashboard_is_one_the_handler_emits_or_the_web_log_filters_make(synth):
    from inference.contract import CUSTOM_METRICS

    named = {line[1] for widget in _dashboard(synth)["widgets"] for line in widget["properties"].get("metrics", [])
             if not isinstance(line[0], dict) and line[0] == "Firewatch"}  # fmt: skip
    made = set(CUSTOM_METRICS) | set(_web_verdict_filters(synth))
    assert named and named <= made, named - made
    assert set(_web_verdict_filters(synth)) <= named, "every web verdict metric is graphed"


def test_web_verdict_metrics_count_the_fields_the_access_log_writes(synth):
    """The filters read the access log's own field names (web_app/logs.py), only on lines that classified photos."""
    from inference.contract import VERDICT_LOG_FIELDS

    filters = _web_verdict_filters(synth)
    assert set(filters) == set(VERDICT_LOG_FIELDS.values())
    for field, metric in VERDICT_LOG_FIELDS.items():
        transformation = filters[metric]["MetricTransformations"][0]
        assert transformation["MetricValue"] == f"$.{field}" and transformation["MetricNamespace"] == "Firewatch"
        assert filters[metric]["FilterPattern"] == "{ $.classified > 0 }"
        assert filters[metric]["LogGroupName"]["Ref"].startswith("WebServerLogs"), "the servers' log, not the VPC's"
    share = _widget(_dashboard(synth), "Web borderline verdicts (% of images classified)")["properties"]["metrics"]
    assert share[0][0]["expression"] == "IF(classified >= 1, 100 * FILL(borderline, 0) / classified)"
    assert {line[-1]["id"]: line[1] for line in share[1:]} == {
        "classified": VERDICT_LOG_FIELDS["classified"], "borderline": VERDICT_LOG_FIELDS["borderline"]}


def test_dashboard_success_rate_and_logs_insights(synth):
    dashboard = _dashboard(synth)
    success = _widget(dashboard, "Lambda success rate (%)")["properties"]["metrics"][0][0]
    assert success["expression"] == "IF(invocations > 0, 100 * (invocations - FILL(errors, 0)) / invocations)"
    logs = [w for w in dashboard["widgets"] if w["type"] == "log"]
    assert len(logs) == 2
    for widget in logs:
        assert widget["properties"]["query"].startswith("SOURCE '<ref>'")  # the function's log group
    assert "@initDuration" in logs[1]["properties"]["query"]
    alarms = [w for w in dashboard["widgets"] if w["type"] == "alarm"]
    assert len(alarms) == 1 and len(alarms[0]["properties"]["alarms"]) == len(_alarms(synth)), "every alarm's status"


def test_outputs(synth):
    synth.monitoring.has_output("DashboardUrl", {"Value": {"Fn::Join": ["", [
        "https://", {"Ref": "AWS::Region"}, ".console.aws.amazon.com/cloudwatch/home?region=", {"Ref": "AWS::Region"},
        "#dashboards:name=firewatch-dev-dashboard"]]}})  # fmt: skip
    assert only(synth.monitoring, "AWS::CloudWatch::Dashboard")["DashboardName"] == "firewatch-dev-dashboard"


def test_the_dead_letter_widget_shows_both_dead_letter_queues(synth):
    widget = _widget(_dashboard(synth), "Dead-letter queue depth")
    labels = [line[-1]["label"] for line in widget["properties"]["metrics"]]
    assert labels == ["failed direct invocations", "upload queue's dead letters"]
    # Two queues, not one twice: the dashboard body names both queues of the serverless stack (by their exports).
    body = json.dumps(only(synth.monitoring, "AWS::CloudWatch::Dashboard")["DashboardBody"])
    assert "FailedEvents" in body and "UploadDeadLetters" in body


def test_results_table_throttles_alarm_adds_reads_writes_and_index_writes(synth):
    alarm = _alarms(synth)["ResultsTableThrottles"]
    assert (alarm["Threshold"], alarm["EvaluationPeriods"]) == (1, 1)
    expression = next(m for m in alarm["Metrics"] if "Expression" in m)
    assert expression["Expression"] == "FILL(reads, 0) + FILL(writes, 0) + FILL(indexWrites, 0)"
    named = {m["Id"]: m["MetricStat"]["Metric"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert {k: v["MetricName"] for k, v in named.items()} == {
        "reads": "ReadThrottleEvents", "writes": "WriteThrottleEvents", "indexWrites": "WriteThrottleEvents"}
    assert [d["Name"] for d in named["indexWrites"]["Dimensions"]] == ["GlobalSecondaryIndexName", "TableName"]
    assert {d["Value"] for d in named["indexWrites"]["Dimensions"] if d["Name"] == "GlobalSecondaryIndexName"} == {"newest"}


def test_oldest_message_alarm_follows_the_visibility_timeout(synth_custom):
    assert _alarms(synth_custom)["UploadQueueOldestMessage"]["Threshold"] == 3 * (6 * 120 + 20) + 60


def test_batch_item_failures_metric_is_the_one_the_handler_emits(synth):
    from inference.contract import BATCH_ITEM_FAILURES, CUSTOM_METRICS

    assert _alarms(synth)["BatchItemFailures"]["MetricName"] == BATCH_ITEM_FAILURES
    assert BATCH_ITEM_FAILURES in CUSTOM_METRICS


def _agent_metrics(synth) -> set[tuple[str, frozenset]]:
    """(metric name, dimension names) the CloudWatch agent on a web instance publishes, as its deployed config says
    (read back from the synthesized user data), under the agent's naming: a measurement's section is its prefix."""
    from tests.infra.test_web import _user_data

    script = _user_data(synth.web)
    config = json.loads(script.split("<<'JSON'\n", 1)[1].split("\nJSON", 1)[0])["metrics"]
    names = {m if m.startswith(f"{section}_") else f"{section}_{m}"
             for section, options in config["metrics_collected"].items() for m in options["measurement"]}  # fmt: skip
    return {(name, frozenset(dims)) for name in names for dims in config["aggregation_dimensions"]}


def test_agent_metrics_read_by_the_dashboard_and_alarms_are_published(synth):
    """A metric name or dimension the agent does not publish would leave a graph empty and an alarm forever OK."""
    published = _agent_metrics(synth)
    read = [(alarm["MetricName"], frozenset(d["Name"] for d in alarm["Dimensions"]))
            for alarm in _alarms(synth).values() if alarm.get("Namespace") == "CWAgent"]  # fmt: skip
    for widget in _dashboard(synth)["widgets"]:
        for line in widget["properties"].get("metrics", []):
            if not isinstance(line[0], dict) and line[0] == "CWAgent":
                body = line[2:-1] if isinstance(line[-1], dict) else line[2:]
                read.append((line[1], frozenset(body[::2])))
    assert {name for name, _ in read} == {"mem_used_percent", "disk_used_percent"}
    assert set(read) <= published
