"""The app's CloudFormation templates for given settings, synthesized offline (no credentials, no Docker, no CLI).

``app.py`` runs in a child process with ``CDK_OUTDIR`` and ``CDK_CONTEXT_JSON``, as the CDK CLI would run it, so
the operator commands stay free of jsii's start-up and the templates are exactly what ``cdk deploy`` would send.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SYNTH_TIMEOUT_S = 300


class SynthError(RuntimeError):
    """The app did not synthesize (a bad setting, a cdk-nag finding...); the message carries its output."""


def parse_context(pairs: list[str]) -> dict[str, str]:
    """``["envName=prod", "alertEmail=a@b.c"]`` (the values of ``-c``) -> a context dict."""
    context = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"context {pair!r} is not KEY=VALUE (e.g. -c envName=prod)")
        context[key] = value
    return context


def cdk_json_context() -> dict:
    return json.loads((ROOT / "cdk.json").read_text())["context"]


def env_name(context: dict[str, str]) -> str:
    """The stacks' environment name (``firewatch-<env>-...``): ``-c envName``, else cdk.json's, else ``dev``."""
    return str(context.get("envName") or cdk_json_context().get("envName") or "dev")


def synthesize(context: dict[str, str]) -> dict[str, dict]:
    """Stack name -> template, for ``context`` over cdk.json's settings."""
    with tempfile.TemporaryDirectory(prefix="firewatch-synth-") as outdir:
        env = {**os.environ, "CDK_OUTDIR": outdir, "CDK_CONTEXT_JSON": json.dumps(context),
               "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}  # fmt: skip
        done = subprocess.run(
            [sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=SYNTH_TIMEOUT_S
        )
        if done.returncode != 0:
            raise SynthError(f"the app did not synthesize:\n{(done.stderr or done.stdout)[-3000:]}")
        return {path.name.removesuffix(".template.json"): json.loads(path.read_text())
                for path in sorted(Path(outdir).glob("*.template.json"))}  # fmt: skip
