"""Reading uploaded photos from a multipart form, in memory, and classifying them within decode admission."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from flask import request
from werkzeug.datastructures import FileStorage

from inference import Classifier, InvalidImage, Prediction, error_record
from inference.contract import BAD_REQUEST, BUSY, MISSING_FILE

from . import state
from .admission import Busy
from .errors import ApiError
from .logs import count_verdict

FIELD = "image"
MAX_SOURCE_CHARS = 255
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
# RFC 2046: 1 to 70 of these characters, the last not a space. Every common client's fits (browsers, curl, requests,
# Go). Werkzeug compiles two regular expressions from each request's boundary, at a cost that grows with its length:
# an 8 KB boundary costs 16 ms of CPU, more than classifying the photo, so a longer one is refused before parsing.
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")


def source_name(filename: str | None) -> str:
    """The uploaded file's own name: no client folder path, no control characters, bounded length."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = _CONTROL_CHARS.sub("", name).strip()
    return name[:MAX_SOURCE_CHARS] or "upload"


def chosen_files(request, field: str = FIELD) -> list[FileStorage]:
    """The files sent in ``field``; raises ApiError for a request that is not such a form."""
    if request.mimetype != "multipart/form-data":
        raise ApiError(BAD_REQUEST, f"Send the photo as multipart/form-data in a file field named '{field}'.")
    if not _BOUNDARY.fullmatch(request.mimetype_params.get("boundary", "")):
        raise ApiError(BAD_REQUEST, "The form's multipart boundary must be 1 to 70 ASCII letters, digits or "
                                    "'()+_,-./:=? characters, as RFC 2046 defines it.")
    try:
        files = [f for f in request.files.getlist(field) if f.filename or f.content_length]
        holds_text = field in request.form
    except ValueError as error:  # Werkzeug's parser refused the form (app.InMemoryRequest makes it say so)
        raise ApiError(BAD_REQUEST, _malformed_form_message(error)) from None
    if not files:
        if holds_text:
            raise ApiError(MISSING_FILE, f"The field '{field}' holds text; it must be a file upload.")
        raise ApiError(MISSING_FILE, f"No photo was sent: add a file in the form field '{field}'.")
    return files


def _malformed_form_message(error: ValueError) -> str:
    if isinstance(error, UnicodeDecodeError):
        return ("The form's part headers must be UTF-8: a file name in another encoding is the usual cause "
                "(rename the file, or send it from a UTF-8 shell).")
    return "The form is malformed: its multipart framing is broken or cut short."


@dataclass(frozen=True)
class Classified:
    """One photo's verdict and how long it took (reading, admission and decoding included)."""

    source: str
    prediction: Prediction
    seconds: float


def classify_upload(classifier: Classifier, upload: FileStorage, with_map: bool = False) -> Classified:
    """Raises the core's InvalidImage for a photo it cannot classify, ApiError ``busy`` when decoding waited too long.
    ``with_map``: the prediction carries the fire map (check ``classifier.check_map()`` first)."""
    started = time.perf_counter()
    data = upload.read()
    try:
        with state.admission().decode(data, classifier.card.input_size):
            prediction = classifier.classify(data, with_map=True) if with_map else classifier.classify(data)
    except Busy:
        raise ApiError(BUSY, "The server is decoding other large photos; please try again in a few seconds.") from None
    count_verdict(request.environ, prediction)
    return Classified(source_name(upload.filename), prediction, time.perf_counter() - started)


@dataclass(frozen=True)
class Outcome:
    """One photo's card on the page: the contract record (a verdict or an error) and how long it took."""

    record: dict
    seconds: float


def page_outcome(classifier: Classifier, upload: FileStorage) -> Outcome:
    """For the page, where each photo of a form gets its own card: errors become that card, not the response."""
    started = time.perf_counter()
    try:
        classified = classify_upload(classifier, upload)
    except (InvalidImage, ApiError) as error:
        return Outcome(error_record(source_name(upload.filename), error), time.perf_counter() - started)
    return Outcome(classified.prediction.to_dict(classified.source, with_certainty=True), classified.seconds)
