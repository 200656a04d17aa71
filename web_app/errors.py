"""How failures reach the client: the API's ``{"error": {"code", "message"}}`` with the status the shared contract
gives each code (``inference.contract``), the site's error page elsewhere."""

from __future__ import annotations

from flask import Response, jsonify, render_template, request

from inference.contract import http_status

API_PREFIX = "/api/"
# Set on gunicorn's socket for web_app.worker: close the connection after this response. An error answered before
# the request's body was read (or one whose body cannot be read) leaves the rest of it on the connection, and gunicorn
# would either give up draining it after saying keep-alive, or read it as the next request and answer that too.
CLOSE_AFTER_RESPONSE = "close_after_response"
# The 408's message, from the app (a thread's read timed out) or from the worker's event loop (web_app.worker).
SLOW_UPLOAD_MESSAGE = "The upload arrived too slowly; check the connection and try again."


class ApiError(Exception):
    """A client error of the web API itself (no file, a bad form, busy...); the core's own is ``InvalidImage``.

    Both carry ``code`` and ``message`` and reach the same error handler (``web_app.app``).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return http_status(self.code)

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message}


def close_after_response() -> None:
    """Have the server close this request's connection once it has answered (no-op outside gunicorn)."""
    try:
        setattr(request.environ.get("gunicorn.socket"), CLOSE_AFTER_RESPONSE, True)
    except AttributeError:  # not under gunicorn's worker (tests, the demo), or a socket that takes no attributes
        pass


def wants_json() -> bool:
    return request.path.startswith(API_PREFIX) or request.path == "/healthz"


def json_error(code: str, message: str, status: int | None = None) -> Response:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status or http_status(code)
    return response


def error_response(code: str, message: str, status: int | None = None) -> tuple[str, int] | Response:
    """JSON for API paths, the site's error page for everything else."""
    status = status or http_status(code)
    if wants_json():
        return json_error(code, message, status)
    return render_template("error.html", status=status, message=message), status
