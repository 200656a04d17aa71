"""Write the trained model as .tflite (choosing its format), run it as serving does, and list the files used."""

from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path

import numpy as np

from . import quiet

quiet.import_tensorflow()
import tensorflow as tf  # noqa: E402  (after the quiet import above)


def to_tflite(model, quantised: bool = False, log: Path | None = None) -> bytes:
    """The converter saves a SavedModel first, which prints every endpoint's tensor specs and logs from C++:
    kept out of the run's output (appended to ``log`` when given)."""
    with quiet.captured_output(log):
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        if quantised:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic-range: int8 weights, float activations
        return converter.convert()


def _median_latency_ms(tflite: bytes, size: int, repeats: int = 200) -> float:
    from inference import LiteRTModel

    with tempfile.NamedTemporaryFile(suffix=".tflite") as handle:
        handle.write(tflite)
        handle.flush()
        image = np.random.default_rng(0).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
        with quiet.captured_output():  # LiteRT announces its XNNPACK delegate on the first call
            runner = LiteRTModel(Path(handle.name), threads=1)
            for _ in range(10):
                runner.predict(image)
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            runner.predict(image)
            samples.append((time.perf_counter() - started) * 1000)
    return float(np.median(samples))


def choose_tflite(model, size: int, log: Path | None = None) -> tuple[bytes, dict]:
    """Float32, unless dynamic-range quantisation is faster here (on x86 CPUs it is usually slower)."""
    candidates = {"float32": to_tflite(model, log=log), "dynamic_range": to_tflite(model, quantised=True, log=log)}
    latency = {name: round(_median_latency_ms(data, size), 3) for name, data in candidates.items()}
    chosen = "dynamic_range" if latency["dynamic_range"] < latency["float32"] else "float32"
    report = {"shipped": chosen, "median_ms_1_thread": latency, "bytes": {k: len(v) for k, v in candidates.items()}}
    return candidates[chosen], report


def litert_probabilities(tflite_path: Path, images: np.ndarray) -> np.ndarray:
    """Run the exported file with LiteRT exactly as serving does."""
    from inference import LiteRTModel

    with quiet.captured_output():  # LiteRT announces its XNNPACK delegate on the first call
        runner = LiteRTModel(tflite_path, threads=2)
        first = runner.predict(images[:64])
    return np.concatenate([first] + [runner.predict(images[i : i + 64]) for i in range(64, len(images), 64)])


def version_for(tflite: bytes, date: str) -> str:
    return f"{date}-{hashlib.sha256(tflite).hexdigest()[:8]}"


def write_manifest(path: Path, rows: list[tuple[str, str, str]]) -> str:
    """SHA256SUMS-style list of every file used (hash, split, path); returns its own hash."""
    text = "".join(f"{sha}  {split}  {rel}\n" for sha, split, rel in rows)
    path.write_text(text, encoding="utf-8")
    return hashlib.sha256(text.encode()).hexdigest()
