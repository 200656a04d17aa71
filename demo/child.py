"""``python -m demo`` as a child process on free ports: what the screenshot, the drain benchmark and the end-to-end
tests start and stop. Also the one way the demo stops a process group of its own."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READY = "Ctrl-C stops everything"  # the banner's last line: everything is up


class DemoFailed(RuntimeError):
    """The demo did not print what was awaited: it exited, or took too long. The message ends with its output."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop_group(process: subprocess.Popen, first: int = signal.SIGINT, timeout: float = 30) -> None:
    """Signal a child started in a session of its own, with its whole group; SIGKILL what is still there after
    ``timeout`` seconds, and reap it."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, first)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class ChildDemo:
    """``python -m demo ARGS`` with its own process group, on free ports; its output is read line by line."""

    def __init__(self, *args: str, web_port: int | None = None, aws_port: int | None = None) -> None:
        self.web_port, self.aws_port = web_port or free_port(), aws_port or free_port()
        self.web_url, self.endpoint = f"http://127.0.0.1:{self.web_port}", f"http://127.0.0.1:{self.aws_port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "demo", "--web-port", str(self.web_port), "--s3-port", str(self.aws_port), *args],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        self.lines: list[str] = []  # every line read so far
        # A thread owns the pipe: select() on it would miss lines already buffered inside the text wrapper.
        self._incoming: queue.Queue[str] = queue.Queue()
        self._ended = threading.Event()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.process.stdout:
            self._incoming.put(line)
        self._ended.set()

    def read_until(self, text: str, timeout: float, echo: bool = False) -> str:
        """The first line from now on that holds ``text``; DemoFailed if the demo ends or ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not (self._ended.is_set() and self._incoming.empty()):
            try:
                line = self._incoming.get(timeout=0.1)
            except queue.Empty:
                continue
            self.lines.append(line)
            if echo:
                print(line, end="", flush=True)
            if text in line:
                return line
        ended = f"exited with status {self.process.poll()}" if self._ended.is_set() else f"did not print it within {timeout:.0f} s"
        raise DemoFailed(f"waiting for {text!r}, the demo {ended}; its output so far:\n{''.join(self.lines)}")

    def client(self, service: str):
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test")

    def stop(self, timeout: float = 30) -> None:
        """Ctrl-C's signal, as a person stops it."""
        stop_group(self.process, signal.SIGINT, timeout)
