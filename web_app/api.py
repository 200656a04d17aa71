"""The JSON API under /api/v1 (README, "The web app and its API"). Errors are raised, and answered by the app's one
error handler (``web_app.app``)."""

from __future__ import annotations

import re

from flask import Blueprint, jsonify, request

from inference import MapUnavailable
from inference.contract import BAD_REQUEST, MAP_UNAVAILABLE, RESULTS_DISABLED, RESULTS_UNAVAILABLE

from . import state
from .errors import ApiError
from .openapi import openapi_document
from .results import ResultsLoading, ResultsUnavailable
from .results_index import BadCursor
from .uploads import FIELD, chosen_files, classify_upload

api = Blueprint("api", __name__, url_prefix="/api/v1")


MAP_PARAMETER = "map"
_FLAGS = {"1": True, "true": True, "0": False, "false": False}


@api.post("/classify")
def classify():
    with_map = _map_wanted(request.args.get(MAP_PARAMETER))
    files = chosen_files(request)
    if len(files) > 1:
        raise ApiError(BAD_REQUEST, f"Send one photo per request in the field '{FIELD}'; got {len(files)}.")
    # the core's InvalidImage goes to the error handler
    classified = classify_upload(state.classifier(), files[0], with_map=with_map)
    response = jsonify(classified.prediction.to_dict(classified.source, with_certainty=True))
    # Server-side time, for the page and for operators; W3C Server-Timing is read by browsers' dev tools.
    response.headers["Server-Timing"] = f"classify;dur={classified.seconds * 1000:.1f}"
    return response


@api.get("/model")
def model():
    return jsonify(state.classifier().card.raw)


@api.get("/results")
def results():
    """The newest results of the serverless path, newest first: from the results index, or the bucket's listing."""
    reader = state.results_reader()
    if reader is None:
        raise ApiError(RESULTS_DISABLED, "This server is not set up to show the serverless results (no results table or bucket).")
    limit = _limit(request.args.get("limit"), reader.default_limit, reader.max_limit)
    cursor = request.args.get("cursor")
    if cursor is not None and not reader.pages:
        raise ApiError(BAD_REQUEST, "cursor needs the results index; this server reads the newest results of the bucket only.")
    try:
        if not reader.pages:
            return jsonify({"bucket": reader.bucket, "results": reader.latest(limit)})
        page = reader.page(limit, cursor)
    except BadCursor as error:
        raise ApiError(BAD_REQUEST, f"cursor: {error}; pass back the next_cursor of an earlier answer unchanged.") from None
    except ResultsLoading:
        raise ApiError(RESULTS_UNAVAILABLE, "The serverless results are still loading; please try again in a moment.") from None
    except ResultsUnavailable:
        message = "The serverless results cannot be read right now; please try again shortly."
        raise ApiError(RESULTS_UNAVAILABLE, message) from None
    body = {"bucket": reader.bucket} if reader.bucket else {}
    return jsonify({**body, "table": reader.table, "results": page.results, "next_cursor": page.next_cursor})


def _map_wanted(text: str | None) -> bool:
    """``?map=1``: add the fire map; refused at once (before the upload is read) when the model has none."""
    if text is None:
        return False
    if text.lower() not in _FLAGS:
        raise ApiError(BAD_REQUEST, f"{MAP_PARAMETER} must be 1 or 0 (true or false).")
    if _FLAGS[text.lower()]:
        try:
            state.classifier().check_map()
        except MapUnavailable as exc:
            raise ApiError(MAP_UNAVAILABLE, f"This server's model cannot show where it sees fire: {exc}.") from None
    return _FLAGS[text.lower()]


def _limit(text: str | None, default: int, most: int) -> int:
    if text is None:
        return default
    if not re.fullmatch(r"[0-9]{1,4}", text) or not 1 <= int(text) <= most:
        raise ApiError(BAD_REQUEST, f"limit must be a whole number from 1 to {most}.")
    return int(text)


@api.get("/openapi.json")
def openapi():
    return jsonify(openapi_document(state.classifier(), state.results_reader()))
