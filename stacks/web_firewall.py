"""The web firewall: an AWS WAF web ACL on the load balancer (setting ``waf``, on by default).

Rules, in order:

1. a rate limit per client IP (``wafRateLimit`` requests per 5 minutes), which blocks floods before they reach the
   instances (each photo costs a decode);
2. AWS's common rule set (the OWASP-style basics), with its body rules that photo uploads trip set to count: a photo
   is a binary multipart body far over 8 KB (``SizeRestrictions_BODY`` blocks every body over 8 KB) whose bytes can
   look like script (``CrossSiteScripting_BODY``);
3. those two rules' labels blocked again on every path but the two upload paths (``POST /api/v1/classify`` and the
   page's form, ``POST /``), which bound their bodies themselves (20 MB, 64 parts; web_app) and never render them.

Every rule publishes CloudWatch metrics and sampled requests. ``wafLogging`` adds full request logs.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from stacks.capability import Capability
from stacks.config import FirewatchConfig
from stacks.logs import log_retention

COMMON_RULE_SET = "AWSManagedRulesCommonRuleSet"
# The common rule set's rules that photo uploads trip, and the labels they leave when they only count.
UPLOAD_BODY_RULES = {
    "SizeRestrictions_BODY": "awswaf:managed:aws:core-rule-set:SizeRestrictions_Body",
    "CrossSiteScripting_BODY": "awswaf:managed:aws:core-rule-set:CrossSiteScripting_Body",
}
UPLOAD_PATHS = ("/api/v1/classify", "/")
RATE_WINDOW_SECONDS = 300


class WebFirewall(Capability):
    def __init__(self, scope: Construct, *, config: FirewatchConfig, load_balancer: elbv2.IApplicationLoadBalancer) -> None:
        super().__init__(scope)
        # The metric name is the WebACL dimension of the ACL's CloudWatch metrics (the dashboard reads them by it).
        self.metric_name = f"firewatch-{config.env_name}-web"
        self.web_acl = wafv2.CfnWebACL(
            self.scope,
            "WebAcl",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            description="Firewatch load balancer: rate limit per IP and AWS common rules",
            visibility_config=_visibility(self.metric_name),
            rules=[
                _rate_limit(config.waf_rate_limit, priority=0),
                _common_rules(priority=1),
                _block_upload_labels_elsewhere(priority=2),
            ],
        )
        wafv2.CfnWebACLAssociation(
            self.scope,
            "WebAclAssociation",
            resource_arn=load_balancer.load_balancer_arn,
            web_acl_arn=self.web_acl.attr_arn,
        )
        if config.waf_logging:
            self._log_requests(config)

    def _log_requests(self, config: FirewatchConfig) -> None:
        # WAF delivers only to log groups named aws-waf-logs-*, and takes the group's ARN without the ":*" suffix.
        name = f"aws-waf-logs-firewatch-{config.env_name}"
        group = logs.LogGroup(
            self.scope,
            "WafLogs",
            log_group_name=name,
            retention=log_retention(config.log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        arn = Stack.of(self.scope).format_arn(
            service="logs", resource="log-group", resource_name=name, arn_format=ArnFormat.COLON_RESOURCE_NAME
        )
        logging = wafv2.CfnLoggingConfiguration(
            self.scope, "WafLogging", resource_arn=self.web_acl.attr_arn, log_destination_configs=[arn]
        )
        logging.node.add_dependency(group)

    def requests_metric(self, name: str, label: str) -> cw.Metric:
        """``AllowedRequests`` or ``BlockedRequests`` of the whole web ACL, per 5 minutes."""
        return cw.Metric(
            namespace="AWS/WAFV2",
            metric_name=name,
            dimensions_map={"WebACL": self.metric_name, "Region": Stack.of(self.scope).region, "Rule": "ALL"},
            statistic="Sum",
            label=label,
        )


def _visibility(metric_name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=metric_name, sampled_requests_enabled=True
    )


def _rate_limit(limit: int, *, priority: int) -> wafv2.CfnWebACL.RuleProperty:
    return wafv2.CfnWebACL.RuleProperty(
        name="RateLimitPerIp",
        priority=priority,
        action=wafv2.CfnWebACL.RuleActionProperty(block={}),
        statement=wafv2.CfnWebACL.StatementProperty(
            rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                limit=limit, aggregate_key_type="IP", evaluation_window_sec=RATE_WINDOW_SECONDS
            )
        ),
        visibility_config=_visibility("RateLimitPerIp"),
    )


def _common_rules(*, priority: int) -> wafv2.CfnWebACL.RuleProperty:
    return wafv2.CfnWebACL.RuleProperty(
        name=COMMON_RULE_SET,
        priority=priority,
        override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
        statement=wafv2.CfnWebACL.StatementProperty(
            managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                vendor_name="AWS",
                name=COMMON_RULE_SET,
                # Count instead of block: the request goes on with the rule's label, judged by the next rule.
                rule_action_overrides=[
                    wafv2.CfnWebACL.RuleActionOverrideProperty(
                        name=rule, action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={})
                    )
                    for rule in UPLOAD_BODY_RULES
                ],
            )
        ),
        visibility_config=_visibility(COMMON_RULE_SET),
    )


def _block_upload_labels_elsewhere(*, priority: int) -> wafv2.CfnWebACL.RuleProperty:
    labelled = [
        wafv2.CfnWebACL.StatementProperty(
            label_match_statement=wafv2.CfnWebACL.LabelMatchStatementProperty(scope="LABEL", key=label)
        )
        for label in UPLOAD_BODY_RULES.values()
    ]
    upload_path = [
        wafv2.CfnWebACL.StatementProperty(
            byte_match_statement=wafv2.CfnWebACL.ByteMatchStatementProperty(
                field_to_match=wafv2.CfnWebACL.FieldToMatchProperty(uri_path={}),
                positional_constraint="EXACTLY",
                search_string=path,
                text_transformations=[wafv2.CfnWebACL.TextTransformationProperty(priority=0, type="NONE")],
            )
        )
        for path in UPLOAD_PATHS
    ]
    return wafv2.CfnWebACL.RuleProperty(
        name="BlockUploadBodyRulesOutsideUploads",
        priority=priority,
        action=wafv2.CfnWebACL.RuleActionProperty(block={}),
        statement=wafv2.CfnWebACL.StatementProperty(
            and_statement=wafv2.CfnWebACL.AndStatementProperty(
                statements=[
                    wafv2.CfnWebACL.StatementProperty(
                        or_statement=wafv2.CfnWebACL.OrStatementProperty(statements=labelled)
                    ),
                    wafv2.CfnWebACL.StatementProperty(
                        not_statement=wafv2.CfnWebACL.NotStatementProperty(
                            statement=wafv2.CfnWebACL.StatementProperty(
                                or_statement=wafv2.CfnWebACL.OrStatementProperty(statements=upload_path)
                            )
                        )
                    ),
                ]
            )
        ),
        visibility_config=_visibility("BlockUploadBodyRulesOutsideUploads"),
    )
