"""Reading a photo file from a path: its size checked before it is read, and only a regular file opened."""

from __future__ import annotations

import os
import stat

from .errors import NOT_FOUND, UNREADABLE_FILE, InvalidImage
from .settings import Limits


def read_input(path: str, limits: Limits) -> bytes:
    """The file's bytes, refusing oversized files before reading them and anything but a regular file unopened."""
    try:
        info = os.stat(path)
        _check_regular_file(path, info.st_mode)
        limits.check_size(info.st_size)
        # O_NONBLOCK: should the path be swapped for a FIFO after the check, opening it still returns at once.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
        with open(descriptor, "rb") as handle:
            _check_regular_file(path, os.fstat(handle.fileno()).st_mode)
            data = handle.read(limits.max_bytes + 1)
    except FileNotFoundError:
        raise InvalidImage(NOT_FOUND, f"No such file: {path}") from None
    except IsADirectoryError:
        raise InvalidImage(UNREADABLE_FILE, f"{path} is a folder, not a file.") from None
    except OSError as exc:
        raise InvalidImage(UNREADABLE_FILE, f"Cannot read {path}: {exc.strerror or exc}.") from None
    limits.check_size(len(data))  # the file grew after the check
    return data


_FILE_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _check_regular_file(path: str, mode: int) -> None:
    """Refuse folders, pipes, devices and sockets: reading them can block forever or never end."""
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")
    raise InvalidImage(UNREADABLE_FILE, f"{path} is {kind}, not a file.")
