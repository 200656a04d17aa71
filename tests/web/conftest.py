"""Fixtures for the web target: the Flask app around the session's classifier, and the app under gunicorn."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT

STARTUP_SECONDS = 30


@pytest.fixture(scope="session")
def web_app(classifier):
    from web_app import create_app

    app = create_app(classifier)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(web_app):
    return web_app.test_client()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _limit_open_files(count: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (count, count))


class Server:
    """``python -m web_app`` in a subprocess on a free port; its output goes to a log file."""

    def __init__(self, log_path: Path, *args: str, env: dict | None = None, open_files: int | None = None) -> None:
        """``open_files``: the server's limit on open files, soft and hard (it cannot raise it)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "web_app", "--port", str(self.port), *args],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            preexec_fn=None if open_files is None else partial(_limit_open_files, open_files),
        )
        self._wait_until_healthy()

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"web app exited with {self.process.returncode}:\n{self.log()}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"web app not healthy after {STARTUP_SECONDS} s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


@pytest.fixture(scope="session")
def served(tmp_path_factory):
    """The app under gunicorn (one worker), shared by the HTTP and browser tests of a session."""
    server = Server(tmp_path_factory.mktemp("web") / "gunicorn.log", "--workers", "1")
    yield server
    server.stop()
