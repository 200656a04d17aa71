"""The model card, the predictor interface, and the LiteRT runtime that executes the ``.tflite`` model."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

POSITIVE_LABEL = "fire"
NEGATIVE_LABEL = "nofire"


class ModelNotFound(FileNotFoundError):
    """The model or its card is missing: a deployment problem, not a bad request."""


@dataclass(frozen=True)
class ModelCard:
    """What serving needs from ``fire_classifier.json``; ``raw`` keeps the whole card for display."""

    name: str
    version: str
    labels: tuple[str, ...]
    input_width: int
    input_height: int
    threshold: float
    raw: dict

    @classmethod
    def load(cls, path: Path) -> "ModelCard":
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelNotFound(f"model card not found: {path}") from None
        size = raw["input"]
        return cls(
            name=raw["name"],
            version=raw["version"],
            labels=tuple(raw["labels"]),
            input_width=int(size["width"]),
            input_height=int(size["height"]),
            threshold=float(raw["threshold"]),
            raw=raw,
        )

    @property
    def input_size(self) -> tuple[int, int]:
        return (self.input_width, self.input_height)


def card_path_for(model_path: Path) -> Path:
    return model_path.with_suffix(".json")


class Predictor(Protocol):
    """What the classifier needs of a model runtime (LiteRT in the product, Keras in the benchmarks' baseline)."""

    def predict(self, images: np.ndarray) -> np.ndarray:
        """``images``: (n, height, width, 3) uint8 RGB. Returns n probabilities of fire."""
        ...


class LiteRTModel:
    """A ``.tflite`` binary classifier: a batch of uint8 RGB images -> probability of fire.

    The interpreter is not thread-safe, so calls are serialised by a lock; run one
    instance per process (or per thread) for parallelism.
    """

    def __init__(self, path: Path, threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter  # the only runtime dependency on LiteRT

        if not path.is_file():
            raise ModelNotFound(f"model file not found: {path}")
        self._interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._batch = 0
        self._lock = threading.Lock()

    def _ensure_batch(self, batch: int, height: int, width: int) -> None:
        if batch != self._batch:
            self._interpreter.resize_tensor_input(self._input["index"], [batch, height, width, 3])
            self._interpreter.allocate_tensors()
            self._batch = batch

    def predict(self, images: np.ndarray) -> np.ndarray:
        """``images``: (n, height, width, 3) uint8. Returns n float probabilities of fire."""
        batch, height, width, _ = images.shape
        with self._lock:
            self._ensure_batch(batch, height, width)
            self._interpreter.set_tensor(self._input["index"], images.astype(self._input["dtype"], copy=False))
            self._interpreter.invoke()
            scores = self._interpreter.get_tensor(self._output["index"])
        return np.asarray(scores, dtype=np.float64).reshape(batch)
