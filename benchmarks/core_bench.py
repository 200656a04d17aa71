"""Inference core vs the TensorFlow/Keras baseline on the same model, measured in one run.

Rows: cold start of the CLI (process start -> first JSON line), warm latency per 250x250 photo on
one thread (without and with the fire map), a 12-megapixel JPEG end to end, batch throughput, and peak memory.
"""

from __future__ import annotations

import io
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from inference import Classifier

from .keras_baseline import ROOT, KerasPredictor, keras_classifier

PHOTO = ROOT.parent / "shared" / "datasets" / "forest-fire" / "train" / "fire" / "fire_0001.jpg"


def _median_ms(action, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        action()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def _first_line_seconds(command: list[str], repeats: int) -> tuple[float, int]:
    """Median wall time from process start to its first stdout line, and the child's peak RSS (kB)."""
    times, peaks = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = process.stdout.readline()
        times.append(time.perf_counter() - started)
        process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if not line.startswith("{"):
            raise RuntimeError(f"{' '.join(command)} printed no JSON line")
        peaks.append(usage.ru_maxrss)
    return statistics.median(times), max(peaks)


def twelve_megapixel_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.open(PHOTO).convert("RGB").resize((4000, 3000), Image.Resampling.BICUBIC).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def run(repeats: int = 5) -> list[dict]:
    photo = PHOTO.read_bytes()
    big = twelve_megapixel_jpeg()
    rows = []

    ours_cold, ours_rss = _first_line_seconds([sys.executable, "-m", "inference", str(PHOTO)], repeats)
    keras_cold, keras_rss = _first_line_seconds([sys.executable, "-m", "benchmarks.keras_baseline", str(PHOTO)], max(2, repeats // 2))
    rows.append({"metric": "cold start, process -> first JSON line (s)", "litert": ours_cold, "keras": keras_cold,
                 "target": "<= 0.6 s and >= 8x faster", "ok": ours_cold <= 0.6 and keras_cold / ours_cold >= 8})
    rows.append({"metric": "peak memory of that process (MB)", "litert": ours_rss / 1024, "keras": keras_rss / 1024, "target": "", "ok": None})

    ours = Classifier.load(threads=1)
    keras_runtime = KerasPredictor(threads=1)
    keras_model = keras_classifier(keras_runtime)
    array = ours.preprocess(photo)[np.newaxis]
    rows.append({"metric": "warm latency, 250x250 JPEG end to end, 1 thread (ms)",
                 "litert": _median_ms(lambda: ours.classify(photo), 200),
                 "keras": _median_ms(lambda: keras_model.classify(photo), 30),
                 "target": "<= 10 ms", "ok": None})
    rows[-1]["ok"] = rows[-1]["litert"] <= 10
    rows.append({"metric": "  model only, 1 image (ms) [keras: predict_on_batch]",
                 "litert": _median_ms(lambda: ours.predict_arrays(array), 200),
                 "keras": _median_ms(lambda: keras_runtime.predict_on_batch(array), 50), "target": "", "ok": None})
    rows.extend(cascade_rows(ours, keras_model))
    rows.extend(map_rows(ours, keras_model, photo, array))
    rows.append({"metric": "12-megapixel JPEG end to end, 1 thread (ms)",
                 "litert": _median_ms(lambda: ours.classify(big), 15, warmup=1),
                 "keras": _median_ms(lambda: keras_model.classify(big), 5, warmup=1),
                 "target": "<= 60 ms", "ok": None})
    rows[-1]["ok"] = rows[-1]["litert"] <= 60
    batch = [photo] * 32
    ours_batch_ms = _median_ms(lambda: ours.classify_many(batch), 10)
    keras_batch_ms = _median_ms(lambda: keras_model.classify_many(batch), 5)
    rows.append({"metric": "throughput, batches of 32 250x250 JPEGs, 1 thread (images/s)",
                 "litert": 32_000 / ours_batch_ms, "keras": 32_000 / keras_batch_ms, "target": "", "ok": None})
    return rows


def cascade_rows(ours: Classifier, keras_model: Classifier) -> list[dict]:
    """A cascade (inference.cascade) runs one fit on a clear photo and both on one near the threshold: the model time
    of each, on the first photo of each kind in forest-fire's training photos (the benchmark's photo is either). The
    baseline serves the whole model (both fits) for each."""
    from inference import FIRST_FIT, Cascade

    if not isinstance(ours.predictor, Cascade):
        return []
    cascade = ours.predictor
    kinds: dict[str, np.ndarray] = {}
    for path in sorted(PHOTO.parent.parent.glob("*/*.jpg")):
        image = ours.preprocess(path.read_bytes())[np.newaxis]
        first = cascade.model.run_signature(FIRST_FIT, image)["fire_probability"].reshape(-1)
        kinds.setdefault("both fits" if cascade.second_fit_needed(first).size else "one fit", image)
        if len(kinds) == 2:
            break
    return [{"metric": f"  model only, a photo the cascade gives {kind} (ms)",
             "litert": _median_ms(lambda: ours.predict_arrays(image), 200),
             "keras": _median_ms(lambda: keras_model.predict_arrays(image), 30), "target": "", "ok": None}
            for kind, image in sorted(kinds.items(), reverse=True)]


def _paired_medians_ms(first, second, repeats: int, warmup: int = 3) -> tuple[float, float]:
    """Median times of two actions run alternately, so that a busy machine slows both alike."""
    for _ in range(warmup):
        first()
        second()
    samples: tuple[list, list] = ([], [])
    for _ in range(repeats):
        for action, times in ((first, samples[0]), (second, samples[1])):
            started = time.perf_counter()
            action()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples[0]), statistics.median(samples[1])


def map_rows(ours: Classifier, keras_model: Classifier, photo: bytes, array: np.ndarray) -> list[dict]:
    """With the fire map: it comes out of the same model call, so it should cost next to nothing (reading and
    rounding 100 cells). Each is measured alternately with the same call without the map."""
    plain, mapped = _paired_medians_ms(lambda: ours.classify(photo), lambda: ours.classify(photo, with_map=True), 300)
    plain_model, mapped_model = _paired_medians_ms(lambda: ours.predict_arrays(array),
                                                   lambda: ours.predict_arrays(array, with_map=True), 300)
    return [
        {"metric": "warm latency with the fire map, end to end (ms)", "litert": mapped,
         "keras": _median_ms(lambda: keras_model.classify(photo, with_map=True), 30),
         "target": f"<= 1.1x no map ({plain:.3f})", "ok": mapped <= plain * 1.1},
        {"metric": "  model only, with the map (ms) [keras: predict]", "litert": mapped_model,
         "keras": _median_ms(lambda: keras_model.predict_arrays(array, with_map=True), 30),
         "target": f"<= 1.1x no map ({plain_model:.3f})", "ok": mapped_model <= plain_model * 1.1},
    ]


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    header = f"| {'metric':<60} | {'Firewatch (LiteRT)':>18} | {'TF/Keras baseline':>17} | {'ratio':>6} | {'target':<26} | ok |"
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    for row in rows:
        ratio = row["keras"] / row["litert"] if row["litert"] else float("nan")
        if "images/s" in row["metric"]:
            ratio = row["litert"] / row["keras"]
        ok = {True: "yes", False: "NO", None: ""}[row["ok"]]
        print(f"| {row['metric']:<60} | {row['litert']:>18.3f} | {row['keras']:>17.3f} | {ratio:>5.1f}x | {row['target']:<26} | {ok:<2} |")


if __name__ == "__main__":
    print_table("Inference core (same model; median of repeated runs)", run())
