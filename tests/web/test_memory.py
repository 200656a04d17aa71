"""Memory under the costliest uploads within the limits, against the server ``python -m web_app`` starts."""

from __future__ import annotations

import io
import os
import threading
import time

import numpy as np
import pytest
import requests
from PIL import Image

from .conftest import Server
from benchmarks.slow_clients import probe_health

# A t3.small (the default web instance) has 2 GiB; the OS, Docker and the CloudWatch agent take ~0.5 GiB.
INSTANCE_BUDGET_MB = 1500


def worst_case_png() -> bytes:
    """A 40 MP 16-bit grey PNG of ~90 KB: the costliest decode within today's limits."""
    buffer = io.BytesIO()
    Image.fromarray(np.full((5000, 8000), 40000, dtype=np.uint16)).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def _children(pid: int) -> list[int]:
    from .test_server import _children as children

    return children(pid)


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@pytest.mark.slow
def test_eight_concurrent_worst_case_uploads_fit_a_small_instance(tmp_path):
    data = worst_case_png()
    server = Server(tmp_path / "gunicorn.log", "--workers", "2")
    try:
        deadline = time.monotonic() + 15
        while len(workers := _children(server.process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        baseline = sum(_rss_mb(pid) for pid in workers)
        peak, stop = [0.0], threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], sum(_rss_mb(pid) for pid in workers))
                stop.wait(0.02)

        statuses, health = [], []

        def upload():
            response = requests.post(server.url + "/api/v1/classify", files={"image": ("w.png", data)}, timeout=120)
            statuses.append(response.status_code)

        threads = [threading.Thread(target=sample)] + [threading.Thread(target=upload) for _ in range(8)]
        threads.append(threading.Thread(target=lambda: health.extend(probe_health(server.url, 20, 0.25))))
        for thread in threads:
            thread.start()
        for thread in threads[1:]:
            thread.join(timeout=180)
        stop.set()
        threads[0].join()
        time.sleep(1)
        after = sum(_rss_mb(pid) for pid in workers)
    finally:
        server.stop()
    print(f"\nworkers: {baseline:.0f} MB before, peak {peak[0]:.0f} MB, {after:.0f} MB after")
    assert statuses == [200] * 8
    assert peak[0] < INSTANCE_BUDGET_MB
    assert after < baseline + 100  # the workers gave the decode memory back
    assert sum(t is not None for t in health) >= 0.9 * len(health), health
