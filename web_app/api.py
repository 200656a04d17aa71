"""The JSON API under /api/v1 (contract: ARCHITECTURE.md, "Web API")."""

from __future__ import annotations

import re

from flask import Blueprint, jsonify, request

from .errors import BAD_REQUEST, RESULTS_DISABLED, RESULTS_UNAVAILABLE, ApiError
from .openapi import openapi_document
from .results import DEFAULT_LIMIT, MAX_LIMIT, ResultsLoading, ResultsUnavailable, get_reader
from .uploads import FIELD, chosen_files, classify_upload, get_classifier

api = Blueprint("api", __name__, url_prefix="/api/v1")


@api.post("/classify")
def classify():
    files = chosen_files(request)
    if len(files) > 1:
        raise ApiError(BAD_REQUEST, f"Send one photo per request in the field '{FIELD}'; got {len(files)}.")
    outcome = classify_upload(get_classifier(), files[0])
    if outcome.error:
        raise ApiError(outcome.error["code"], outcome.error["message"])
    response = jsonify(outcome.record)
    # Server-side time, for the page and for operators; W3C Server-Timing is read by browsers' dev tools.
    response.headers["Server-Timing"] = f"classify;dur={outcome.seconds * 1000:.1f}"
    return response


@api.get("/model")
def model():
    return jsonify(get_classifier().card.raw)


@api.get("/results")
def results():
    """The newest results the serverless path wrote to the bucket, newest first."""
    reader = get_reader()
    if reader is None:
        raise ApiError(RESULTS_DISABLED, "This server is not set up to show the serverless results (no results bucket).")
    limit = _limit(request.args.get("limit"))
    try:
        records = reader.latest(limit)
    except ResultsLoading:
        raise ApiError(RESULTS_UNAVAILABLE, "The serverless results are still loading; please try again in a moment.") from None
    except ResultsUnavailable:
        message = "The serverless results cannot be read right now; please try again shortly."
        raise ApiError(RESULTS_UNAVAILABLE, message) from None
    return jsonify({"bucket": reader.bucket, "results": records})


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    if not re.fullmatch(r"[0-9]{1,4}", text) or not 1 <= int(text) <= MAX_LIMIT:
        raise ApiError(BAD_REQUEST, f"limit must be a whole number from 1 to {MAX_LIMIT}.")
    return int(text)


@api.get("/openapi.json")
def openapi():
    return jsonify(openapi_document(get_classifier()))
