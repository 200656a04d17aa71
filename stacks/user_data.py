"""User data of the web instances: run the web server from the shared image under Docker, with a restart policy.

The script signals CloudFormation only once the server answers its health check, so a rolling update stops (and
rolls back) on an image that does not serve.
"""

from __future__ import annotations

import json

from aws_cdk import aws_ec2 as ec2

from stacks.config import APP_PORT, HEALTH_CHECK_PATH

CONTAINER_NAME = "firewatch-web"
# How long `docker stop` (and Docker's own shutdown) waits after SIGTERM before SIGKILL. Docker's default is 10 s;
# gunicorn lets in-flight requests finish for up to its graceful_timeout (25 s, web_app/gunicorn.conf.py), so
# this must be longer, or a deploy or scale-in would cut requests off.
CONTAINER_STOP_TIMEOUT_SECONDS = 35

# Memory and root-disk use are not EC2 metrics; the CloudWatch agent publishes them per Auto Scaling group.
CLOUDWATCH_AGENT_CONFIG = {
    "agent": {"metrics_collection_interval": 60},
    "metrics": {
        "namespace": "CWAgent",
        "append_dimensions": {"AutoScalingGroupName": "${aws:AutoScalingGroupName}", "InstanceId": "${aws:InstanceId}"},
        "aggregation_dimensions": [["AutoScalingGroupName"]],
        "metrics_collected": {
            "mem": {"measurement": ["mem_used_percent"]},
            "disk": {"measurement": ["used_percent"], "resources": ["/"], "drop_device": True},
        },
    },
}
CLOUDWATCH_AGENT_CONFIG_PATH = "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json"


def docker_run_command(*, image_uri: str, region: str, results_bucket: str, results_table: str, log_group: str) -> str:
    """The `docker run` line. The image's ENTRYPOINT is the Lambda runtime's, so the web server replaces it."""
    return " ".join(
        [
            "docker run --detach",
            f"--name {CONTAINER_NAME}",
            "--restart=always",
            f"--stop-timeout {CONTAINER_STOP_TIMEOUT_SECONDS}",
            "--cap-drop=ALL --security-opt=no-new-privileges",  # the server needs no capabilities (port 8080)
            f"--publish {APP_PORT}:{APP_PORT}",
            f"--env FIREWATCH_RESULTS_BUCKET={results_bucket}",
            f"--env FIREWATCH_RESULTS_TABLE={results_table}",
            f"--env AWS_REGION={region}",
            f"--env AWS_DEFAULT_REGION={region}",
            "--log-driver=awslogs",
            f"--log-opt awslogs-region={region}",
            f"--log-opt awslogs-group={log_group}",
            '--log-opt awslogs-stream="$INSTANCE_ID"',
            "--entrypoint python",
            f'"{image_uri}"',
            f"-m web_app --host 0.0.0.0 --port {APP_PORT}",
        ]
    )


def web_server_user_data(
    *, image_uri: str, region: str, results_bucket: str, results_table: str, log_group: str
) -> ec2.UserData:
    user_data = ec2.UserData.for_linux()
    agent_config = json.dumps(CLOUDWATCH_AGENT_CONFIG, indent=1)
    user_data.add_commands(
        "set -euxo pipefail",
        "dnf install -y docker amazon-cloudwatch-agent aws-cfn-bootstrap",
        f"cat > {CLOUDWATCH_AGENT_CONFIG_PATH} <<'JSON'\n{agent_config}\nJSON",
        "/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s"
        f" -c file:{CLOUDWATCH_AGENT_CONFIG_PATH}",
        "systemctl enable --now docker",
        'TOKEN="$(curl -fsS -X PUT http://169.254.169.254/latest/api/token -H "X-aws-ec2-metadata-token-ttl-seconds: 300")"',
        'INSTANCE_ID="$(curl -fsS -H "X-aws-ec2-metadata-token: $TOKEN" http://169.254.169.254/latest/meta-data/instance-id)"',
        f'IMAGE="{image_uri}"',
        f'aws ecr get-login-password --region "{region}" | docker login --username AWS --password-stdin "${{IMAGE%%/*}}"',
        'docker pull "$IMAGE"',
        docker_run_command(
            image_uri="$IMAGE", region=region, results_bucket=results_bucket, results_table=results_table, log_group=log_group
        ),
        f"for attempt in $(seq 1 60); do curl -fsS http://127.0.0.1:{APP_PORT}{HEALTH_CHECK_PATH} && exit 0; sleep 5; done",
        f'echo "the web server did not answer {HEALTH_CHECK_PATH} within 5 minutes" >&2',
        f"docker logs {CONTAINER_NAME} >&2 || true",
        "exit 1",
    )
    return user_data
