"""Write the trained model as .keras and .tflite, and the model card serving reads."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import tensorflow as tf


def to_tflite(model) -> bytes:
    """Float32 TFLite. Dynamic-range quantisation was measured 1.5x slower on x86 CPUs, so it is not used."""
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def litert_probabilities(tflite_path: Path, images: np.ndarray) -> np.ndarray:
    """Run the exported file with LiteRT exactly as serving does."""
    from inference.model import LiteRTModel

    runner = LiteRTModel(tflite_path, threads=2)
    return np.concatenate([runner.predict(images[i : i + 64]) for i in range(0, len(images), 64)])


def version_for(tflite: bytes, date: str) -> str:
    return f"{date}-{hashlib.sha256(tflite).hexdigest()[:8]}"


def write_card(path: Path, card: dict) -> None:
    path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")


def write_manifest(path: Path, rows: list[tuple[str, str, str]]) -> str:
    """SHA256SUMS-style list of every file used (hash, split, path); returns its own hash."""
    text = "".join(f"{sha}  {split}  {rel}\n" for sha, split, rel in rows)
    path.write_text(text, encoding="utf-8")
    return hashlib.sha256(text.encode()).hexdigest()
