"""The model card, the predictor interface, and the LiteRT runtime that executes the ``.tflite`` model."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Protocol

import numpy as np

POSITIVE_LABEL = "fire"
NEGATIVE_LABEL = "nofire"


class ModelNotFound(FileNotFoundError):
    """The model or its card is missing: a deployment problem, not a bad request."""


class MapUnavailable(RuntimeError):
    """A fire map was asked of a model that has none (one exported before the map existed, or another runtime)."""


# The served model's outputs, by signature name. Models exported before the map have one unnamed output, the
# probability; the map is then unavailable.
PROBABILITY_OUTPUT = "fire_probability"
MAP_OUTPUT = "fire_map"
# A file with several signatures (a cascade's, inference.cascade) serves the whole model under this one.
DEFAULT_SIGNATURE = "serving_default"


OUTPUT_DESCRIPTION = "probability of fire (sigmoid); label is fire when probability >= threshold"
# Keys a card must have for serving; every other key records how the model was made and may be missing
# from cards written before it existed.
REQUIRED_CARD_KEYS = ("name", "version", "labels", "input", "threshold")


@dataclass(frozen=True, kw_only=True)
class ModelCard:
    """``fire_classifier.json``, both ways: training fills one and :meth:`save` writes it, serving :meth:`load` s it.

    The fields, in this order, are the card's keys. ``raw`` keeps the JSON exactly as read, for display.
    """

    name: str
    version: str
    labels: tuple[str, ...] = (NEGATIVE_LABEL, POSITIVE_LABEL)
    positive_label: str = POSITIVE_LABEL
    output: str = OUTPUT_DESCRIPTION
    # width, height, channels, dtype, value_range, preprocessing
    input: dict
    threshold: float
    threshold_rule: str | None = None
    # Half-width, in log-odds, of the band around the threshold where a verdict is called borderline (serving's
    # default, ln 3, when absent; see inference.classifier.certainty_of).
    borderline_logits: float | None = None
    backbone: str | None = None
    width: float | None = None  # the compact backbone's channel multiplier (the input's size is in ``input``)
    loss: str | None = None
    test_time_augmentation: str | None = None
    augmentation: dict | None = None
    pretrained_weights: str | None = None
    parameters: int | None = None
    # folders, images, train/validation counts, split, held_out_sources, credits, file_hashes(_sha256)
    training_data: dict = field(default_factory=dict)
    # validation, litert_vs_keras_max_abs_diff, held_out_sources (when sources were held out)
    metrics: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    reports: dict = field(default_factory=dict)
    date: str | None = None
    training_command: str | None = None
    files: dict = field(default_factory=dict)
    tflite_format: dict = field(default_factory=dict)
    # the second output: {"output", "grid": [rows, columns], "definition"}; None for models without it
    fire_map: dict | None = None
    # an ensemble of two fits served as a cascade (inference.cascade): {"margin", "first", "second", ...}; None: the
    # whole model scores every photo
    cascade: dict | None = None
    # what the model does outside what it was measured on (controlled flames, depicted fire, unseen kinds of scene)
    limitations: list = field(default_factory=list)
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "threshold", float(self.threshold))
        for side in ("width", "height"):
            if int(self.input[side]) <= 0:
                raise ValueError(f"the model card's input {side} must be positive, got {self.input[side]!r}")
        if not self.raw:
            object.__setattr__(self, "raw", self.to_dict())

    @classmethod
    def from_dict(cls, raw: dict) -> "ModelCard":
        missing = [key for key in REQUIRED_CARD_KEYS if key not in raw]
        if missing:
            raise KeyError(f"the model card lacks {', '.join(missing)}")
        known = {f.name for f in fields(cls)} - {"raw"}
        return cls(**{key: value for key, value in raw.items() if key in known}, raw=raw)

    @classmethod
    def load(cls, path: Path) -> "ModelCard":
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelNotFound(f"model card not found: {path}") from None
        return cls.from_dict(raw)

    def to_dict(self) -> dict:
        """The card's JSON object, keys in field order."""
        card = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "raw"}
        card["labels"] = list(self.labels)
        return card

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @property
    def input_width(self) -> int:
        return int(self.input["width"])

    @property
    def input_height(self) -> int:
        return int(self.input["height"])

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


class MapPredictor(Predictor, Protocol):
    """A predictor that can also say where it sees fire (optional: the classifier checks ``map_grid``)."""

    map_grid: tuple[int, int] | None  # (rows, columns) of the map, None when this model has none

    def predict_with_map(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """n probabilities of fire and n maps (n, rows, columns) of per-cell fire evidence in 0..1, from one call."""
        ...


class LiteRTModel:
    """A ``.tflite`` binary classifier: a batch of uint8 RGB images -> probability of fire, and, when the model has
    the output ``fire_map``, where in the photo it sees fire (computed in the same call either way).

    The interpreter is not thread-safe, so calls are serialised by a lock; run one
    instance per process (or per thread) for parallelism.
    """

    def __init__(self, path: Path, threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter  # the only runtime dependency on LiteRT

        if not path.is_file():
            raise ModelNotFound(f"model file not found: {path}")
        self._interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.signatures = tuple(self._interpreter.get_signature_list())
        self._runners: dict = {}
        # With several signatures, the whole model is the default one, run through its signature runner.
        self._default = self._runner(DEFAULT_SIGNATURE) if len(self.signatures) > 1 else None
        self._input = self._interpreter.get_input_details()[0]
        self._output, self._map = self._named_outputs()
        for role, detail in (("input", self._input), ("output", self._output), ("fire map output", self._map)):
            # A fully quantised file (int8 or uint8 input and output) would take 0-255 pixels and give 0-255 scores
            # on another scale, silently: refused. Training exports every format with float32 ends.
            if detail is not None and np.dtype(detail["dtype"]) != np.float32:
                raise ValueError(f"the model's {role} is {np.dtype(detail['dtype'])}, not float32; export it with "
                                 "float input and output (as `python -m training` does for every format)")
        self.map_grid = tuple(int(n) for n in self._map["shape_signature"][1:3]) if self._map else None
        self._batch = 0
        self._lock = threading.Lock()

    def _named_outputs(self) -> tuple[dict, dict | None]:
        """The probability and map outputs' details, by signature name; a model with one output (exported before
        the map existed, whatever its name) has only the probability."""
        if self._default is not None:
            outputs = self._default.get_output_details()
            return outputs[PROBABILITY_OUTPUT], outputs.get(MAP_OUTPUT)
        signatures = self._interpreter.get_signature_list()
        outputs = self._interpreter.get_signature_runner().get_output_details() if len(signatures) == 1 else {}
        if PROBABILITY_OUTPUT in outputs:
            return outputs[PROBABILITY_OUTPUT], outputs.get(MAP_OUTPUT)
        details = self._interpreter.get_output_details()
        if len(details) != 1:
            raise ValueError(f"the model has {len(details)} outputs but none named {PROBABILITY_OUTPUT!r}")
        return details[0], None

    def _ensure_batch(self, batch: int, height: int, width: int) -> None:
        if batch != self._batch:
            self._interpreter.resize_tensor_input(self._input["index"], [batch, height, width, 3])
            self._interpreter.allocate_tensors()
            self._batch = batch

    def predict(self, images: np.ndarray) -> np.ndarray:
        """``images``: (n, height, width, 3) uint8. Returns n float probabilities of fire."""
        return self._run(images, with_map=False)[0]

    def predict_with_map(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """n probabilities and n maps (n, rows, columns) in 0..1; raises :class:`MapUnavailable` without the output."""
        if self._map is None:
            raise MapUnavailable("this model has no fire map output; re-export it with `python -m training.export`")
        return self._run(images, with_map=True)  # type: ignore[return-value]

    def _runner(self, name: str):
        if name not in self.signatures:
            raise ValueError(f"the model has no signature {name!r} (it has {', '.join(self.signatures) or 'none'})")
        runner = self._interpreter.get_signature_runner(name)
        (image_input,) = runner.get_input_details()
        self._runners[name] = (runner, image_input)
        return runner

    def run_signature(self, name: str, images: np.ndarray) -> dict[str, np.ndarray]:
        """All outputs of signature ``name`` on ``images`` (n, height, width, 3), by output name."""
        if name not in self._runners:
            self._runner(name)
        runner, image_input = self._runners[name]
        with self._lock:
            return runner(**{image_input: images.astype(np.float32, copy=False)})

    def _run(self, images: np.ndarray, with_map: bool) -> tuple[np.ndarray, np.ndarray | None]:
        batch, height, width, _ = images.shape
        if self._default is not None:
            outputs = self.run_signature(DEFAULT_SIGNATURE, images)
            scores = outputs[PROBABILITY_OUTPUT]
            return np.asarray(scores, dtype=np.float64).reshape(batch), outputs[MAP_OUTPUT] if with_map else None
        with self._lock:
            self._ensure_batch(batch, height, width)
            self._interpreter.set_tensor(self._input["index"], images.astype(self._input["dtype"], copy=False))
            self._interpreter.invoke()
            scores = self._interpreter.get_tensor(self._output["index"])
            maps = self._interpreter.get_tensor(self._map["index"]) if with_map else None  # a copy, made under the lock
        return np.asarray(scores, dtype=np.float64).reshape(batch), maps
