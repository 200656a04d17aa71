"""Classify image bytes: decode -> model -> a small immutable verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from .decoding import decode_image
from .errors import InvalidImage
from .model import NEGATIVE_LABEL, POSITIVE_LABEL, LiteRTModel, MapUnavailable, ModelCard, Predictor, card_path_for
from .settings import Limits, Settings

PROBABILITY_DECIMALS = 4
MAP_DECIMALS = 3

FireMap = tuple[tuple[float, ...], ...]  # rows (top first) of per-cell fire evidence, 0..1


@dataclass(frozen=True)
class Prediction:
    label: str
    fire_probability: float
    model_version: str
    fire_map: FireMap | None = None  # only when asked for (``with_map=True``)

    @property
    def is_fire(self) -> bool:
        return self.label == POSITIVE_LABEL

    def to_dict(self, source: str) -> dict:
        """The contract's JSON object (CLI line, API body, base of the serverless result); with ``fire_map`` and
        ``fire_map_grid`` ([rows, columns]) added only when the map was asked for."""
        record = {
            "source": source,
            "label": self.label,
            "fire_probability": self.fire_probability,
            "model_version": self.model_version,
        }
        if self.fire_map is not None:
            record["fire_map"] = [list(row) for row in self.fire_map]
            record["fire_map_grid"] = [len(self.fire_map), len(self.fire_map[0])]
        return record


def error_record(source: str, error: InvalidImage) -> dict:
    return {"source": source, "error": error.to_dict()}


def validate_threshold(value: float) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"threshold must be a number between 0 and 1, got {value!r}")
    return float(value)


class Classifier:
    """The one inference core both targets wrap. Load once per process; reuse for every request.

    Pure: the card, the predictor that runs the model, the limits and the threshold are given;
    :meth:`load` is the one place that reads the settings (environment) and opens the model files.
    """

    def __init__(
        self,
        card: ModelCard,
        predictor: Predictor,
        *,
        limits: Limits | None = None,
        threshold: float | None = None,
    ) -> None:
        self.card = card
        self.limits = limits or Limits()
        self.threshold = validate_threshold(card.threshold if threshold is None else threshold)
        self.predictor = predictor

    @classmethod
    def load(
        cls,
        model_path: Path | str | None = None,
        *,
        threads: int | None = None,
        limits: Limits | None = None,
        threshold: float | None = None,
        settings: Settings | None = None,
    ) -> "Classifier":
        """The ``.tflite`` model and its card on LiteRT; what is not given comes from ``settings``
        (default: :meth:`Settings.from_env`, i.e. ``FIREWATCH_*`` variables, then the defaults)."""
        settings = settings or Settings.from_env()
        path = Path(model_path) if model_path else settings.model_path
        card = ModelCard.load(card_path_for(path))
        predictor = LiteRTModel(path, threads=threads or settings.threads)
        return cls(card, predictor, limits=limits or settings.limits, threshold=threshold)

    @property
    def version(self) -> str:
        return self.card.version

    @property
    def map_grid(self) -> tuple[int, int] | None:
        """(rows, columns) of the fire map, or None when the model (or its runtime) has none."""
        return getattr(self.predictor, "map_grid", None)

    def check_map(self) -> None:
        """Raises :class:`MapUnavailable` unless :meth:`classify` can give a map; cheap, for callers to fail early."""
        if self.map_grid is None:
            raise MapUnavailable(f"the model {self.version} has no fire map output (models exported before the map "
                                 "have none); re-export it with `python -m training.export`")

    def preprocess(self, data: bytes) -> np.ndarray:
        """Image bytes -> (height, width, 3) uint8 at the model's input size; raises InvalidImage."""
        return decode_image(data, self.card.input_size, self.limits)

    def predict_arrays(self, images: np.ndarray, *, with_map: bool = False) -> list[Prediction]:
        """Already preprocessed images, (n, height, width, 3) uint8 -> one Prediction each (with its fire map when
        ``with_map``: the same model call; raises :class:`MapUnavailable` when the model has no map)."""
        if with_map:
            self.check_map()
        if len(images) == 0:
            return []
        if not with_map:
            return [self.verdict(p) for p in self.predictor.predict(images)]
        probabilities, maps = self.predictor.predict_with_map(images)  # type: ignore[attr-defined]
        return [self.verdict(p, m) for p, m in zip(probabilities, maps)]

    def classify(self, data: bytes, *, with_map: bool = False) -> Prediction:
        """Classify one image; raises :class:`InvalidImage` for input that is not a readable image, and
        :class:`MapUnavailable` (before decoding) when ``with_map`` is asked of a model without a map."""
        if with_map:
            self.check_map()
        return self.predict_arrays(self.preprocess(data)[np.newaxis], with_map=with_map)[0]

    def classify_many(self, items: Iterable[bytes], *, with_map: bool = False) -> list[Prediction | InvalidImage]:
        """Classify several images in one model call; bad items come back as their InvalidImage."""
        if with_map:
            self.check_map()
        outcomes: list[Prediction | InvalidImage | None] = []
        arrays, slots = [], []
        for data in items:
            try:
                arrays.append(self.preprocess(data))
                slots.append(len(outcomes))
                outcomes.append(None)
            except InvalidImage as error:
                outcomes.append(error)
        if arrays:
            for slot, prediction in zip(slots, self.predict_arrays(np.stack(arrays), with_map=with_map)):
                outcomes[slot] = prediction
        return outcomes  # type: ignore[return-value]

    def verdict(self, probability: float, fire_map: np.ndarray | None = None) -> Prediction:
        """The rule from a model's probability to a verdict, whatever runtime produced it."""
        # Decide on the probability as reported, so a reader can always check label against threshold.
        probability = round(float(min(max(probability, 0.0), 1.0)), PROBABILITY_DECIMALS)
        label = POSITIVE_LABEL if probability >= self.threshold else NEGATIVE_LABEL
        return Prediction(label, probability, self.card.version, None if fire_map is None else rounded_map(fire_map))


def rounded_map(fire_map: np.ndarray) -> FireMap:
    """A (rows, columns) array -> rows of plain floats in 0..1, rounded for JSON."""
    cells = np.round(np.clip(np.asarray(fire_map, dtype=np.float64), 0.0, 1.0), MAP_DECIMALS)
    return tuple(map(tuple, cells.tolist()))


def outcome_record(source: str, outcome: Prediction | InvalidImage) -> dict:
    """The contract's JSON object for either a verdict or an error."""
    if isinstance(outcome, InvalidImage):
        return error_record(source, outcome)
    return outcome.to_dict(source)

