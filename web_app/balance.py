"""Least connections across a server's workers: a new connection goes to the worker that holds the fewest.

gunicorn's workers race to accept, and a keep-alive connection stays with the worker that won it. 16 connections
opened at once were measured splitting 6 to 10 between 2 workers, and the 10 then waited on each other (mean latency
44-46 ms per connection on one worker, 74-85 ms on the other). So each worker publishes how many connections it
holds in a table shared by the whole server, and accepts only while it holds no more than the fewest that any other
worker holds.

- The table is anonymous shared memory, mapped when the master imports the worker class, before it forks: every
  worker sees it, and there is nothing on disk to clean up.
- A worker that cannot accept (every thread busy, or shutting down) publishes no count, so it holds no one back.
- A worker that died without a word (killed, out of memory) holds no one back either: its entry is ignored once its
  process is gone, and once it has not been refreshed for :data:`STALE_SECONDS` (workers refresh theirs on every
  turn of their event loop, at least once a second).
- It is a heuristic, and it fails open: two workers reading at the same moment may both accept, which costs one
  connection of balance; the worker that holds the fewest always accepts.
"""

from __future__ import annotations

import mmap
import os
import struct
import time

# Workers are numbered by gunicorn's spawn count (age) modulo SLOTS: room for several generations of one worker per
# core. Two live workers that share a slot (far more workers than cores) only see less of each other: it fails open.
SLOTS = max(64, 4 * (os.cpu_count() or 1))
STALE_SECONDS = 3.0
# How soon a worker held back looks again (its loop waits 1 s otherwise): every 50 ms, or every 10 ms within a second
# of its last accept, in a burst of new connections (taking turns at 50 ms, 2 workers took about a second to accept
# 200 connections opened at once; looking every 10 ms all the time costs 2 % of a core per worker held back).
RECHECK_SECONDS = 0.05
BURST_RECHECK_SECONDS = 0.01
BURST_SECONDS = 1.0
_ENTRY = struct.Struct("=qqd")  # pid, connections held (-1: not accepting), time.monotonic() of the update
_NOT_ACCEPTING = -1


class ConnectionTable:
    """Each worker's connection count, in memory shared with the processes forked after it was made."""

    def __init__(self, slots: int = SLOTS, clock=time.monotonic) -> None:
        self.slots = slots
        self._memory = mmap.mmap(-1, slots * _ENTRY.size)  # anonymous and MAP_SHARED: shared across fork()
        self._table = struct.Struct("=" + _ENTRY.format.lstrip("=") * slots)  # one read per look, every loop turn
        self._clock = clock

    def publish(self, slot: int, connections: int | None) -> None:
        """``slot``'s worker holds ``connections`` (None: it is not accepting any)."""
        count = _NOT_ACCEPTING if connections is None else connections
        _ENTRY.pack_into(self._memory, (slot % self.slots) * _ENTRY.size, os.getpid(), count, self._clock())

    def fewest_elsewhere(self, slot: int) -> int | None:
        """The fewest connections a fresh, accepting worker other than ``slot``'s holds; None when there is none."""
        return min((count for count, _ in self._others(slot)), default=None)

    def may_accept(self, slot: int, connections: int) -> bool:
        """Whether ``slot``'s worker, holding ``connections``, holds no more than every other worker. An entry whose
        process is gone (killed before it could say so, within the last seconds) is ignored."""
        return not any(count < connections and _alive(pid) for count, pid in self._others(slot))

    def _others(self, slot: int) -> list[tuple[int, int]]:
        """(connections, pid) of every fresh, accepting entry but ``slot``'s."""
        now, own, values = self._clock(), slot % self.slots, self._table.unpack_from(self._memory)
        return [(count, pid) for index, (pid, count, stamp) in enumerate(zip(values[0::3], values[1::3], values[2::3]))
                if index != own and pid and count != _NOT_ACCEPTING and now - stamp <= STALE_SECONDS]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    return True
