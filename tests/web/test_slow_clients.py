"""Slow clients against the server ``python -m web_app`` starts: reads time out, and /healthz keeps answering.

Real gunicorn on loopback; every client and loop is bounded in time.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from .conftest import Server
from benchmarks.slow_clients import probe_health, read_response, start_tricklers, stop_tricklers

TRICKLERS = 32
PROBES = 20


def test_health_answers_while_32_clients_trickle_bodies(tmp_path):
    server = Server(tmp_path / "gunicorn.log")  # the default worker count and threads
    tricklers = start_tricklers(server.port, TRICKLERS, interval=2.0, lifetime=30)
    try:
        time.sleep(1.0)  # every trickler has connected and sent its head
        times = probe_health(server.url, PROBES, interval=0.25)
    finally:
        stop_tricklers(tricklers)
        server.stop()
    answered = [t for t in times if t is not None]
    assert len(answered) >= 0.9 * PROBES, f"{len(answered)} of {PROBES} probes answered within 1 s: {times}"


# A body buffer of about 100 bytes: full once a request head has come, so every body goes on to disk.
FULL_BUFFER = {"FIREWATCH_BODY_BUFFER_MB": "0.0001"}


@pytest.mark.parametrize("framing", [b"Content-Length: 1000", b"Transfer-Encoding: chunked"])
@pytest.mark.parametrize("buffer", [{}, FULL_BUFFER], ids=["in-memory", "on-disk"])
def test_a_body_that_trickles_is_cut_off_with_408_and_logged(tmp_path, framing, buffer):
    """Read by the event loop, of a Content-Length or chunked, in its memory or on disk: the app's answer, and an
    access log line like its own."""
    server = Server(tmp_path / "gunicorn.log", "--workers", "1", env={"FIREWATCH_READ_GRACE_SECONDS": "1", **buffer})
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"POST /api/v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                         b"X-Forwarded-For: 203.0.113.9\r\n%s\r\n\r\n" % framing)
            answer = _trickle_until_answered(sock, b"1\r\n-\r\n" if b"chunked" in framing else b"-", seconds=8)
    finally:
        server.stop()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer
    assert b'"code":"request_timeout"' in body.replace(b" ", b"")
    assert b"connection: close" in head.lower()
    lines = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.startswith("{") and '"status"' in line]
    cut, = [line for line in lines if line["status"] == 408]
    assert cut["method"] == "POST" and cut["path"] == "/api/v1/classify" and cut["forwarded_for"] == "203.0.113.9"
    assert cut["request_bytes"] == (1000 if b"1000" in framing else 0) and cut["bytes_sent"] > 0


def test_a_body_that_trickles_behind_a_head_gunicorn_refuses_gets_gunicorns_answer(tmp_path):
    """The event loop reads the body of any head, and cuts it off when it falls behind: but the client hears what
    gunicorn says to its head (400 here), as it would had the body arrived in time, not a 408 logged as a request."""
    server = Server(tmp_path / "gunicorn.log", "--workers", "1", env={"FIREWATCH_READ_GRACE_SECONDS": "1"})
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"P@ST /api/v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
            answer = _trickle_until_answered(sock, b"-", seconds=8)
    finally:
        server.stop()
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:300]


def test_a_head_that_trickles_is_cut_off(tmp_path):
    server = Server(tmp_path / "gunicorn.log", "--workers", "1", env={"FIREWATCH_READ_GRACE_SECONDS": "1"})
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")
            started = time.monotonic()
            answer = _trickle_until_answered(sock, b"X-Slow: 1\r\n", seconds=8)
            took = time.monotonic() - started
    finally:
        server.stop()
    assert answer == b"" and took < 8  # closed, without answering a request it never got


def test_silent_connections_take_no_thread(tmp_path):
    """Connections that send nothing wait in the worker's event loop: with 2 threads, 8 of them leave /healthz
    answering at once (gunicorn's gthread gave each a thread for its first 5 s)."""
    server = Server(tmp_path / "gunicorn.log", "--workers", "1", env={"FIREWATCH_WEB_THREADS": "2"})
    silent = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(8)]
    times = _health_beside(server, silent)
    assert None not in times, f"/healthz took {times} s (None: over 1 s) beside 8 silent connections"


def test_heads_that_trickle_take_no_thread(tmp_path):
    """A request head is read by the event loop until it is whole: 8 clients trickling heads on 2 threads, each on
    a new connection and then on the same one kept alive, leave /healthz answering at once, and each gets its
    answers."""
    server = Server(tmp_path / "gunicorn.log", "--workers", "1", env={"FIREWATCH_WEB_THREADS": "2"})
    answers: list[bytes] = []

    def trickle_a_head(sock: socket.socket, last: bool) -> None:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        for _ in range(4):
            time.sleep(0.25)
            sock.sendall(b"X-Slow: 1\r\n")
        sock.sendall(b"Connection: close\r\n\r\n" if last else b"\r\n")

    def trickle_two_requests() -> None:  # the second on the kept-alive connection
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            trickle_a_head(sock, last=False)
            if read_response(sock):
                trickle_a_head(sock, last=True)
                answers.append(_read_until_closed(sock))

    tricklers = [threading.Thread(target=trickle_two_requests, daemon=True) for _ in range(8)]
    try:
        for trickler in tricklers:
            trickler.start()
        time.sleep(0.5)  # every trickler has sent part of its head
        times = probe_health(server.url, 4, interval=0.25)
        for trickler in tricklers:
            trickler.join(timeout=15)
    finally:
        server.stop()
    assert None not in times, f"/healthz took {times} s (None: over 1 s) beside 8 trickled heads"
    assert len(answers) == 8 and all(answer.startswith(b"HTTP/1.1 200 ") for answer in answers), answers


def test_the_start_of_a_pipelined_head_takes_no_thread(tmp_path):
    """A whole request and the first byte of the next in one send: the leftover byte waits for the rest of its head
    in the event loop too (gthread gave it a thread, which then waited out the read grace)."""
    server = Server(tmp_path / "gunicorn.log", "--workers", "1", env={"FIREWATCH_WEB_THREADS": "2"})
    held = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(4)]
    try:
        for sock in held:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nG")
        for sock in held:
            assert read_response(sock)
        times = probe_health(server.url, 4, interval=0.25)
        for sock in held:  # the pipelined request is still answered once its head ends
            sock.sendall(b"ET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock)
    finally:
        for sock in held:
            sock.close()
        server.stop()
    assert None not in times, f"/healthz took {times} s (None: over 1 s) beside 4 pipelined head starts"


@pytest.mark.parametrize("framing, buffer", [("length", {}), ("chunked", {}), ("continue", {}), ("http/1.0", {}),
                                             ("length", FULL_BUFFER), ("chunked", FULL_BUFFER)],
                         ids=["length", "chunked", "continue", "http/1.0", "length-buffer-full", "chunked-buffer-full"])
def test_bodies_that_trickle_take_no_thread(tmp_path, framing, buffer):
    """A body is read by the event loop too, of a Content-Length (in HTTP/1.0 too), chunked, or sent after
    ``Expect: 100-continue``, and once the worker's body buffer is full, on to disk:
    8 clients trickling bodies on 2 threads leave /healthz answering at once (each held a thread until it was cut
    off; chunked and Expect ones did until the event loop read them too, and any did that found the buffer full
    until bodies went on to disk)."""
    server = Server(tmp_path / "gunicorn.log", "--workers", "1", env={"FIREWATCH_WEB_THREADS": "2", **buffer})
    tricklers = start_tricklers(server.port, 8, interval=0.5, lifetime=20, framing=framing)
    try:
        time.sleep(1.0)  # every trickler has sent its head and some of its body
        times = probe_health(server.url, 4, interval=0.25)
    finally:
        stop_tricklers(tricklers)
        server.stop()
    assert None not in times, f"/healthz took {times} s (None: over 1 s) beside 8 trickled bodies"


@pytest.mark.parametrize("chunk, buffer", [(None, {}), (4096, {}), (1, {}), (None, FULL_BUFFER), (4096, FULL_BUFFER),
                                           (1, FULL_BUFFER)],
                         ids=["length", "chunked", "chunks-of-a-byte", "length-on-disk", "chunked-on-disk",
                              "chunks-of-a-byte-on-disk"])
def test_a_photo_that_arrives_in_pieces_is_classified_and_the_next_request_answered(tmp_path, fire_photo, chunk,
                                                                                     buffer):
    """The event loop's bytes reach the app whole and in order, and a request pipelined behind the body is
    answered after it: of a Content-Length, chunked, and in chunks of a byte; held in memory, or (the buffer full)
    mostly on disk."""
    server = Server(tmp_path / "gunicorn.log", "--workers", "1", env=buffer)
    photo = fire_photo.read_bytes()
    body = (b'--b\r\nContent-Disposition: form-data; name="image"; filename="fire.jpg"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n" + photo + b"\r\n--b--\r\n")
    request = b"POST /api/v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
    if chunk:
        chunks = [body[i:i + chunk] for i in range(0, len(body), chunk)]
        request += b"Transfer-Encoding: chunked\r\n\r\n" + b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)
        request += b"0\r\n\r\n"
    else:
        request += b"Content-Length: %d\r\n\r\n" % len(body) + body
    request += b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            pieces = [request[i:i + len(request) // 5 + 1] for i in range(0, len(request), len(request) // 5 + 1)]
            for piece in pieces:
                sock.sendall(piece)
                time.sleep(0.2)
            classified, health = _read_responses(sock, 2)
    finally:
        server.stop()
    assert classified.startswith(b"HTTP/1.1 200 "), classified[:300]
    assert b'"source":"fire.jpg"' in classified.replace(b" ", b"") and b'"label":"fire"' in classified.replace(b" ", b"")
    assert health.startswith(b"HTTP/1.1 200 ") and b'"status":"ok"' in health.replace(b" ", b"")


def test_an_upload_that_expects_100_continue_gets_it_and_its_answer(tmp_path, fire_photo):
    """The client waits for 100 Continue before it sends the body, so the event loop must not wait for the body."""
    server = Server(tmp_path / "gunicorn.log", "--workers", "1")
    body = (b'--b\r\nContent-Disposition: form-data; name="image"; filename="fire.jpg"\r\n\r\n'
            + fire_photo.read_bytes() + b"\r\n--b--\r\n")
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"POST /api/v1/classify HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                         b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: %d\r\n\r\n" % len(body))
            interim = sock.recv(100)
            sock.sendall(body)
            answer, = _read_responses(sock, 1)
    finally:
        server.stop()
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n", interim  # once: sent by the event loop, not gunicorn too
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]


def test_a_chunked_body_whose_framing_is_broken_is_refused_at_once(tmp_path):
    """The event loop stops reading where the framing breaks, and gunicorn answers 400 (no wait for more bytes)."""
    server = Server(tmp_path / "gunicorn.log", "--workers", "1")
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            started = time.monotonic()
            sock.sendall(b"POST /api/v1/classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"5\r\nhello\r\nZZ\r\n")
            answer = _read_until_closed(sock)
            took = time.monotonic() - started
    finally:
        server.stop()
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:300]
    assert took < 2, f"answered after {took:.1f} s"


def test_a_chunk_over_the_upload_limit_is_answered_413_at_once_and_logged(tmp_path):
    """Its thread would read the body at the client's pace up to the app's limit (21 MB at 16 KiB/s: 21 minutes) before
    the app could refuse it; the event loop refuses it from the chunk's size, and the one thread stays free."""
    server = Server(tmp_path / "gunicorn.log", "--workers", "1", env={"FIREWATCH_WEB_THREADS": "1"})
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            started = time.monotonic()
            sock.sendall(b"POST /api/v1/classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                         b"Content-Type: multipart/form-data; boundary=b\r\n\r\n%x\r\n--b\r\n" % (64 * 1024 * 1024))
            answer = _read_until_closed(sock)
            took = time.monotonic() - started
        times = probe_health(server.url, 2, interval=0.1)
    finally:
        server.stop()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ") and b"connection: close" in head.lower(), answer[:300]
    assert json.loads(body)["error"]["code"] == "too_large" and took < 2, (body, took)
    assert None not in times
    lines = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.startswith("{") and '"status"' in line]
    assert [line["status"] for line in lines if line["path"] == "/api/v1/classify"] == [413]


def test_a_body_past_the_limit_is_answered_as_the_app_and_gunicorn_would_answer_its_head(tmp_path):
    """The event loop stops reading a chunked body at a chunk that takes it past the limit, and sends 100 Continue
    only for a head gunicorn takes; what the client hears is still gunicorn's and the app's answer to its head: the
    page's HTML 413, a 404 or 405 for a route that reads no body, gunicorn's 400 or 414 for a head it refuses. (An
    early version answered every such request a JSON 413 from the event loop, and sent 100 Continue to heads that
    gunicorn then refused.)"""
    server = Server(tmp_path / "gunicorn.log", "--workers", "1")
    past_the_limit = b"Transfer-Encoding: chunked\r\n\r\n%x\r\n--b\r\n" % (64 * 1024 * 1024)
    form = b"Content-Type: multipart/form-data; boundary=b\r\n"
    cases = [
        (b"POST / HTTP/1.1\r\nHost: x\r\n" + form + past_the_limit, b"413", b"text/html"),
        (b"POST /api/v1/classify HTTP/1.1\r\nHost: x\r\n" + form + past_the_limit, b"413", b"application/json"),
        (b"POST /nope HTTP/1.1\r\nHost: x\r\n" + form + past_the_limit, b"404", b""),
        (b"POST /healthz HTTP/1.1\r\nHost: x\r\n" + past_the_limit, b"405", b""),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + past_the_limit, b"200", b""),
        (b"POST /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n" + past_the_limit, b"414", b""),
        (b"P@ST / HTTP/1.1\r\nHost: x\r\n" + past_the_limit, b"400", b""),
        (b"POST / HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n",
         b"400", b""),
        (b"POST / HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\nExpect: 100-continue\r\n" + past_the_limit, b"400", b""),
    ]
    answers = []
    try:
        for request, _, _ in cases:
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                sock.sendall(request)
                answers.append(_read_until_closed(sock))
    finally:
        server.stop()
    for (request, status, content_type), answer in zip(cases, answers):
        assert answer.startswith(b"HTTP/1.1 " + status + b" "), (request[:60], answer[:200])
        assert content_type.lower() in answer.split(b"\r\n\r\n")[0].lower(), (request[:60], answer[:300])
        assert b"100 Continue" not in answer, (request[:60], answer[:200])
        assert b"connection: close" in answer.lower(), (request[:60], answer[:300])  # the body is not read on


def test_a_route_that_reads_no_body_closes_a_connection_whose_body_is_over_the_limit(tmp_path):
    """Its client, told no 100 Continue, sends no body: gunicorn waited 5 s for it after a keep-alive answer, and
    would have read the next request as that body."""
    server = Server(tmp_path / "gunicorn.log", "--workers", "1")
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            started = time.monotonic()
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 50000000\r\n\r\n")
            answer = _read_until_closed(sock)
            took = time.monotonic() - started
    finally:
        server.stop()
    assert answer.startswith(b"HTTP/1.1 200 ") and b"connection: close" in answer.lower(), answer[:300]
    assert took < 2, f"closed after {took:.1f} s"


def test_an_upload_over_the_limit_that_expects_100_continue_is_not_told_to_send_it(tmp_path):
    """RFC 9110 10.1.1: a server that will refuse the body answers at once instead of 100 Continue; gunicorn sent the
    100 Continue to every such request, so the client uploaded its 50 MB to be refused."""
    server = Server(tmp_path / "gunicorn.log", "--workers", "1")
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"POST /api/v1/classify HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                         b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 50000000\r\n\r\n")
            answer = _read_until_closed(sock)
    finally:
        server.stop()
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:300]
    assert b"100 Continue" not in answer


def test_a_chunked_body_that_stalls_within_gunicorns_limits_takes_no_thread(tmp_path):
    """A long chunk size line or trailer section, then silence: the event loop reads on while gunicorn would (the
    first version handed them to a thread past 1 kB and 8 kB, and the client held it for the read grace)."""
    server = Server(tmp_path / "gunicorn.log", "--workers", "1",
                    env={"FIREWATCH_WEB_THREADS": "1", "FIREWATCH_READ_GRACE_SECONDS": "30"})
    head = (b"POST /api/v1/classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n\r\n")  # a form: the app reads the body
    stalled = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(2)]
    stalled[0].sendall(head + b"1;" + b"x" * 1500)
    stalled[1].sendall(head + b"1\r\n-\r\n0\r\n" + (b"X-A: " + b"y" * 100 + b"\r\n") * 90)
    times = _health_beside(server, stalled)
    assert None not in times, f"/healthz took {times} s (None: over 1 s) beside 2 stalled chunked bodies"


@pytest.mark.parametrize("spool", [{}, {"FIREWATCH_BODY_SPOOL_MB": "0.001"}], ids=["on-disk", "by-its-thread"])
def test_an_upload_larger_than_the_event_loop_buffer_is_classified(tmp_path, fire_photo, spool):
    """It goes on to disk; or, when the worker's share of the disk is full too, to its thread with what arrived."""
    server = Server(tmp_path / "gunicorn.log", "--workers", "1", env={"FIREWATCH_BODY_BUFFER_MB": "0.005", **spool})
    try:
        import requests

        response = requests.post(server.url + "/api/v1/classify", timeout=30,
                                 files={"image": ("fire.jpg", fire_photo.read_bytes())})
    finally:
        server.stop()
    assert len(fire_photo.read_bytes()) > 0.005 * 1024 * 1024
    assert response.status_code == 200 and response.json()["label"] == "fire", response.text


def test_bodies_waiting_for_a_busy_pool_stay_within_the_body_buffer(tmp_path):
    """With its only thread held by an upload larger than the buffer and its disk's share (read by the thread), a
    worker is sent 10 uploads of 3.5 MB on other connections, one after another: it holds at most its 4 MB body
    buffer of them in memory (and its 0.5 MB share of the disk), the rest waits in the kernel (bodies queued for a
    thread used to leave the count: the worker read all 35 MB)."""
    from .test_memory import _children, _rss_mb

    server = Server(tmp_path / "gunicorn.log", "--workers", "1",
                    env={"FIREWATCH_WEB_THREADS": "1", "FIREWATCH_BODY_BUFFER_MB": "4", "FIREWATCH_BODY_SPOOL_MB": "0.5",
                         "FIREWATCH_READ_GRACE_SECONDS": "30"})
    body = b"x" * (3_500_000)
    request = (b"POST /api/v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body)) + body
    holder = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    uploads = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(10)]
    senders = [threading.Thread(target=sock.sendall, args=(request,), daemon=True) for sock in uploads]
    try:
        time.sleep(0.5)
        worker, = _children(server.process.pid)
        before = _rss_mb(worker)
        holder.sendall(b"POST /api/v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n"
                       b"Content-Type: multipart/form-data; boundary=b\r\n\r\n-")
        time.sleep(0.5)  # the thread is reading the body
        for sender in senders:  # one after another: each would fit the buffer on its own
            sender.start()
            time.sleep(0.3)
        time.sleep(1.0)
        grown = _rss_mb(worker) - before
    finally:
        for sock in [holder, *uploads]:
            sock.close()
        server.stop()
    assert grown < 20, f"the worker grew {grown:.0f} MB holding uploads for a busy pool (buffer: 4 MB)"


def test_what_the_event_loop_read_is_freed_once_read_or_the_connection_closes():
    """The buffer of a request's bytes must not outlive their use: not once its thread has read them all (an empty
    view of it kept all of it, up to 20 MB, until the request was done: beside the app's own copy of the upload
    while it waited for its turn to decode and was classified), and not while a closing connection waits for its
    client to close (the socket wrapper, with an unread body, lingered up to 2 s)."""
    import selectors
    import types
    from concurrent.futures import Future

    from web_app.reads import DeadlineSocket, ReadDeadline
    from web_app.worker import FirewatchWorker

    def resizable(buffer: bytearray) -> bool:  # a bytearray with a live view of it cannot change size
        try:
            buffer.append(0)
        except BufferError:
            return False
        return True

    left, right = socket.socketpair()
    with left, right:
        sock = DeadlineSocket(left, ReadDeadline(grace=10, min_rate=1000))
        read = bytearray(b"GET / HTTP/1.1\r\n\r\n")
        sock.prefill(read)
        assert sock.recv(8) + sock.recv(100) == b"GET / HTTP/1.1\r\n\r\n"
        assert resizable(read), "the connection's socket still holds the read bytes"

    worker = FirewatchWorker.__new__(FirewatchWorker)  # only what finish_request and _linger use
    worker.reads_early = True
    worker.poller, worker.lingering, worker.nr_conns, worker.busy_threads = selectors.DefaultSelector(), {}, 1, 1
    worker.trim_due = False
    left, right = socket.socketpair()
    unread = bytearray(b"x" * 1000)
    conn = types.SimpleNamespace(sock=DeadlineSocket(left, ReadDeadline(grace=10, min_rate=1000)))
    conn.sock.prefill(unread)
    closing = Future()
    closing.set_result(False)  # the response closed the connection
    try:
        worker.finish_request(conn, closing)
        del conn
        assert list(worker.lingering) == [left] and resizable(unread), "the closing connection keeps its unread body"
    finally:
        worker.poller.close()
        left.close()
        right.close()


def test_what_went_to_disk_is_read_first_and_its_file_closed_once_read_or_forgotten():
    import tempfile

    from web_app.reads import DeadlineSocket, ReadDeadline

    def spooled(data: bytes):
        file = tempfile.TemporaryFile(buffering=0)
        file.write(data)
        return file

    left, right = socket.socketpair()
    with left, right:
        right.sendall(b"rest")
        sock = DeadlineSocket(left, ReadDeadline(grace=10, min_rate=1000))
        on_disk = spooled(b"POST / HTTP/1.1\r\n")
        sock.prefill(bytearray(b"body"), on_disk)
        assert sock.bytes_received == 21
        got = b""
        while len(got) < 25:
            got += sock.recv(5)
        assert got == b"POST / HTTP/1.1\r\nbodyrest" and on_disk.closed

        on_disk = spooled(b"GET /a HTTP/1.1\r\n\r\nGET /b")  # a pipelined request's start, partly on disk
        sock.prefill(bytearray(b" HTTP/1.1\r\n\r\n"), on_disk)
        assert sock.recv(19) == b"GET /a HTTP/1.1\r\n\r\n"
        assert sock.take_early() == b"GET /b HTTP/1.1\r\n\r\n" and on_disk.closed

        on_disk = spooled(b"unread")
        sock.prefill(bytearray(b"x"), on_disk)
        sock.forget_early()
        assert on_disk.closed


def test_a_body_moves_to_disk_within_the_disk_share_and_a_failed_write_loses_no_byte():
    import errno
    import logging

    from web_app.reads import ChunkedBody, ChunkLimits, LengthBody
    from web_app.worker import FirewatchWorker

    class DiskFillsUp:
        def __init__(self, room: int) -> None:
            self.room, self.written, self.closed = room, bytearray(), False

        def write(self, data) -> int:
            if not self.room:
                raise OSError(errno.ENOSPC, "No space left on device")
            taken = bytes(data[:min(self.room, 3)])  # short writes, as a raw file may make
            self.room -= len(taken)
            self.written += taken
            return len(taken)

    request = b"POST / HTTP/1.1\r\nContent-Length: 20\r\n\r\n" + b"0123456789"  # half the body so far
    worker = FirewatchWorker.__new__(FirewatchWorker)
    worker.log = logging.getLogger("test")
    worker.body_spool_bytes, worker.spooled_bytes, worker.early_bytes = 100, 90, len(request)

    def awaiting(room: int):
        body = LengthBody(request.index(b"\r\n\r\n") + 4, 20)
        return __import__("types").SimpleNamespace(early=bytearray(request), body=body, spool=DiskFillsUp(room),
                                                   spooled=0, head=None)

    full = awaiting(room=1000)
    assert worker._spool(full) is False  # 10 bytes of room left in the disk's share: not enough for it
    assert full.early == request and full.spool.written == b"" and worker.spooled_bytes == 90

    worker.spooled_bytes = 0
    failing = awaiting(room=20)
    assert worker._spool(failing) is False  # the disk took 20 bytes, then refused
    assert failing.spool.written + failing.early == request and failing.spooled == 20
    assert worker.spooled_bytes == 20 and worker.early_bytes == len(request) - 20
    assert failing.body.read_size(len(failing.early)) == 10  # the rest of the body, counted from what is left

    worker.spooled_bytes, worker.early_bytes = 0, len(request)
    spooling = awaiting(room=1000)
    assert worker._spool(spooling) is True
    assert spooling.spool.written == request and spooling.early == b"" and worker.early_bytes == 0
    assert spooling.body.read_size(0) == 10 and spooling.body.end(bytearray(b"x" * 10)) == 10

    worker.spooled_bytes, worker.body_spool_bytes = 0, 0  # FIREWATCH_BODY_SPOOL_MB=0: nothing goes to disk
    assert worker._spool(awaiting(room=1000)) is False

    # A chunked body's trailer section must stay in memory to find its end: within what a head may take, at most.
    worker.body_spool_bytes = 10**6
    head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    for trailers, kept in ((b"X-A: 1\r\n" * 100, True), (b"X-A: " + b"y" * 70_000 + b"\r\n", False)):
        worker.spooled_bytes = worker.early_bytes = 0
        conn = __import__("types").SimpleNamespace(early=bytearray(head + b"1\r\n-\r\n0\r\n" + trailers),
                                                   body=ChunkedBody(len(head), ChunkLimits(10**6)), spool=DiskFillsUp(10**6),
                                                   spooled=0, head=None)
        assert conn.body.end(conn.early) is None
        assert worker._spool(conn) is kept
        assert conn.spool.written + conn.early == head + b"1\r\n-\r\n0\r\n" + trailers and conn.early.startswith(b"\r\nX-A")


def test_the_event_loop_does_not_read_a_body_the_app_refuses_for_its_length():
    """The app answers a Content-Length over its limit from the head (413 where a route reads a body): reading such
    a body first (up to the whole body buffer, for any route) only cost memory, and a client that waits for
    100 Continue must not be told to send it (gunicorn would tell it, once a thread takes the request)."""
    import types

    from web_app.reads import LengthBody
    from web_app.worker import NO_BODY, FirewatchWorker

    worker = FirewatchWorker.__new__(FirewatchWorker)
    worker.body_buffer_bytes = worker.body_spool_bytes = 64 * 1024 * 1024
    worker.app = types.SimpleNamespace(wsgi=lambda: types.SimpleNamespace(config={"MAX_CONTENT_LENGTH": 1000}))
    worker.cfg = types.SimpleNamespace(reload=False, limit_request_field_size=8190, limit_request_fields=100)
    worker.load_wsgi()
    head = b"POST /anywhere HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n"

    def conn(expect: bytes, length: int):
        return types.SimpleNamespace(early=bytearray(head % (expect, length)), over_limit=False)

    within = conn(b"", 1000)
    assert worker._request_body(within).end(within.early + b"x" * 2000) == len(within.early) + 1000
    over = conn(b"Expect: 100-continue\r\n", 1001)
    assert worker._request_body(over) is NO_BODY and over.over_limit
    worker.body_buffer_bytes, worker.body_spool_bytes = 300, 700  # within the buffer and its disk share together
    assert isinstance(worker._request_body(conn(b"Expect: 100-continue\r\n", 1000)), LengthBody)
    worker.body_spool_bytes = 200  # within the app's limit but not them: the thread reads it, after gunicorn's 100
    over_the_buffer = conn(b"Expect: 100-continue\r\n", 1000)
    assert worker._request_body(over_the_buffer) is NO_BODY and not over_the_buffer.over_limit


def test_which_bodies_the_event_loop_reads():
    from web_app.reads import ChunkedBody, ChunkLimits, LengthBody, request_body

    def body(headers: bytes, first: bytes = b"POST / HTTP/1.1"):
        return request_body(first + b"\r\nHost: x\r\n" + headers + b"\r\n\r\n", ChunkLimits(10_000))

    assert isinstance(body(b"Content-Length: 1234"), LengthBody)
    assert body(b"Content-Length: 12345678").length == 12345678  # the worker decides whether it reads it
    assert body(b"content-length:  7 ").read_size(0) == len(b"POST / HTTP/1.1\r\nHost: x\r\ncontent-length:  7 \r\n\r\n") + 7
    assert isinstance(body(b"Transfer-Encoding: chunked"), ChunkedBody)
    assert isinstance(body(b"transfer-encoding: Chunked"), ChunkedBody)
    continued = body(b"Content-Length: 12\r\nExpect: 100-Continue")
    assert isinstance(continued, LengthBody) and continued.expects_continue
    assert body(b"Transfer-Encoding: chunked\r\nExpect: 100-continue").expects_continue
    assert not body(b"Content-Length: 12").expects_continue
    http_10 = body(b"Content-Length: 12\r\nExpect: 100-continue", first=b"POST / HTTP/1.0")
    assert isinstance(http_10, LengthBody) and not http_10.expects_continue  # gunicorn ignores it in HTTP/1.0
    for refused_or_none in (b"Content-Length: 12\r\nTransfer-Encoding: chunked",  # gunicorn decides
                            b"Transfer-Encoding: gzip, chunked", b"Transfer-Encoding: gzip",
                            b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
                            b"Content-Length: 12\r\nContent-Length: 12", b"Content-Length: -1",
                            b"Content-Length: 1e3", b"Content-Length: 0",
                            b"Content-Length: 12\r\nExpect: something-else",  # gunicorn: 417
                            b"Content-Length: 12\r\nExpect: 100-continue\r\nExpect: 100-continue", b""):
        assert body(refused_or_none) is None, refused_or_none
    assert body(b"Transfer-Encoding: chunked", first=b"POST / HTTP/1.0") is None  # gunicorn refuses it
    assert body(b"Content-Length: 12", first=b"POST / HTTP/2.0") is None


def _chunked_end(body: bytes, cuts=(), largest: int = 10_000, line: int = 1024, trailers: int = 8192,
                 spool: bool = False):
    """Where a ChunkedBody says ``body`` ends, fed in pieces cut at ``cuts``: the offset, None, or the exception.
    ``spool``: after each piece, what it no longer needs leaves the buffer (as the worker moves it to disk), and
    is checked to be what came first."""
    from web_app.reads import BodyTooLarge, ChunkedBody, ChunkLimits, NotReadHere

    scanner, buffer, found = ChunkedBody(0, ChunkLimits(largest, line, trailers)), bytearray(), None
    moved = bytearray()
    for start, end in zip([0, *cuts], [*cuts, len(body)]):
        buffer += body[start:end]
        try:
            found = scanner.end(buffer)
        except (NotReadHere, BodyTooLarge) as error:
            return error
        if found is not None:
            return len(moved) + found
        if spool:
            settled = scanner.settled(len(buffer))
            moved += buffer[:settled]
            del buffer[:settled]
            scanner.shift(settled)
            assert moved + buffer == body[:end]
    return found


def test_a_chunked_body_ends_after_its_last_chunk_and_trailers_wherever_the_reads_split_it():
    from web_app.reads import NotReadHere

    bodies = [b"5\r\nhello\r\n0\r\n\r\n", b"5;name=v\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Sum: 1\r\nX-B: 2\r\n\r\n",
              b"1\r\n\r\r\n0 ;x\r\n\r\n"]  # a chunk that is itself CR; BWS before an extension
    for whole in bodies:
        for cuts in [[cut] for cut in range(1, len(whole))] + [list(range(1, len(whole)))]:
            for spool in (False, True):  # all in memory; or, as the worker does once its buffer is full, on disk
                assert _chunked_end(whole + b"GET / HTTP/1.1\r\n\r\n", cuts, spool=spool) == len(whole), (whole, cuts)
        assert _chunked_end(whole[:-1]) is None
        assert _chunked_end(whole[:-1], list(range(1, len(whole) - 1)), spool=True) is None
    for broken in (b"5\r\nhelloXX0\r\n\r\n", b"G\r\nhello\r\n", b"\r\n", b"0x5\r\nhello\r\n",
                   b"0 \r\n\r\n"):
        assert isinstance(_chunked_end(broken), NotReadHere), broken
        assert isinstance(_chunked_end(broken, list(range(1, len(broken))), spool=True), NotReadHere), broken


def test_the_event_loop_stops_scanning_a_chunked_body_only_where_gunicorn_refuses_it_at_once():
    """A size line or trailer section past gunicorn's own limits goes to its thread, whose gunicorn refuses it with
    the bytes it has (400). Within them, the event loop reads on: handed over any sooner (the first version stopped
    at a 1 kB size line or 8 kB of trailers), a client that then fell silent held the thread for the read grace."""
    from web_app.reads import NotReadHere

    assert _chunked_end(b"1;" + b"x" * 1020 + b"\r\n", line=1024) is None  # 1,022 bytes: within the limit
    assert isinstance(_chunked_end(b"1;" + b"x" * 1030, line=1024), NotReadHere)
    trailer = b"X-A: " + b"y" * 100 + b"\r\n"
    assert _chunked_end(b"0\r\n" + trailer * 70, trailers=8192) is None  # 7.3 kB of trailers, more to come
    assert _chunked_end(b"0\r\n" + trailer * 70 + b"\r\n", trailers=8192) == 3 + len(trailer) * 70 + 2
    assert isinstance(_chunked_end(b"0\r\n" + trailer * 80, trailers=8192), NotReadHere)


def test_chunk_limits_are_gunicorns():
    import types

    from web_app.reads import ChunkLimits

    def limits(fields: int, field_size: int) -> ChunkLimits:
        return ChunkLimits.of(types.SimpleNamespace(limit_request_fields=fields, limit_request_field_size=field_size), 1)

    assert limits(100, 8190) == ChunkLimits(1, 8190, 100 * 8192 + 4) == ChunkLimits(1)
    assert limits(0, 0) == ChunkLimits(1, 8190, 32768 * 8192 + 4)  # 0: gunicorn's own defaults, not "none"
    assert limits(50, 100) == ChunkLimits(1, 100, 50 * 102 + 4)


def test_a_chunk_that_takes_a_body_past_the_app_limit_is_answered_at_once():
    """The app would read on to its limit at the client's pace (a thread for up to 21 minutes): the event loop
    answers 413 as soon as a chunk's size says so."""
    from web_app.reads import BodyTooLarge

    tiny = b"1\r\n-\r\n" * 50_000  # chunks of a byte are scanned (a limit on their number gave a thread away)
    assert _chunked_end(tiny + b"0\r\n\r\n", largest=10**9) == len(tiny) + 5
    assert isinstance(_chunked_end(tiny, largest=49_999), BodyTooLarge)
    assert isinstance(_chunked_end(b"2711\r\n", largest=10_000), BodyTooLarge)  # 10,001 bytes
    assert _chunked_end(b"2710\r\n", largest=10_000) is None


def test_a_read_of_a_chunked_body_takes_about_512_of_its_chunks():
    """Scanning a chunk costs the event loop a microsecond or so, which every other connection waits for: 64 kB reads
    of the smallest chunks stalled it 13 ms each, and /healthz beside 8 clients sending them took 0.3 s (median)."""
    from web_app.reads import CHUNKED_READ_SIZE, SMALLEST_CHUNKED_READ, ChunkedBody, ChunkLimits

    for chunk, expected in ((1, SMALLEST_CHUNKED_READ), (100, 512 * 106), (16384, CHUNKED_READ_SIZE)):
        body = ChunkedBody(0, ChunkLimits(10**9))
        data = (b"%x\r\n" % chunk + b"-" * chunk + b"\r\n") * 100
        assert body.end(data) is None
        assert body.read_size(len(data)) == min(expected, CHUNKED_READ_SIZE), chunk


def _read_responses(sock: socket.socket, count: int) -> list[bytes]:
    """``count`` whole responses (each with a Content-Length) from ``sock``."""
    buffer, responses = b"", []
    while len(responses) < count:
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            assert chunk, f"closed after {len(responses)} responses: {buffer[:200]!r}"
            buffer += chunk
        head, _, rest = buffer.partition(b"\r\n\r\n")
        length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")))
        while len(rest) < length:
            chunk = sock.recv(65536)
            assert chunk, "closed in the middle of a response"
            rest += chunk
        responses.append(head + b"\r\n\r\n" + rest[:length])
        buffer = rest[length:]
    return responses


def test_clients_that_keep_a_closed_connection_open_do_not_stall_the_worker(tmp_path):
    """After a response that closes the connection, gunicorn waits (up to 2 s) for the client to close its end, so
    the kernel does not reset the connection over unread bytes: on the event loop, where 5 clients that never
    closed stalled every other connection for 10 s. The wait is the event loop's now, not a stop of it."""
    server = Server(tmp_path / "gunicorn.log", "--workers", "1")
    held = []
    try:
        for _ in range(5):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(b"POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
            held.append(sock)
        for sock in held:
            answer = _read_until_closed(sock)  # the server's FIN ends it; the client keeps its own end open
            assert answer.startswith(b"HTTP/1.1 404 ") and b"connection: close" in answer.lower(), answer[:200]
        times = probe_health(server.url, 4, interval=0.25)
    finally:
        for sock in held:
            sock.close()
        server.stop()
    assert None not in times, f"/healthz took {times} s (None: over 1 s) beside 5 clients not closing"


def test_a_new_connection_that_sends_nothing_is_closed_after_the_read_grace(tmp_path):
    server = Server(tmp_path / "gunicorn.log", "--workers", "1", env={"FIREWATCH_READ_GRACE_SECONDS": "1"})
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            started = time.monotonic()
            assert _read_until_closed(sock) == b""
            took = time.monotonic() - started
    finally:
        server.stop()
    assert 0.9 < took < 4, f"closed after {took:.1f} s"


def test_a_head_may_end_in_the_bytes_that_follow_it():
    from web_app.reads import head_is_complete

    assert head_is_complete(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert head_is_complete(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nab")  # and part of its body
    assert not head_is_complete(b"GET / HTTP/1.1\r\nHost: x\r\n")
    assert not head_is_complete(b"GET / HTT")
    assert head_is_complete(b"GET / HTTP/1.1\nHost: x")  # a bare LF: gunicorn refuses it at once, no need to wait


def test_a_head_read_in_pieces_is_complete_exactly_when_its_end_arrives():
    """The event loop looks only at what each read added (a 64 kB head read a byte at a time must not cost a scan of
    all of it per byte): the answer is the whole buffer's, wherever the reads split it, CRLFs included."""
    from web_app.reads import head_is_complete

    heads = (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\nX-A: 1\r\n")
    for whole in heads:
        splits = [[cut] for cut in range(1, len(whole))] + [list(range(1, len(whole)))]  # two reads; a byte a read
        for cuts in splits:
            buffer = bytearray()
            for start, end in zip([0, *cuts], [*cuts, len(whole)]):
                buffer += whole[start:end]
                complete = head_is_complete(bytes(buffer))
                assert head_is_complete(buffer, start) == complete, (whole, cuts, start)
                if complete:  # handed to a thread: nothing more is read here
                    break


def _health_beside(server: Server, held: list[socket.socket]) -> list[float | None]:
    """/healthz probed 4 times, 0.25 s apart, beside the ``held`` connections (once the worker has taken them);
    then they are closed and the server stopped."""
    try:
        time.sleep(0.5)
        return probe_health(server.url, 4, interval=0.25)
    finally:
        for sock in held:
            sock.close()
        server.stop()


def _read_until_closed(sock: socket.socket) -> bytes:
    answer = b""
    while True:
        try:
            data = sock.recv(65536)
        except OSError:
            return answer
        if not data:
            return answer
        answer += data


def _trickle_until_answered(sock: socket.socket, piece: bytes, seconds: float) -> bytes:
    """Send ``piece`` every 0.2 s until the server answers or closes; what it sent (b"" when it just closed)."""
    ends = time.monotonic() + seconds
    sock.settimeout(0.2)
    while time.monotonic() < ends:
        try:
            sock.sendall(piece)
        except OSError:
            return b""
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return b""
        answer = data
        while data:
            try:
                data = sock.recv(65536)
            except (TimeoutError, OSError):
                break
            answer += data
        return answer
    pytest.fail(f"the server neither answered nor closed within {seconds} s")


def test_the_read_deadline_grows_with_what_arrived():
    from web_app.reads import ReadDeadline

    now = [0.0]
    deadline = ReadDeadline(grace=10, min_rate=1000, clock=lambda: now[0])
    assert deadline.remaining() == 10
    deadline.received(5000)  # 5 s worth at the minimum rate
    now[0] = 12.0
    assert deadline.remaining() == 3
    deadline.restart()  # the next request on the connection starts afresh
    assert deadline.remaining() == 10


def test_a_socket_read_past_the_deadline_raises_read_timed_out():
    from gunicorn.http.errors import NoMoreData

    from web_app.reads import DeadlineSocket, ReadDeadline, ReadTimedOut

    now = [0.0]
    left, right = socket.socketpair()
    with left, right:
        sock = DeadlineSocket(left, ReadDeadline(grace=1, min_rate=1000, clock=lambda: now[0]))
        right.sendall(b"abc")
        assert sock.recv(10) == b"abc" and left.gettimeout() is None  # blocking again after the read
        now[0] = 5.0  # 3 bytes bought 3 ms: far behind
        with pytest.raises(ReadTimedOut) as raised:
            sock.recv(10)
        assert isinstance(raised.value, NoMoreData) and isinstance(raised.value, TimeoutError) and sock.timed_out


def test_a_worker_out_of_file_descriptors_stops_accepting_instead_of_dying(tmp_path):
    """With 120 open files at most, 150 connections at once: gthread's worker died at the 100-odd-th (EMFILE in
    accept), with every connection it held. Here it waits for some to close, and the same worker answers after."""
    server = Server(tmp_path / "gunicorn.log", "--workers", "1", open_files=120)
    held = []
    try:
        for _ in range(150):
            held.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))  # the backlog takes them
        time.sleep(1.0)
        for sock in held:
            sock.close()
        held = []
        time.sleep(0.5)
        import requests

        answered = requests.get(server.url + "/healthz", timeout=5)
    finally:
        for sock in held:
            sock.close()
        server.stop()
    log = server.log_path.read_text()
    assert answered.status_code == 200
    assert "Exception in worker process" not in log and log.count("Booting worker") == 1, log[-2000:]
    assert "Too many open files" in log  # it did run out, and said so


def test_a_worker_raises_its_soft_limit_on_open_files_as_far_as_it_may():
    import resource

    from web_app import worker

    limits = {"now": (1024, 4096)}

    def setrlimit(kind, value):
        limits["now"] = value

    real = (resource.getrlimit, resource.setrlimit)
    resource.getrlimit, resource.setrlimit = (lambda kind: limits["now"]), setrlimit
    try:
        worker.raise_open_file_limit(2256)
        assert limits["now"] == (2256, 4096)
        worker.raise_open_file_limit(10_000)
        assert limits["now"] == (4096, 4096)  # no further than the hard limit
        worker.raise_open_file_limit(100)
        assert limits["now"] == (4096, 4096)  # never lowered
        limits["now"] = (1024, resource.RLIM_INFINITY)
        worker.raise_open_file_limit(2256)
        assert limits["now"] == (2256, resource.RLIM_INFINITY)
    finally:
        resource.getrlimit, resource.setrlimit = real
