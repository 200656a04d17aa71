"""Two fits served as a cascade: the first fit alone where its verdict is clear, the mean of both near the threshold.

An ensemble of two fits is better than either (out of fold), and costs two fits per photo. Most photos are far from the
threshold for both fits, and there the second fit does not change the verdict: the cascade runs it only on photos the
first fit scores within ``margin`` of the threshold. For those, the probability is the mean of both fits' (as the
whole model computes it) and the fire map the sigmoid of the mean of both fits' cell logits; elsewhere both are the
first fit's own. Training chooses the margin out of fold (``python -m training.loso --cascade``): the smallest at
which no verdict differs from the mean's. The card's ``cascade`` block records it.

The ``.tflite`` file holds the whole model (signature ``serving_default``) and each fit alone (``first``, ``second``:
its probability and its cell logits), so the model is still one file.
"""

from __future__ import annotations

import math

import numpy as np

from .model import PROBABILITY_OUTPUT, LiteRTModel

FIRST_FIT, SECOND_FIT = "first", "second"
CELL_LOGITS_OUTPUT = "fire_cell_logits"


class Cascade:
    """A :class:`~inference.model.Predictor` over the ``first`` and ``second`` signatures of a cascade's file."""

    def __init__(self, model: LiteRTModel, margin: float, threshold: float) -> None:
        if not (isinstance(margin, (int, float)) and math.isfinite(margin) and 0 < margin < 1):
            raise ValueError(f"the model card's cascade margin must be a number between 0 and 1, got {margin!r}")
        missing = [name for name in (FIRST_FIT, SECOND_FIT) if name not in model.signatures]
        if missing:
            raise ValueError(f"the model card describes a cascade, but the model file has no {' or '.join(missing)} "
                             f"signature (it has {', '.join(model.signatures) or 'one unnamed'}): re-export it")
        self.model, self.margin, self.threshold = model, float(margin), float(threshold)
        self.map_grid = model.map_grid

    @classmethod
    def from_card(cls, model: LiteRTModel, plan: object, threshold: float) -> "Cascade":
        """The cascade a card's ``cascade`` block describes; ValueError for a block that is not one."""
        if not isinstance(plan, dict):
            raise ValueError(f"the model card's cascade must be an object with a margin, got {plan!r}")
        return cls(model, plan.get("margin"), threshold)  # type: ignore[arg-type]

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self._run(images)[0]

    def predict_with_map(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probabilities, cell_logits = self._run(images)
        return probabilities, (1 / (1 + np.exp(-cell_logits))).astype(np.float32)

    def second_fit_needed(self, probabilities: np.ndarray) -> np.ndarray:
        """Which of the first fit's probabilities are within the margin of the threshold (as positions)."""
        return np.flatnonzero(np.abs(probabilities - self.threshold) < self.margin)

    def _run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        first = self.model.run_signature(FIRST_FIT, images)
        probabilities = np.asarray(first[PROBABILITY_OUTPUT], dtype=np.float64).reshape(len(images))
        cell_logits = np.asarray(first[CELL_LOGITS_OUTPUT], dtype=np.float64)
        near = self.second_fit_needed(probabilities)
        if near.size:
            second = self.model.run_signature(SECOND_FIT, images[near])
            probabilities[near] = (probabilities[near] + np.asarray(second[PROBABILITY_OUTPUT], np.float64).reshape(-1)) / 2
            cell_logits[near] = (cell_logits[near] + np.asarray(second[CELL_LOGITS_OUTPUT], np.float64)) / 2
        return probabilities, cell_logits
