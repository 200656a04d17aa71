"""The Firewatch CDK app: three stacks, each composed of capabilities, that read like the architecture diagram.

- ``firewatch-<env>-serverless``: the image, the upload store, the fire alerts, the upload queue, the results index
  and the classifier pipeline (S3 notification -> SQS queue -> container-image function -> results, index, alerts).
- ``firewatch-<env>-web``: the network and the web tier (load balancer -> Auto Scaling group running the same image).
  Left out with ``web=false`` (the serverless-only shape): the monitoring stack then watches the serverless path alone.
- ``firewatch-<env>-monitoring``: the alarm topic, and the alarms and dashboard sections the classifier and the web
  tier offer.

What crosses between stacks: the image by its source (each stack that runs it declares the same content-addressed
asset), the upload bucket's name through an SSM parameter (no export locks the two paths together), and the
monitored resources' names through CloudFormation exports read by the monitoring stack.

This package declares infrastructure only; it imports no runtime code (it points at folders and files).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import App, Tags

from stacks.config import FirewatchConfig
from stacks.monitoring import MonitoringStack
from stacks.nag import enable_checks
from stacks.serverless import ServerlessStack
from stacks.web import WebStack

CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"


def cdk_json_context() -> dict:
    """The feature flags and settings of cdk.json. The CLI passes them to the app; run without it (``python
    app.py``) the app must read them itself, or it would synthesize with other defaults than ``cdk synth``."""
    return json.loads(CDK_JSON.read_text())["context"]


@dataclass(frozen=True)
class FirewatchApp:
    config: FirewatchConfig
    serverless: ServerlessStack
    web: WebStack | None  # None in the serverless-only shape (web=false)
    monitoring: MonitoringStack


def build_app(app: App) -> FirewatchApp:
    """Add the stacks to ``app`` (settings from its context) and turn on the cdk-nag AwsSolutions checks."""
    config = FirewatchConfig.from_context(app.node.try_get_context)
    serverless = ServerlessStack(
        app, config.stack_name("serverless"), config=config,
        description="Firewatch serverless path: upload bucket, upload queue, classifier function, results index, alert topic",
    )  # fmt: skip
    web = None
    if config.web:
        web = WebStack(
            app, config.stack_name("web"), config=config,
            description="Firewatch web path: VPC, load balancer, Auto Scaling group running the web server",
        )  # fmt: skip
        web.add_stack_dependency(serverless, "reads the upload bucket name it publishes in SSM")
    monitored = [*serverless.monitored] + ([web.web_tier] if web else [])
    monitoring = MonitoringStack(
        app, config.stack_name("monitoring"), config=config, monitored=monitored,
        description="Firewatch monitoring: dashboard, alarms, alarm topic",
    )  # fmt: skip
    Tags.of(app).add("project", "firewatch")
    Tags.of(app).add("environment", config.env_name)
    enable_checks(app)
    return FirewatchApp(config, serverless, web, monitoring)
