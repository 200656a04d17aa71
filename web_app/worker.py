"""The gunicorn worker the web app runs in: gunicorn's threaded worker (gthread) with three additions.

- A connection takes a thread only once a whole request head has arrived. gthread hands a new connection to a
  thread that waits up to 5 s for its first bytes, and a kept-alive one to a thread as soon as a byte of its next
  request comes, so clients that connect and say nothing, or send their heads a line at a time, hold every thread.
  Here the event loop reads heads (non-blocking, up to ``HEAD_BUFFER_LIMIT``) and hands the connection, with what
  it read, to a thread when the head is whole; so does the start of a pipelined next request. A new connection
  that sends nothing is closed after the read grace; a kept-alive one after the keep-alive timeout, as in gthread.
- Reads time out. gthread's thread blocks on the socket until the request has arrived, without a deadline, so a
  few clients trickling a body hold every thread. Here reads keep an average rate: nothing is owed in the first
  ``grace`` seconds, then at least ``min_rate`` bytes per second (the rule of Apache's mod_reqtimeout), counted
  from a head's first byte in the event loop, and again from when a thread takes the request. A head that falls
  behind is closed; a body that falls behind gets 408 and the connection is closed.
- gunicorn's own error responses (400, 414, 431... sent before the app sees a request) carry the security headers
  and the API's JSON error form, instead of gunicorn's bare HTML page.
- A worker accepts connections only while one of its threads is free, so that the other workers take them, and
  only while it holds no more connections than the others (least connections, web_app/balance.py).
- No ``Server`` banner on any response.
"""

from __future__ import annotations

import errno
import json
import os
import selectors
import socket
import time
from functools import partial

from gunicorn import util
from gunicorn.http import wsgi as gunicorn_wsgi
from gunicorn.http.errors import NoMoreData
from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, TConn, ThreadWorker

from inference.contract import BAD_REQUEST, INTERNAL_ERROR, SERVER_ERROR_CODES

from .balance import BURST_RECHECK_SECONDS, BURST_SECONDS, RECHECK_SECONDS, ConnectionTable
from .errors import CLOSE_AFTER_RESPONSE
from .security import security_headers

# Made when the master imports this worker class, before it forks the workers: they all share it.
CONNECTIONS = ConnectionTable()

READ_GRACE_ENV = "FIREWATCH_READ_GRACE_SECONDS"
READ_MIN_RATE_ENV = "FIREWATCH_READ_MIN_RATE"
DEFAULT_READ_GRACE_SECONDS = 10.0
DEFAULT_READ_MIN_RATE = 16 * 1024  # bytes/s: 20 MB in about 21 minutes; a byte every 2 s is cut after the grace

# Heads are read by the event loop up to this many bytes (real ones are a few kB; gunicorn's own limits allow more,
# and a longer head is read on by a thread, under the read deadline).
HEAD_BUFFER_LIMIT = 64 * 1024
HEAD_SWEEP_SECONDS = 0.25  # how often the event loop looks for heads and silent connections out of time

_SERVER_ERROR_MESSAGES = {
    414: "The address is too long.",
    417: "The request's Expect header asks for something other than 100-continue.",
    431: "The request has too many or too large headers.",
    500: "Something went wrong on our side; please try again.",
    501: "The request's Transfer-Encoding is not supported: send a Content-Length or chunked.",
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


def head_is_complete(data: bytes | bytearray, new_from: int = 0) -> bool:
    """Whether gunicorn's parser can act on ``data`` without waiting for more: the head has ended (CRLF CRLF), or
    a line ends in a bare LF, which gunicorn refuses at once. Only the bytes from ``new_from`` on (and the 3 before,
    where a CRLF CRLF may have begun) are looked at: the rest were, when they arrived."""
    if data.find(b"\r\n\r\n", max(0, new_from - 3)) >= 0:
        return True
    recent = max(0, new_from - 1)  # a CRLF whose CR came before the new bytes
    return data.count(b"\n", new_from) != data.count(b"\r\n", recent)


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
        self.last_accepted = 0.0  # time.monotonic() of this worker's last accept
        self.awaiting_heads: set[TConn] = set()  # connections whose event-loop read of a head is under way
        self._next_head_sweep = 0.0
        self._stopping_since: float | None = None

    def enqueue_req(self, conn):
        self.busy_threads += 1
        super().enqueue_req(conn)
        if self.busy_threads >= self.cfg.threads:
            self.set_accept_enabled(False)

    def finish_request(self, conn, fs):
        self.busy_threads -= 1
        if self._reads_heads() and _kept_alive(fs) and conn.parser.unreader.buf.getvalue():
            # The client sent the start of its next request with the last one (pipelining): gthread would hand
            # the connection to a thread straight away, to wait there for the rest of that head.
            self._await_head(conn, time.monotonic() + self.cfg.keepalive, conn.parser.unreader.take_buffered())
            return
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
        if self.held_back:  # soon while connections are coming in (a burst), less often once they are not
            burst = time.monotonic() - self.last_accepted < BURST_SECONDS
            timeout = min(timeout, BURST_RECHECK_SECONDS if burst else RECHECK_SECONDS)
        super().wait_for_and_dispatch_events(timeout)

    def handle(self, conn):
        """One request on ``conn`` (a thread of the pool): its reads keep the deadline rule from here on. (Not from
        its first byte: the time it may have queued for a busy pool is the server's, not the client's.)"""
        if not isinstance(conn.sock, DeadlineSocket):  # the connection's first request: before its parser exists
            conn.sock = DeadlineSocket(conn.sock, ReadDeadline(*self.read_settings))
        conn.sock.deadline.restart()
        conn.sock.timed_out = False
        setattr(conn.sock, CLOSE_AFTER_RESPONSE, False)
        head = getattr(conn, "head", None)
        if head is not None:  # the event loop read the head (and maybe the start of the body)
            conn.head = conn.head_deadline = None
            conn.sock.setblocking(True)
            conn.init()  # the parser (once per connection), to hand it the bytes the event loop read
            conn.parser.unreader.unread(bytes(head))
        return super().handle(conn)

    # --- Heads are read by the event loop --------------------------------------------------------------------

    def _reads_heads(self) -> bool:
        """Off for TLS and HTTP/2 (gunicorn reads their first bytes itself); neither is used behind the ALB."""
        return not self.cfg.is_ssl and "h2" not in self.cfg.http_protocols

    def accept(self, listener):
        if not self._reads_heads():
            return super().accept(listener)
        try:
            client_sock, client_addr = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        self.last_accepted = time.monotonic()
        conn = TConn(self.cfg, client_sock, client_addr, listener.getsockname())
        # A new connection owes its first byte within the read grace (clients send their request on connecting);
        # the keep-alive timeout is for connections that have been answered.
        self._await_head(conn, idle_until=self.last_accepted + self.read_settings[0])

    def on_client_socket_readable(self, conn, client):
        """A kept-alive connection has bytes of its next request: read its head here, not in a thread."""
        if not self._reads_heads():
            return super().on_client_socket_readable(conn, client)
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._await_head(conn, idle_until=conn.timeout)
        self._read_head(conn)

    def _await_head(self, conn, idle_until: float, start: bytes = b"") -> None:
        """Wait in the event loop for ``conn``'s head (of which ``start`` has arrived), then hand it to a thread."""
        conn.head, conn.head_deadline, conn.idle_until = bytearray(), None, idle_until
        conn.sock.setblocking(False)
        self.awaiting_heads.add(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._read_head, conn))
        if start:
            self._head_bytes(conn, start)

    def _read_head(self, conn, _fileobj=None) -> None:
        try:
            data = conn.sock.recv(HEAD_BUFFER_LIMIT - len(conn.head))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # reset by the client
            data = b""
        if not data:  # closed by the client before a head was whole: nothing to answer
            self._close_awaiting(conn)
            return
        self._head_bytes(conn, data)

    def _head_bytes(self, conn, data: bytes) -> None:
        if conn.head_deadline is None:  # the request's first byte: its read deadline starts now
            conn.head_deadline = ReadDeadline(*self.read_settings)
        conn.head_deadline.received(len(data))
        conn.head += data
        if head_is_complete(conn.head, len(conn.head) - len(data)) or len(conn.head) >= HEAD_BUFFER_LIMIT:
            self.poller.unregister(conn.sock)
            self.awaiting_heads.discard(conn)
            conn.data_ready = True  # gthread's handle must not wait for the first bytes again
            self.enqueue_req(conn)

    def _close_awaiting(self, conn) -> None:
        self.awaiting_heads.discard(conn)
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self):
        """gthread's sweep, then this worker's: a head that fell behind its read deadline, or a connection silent
        past its keep-alive timeout (2 s once the worker is stopping, as gthread gives its kept-alive ones)."""
        super().murder_pending()
        now = time.monotonic()
        if now < self._next_head_sweep and self.alive:
            return
        self._next_head_sweep = now + HEAD_SWEEP_SECONDS
        if not self.alive and self._stopping_since is None:
            self._stopping_since = now
        for conn in list(self.awaiting_heads):
            if conn.head_deadline is not None:
                expired = conn.head_deadline.remaining() <= 0
            else:
                idle_until = conn.idle_until
                if self._stopping_since is not None:
                    idle_until = min(idle_until, self._stopping_since + STOP_KEEPALIVE_LINGER)
                expired = now >= idle_until
            if expired:
                self._close_awaiting(conn)


def _kept_alive(fs) -> bool:
    """Whether a finished request's connection stays open (its thread's ``handle`` said so, without raising)."""
    return not fs.cancelled() and fs.exception() is None and fs.result() is True


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
