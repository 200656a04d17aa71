"""Settings from CDK context: defaults, parsing of `-c key=value` strings, clear errors."""

from __future__ import annotations

import pytest

from stacks.config import ConfigError, FirewatchConfig


def config(**context) -> FirewatchConfig:
    return FirewatchConfig.from_context(context.get)


def test_defaults_without_context():
    c = config()
    assert c == FirewatchConfig()
    assert (c.env_name, c.architecture, c.instance_type) == ("dev", "x86_64", "t3.small")
    assert (c.min_capacity, c.max_capacity, c.desired_capacity) == (2, 4, None)
    assert (c.lambda_memory_mb, c.lambda_timeout_seconds, c.lambda_reserved_concurrency) == (1024, 30, None)
    assert (c.alert_email, c.certificate_arn, c.allowed_cidr) == (None, None, "0.0.0.0/0")
    assert (c.nat_gateways, c.log_retention_days) == (1, 30)
    assert (c.queue_batch_size, c.queue_batch_window_seconds, c.queue_max_concurrency, c.results_ttl_days) == (10, 1, 10, None)
    assert c.queue_visibility_timeout_seconds == 6 * 30 + 1
    assert c.results_table_parameter == "/firewatch/dev/results-table-name"
    assert c.docker_platform == "linux/amd64"
    assert (c.web, c.waf, c.waf_rate_limit, c.waf_logging) == (True, True, 1000, False)
    assert c.stack_name("web") == "firewatch-dev-web"


def test_strings_from_the_command_line_are_parsed():
    c = config(architecture="arm64", minCapacity="1", maxCapacity="3", lambdaMemoryMb="2048", logRetentionDays="7")
    assert c.instance_type == "t4g.small" and c.docker_platform == "linux/arm64"
    assert (c.min_capacity, c.max_capacity, c.lambda_memory_mb, c.log_retention_days) == (1, 3, 2048, 7)


def test_json_values_from_cdk_json_are_accepted():
    c = config(minCapacity=1, lambdaTimeoutSeconds=30, lambdaReservedConcurrency=5)
    assert (c.min_capacity, c.lambda_timeout_seconds, c.lambda_reserved_concurrency) == (1, 30, 5)


@pytest.mark.parametrize(
    ("value", "expected"), [("false", False), ("False", False), ("true", True), (False, False), (True, True)]
)
def test_switches_from_the_command_line_and_cdk_json(value, expected):
    c = config(web=value, waf=value, wafLogging=value)
    assert (c.web, c.waf, c.waf_logging) == (expected, expected, expected)


def test_empty_strings_mean_unset():
    assert config(alertEmail="", certificateArn=" ", instanceType="") == FirewatchConfig()


@pytest.mark.parametrize(
    ("memory", "threads"), [(128, 1), (1024, 1), (1769, 1), (3538, 2), (10240, 6)]
)
def test_inference_threads_follow_lambda_vcpus(memory, threads):
    assert config(lambdaMemoryMb=memory).lambda_threads == threads


def test_cidr_is_normalised():
    assert config(allowedCidr=" 198.51.100.0/24 ").allowed_cidr == "198.51.100.0/24"


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"architecture": "sparc"}, "architecture='sparc' is not one of x86_64, arm64"),
        ({"envName": "Prod_1"}, "envName='Prod_1' is not valid"),
        ({"minCapacity": "two"}, "minCapacity='two' is not an integer"),
        ({"lambdaMemoryMb": "64"}, "lambdaMemoryMb=64 is out of range 128-10240"),
        ({"lambdaTimeoutSeconds": "901"}, "lambdaTimeoutSeconds=901 is out of range 1-900"),
        ({"minCapacity": "5", "maxCapacity": "4"}, "minCapacity (5) is larger than maxCapacity (4)"),
        ({"desiredCapacity": "9"}, "desiredCapacity (9) must lie between"),
        ({"alertEmail": "not-an-email"}, "alertEmail='not-an-email' is not valid"),
        ({"certificateArn": "arn:aws:iam::123456789012:role/x"}, "expected an ACM certificate ARN"),
        ({"allowedCidr": "10.0.0.1/8"}, "allowedCidr='10.0.0.1/8' is not an IPv4 CIDR block"),
        ({"natGateways": "3"}, "natGateways=3 is out of range 1-2"),
        ({"logRetentionDays": "31"}, "logRetentionDays='31' is not one of"),
        ({"instanceType": "t4g.small"}, "instanceType 't4g.small' does not run x86_64 images"),
        ({"architecture": "arm64", "instanceType": "m5.large"}, "instanceType 'm5.large' does not run arm64 images"),
        ({"queueBatchSize": "11"}, "queueBatchSize=11 is out of range 1-10"),
        ({"queueBatchWindowSeconds": "301"}, "queueBatchWindowSeconds=301 is out of range 0-300"),
        ({"queueMaxConcurrency": "1"}, "queueMaxConcurrency=1 is out of range 2-1000"),
        ({"resultsTtlDays": "0"}, "resultsTtlDays=0 is out of range 1-3650"),
        ({"lambdaReservedConcurrency": "8", "queueMaxConcurrency": "9"},
         "queueMaxConcurrency (9) is above lambdaReservedConcurrency (8)"),
        ({"lambdaReservedConcurrency": "1"}, "queueMaxConcurrency (2) is above lambdaReservedConcurrency (1)"),
        ({"web": "no"}, "web='no' is not true or false"),
        ({"waf": "0"}, "waf='0' is not true or false"),
        ({"wafRateLimit": "5"}, "wafRateLimit=5 is out of range 10-2000000000"),
    ],
)
def test_invalid_values_name_the_key(context, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config(**context)


@pytest.mark.parametrize(("reserved", "concurrency"), [(None, 10), ("50", 10), ("5", 5), ("2", 2)])
def test_queue_concurrency_defaults_to_at_most_the_reserved_concurrency(reserved, concurrency):
    assert config(lambdaReservedConcurrency=reserved).queue_max_concurrency == concurrency


def test_visibility_timeout_is_six_function_timeouts_plus_the_batching_window():
    c = config(lambdaTimeoutSeconds="120", queueBatchWindowSeconds="20")
    assert c.queue_visibility_timeout_seconds == 740


@pytest.mark.parametrize("instance_type", ["t4g.small", "m7g.large", "c7gn.xlarge", "r8g.medium"])
def test_graviton_instance_types_are_arm(instance_type):
    assert config(architecture="arm64", instanceType=instance_type).instance_type == instance_type


@pytest.mark.parametrize("instance_type", ["t3.small", "m5.large", "c6i.xlarge", "m7a.large"])
def test_x86_instance_types_are_x86(instance_type):
    assert config(instanceType=instance_type).instance_type == instance_type


def test_the_stacks_copies_of_the_shared_names_equal_the_contract():
    # The stacks import no runtime code, so they keep copies of the contract's names; these must not drift.
    from inference import contract
    from stacks import config as stacks_config

    copies = (stacks_config.UPLOADS_PREFIX, stacks_config.RESULTS_PREFIX, stacks_config.SERVICE_NAME,
              stacks_config.METRICS_NAMESPACE, stacks_config.BATCH_ITEM_FAILURES, stacks_config.BORDERLINE_VERDICTS,
              stacks_config.VERDICT_LOG_FIELDS, stacks_config.ENVIRONMENT_ENV, stacks_config.ENVIRONMENT_DIMENSION)  # fmt: skip
    assert copies == (contract.UPLOAD_PREFIX, contract.RESULT_PREFIX, contract.SERVICE_NAME, contract.METRICS_NAMESPACE,
                      contract.BATCH_ITEM_FAILURES, contract.BORDERLINE_VERDICTS, contract.VERDICT_LOG_FIELDS,
                      contract.ENVIRONMENT_ENV, contract.ENVIRONMENT_DIMENSION)  # fmt: skip


def test_alarms_go_to_alarm_email_or_else_to_alert_email():
    assert config().alarm_recipient is None
    assert config(alertEmail="fire@example.com").alarm_recipient == "fire@example.com"  # one address for both
    both = config(alertEmail="fire@example.com", alarmEmail="oncall@example.com")
    assert (both.alert_email, both.alarm_recipient) == ("fire@example.com", "oncall@example.com")
    with pytest.raises(ConfigError, match="alarmEmail"):
        config(alarmEmail="not-an-address")
