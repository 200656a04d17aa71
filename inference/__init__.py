"""Firewatch's one inference core: decode, validate, preprocess, run the model, explain the result.

Depends on numpy, Pillow and LiteRT only: no AWS SDK, no web framework, no TensorFlow.
"""

from .classifier import (
    BORDERLINE, CERTAINTIES, CLEAR, Classifier, Prediction, certainty_of, error_record, outcome_record, validate_threshold,
)
from .decoding import IMAGE_SUFFIXES, decode_image, sniff_format
from .errors import ERROR_CODES, InvalidImage
from .model import LiteRTModel, MapUnavailable, ModelCard, ModelNotFound, Predictor
from .settings import Limits, Settings, positive_int

__all__ = [
    "BORDERLINE",
    "CERTAINTIES",
    "CLEAR",
    "Classifier",
    "ERROR_CODES",
    "IMAGE_SUFFIXES",
    "InvalidImage",
    "Limits",
    "LiteRTModel",
    "MapUnavailable",
    "ModelCard",
    "ModelNotFound",
    "Prediction",
    "Predictor",
    "Settings",
    "certainty_of",
    "decode_image",
    "error_record",
    "outcome_record",
    "positive_int",
    "sniff_format",
    "validate_threshold",
]
