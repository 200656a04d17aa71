"""The Flask app factory: one classifier per process, security headers, errors in words."""

from __future__ import annotations

import io
import logging
import os
from typing import Any, Mapping

from flask import Flask, Request, Response, request
from gunicorn.http.errors import ParseException
from werkzeug.exceptions import ClientDisconnected, HTTPException, RequestEntityTooLarge
from werkzeug.formparser import FormDataParser

from inference import Classifier, InvalidImage
from inference.contract import BAD_REQUEST, BUSY, FIRE, INTERNAL_ERROR, METHOD_NOT_ALLOWED, NOT_FOUND, REQUEST_TIMEOUT
from inference.contract import RESULTS_TABLE_ENV, TOO_LARGE, TOO_MANY_PARTS

from . import errors, state
from .admission import Admission
from .api import api
from .pages import pages
from .reads import BodyOverLimit
from .results import ResultsReader
from .results_index import IndexReader, lookback_days_from_env
from .security import security_headers

log = logging.getLogger(__name__)

# Multipart framing, headers and the file name around the photo itself.
FORM_OVERHEAD_BYTES = 64 * 1024


class InMemoryRequest(Request):
    """Keeps uploaded files in memory: Werkzeug would spool files over 500 KB to a temporary file.

    Safe because MAX_CONTENT_LENGTH bounds the whole body before it is read.
    """

    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        return io.BytesIO()

    def make_form_data_parser(self) -> FormDataParser:
        """Werkzeug's parser, but loud: a malformed form raises ValueError (uploads.chosen_files says why, as a
        400) instead of parsing as an empty form, which read as "no photo was sent"."""
        parser = super().make_form_data_parser()
        parser.silent = False
        return parser


def create_app(classifier: Classifier | None = None, config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app around ``classifier`` (default: the core's default model, loaded now, once)."""
    app = Flask(__name__)
    app.request_class = InMemoryRequest
    app.json.sort_keys = False  # keep the contract's key order: source, label, ...
    classifier = classifier or Classifier.load()
    app.config.update(
        MAX_CONTENT_LENGTH=classifier.limits.max_bytes + FORM_OVERHEAD_BYTES,
        MAX_FORM_PARTS=64,
        PAGE_MAX_FILES=20,
        # The bucket the serverless path writes results/ to; unset: no panel, and /api/v1/results answers 404.
        RESULTS_BUCKET=os.environ.get("FIREWATCH_RESULTS_BUCKET") or None,
        # The results index (DynamoDB); set, the panel and /api/v1/results read it instead of listing the bucket.
        RESULTS_TABLE=os.environ.get(RESULTS_TABLE_ENV) or None,
        RESULTS_LOOKBACK_DAYS=lookback_days_from_env(),
    )
    app.config.update(config or {})
    state.install(app, classifier, Admission.from_env(), _results_reader(app.config))
    app.jinja_env.globals["FIRE"] = FIRE  # the positive label, for the templates' badges

    app.register_blueprint(pages)
    app.register_blueprint(api)
    _register_error_handlers(app)
    headers = security_headers()  # read once; a bad FIREWATCH_HSTS stops the app from starting

    @app.after_request
    def _security_headers(response: Response) -> Response:
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        if "Cache-Control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"  # verdicts and pages are per request; static files set their own
        if response.status_code >= 400 and _has_body(request):
            errors.close_after_response()  # its body may be unread: see errors.CLOSE_AFTER_RESPONSE
        return response

    return app


def _raised_by_the_form_parser(error: BaseException) -> bool:
    """Whether Werkzeug's multipart parser raised ``error`` (a form limit), not its length-limited stream."""
    frame = error.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    module = frame.tb_frame.f_globals.get("__name__", "") if frame is not None else ""
    return module in ("werkzeug.formparser", "werkzeug.sansio.multipart")


def _has_body(req: Request) -> bool:
    return bool(req.content_length) or "chunked" in req.headers.get("Transfer-Encoding", "").lower()


def _results_reader(config: Mapping[str, Any]) -> ResultsReader | IndexReader | None:
    table, bucket = config.get("RESULTS_TABLE"), config.get("RESULTS_BUCKET")
    if table:
        return IndexReader(table, bucket, lookback_days=config["RESULTS_LOOKBACK_DAYS"])
    return ResultsReader(bucket) if bucket else None


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(InvalidImage)  # the core's own error, as the core raised it
    @app.errorhandler(errors.ApiError)
    def api_error(error: InvalidImage | errors.ApiError):
        response = errors.json_error(error.code, error.message)  # the status is the contract's for the code
        if error.code == BUSY:
            response.headers["Retry-After"] = "5"
        return response

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error: RequestEntityTooLarge):
        # Werkzeug raises the same error for a body over MAX_CONTENT_LENGTH and for a form over its own limits
        # (parts, text field size) while the body itself was within the limit: tell them apart by where it was
        # raised (a chunked body has no length to compare).
        if _raised_by_the_form_parser(error):
            parts, field = app.config["MAX_FORM_PARTS"], app.config["MAX_FORM_MEMORY_SIZE"]
            return errors.error_response(
                TOO_MANY_PARTS,
                f"The form has more than {parts} parts or a text field over {field:,} bytes; "
                "send one photo per request in the file field 'image'.",
            )
        limit = app.config["MAX_CONTENT_LENGTH"] - FORM_OVERHEAD_BYTES
        return errors.error_response(TOO_LARGE, f"The upload is larger than the limit of {limit:,} bytes.")

    @app.errorhandler(ClientDisconnected)
    def body_not_received(error: ClientDisconnected):
        # Werkzeug reports a failed body read as a disconnect; the worker's read deadline is one cause (408), a
        # chunk that took the body past the limit another (the worker reads no further: web_app.worker).
        if isinstance(error.__context__, BodyOverLimit):
            return too_large(RequestEntityTooLarge())
        if isinstance(error.__context__, TimeoutError):
            # The connection is closed after it (the worker marks timed-out reads): the rest of the body never came.
            return errors.error_response(REQUEST_TIMEOUT, errors.SLOW_UPLOAD_MESSAGE)
        return errors.error_response(BAD_REQUEST, "The upload ended before all of it arrived.")

    @app.errorhandler(ParseException)
    def body_malformed(_error: ParseException):
        # gunicorn reads a chunked body as the form parser asks for it, and raises on a malformed one: a client's
        # error, not the server's (it used to be a 500, which counts towards the load balancer's 5xx alarm).
        return errors.error_response(BAD_REQUEST, "The request body is malformed (its chunked encoding or trailer).")

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        code = {404: NOT_FOUND, 405: METHOD_NOT_ALLOWED}.get(error.code or 400, BAD_REQUEST)
        message = {
            404: "There is nothing at this address.",
            405: f"The {request.method} method is not allowed for this address.",
        }.get(error.code or 400, "The request could not be understood.")
        response = errors.error_response(code, message, error.code)
        if isinstance(response, tuple):
            response = app.make_response(response)
        for name, value in error.get_headers():
            if name != "Content-Type":
                response.headers[name] = value  # e.g. Allow on 405
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        # The traceback goes to the server log, never to the client.
        log.exception("unhandled error on %s %s", request.method, request.path)
        return errors.error_response(INTERNAL_ERROR, "Something went wrong on our side; please try again.", 500)
