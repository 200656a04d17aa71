"""The original design's Lambda handler, for comparison: the same handler with TensorFlow/Keras running the model.

Everything but the runtime is shared with ``lambda_image.handler``: the event parsing, S3 reads and writes,
metrics and alerts (``handle_event``), and the inference core's ``Classifier`` (decoding, limits, verdict rule),
given a Keras predictor. The model is ``models/fire_classifier.keras`` run with ``model.predict``, as the original
application did.
"""

from __future__ import annotations

import functools

import keras  # noqa: F401  imported at module level like the original handler: TensorFlow loads during init

from benchmarks.keras_baseline import KerasPredictor, keras_classifier
from inference import Classifier, Limits
from lambda_image import handler as serverless


@functools.cache
def classifier() -> Classifier:
    return keras_classifier(KerasPredictor(threads=1), limits=Limits.from_env())


@serverless.logger.inject_lambda_context(clear_state=True)
@serverless.metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict, context) -> dict:
    return serverless.handle_event(event, classifier())
