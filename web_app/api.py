"""The JSON API under /api/v1 (contract: ARCHITECTURE.md, "Web API")."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from .errors import BAD_REQUEST, ApiError
from .openapi import openapi_document
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


@api.get("/openapi.json")
def openapi():
    return jsonify(openapi_document(get_classifier()))
