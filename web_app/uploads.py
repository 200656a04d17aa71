"""Reading uploaded photos from a multipart form, in memory, with errors the API can name."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from flask import current_app
from werkzeug.datastructures import FileStorage

from inference import Classifier, InvalidImage, outcome_record

from .admission import Admission, Busy
from .errors import BAD_REQUEST, BUSY, MISSING_FILE, ApiError

FIELD = "image"
MAX_SOURCE_CHARS = 255
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def get_classifier() -> Classifier:
    return current_app.extensions["firewatch.classifier"]


def get_admission() -> Admission:
    return current_app.extensions["firewatch.admission"]


def source_name(filename: str | None) -> str:
    """The uploaded file's own name: no client folder path, no control characters, bounded length."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = _CONTROL_CHARS.sub("", name).strip()
    return name[:MAX_SOURCE_CHARS] or "upload"


def chosen_files(request, field: str = FIELD) -> list[FileStorage]:
    """The files sent in ``field``; raises ApiError for a request that is not such a form."""
    if request.mimetype != "multipart/form-data":
        raise ApiError(BAD_REQUEST, f"Send the photo as multipart/form-data in a file field named '{field}'.")
    files = [f for f in request.files.getlist(field) if f.filename or f.content_length]
    if not files:
        if field in request.form:
            raise ApiError(MISSING_FILE, f"The field '{field}' holds text; it must be a file upload.")
        raise ApiError(MISSING_FILE, f"No photo was sent: add a file in the form field '{field}'.")
    return files


@dataclass(frozen=True)
class Outcome:
    """One photo's result for the page: the contract record plus how long it took."""

    record: dict
    seconds: float

    @property
    def error(self) -> dict | None:
        return self.record.get("error")


def classify_upload(classifier: Classifier, upload: FileStorage) -> Outcome:
    started = time.perf_counter()
    data = upload.read()
    source = source_name(upload.filename)
    try:
        with get_admission().decode(data, classifier.card.input_size):
            outcome = classifier.classify(data)
    except InvalidImage as error:
        outcome = error
    except Busy:
        message = "The server is decoding other large photos; please try again in a few seconds."
        return Outcome({"source": source, "error": {"code": BUSY, "message": message}}, time.perf_counter() - started)
    return Outcome(outcome_record(source, outcome), time.perf_counter() - started)
