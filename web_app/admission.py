"""How many photos are decoded at once: the web tier's memory bound.

Decoding is what costs memory: a photo of 40 megapixels takes up to hundreds of megabytes while it is decoded,
however small its file. Threads wait on the network at no cost, but each decoding thread holds its photo's
working memory, so decodes are admitted, not just run:

- in each worker, at most ``per_worker`` decodes at once (the CPU work is spread over one worker per core);
- across every worker of the server, at most ``large_slots`` *large* decodes at once: large means more than
  ``LARGE_DECODE_PIXELS`` pixels decoded, judged from the header before decoding. The slots are lock files held
  with ``flock``, so the kernel frees a slot whose worker dies, and a crash never leaks one;
- after a large decode the worker hands the freed heap back to the operating system (glibc keeps it otherwise).

A photo that waits longer than ``wait_seconds`` for its turn is refused with 503 ``busy``.
"""

from __future__ import annotations

import atexit
import ctypes
import fcntl
import functools
import io
import logging
import math
import os
import shutil
import tempfile
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from PIL import Image

log = logging.getLogger(__name__)

LOCK_DIR_ENV = "FIREWATCH_DECODE_LOCK_DIR"  # set by gunicorn.conf.py in the master, so every worker shares it
LARGE_DECODES_ENV = "FIREWATCH_LARGE_DECODES"
DECODES_PER_WORKER_ENV = "FIREWATCH_DECODES_PER_WORKER"
DEFAULT_LARGE_DECODES = 1
DEFAULT_DECODES_PER_WORKER = 2
# 2 MP decoded: a 1920x1080 frame. Up to this size a decode costs tens of megabytes at worst; a 12 MP camera JPEG
# is decoded at 1/8 scale (0.19 MP) and stays small.
LARGE_DECODE_PIXELS = 2_000_000
# Long enough for 8 worst-case photos decoded one after another on a busy 2-core machine (~4 s each), short enough
# to answer before the load balancer's 60 s idle timeout turns the wait into a 504.
WAIT_SECONDS = 45.0
POLL_SECONDS = 0.02  # how often a waiting large decode tries the slots again


class Busy(Exception):
    """The photo waited too long for its turn to be decoded."""


def decoded_pixels(data: bytes, target_size: tuple[int, int]) -> int:
    """How many pixels decoding ``data`` for a model input of ``target_size`` produces, from the header only.

    JPEGs are decoded with DCT scaling (1/2, 1/4, 1/8, never below the target), as the core does; other formats
    at full size. Bytes that are not an image count as 0: the core refuses them before decoding anything.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:  # parses the header, decodes nothing
                (width, height), kind = image.size, image.format
    except Exception:
        return 0
    scale = 1
    if kind in ("JPEG", "MPO"):
        while scale < 8 and width // (scale * 2) >= target_size[0] and height // (scale * 2) >= target_size[1]:
            scale *= 2
    return math.ceil(width / scale) * math.ceil(height / scale)


class SlotLocks:
    """``count`` slots shared by every process that uses ``directory``: one ``flock``-ed file per slot."""

    def __init__(self, directory: Path, count: int) -> None:
        self.paths = [Path(directory) / f"decode-slot-{i}.lock" for i in range(count)]

    @contextmanager
    def hold(self, deadline: float) -> Iterator[None]:
        while True:
            for path in self.paths:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                try:
                    yield
                finally:
                    os.close(fd)  # closing the file releases the lock
                return
            if time.monotonic() >= deadline:
                raise Busy("no large-decode slot came free in time")
            time.sleep(POLL_SECONDS)


class Admission:
    """Admits decodes (see the module docstring); one per app, so one per worker, shared by its threads."""

    def __init__(self, lock_dir: Path, *, large_slots: int = DEFAULT_LARGE_DECODES,
                 per_worker: int = DEFAULT_DECODES_PER_WORKER, wait_seconds: float = WAIT_SECONDS) -> None:
        self.large_slots = SlotLocks(lock_dir, large_slots)
        self._worker = threading.BoundedSemaphore(per_worker)
        self.wait_seconds = wait_seconds

    @classmethod
    def from_env(cls) -> Admission:
        lock_dir = os.environ.get(LOCK_DIR_ENV) or _process_lock_dir()
        return cls(Path(lock_dir), large_slots=_env_count(LARGE_DECODES_ENV, DEFAULT_LARGE_DECODES),
                   per_worker=_env_count(DECODES_PER_WORKER_ENV, DEFAULT_DECODES_PER_WORKER))

    @contextmanager
    def decode(self, data: bytes, target_size: tuple[int, int]) -> Iterator[None]:
        """Hold the turn to decode ``data``; raises Busy when it does not come within ``wait_seconds``."""
        deadline = time.monotonic() + self.wait_seconds
        large = decoded_pixels(data, target_size) > LARGE_DECODE_PIXELS
        # The server-wide slot first: a thread waiting for it must not hold up its worker's small decodes.
        with self.large_slots.hold(deadline) if large else _nothing():
            if not self._worker.acquire(timeout=max(0.0, deadline - time.monotonic())):
                raise Busy("the worker's decodes did not come free in time")
            try:
                yield
            finally:
                self._worker.release()
                if large:
                    release_freed_memory()


@functools.cache
def _process_lock_dir() -> str:
    """Without gunicorn.conf.py's shared folder (Flask's test client, another server): slots for this process,
    removed when it exits (or every test run and dev server would leave one behind)."""
    folder = tempfile.mkdtemp(prefix="firewatch-decode-")
    atexit.register(_remove_if_ours, folder, os.getpid())
    return folder


def _remove_if_ours(folder: str, owner: int) -> None:
    if os.getpid() == owner:  # a forked child inherits the exit hook, not the folder: its exit must not pull it away
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _env_count(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, got {raw!r}")
    return int(raw)


def _malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc; absent on musl and macOS
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _malloc_trim()


def release_freed_memory() -> None:
    """Give the heap that a large decode freed back to the operating system.

    glibc serves big images in blocks below its mmap threshold from per-thread arenas and keeps them after
    ``free``: a worker that decoded a few large photos would otherwise stay hundreds of megabytes larger.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
