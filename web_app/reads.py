"""How the web worker reads requests: the read-deadline rule, the client socket that keeps it, and the little of a
request (its head, a chunked body's framing) the worker's event loop must understand to know when it has arrived
(web_app/worker.py).

Reads keep an average rate, the rule of Apache's mod_reqtimeout: nothing is owed in the first ``grace`` seconds, then
at least ``min_rate`` bytes per second. gunicorn judges every head itself; what is parsed here only decides how much
the event loop reads before a thread takes the request.
"""

from __future__ import annotations

import os
import socket
import time
from typing import BinaryIO, NamedTuple

from gunicorn.http.errors import NoMoreData
from gunicorn.http.message import DEFAULT_MAX_HEADERFIELD_SIZE, MAX_HEADERS

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


def env_number(name: str, default: float, zero_allowed: bool = False) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    value = float(raw)
    if not (value > 0 or zero_allowed and value == 0):
        raise ValueError(f"{name} must be {'0 or more' if zero_allowed else 'positive'}, got {raw!r}")
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


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

# Each chunk of a chunked body costs the event loop a few steps of Python (about 1 us), which every other
# connection of the worker waits for; so a read takes about 512 chunks' worth, by the body's chunks so far: 64 kB of
# chunks of 128 bytes or more, 4 kB (0.8 ms of scanning) of the smallest. gunicorn's parser spends more on them.
CHUNKED_READ_SIZE = 64 * 1024
SMALLEST_CHUNKED_READ = 4 * 1024
CHUNKS_PER_READ = 512
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")


class NotReadHere(Exception):
    """The rest of this request's body is left to its thread (gunicorn's parser, under the read deadline)."""


class BodyTooLarge(Exception):
    """A chunk says the body is longer than the app takes: its thread reads no more of it (BodyOverLimit)."""


class BodyOverLimit(OSError):
    """A read of a body past a chunk that took it over the app's limit: not waited for, since the app would refuse
    it once it had read that far (Werkzeug reports it as a disconnect, the app answers 413: web_app.app)."""

    def __str__(self) -> str:
        return "the request body is larger than the limit"


class ChunkLimits(NamedTuple):
    """What a chunked body may hold: the app's limit on a body, and gunicorn's on a chunk size line
    (``limit_request_field_size``) and on a trailer section (``max_buffer_headers``): past those gunicorn refuses it
    at once, with the bytes it has."""

    largest: int
    line: int = DEFAULT_MAX_HEADERFIELD_SIZE
    trailers: int = 100 * (DEFAULT_MAX_HEADERFIELD_SIZE + 2) + 4

    @classmethod
    def of(cls, cfg, largest: int) -> ChunkLimits:
        """As gunicorn reads its settings (gunicorn.http.message.Request)."""
        line = cfg.limit_request_field_size if cfg.limit_request_field_size > 0 else DEFAULT_MAX_HEADERFIELD_SIZE
        fields = cfg.limit_request_fields if 0 < cfg.limit_request_fields <= MAX_HEADERS else MAX_HEADERS
        return cls(largest, line, fields * (line + 2) + 4)


class Body:
    """How a request's body ends, as its bytes arrive in the event loop's buffer (the head included)."""

    expects_continue = False  # the client waits for 100 Continue before it sends the body

    def end(self, data: bytes | bytearray) -> int | None:
        """The offset just past the body once it has all arrived in ``data``; None while more is to come. Raises
        NotReadHere when the event loop is to read no more of it, BodyTooLarge when the app would refuse it."""
        raise NotImplementedError

    def read_size(self, have: int) -> int:
        """How many bytes the next read may take, when ``have`` have arrived."""
        raise NotImplementedError

    def settled(self, have: int) -> int:
        """How many of the first bytes of the buffer (``have`` long) finding the body's end needs no more: they may
        leave it (for disk: web_app.worker), and ``shift`` is then told."""
        raise NotImplementedError

    def shift(self, count: int) -> None:
        """The buffer's first ``count`` bytes have left it: what is kept of offsets into it moves with them."""
        raise NotImplementedError


class LengthBody(Body):
    """A body of a Content-Length: it ends that many bytes after the head."""

    def __init__(self, start: int, length: int) -> None:
        self.length, self.stop = length, start + length

    def end(self, data):
        return self.stop if len(data) >= self.stop else None

    def read_size(self, have):
        return self.stop - have  # not past the body: the next request's bytes are read with the next request

    def settled(self, have):
        return have

    def shift(self, count):
        self.stop -= count


class ChunkedBody(Body):
    """A chunked body (RFC 9112 7.1): size lines, chunks, the last chunk (size 0), trailers, an empty line. Each
    call scans only the bytes that arrived since the last."""

    def __init__(self, start: int, limits: ChunkLimits) -> None:
        self._start, self._at, self._limits = start, start, limits
        self._in_chunk = 0  # bytes of the current chunk and its CRLF still to come
        self._chunks = self._size = 0
        self._trailers_from: int | None = None  # where the trailer section starts, once the last chunk has come

    def read_size(self, have):
        if self._chunks < 16:
            return CHUNKED_READ_SIZE
        average = (self._at - self._start) / self._chunks
        return int(min(CHUNKED_READ_SIZE, max(SMALLEST_CHUNKED_READ, CHUNKS_PER_READ * average)))

    def settled(self, have):
        # Scanning looks back at most 2 bytes before where it stands (a chunk's closing CRLF), or at the whole
        # trailer section once the last chunk has come (bounded by ChunkLimits.trailers).
        anchor = self._trailers_from if self._trailers_from is not None else self._at
        return max(0, min(have, anchor - 2))

    def shift(self, count):
        self._start -= count  # kept only for the chunks' average size (_at - _start), which stays
        self._at -= count
        if self._trailers_from is not None:
            self._trailers_from -= count

    def end(self, data):
        if self._trailers_from is not None:
            return self._trailers_end(data)
        while True:
            if self._in_chunk:
                step = min(self._in_chunk, len(data) - self._at)
                self._at += step
                self._in_chunk -= step
                if self._in_chunk:
                    return None
                if data[self._at - 2:self._at] != b"\r\n":
                    raise NotReadHere("a chunk is not followed by CRLF")
            line_end = data.find(b"\r\n", self._at, self._at + self._limits.line + 2)
            if line_end < 0:
                if len(data) - self._at > self._limits.line:
                    raise NotReadHere("a chunk size line is too long")
                return None
            line, self._at = bytes(data[self._at:line_end]), line_end + 2
            if self._chunk(line) == 0:
                self._trailers_from = self._at
                return self._trailers_end(data)

    def _chunk(self, line: bytes) -> int:
        size, extension, _ = line.partition(b";")
        if extension:  # whitespace may come before an extension, and only then (as gunicorn reads it)
            size = size.rstrip(b" \t")
        if not size or len(size) > 16 or not _HEX_DIGITS.issuperset(size):
            raise NotReadHere("a chunk size is not a hexadecimal number")
        length = int(size, 16)
        self._size += length
        if self._size > self._limits.largest:
            raise BodyTooLarge()
        self._chunks += 1
        self._in_chunk = length + 2 if length else 0
        return length

    def _trailers_end(self, data) -> int | None:
        """The trailer section ends at an empty line: at once (CRLF) or after its fields (CRLF CRLF)."""
        section = self._trailers_from
        if data[section:section + 2] == b"\r\n":
            return section + 2
        found = data.find(b"\r\n\r\n", max(section, self._at - 3))
        if found >= 0:
            return found + 4
        self._at = len(data)
        if len(data) - section > self._limits.trailers:
            raise NotReadHere("the trailer section is too long")
        return None


def request_body(head: bytes | bytearray, limits: ChunkLimits) -> Body | None:
    """How the body of a whole request ``head`` (ending in CRLF CRLF) ends: exactly one Content-Length of digits,
    over 0; or, in HTTP/1.1, exactly one ``Transfer-Encoding: chunked`` and no Content-Length. None for any other
    (no body, or one gunicorn refuses for its head: it judges every head itself), or an Expect other than one
    ``100-continue`` (gunicorn answers 417; it ignores one in HTTP/1.0)."""
    start = head.find(b"\r\n\r\n") + 4
    if start < 4:  # no whole head (over the event loop's limit): its thread reads on
        return None
    first, headers = parse_head(head)
    version = first.rpartition(b" ")[2]
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        return None
    values: dict[bytes, list[bytes]] = {}
    for name, value in headers:
        values.setdefault(name, []).append(value)
    expect = values.get(b"expect")
    if expect is not None and [value.lower() for value in expect] != [b"100-continue"]:
        return None
    lengths, encodings = values.get(b"content-length", []), values.get(b"transfer-encoding", [])
    if lengths and not encodings:
        if len(lengths) != 1 or not lengths[0].isdigit() or len(lengths[0]) > 12 or not int(lengths[0]):
            return None
        body: Body = LengthBody(start, int(lengths[0]))
    elif encodings and not lengths and version == b"HTTP/1.1":
        if [value.lower() for value in encodings] != [b"chunked"]:
            return None
        body = ChunkedBody(start, limits)
    else:
        return None
    body.expects_continue = expect is not None and version == b"HTTP/1.1"
    return body


_NOTHING = memoryview(b"")


class DeadlineSocket:
    """A client socket whose blocking reads end at the request's read deadline; everything else is the socket's."""

    def __init__(self, sock: socket.socket, deadline: ReadDeadline) -> None:
        self._sock = sock
        self.deadline = deadline
        self.timed_out = False  # this request's reads ran out of time: its connection cannot be reused
        self._early = _NOTHING  # what the event loop read before the thread took the request, not yet read
        self._spooled: BinaryIO | None = None  # the part of it that went to disk, read before _early
        self.expect_answered = False  # the event loop sent this request's 100 Continue: gunicorn's is not sent
        # The body is longer than the app takes (its Content-Length or a chunk says so): the client is not asked for
        # it (no 100 Continue), reads past what the event loop read raise BodyOverLimit, and the connection closes
        # after the response (rather than wait for a body that is not coming, or read it as the next request).
        self.over_limit = False
        self.bytes_received = 0  # this request's, read or not

    def __getattr__(self, name):
        return getattr(self._sock, name)

    def new_request(self, expect_answered: bool = False, over_limit: bool = False) -> None:
        """A request starts on this connection (a thread has taken it): its own deadline, counts and flags."""
        self.deadline.restart()
        self.timed_out = False
        self.bytes_received = 0
        self.expect_answered, self.over_limit = expect_answered, over_limit

    @property
    def raw(self) -> socket.socket:
        """The client socket itself, without what the event loop read (for closing: see worker._linger)."""
        return self._sock

    def prefill(self, data: bytes | bytearray, spooled: BinaryIO | None = None) -> None:
        """Bytes the event loop read from this socket: reads return them first, a piece at a time (handing them to
        gunicorn's parser whole would copy all that is left at every read of a large body). ``spooled``: a file
        holding what it read before ``data`` and moved to disk (the worker's body buffer was full); this socket
        closes it once it is read, or forgotten."""
        self._spooled = spooled
        if spooled is not None:
            self.bytes_received += spooled.seek(0, os.SEEK_END)
            spooled.seek(0)
        self._early = memoryview(data)
        self.bytes_received += len(data)

    def forget_early(self) -> None:
        """Lets go of what is left of the prefilled bytes: the connection closes, and they will not be read."""
        self._close_spooled()
        self._early = _NOTHING

    def take_early(self) -> bytes:
        """What is left of the prefilled bytes (the start of a pipelined request), no longer to be read here."""
        rest = self._spooled.read() if self._spooled is not None else b""
        self._close_spooled()
        rest, self._early = rest + bytes(self._early), _NOTHING
        return rest

    def _close_spooled(self) -> None:
        if self._spooled is not None:
            self._spooled.close()  # an unnamed temporary file: its space is freed now
            self._spooled = None

    def send(self, data, flags: int = 0) -> int:
        if (self.expect_answered or self.over_limit) and data == CONTINUE:  # gunicorn's, in wsgi.create
            self.expect_answered = False
            return len(data)
        return self._sock.send(data, flags)

    def recv(self, size: int, flags: int = 0) -> bytes:
        if self._spooled is not None:
            data = self._spooled.read(size)
            if data:
                return data
            self._close_spooled()
        if self._early:
            data, rest = bytes(self._early[:size]), self._early[size:]
            self._early = rest if rest else _NOTHING  # an empty view of the buffer would still keep all of it
            return data
        if self.over_limit:
            raise BodyOverLimit()
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
        self.bytes_received += len(data)
        return data
