"""The web instances' user data, run in bash: every command it calls is a stub on PATH (or under a stand-in for
/opt/aws), so each step can be made to fail. A failed step must signal FAILURE at once, not let the group wait out
its 15-minute signal timeout; a server that answers its health check signals SUCCESS."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.infra.conftest import only

INSTANCE_ID = "i-0123456789abcdef0"
# What CloudFormation would put in place of the template's references.
REFERENCES = {
    '{"Ref": "AWS::Region"}': "eu-west-1",
    '{"Ref": "UploadBucketName"}': "firewatch-uploads",
}

# Each stub logs its command line, then fails when the test names it in FAIL (e.g. "docker pull").
STUB = """#!/bin/bash
echo "$(basename "$0") $*" >> "$STUB_LOG"
cat > /dev/null  # like `docker login`, read what a pipe gives (the writer must not meet a closed pipe)
for failing in $FAIL; do
  case "$(basename "$0") $*" in "${failing//+/ }"*) exit 1;; esac
done
"""
STUB_OUTPUT = {
    "curl": 'case "$*" in *api/token*) echo token;; *instance-id*) echo ' + INSTANCE_ID + ';; esac\n',
    "aws": 'case "$*" in "ecr get-login-password"*) echo password;; esac\n',
}
# No cfn-signal: Amazon Linux 2023 does not ship it (its package is one the script would have to install first).
STUBBED = ("dnf", "systemctl", "curl", "aws", "docker", "sleep")


def _script(template) -> str:
    data = only(template, "AWS::EC2::LaunchTemplate")["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Join"][1]
    parts = []
    for part in data:
        if isinstance(part, str):
            parts.append(part)
            continue
        rendered = json.dumps(part, sort_keys=True)
        if "Fn::Sub" in part:  # the image URI
            parts.append("123456789012.dkr.ecr.eu-west-1.amazonaws.com/cdk-assets:tag")
        elif rendered in REFERENCES:
            parts.append(REFERENCES[rendered])
        else:  # the log group's name
            parts.append(f"ref-{part['Ref']}")
    return "".join(parts)


def _run(script: str, tmp_path: Path, fail: list[str]) -> tuple[int, list[str]]:
    """Run the script with stubs; returns its exit status and the stubbed commands it ran, in order."""
    bin_dir, opt_aws = tmp_path / "bin", tmp_path / "opt" / "aws"
    for directory in (bin_dir, opt_aws / "amazon-cloudwatch-agent" / "bin", opt_aws / "amazon-cloudwatch-agent" / "etc"):
        directory.mkdir(parents=True, exist_ok=True)
    stubs = {bin_dir / name: STUB + STUB_OUTPUT.get(name, "") for name in STUBBED}
    stubs[opt_aws / "amazon-cloudwatch-agent" / "bin" / "amazon-cloudwatch-agent-ctl"] = STUB
    for path, text in stubs.items():
        path.write_text(text)
        path.chmod(0o755)
    log = tmp_path / "stub.log"
    log.write_text("")
    script = script.replace("/opt/aws/", f"{opt_aws}/")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "STUB_LOG": str(log), "FAIL": " ".join(f.replace(" ", "+") for f in fail)}
    result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
                            stdin=subprocess.DEVNULL)
    return result.returncode, log.read_text().splitlines()


def _signals(calls: list[str]) -> list[str]:
    return [call for call in calls if call.startswith("aws cloudformation signal-resource")]


def test_a_healthy_server_signals_success_once(synth, tmp_path):
    status, calls = _run(_script(synth.web), tmp_path, fail=[])
    assert status == 0
    (signal,) = _signals(calls)
    resource = next(k for k in synth.web.find_resources("AWS::AutoScaling::AutoScalingGroup"))
    assert signal == (
        "aws cloudformation signal-resource --region eu-west-1 --stack-name firewatch-dev-web"
        f" --logical-resource-id {resource} --unique-id {INSTANCE_ID} --status SUCCESS"
    )
    assert any(call.startswith("docker run --detach --name firewatch-web") for call in calls)


@pytest.mark.parametrize(
    ("failing", "last_step"),
    [
        ("dnf install", "dnf install -y docker amazon-cloudwatch-agent"),  # before any helper package is there
        ("systemctl enable", "systemctl enable --now docker"),
        ("aws ecr get-login-password", "aws ecr get-login-password --region eu-west-1"),
        ("docker pull", "docker pull 123456789012.dkr.ecr.eu-west-1.amazonaws.com/cdk-assets:tag"),
        ("docker run", "docker run --detach"),
    ],
)
def test_a_failed_step_signals_failure_at_once(synth, tmp_path, failing, last_step):
    status, calls = _run(_script(synth.web), tmp_path, fail=[failing])
    assert status != 0
    signals = _signals(calls)
    assert len(signals) == 1 and signals[0].endswith(f"--unique-id {INSTANCE_ID} --status FAILURE"), calls
    failed_at = next(i for i, call in enumerate(calls) if call.startswith(last_step))
    after = calls[failed_at + 1 :]  # nothing but the signal (and the other side of a pipe) ran after the failed step
    assert after[-1] == signals[0] and all(call.startswith("docker login") for call in after[:-1]), calls
    assert not any(call.startswith("sleep") for call in calls)  # no waiting: the signal is the next thing


def test_a_server_that_never_answers_signals_failure_after_its_health_checks(synth, tmp_path):
    status, calls = _run(_script(synth.web), tmp_path, fail=["curl -fsS http://127.0.0.1:8080/healthz"])
    assert status == 1
    assert sum(call.startswith("curl -fsS http://127.0.0.1:8080/healthz") for call in calls) == 60
    assert "docker logs firewatch-web" in calls
    assert _signals(calls)[-1].endswith("--status FAILURE") and len(_signals(calls)) == 1


def test_without_instance_metadata_the_failure_is_still_signalled(synth, tmp_path):
    status, calls = _run(_script(synth.web), tmp_path, fail=["curl -fsS -X PUT"])
    assert status != 0
    (signal,) = _signals(calls)
    assert signal.endswith(f"--unique-id {os.uname().nodename} --status FAILURE")
