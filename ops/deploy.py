"""``python -m ops deploy|bootstrap|destroy``: the CDK CLI with what it needs set, checked and explained.

- The environment every run needs: ``BUILDX_NO_DEFAULT_ATTESTATIONS=1`` (without it BuildKit attaches provenance
  attestations and Lambda rejects the image), and one region for the CLI and the SDK (``AWS_REGION`` and
  ``AWS_DEFAULT_REGION``, from ``--region``, the environment or the profile).
- Prerequisites checked first, each with what to do: the CDK CLI (``npx``), Docker (deploy only: it builds the
  image), credentials and a region.
- ``deploy`` writes the stack outputs to a file (``cdk-outputs.json``) and prints the next steps from it.
- ``destroy`` says what it keeps (the resources whose removal policy retains them) and asks before deleting.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ops.synth import ROOT, SynthError, env_name, parse_context, synthesize

OUTPUTS_FILE = "cdk-outputs.json"
DOCKER_TIMEOUT_S = 20
HOW_TO_AUTHENTICATE = (
    "set credentials with `aws configure` (or `aws configure sso` then `aws sso login`), or export "
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or choose a configured profile with --profile / AWS_PROFILE"
)
HOW_TO_CHOOSE_A_REGION = (
    "pass --region (e.g. `make deploy REGION=eu-west-1`), export AWS_REGION, or set `region` in the "
    "profile (`aws configure set region eu-west-1`)"
)


class PrerequisiteMissing(RuntimeError):
    """Something the command needs is not there; the message says how to provide it."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting (CDK context, see README: Deploy to AWS), repeatable")  # fmt: skip
    parser.add_argument("--region", help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION or the profile's)")
    parser.add_argument("--profile", help="AWS CLI profile (default: AWS_PROFILE or the default profile)")
    parser.add_argument("--outputs-file", default=OUTPUTS_FILE, help=f"where deploy writes the outputs (default {OUTPUTS_FILE})")
    if parser.prog.endswith("deploy"):
        parser.add_argument("--next-steps", action="store_true", help="only print the next steps from the outputs file")
    if parser.prog.endswith("destroy"):
        parser.add_argument("--force", action="store_true", help="do not ask for confirmation")
    parser.add_argument("cdk_args", nargs=argparse.REMAINDER, help="after --: passed to the CDK CLI as they are")


def run(args: argparse.Namespace) -> int:
    try:
        context = parse_context(args.context)
        outputs_file = ROOT / args.outputs_file
        if args.command == "deploy" and args.next_steps:
            print(next_steps(read_outputs(outputs_file, env_name(context))))
            return 0
        env = deploy_environment(os.environ, region=args.region, profile=args.profile)
        check_cdk_cli()
        if args.command == "deploy":
            check_docker()
        if args.command == "destroy" and not confirm_destroy(context, outputs_file, args.force):
            print("Nothing destroyed.")
            return 1
    except (PrerequisiteMissing, SynthError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    cdk_args = args.cdk_args[1:] if args.cdk_args[:1] == ["--"] else args.cdk_args
    command = cdk_command(args.command, context, cdk_args, outputs_file)
    print(f"Region {env['AWS_REGION']}: {' '.join(command)}", flush=True)
    status = subprocess.run(command, cwd=ROOT, env=env).returncode
    if status != 0:
        print(f"error: `{' '.join(command[:3])}` failed with exit status {status} (its output above says why)", file=sys.stderr)
        return status
    if args.command == "deploy":
        print(next_steps(read_outputs(outputs_file, env_name(context)), env["AWS_REGION"]))
    elif args.command == "bootstrap":
        print(f"\nBootstrapped {env['AWS_REGION']}. Next: make deploy (settings: CONTEXT=\"-c key=value ...\").")
    return 0


def cdk_command(command: str, context: dict[str, str], cdk_args: list[str], outputs_file: Path) -> list[str]:
    """The CDK CLI's command line (through npx: the version package.json pins)."""
    line = ["npx", "cdk", command]
    if command in ("deploy", "destroy"):
        line.append("--all")
    if command == "deploy":
        line += ["--outputs-file", str(outputs_file)]
    if command == "destroy":
        line.append("--force")  # asked already, with what is kept
    for key, value in context.items():
        line += ["-c", f"{key}={value}"]
    return line + cdk_args


def deploy_environment(environ: dict, *, region: str | None, profile: str | None) -> dict[str, str]:
    """The child environment: attestations off, one region for the CLI and the SDK, credentials checked."""
    env = dict(environ)
    env["BUILDX_NO_DEFAULT_ATTESTATIONS"] = "1"
    env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    if profile:
        env["AWS_PROFILE"] = profile
    import boto3  # only here: --help and --next-steps need no SDK
    import botocore.exceptions

    try:
        session = boto3.Session(profile_name=env.get("AWS_PROFILE") or None)
    except botocore.exceptions.ProfileNotFound as error:
        raise PrerequisiteMissing(f"{error}; {HOW_TO_AUTHENTICATE}") from None
    chosen = region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or session.region_name
    if not chosen:
        raise PrerequisiteMissing(f"no AWS region is set: {HOW_TO_CHOOSE_A_REGION}")
    if session.get_credentials() is None:
        raise PrerequisiteMissing(f"no AWS credentials found: {HOW_TO_AUTHENTICATE}")
    env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = chosen
    return env


def check_cdk_cli() -> None:
    if shutil.which("npx") is None:
        raise PrerequisiteMissing("`npx` is not on PATH: install Node.js 20, then `make install` (it installs the CDK CLI)")


def check_docker() -> None:
    if shutil.which("docker") is None:
        raise PrerequisiteMissing(
            "`docker` is not on PATH: deploying builds the container image; install Docker with buildx "
            "(https://docs.docker.com/engine/install/) and start it"
        )
    try:
        answered = subprocess.run(["docker", "info"], capture_output=True, timeout=DOCKER_TIMEOUT_S).returncode == 0
    except subprocess.TimeoutExpired:
        answered = False
    if not answered:
        raise PrerequisiteMissing(
            "Docker is installed but its daemon does not answer (`docker info` failed): start Docker "
            "(Docker Desktop, or `sudo systemctl start docker`) and check that your user may use it"
        )


def read_outputs(path: Path, env: str) -> dict[str, str]:
    """Output name -> value over this environment's stacks, from the file ``cdk deploy --outputs-file`` wrote."""
    if not path.exists():
        raise FileNotFoundError(f"{path.name} does not exist: run `make deploy` first")
    stacks = json.loads(path.read_text())
    prefix = f"firewatch-{env}-"
    return {name: value for stack, outputs in stacks.items() if stack.startswith(prefix) for name, value in outputs.items()}


def next_steps(outputs: dict[str, str], region: str | None = None) -> str:
    """What to do now, with the real names; only what this deployment has (a serverless-only one has no web URL)."""
    flag = f" --region {region}" if region else ""
    lines = ["", "Deployed. Next steps:"]
    bucket = outputs.get("UploadBucketName")
    if bucket:
        lines += [
            "  Upload a photo (the function classifies everything under uploads/):",
            f"    aws s3 cp photo.jpg s3://{bucket}/uploads/photo.jpg{flag}",
            "  Read its result a few seconds later:",
            f"    aws s3 cp s3://{bucket}/results/photo.jpg.json -{flag}",
        ]
    if outputs.get("WebUrl"):
        lines += ["  Web page:", f"    {outputs['WebUrl']}"]
    if outputs.get("DashboardUrl"):
        lines += ["  Dashboard:", f"    {outputs['DashboardUrl']}"]
    for name, what in (("AlertTopicArn", "fire alerts"), ("AlarmTopicArn", "alarms")):
        if outputs.get(name):
            lines += [f"  Get {what} by e-mail (confirm the e-mail AWS sends):",
                      f"    aws sns subscribe --topic-arn {outputs[name]} --protocol email --notification-endpoint you@example.com{flag}"]  # fmt: skip
    lines.append("  `python -m ops deploy --next-steps` (with the same -c envName) prints these steps again.")
    return "\n".join(lines)


def retained_resources(templates: dict[str, dict]) -> list[str]:
    """``stack: Type LogicalId`` of every resource that CloudFormation keeps when its stack is deleted."""
    kept = []
    for stack, template in templates.items():
        for logical_id, resource in template.get("Resources", {}).items():
            if resource.get("DeletionPolicy") in ("Retain", "RetainExceptOnCreate", "Snapshot"):
                kept.append(f"{stack}: {resource['Type']} {logical_id}")
    return kept


def confirm_destroy(context: dict[str, str], outputs_file: Path, force: bool) -> bool:
    """Say what goes and what stays; ask unless ``force``."""
    env = env_name(context)
    try:
        templates = synthesize(context)
    except SynthError as error:  # a broken checkout must not stop the clean-up; say what is usually kept instead
        print(f"Could not list what is kept ({str(error).splitlines()[0]}); the stacks keep the upload and access-log buckets.")
        templates = {}
    print(f"This deletes the stacks firewatch-{env}-* ({', '.join(sorted(templates)) or 'all of them'}).")
    kept = retained_resources(templates)
    if kept:
        print("Kept on purpose (their data survives; versioned buckets must be emptied of every version before "
              "deleting them, e.g. in the S3 console: Empty, then Delete):")  # fmt: skip
        print("\n".join(f"  {line}" for line in kept))
    try:
        bucket = read_outputs(outputs_file, env).get("UploadBucketName")
    except FileNotFoundError:
        bucket = None
    if bucket:
        print(f"  the upload bucket is s3://{bucket}")
    print("Also kept: the CDK bootstrap stack (CDKToolkit) and the image in its ECR repository.")
    if force:
        return True
    if not sys.stdin.isatty():
        print("Not a terminal: pass --force (`make destroy FORCE=1`) to destroy without a question.")
        return False
    return input(f"Type the environment name ({env}) to destroy it: ").strip() == env
