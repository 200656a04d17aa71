"""The one container image: built from ``lambda_image/Dockerfile`` with the repository root as context.

The Lambda function runs its default command (the S3 handler); the EC2 instances pull the same image and run the web
server from it. CDK only stages the context at synth time; the CLI builds and pushes the image at deploy time.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import IgnoreMode
from aws_cdk import aws_ecr_assets as ecr_assets
from constructs import Construct

from stacks.config import FirewatchConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = "lambda_image/Dockerfile"

class FirewatchImage(Construct):
    """A Docker image asset for the configured CPU architecture (``asset.image_uri``, ``asset.repository``)."""

    def __init__(self, scope: Construct, construct_id: str, *, config: FirewatchConfig) -> None:
        super().__init__(scope, construct_id)
        self.asset = ecr_assets.DockerImageAsset(
            self,
            "Asset",
            directory=str(REPO_ROOT),
            file=DOCKERFILE,
            # Pinned so an image built on an Arm laptop still runs on x86 Lambda ("exec format error") and vice versa.
            platform=ecr_assets.Platform.custom(config.docker_platform),
            # `.dockerignore` (an allow-list, read by CDK too) is the one list of what enters the context, so a
            # change to tests, docs or the CDK code never yields a new image that would roll every web instance.
            ignore_mode=IgnoreMode.DOCKER,
            display_name="firewatch-image",
        )
