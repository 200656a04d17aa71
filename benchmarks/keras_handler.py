"""The original design's Lambda handler, for comparison: the same handler with TensorFlow/Keras running the model.

Everything but the runtime is shared with ``lambda_image.handler``: the event parsing, S3 reads and writes,
metrics and alerts (``handle_event``), and the decoding of the inference core. The model is
``models/fire_classifier.keras`` run with ``model.predict``, as the original application did.
"""

from __future__ import annotations

import functools

import keras  # noqa: F401  imported at module level like the original handler: TensorFlow loads during init
import numpy as np

from benchmarks.keras_baseline import KerasClassifier
from inference import Limits, Prediction
from inference.classifier import PROBABILITY_DECIMALS
from inference.model import NEGATIVE_LABEL, POSITIVE_LABEL
from lambda_image import handler as serverless


class KerasHandlerClassifier:
    """What the handler asks of a classifier (``limits``, ``threshold``, ``classify``), on Keras."""

    def __init__(self) -> None:
        self._keras = KerasClassifier(threads=1)
        self.card = self._keras.card
        self.threshold = self.card.threshold
        self.limits = Limits.from_env()

    def classify(self, data: bytes) -> Prediction:
        raw = float(self._keras.predict(self._keras.preprocess(data)[np.newaxis])[0])
        # The core's rule: decide on the probability as reported (clipped, 4 decimals).
        probability = round(min(max(raw, 0.0), 1.0), PROBABILITY_DECIMALS)
        label = POSITIVE_LABEL if probability >= self.threshold else NEGATIVE_LABEL
        return Prediction(label, probability, self.card.version)


@functools.cache
def classifier() -> KerasHandlerClassifier:
    return KerasHandlerClassifier()


@serverless.logger.inject_lambda_context(clear_state=True)
@serverless.metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict, context) -> dict:
    return serverless.handle_event(event, classifier())
