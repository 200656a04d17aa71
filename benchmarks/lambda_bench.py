"""The serverless handler (LiteRT) against the same handler on TensorFlow/Keras (``benchmarks/keras_handler.py``).

Each measurement runs in a fresh process with moto's S3 and SNS in that process, as Lambda runs a new execution
environment: cold start = import the handler module + the first event (model load included); then warm latency
per S3 event (one record, median of repeated events) for a 250x250 photo and a 12-megapixel camera JPEG; the
worst cases the limits allow (a 40-megapixel PNG and the costly inputs of ``costly_bench``); peak memory. From those: a memory size, a timeout and the cost
per million images. Then the upload queue's batch size (``benchmarks/batch_bench.py``): images per second and
cost per million images at batch size 1 vs 10, same run, same photos.

``python -m benchmarks.lambda_bench`` prints the table (about a minute on 2 cores). Only the standard library is
imported at module level, so that a worker's cold start measures the handler's imports and nothing of ours.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ops import prices  # the project's one price table (constants only)

ROOT = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("FIREWATCH_DATASETS", ROOT.parent / "shared" / "datasets"))
PHOTO = DATASETS / "forest-fire" / "train" / "fire" / "fire_0001.jpg"
HANDLERS = {"litert": "lambda_image.handler", "keras": "benchmarks.keras_handler"}

# AWS Lambda prices, x86_64 (ops/prices.py: us-east-1, dated).
PRICE_PER_MILLION_REQUESTS, PRICE_PER_GB_SECOND = prices.LAMBDA_MILLION_REQUESTS, prices.LAMBDA_GB_SECOND["x86_64"]
# Lambda gives one full vCPU at 1,769 MB and a proportional share below it.
FULL_VCPU_MB = 1769
MEMORY_SIZES_MB = (512, 1024, 1536, 2048, 3008)
MEMORY_HEADROOM = 1.5  # memory size >= 1.5 x the measured worst-case peak

COLD_RUNS = {"litert": 3, "keras": 2}
WARM_SMALL, WARM_LARGE = 20, 6


# --- the worker: one fresh process, one handler ---------------------------------------------------------------


class _Context:
    function_name = "firewatch-bench"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:firewatch-bench"
    aws_request_id = "00000000-0000-4000-8000-000000000000"


def _status_mb(field: str) -> float:
    """A memory figure of this process from /proc (Linux): VmRSS now, or VmHWM, the peak since the last reset."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak_rss() -> None:
    """Start VmHWM afresh, so setting up local S3 (moto holds every object in memory) does not count."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
        clear_refs.write("5")


def _worker(kind: str, inputs_dir: str, out_path: str, warm: bool) -> None:
    import importlib

    import boto3
    from moto import mock_aws

    inputs = {path.name: path.read_bytes() for path in sorted(Path(inputs_dir).glob("*")) if path.name.startswith(("small", "large", "worst"))}
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="bench")
        os.environ["ALERT_TOPIC_ARN"] = boto3.client("sns").create_topic(Name="alerts")["TopicArn"]

        def event_for(key: str, data: bytes) -> dict:
            etag = s3.put_object(Bucket="bench", Key=key, Body=data)["ETag"].strip('"')
            record = {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                      "s3": {"bucket": {"name": "bench"}, "object": {"key": key, "size": len(data), "eTag": etag}}}
            return {"Records": [record]}

        cold_event = event_for("uploads/cold.jpg", inputs["small.jpg"])
        small = [event_for(f"uploads/small-{i}.jpg", inputs["small.jpg"]) for i in range(WARM_SMALL if warm else 0)]
        large = [event_for(f"uploads/large-{i}.jpg", inputs["large.jpg"]) for i in range(WARM_LARGE if warm else 0)]
        worst = [event_for(f"uploads/{name}", data) for name, data in inputs.items() if name.startswith("worst")] if warm else []

        _reset_peak_rss()
        rss_start_mb = _status_mb("VmRSS")
        started = time.perf_counter()
        module = importlib.import_module(HANDLERS[kind])
        imported = time.perf_counter()
        response = module.handler(cold_event, _Context())
        first_done = time.perf_counter()
        assert response["classified"] == 1, response
        result = json.loads(s3.get_object(Bucket="bench", Key="results/cold.jpg.json")["Body"].read())

        def timed_ms(events: list[dict], refusals: bool = False) -> list[float]:
            samples = []
            for event in events:
                begin = time.perf_counter()
                outcome = module.handler(event, _Context())
                samples.append((time.perf_counter() - begin) * 1000)
                # Costly inputs the core refuses (too_complex, too_many_pixels) still get a result: they count too.
                assert outcome["classified"] + (outcome.get("invalid", 0) if refusals else 0) == 1, outcome
            return samples

        report = {
            "import_s": imported - started,
            "first_event_s": first_done - imported,
            "fire_probability": result["fire_probability"],
            "small_ms": timed_ms(small),
            "large_ms": timed_ms(large),
            "worst_ms": timed_ms(worst, refusals=True),
            "rss_start_mb": rss_start_mb,
            "peak_rss_mb": _status_mb("VmHWM"),
        }
    Path(out_path).write_text(json.dumps(report))


# --- the parent: inputs, workers, rows ------------------------------------------------------------------------


def _make_inputs(folder: Path) -> None:
    """The real photo; a 12-megapixel JPEG made from it (a camera upload); and the worst cases: a 40-megapixel PNG
    (the pixel limit) and every costly input of ``benchmarks.costly_bench`` (16-bit grey, RGBA, palette, 64-scan
    progressive JPEG, the largest WebP, and the floods the core refuses)."""
    import io

    import numpy as np
    from PIL import Image

    from .costly_bench import costly_inputs

    (folder / "small.jpg").write_bytes(PHOTO.read_bytes())
    buffer = io.BytesIO()
    Image.open(PHOTO).convert("RGB").resize((4000, 3000), Image.Resampling.BICUBIC).save(buffer, "JPEG", quality=90)
    (folder / "large.jpg").write_bytes(buffer.getvalue())
    # PNG has no reduced-size decoding (JPEG has): the worst case for memory. A gradient keeps the file small.
    width, height = 6400, 6250
    ramp = np.linspace(0, 255, width, dtype=np.uint8)[np.newaxis, :, np.newaxis]
    pixels = np.broadcast_to(ramp, (height, width, 3))
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, "PNG", compress_level=1)
    (folder / "worst-0.png").write_bytes(buffer.getvalue())
    for i, data in enumerate(costly_inputs().values(), start=1):
        (folder / f"worst-{i}.bin").write_bytes(data)


def _worker_env() -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FIREWATCH_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "POWERTOOLS_SERVICE_NAME": "firewatch", "POWERTOOLS_METRICS_NAMESPACE": "Firewatch"}
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "FIREWATCH_MAX_BYTES", "FIREWATCH_MAX_PIXELS", "FIREWATCH_MODEL_PATH",
                 "FIREWATCH_RESULTS_TABLE", "FIREWATCH_RESULTS_TTL_DAYS", "FIREWATCH_BUCKET"):  # fmt: skip
        env.pop(name, None)
    return env


def _run_worker(kind: str, inputs_dir: Path, warm: bool) -> dict:
    out = inputs_dir / f"{kind}-{time.monotonic_ns()}.json"
    env = _worker_env()
    command = [sys.executable, "-m", "benchmarks.lambda_bench", "--worker", kind, str(inputs_dir), str(out)]
    if warm:
        command.append("--warm")
    done = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(out.read_text())


def _measure(kind: str, inputs_dir: Path) -> dict:
    runs = [_run_worker(kind, inputs_dir, warm=(i == 0)) for i in range(COLD_RUNS[kind])]
    warm = runs[0]
    return {
        "import_s": statistics.median(r["import_s"] for r in runs),
        "first_event_s": statistics.median(r["first_event_s"] for r in runs),
        "cold_s": statistics.median(r["import_s"] + r["first_event_s"] for r in runs),
        "small_ms": statistics.median(warm["small_ms"]),
        "large_ms": statistics.median(warm["large_ms"]),
        "worst_ms": max(warm["worst_ms"]),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "handler_rss_mb": max(r["peak_rss_mb"] - r["rss_start_mb"] for r in runs),
        "fire_probability": warm["fire_probability"],
    }


def memory_size_mb(peak_rss_mb: float) -> int:
    return next((size for size in MEMORY_SIZES_MB if size >= MEMORY_HEADROOM * peak_rss_mb), MEMORY_SIZES_MB[-1])


def lambda_duration_ms(measured_ms: float, memory_mb: int) -> int:
    """Billed duration at ``memory_mb``: measured on one full core, slowed by Lambda's CPU share, rounded up to 1 ms."""
    return math.ceil(measured_ms * max(1.0, FULL_VCPU_MB / memory_mb))


def cost_per_million(duration_ms: int, memory_mb: int) -> float:
    """requests $0.20 per 1M + GB-seconds x $0.0000166667 (x86_64)."""
    gb_seconds = 1_000_000 * (duration_ms / 1000) * (memory_mb / 1024)
    return PRICE_PER_MILLION_REQUESTS + gb_seconds * PRICE_PER_GB_SECOND


def timeout_s(cold_s: float, worst_ms: float, memory_mb: int) -> int:
    """3x (cold start + worst-case event) at the memory's CPU share, in steps of 5 s; at least 30 s, which leaves
    room for a slow S3 call and its retry (the handler's client times out after 5 s connect / 15 s read)."""
    slowdown = max(1.0, FULL_VCPU_MB / memory_mb)
    return max(30, 5 * math.ceil(3 * slowdown * (cold_s + worst_ms / 1000) / 5))


def _run_batch_worker(folder: Path) -> dict:
    from .batch_bench import batch_photos

    photo_list, out = folder / "batch-photos.txt", folder / "batch.json"
    photo_list.write_text("\n".join(str(p) for p in batch_photos(DATASETS)))
    command = [sys.executable, "-m", "benchmarks.lambda_bench", "--batch-worker", str(photo_list), str(out)]
    done = subprocess.run(command, cwd=ROOT, env=_worker_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          timeout=600)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"batch worker failed:\n{done.stderr[-3000:]}")
    return json.loads(out.read_text())


def run() -> list[dict]:
    """Rows of {metric, litert, keras, target, ok}, like the other benchmark tables, then the batch-size rows
    (``table: batch``)."""
    from .batch_bench import rows as batch_rows

    with tempfile.TemporaryDirectory(prefix="lambda-bench-") as folder:
        inputs = Path(folder)
        _make_inputs(inputs)
        ours, theirs = _measure("litert", inputs), _measure("keras", inputs)
        batches = batch_rows(_run_batch_worker(inputs))

    def row(metric, litert, keras, target="", ok=None):
        return {"metric": metric, "litert": litert, "keras": keras, "target": target, "ok": ok}

    shipped, agreement = served_format()
    memory = {"litert": memory_size_mb(ours["peak_rss_mb"]), "keras": memory_size_mb(theirs["peak_rss_mb"])}
    billed = {"litert": lambda_duration_ms(ours["large_ms"], memory["litert"]),
              "keras": lambda_duration_ms(theirs["large_ms"], memory["keras"])}
    cost = {kind: cost_per_million(billed[kind], memory[kind]) for kind in billed}
    timeouts = {"litert": timeout_s(ours["cold_s"], ours["worst_ms"], memory["litert"]),
                "keras": timeout_s(theirs["cold_s"], theirs["worst_ms"], memory["keras"])}
    return [
        row("cold start: import handler module (s)", ours["import_s"], theirs["import_s"]),
        row("cold start: first event, model load included (s)", ours["first_event_s"], theirs["first_event_s"]),
        row("cold start total, fresh process (s)", ours["cold_s"], theirs["cold_s"], "<= 1.5 s, Lambda init cap 10 s",
            ours["cold_s"] <= 1.5),
        row("warm, event with a 250x250 JPEG (ms, median)", ours["small_ms"], theirs["small_ms"], "<= 50 ms",
            ours["small_ms"] <= 50),
        row("warm, event with a 12 MP camera JPEG (ms, median)", ours["large_ms"], theirs["large_ms"], "<= 150 ms",
            ours["large_ms"] <= 150),
        row("worst case: costliest of 10 worst-case uploads (ms)", ours["worst_ms"], theirs["worst_ms"]),
        row("peak memory from handler import on, moto included (MB)", ours["peak_rss_mb"], theirs["peak_rss_mb"]),
        row("  of which added by the handler (MB)", ours["handler_rss_mb"], theirs["handler_rss_mb"]),
        row(f"memory size: smallest >= {MEMORY_HEADROOM}x peak (MB)", memory["litert"], memory["keras"]),
        row("timeout: 3x (cold + worst case) at that memory, >= 30 (s)", timeouts["litert"], timeouts["keras"]),
        row("billed duration at that memory, 12 MP JPEG (ms)", billed["litert"], billed["keras"]),
        row("cost per 1M images at that memory (USD)", cost["litert"], cost["keras"], "cheaper than baseline",
            cost["litert"] < cost["keras"]),
        row("fire probability of the same photo (both handlers)", ours["fire_probability"], theirs["fire_probability"],
            f"equal within {agreement:g} ({shipped})", abs(ours["fire_probability"] - theirs["fire_probability"]) <= agreement),
    ] + batches


def served_format() -> tuple[str, float]:
    """The served ``.tflite`` file's format and how far its probabilities may stray from Keras's, from its card
    (float32 differs by rounding only; a quantised file by up to the bound its export was held to)."""
    from inference import ModelCard

    tflite_format = ModelCard.load(ROOT / "models" / "fire_classifier.json").tflite_format  # the workers' model
    shipped = tflite_format.get("shipped", "float32")
    return shipped, 1e-3 if shipped == "float32" else tflite_format.get("agreement_required", {}).get(shipped, 0.05)


def markdown(rows: list[dict]) -> str:
    """Both tables, for ``python -m benchmarks lambda``: the handler against its baseline, then the batch sizes."""
    import contextlib
    import io

    from .batch_bench import markdown as batch_markdown
    from .core_bench import print_table as core_table

    handler_rows = [r for r in rows if r.get("table") != "batch"]
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        core_table("", handler_rows)
    batch = batch_markdown([r for r in rows if r.get("table") == "batch"])
    return buffer.getvalue().strip() + "\n\n### Upload queue batch size: 1 vs 10 (same run, same photos)\n\n" + batch


def print_table(title: str, rows: list[dict]) -> None:
    batches = [r for r in rows if r.get("table") == "batch"]
    rows = [r for r in rows if r.get("table") != "batch"]
    print(f"\n{title}")
    width = max(len(r["metric"]) for r in rows)
    header = f"| {'metric':<{width}} | {'Firewatch (LiteRT)':>18} | {'TF/Keras handler':>16} | {'target':<31} | ok  |"
    print(header)
    print("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
    for r in rows:
        ok = {True: "yes", False: "NO", None: ""}[r["ok"]]
        print(f"| {r['metric']:<{width}} | {r['litert']:>18.3f} | {r['keras']:>16.3f} | {r['target']:<31} | {ok:<3} |")
    by_metric = {r["metric"]: r for r in rows}
    memory = next(r for m, r in by_metric.items() if m.startswith("memory size"))
    billed = next(r for m, r in by_metric.items() if m.startswith("billed duration"))
    timeout = next(r for m, r in by_metric.items() if m.startswith("timeout"))
    print(
        "\nCost per 1M images = requests $0.20 + 1,000,000 x billed duration (s) x memory (GB) x $0.0000166667 (x86_64);\n"
        f"billed duration = measured on one core x max(1, {FULL_VCPU_MB} MB / memory), rounded up to 1 ms.\n"
        f"  LiteRT: 0.20 + 1e6 x {billed['litert'] / 1000:.3f} s x {memory['litert'] / 1024:.3f} GB x 0.0000166667"
        f" = ${cost_per_million(int(billed['litert']), int(memory['litert'])):.2f}\n"
        f"  Keras:  0.20 + 1e6 x {billed['keras'] / 1000:.3f} s x {memory['keras'] / 1024:.3f} GB x 0.0000166667"
        f" = ${cost_per_million(int(billed['keras']), int(memory['keras'])):.2f}\n"
        f"Recommended for the Firewatch function: MemorySize {int(memory['litert'])} MB, Timeout {int(timeout['litert'])} s,"
        " FIREWATCH_THREADS=1 (below 1,769 MB Lambda gives less than one vCPU).\n"
        "Not measured: S3 latency from Lambda (moto runs in process), cold-start init billing, cold starts' share."
    )
    if batches:
        from .batch_bench import markdown as batch_markdown

        print("\nUpload queue batch size: 1 vs 10 (same run, same photos)\n" + batch_markdown(batches))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--batch-worker":
        from .batch_bench import worker as batch_worker

        batch_worker(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 5 and sys.argv[1] == "--worker":
        _worker(sys.argv[2], sys.argv[3], sys.argv[4], warm="--warm" in sys.argv[5:])
    else:
        print_table("Serverless handler: LiteRT vs the same handler on TensorFlow/Keras (fresh process per cold start)", run())
