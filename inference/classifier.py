"""Classify image bytes: decode -> model -> a small immutable verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from .cascade import Cascade
from .decoding import decode_image
from .errors import InvalidImage
from .model import NEGATIVE_LABEL, POSITIVE_LABEL, LiteRTModel, MapUnavailable, ModelCard, Predictor, card_path_for
from .settings import Limits, Settings

PROBABILITY_DECIMALS = 4
MAP_DECIMALS = 3

FireMap = tuple[tuple[float, ...], ...]  # rows (top first) of per-cell fire evidence, 0..1

# ------------------------------------------------------------------------------------------------------ certainty
CLEAR, BORDERLINE = "clear", "borderline"
CERTAINTIES = (CLEAR, BORDERLINE)
# A verdict is borderline when the model's odds of fire are within a factor of 3 of the threshold's odds:
# |logit(p) - logit(threshold)| < ln 3. Measured in logits (log-odds), not in probability points, so the band is as
# wide on either side of any threshold in the model's own units, and never reaches 0 or 1: with the threshold at
# 0.67 it is 0.404 < p < 0.859, while 0.015 or 0.97 stay clear. A card may set its own ``borderline_logits``.
DEFAULT_BORDERLINE_LOGITS = math.log(3)
# Keeps logit() finite for a probability or threshold of exactly 0 or 1.
_LOGIT_EPSILON = 1e-6


def _logit(p: float) -> float:
    p = min(max(p, _LOGIT_EPSILON), 1.0 - _LOGIT_EPSILON)
    return math.log(p / (1.0 - p))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def certainty_of(probability: float, threshold: float, band_logits: float = DEFAULT_BORDERLINE_LOGITS) -> str:
    """``borderline`` when ``probability`` lies within ``band_logits`` log-odds of ``threshold``, else ``clear``."""
    return BORDERLINE if abs(_logit(probability) - _logit(threshold)) < band_logits else CLEAR


def borderline_band(threshold: float, band_logits: float = DEFAULT_BORDERLINE_LOGITS) -> tuple[float, float]:
    """The probabilities (low, high) between which a verdict is borderline, for display."""
    centre = _logit(threshold)
    return _sigmoid(centre - band_logits), _sigmoid(centre + band_logits)


@dataclass(frozen=True)
class Prediction:
    label: str
    fire_probability: float
    model_version: str
    # How sure the verdict is: the threshold it was judged against, and clear or borderline (see certainty_of).
    threshold: float
    certainty: str
    fire_map: FireMap | None = None  # only when asked for (``with_map=True``)

    @property
    def is_fire(self) -> bool:
        return self.label == POSITIVE_LABEL

    @property
    def margin(self) -> float:
        """How far the probability is from the threshold: positive on the fire side."""
        return round(self.fire_probability - self.threshold, PROBABILITY_DECIMALS)

    def certainty_dict(self) -> dict:
        return {"threshold": self.threshold, "margin": self.margin, "certainty": self.certainty}

    def to_dict(self, source: str, *, with_certainty: bool = False) -> dict:
        """The contract's JSON object (CLI line, base of the serverless result); the API adds the certainty fields
        (``threshold``, ``margin``, ``certainty``) after the contract's keys. ``fire_map`` and ``fire_map_grid``
        ([rows, columns]) come last, only when the map was asked for."""
        record = {
            "source": source,
            "label": self.label,
            "fire_probability": self.fire_probability,
            "model_version": self.model_version,
        }
        if with_certainty:
            record.update(self.certainty_dict())
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
        band = DEFAULT_BORDERLINE_LOGITS if card.borderline_logits is None else card.borderline_logits
        if not (isinstance(band, (int, float)) and math.isfinite(band) and band >= 0):
            raise ValueError(f"the model card's borderline_logits must be a number >= 0, got {band!r}")
        self.borderline_logits = float(band)
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
        model = LiteRTModel(path, threads=threads or settings.threads)
        classifier = cls(card, model, limits=limits or settings.limits, threshold=threshold)
        if card.cascade:  # around the threshold verdicts are made at: the card's, or the one given
            classifier.predictor = Cascade.from_card(model, card.cascade, classifier.threshold)
        return classifier

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
        certainty = certainty_of(probability, self.threshold, self.borderline_logits)
        return Prediction(label, probability, self.card.version, self.threshold, certainty,
                          None if fire_map is None else rounded_map(fire_map))

    @property
    def borderline_band(self) -> tuple[float, float]:
        """The probabilities (low, high) between which this classifier calls a verdict borderline."""
        return borderline_band(self.threshold, self.borderline_logits)


def rounded_map(fire_map: np.ndarray) -> FireMap:
    """A (rows, columns) array -> rows of plain floats in 0..1, rounded for JSON."""
    cells = np.round(np.clip(np.asarray(fire_map, dtype=np.float64), 0.0, 1.0), MAP_DECIMALS)
    return tuple(map(tuple, cells.tolist()))


def outcome_record(source: str, outcome: Prediction | InvalidImage) -> dict:
    """The contract's JSON object for either a verdict or an error."""
    if isinstance(outcome, InvalidImage):
        return error_record(source, outcome)
    return outcome.to_dict(source)

