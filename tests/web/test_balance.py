"""Least connections across workers: the shared table, and a real two-worker server splitting its connections."""

from __future__ import annotations

import http.client
import os
import time
from pathlib import Path

from web_app.balance import STALE_SECONDS, ConnectionTable

from .conftest import Server


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_worker_may_accept_while_it_holds_no_more_than_the_fewest_elsewhere():
    table = ConnectionTable(slots=8, clock=Clock())
    assert table.fewest_elsewhere(0) is None and table.may_accept(0, 50), "alone, a worker always accepts"
    table.publish(0, 3)
    table.publish(1, 5)
    table.publish(2, 4)
    assert table.fewest_elsewhere(1) == 3 and table.fewest_elsewhere(0) == 4, "a worker's own count is not 'elsewhere'"
    assert table.may_accept(0, 3) and not table.may_accept(1, 5) and not table.may_accept(2, 4)
    table.publish(0, 4)
    assert table.may_accept(2, 4), "a tie accepts: the fewest always accept"
    assert table.fewest_elsewhere(9) == table.fewest_elsewhere(1), "slots wrap around (gunicorn's ages keep growing)"


def test_workers_that_cannot_accept_or_went_silent_hold_no_one_back():
    clock = Clock()
    table = ConnectionTable(slots=4, clock=clock)
    table.publish(0, 9)
    table.publish(1, 0)
    assert not table.may_accept(0, 9)
    table.publish(1, None)  # every thread busy, or shutting down
    assert table.may_accept(0, 9)
    table.publish(1, 0)
    clock.now += STALE_SECONDS + 0.1  # worker 1 died without a word; worker 0 refreshes its own entry
    table.publish(0, 9)
    assert table.fewest_elsewhere(0) is None and table.may_accept(0, 9)


def test_the_table_is_shared_with_processes_forked_after_it_was_made_and_a_dead_worker_holds_no_one_back():
    table = ConnectionTable(slots=4)
    child = os.fork()
    if child == 0:  # a worker: publishes, then dies without a word
        table.publish(2, 0)
        os._exit(0)
    os.waitpid(child, 0)
    assert table.fewest_elsewhere(0) == 0, "the child's entry is seen, and still fresh"
    assert table.may_accept(0, 5), "but its process is gone: it holds no one back"
    table.publish(1, 0)  # a live worker (this process) holding none
    assert not table.may_accept(0, 5)


def _sockets(pid: int) -> int:
    folder = Path(f"/proc/{pid}/fd")
    count = 0
    for fd in folder.iterdir():
        try:
            count += os.readlink(fd).startswith("socket:")
        except OSError:
            continue
    return count


def _workers(server: Server) -> list[int]:
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split()
    return sorted(int(pid) for pid in children)


def test_two_workers_split_sixteen_keep_alive_connections_evenly(tmp_path):
    """A keep-alive connection stays with the worker that accepted it: the split is the load's split."""
    server = Server(tmp_path / "gunicorn.log", "--workers", "2")
    connections = []
    try:
        deadline = time.monotonic() + 30
        while len(_workers(server)) != 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = _workers(server)
        time.sleep(0.5)  # both workers have published their (empty) count
        before = {pid: _sockets(pid) for pid in workers}
        for _ in range(16):  # one after another: the same worker would often win every race
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            response.read()
            assert response.status == 200 and not response.will_close
            connections.append(connection)
        held = [_sockets(pid) - before[pid] for pid in workers]
    finally:
        for connection in connections:
            connection.close()
        server.stop()
    assert sum(held) == 16 and max(held) - min(held) <= 2, f"connections per worker: {held}"
