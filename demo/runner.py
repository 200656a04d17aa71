"""Start the local AWS endpoint, the web app and the serverless path; print what happens; stop it all cleanly."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
import warnings
from pathlib import Path
from types import SimpleNamespace

from botocore.exceptions import BotoCoreError, ClientError

from inference.contract import RESULT_PREFIX, RESULTS_TABLE_ENV, UPLOAD_PREFIX, UPLOAD_QUEUE_ENV

from .child import READY, stop_group
from .local_aws import DEAD_LETTER_QUEUE, MAX_RECEIVES, RESULTS_TABLE, UPLOAD_QUEUE, VISIBILITY_TIMEOUT_SECONDS, create_resources
from .poller import BATCH_SIZE, BATCHING_WINDOW_SECONDS, QueuePoller
from .report import ResultReader, alert_line, batch_lines, is_test_event, upload_keys

ROOT = Path(__file__).resolve().parent.parent
# What the demo prints goes here; sys.stdout itself becomes the handler's log (see LocalSystem.start).
_OUT = sys.stdout
_OUT_LOCK = threading.Lock()
# Lines of the model runtime and of gunicorn that say nothing about what people do.
_QUIET_WEB_LINES = ("INFO: Created TensorFlow Lite", "[INFO]")


def say(line: str) -> None:
    with _OUT_LOCK:
        _OUT.write(line + "\n")
        _OUT.flush()


class DemoError(RuntimeError):
    pass


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="python -m demo",
        description="Run Firewatch locally: the web app, a local AWS endpoint (S3, SQS, DynamoDB, SNS) and the real "
                    "Lambda handler, fed by the upload queue as Lambda's event source mapping would feed it.")
    p.add_argument("--host", default=env("FIREWATCH_DEMO_HOST", "127.0.0.1"),
                   help="address both servers listen on (default 127.0.0.1, or $FIREWATCH_DEMO_HOST)")
    p.add_argument("--web-port", type=int, default=int(env("FIREWATCH_WEB_PORT", "8080")),
                   help="port of the web app (default 8080, or $FIREWATCH_WEB_PORT)")
    p.add_argument("--s3-port", type=int, default=int(env("FIREWATCH_S3_PORT", "4566")),
                   help="port of the local AWS endpoint: S3, SQS, DynamoDB and SNS (default 4566, or $FIREWATCH_S3_PORT)")
    p.add_argument("--bucket", default=env("FIREWATCH_BUCKET", "firewatch-uploads"),
                   help="name of the upload bucket (default firewatch-uploads, or $FIREWATCH_BUCKET)")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE,
                   help=f"most upload messages per handler invocation (default {BATCH_SIZE}, as deployed)")
    p.add_argument("--batching-window", type=float, default=BATCHING_WINDOW_SECONDS,
                   help=f"seconds to wait for a fuller batch (default {BATCHING_WINDOW_SECONDS:g}, as deployed)")
    p.add_argument("--visibility-timeout", type=int, default=VISIBILITY_TIMEOUT_SECONDS,
                   help=f"seconds before a failed message is retried (default {VISIBILITY_TIMEOUT_SECONDS})")
    p.add_argument("--max-receives", type=int, default=MAX_RECEIVES,
                   help=f"receives before a message that keeps failing goes to the dead-letter queue (default {MAX_RECEIVES})")
    p.add_argument("--function-log", default=os.devnull, metavar="PATH",
                   help="file for the handler's own JSON logs and metric lines (default: discarded)")
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
    """Show what people do on the web app (classifications, errors); skip health checks, panel polls, banners."""
    for line in stream:
        try:
            entry = json.loads(line)
        except ValueError:
            if line.strip() and not any(quiet in line for quiet in _QUIET_WEB_LINES):
                say(f"[web] {line.rstrip()}")  # gunicorn's warnings and errors
            continue
        if not isinstance(entry, dict) or "path" not in entry:
            continue
        if entry["method"] == "POST" or entry.get("status", 200) >= 500:
            say(f"[web] {entry['method']} {entry['path']} -> {entry['status']} in {entry.get('duration_ms', 0):.0f} ms")


@contextlib.contextmanager
def native_stderr_silenced():
    """LiteRT prints a line on stderr from C++ when its first model runs: send fd 2 to /dev/null meanwhile."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _tiny_png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (90, 120, 60)).save(buffer, format="PNG")
    return buffer.getvalue()


def _terminate_with_parent() -> None:
    """Linux: the web server gets SIGTERM if the demo dies without cleaning up (kill -9), so none is orphaned."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class LocalSystem:
    """The parts of the demo, started in order and stopped in reverse."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.s3_url = f"http://{args.host}:{args.s3_port}"
        self.web_url = f"http://{args.host}:{args.web_port}"
        self.stop = threading.Event()
        self.aws_server: subprocess.Popen | None = None
        self.web: subprocess.Popen | None = None
        self.function_log = None

    def start(self) -> None:
        ensure_port_free(self.args.host, self.args.s3_port, "local AWS endpoint")
        ensure_port_free(self.args.host, self.args.web_port, "web app")
        for name, value in local_aws_environment(self.s3_url).items():
            if value:
                os.environ[name] = value
            else:
                os.environ.pop(name, None)
        # Powertools warns on every invocation that adds no metric (the test event, a batch of duplicates).
        warnings.filterwarnings("ignore", message="No application metrics to publish")

        # A process of its own: in this one, the endpoint would share the interpreter lock with the handler, whose
        # requests would then wait on the handler itself (a 200-upload backlog drained at 7.2 images/s that way, 8.9
        # like this, on the 2-core development machine).
        self.aws_server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", self.args.host, "-p", str(self.args.s3_port)],
            cwd=ROOT, start_new_session=True, preexec_fn=_terminate_with_parent,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,  # one line per request otherwise
        )
        wait_for(self.s3_url + "/moto-api/", self.aws_server, timeout=60)

        import boto3

        session = boto3.session.Session()
        self.resources = create_resources(session, self.args.bucket, self.args.max_receives, self.args.visibility_timeout)
        self.s3, self.sqs = session.client("s3"), session.client("sqs")
        os.environ.update({
            "FIREWATCH_BUCKET": self.args.bucket,  # the handler processes this bucket's uploads only, as deployed
            "ALERT_TOPIC_ARN": self.resources.alert_topic_arn,
            RESULTS_TABLE_ENV: self.resources.table,
            UPLOAD_QUEUE_ENV: self.resources.queue_url,
            "FIREWATCH_RESULTS_BUCKET": self.args.bucket,  # the page names it; it reads the table, as deployed
        })
        self.results = ResultReader(self.s3, session.client("dynamodb"), self.args.bucket, self.resources.table)

        self.web = subprocess.Popen(
            [sys.executable, "-m", "web_app", "--host", self.args.host, "--port", str(self.args.web_port)],
            cwd=ROOT, env=os.environ.copy(), start_new_session=True,  # its own process group: stopped as one
            preexec_fn=_terminate_with_parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        threading.Thread(target=relay_web_output, args=(self.web.stdout,), daemon=True).start()

        # In Lambda, what the function prints (JSON logs, EMF metric lines) goes to CloudWatch Logs; here, to the
        # function log, so that the demo's own lines stay readable.
        self.function_log = open(self.args.function_log, "a", buffering=1, encoding="utf-8")
        sys.stdout = self.function_log
        from lambda_image.handler import classifier, handler  # after the environment points at the local endpoint

        with native_stderr_silenced():
            classifier().classify(_tiny_png())  # load the model now, not on the first upload
        self.poller = QueuePoller(self.sqs, self.resources.queue_url, handler, lambda_context,
                                  batch_size=self.args.batch_size, batching_window=self.args.batching_window)
        wait_for(self.web_url + "/healthz", self.web, timeout=90)

    def banner(self) -> str:
        bucket, endpoint, web = self.args.bucket, self.s3_url, self.web_url
        return "\n".join([
            "Firewatch is running locally:",
            f"  web app      {web}   (upload photos in the browser, or POST {web}/api/v1/classify)",
            f"  local AWS    {endpoint}   S3 bucket {bucket}, SQS queue {UPLOAD_QUEUE} (dead letters: "
            f"{DEAD_LETTER_QUEUE}), DynamoDB table {RESULTS_TABLE}",
            f"  serverless   every object put under s3://{bucket}/{UPLOAD_PREFIX} is queued, and the Lambda handler "
            f"classifies it into s3://{bucket}/{RESULT_PREFIX}",
            "Try (the local endpoint takes any credentials; the AWS CLI needs some, so set dummy ones):",
            "  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1",
            f"  aws s3 cp photo.jpg s3://{bucket}/{UPLOAD_PREFIX}photo.jpg --endpoint-url {endpoint}",
            f"  curl -T photo.jpg {endpoint}/{bucket}/{UPLOAD_PREFIX}photo.jpg   # no AWS CLI needed",
            f"  curl {endpoint}/{bucket}/{RESULT_PREFIX}photo.jpg.json   # the result, a second later",
            f"  aws s3 ls s3://{bucket}/{RESULT_PREFIX} --endpoint-url {endpoint}",
            f"{READY}.",
        ])

    def serve_forever(self) -> None:
        while not self.stop.is_set():
            if self.web.poll() is not None:
                raise DemoError(f"the web app exited unexpectedly with status {self.web.returncode}")
            try:
                self.handle_one_batch()
                self.print_alerts()
            except (BotoCoreError, ClientError) as error:  # the local endpoint hiccuped: say so, go on
                say(f"[serverless] the local endpoint failed a request ({error}); trying again")
                self.stop.wait(1)

    def handle_one_batch(self) -> bool:
        """Deliver one batch of the upload queue to the handler and print what became of it; False when idle."""
        outcome = self.poller.poll_once()
        if outcome is None:
            return False
        keys = [key for message in outcome.succeeded for key in upload_keys(message.body)]
        results = self.results.read(keys) if keys else {}
        for line in batch_lines(outcome, results, self.args.max_receives, self.args.visibility_timeout):
            say(line)
        for message in outcome.succeeded:
            if not upload_keys(message.body) and not is_test_event(message.body):
                say(f"[serverless] message {message.message_id} is not an S3 notification; the handler passed it over")
        return True

    def print_alerts(self) -> None:
        messages = self.sqs.receive_message(QueueUrl=self.resources.alert_printer_url, MaxNumberOfMessages=10,
                                            WaitTimeSeconds=0).get("Messages", [])
        for message in messages:
            say(alert_line(message["Body"]))
            self.sqs.delete_message(QueueUrl=self.resources.alert_printer_url, ReceiptHandle=message["ReceiptHandle"])

    def shutdown(self) -> None:
        for child in (self.web, self.aws_server):  # gunicorn shuts its workers down gracefully on SIGTERM
            if child is not None:
                stop_group(child, signal.SIGTERM, timeout=15)
        if self.function_log is not None:
            sys.stdout = sys.__stdout__
            self.function_log.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    system = LocalSystem(args)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: system.stop.set())
    try:
        system.start()
        say(system.banner())
        system.serve_forever()
    except DemoError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        system.shutdown()
        say("Firewatch demo stopped.")
    return 0
