"""Firewatch's one inference core: decode, validate, preprocess, run the model, explain the result.

Depends on numpy, Pillow and LiteRT only: no AWS SDK, no web framework, no TensorFlow.
"""

from .classifier import Classifier, Prediction, error_record, outcome_record, validate_threshold
from .decoding import decode_image, sniff_format
from .errors import ERROR_CODES, InvalidImage
from .model import ModelCard, ModelNotFound
from .settings import Limits, Settings

__all__ = [
    "Classifier",
    "ERROR_CODES",
    "InvalidImage",
    "Limits",
    "ModelCard",
    "ModelNotFound",
    "Prediction",
    "Settings",
    "decode_image",
    "error_record",
    "outcome_record",
    "sniff_format",
    "validate_threshold",
]
