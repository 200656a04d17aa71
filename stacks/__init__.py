"""The Firewatch CDK app: three stacks that read like the architecture diagram.

- ``firewatch-<env>-serverless``: the container image asset, upload bucket, classifier function, S3 trigger,
  dead-letter queue and fire alert topic.
- ``firewatch-<env>-web``: VPC, internet-facing ALB, Auto Scaling group running the web server from the same image.
- ``firewatch-<env>-monitoring``: dashboard, alarms and the alarm topic.

This package declares infrastructure only; it imports no runtime code (it points at folders and files).
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import App, Tags

from stacks.config import FirewatchConfig
from stacks.monitoring import MonitoringStack
from stacks.nag import enable_checks
from stacks.serverless import ServerlessStack
from stacks.web import WebStack


@dataclass(frozen=True)
class FirewatchApp:
    config: FirewatchConfig
    serverless: ServerlessStack
    web: WebStack
    monitoring: MonitoringStack


def build_app(app: App) -> FirewatchApp:
    """Add the stacks to ``app`` (settings from its context) and turn on the cdk-nag AwsSolutions checks."""
    config = FirewatchConfig.from_context(app.node.try_get_context)
    serverless = ServerlessStack(
        app, config.stack_name("serverless"), config=config,
        description="Firewatch serverless path: upload bucket, S3-triggered classifier function, alert topic",
    )  # fmt: skip
    web = WebStack(
        app, config.stack_name("web"), config=config, image=serverless.image,
        description="Firewatch web path: VPC, load balancer, Auto Scaling group running the web server",
    )  # fmt: skip
    # The web instances pull the image published with the serverless stack and read its bucket-name parameter.
    web.add_stack_dependency(serverless, "pulls its image asset and reads its upload bucket parameter")
    monitoring = MonitoringStack(
        app, config.stack_name("monitoring"), config=config, serverless=serverless, web=web,
        description="Firewatch monitoring: dashboard, alarms, alarm topic",
    )  # fmt: skip
    Tags.of(app).add("project", "firewatch")
    Tags.of(app).add("environment", config.env_name)
    enable_checks(app)
    return FirewatchApp(config, serverless, web, monitoring)
