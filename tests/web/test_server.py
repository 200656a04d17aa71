"""The app under gunicorn, as ``python -m web_app`` serves it: real HTTP, real config, real logs."""

from __future__ import annotations

import http.client
import json
import os
import runpy
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from tests.conftest import ROOT

from .conftest import Server

CONFIG_FILE = ROOT / "web_app" / "gunicorn.conf.py"


def test_health_and_classify_over_http(served, classifier, fire_photo):
    assert requests.get(served.url + "/healthz", timeout=5).json()["model_version"] == classifier.version
    data = fire_photo.read_bytes()
    response = requests.post(served.url + "/api/v1/classify", files={"image": ("fire.jpg", data)}, timeout=10)
    assert response.status_code == 200
    assert response.json() == classifier.classify(data).to_dict("fire.jpg", with_certainty=True)


def test_oversized_upload_gets_a_json_413_over_http(served, classifier):
    body = b"\xff\xd8\xff" + bytes(classifier.limits.max_bytes + 100 * 1024)
    response = requests.post(served.url + "/api/v1/classify", files={"image": ("big.jpg", body)}, timeout=30)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    # The server is still fine afterwards.
    assert requests.get(served.url + "/healthz", timeout=5).status_code == 200


def test_connections_are_kept_alive(served, nofire_photo):
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    try:
        sockets = []
        for method, path in (("GET", "/healthz"), ("GET", "/api/v1/model"), ("GET", "/healthz")):
            connection.request(method, path)
            response = connection.getresponse()
            response.read()
            assert response.status == 200 and not response.will_close
            sockets.append(connection.sock)
        assert sockets[0] is sockets[1] is sockets[2]  # three requests, one TCP connection
    finally:
        connection.close()


def _access_lines(served: Server, user_agent: str, count: int = 1) -> list[dict]:
    """The access log lines of the ``count`` requests sent with ``user_agent`` (waiting, since the worker writes each
    line just after answering)."""
    deadline = time.monotonic() + 10
    while True:
        records = [json.loads(line) for line in served.log().splitlines() if line.startswith("{")]
        found = [r for r in records if r["user_agent"] == user_agent]
        if len(found) >= count or time.monotonic() > deadline:
            assert len(found) == count, served.log()
            return found
        time.sleep(0.1)


def test_access_log_is_json_lines(served):
    requests.get(served.url + "/healthz?probe=1", headers={"User-Agent": 'quote"agent'}, timeout=5)
    probe = _access_lines(served, 'quote"agent')
    assert probe[-1]["path"] == "/healthz"
    assert probe[-1]["status"] == 200 and probe[-1]["method"] == "GET" and probe[-1]["duration_ms"] >= 0
    assert "classified" not in probe[-1], "verdict counts only on requests that classified photos"


def test_access_log_counts_the_verdicts_of_a_request(served, classifier, fire_photo, nofire_photo):
    """What the web tier's metric filters count: per request, photos classified, fire verdicts, borderline verdicts."""
    from inference import BORDERLINE

    photos = [fire_photo.read_bytes(), nofire_photo.read_bytes()]
    verdicts = [classifier.classify(data) for data in photos]
    agent = {"User-Agent": "verdict-count-probe"}
    requests.post(served.url + "/api/v1/classify", files={"image": ("a.jpg", photos[0])}, headers=agent, timeout=10)
    form = [("image", ("a.jpg", photos[0])), ("image", ("b.jpg", photos[1])), ("image", ("c.jpg", b"not an image"))]
    assert requests.post(served.url + "/", files=form, headers=agent, timeout=10).status_code == 200
    requests.post(served.url + "/api/v1/classify", files={"image": ("c.jpg", b"not an image")}, headers=agent, timeout=10)

    # Told apart by path and status, not by order: a line is written once its response has gone, so a busy machine
    # can log the next request's first.
    lines = {(line["path"], line["status"]): line for line in _access_lines(served, "verdict-count-probe", count=3)}
    api, page, refused = lines[("/api/v1/classify", 200)], lines[("/", 200)], lines[("/api/v1/classify", 415)]
    first = verdicts[0]
    assert {k: api[k] for k in ("classified", "fire", "borderline")} == {
        "classified": 1, "fire": int(first.is_fire), "borderline": int(first.certainty == BORDERLINE)}
    assert {k: page[k] for k in ("classified", "fire", "borderline")} == {
        "classified": 2, "fire": sum(v.is_fire for v in verdicts),
        "borderline": sum(v.certainty == BORDERLINE for v in verdicts)}, "the unreadable photo is not counted"
    assert refused["status"] == 415 and "classified" not in refused
    assert api["environment"] == page["environment"] == "local", "FIREWATCH_ENVIRONMENT unset: a local run"


def test_the_verdict_counts_name_the_deployment(monkeypatch, classifier, fire_photo):
    """The web metric filters take the environment dimension from the line: each deployment's dashboard its own."""
    from web_app.logs import VERDICTS, count_verdict

    monkeypatch.setenv("FIREWATCH_ENVIRONMENT", "prod")
    environ: dict = {}
    prediction = classifier.classify(fire_photo.read_bytes())
    count_verdict(environ, prediction)
    count_verdict(environ, prediction)
    assert environ[VERDICTS] == {"classified": 2, "fire": 2 * prediction.is_fire,
                                 "borderline": 2 * (prediction.certainty == "borderline"), "environment": "prod"}  # fmt: skip


def _exchange(served: Server, request: bytes, then: bytes = b"") -> bytes:
    """Everything the server sends back on one connection for ``request`` (and ``then``, sent after a pause)."""
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(request)
        if then:
            time.sleep(0.5)
            try:
                sock.sendall(then)
            except OSError:
                pass  # already closed: the point of the test
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def test_a_malformed_chunked_body_is_a_client_error_answered_once(served):
    """gunicorn raises on a malformed chunked body as the form parser reads it: that was a 500, counted towards the
    load balancer's 5xx alarm by any client. And where the app answers without reading the body, gunicorn read the
    rest as the next request and sent a second, unrequested 400, which a pipelining client took for its next answer."""
    bad_chunks = b"5\r\nhelloXX0\r\n\r\n"
    upload = (b"POST /api/v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n" + bad_chunks)  # fmt: skip
    answer = _exchange(served, upload)
    assert answer.startswith(b"HTTP/1.1 400 ") and b'"code": "bad_request"' in answer.replace(b'":"', b'": "')
    assert b"Connection: close" in answer
    unread = b"POST /api/v1/model HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + bad_chunks
    answer = _exchange(served, unread, then=b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.count(b"HTTP/1.1 ") == 1 and answer.startswith(b"HTTP/1.1 405 "), answer[:400]
    assert b"Connection: close" in answer
    assert "Traceback" not in served.log()


def test_an_error_answered_before_a_large_body_is_read_closes_the_connection(served):
    """gunicorn drains at most 64 kB of an unread body before it gives up on the connection: saying keep-alive and
    then closing is what makes a load balancer answer the next request on it with a 502."""
    body = b"x" * 200_000
    answer = _exchange(served, b"POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n" + body)
    assert answer.startswith(b"HTTP/1.1 404 ") and b"Connection: close" in answer
    answer = _exchange(served, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 "), "an ordinary request on a fresh connection"


def test_config_suits_the_load_balancer(monkeypatch):
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    config = runpy.run_path(str(CONFIG_FILE))
    assert config["keepalive"] > 60  # the ALB's idle timeout
    # gunicorn's threaded worker (sync workers ignore keepalive), with reads that time out.
    from gunicorn.util import load_class
    from gunicorn.workers.gthread import ThreadWorker

    assert issubclass(load_class(config["worker_class"]), ThreadWorker)
    assert config["threads"] >= 32  # slow clients only cost threads, and each is cut off in time
    assert 0 < config["max_requests_jitter"] < config["max_requests"]
    assert config["workers"] == os.cpu_count()
    assert 0 < config["graceful_timeout"] <= config["timeout"]
    assert config["wsgi_app"] == "web_app.wsgi:app"
    assert config["logger_class"] == "web_app.logs.JsonAccessLogger"


def test_cli_help_names_its_options():
    result = subprocess.run([sys.executable, "-m", "web_app", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for option in ("--host", "--port", "--workers"):
        assert option in result.stdout


def test_cli_defaults_to_localhost_8080():
    from web_app.server import build_parser

    args = build_parser().parse_args([])
    assert (args.host, args.port, args.workers) == ("127.0.0.1", 8080, None)


@pytest.mark.parametrize("workers", ["0", "-2", "many"])
def test_a_worker_count_that_is_not_positive_is_refused_like_the_cli_s_threads(workers, capsys):
    from inference import cli
    from web_app.server import build_parser

    messages = []
    for parser, option in ((build_parser(), "--workers"), (cli.build_parser(), "--threads")):
        with pytest.raises(SystemExit):
            parser.parse_args([option, workers, *(["photo.jpg"] if option == "--threads" else [])])
        messages.append(capsys.readouterr().err.splitlines()[-1].split(": ")[-1])
    assert messages[0] == messages[1] == f"must be a positive whole number, got {workers!r}"


def test_settings_apply_in_gunicorns_own_order(monkeypatch):
    """The config file, then $GUNICORN_CMD_ARGS, then this command's options: gunicorn's order, applied by gunicorn."""
    from gunicorn.app.wsgiapp import WSGIApplication

    from web_app.server import PROG, build_parser, gunicorn_arguments

    monkeypatch.setenv("GUNICORN_CMD_ARGS", "--threads 3 --bind 10.0.0.1:1 --workers 5")
    monkeypatch.setattr(sys, "argv", [PROG, *gunicorn_arguments(build_parser().parse_args(["--port", "9999", "--workers", "2"]))])
    cfg = WSGIApplication("usage", prog=PROG).cfg
    assert cfg.keepalive == 65  # the file
    assert cfg.threads == 3  # the environment over the file's 32
    assert (cfg.bind, cfg.workers) == (["127.0.0.1:9999"], 2)  # the command over the environment


def test_bad_port_is_a_usage_error():
    command = [sys.executable, "-m", "web_app", "--port", "70000"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "port" in result.stderr


def test_sigterm_shuts_down_gracefully(tmp_path, nofire_photo):
    server = Server(tmp_path / "gunicorn.log", "--workers", "2")
    try:
        # /healthz answers once the first worker is up; the second may still be booting on a busy machine.
        deadline = time.monotonic() + 15
        while len(_children(server.process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(_children(server.process.pid)) == 2
        requests.post(server.url + "/api/v1/classify", files={"image": ("a.jpg", nofire_photo.read_bytes())}, timeout=10)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=15) == 0
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert "Handling signal: term" in log and "Shutting down: Master" in log


def test_sigterm_does_not_wait_for_a_silent_connection(tmp_path):
    """A stopping worker closes a connection that has sent nothing after 2 s (gthread's grace for kept-alive ones),
    not after the 10 s read grace."""
    import socket

    server = Server(tmp_path / "gunicorn.log", "--workers", "1")
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30):
            time.sleep(0.5)  # accepted: the event loop awaits its request
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            assert server.process.wait(timeout=60) == 0
            took = time.monotonic() - started
    finally:
        server.stop()
    assert took < 6, f"the server took {took:.1f} s to stop beside one silent connection"


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def test_server_errors_carry_the_security_headers_and_no_banner(served):
    """gunicorn answers some requests itself, before the app: 400, 414, 417, 431, 501. They look like the app's
    errors, each with its own code and message."""
    from inference.contract import SERVER_ERROR_CODES
    from web_app.security import SECURITY_HEADERS

    cases = {
        400: b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        414: b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        431: b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(120)) + b"\r\n",
        417: b"POST /api/v1/classify HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx",
        501: b"POST /api/v1/classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: br\r\n\r\n",
    }
    messages = set()
    for status, raw in cases.items():
        head, body = _raw_exchange(served.port, raw)
        assert head[0].split()[1] == str(status), head
        headers = dict(line.split(": ", 1) for line in head[1:])
        assert {name: headers.get(name) for name in SECURITY_HEADERS} == SECURITY_HEADERS, (status, headers)
        assert "Server" not in headers and b"gunicorn" not in body.lower()
        error = json.loads(body)["error"]
        assert error["code"] == SERVER_ERROR_CODES[status] and error["message"], (status, body)
        messages.add(error["message"])
    assert len(messages) == len(cases)  # each says what was wrong with the request


def test_app_responses_have_no_server_banner(served):
    for path in ("/healthz", "/", "/nowhere"):
        response = requests.get(served.url + path, timeout=5)
        assert "Server" not in response.headers, (path, response.headers)
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def _raw_exchange(port: int, raw: bytes) -> tuple[list[str], bytes]:
    """Send ``raw`` bytes, read the answer until the server closes: (status line + header lines, body)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.decode("latin-1").split("\r\n"), body
