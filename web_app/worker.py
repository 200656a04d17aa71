"""The gunicorn worker the web app runs in: gunicorn's threaded worker (gthread) with three additions.

- Reads time out. gthread gives each request a thread that blocks on the socket until the request has arrived,
  without a deadline, so a few clients trickling a body hold every thread. Here a request (head and body) must
  arrive at an average rate: nothing is owed in the first ``grace`` seconds, then at least ``min_rate`` bytes per
  second (the rule of Apache's mod_reqtimeout). A request that falls behind is cut off: 408 when the app was
  reading the body, a closed connection when the head never arrived.
- gunicorn's own error responses (400, 414, 431... sent before the app sees a request) carry the security headers
  and the API's JSON error form, instead of gunicorn's bare HTML page.
- A worker accepts connections only while one of its threads is free, so that the other workers take them, and
  only while it holds no more connections than the others (least connections, web_app/balance.py).
- No ``Server`` banner on any response.
"""

from __future__ import annotations

import json
import os
import socket
import time

from gunicorn import util
from gunicorn.http import wsgi as gunicorn_wsgi
from gunicorn.http.errors import NoMoreData
from gunicorn.workers.gthread import ThreadWorker

from inference.contract import BAD_REQUEST, INTERNAL_ERROR, SERVER_ERROR_CODES

from .balance import RECHECK_SECONDS, ConnectionTable
from .errors import CLOSE_AFTER_RESPONSE
from .security import security_headers

# Made when the master imports this worker class, before it forks the workers: they all share it.
CONNECTIONS = ConnectionTable()

READ_GRACE_ENV = "FIREWATCH_READ_GRACE_SECONDS"
READ_MIN_RATE_ENV = "FIREWATCH_READ_MIN_RATE"
DEFAULT_READ_GRACE_SECONDS = 10.0
DEFAULT_READ_MIN_RATE = 16 * 1024  # bytes/s: 20 MB in about 21 minutes; a byte every 2 s is cut after the grace

_SERVER_ERROR_MESSAGES = {
    414: "The address is too long.",
    431: "The request has too many or too large headers.",
    500: "Something went wrong on our side; please try again.",
}


class ReadTimedOut(NoMoreData, TimeoutError):
    """The client sent its request too slowly. A NoMoreData to gunicorn (connection closed quietly), a
    TimeoutError to the app (answered 408)."""

    def __str__(self) -> str:
        return "the request arrived too slowly"


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    value = float(raw)
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {raw!r}")
    return value


class ReadDeadline:
    """The rule a request's reads keep: everything owed by ``grace + received / min_rate`` seconds after its start."""

    def __init__(self, grace: float, min_rate: float, clock=time.monotonic) -> None:
        self.grace, self.min_rate, self._clock = grace, min_rate, clock
        self.restart()

    @staticmethod
    def settings_from_env() -> tuple[float, float]:
        """(grace, min_rate) from the environment; a bad value stops the worker from starting, loudly."""
        return (_env_number(READ_GRACE_ENV, DEFAULT_READ_GRACE_SECONDS),
                _env_number(READ_MIN_RATE_ENV, DEFAULT_READ_MIN_RATE))

    def restart(self) -> None:
        self._started = self._clock()
        self._received = 0

    def received(self, count: int) -> None:
        self._received += count

    def remaining(self) -> float:
        return self._started + self.grace + self._received / self.min_rate - self._clock()


class DeadlineSocket:
    """A client socket whose blocking reads end at the request's read deadline; everything else is the socket's."""

    def __init__(self, sock: socket.socket, deadline: ReadDeadline) -> None:
        self._sock = sock
        self.deadline = deadline
        self.timed_out = False  # this request's reads ran out of time: its connection cannot be reused

    def __getattr__(self, name):
        return getattr(self._sock, name)

    def recv(self, size: int, flags: int = 0) -> bytes:
        prior = self._sock.gettimeout()
        if prior == 0.0:  # non-blocking: the poller's business, not a request read
            return self._sock.recv(size, flags)
        remaining = self.deadline.remaining()
        if remaining <= 0:
            self.timed_out = True
            raise ReadTimedOut()
        own = prior is None or remaining < prior
        self._sock.settimeout(remaining if own else prior)
        try:
            data = self._sock.recv(size, flags)
        except TimeoutError:
            if own:
                self.timed_out = True
                raise ReadTimedOut() from None
            raise  # the caller's own, shorter timeout (gunicorn's body drain)
        finally:
            self._sock.settimeout(prior)
        self.deadline.received(len(data))
        return data


class BannerlessResponse(gunicorn_wsgi.Response):
    """gunicorn's response without the ``Server: gunicorn`` line (the banner only helps an attacker pick exploits),
    which says ``Connection: close`` when the request's reads timed out (the rest of its body may still come) or the
    app asked for it (``errors.close_after_response``)."""

    def default_headers(self):
        return [line for line in super().default_headers() if not line.startswith("Server:")]

    def should_close(self):
        closing = getattr(self.sock, "timed_out", False) or getattr(self.sock, CLOSE_AFTER_RESPONSE, False)
        return closing or super().should_close()


class FirewatchWorker(ThreadWorker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.busy_threads = 0  # connections handed to the thread pool and not finished; main thread only
        self.read_settings = ReadDeadline.settings_from_env()
        self.held_back = False  # not accepting only because another worker holds fewer connections

    def enqueue_req(self, conn):
        self.busy_threads += 1
        super().enqueue_req(conn)
        if self.busy_threads >= self.cfg.threads:
            self.set_accept_enabled(False)

    def finish_request(self, conn, fs):
        self.busy_threads -= 1
        super().finish_request(conn, fs)

    def set_accept_enabled(self, enabled):
        """Accept connections only while a thread is free: a worker whose threads all wait on slow clients leaves
        new connections to the other workers, instead of queueing them behind those clients. (gthread accepts up
        to ``worker_connections`` whatever its threads are doing.) And only while no other worker holds fewer
        connections: a keep-alive connection stays where it was accepted, so the split is what balances the load."""
        able = enabled and self.busy_threads < self.cfg.threads
        CONNECTIONS.publish(self.age, self.nr_conns if able else None)
        self.held_back = able and not CONNECTIONS.may_accept(self.age, self.nr_conns)
        super().set_accept_enabled(able and not self.held_back)

    def wait_for_and_dispatch_events(self, timeout):
        """Every turn of the event loop: publish this worker's count and decide again (gthread's loop only asks when
        its own limit changes); a worker held back looks again soon, as the others' counts change without waking it."""
        if self.alive:
            self.set_accept_enabled(self.nr_conns < self.worker_connections)
        super().wait_for_and_dispatch_events(min(timeout, RECHECK_SECONDS) if self.held_back else timeout)

    def handle(self, conn):
        """One request on ``conn`` (a thread of the pool): its reads keep the deadline rule from here on."""
        if not isinstance(conn.sock, DeadlineSocket):  # the connection's first request: before its parser exists
            conn.sock = DeadlineSocket(conn.sock, ReadDeadline(*self.read_settings))
        conn.sock.deadline.restart()
        conn.sock.timed_out = False
        setattr(conn.sock, CLOSE_AFTER_RESPONSE, False)
        return super().handle(conn)


def write_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's error response in the API's form, with the security headers and no banner."""
    code = SERVER_ERROR_CODES.get(status_int, BAD_REQUEST if status_int < 500 else INTERNAL_ERROR)
    message = _SERVER_ERROR_MESSAGES.get(status_int, "The request could not be understood.")
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = {
        "Connection": "close",
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        "Cache-Control": "no-store",
        **security_headers(),
    }
    head = f"HTTP/1.1 {status_int} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    util.write_nonblock(sock, head.encode("latin-1") + body)


# gunicorn builds every response, and writes its own error responses, through these module names
# (gunicorn.http.wsgi.create and Worker.handle_error). This module is only imported by the gunicorn process
# serving this app (``worker_class`` in gunicorn.conf.py), so replacing them here changes nothing else.
gunicorn_wsgi.Response = BannerlessResponse
util.write_error = write_error
