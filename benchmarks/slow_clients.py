"""Slow and silent clients and health probes against a local server (loopback only, every loop bounded): used by the web
hardening benchmark and by the slow-client tests."""

from __future__ import annotations

import socket
import threading
import time

import requests

BODY_BYTES = 100_000
_UPLOAD_HEAD = "POST /api/v1/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=firewatch\r\n"


def trickle_head(framing: str, length: int) -> bytes:
    """What a trickler sends before its body's bytes, by how the body is framed: a Content-Length; one chunk of it
    all (Transfer-Encoding: chunked); a Content-Length with Expect: 100-continue (sending without waiting for it);
    a Content-Length in HTTP/1.0."""
    return {
        "length": f"{_UPLOAD_HEAD}Content-Length: {length}\r\n\r\n",
        "chunked": f"{_UPLOAD_HEAD}Transfer-Encoding: chunked\r\n\r\n{length:x}\r\n",
        "continue": f"{_UPLOAD_HEAD}Expect: 100-continue\r\nContent-Length: {length}\r\n\r\n",
        "http/1.0": f"{_UPLOAD_HEAD.replace('HTTP/1.1', 'HTTP/1.0')}Content-Length: {length}\r\n\r\n",
    }[framing].encode()


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class _Client(threading.Thread):
    """A client that connects, runs its ``session`` on the connection and connects again when the server closes it,
    until ``stop()`` or ``lifetime`` seconds, whichever first."""

    timeout = 5.0  # for connecting, and for each read

    def __init__(self, port: int, interval: float, lifetime: float) -> None:
        super().__init__(daemon=True)
        self.port, self.interval, self.lifetime = port, interval, lifetime
        self._stop_event = threading.Event()
        self._ends = 0.0

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        self._ends = time.monotonic() + self.lifetime
        while not self._stop_event.is_set() and time.monotonic() < self._ends:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout) as sock:
                    if self.session(sock):
                        return
            except OSError:
                self.failed()
                self._stop_event.wait(0.1)

    def session(self, sock: socket.socket) -> bool:
        """Talk on ``sock`` until the server closes it (False) or it is time to stop (True)."""
        raise NotImplementedError

    def failed(self) -> None:
        """Connecting or sending failed."""

    def _time_is_up(self) -> bool:
        """Wait ``interval`` seconds; whether it is time to stop."""
        return self._stop_event.wait(self.interval) or time.monotonic() >= self._ends


class Trickler(_Client):
    """A client that sends a request head (and the first ``sent_first`` bytes of its body at once), then its body
    one byte every ``interval`` seconds, reconnecting when the server cuts it off."""

    def __init__(self, port: int, interval: float, lifetime: float = 60.0, framing: str = "length",
                 sent_first: int = 0) -> None:
        super().__init__(port, interval, lifetime)
        self.head = trickle_head(framing, sent_first + BODY_BYTES) + b"-" * sent_first
        self.cut_off = 0  # times the server closed the connection on it
        self.answers: list[bytes] = []  # what the server said before closing

    def session(self, sock: socket.socket) -> bool:
        sock.sendall(self.head)
        for _ in range(BODY_BYTES):
            if self._time_is_up():
                return True
            sock.sendall(b"-")
            said = _server_said(sock)
            if said is not None and said != CONTINUE:  # only the 100 Continue an Expect asks for: send on
                if said:
                    self.answers.append(said.removeprefix(CONTINUE))
                self.cut_off += 1
                return False
        return False

    def failed(self) -> None:
        self.cut_off += 1


class HeadTrickler(_Client):
    """A keep-alive client whose every request head arrives a line every ``interval`` seconds (``lines`` header
    lines, then the end of the head), answer read, next request on the same connection."""

    timeout = 15.0

    def __init__(self, port: int, interval: float, lines: int, lifetime: float = 60.0) -> None:
        super().__init__(port, interval, lifetime)
        self.lines = lines
        self.answered = 0  # requests answered

    def session(self, sock: socket.socket) -> bool:
        while True:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            for _ in range(self.lines):
                if self._time_is_up():
                    return True
                sock.sendall(b"X-Slow: 1\r\n")
            sock.sendall(b"\r\n")
            if not read_response(sock):
                return False
            self.answered += 1


class Unclosing(_Client):
    """A client that sends a request the server answers with an error (which closes the connection), reads the
    answer to the server's close, and keeps its own end open for ``interval`` seconds before it connects again."""

    def session(self, sock: socket.socket) -> bool:
        sock.sendall(b"POST /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello")
        while sock.recv(65536):
            pass
        return self._time_is_up()


def read_response(sock: socket.socket) -> bool:
    """Read one response with a Content-Length; False when the server closed the connection first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        body += chunk
    return True


def open_silent_connections(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that send nothing (close them with ``close_all``)."""
    return [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]


def close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


def _server_said(sock: socket.socket) -> bytes | None:
    """What the server has sent, without waiting: None for nothing yet, b"" once it has closed."""
    sock.setblocking(False)
    try:
        return sock.recv(65536)
    except BlockingIOError:
        return None
    finally:
        sock.setblocking(True)


def _closed_by_server(sock: socket.socket, answers: list[bytes]) -> bool:
    """Whether the server has answered or closed (what it sent goes into ``answers``)."""
    said = _server_said(sock)
    if said:
        answers.append(said)
    return said is not None


def probe_health(url: str, probes: int, interval: float, timeout: float = 1.0) -> list[float | None]:
    """``probes`` GET /healthz, ``interval`` apart, each on a new connection: seconds each took, None when it
    failed or took longer than ``timeout``."""
    times: list[float | None] = []
    for _ in range(probes):
        started = time.monotonic()
        try:
            ok = requests.get(url + "/healthz", timeout=timeout).status_code == 200
        except requests.RequestException:
            ok = False
        took = time.monotonic() - started
        times.append(took if ok and took <= timeout else None)
        time.sleep(max(0.0, interval - took))
    return times


def start_tricklers(port: int, count: int, interval: float, lifetime: float = 60.0,
                    head_lines: int = 0, unclosing: bool = False, framing: str = "length",
                    sent_first: int = 0) -> list[_Client]:
    """``count`` clients trickling bodies (framed as ``framing``: see trickle_head; after ``sent_first`` bytes sent
    at once), or with ``head_lines``, heads of that many lines, or ``unclosing``."""
    if unclosing:
        tricklers = [Unclosing(port, interval, lifetime) for _ in range(count)]
    elif head_lines:
        tricklers = [HeadTrickler(port, interval, head_lines, lifetime) for _ in range(count)]
    else:
        tricklers = [Trickler(port, interval, lifetime, framing, sent_first) for _ in range(count)]
    for trickler in tricklers:
        trickler.start()
    return tricklers


def stop_tricklers(tricklers: list[_Client]) -> None:
    for trickler in tricklers:
        trickler.stop()
    for trickler in tricklers:
        trickler.join(timeout=10)
