"""The gunicorn worker the web app runs in: gunicorn's threaded worker (gthread) with these additions.

- A connection takes a thread only once its request has arrived: its head, and its body (of a Content-Length, or
  chunked) when the worker has room for it. gthread hands a new connection to a thread that waits up to 5 s for its
  first bytes, a kept-alive one to a thread as soon as a byte of its next request comes, and the thread then waits
  on the socket for the rest, so clients that connect and say nothing, or send their requests slowly, hold every
  thread. Here the event loop reads requests (non-blocking: heads up to ``HEAD_BUFFER_LIMIT``, bodies up to
  ``FIREWATCH_BODY_BUFFER_MB`` in all per worker), sends the ``100 Continue`` a client may wait for, and hands the
  connection, with what it read, to a thread. Once the buffer is full, what arrives of a body goes on to disk
  (``FIREWATCH_BODY_SPOOL_MB``, all workers together; unnamed temporary files, gone once read or the connection
  closes), so a slow upload still takes no thread. A request that finds the disk's share full too, or whose chunked
  framing gunicorn refuses (web_app/reads.py), goes to its thread with what arrived, and the thread reads the rest
  under the read deadline, as before. A body longer than the app takes is not read: a Content-Length over the app's limit goes
  to its thread without a 100 Continue (the app answers from the head), and a chunked one to its thread once a chunk
  takes it past the limit, which reads no further (the app answers 413 where a route reads it). A new connection
  that sends nothing is closed after the read grace; a kept-alive one after the keep-alive timeout, as in gthread.
- Reads time out. gthread's thread blocks on the socket until the request has arrived, without a deadline, so a few
  clients trickling a body hold every thread. Here reads keep an average rate: nothing is owed in the first
  ``grace`` seconds, then at least ``min_rate`` bytes per second (the rule of Apache's mod_reqtimeout), counted from
  a request's first byte in the event loop, and again from when a thread takes it. A head that falls behind is
  closed; a body that falls behind gets 408 (or gunicorn's answer to a head it refuses) and the connection is
  closed. The rule and the socket that keeps it are in web_app/reads.py.
- Closing a connection does not block the event loop: gthread's graceful close waits there (up to 2 s) for the
  client to close its end; here the event loop waits for it among its other work.
- Memory a burst of large requests freed goes back to the system: after one (1 MB or more arrived), the event loop
  collects young reference cycles (an error's traceback can hold a request's buffers) and trims the heap
  (``malloc_trim``), which glibc would otherwise keep.
- gunicorn's own error responses (400, 414, 431... sent before the app sees a request) carry the security headers
  and the API's JSON error form, instead of gunicorn's bare HTML page.
- A worker out of file descriptors stops accepting for ``ACCEPT_PAUSE_SECONDS`` (gthread's worker died, with every
  connection it held); it raises its soft limit on them first, to what ``worker_connections`` needs.
- A worker accepts connections only while one of its threads is free, so that the other workers take them, and
  only while it holds no more connections than the others (least connections, web_app/balance.py).
- No ``Server`` banner on any response.
"""

from __future__ import annotations

import errno
import gc
import json
import resource
import selectors
import socket
import tempfile
import time
from functools import partial

from gunicorn import util
from gunicorn.http import message as gunicorn_message
from gunicorn.http import wsgi as gunicorn_wsgi
from gunicorn.http.unreader import IterUnreader
from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, TConn, ThreadWorker

from inference.contract import BAD_REQUEST, INTERNAL_ERROR, REQUEST_TIMEOUT, SERVER_ERROR_CODES

from .admission import release_freed_memory
from .balance import BURST_RECHECK_SECONDS, BURST_SECONDS, RECHECK_SECONDS, ConnectionTable
from .errors import CLOSE_AFTER_RESPONSE, SLOW_UPLOAD_MESSAGE
from .reads import (CONTINUE, HEAD_BUFFER_LIMIT, Body, BodyTooLarge, ChunkLimits, DeadlineSocket, LengthBody,
                    NotReadHere, ReadDeadline, env_number, head_is_complete, request_body)
from .security import security_headers

# Made when the master imports this worker class, before it forks the workers: they all share it.
CONNECTIONS = ConnectionTable()

BODY_BUFFER_ENV = "FIREWATCH_BODY_BUFFER_MB"
# Bodies read by the event loop, all connections of a worker together: 3 photos at the upload limit. Bytes a client
# must actually send, so filling it costs an attacker that much upload; past it, bodies go on arriving on disk.
DEFAULT_BODY_BUFFER_MB = 64
BODY_SPOOL_ENV = "FIREWATCH_BODY_SPOOL_MB"
# Bodies the event loop moved to disk (unnamed temporary files in TMPDIR) once the buffer was full, all workers of
# the server together (each has an equal share; the disk does not grow with the cores): 50 photos at the upload
# limit. Only when a worker's share is full too does a request go to its thread with what has arrived, as gthread
# would, and the thread wait for the rest.
DEFAULT_BODY_SPOOL_MB = 1024
BODY_READ_SIZE = 1024 * 1024  # per recv, as gunicorn's own body reads
LARGE_REQUEST_BYTES = 1024 * 1024
LINGER_SECONDS, LINGER_MAX_DRAIN = 2.0, 64 * 1024  # a closing connection's wait for its client (gunicorn's values)
SWEEP_SECONDS = 0.25  # how often the event loop looks for requests, silent and closing connections out of time
# Out of file descriptors (or kernel memory for a socket), a worker stops accepting this long, as nginx does (for
# 500 ms), rather than die with every connection it holds, as gthread does; the connection waits in the backlog.
ACCEPT_PAUSE_SECONDS = 0.1
_ACCEPT_EXHAUSTED = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)

_SERVER_ERROR_MESSAGES = {
    414: "The address is too long.",
    417: "The request's Expect header asks for something other than 100-continue.",
    431: "The request has too many or too large headers.",
    500: "Something went wrong on our side; please try again.",
    501: "The request's Transfer-Encoding is not supported: send a Content-Length or chunked.",
}


class BannerlessResponse(gunicorn_wsgi.Response):
    """gunicorn's response without the ``Server: gunicorn`` line (the banner only helps an attacker pick exploits),
    which says ``Connection: close`` when the request's reads timed out (the rest of its body may still come) or the
    app asked for it (``errors.close_after_response``)."""

    def default_headers(self):
        return [line for line in super().default_headers() if not line.startswith("Server:")]

    def should_close(self):
        closing = any(getattr(self.sock, flag, False) for flag in ("timed_out", "over_limit", CLOSE_AFTER_RESPONSE))
        return closing or super().should_close()


class FirewatchWorker(ThreadWorker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.busy_threads = 0  # connections handed to the thread pool and not finished; main thread only
        self.read_settings = ReadDeadline.settings_from_env()
        self.held_back = False  # not accepting only because another worker holds fewer connections
        self.last_accepted = 0.0  # time.monotonic() of this worker's last accept
        self.body_buffer_bytes = int(env_number(BODY_BUFFER_ENV, DEFAULT_BODY_BUFFER_MB) * 1024 * 1024)
        self.largest_body = self.body_buffer_bytes  # the app's request limit, once it is loaded (load_wsgi)
        self.awaiting: set[TConn] = set()  # connections whose request the event loop is reading
        self.early_bytes = 0  # bytes it read for requests no thread has taken yet (bounded by body_buffer_bytes)
        self.body_spool_bytes = int(env_number(BODY_SPOOL_ENV, DEFAULT_BODY_SPOOL_MB, zero_allowed=True)
                                    * 1024 * 1024 / max(1, self.cfg.workers))
        self.spooled_bytes = 0  # of those, bytes moved to disk (bounded by body_spool_bytes)
        self.lingering: dict = {}  # closing sockets waiting for their client to close: [until, bytes drained]
        self._next_sweep = 0.0
        self.trim_due = False  # a large request finished since the last sweep: hand its freed heap back
        self._stopping_since: float | None = None
        self.accept_paused_until = 0.0  # time.monotonic() until which accepting waits for file descriptors to free
        # Off for TLS and HTTP/2 (gunicorn reads their first bytes itself); neither is used behind the ALB.
        self.reads_early = not self.cfg.is_ssl and "h2" not in self.cfg.http_protocols

    def init_process(self):
        raise_open_file_limit(open_files_needed(self.worker_connections))
        super().init_process()

    def load_wsgi(self):
        super().load_wsgi()
        # The app's own limit on a request body (Flask's MAX_CONTENT_LENGTH), where there is one.
        config = getattr(self.wsgi, "config", None)
        self.largest_body = (config or {}).get("MAX_CONTENT_LENGTH") or self.body_buffer_bytes
        self.chunk_limits = ChunkLimits.of(self.cfg, self.largest_body)

    def enqueue_req(self, conn):
        self.busy_threads += 1
        super().enqueue_req(conn)
        if self.busy_threads >= self.cfg.threads:
            self.set_accept_enabled(False)

    def finish_request(self, conn, fs):
        self.busy_threads -= 1
        # glibc keeps freed heap for reuse, so a few concurrent uploads would leave the worker that much larger for
        # good: the next sweep hands it back, once the request's buffers are free (the connection's are not yet).
        self.trim_due |= getattr(conn.sock, "bytes_received", 0) >= LARGE_REQUEST_BYTES
        self._finish(conn, fs)

    def _finish(self, conn, fs) -> None:
        outcome = _outcome(fs)
        if self.reads_early and outcome is True:
            # The start of the next request may have come with the last one (pipelining), read by gunicorn's parser
            # or by the event loop: gthread would hand the connection to a thread straight away, to wait there for
            # the rest of it (and would not see the event loop's bytes at all).
            start = conn.parser.unreader.take_buffered() + conn.sock.take_early()
            if start:
                self._await_request(conn, time.monotonic() + self.cfg.keepalive, start)
                return
        elif self.reads_early and outcome is False:
            # gthread closes gracefully here, on the event loop: it waits up to 2 s for the client to close its end,
            # and a client that does not stalls every other connection of the worker meanwhile. The socket lingers
            # without its wrapper, which may still hold an unread body the event loop read (up to the buffer's size).
            if isinstance(conn.sock, DeadlineSocket):
                conn.sock.forget_early()
            self._linger(getattr(conn.sock, "raw", conn.sock))
            return
        super().finish_request(conn, fs)

    def _linger(self, sock) -> None:
        """gunicorn's graceful close (RFC 9112 9.6: FIN, then read what the client still sends until it closes or
        ``LINGER_SECONDS`` pass, so the kernel does not answer unread bytes with a reset that can cut the response
        short), with the waiting done by the event loop. It counts as a connection of the worker until closed (a
        stopping worker waits for it, as for any)."""
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.setblocking(False)
            self.poller.register(sock, selectors.EVENT_READ, partial(self._drain_lingering, sock))
        except (OSError, ValueError, KeyError):
            self.nr_conns -= 1
            util.close(sock)
            return
        self.lingering[sock] = [time.monotonic() + LINGER_SECONDS, 0]  # until, bytes drained

    def _drain_lingering(self, sock, _fileobj=None) -> None:
        try:
            data = sock.recv(LINGER_MAX_DRAIN)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        self.lingering[sock][1] += len(data)
        if not data or self.lingering[sock][1] >= LINGER_MAX_DRAIN:
            self._end_linger(sock)

    def _end_linger(self, sock) -> None:
        del self.lingering[sock]
        try:
            self.poller.unregister(sock)
        except (KeyError, ValueError, OSError):
            pass
        self.nr_conns -= 1
        util.close(sock)

    def set_accept_enabled(self, enabled):
        """Accept connections only while a thread is free: a worker whose threads all wait on slow clients leaves
        new connections to the other workers, instead of queueing them behind those clients. (gthread accepts up
        to ``worker_connections`` whatever its threads are doing.) And only while no other worker holds fewer
        connections: a keep-alive connection stays where it was accepted, so the split is what balances the load."""
        able = enabled and self.busy_threads < self.cfg.threads and time.monotonic() >= self.accept_paused_until
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
        paused = self.accept_paused_until - time.monotonic()
        if paused > 0:
            timeout = min(timeout, paused)
        super().wait_for_and_dispatch_events(timeout)

    def handle(self, conn):
        """One request on ``conn`` (a thread of the pool): its reads keep the deadline rule from here on. (Not from
        its first byte: the time it may have queued for a busy pool is the server's, not the client's.)"""
        if not isinstance(conn.sock, DeadlineSocket):  # the connection's first request: before its parser exists
            conn.sock = DeadlineSocket(conn.sock, ReadDeadline(*self.read_settings))
        conn.sock.new_request(getattr(conn, "expect_answered", False), getattr(conn, "over_limit", False))
        setattr(conn.sock, CLOSE_AFTER_RESPONSE, False)
        if getattr(conn, "early", None) is not None:  # the event loop read the head (and maybe the body, or some)
            # No local name for it: one would keep all of it (up to the upload limit) until the request is done,
            # where the socket lets go of what has been read.
            conn.sock.prefill(conn.early, conn.spool)
            # Counted against the body buffer until now, while it waited for a thread; the event loop's to update.
            self.method_queue.defer(self._release_early, len(conn.early), conn.spooled)
            conn.early = conn.early_deadline = conn.body = conn.spool = conn.head = None
            conn.expect_answered = conn.over_limit = False
        return super().handle(conn)

    # --- Requests are read by the event loop -----------------------------------------------------------------

    def accept(self, listener):
        try:
            if not self.reads_early:
                return super().accept(listener)
            client_sock, client_addr = listener.accept()
        except OSError as e:
            if e.errno in _ACCEPT_EXHAUSTED:
                self.log.warning("Cannot accept a connection (%s): not accepting for %.1f s", e, ACCEPT_PAUSE_SECONDS)
                self.accept_paused_until = time.monotonic() + ACCEPT_PAUSE_SECONDS
                self.set_accept_enabled(False)
            elif e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        self.last_accepted = time.monotonic()
        conn = TConn(self.cfg, client_sock, client_addr, listener.getsockname())
        # A new connection owes its first byte within the read grace (clients send their request on connecting);
        # the keep-alive timeout is for connections that have been answered.
        self._await_request(conn, idle_until=self.last_accepted + self.read_settings[0])

    def on_client_socket_readable(self, conn, client):
        """A kept-alive connection has bytes of its next request: read it here, not in a thread."""
        if not self.reads_early:
            return super().on_client_socket_readable(conn, client)
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._await_request(conn, idle_until=conn.timeout)
        self._read_early(conn)

    def _await_request(self, conn, idle_until: float, start: bytes = b"") -> None:
        """Read ``conn``'s request in the event loop (``start`` has arrived), then hand it to a thread."""
        conn.early, conn.early_deadline, conn.idle_until = bytearray(), None, idle_until
        conn.body = None  # how its body ends, once the head is whole (NO_BODY: none read here)
        conn.spool, conn.spooled, conn.head = None, 0, None  # what went to disk before conn.early, once any did
        conn.sock.setblocking(False)
        self.awaiting.add(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._read_early, conn))
        if start:
            self._early_bytes(conn, start)

    def _read_early(self, conn, _fileobj=None) -> None:
        if conn.body is None:
            wanted = HEAD_BUFFER_LIMIT - len(conn.early)
        else:
            wanted = min(BODY_READ_SIZE, conn.body.read_size(len(conn.early)))
        try:
            data = conn.sock.recv(wanted)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # reset by the client
            data = b""
        if not data:  # closed by the client before its request was whole: nothing to answer
            self._close_awaiting(conn)
            return
        self._early_bytes(conn, data)

    def _early_bytes(self, conn, data: bytes) -> None:
        if conn.early_deadline is None:  # the request's first byte: its read deadline starts now
            conn.early_deadline = ReadDeadline(*self.read_settings)
        conn.early_deadline.received(len(data))
        new_from = len(conn.early)
        conn.early += data
        self.early_bytes += len(data)
        if conn.body is None:  # still the head
            if not head_is_complete(conn.early, new_from) and len(conn.early) < HEAD_BUFFER_LIMIT:
                return
            conn.body = self._request_body(conn)
            if conn.body.expects_continue:
                if not self._head_parses(conn):
                    conn.body = NO_BODY  # its thread's gunicorn refuses it (400, 414...), and sends no 100 Continue
                elif not self._send_continue(conn):
                    return
        try:
            arrived = conn.body.end(conn.early) is not None
        except NotReadHere:
            conn.body, arrived = NO_BODY, True  # a thread reads the rest, and gunicorn judges its framing
        except BodyTooLarge:  # its thread reads no further, and the app refuses it from what arrived (or routes it)
            conn.body, conn.over_limit, arrived = NO_BODY, True, True
        if arrived:
            self._hand_to_thread(conn)
        elif conn.spool is None and self.early_bytes <= self.body_buffer_bytes:
            return  # more of the body to come
        elif not self._spool(conn):  # the disk's share is full too: its thread reads the rest, as in gthread
            self._hand_to_thread(conn)

    def _spool(self, conn) -> bool:
        """Move what the event loop read of ``conn``'s request to disk, all but what finding the body's end still
        needs (a few bytes; a chunked body's trailer section), so that the body goes on arriving without a thread
        once the buffer is full. False when there is no room for it (or the disk refused part of it): what did not
        move stays in memory."""
        movable = conn.body.settled(len(conn.early))
        if not self.body_spool_bytes or self.spooled_bytes + movable > self.body_spool_bytes:
            return False
        if movable and conn.spool is None:
            conn.head = self._head(conn)  # kept for the sweep (408 or gunicorn's answer), as the rest leaves
            try:
                conn.spool = tempfile.TemporaryFile(buffering=0)
            except OSError as error:
                self.log.warning("Cannot spool a request body to disk (%s): its thread reads the rest", error)
                return False
        moved, whole = 0, True
        with memoryview(conn.early) as view:
            try:
                while moved < movable:
                    with view[moved:movable] as piece:
                        moved += conn.spool.write(piece)
            except OSError as error:  # the disk full, say: what was written stays counted, and read first
                self.log.warning("Cannot spool a request body to disk (%s): its thread reads the rest", error)
                whole = False
        del conn.early[:moved]
        conn.body.shift(moved)
        conn.spooled += moved
        self.spooled_bytes += moved
        self.early_bytes -= moved
        # What must stay (a chunked body's trailer section) stays within what a head may take: past that it goes to
        # its thread, as gunicorn's limit on it is far larger (100 fields of 8 kB), and a worker has 1,000 connections.
        return whole and len(conn.early) <= HEAD_BUFFER_LIMIT

    def _request_body(self, conn) -> Body:
        """How the request's body ends, when the event loop is to read it; NO_BODY when a thread is to: no body, one
        the head makes gunicorn refuse, one longer than the buffer, or one longer than the app takes (it answers
        from the head, unread: 413 where a route reads a body, so a client waiting for 100 Continue is not sent
        one, and does not send the body)."""
        body = request_body(conn.early, self.chunk_limits)
        if isinstance(body, LengthBody) and body.length > min(self.body_buffer_bytes + self.body_spool_bytes,
                                                              self.largest_body):
            conn.over_limit = body.length > self.largest_body  # nor is its thread to wait for it, nor a next request
            return NO_BODY
        return body or NO_BODY

    def _head_parses(self, conn) -> bool:
        """Whether gunicorn's parser takes the request's head, as it will once a thread takes the request: it sends
        its 100 Continue only then. (Parsed once more here, for requests that expect 100 Continue only.)"""
        try:
            gunicorn_message.Request(self.cfg, IterUnreader([self._head(conn)]), conn.client)
        except Exception:  # any refusal, whatever gunicorn raises for it: the thread gives the answer
            return False
        return True

    @staticmethod
    def _head(conn) -> bytes:
        """The request's head, to its closing CRLF CRLF (which it has)."""
        if conn.head is not None:
            return conn.head
        return bytes(conn.early[:conn.early.find(b"\r\n\r\n") + 4])

    def _send_continue(self, conn) -> bool:
        """The client waits for 100 Continue before it sends its body: sent here, for a head gunicorn takes
        (gunicorn sends it to every such request once a thread takes it, whatever the route). False when the
        connection was closed: a client whose socket cannot take 25 bytes is not reading what it is sent."""
        if _send_quietly(conn.sock, CONTINUE) != len(CONTINUE):
            self._close_awaiting(conn)
            return False
        conn.expect_answered = True
        return True

    def _hand_to_thread(self, conn) -> None:
        """Its bytes stay counted against the body buffer until a thread takes it (``handle``): with every thread
        busy, requests queue for one, and their bodies must not escape the bound while they wait."""
        self._stop_awaiting(conn)
        conn.data_ready = True  # gthread's handle must not wait for the first bytes again
        self.enqueue_req(conn)

    def _release_early(self, count: int, spooled: int = 0) -> None:
        self.early_bytes -= count
        self.spooled_bytes -= spooled

    def _stop_awaiting(self, conn) -> None:
        self.awaiting.discard(conn)
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass

    def _close_awaiting(self, conn) -> None:
        self._stop_awaiting(conn)
        self._drop_early(conn)
        self.nr_conns -= 1
        conn.close()

    def _drop_early(self, conn) -> None:
        """What the event loop read of a request that no thread will take: its memory and its disk are free."""
        self._release_early(len(conn.early), conn.spooled)
        if conn.spool is not None:
            conn.spool.close()
        conn.early = conn.spool = None

    def murder_pending(self):
        """gthread's sweep, then this worker's: a request that fell behind its read deadline (a body that did is
        answered 408), or a connection silent past its timeout (2 s once the worker is stopping, as gthread gives
        its kept-alive ones)."""
        super().murder_pending()
        now = time.monotonic()
        if now < self._next_sweep and self.alive:
            return
        self._next_sweep = now + SWEEP_SECONDS
        if not self.alive and self._stopping_since is None:
            self._stopping_since = now
        if self.trim_due:
            self.trim_due = False
            gc.collect(1)  # a request's objects can sit in reference cycles (an error's traceback and its frames)
            release_freed_memory()
        for sock, (until, _) in list(self.lingering.items()):
            if now >= until:
                self._end_linger(sock)
        for conn in list(self.awaiting):
            if conn.early_deadline is not None:
                expired = conn.early_deadline.remaining() <= 0
            else:
                idle_until = conn.idle_until
                if self._stopping_since is not None:
                    idle_until = min(idle_until, self._stopping_since + STOP_KEEPALIVE_LINGER)
                expired = now >= idle_until
            if not expired:
                continue
            if conn.body in (None, NO_BODY):
                self._close_awaiting(conn)
            elif self._head_parses(conn):
                self._answer_too_slow(conn)
            else:  # gunicorn's answer to the head comes first (400, 414...), as when the body arrives in time
                conn.body = NO_BODY
                self._hand_to_thread(conn)

    def _answer_too_slow(self, conn) -> None:
        """408 for a body that fell behind in the event loop (the app never saw it), with its access log line; the
        connection closes gracefully, as the client may still be sending (a reset can lose the answer)."""
        sent = _send_quietly(conn.sock, error_response_bytes(408, "Request Timeout", REQUEST_TIMEOUT,
                                                              SLOW_UPLOAD_MESSAGE))
        head = self._head(conn)[:-4]
        log_early = getattr(self.log, "answered_early", None)  # web_app.logs.JsonAccessLogger's
        if log_early is not None:
            log_early(conn.client[0], head, 408, sent, conn.early_deadline.elapsed())
        self._stop_awaiting(conn)
        self._drop_early(conn)
        self._linger(getattr(conn.sock, "raw", conn.sock))


class _NoBody(Body):
    """A request whose body, if any, the event loop does not read: it goes to a thread once its head is whole."""

    def end(self, data):
        return 0


NO_BODY = _NoBody()


def open_files_needed(worker_connections: int) -> int:
    """A connection takes a socket and, past the body buffer, a file; plus the worker's own (logs, the model, the
    decode slots' lock files, the arbiter's pipes). The usual soft limit, 1,024, runs out before 1,000 connections."""
    return 2 * worker_connections + 256


def raise_open_file_limit(wanted: int) -> None:
    """The process's soft limit on open files raised to ``wanted``, or as near as its hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _outcome(fs):
    """What a finished request's ``handle`` returned (True: keep the connection, False: close it), None when it was
    cancelled or raised."""
    return None if fs.cancelled() or fs.exception() is not None else fs.result()


def error_response_bytes(status_int: int, reason: str, code: str, message: str) -> bytes:
    """A whole error response in the API's form, with the security headers and no banner, that closes the
    connection."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = {
        "Connection": "close",
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        "Cache-Control": "no-store",
        **security_headers(),
    }
    head = f"HTTP/1.1 {status_int} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode("latin-1") + body


def write_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's error response in the API's form."""
    code = SERVER_ERROR_CODES.get(status_int, BAD_REQUEST if status_int < 500 else INTERNAL_ERROR)
    message = _SERVER_ERROR_MESSAGES.get(status_int, "The request could not be understood.")
    util.write_nonblock(sock, error_response_bytes(status_int, reason, code, message))


def _send_quietly(sock, data: bytes) -> int:
    """Send a small answer on a non-blocking socket that is about to be closed; a client gone or not reading
    forfeits it. How many bytes went."""
    try:
        return sock.send(data)
    except OSError:
        return 0


# gunicorn builds every response, and writes its own error responses, through these module names
# (gunicorn.http.wsgi.create and Worker.handle_error). This module is only imported by the gunicorn process
# serving this app (``worker_class`` in gunicorn.conf.py), so replacing them here changes nothing else.
gunicorn_wsgi.Response = BannerlessResponse
util.write_error = write_error
