"""How failures map to HTTP: one status per error code, JSON for the API, a friendly page elsewhere."""

from __future__ import annotations

from flask import Response, jsonify, render_template, request

MISSING_FILE = "missing_file"
BAD_REQUEST = "bad_request"
TOO_LARGE = "too_large"
TOO_MANY_PARTS = "too_many_parts"
REQUEST_TIMEOUT = "request_timeout"
BUSY = "busy"
NOT_FOUND = "not_found"
METHOD_NOT_ALLOWED = "method_not_allowed"
INTERNAL_ERROR = "internal_error"
RESULTS_DISABLED = "results_disabled"
RESULTS_UNAVAILABLE = "results_unavailable"

# 415: the bytes are not a format we read. 422: a format we read, but this file cannot be classified.
STATUS_BY_CODE = {
    MISSING_FILE: 400,
    BAD_REQUEST: 400,
    TOO_LARGE: 413,
    TOO_MANY_PARTS: 413,  # the form, not the photo: more parts (or a larger text field) than the limits
    REQUEST_TIMEOUT: 408,  # the upload arrived too slowly (web_app/worker.py)
    BUSY: 503,  # too many large photos waiting to be decoded (web_app/admission.py)
    "unsupported_format": 415,
    "empty_file": 422,
    "corrupt_image": 422,
    "too_many_pixels": 422,
    "too_complex": 422,
    NOT_FOUND: 404,
    METHOD_NOT_ALLOWED: 405,
    INTERNAL_ERROR: 500,
    RESULTS_DISABLED: 404,  # this server has no results bucket configured
    RESULTS_UNAVAILABLE: 503,  # the results bucket cannot be read right now
}

API_PREFIX = "/api/"


class ApiError(Exception):
    """A client error the API reports as ``{"error": {"code", "message"}}``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return STATUS_BY_CODE.get(self.code, 400)


def wants_json() -> bool:
    return request.path.startswith(API_PREFIX) or request.path == "/healthz"


def json_error(code: str, message: str, status: int | None = None) -> Response:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status or STATUS_BY_CODE.get(code, 400)
    return response


def error_response(code: str, message: str, status: int | None = None) -> tuple[str, int] | Response:
    """JSON for API paths, the site's error page for everything else."""
    status = status or STATUS_BY_CODE.get(code, 400)
    if wants_json():
        return json_error(code, message, status)
    return render_template("error.html", status=status, message=message), status
