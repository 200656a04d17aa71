"""Deployment settings, read from CDK context (``cdk deploy -c key=value`` or the ``context`` block of ``cdk.json``).

Every setting has a default, so ``cdk synth`` / ``cdk deploy --all`` work with no context at all.

===============================  ========================  ============================================================
Context key                      Default                   Meaning
===============================  ========================  ============================================================
``envName``                      ``dev``                   Names the stacks (``firewatch-<envName>-serverless`` ...)
                                                           and the dashboard; lower-case letters, digits, ``-``.
``architecture``                 ``x86_64``                CPU architecture of the image, the Lambda function and the
                                                           EC2 instances: ``x86_64`` (image platform linux/amd64) or
                                                           ``arm64`` (linux/arm64, Graviton).
``instanceType``                 ``t3.small`` (x86_64),    EC2 instance type of the web tier; must match
                                 ``t4g.small`` (arm64)     ``architecture``.
``minCapacity``                  ``2``                     Fewest web instances (one per Availability Zone).
``maxCapacity``                  ``4``                     Most web instances (CPU target tracking scales between).
``desiredCapacity``              unset                     Starting size; unset lets scaling own it (a set value is
                                                           re-applied on every deploy).
``lambdaMemoryMb``               ``1024``                  Function memory (MB), 128-10240; CPU share grows with it.
``lambdaTimeoutSeconds``         ``30``                    Function timeout, 1-900 s (worst case measured: ~1 s).
``lambdaReservedConcurrency``    unset                     Reserved (and maximum) concurrency of the function. Unset:
                                                           the account's unreserved pool. New accounts (quota 10)
                                                           cannot reserve any.
``alertEmail``                   unset                     E-mail subscribed to the fire alert topic and to the alarm
                                                           topic (confirm the subscription e-mails).
``alarmEmail``                   unset (``alertEmail``)    E-mail subscribed to the alarm topic instead of
                                                           ``alertEmail``: fire alerts and alarms to different people.
``certificateArn``               unset                     ACM certificate ARN (same region): adds HTTPS on 443 and
                                                           redirects HTTP 80 to it.
``allowedCidr``                  ``0.0.0.0/0``             IPv4 CIDR allowed to reach the load balancer.
``natGateways``                  ``1``                     NAT gateways for the private subnets (1-2; 2 removes the
                                                           single-AZ egress dependency at twice the cost).
``logRetentionDays``             ``30``                    Retention of the function, web and flow log groups, one of
                                                           1, 3, 5, 7, 14, 30, 60, 90, 180, 365.
``queueBatchSize``               ``10``                    Upload queue messages per invocation, 1-10 (classified in
                                                           one model call).
``queueBatchWindowSeconds``      ``1``                     Longest wait to fill a batch, 0-300 s.
``queueMaxConcurrency``          ``10``, or the reserved   Most concurrent invocations the upload queue starts,
                                 concurrency if smaller    2-1000; not above ``lambdaReservedConcurrency`` (throttled
                                                           receives would send good messages to the dead-letter queue).
``resultsTtlDays``               unset                     Days after which results index items expire (DynamoDB
                                                           TTL), 1-3650; unset: never. results/*.json stay.
``web``                          ``true``                  ``false``: the serverless path only (upload bucket, function,
                                                           results, alerts, monitoring): no web stack, hence no VPC,
                                                           NAT gateway, load balancer or instances.
``waf``                          ``true``                  AWS WAF web ACL on the load balancer (rate limit and AWS
                                                           managed rules); ``false`` removes it.
``wafRateLimit``                 ``1000``                  Requests per client IP per 5 minutes before WAF blocks it
                                                           (10-2000000000).
``wafLogging``                   ``false``                 ``true``: WAF logs every request to a CloudWatch log group
                                                           (``aws-waf-logs-firewatch-<envName>``).
===============================  ========================  ============================================================
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Callable

ARCHITECTURES = ("x86_64", "arm64")
DEFAULT_INSTANCE_TYPES = {"x86_64": "t3.small", "arm64": "t4g.small"}
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 180, 365)
# AWS: an SQS event source needs a visibility timeout of at least six times the function timeout (plus the batching
# window), so that a message is not handed to a second invocation while Lambda still retries throttled ones.
VISIBILITY_TIMEOUT_FACTOR = 6
DEFAULT_QUEUE_MAX_CONCURRENCY = 10

_ENV_NAME = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CERTIFICATE_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]+$")
# Graviton families carry a "g" after the generation digit (t4g, m7g, c7gn, r8g...).
_ARM_INSTANCE = re.compile(r"^[a-z]+\d+g[a-z]*\.")


class ConfigError(ValueError):
    """A context value is missing its expected form; the message names the key and what is allowed."""


@dataclass(frozen=True)
class FirewatchConfig:
    env_name: str = "dev"
    architecture: str = "x86_64"
    instance_type: str = DEFAULT_INSTANCE_TYPES["x86_64"]
    min_capacity: int = 2
    max_capacity: int = 4
    desired_capacity: int | None = None
    lambda_memory_mb: int = 1024
    lambda_timeout_seconds: int = 30
    lambda_reserved_concurrency: int | None = None
    alert_email: str | None = None
    alarm_email: str | None = None
    certificate_arn: str | None = None
    allowed_cidr: str = "0.0.0.0/0"
    nat_gateways: int = 1
    log_retention_days: int = 30
    queue_batch_size: int = 10
    queue_batch_window_seconds: int = 1
    queue_max_concurrency: int = DEFAULT_QUEUE_MAX_CONCURRENCY
    results_ttl_days: int | None = None
    web: bool = True
    waf: bool = True
    waf_rate_limit: int = 1000
    waf_logging: bool = False

    @property
    def docker_platform(self) -> str:
        return "linux/arm64" if self.architecture == "arm64" else "linux/amd64"

    @property
    def lambda_threads(self) -> int:
        """Inference threads for the function: Lambda gives one vCPU per 1769 MB of memory (at least one)."""
        return max(1, round(self.lambda_memory_mb / 1769))

    @property
    def alarm_recipient(self) -> str | None:
        """Who gets the alarms: ``alarmEmail``, or else ``alertEmail`` (one address for both, as before it existed)."""
        return self.alarm_email or self.alert_email

    def stack_name(self, part: str) -> str:
        return f"firewatch-{self.env_name}-{part}"

    @property
    def upload_bucket_parameter(self) -> str:
        """SSM parameter holding the upload bucket's name: the web stack finds the bucket through it."""
        return f"/firewatch/{self.env_name}/upload-bucket-name"

    @property
    def results_table_parameter(self) -> str:
        """SSM parameter holding the results index table's name: the web stack finds the table through it."""
        return f"/firewatch/{self.env_name}/results-table-name"

    @property
    def queue_visibility_timeout_seconds(self) -> int:
        """The upload queue's visibility timeout: six function timeouts plus the batching window (AWS's guidance)."""
        return VISIBILITY_TIMEOUT_FACTOR * self.lambda_timeout_seconds + self.queue_batch_window_seconds

    @classmethod
    def from_context(cls, get: Callable[[str], Any]) -> "FirewatchConfig":
        """Build the settings from a context getter (``node.try_get_context``); validates every value."""
        architecture = _choice(get, "architecture", ARCHITECTURES, cls.architecture)
        config = cls(
            env_name=_matching(get, "envName", _ENV_NAME, "lower-case letters, digits and '-', at most 20") or cls.env_name,
            architecture=architecture,
            instance_type=_text(get, "instanceType") or DEFAULT_INSTANCE_TYPES[architecture],
            min_capacity=_integer(get, "minCapacity", cls.min_capacity, 1, 20),
            max_capacity=_integer(get, "maxCapacity", cls.max_capacity, 1, 50),
            desired_capacity=_integer(get, "desiredCapacity", None, 1, 50),
            lambda_memory_mb=_integer(get, "lambdaMemoryMb", cls.lambda_memory_mb, 128, 10240),
            lambda_timeout_seconds=_integer(get, "lambdaTimeoutSeconds", cls.lambda_timeout_seconds, 1, 900),
            lambda_reserved_concurrency=_integer(get, "lambdaReservedConcurrency", None, 0, 1000),
            alert_email=_matching(get, "alertEmail", _EMAIL, "an e-mail address"),
            alarm_email=_matching(get, "alarmEmail", _EMAIL, "an e-mail address"),
            certificate_arn=_matching(get, "certificateArn", _CERTIFICATE_ARN, "an ACM certificate ARN"),
            allowed_cidr=_cidr(get, "allowedCidr", cls.allowed_cidr),
            nat_gateways=_integer(get, "natGateways", cls.nat_gateways, 1, 2),
            log_retention_days=_choice(get, "logRetentionDays", LOG_RETENTION_DAYS, cls.log_retention_days, int),
            queue_batch_size=_integer(get, "queueBatchSize", cls.queue_batch_size, 1, 10),
            queue_batch_window_seconds=_integer(get, "queueBatchWindowSeconds", cls.queue_batch_window_seconds, 0, 300),
            queue_max_concurrency=_integer(get, "queueMaxConcurrency", _default_max_concurrency(get), 2, 1000),
            results_ttl_days=_integer(get, "resultsTtlDays", None, 1, 3650),
            web=_boolean(get, "web", cls.web),
            waf=_boolean(get, "waf", cls.waf),
            waf_rate_limit=_integer(get, "wafRateLimit", cls.waf_rate_limit, 10, 2_000_000_000),
            waf_logging=_boolean(get, "wafLogging", cls.waf_logging),
        )
        config._check_consistency()
        return config

    def _check_consistency(self) -> None:
        if self.min_capacity > self.max_capacity:
            raise ConfigError(f"minCapacity ({self.min_capacity}) is larger than maxCapacity ({self.max_capacity})")
        if self.desired_capacity is not None and not self.min_capacity <= self.desired_capacity <= self.max_capacity:
            raise ConfigError(f"desiredCapacity ({self.desired_capacity}) must lie between minCapacity and maxCapacity")
        reserved = self.lambda_reserved_concurrency
        if reserved is not None and self.queue_max_concurrency > reserved:
            # Invocations over the reserved concurrency are throttled, and every throttled receive counts towards the
            # queue's maxReceiveCount: good messages would end in the dead-letter queue.
            raise ConfigError(
                f"queueMaxConcurrency ({self.queue_max_concurrency}) is above lambdaReservedConcurrency ({reserved}): "
                "throttled messages would reach the dead-letter queue; lower it, or reserve at least 2"
            )
        is_arm = bool(_ARM_INSTANCE.match(self.instance_type))
        if is_arm != (self.architecture == "arm64"):
            raise ConfigError(
                f"instanceType {self.instance_type!r} does not run {self.architecture} images; "
                f"use e.g. {DEFAULT_INSTANCE_TYPES[self.architecture]!r} or change 'architecture'"
            )


def _default_max_concurrency(get: Callable[[str], Any]) -> int:
    """10, or the reserved concurrency when that is smaller (and at least the minimum of 2)."""
    try:
        reserved = int(_text(get, "lambdaReservedConcurrency") or DEFAULT_QUEUE_MAX_CONCURRENCY)
    except ValueError:
        return DEFAULT_QUEUE_MAX_CONCURRENCY  # lambdaReservedConcurrency's own check names the error
    return max(2, min(DEFAULT_QUEUE_MAX_CONCURRENCY, reserved))


def _text(get: Callable[[str], Any], key: str) -> str | None:
    value = get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return str(value).strip()


def _matching(get: Callable[[str], Any], key: str, pattern: re.Pattern, what: str) -> str | None:
    value = _text(get, key)
    if value is not None and not pattern.match(value):
        raise ConfigError(f"context {key}={value!r} is not valid: expected {what}")
    return value


def _integer(get: Callable[[str], Any], key: str, default: int | None, low: int, high: int) -> int | None:
    value = _text(get, key)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"context {key}={value!r} is not an integer") from None
    if not low <= number <= high:
        raise ConfigError(f"context {key}={number} is out of range {low}-{high}")
    return number


def _choice(get: Callable[[str], Any], key: str, allowed: tuple, default: Any, convert: Callable = str) -> Any:
    value = _text(get, key)
    if value is None:
        return default
    try:
        chosen = convert(value)
    except ValueError:
        chosen = None
    if chosen not in allowed:
        raise ConfigError(f"context {key}={value!r} is not one of {', '.join(map(str, allowed))}")
    return chosen


def _boolean(get: Callable[[str], Any], key: str, default: bool) -> bool:
    value = get(key)
    if isinstance(value, bool):  # cdk.json
        return value
    text = _text(get, key)
    if text is None:
        return default
    if text.lower() not in ("true", "false"):
        raise ConfigError(f"context {key}={text!r} is not true or false")
    return text.lower() == "true"


def _cidr(get: Callable[[str], Any], key: str, default: str) -> str:
    value = _text(get, key)
    if value is None:
        return default
    try:
        return str(ipaddress.IPv4Network(value, strict=True))
    except ValueError as error:
        raise ConfigError(f"context {key}={value!r} is not an IPv4 CIDR block: {error}") from None


# Names shared with the runtime code (contracts, not settings). Their home is inference/contract.py; the stacks import
# no runtime code, so these are copies, held equal to it by tests/infra/test_config.py.
SERVICE_NAME = "firewatch"  # POWERTOOLS_SERVICE_NAME: the `service` dimension of the custom metrics
METRICS_NAMESPACE = "Firewatch"  # POWERTOOLS_METRICS_NAMESPACE
ENVIRONMENT_ENV = "FIREWATCH_ENVIRONMENT"  # envName, the `environment` dimension of the custom metrics
ENVIRONMENT_DIMENSION = "environment"
UPLOADS_PREFIX = "uploads/"
RESULTS_PREFIX = "results/"
APP_PORT = 8080
HEALTH_CHECK_PATH = "/healthz"
# The results index (inference/contract.py): key, the newest-first index, and the TTL attribute.
INDEX_KEY = "key"
NEWEST_INDEX = "newest"
NEWEST_PARTITION = "day"
NEWEST_SORT = "classified_at"
INDEX_EXPIRES_AT = "expires_at"
RESULTS_TABLE_ENV = "FIREWATCH_RESULTS_TABLE"
RESULTS_TTL_DAYS_ENV = "FIREWATCH_RESULTS_TTL_DAYS"
BATCH_ITEM_FAILURES = "BatchItemFailures"
BORDERLINE_VERDICTS = "BorderlineVerdicts"
# The web app's access log fields and the metrics the web log group's filters make of them.
VERDICT_LOG_FIELDS = {"classified": "WebImagesClassified", "fire": "WebFireDetected", "borderline": "WebBorderlineVerdicts"}
