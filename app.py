#!/usr/bin/env python3
"""CDK entry point (`cdk synth`, `cdk deploy --all`, or `CDK_OUTDIR=dir python app.py` without the CLI).
Settings: CDK context, documented in stacks/config.py."""

import aws_cdk as cdk

from stacks import build_app, cdk_json_context

# cdk.json's context comes first; what the CLI passes (cdk.json again, `-c key=value`) overrides it.
app = cdk.App(context=cdk_json_context())
build_app(app)
app.synth()
