"""The upload page, its no-JavaScript form fallback, and the load balancer's health check."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template, request

from . import state
from .errors import ApiError
from .results import ResultsLoading, ResultsUnavailable, utc_time
from .uploads import chosen_files, page_outcome

pages = Blueprint("pages", __name__)
pages.add_app_template_filter(utc_time)


def _panel() -> dict | None:
    """The serverless results for the side panel: None when the feature is off."""
    reader = state.results_reader()
    if reader is None:
        return None
    panel = {"bucket": reader.bucket, "results": [], "unavailable": False, "loading": False}
    try:
        panel["results"] = reader.latest(reader.default_limit)
    except ResultsLoading:
        panel["loading"] = True  # the page does not wait for S3: panel.js fills the panel in a moment
    except ResultsUnavailable:
        panel["unavailable"] = True
    return panel


def status_line(results: list) -> str:
    """What the page says it checked: classified photos, and apart from them those that could not be read.
    static/app.js words its own count the same way (summary)."""
    if not results:
        return "No photos checked yet."
    failed = sum(1 for outcome in results if "error" in outcome.record)
    checked = len(results) - failed
    line = f"{checked} photo{'s' if checked != 1 else ''} checked"
    return line + (f", {failed} could not be read." if failed else ".")


def _page(results=None, message=None, status=200):
    classifier = state.classifier()
    return (
        render_template(
            "index.html",
            model_version=classifier.version,
            threshold=classifier.threshold,
            fire_map=classifier.map_grid is not None,  # the page asks the API for maps only when the model has them
            max_bytes=classifier.limits.max_bytes,
            max_files=current_app.config["PAGE_MAX_FILES"],
            results=results or [],
            status_line=status_line(results or []),
            message=message,
            panel=_panel(),
        ),
        status,
    )


@pages.get("/")
def index():
    return _page()


@pages.post("/")
def classify_form():
    """Without JavaScript the form posts here and the verdicts come back in the page itself."""
    try:
        files = chosen_files(request)
    except ApiError as error:
        return _page(message=error.message, status=error.status)
    limit = current_app.config["PAGE_MAX_FILES"]
    if len(files) > limit:
        return _page(message=f"Choose at most {limit} photos at a time; you chose {len(files)}.", status=400)
    classifier = state.classifier()
    return _page(results=[page_outcome(classifier, upload) for upload in files])


@pages.get("/healthz")
def healthz():
    return jsonify({"status": "ok", "model_version": state.classifier().version})
