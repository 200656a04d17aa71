"""The function's JSON logger and EMF metrics (Powertools for AWS Lambda), shared by the handler and the pipeline."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from inference import BORDERLINE, InvalidImage, Prediction
from inference.contract import (
    BATCH_ITEM_FAILURES, BORDERLINE_VERDICTS, ENVIRONMENT_DIMENSION, FIRE_DETECTED, IMAGES_CLASSIFIED, INFERENCE_LATENCY,
    INVALID_IMAGES, MALFORMED_RECORDS, METRICS_NAMESPACE, REFUSED_RECORDS, SERVICE_NAME, environment,
)  # fmt: skip

from .events import MALFORMED, REFUSED

# Named by POWERTOOLS_SERVICE_NAME and POWERTOOLS_METRICS_NAMESPACE where set (the function sets both); else these.
# Every metric carries service and environment: the dashboard and alarms of a deployment select by both.
SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or SERVICE_NAME
logger = Logger(service=SERVICE)
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or METRICS_NAMESPACE, service=SERVICE)
metrics.set_default_dimensions(**{ENVIRONMENT_DIMENSION: environment()})

# Records passed over for a reason worth an alarm, by Skipped.kind.
REJECTED_METRICS = {REFUSED: REFUSED_RECORDS, MALFORMED: MALFORMED_RECORDS}


def count_outcome(outcome: Prediction | InvalidImage, latency_ms: float | None) -> None:
    if isinstance(outcome, InvalidImage):
        metrics.add_metric(name=INVALID_IMAGES, unit=MetricUnit.Count, value=1)
        return
    metrics.add_metric(name=IMAGES_CLASSIFIED, unit=MetricUnit.Count, value=1)
    if outcome.is_fire:
        metrics.add_metric(name=FIRE_DETECTED, unit=MetricUnit.Count, value=1)
    if outcome.certainty == BORDERLINE:
        metrics.add_metric(name=BORDERLINE_VERDICTS, unit=MetricUnit.Count, value=1)
    if latency_ms is not None:
        metrics.add_metric(name=INFERENCE_LATENCY, unit=MetricUnit.Milliseconds, value=round(latency_ms, 3))


def count_rejected(kind: str) -> None:
    name = REJECTED_METRICS.get(kind)
    if name:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)


def count_batch_failures(count: int) -> None:
    """Messages of an SQS batch reported back as failed (each is delivered again, up to the queue's receive count)."""
    metrics.add_metric(name=BATCH_ITEM_FAILURES, unit=MetricUnit.Count, value=count)
