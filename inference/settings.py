"""Limits and paths the core runs with, overridable by environment variables."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import TOO_LARGE, InvalidImage

DEFAULT_MODEL_PATH = Path(__file__).resolve().parent.parent / "models" / "fire_classifier.tflite"

MODEL_PATH_ENV = "FIREWATCH_MODEL_PATH"
MAX_BYTES_ENV = "FIREWATCH_MAX_BYTES"
MAX_PIXELS_ENV = "FIREWATCH_MAX_PIXELS"
MAX_DECODE_BYTES_ENV = "FIREWATCH_MAX_DECODE_BYTES"
THREADS_ENV = "FIREWATCH_THREADS"


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


def positive_int(text: str) -> int:
    """An ``argparse`` type for counts such as ``--threads`` and ``--workers``: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text!r}")
    return value


@dataclass(frozen=True)
class Limits:
    """What the decoder accepts. Everything here is checked from the headers, before decoding."""

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000
    # Memory the decoder may need for one image (its full-size raster, libwebp's canvases, a progressive
    # JPEG's coefficients): a 40 MP PNG needs 160 MB; with the process itself, one image stays under 400 MB.
    max_decode_bytes: int = 256 * 1024 * 1024
    # Scans of a JPEG: encoders write 1 (baseline) to about 10-20 (progressive); libjpeg makes one pass over
    # the whole image per scan, about 40 ms per scan at 40 MP on a 2-core machine.
    max_scans: int = 64

    def check_size(self, size: int) -> None:
        """Refuse ``size`` bytes before reading them (files, S3 objects) or decoding them."""
        if size > self.max_bytes:
            raise InvalidImage(TOO_LARGE, f"The file is {size:,} bytes; the limit is {self.max_bytes:,} bytes.")

    @classmethod
    def from_env(cls) -> "Limits":
        defaults = cls()
        return cls(
            max_bytes=_env_int(MAX_BYTES_ENV, defaults.max_bytes),
            max_pixels=_env_int(MAX_PIXELS_ENV, defaults.max_pixels),
            max_decode_bytes=_env_int(MAX_DECODE_BYTES_ENV, defaults.max_decode_bytes),
        )


@dataclass(frozen=True)
class Settings:
    model_path: Path = DEFAULT_MODEL_PATH
    threads: int = 1
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(
            model_path=Path(os.environ.get(MODEL_PATH_ENV) or DEFAULT_MODEL_PATH),
            threads=_env_int(THREADS_ENV, 1),
            limits=Limits.from_env(),
        )
