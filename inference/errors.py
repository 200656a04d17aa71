"""The one error type the core raises for input it cannot classify.

Each error carries a stable machine-readable ``code`` (part of the CLI, API and
serverless contracts) and a sentence a person can act on.
"""

from __future__ import annotations

EMPTY_FILE = "empty_file"
TOO_LARGE = "too_large"
TOO_MANY_PIXELS = "too_many_pixels"
UNSUPPORTED_FORMAT = "unsupported_format"
CORRUPT_IMAGE = "corrupt_image"
TOO_COMPLEX = "too_complex"
UNREADABLE_FILE = "unreadable_file"
NOT_FOUND = "not_found"

ERROR_CODES = (
    EMPTY_FILE,
    TOO_LARGE,
    TOO_MANY_PIXELS,
    TOO_COMPLEX,
    UNSUPPORTED_FORMAT,
    CORRUPT_IMAGE,
    UNREADABLE_FILE,
    NOT_FOUND,
)


class InvalidImage(ValueError):
    """The input is not an image this service can classify."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message}
