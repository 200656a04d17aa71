"""Load test of the web target under gunicorn on localhost, beside a TensorFlow/Keras ``model.predict`` baseline.

``python -m benchmarks.web_bench [--seconds S] [--leak-requests N]`` prints the tables; ``run()`` returns the rows:
dicts with ``table`` = "web throughput" (one per app, photo size and concurrency) or "web memory" (one per app:
worker RSS after 1,000 requests and after ``leak_requests``; LiteRT only by default).

Each app runs under the same gunicorn config (``web_app/gunicorn.conf.py``; one worker per core). The client is a
thread pool of keep-alive ``http.client`` connections sending photos read beforehand, so it costs the server as
little CPU as possible; it shares the machine's cores with the server, as a local test must. Each request frames its
photo with a boundary of its own, as browsers, curl and requests do: the server compiles every new boundary into a
parser (a third of a millisecond), which one boundary reused for every request would hide.
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("FIREWATCH_DATASETS", ROOT.parent / "shared" / "datasets"))
PHOTO_FOLDERS = ("forest-fire/train/fire", "forest-fire/train/nofire")
CONCURRENCY = (1, 4, 16)
LARGE_SIZE = (4000, 3000)
BOUNDARY_PREFIX = "----FirewatchBench"  # + 20 digits: 38 characters, as long as a browser's boundary
STARTUP_SECONDS = 120
TARGET = {"images_per_s": 150, "p99_ms": 150, "leak_mb": 10}


@dataclass
class Served:
    """One gunicorn instance on a free port, its workers found through /proc."""

    name: str
    command: list[str]
    log_path: Path
    port: int = 0
    process: subprocess.Popen | None = None
    env: dict = field(default_factory=dict)

    def start(self) -> "Served":
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        command = [part.replace("{port}", str(self.port)) for part in self.command]
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, **self.env}
        )
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_path.read_text(errors='replace')[-2000:]}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200 and len(self.workers()) == self.expected_workers:
                    connection.close()
                    return self
                connection.close()
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} did not become healthy in {STARTUP_SECONDS} s")

    expected_workers: int = os.cpu_count() or 1

    def workers(self) -> list[int]:
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid:
                    pids.append(int(entry))
        return pids

    def memory_mb(self, key: str) -> list[float]:
        """``VmHWM`` (peak) or ``VmRSS`` (now) of each worker, in MB."""
        values = []
        for pid in self.workers():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    values.append(int(line.split()[1]) / 1024)
        return values

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@dataclass(frozen=True)
class Upload:
    """One photo to send in the form field ``image``."""

    name: str
    data: bytes

    def body(self, boundary: str) -> bytes:
        head = (
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{self.name}\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        return head + self.data + f"\r\n--{boundary}--\r\n".encode()


def small_bodies(count: int = 64) -> list[Upload]:
    paths = []
    for folder in PHOTO_FOLDERS:
        paths += sorted((DATASETS / folder).glob("*.jpg"))[: count // len(PHOTO_FOLDERS)]
    if not paths:
        raise SystemExit(f"no photos under {DATASETS}: set FIREWATCH_DATASETS")
    return [Upload(p.name, p.read_bytes()) for p in paths]


def large_bodies(folder: Path) -> list[Upload]:
    """Two 12-megapixel JPEGs: real photos upscaled to 4000x3000 (written to a temp dir, as a camera would)."""
    from PIL import Image

    bodies = []
    for relative in ("forest-fire/train/fire/fire_0001.jpg", "forest-fire/train/nofire/nofire_0001.jpg"):
        with Image.open(DATASETS / relative) as photo:
            path = folder / (Path(relative).stem + "_12mp.jpg")
            photo.convert("RGB").resize(LARGE_SIZE, Image.Resampling.BICUBIC).save(path, "JPEG", quality=92)
        bodies.append(Upload(path.name, path.read_bytes()))
    return bodies


@dataclass
class Load:
    latencies: list[float]
    errors: int
    seconds: float


def load(port: int, bodies: list[Upload], concurrency: int, seconds: float | None = None, requests: int | None = None) -> Load:
    """Send ``bodies`` round-robin from ``concurrency`` keep-alive connections for ``seconds`` or ``requests``."""
    lock = threading.Lock()
    sent = [0]
    latencies: list[float] = []
    errors = [0]
    deadline = time.perf_counter() + (seconds if seconds is not None else 3600)

    def take() -> int | None:
        with lock:
            if (requests is not None and sent[0] >= requests) or time.perf_counter() >= deadline:
                return None
            sent[0] += 1
            return sent[0]

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        mine, failed = [], 0
        while (index := take()) is not None:
            boundary = f"{BOUNDARY_PREFIX}{index:020d}"
            body = bodies[index % len(bodies)].body(boundary)
            headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
            started = time.perf_counter()
            try:
                connection.request("POST", "/api/v1/classify", body, headers)
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                connection.close()
            mine.append(time.perf_counter() - started)
            failed += not ok
        connection.close()
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(client) for _ in range(concurrency)]:
            future.result()
    return Load(latencies, errors[0], time.perf_counter() - started)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def throughput_rows(server: Served, app: str, photo_sets: dict[str, list[Upload]], seconds: float) -> list[dict]:
    rows = []
    for photo, bodies in photo_sets.items():
        for concurrency in CONCURRENCY:
            load(server.port, bodies, concurrency, seconds=min(1.0, seconds / 4))  # warm the connections and caches
            result = load(server.port, bodies, concurrency, seconds=seconds)
            ms = [x * 1000 for x in result.latencies]
            rows.append(
                {
                    "table": "web throughput",
                    "app": app,
                    "photo": photo,
                    "concurrency": concurrency,
                    "requests": len(ms),
                    "errors": result.errors,
                    "images_per_s": round(len(ms) / result.seconds, 1),
                    "p50_ms": round(statistics.median(ms), 1),
                    "p99_ms": round(percentile(ms, 99), 1),
                    "worker_peak_mb": round(max(server.memory_mb("VmHWM")), 1),
                }
            )
            print(_format_row(rows[-1]), file=sys.stderr, flush=True)
    return rows


def memory_row(server: Served, app: str, bodies: list[Upload], total: int) -> dict:
    """Worker RSS after 1,000 requests and after ``total``: a leak shows as growth between the two."""
    first = load(server.port, bodies, 16, requests=1000)
    after_first = server.memory_mb("VmRSS")
    rest = load(server.port, bodies, 16, requests=total - 1000)
    after_all = server.memory_mb("VmRSS")
    return {
        "table": "web memory",
        "app": app,
        "requests": len(first.latencies) + len(rest.latencies),
        "errors": first.errors + rest.errors,
        "rss_after_1000_mb": round(max(after_first), 1),
        "rss_after_all_mb": round(max(after_all), 1),
        "growth_mb": round(max(b - a for a, b in zip(after_first, after_all)), 1),
    }


def run(seconds: float = 4.0, leak_requests: int = 5000, baseline: bool = True) -> list[dict]:
    """Both apps, both photo sizes, concurrency 1/4/16; memory over ``leak_requests`` for the LiteRT app."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="firewatch-bench-") as tmp:
        tmp = Path(tmp)
        photo_sets = {"250x250": small_bodies(), "4000x3000 (12 MP)": large_bodies(tmp)}
        workers = str(os.cpu_count() or 1)
        apps = [
            Served(
                "web_app (LiteRT)",
                [sys.executable, "-m", "web_app", "--port", "{port}", "--workers", workers],
                tmp / "litert.log",
            ),
        ]
        if baseline:
            apps.append(
                Served(
                    "baseline (Keras predict)",
                    [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "web_app" / "gunicorn.conf.py"),
                     "--bind", "127.0.0.1:{port}",
                     "--workers", workers, "--timeout", "120", "benchmarks.keras_app:create_app()"],
                    tmp / "keras.log",
                )
            )
        for server in apps:
            server.expected_workers = int(workers)
            server.start()
            try:
                if server is apps[0]:
                    rows.append(memory_row(server, server.name, photo_sets["250x250"], leak_requests))
                    print(_format_row(rows[-1]), file=sys.stderr, flush=True)
                rows += throughput_rows(server, server.name, photo_sets, seconds)
            finally:
                server.stop()
    return rows


def _format_row(row: dict) -> str:
    return "  ".join(f"{k}={v}" for k, v in row.items() if k != "table")


def markdown(rows: list[dict]) -> str:
    out = []
    for table in dict.fromkeys(r["table"] for r in rows):
        selected = [r for r in rows if r["table"] == table]
        keys = [k for k in selected[0] if k != "table"]
        out += [f"### {table}", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        out += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in selected]
        out.append("")
    return "\n".join(out)


def verdicts(rows: list[dict]) -> list[str]:
    lines = []
    for row in rows:
        headline = row["table"] == "web throughput" and row["app"].startswith("web_app")
        if headline and row["photo"] == "250x250" and row["concurrency"] == 16:
            ok = row["images_per_s"] >= TARGET["images_per_s"] and row["p99_ms"] <= TARGET["p99_ms"]
            lines.append(f"{'PASS' if ok else 'MISS'}: 250x250 at concurrency 16: {row['images_per_s']} images/s "
                         f"(target >= {TARGET['images_per_s']}), p99 {row['p99_ms']} ms (target <= {TARGET['p99_ms']})")
        if row["table"] == "web memory":
            ok = row["growth_mb"] <= TARGET["leak_mb"]
            lines.append(f"{'PASS' if ok else 'MISS'}: worker RSS growth from 1,000 to {row['requests']:,} requests: "
                         f"{row['growth_mb']} MB (target <= {TARGET['leak_mb']} MB)")
    errors = sum(r["errors"] for r in rows)
    lines.append(f"{'PASS' if errors == 0 else 'MISS'}: error responses: {errors}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.web_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per cell (default 4)")
    parser.add_argument("--leak-requests", type=int, default=5000, help="requests for the memory check (default 5000)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the TensorFlow/Keras baseline")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    rows = run(args.seconds, max(args.leak_requests, 1001), baseline=not args.no_baseline)
    print(markdown(rows))
    print("\n".join(verdicts(rows)))
    print(f"\nmachine: {os.cpu_count()} cores, load average {load_before:.2f} before the run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
