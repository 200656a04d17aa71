"""Start local S3, the web app and the serverless handler; print what happens; stop it all cleanly."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from types import SimpleNamespace

from inference.contract import RESULT_PREFIX, UPLOAD_PREFIX, result_key_for

from .events import BucketWatcher

ROOT = Path(__file__).resolve().parent.parent
MAX_ATTEMPTS = 3  # like Lambda's async retries: an object that keeps failing is given up on


class DemoError(RuntimeError):
    pass


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="python -m demo", description="Run Firewatch locally: web app, local S3, Lambda handler.")
    p.add_argument("--host", default=env("FIREWATCH_DEMO_HOST", "127.0.0.1"))
    p.add_argument("--web-port", type=int, default=int(env("FIREWATCH_WEB_PORT", "8080")))
    p.add_argument("--s3-port", type=int, default=int(env("FIREWATCH_S3_PORT", "4566")))
    p.add_argument("--bucket", default=env("FIREWATCH_BUCKET", "firewatch-uploads"))
    p.add_argument("--poll-interval", type=float, default=0.25, help="seconds between looks at uploads/ (default 0.25)")
    return p


def ensure_port_free(host: str, port: int, what: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As servers do: connections of a stopped server lingering in TIME_WAIT do not make the port taken.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            raise DemoError(
                f"port {port} on {host} ({what}) is already taken - is another `make demo` running? "
                f"Stop it, or choose another port (--{'web' if 'web' in what else 's3'}-port / "
                f"FIREWATCH_{'WEB' if 'web' in what else 'S3'}_PORT)."
            ) from None


def wait_for(url: str, process: subprocess.Popen | None = None, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise DemoError(f"the process serving {url} exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise DemoError(f"{url} did not answer within {timeout:.0f} s")


def local_aws_environment(endpoint: str) -> dict[str, str]:
    """Point every boto3 client at the local endpoint, with throwaway credentials (never the user's)."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "firewatch-local",
        "AWS_SECRET_ACCESS_KEY": "firewatch-local",
        "AWS_SESSION_TOKEN": "",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_PROFILE": "",
    }


def lambda_context() -> SimpleNamespace:
    """What the Lambda runtime passes as ``context``, for Powertools' logger."""
    return SimpleNamespace(
        function_name="firewatch-local",
        function_version="$LATEST",
        memory_limit_in_mb=1024,
        invoked_function_arn="arn:aws:lambda:us-east-1:000000000000:function:firewatch-local",
        aws_request_id=str(uuid.uuid4()),
        log_group_name="/aws/lambda/firewatch-local",
        log_stream_name="local",
        get_remaining_time_in_millis=lambda: 60_000,
    )


def relay_web_output(stream) -> None:
    """Show what people do on the web app (classifications, errors); skip health checks and panel polls."""
    for line in stream:
        try:
            entry = json.loads(line)
        except ValueError:
            print(f"[web] {line.rstrip()}", flush=True)  # gunicorn's own messages
            continue
        if not isinstance(entry, dict) or "path" not in entry:
            continue
        if entry["method"] == "POST" or entry.get("status", 200) >= 500:
            print(f"[web] {entry['method']} {entry['path']} -> {entry['status']} in {entry.get('duration_ms', 0):.0f} ms", flush=True)


def _terminate_with_parent() -> None:
    """Linux: the web server gets SIGTERM if the demo dies without cleaning up (kill -9), so none is orphaned."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class LocalSystem:
    """The three parts of the demo, started in order and stopped in reverse."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.s3_url = f"http://{args.host}:{args.s3_port}"
        self.web_url = f"http://{args.host}:{args.web_port}"
        self.stop = threading.Event()
        self.s3_server = None
        self.web: subprocess.Popen | None = None

    def start(self) -> None:
        ensure_port_free(self.args.host, self.args.s3_port, "local S3")
        ensure_port_free(self.args.host, self.args.web_port, "web app")
        for name, value in local_aws_environment(self.s3_url).items():
            if value:
                os.environ[name] = value
            else:
                os.environ.pop(name, None)
        os.environ["FIREWATCH_RESULTS_BUCKET"] = self.args.bucket
        # The demo prints one line per classification; the handler's JSON logs and EMF lines stay available
        # by setting these two variables before `make demo`.
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
        os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # local S3's per-request lines

        from moto.server import ThreadedMotoServer

        self.s3_server = ThreadedMotoServer(ip_address=self.args.host, port=self.args.s3_port, verbose=False)
        self.s3_server.start()
        wait_for(self.s3_url + "/moto-api/", timeout=20)

        import boto3

        self.s3 = boto3.client("s3")
        self.s3.create_bucket(Bucket=self.args.bucket)
        sns, sqs = boto3.client("sns"), boto3.client("sqs")
        os.environ["ALERT_TOPIC_ARN"] = sns.create_topic(Name="firewatch-alerts")["TopicArn"]
        self.alerts_queue = sqs.create_queue(QueueName="firewatch-alerts-local")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.alerts_queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=os.environ["ALERT_TOPIC_ARN"], Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
        self.sqs = sqs

        self.web = subprocess.Popen(
            [sys.executable, "-m", "web_app", "--host", self.args.host, "--port", str(self.args.web_port)],
            cwd=ROOT, env=os.environ.copy(), start_new_session=True,  # its own process group: stopped as one
            preexec_fn=_terminate_with_parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        threading.Thread(target=relay_web_output, args=(self.web.stdout,), daemon=True).start()
        wait_for(self.web_url + "/healthz", self.web, timeout=90)

        from lambda_image.handler import handler  # after the environment points at local S3

        self.handler = handler
        self.watcher = BucketWatcher(self.s3, self.args.bucket)
        self.attempts: dict[tuple[str, str], int] = {}

    def banner(self) -> str:
        bucket, s3 = self.args.bucket, self.s3_url
        return "\n".join([
            "Firewatch is running locally:",
            f"  web app     {self.web_url}   (upload a photo in the browser, or POST {self.web_url}/api/v1/classify)",
            f"  local S3    {s3}   bucket {bucket}",
            f"  serverless  the Lambda handler classifies every object put under s3://{bucket}/{UPLOAD_PREFIX}",
            "Try:",
            f"  aws s3 cp photo.jpg s3://{bucket}/{UPLOAD_PREFIX}photo.jpg --endpoint-url {s3}",
            f"  curl -T photo.jpg {s3}/{bucket}/{UPLOAD_PREFIX}photo.jpg          (no AWS CLI needed)",
            f"  aws s3 ls s3://{bucket}/{RESULT_PREFIX} --endpoint-url {s3}",
            "Ctrl-C stops everything.",
        ])

    def serve_forever(self) -> None:
        while not self.stop.is_set():
            if self.web.poll() is not None:
                raise DemoError(f"the web app exited unexpectedly with status {self.web.returncode}")
            for event in self.watcher.new_events():
                self.dispatch(event)
            self.print_alerts()
            self.stop.wait(self.args.poll_interval)

    def dispatch(self, event: dict) -> None:
        record = event["Records"][0]["s3"]["object"]
        from urllib.parse import unquote_plus

        key = unquote_plus(record["key"])
        started = time.perf_counter()
        try:
            self.handler(event, lambda_context())
        except Exception as exc:  # a transient failure: Lambda would retry, so do we
            marker = (key, '"' + record["eTag"] + '"')
            self.attempts[marker] = self.attempts.get(marker, 0) + 1
            if self.attempts[marker] < MAX_ATTEMPTS:
                self.watcher.seen.discard(marker)
            print(f"[serverless] {key}: handler failed ({exc}); attempt {self.attempts[marker]} of {MAX_ATTEMPTS}", flush=True)
            return
        elapsed = (time.perf_counter() - started) * 1000
        result_key = result_key_for(key)
        try:
            result = json.loads(self.s3.get_object(Bucket=self.args.bucket, Key=result_key)["Body"].read())
        except Exception as exc:
            print(f"[serverless] {key}: no result at {result_key} ({exc})", flush=True)
            return
        if "error" in result:
            verdict = f"error {result['error']['code']}: {result['error']['message']}"
        else:
            verdict = f"{result['label'].upper()} (fire probability {result['fire_probability']:.3f})"
        print(f"[serverless] {key} -> {verdict} in {elapsed:.0f} ms -> s3://{self.args.bucket}/{result_key}", flush=True)

    def print_alerts(self) -> None:
        messages = self.sqs.receive_message(QueueUrl=self.alerts_queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        for message in messages:
            print(f"[alert] SNS fire alert: {message['Body']}", flush=True)
            self.sqs.delete_message(QueueUrl=self.alerts_queue, ReceiptHandle=message["ReceiptHandle"])

    def shutdown(self) -> None:
        if self.web is not None and self.web.poll() is None:
            os.killpg(self.web.pid, signal.SIGTERM)  # gunicorn shuts its workers down gracefully
            try:
                self.web.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.web.pid, signal.SIGKILL)
                self.web.wait()
        if self.s3_server is not None:
            self.s3_server.stop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    system = LocalSystem(args)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: system.stop.set())
    try:
        system.start()
        print(system.banner(), flush=True)
        system.serve_forever()
    except DemoError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        system.shutdown()
        print("Firewatch demo stopped.", flush=True)
    return 0
