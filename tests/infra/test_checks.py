"""Whole-app checks: `cdk synth` with the pinned CLI, cfn-lint on its templates, cdk-nag AwsSolutions, image asset."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.conftest import ROOT

CDK = ROOT / "node_modules" / ".bin" / "cdk"
STACKS = ("firewatch-dev-serverless", "firewatch-dev-web", "firewatch-dev-monitoring")
# cfn-lint W3005 ("dependency already enforced by a GetAtt") is raised by explicit DependsOn that the CDK itself emits
# (a function on its role, a custom-resource handler on its role); harmless and not ours to change.
CFN_LINT_IGNORED = ("W3005",)


@pytest.fixture(scope="module")
def cli_synth(tmp_path_factory) -> Path:
    """One run of the pinned CDK CLI over the whole app (as CI and `make synth` do), offline, no credentials."""
    assert CDK.exists(), f"{CDK} is missing: run `make install` (it runs `npm ci`)"
    outdir = tmp_path_factory.mktemp("cdk-cli")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20", CDK_DISABLE_VERSION_CHECK="1")
    result = subprocess.run(
        [str(CDK), "synth", "--quiet", "--no-notices", "-o", str(outdir)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, f"cdk synth failed:\n{result.stdout}\n{result.stderr}"
    return outdir


def test_cdk_synth_writes_every_stack(cli_synth):
    manifest = json.loads((cli_synth / "manifest.json").read_text())
    stacks = {k for k, v in manifest["artifacts"].items() if v["type"] == "aws:cloudformation:stack"}
    assert stacks == set(STACKS)
    for stack in STACKS:
        assert json.loads((cli_synth / f"{stack}.template.json").read_text())["Resources"]
        # Environment-agnostic: deployable to whichever account/region the CLI is pointed at.
        assert manifest["artifacts"][stack]["environment"] == "aws://unknown-account/unknown-region"


def _resources_without_metadata(template_file: Path) -> dict:
    resources = json.loads(template_file.read_text())["Resources"]
    resources.pop("CDKMetadata", None)  # the CLI's version reporting
    return {k: {f: v for f, v in r.items() if f != "Metadata"} for k, r in resources.items()}


def test_app_synthesizes_without_the_cli_as_the_cli_does(cli_synth, tmp_path):
    """`CDK_OUTDIR=dir python app.py` (no CLI, no credentials) reads cdk.json's feature flags itself: without them
    the S3 access-log bucket is refused and the templates would differ from `cdk synth`'s."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
    env.update(JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20", CDK_OUTDIR=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    for stack in STACKS:
        name = f"{stack}.template.json"
        assert _resources_without_metadata(tmp_path / name) == _resources_without_metadata(cli_synth / name), stack


def test_cdk_synth_ran_cdk_nag_without_findings(cli_synth):
    report = json.loads((cli_synth / "validation-report.json").read_text())
    failures = [r for r in report["pluginReports"] if r.get("conclusion") != "success"]
    assert failures == []


def test_cfn_lint_is_clean(cli_synth):
    templates = [str(cli_synth / f"{stack}.template.json") for stack in STACKS]
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--ignore-checks", *CFN_LINT_IGNORED, "--", *templates],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_cdk_nag_finds_nothing_unacknowledged(synth):
    from cdk_nag import AwsSolutionsChecks

    report = AwsSolutionsChecks().validate_scope(synth.app)
    findings = [f"{v.rule_name}: {[r.resource_logical_id for r in v.violating_resources]}" for v in report.violations]
    assert report.success and findings == []


def test_cdk_nag_would_catch_a_finding(tmp_path):
    """The check is live: an unacknowledged open security group is reported."""
    import aws_cdk as cdk
    from aws_cdk import aws_ec2 as ec2
    from cdk_nag import AwsSolutionsChecks

    stack = cdk.Stack(cdk.App(outdir=str(tmp_path)), "Probe")
    group = ec2.SecurityGroup(stack, "Open", vpc=ec2.Vpc(stack, "Vpc"), description="probe")
    group.add_ingress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(22))
    rules = {v.rule_name for v in AwsSolutionsChecks().validate_scope(stack).violations}
    assert "AwsSolutions-EC23" in rules


def test_every_acknowledgement_has_a_reason(synth):
    acknowledged = {}
    for construct in synth.app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == "aws:cdk:acknowledged-rules":
                for rule, reason in entry.data.items():
                    acknowledged[f"{construct.node.path} {rule}"] = reason
    assert acknowledged, "expected acknowledged findings (e.g. the dead-letter queue's SQS3)"
    short = {k: v for k, v in acknowledged.items() if len(v.split()) < 5}
    assert short == {}


def test_every_acknowledgement_matches_a_real_finding(tmp_path, monkeypatch):
    """No stale acknowledgements: synthesized without them, the app shows exactly the acknowledged findings."""
    import aws_cdk as cdk
    from cdk_nag import AwsSolutionsChecks

    import stacks
    from tests.infra.conftest import cdk_json_context

    acknowledged = set()
    for module in [m for name, m in sys.modules.items() if name.startswith("stacks.")]:
        if hasattr(module, "acknowledge"):
            monkeypatch.setattr(module, "acknowledge", lambda scope, rule, reason: acknowledged.add((scope.node.path, rule)))
    app = cdk.App(outdir=str(tmp_path), context=cdk_json_context())
    stacks.build_app(app)
    found = set()
    for violation in AwsSolutionsChecks().validate_scope(app).violations:
        for resource in violation.violating_resources:
            found.add((resource.construct_path, violation.rule_name))
    # A finding sits on a CloudFormation resource below the construct that acknowledges it.
    unmatched = {a for a in acknowledged if not any(f[1] == a[1] and f[0].startswith(a[0] + "/") for f in found)}
    unacknowledged = {f for f in found if not any(f[1] == a[1] and f[0].startswith(a[0] + "/") for a in acknowledged)}
    assert (unmatched, unacknowledged) == (set(), set())


def test_image_asset_stages_only_what_the_image_needs(synth):
    manifest = json.loads((Path(synth.app.outdir) / "firewatch-dev-serverless.assets.json").read_text())
    (image,) = manifest["dockerImages"].values()
    assert image["source"]["dockerFile"] == "lambda_image/Dockerfile"
    assert image["source"]["platform"] == "linux/amd64"
    staged = Path(synth.app.outdir) / image["source"]["directory"]
    names = {p.name for p in staged.iterdir()}
    assert {"inference", "models", "lambda_image"} <= names
    assert (staged / "lambda_image" / "Dockerfile").is_file()
    assert (staged / "models" / "fire_classifier.tflite").is_file()
    assert names <= {"inference", "models", "lambda_image", "web_app", "requirements", ".dockerignore"}
    assert {p.name for p in (staged / "models").iterdir()} == {"fire_classifier.tflite", "fire_classifier.json"}
    assert not list(staged.rglob("__pycache__"))


def _built_platform(outdir: Path, source: dict) -> str:
    """The platform of the image `docker build --platform <source platform> --build-arg ...` makes from this asset:
    the last FROM's own --platform if it names one (build arguments, else ARG defaults, substituted), else the
    build's."""
    lines = (outdir / source["directory"] / source["dockerFile"]).read_text().splitlines()
    arguments = dict(line.split(None, 1)[1].partition("=")[::2] for line in lines if line.startswith("ARG "))
    arguments.update(source.get("buildArgs", {}), TARGETPLATFORM=source["platform"])
    pinned = re.search(r"--platform=(\S+)", [line for line in lines if line.startswith("FROM ")][-1])
    if not pinned:
        return source["platform"]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: arguments.get(m.group(1) or m.group(2), ""), pinned.group(1))


@pytest.mark.parametrize(("fixture", "platform"), [("synth", "linux/amd64"), ("synth_custom", "linux/arm64")])
def test_image_platform_follows_the_architecture(fixture, platform, request):
    """The asset says which platform to build, and the image built from it is of that platform: an arm64 deploy
    once built an x86 image (FROM pinned its own platform), which Graviton cannot run ("exec format error")."""
    synthesized = request.getfixturevalue(fixture)
    outdir = Path(synthesized.app.outdir)
    for stack in (synthesized.stacks.serverless, synthesized.stacks.web):
        (image,) = json.loads((outdir / f"{stack.stack_name}.assets.json").read_text())["dockerImages"].values()
        assert image["source"]["platform"] == platform == synthesized.stacks.config.docker_platform
        assert _built_platform(outdir, image["source"]) == platform


def test_stacks_import_no_runtime_code():
    sources = "\n".join(p.read_text() for p in (ROOT / "stacks").glob("*.py")) + (ROOT / "app.py").read_text()
    for package in ("inference", "lambda_image", "web_app", "training"):
        assert f"import {package}" not in sources and f"from {package}" not in sources
