#!/usr/bin/env python3
"""CDK entry point (`cdk synth`, `cdk deploy --all`). Settings: CDK context, documented in stacks/config.py."""

import aws_cdk as cdk

from stacks import build_app

app = cdk.App()
build_app(app)
app.synth()
