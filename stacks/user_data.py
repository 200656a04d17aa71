"""User data of the web instances: run the web server from the shared image under Docker, with a restart policy.

The script signals CloudFormation success only once the server answers its health check, and failure as soon as any
step fails (``set -e`` and the exit trap), so a broken deploy rolls back in minutes instead of waiting out the
signal timeout. The signal goes through the AWS CLI, which Amazon Linux 2023 ships, rather than ``cfn-signal``,
which it does not: a failed package install would otherwise leave no way to signal at all.
"""

from __future__ import annotations

import json

from aws_cdk import Stack
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_ec2 as ec2

from stacks.config import APP_PORT, ENVIRONMENT_ENV, HEALTH_CHECK_PATH

CONTAINER_NAME = "firewatch-web"
# How long `docker stop` (and Docker's own shutdown) waits after SIGTERM before SIGKILL. Docker's default is 10 s;
# gunicorn lets in-flight requests finish for up to its graceful_timeout (25 s, web_app/gunicorn.conf.py), so
# this must be longer, or a deploy or scale-in would cut requests off.
CONTAINER_STOP_TIMEOUT_SECONDS = 35
# Open files in the container (soft, hard), set here rather than left to the AMI's Docker defaults: a worker needs
# two per connection (a socket and, for a spooled upload, a file); it raises its soft limit up to the hard one.
CONTAINER_OPEN_FILES = (8192, 65536)

# Memory and root-disk use are not EC2 metrics; the CloudWatch agent publishes them per Auto Scaling group.
AGENT_NAMESPACE = "CWAgent"  # the only namespace the instance role may write metrics to
CLOUDWATCH_AGENT_CONFIG = {
    "agent": {"metrics_collection_interval": 60},
    "metrics": {
        "namespace": AGENT_NAMESPACE,
        "append_dimensions": {"AutoScalingGroupName": "${aws:AutoScalingGroupName}", "InstanceId": "${aws:InstanceId}"},
        "aggregation_dimensions": [["AutoScalingGroupName"]],
        "metrics_collected": {
            "mem": {"measurement": ["mem_used_percent"]},
            "disk": {"measurement": ["used_percent"], "resources": ["/"], "drop_device": True},
        },
    },
}
CLOUDWATCH_AGENT_CONFIG_PATH = "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json"


def docker_run_command(
    *, image_uri: str, region: str, results_bucket: str, results_table: str, log_group: str, environment: str,
    hsts: bool = False,
) -> str:
    """The `docker run` line. The image's ENTRYPOINT is the Lambda runtime's, so the web server replaces it.
    ``environment``: the deployment's envName (a checked shell-safe word), the app's metrics' dimension.
    ``hsts``: the site is served over HTTPS only (a certificate is set), so the app sends Strict-Transport-Security."""
    return " ".join(
        [
            "docker run --detach",
            f"--name {CONTAINER_NAME}",
            "--restart=always",
            f"--stop-timeout {CONTAINER_STOP_TIMEOUT_SECONDS}",
            "--ulimit nofile={}:{}".format(*CONTAINER_OPEN_FILES),
            "--cap-drop=ALL --security-opt=no-new-privileges",  # the server needs no capabilities (port 8080)
            f"--publish {APP_PORT}:{APP_PORT}",
            f"--env FIREWATCH_RESULTS_BUCKET={results_bucket}",
            f"--env FIREWATCH_RESULTS_TABLE={results_table}",
            f"--env {ENVIRONMENT_ENV}={environment}",
            *(["--env FIREWATCH_HSTS=1"] if hsts else []),
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


IMDS = "http://169.254.169.254/latest"


def web_server_user_data(
    *, image_uri: str, region: str, results_bucket: str, results_table: str, log_group: str, environment: str,
    hsts: bool = False,
) -> ec2.UserData:
    user_data = ec2.UserData.for_linux()
    agent_config = json.dumps(CLOUDWATCH_AGENT_CONFIG, indent=1)
    user_data.add_commands(
        # -e: any failing step ends the script, and the exit trap signals its status (see signal_on_exit).
        "set -euxo pipefail",
        # First, so that even a failure of the next steps is signalled with this instance's id.
        f'TOKEN="$(curl -fsS -X PUT {IMDS}/api/token -H "X-aws-ec2-metadata-token-ttl-seconds: 300")"',
        f'INSTANCE_ID="$(curl -fsS -H "X-aws-ec2-metadata-token: $TOKEN" {IMDS}/meta-data/instance-id)"',
        "dnf install -y docker amazon-cloudwatch-agent",
        f"cat > {CLOUDWATCH_AGENT_CONFIG_PATH} <<'JSON'\n{agent_config}\nJSON",
        "/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s"
        f" -c file:{CLOUDWATCH_AGENT_CONFIG_PATH}",
        "systemctl enable --now docker",
        f'IMAGE="{image_uri}"',
        f'aws ecr get-login-password --region "{region}" | docker login --username AWS --password-stdin "${{IMAGE%%/*}}"',
        'docker pull "$IMAGE"',
        docker_run_command(
            image_uri="$IMAGE", region=region, results_bucket=results_bucket, results_table=results_table,
            log_group=log_group, environment=environment, hsts=hsts,
        ),  # fmt: skip
        f"for attempt in $(seq 1 60); do curl -fsS http://127.0.0.1:{APP_PORT}{HEALTH_CHECK_PATH} && exit 0; sleep 5; done",
        f'echo "the web server did not answer {HEALTH_CHECK_PATH} within 5 minutes" >&2',
        f"docker logs {CONTAINER_NAME} >&2 || true",
        "exit 1",
    )
    return user_data


def signal_on_exit(user_data: ec2.UserData, group: autoscaling.AutoScalingGroup) -> None:
    """On exit, signal the group's creation or rolling-update policy: SUCCESS when the script exits 0 (the server
    answered its health check), FAILURE for any other exit status. The unique id is the instance id (the host name
    when the metadata service did not answer). The group grants the role ``cloudformation:SignalResource``."""
    stack = Stack.of(group)
    resource = stack.get_logical_id(group.node.default_child)
    user_data.add_on_exit_commands(
        'if [ "$exitCode" -eq 0 ]; then STATUS=SUCCESS; else STATUS=FAILURE; fi',
        f'aws cloudformation signal-resource --region "{stack.region}" --stack-name "{stack.stack_name}"'
        f' --logical-resource-id {resource} --unique-id "${{INSTANCE_ID:-$(hostname)}}" --status "$STATUS"'
        " || echo 'Failed to send the CloudFormation signal' >&2",
    )
