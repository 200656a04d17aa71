"""Firewatch's one inference core: decode, validate, preprocess, run the model, explain the result.

Depends on numpy, Pillow and LiteRT only: no AWS SDK, no web framework, no TensorFlow.
"""

from .classifier import (
    BORDERLINE, CERTAINTIES, CLEAR, Classifier, Prediction, certainty_of, error_record, outcome_record, validate_threshold,
)
from .cascade import CELL_LOGITS_OUTPUT, FIRST_FIT, SECOND_FIT, Cascade
from .decoding import IMAGE_SUFFIXES, decode_image, sniff_format
from .errors import ERROR_CODES, InvalidImage
from .files import read_input
from .model import DEFAULT_SIGNATURE, MAP_OUTPUT, PROBABILITY_OUTPUT, LiteRTModel, MapUnavailable, ModelCard, ModelNotFound, Predictor
from .settings import Limits, Settings, positive_int

__all__ = [
    "BORDERLINE",
    "CELL_LOGITS_OUTPUT",
    "CERTAINTIES",
    "CLEAR",
    "Cascade",
    "Classifier",
    "DEFAULT_SIGNATURE",
    "ERROR_CODES",
    "FIRST_FIT",
    "IMAGE_SUFFIXES",
    "InvalidImage",
    "Limits",
    "LiteRTModel",
    "MAP_OUTPUT",
    "MapUnavailable",
    "ModelCard",
    "ModelNotFound",
    "PROBABILITY_OUTPUT",
    "Prediction",
    "Predictor",
    "SECOND_FIT",
    "Settings",
    "certainty_of",
    "decode_image",
    "error_record",
    "outcome_record",
    "positive_int",
    "read_input",
    "sniff_format",
    "validate_threshold",
]
