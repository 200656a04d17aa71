"""The web target against slow clients and the costliest uploads, beside the previous configuration.

``python -m benchmarks.web_hardening_bench`` prints two tables; ``run()`` returns their rows:

- "slow clients": how many /healthz probes (one every 0.25 s, each on a new connection) are answered within 1 s
  beside clients sending a request body one byte every 2 s (of a Content-Length; chunked; after
  ``Expect: 100-continue``; after sending 1 MB of it at once, past the workers' body buffers), clients on
  keep-alive connections whose every request head takes 9 s to arrive (a line a second), connections that send
  nothing, or clients that keep their end of a connection open after the server closed it (on an error);
- "worst-case uploads": 8 concurrent 40 MP 16-bit grey PNGs (~90 KB each, the costliest decode within the
  limits): peak RSS of all workers together, RSS once they are done, the slowest /healthz meanwhile.

"hardened" is ``python -m web_app`` as shipped; "previous" is the same app with the previous settings: plain
gthread with 4 threads per worker, no read deadline, decode admission off (it still returns freed heap).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from .slow_clients import close_all, open_silent_connections, probe_health, start_tricklers, stop_tricklers
from .web_bench import Served, markdown

TRICKLERS = (8, 32, 100)  # clients trickling bodies: 100 is more than the 64 threads of 2 workers
HEAD_TRICKLERS = 100  # clients trickling heads: more than the 64 threads of 2 workers
# Clients that send 1 MB of their body at once, then trickle: 300 fill the 64 MB body buffers of 2 workers, and
# the other 172 (more than their 64 threads) must go on to disk rather than to threads.
FILLERS, FILL_BYTES = 300, 1024 * 1024
SILENT = 200  # connections that send nothing
UNCLOSING = 20  # clients that keep their end open 1 s after the server closed a connection on an error
PROBES = 20
UPLOADS = 8
INSTANCE_BUDGET_MB = 1500  # t3.small: 2 GiB, less ~0.5 GiB for the OS, Docker and the CloudWatch agent

PREVIOUS = {
    "GUNICORN_CMD_ARGS": "--worker-class gthread --threads 4 --max-requests 0",
    "FIREWATCH_DECODES_PER_WORKER": "64",
    "FIREWATCH_LARGE_DECODES": "64",
}


def worst_case_png() -> bytes:
    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((5000, 8000), 40000, dtype=np.uint16)).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def slow_client_row(server: Served, config: str, clients: str, count: int) -> dict:
    """/healthz beside ``count`` clients of a kind: "bodies" or "heads" trickled, or "silent" connections."""
    if clients == "silent":
        silent, tricklers = open_silent_connections(server.port, count), []
    else:
        silent = []
        tricklers = start_tricklers(server.port, count, interval=1.0 if clients in ("heads", "unclosing") else 2.0,
                                    lifetime=30, head_lines=8 if clients == "heads" else 0,
                                    unclosing=clients == "unclosing", framing=BODY_FRAMINGS.get(clients, "length"),
                                    sent_first=FILL_BYTES if clients == "filling" else 0)
    try:
        time.sleep(1.0)
        times = probe_health(f"http://127.0.0.1:{server.port}", PROBES, interval=0.25)
    finally:
        stop_tricklers(tricklers)
        close_all(silent)
    answered = [t for t in times if t is not None]
    return {"table": "slow clients", "config": config, "clients": f"{count} {CLIENT_KINDS[clients]}",
            "probes": PROBES, "answered_within_1s_pct": round(100 * len(answered) / PROBES),
            "slowest_answered_ms": round(1000 * max(answered), 1) if answered else None}


CLIENT_KINDS = {"bodies": "trickling bodies", "chunked": "trickling chunked bodies",
                "continue": "trickling bodies after Expect: 100-continue", "heads": "trickling heads (keep-alive)",
                "silent": "silent connections", "unclosing": "clients keeping closed connections open",
                "filling": "trickling bodies after 1 MB each (past the body buffers)"}
BODY_FRAMINGS = {"chunked": "chunked", "continue": "continue"}
SLOW_CLIENT_ROWS = ([("bodies", count) for count in TRICKLERS] + [("chunked", TRICKLERS[-1]), ("continue", TRICKLERS[-1])]
                    + [("filling", FILLERS), ("heads", HEAD_TRICKLERS), ("silent", SILENT), ("unclosing", UNCLOSING)])


def worst_case_row(server: Served, config: str, data: bytes) -> dict:
    import requests

    url = f"http://127.0.0.1:{server.port}"
    before = sum(server.memory_mb("VmRSS"))
    peak, stop = [0.0], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], sum(server.memory_mb("VmRSS")))
            stop.wait(0.02)

    statuses, health = [], []

    def upload():
        try:
            statuses.append(requests.post(url + "/api/v1/classify", files={"image": ("w.png", data)}, timeout=300).status_code)
        except requests.RequestException:
            statuses.append(None)

    sampler = threading.Thread(target=sample)
    uploads = [threading.Thread(target=upload) for _ in range(UPLOADS)]
    prober = threading.Thread(target=lambda: health.extend(probe_health(url, 40, 0.25, timeout=10)))
    started = time.monotonic()
    for thread in [sampler, prober, *uploads]:
        thread.start()
    for thread in uploads:
        thread.join()
    took = time.monotonic() - started
    prober.join()
    stop.set()
    sampler.join()
    time.sleep(1.0)
    answered = [t for t in health if t is not None]
    return {"table": "worst-case uploads", "config": config, "uploads": UPLOADS,
            "ok": sum(s == 200 for s in statuses), "seconds": round(took, 1),
            "workers_before_mb": round(before), "workers_peak_mb": round(peak[0]),
            "workers_after_mb": round(sum(server.memory_mb("VmRSS"))),
            "slowest_healthz_ms": round(1000 * max(answered), 1) if answered else None}


def run(baseline: bool = True) -> list[dict]:
    data = worst_case_png()
    workers = str(os.cpu_count() or 1)
    configs = [("hardened", {})] + ([("previous", PREVIOUS)] if baseline else [])
    rows = []
    with tempfile.TemporaryDirectory(prefix="firewatch-hardening-") as tmp:
        for config, env in configs:
            server = Served(config, [sys.executable, "-m", "web_app", "--port", "{port}", "--workers", workers],
                            Path(tmp) / f"{config}.log", env=env)
            server.expected_workers = int(workers)
            server.start()
            try:
                for clients, count in SLOW_CLIENT_ROWS:
                    rows.append(slow_client_row(server, config, clients, count))
                    server.stop()
                    server.start()  # a fresh server: the last row's connections are gone
                rows.append(worst_case_row(server, config, data))
            finally:
                server.stop()
    return rows


def verdicts(rows: list[dict]) -> list[str]:
    lines = []
    for row in rows:
        if row["config"] != "hardened":
            continue
        if row["table"] == "slow clients":
            ok = row["answered_within_1s_pct"] >= 90
            lines.append(f"{'PASS' if ok else 'MISS'}: /healthz beside {row['clients']}: "
                         f"{row['answered_within_1s_pct']} % within 1 s (target >= 90 %)")
        else:
            ok = row["workers_peak_mb"] < INSTANCE_BUDGET_MB and row["ok"] == row["uploads"]
            lines.append(f"{'PASS' if ok else 'MISS'}: {row['uploads']} concurrent worst-case uploads: workers peak "
                         f"{row['workers_peak_mb']} MB (target < {INSTANCE_BUDGET_MB} MB on a t3.small), "
                         f"{row['workers_after_mb']} MB after")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.web_hardening_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--no-baseline", action="store_true", help="skip the previous configuration")
    args = parser.parse_args(argv)
    rows = run(baseline=not args.no_baseline)
    print(markdown(rows))
    print("\n".join(verdicts(rows)))
    print(f"\nmachine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
