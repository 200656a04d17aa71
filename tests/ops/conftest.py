"""Stub executables on PATH in place of the CDK CLI and Docker: they record how they were called, and the CLI
writes a sample outputs file; no AWS, no Node, no Docker."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

# What `cdk deploy --all --outputs-file` writes for the default shape (names as CloudFormation makes them).
SAMPLE_OUTPUTS = {
    "firewatch-prod-serverless": {
        "UploadBucketName": "firewatch-prod-serverless-uploads1a2b3c4d-5e6f7g8h9i0j",
        "AlertTopicArn": "arn:aws:sns:eu-west-1:123456789012:firewatch-prod-serverless-AlertTopic-AbCdEf",
    },
    "firewatch-prod-web": {"WebUrl": "http://firewa-LoadB-1234567890.eu-west-1.elb.amazonaws.com"},
    "firewatch-prod-monitoring": {
        "DashboardUrl": "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#dashboards:name=firewatch-prod-dashboard",
        "AlarmTopicArn": "arn:aws:sns:eu-west-1:123456789012:firewatch-prod-monitoring-AlarmTopic-GhIjKl",
    },
}

RECORDER = """#!{python}
import json, os, sys
with open({log!r}, "a") as log:
    log.write(json.dumps({{"tool": {tool!r}, "argv": sys.argv[1:], "env": dict(os.environ)}}) + "\\n")
if {tool!r} == "npx" and "--outputs-file" in sys.argv:
    with open(sys.argv[sys.argv.index("--outputs-file") + 1], "w") as out:
        out.write({outputs!r})
sys.exit(int(os.environ.get("FAKE_{upper}_STATUS", "0")))
"""


class Tools:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.log = folder / "calls.jsonl"
        self.outputs = dict(SAMPLE_OUTPUTS)

    def install(self, tool: str) -> None:
        script = self.folder / tool
        script.write_text(RECORDER.format(python=sys.executable, log=str(self.log), tool=tool,
                                          outputs=json.dumps(self.outputs), upper=tool.upper()))
        script.chmod(0o755)

    def calls(self, tool: str) -> list[dict]:
        if not self.log.exists():
            return []
        return [c for c in map(json.loads, self.log.read_text().splitlines()) if c["tool"] == tool]


@pytest.fixture
def tools(tmp_path, monkeypatch) -> Tools:
    """`npx` and `docker` stubs as the only programs on PATH, fake credentials, no region, no AWS config."""
    folder = tmp_path / "bin"
    folder.mkdir()
    found = Tools(folder)
    found.install("npx")
    found.install("docker")
    monkeypatch.setenv("PATH", str(folder))
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata lookup for credentials
    return found
