"""How the web worker reads requests: the read-deadline rule, the client socket that keeps it, and the little of a
request head the worker's event loop must understand to know when a request has arrived (web_app/worker.py).

Reads keep an average rate, the rule of Apache's mod_reqtimeout: nothing is owed in the first ``grace`` seconds, then
at least ``min_rate`` bytes per second. gunicorn judges every head itself; what is parsed here only decides how much
the event loop reads before a thread takes the request.
"""

from __future__ import annotations

import os
import socket
import time

from gunicorn.http.errors import NoMoreData

READ_GRACE_ENV = "FIREWATCH_READ_GRACE_SECONDS"
READ_MIN_RATE_ENV = "FIREWATCH_READ_MIN_RATE"
DEFAULT_READ_GRACE_SECONDS = 10.0
DEFAULT_READ_MIN_RATE = 16 * 1024  # bytes/s: 20 MB in about 21 minutes; a byte every 2 s is cut after the grace

# Heads are read by the event loop up to this many bytes (real ones are a few kB; gunicorn's own limits allow more,
# and a longer head is read on by a thread, under the read deadline).
HEAD_BUFFER_LIMIT = 64 * 1024


class ReadTimedOut(NoMoreData, TimeoutError):
    """The client sent its request too slowly. A NoMoreData to gunicorn (connection closed quietly), a
    TimeoutError to the app (answered 408)."""

    def __str__(self) -> str:
        return "the request arrived too slowly"


def env_number(name: str, default: float) -> float:
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
        return (env_number(READ_GRACE_ENV, DEFAULT_READ_GRACE_SECONDS),
                env_number(READ_MIN_RATE_ENV, DEFAULT_READ_MIN_RATE))

    def restart(self) -> None:
        self._started = self._clock()
        self._received = 0

    def received(self, count: int) -> None:
        self._received += count

    def elapsed(self) -> float:
        return self._clock() - self._started

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


def parse_head(head: bytes | bytearray) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """A request head's first line and its header lines as (lower-case name, value) pairs, in order, duplicates kept;
    up to its end (CRLF CRLF) where it has one."""
    end = head.find(b"\r\n\r\n")
    first, *lines = bytes(head[:end] if end >= 0 else head).split(b"\r\n")
    pairs = [(name.strip().lower(), value.strip()) for name, _, value in (line.partition(b":") for line in lines)]
    return first, pairs


def body_length(head: bytes | bytearray) -> int | None:
    """The body length of a whole request ``head`` (ending in CRLF CRLF) whose body the event loop may read: exactly
    one Content-Length of digits, and no Transfer-Encoding (chunked: gunicorn finds its end) or Expect (the client
    waits for gunicorn's 100 Continue). None for any other; gunicorn judges the head itself either way."""
    _, headers = parse_head(head)
    if any(name in (b"transfer-encoding", b"expect") for name, _ in headers):
        return None
    lengths = [value for name, value in headers if name == b"content-length"]
    if len(lengths) != 1 or not lengths[0].isdigit() or len(lengths[0]) > 12:
        return None
    return int(lengths[0])


_NOTHING = memoryview(b"")


class DeadlineSocket:
    """A client socket whose blocking reads end at the request's read deadline; everything else is the socket's."""

    def __init__(self, sock: socket.socket, deadline: ReadDeadline) -> None:
        self._sock = sock
        self.deadline = deadline
        self.timed_out = False  # this request's reads ran out of time: its connection cannot be reused
        self._early = _NOTHING  # what the event loop read before the thread took the request, not yet read

    def __getattr__(self, name):
        return getattr(self._sock, name)

    @property
    def raw(self) -> socket.socket:
        """The client socket itself, without what the event loop read (for closing: see worker._linger)."""
        return self._sock

    def prefill(self, data: bytes | bytearray) -> None:
        """Bytes the event loop read from this socket: reads return them first, a piece at a time (handing them to
        gunicorn's parser whole would copy all that is left at every read of a large body)."""
        self._early = memoryview(data)

    def take_early(self) -> bytes:
        """What is left of the prefilled bytes (the start of a pipelined request), no longer to be read here."""
        rest, self._early = bytes(self._early), _NOTHING
        return rest

    def recv(self, size: int, flags: int = 0) -> bytes:
        if self._early:
            data, rest = bytes(self._early[:size]), self._early[size:]
            self._early = rest if rest else _NOTHING  # an empty view of the buffer would still keep all of it
            return data
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
