"""What each app holds for its process (so for each gunicorn worker): the classifier, decode admission and the
results reader. Set once by ``create_app``; read by the views through these accessors."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask, current_app

from inference import Classifier

if TYPE_CHECKING:  # the views import this module, and the modules below import nothing of the views
    from .admission import Admission
    from .results import ResultsReader
    from .results_index import IndexReader

CLASSIFIER, ADMISSION, RESULTS = "firewatch.classifier", "firewatch.admission", "firewatch.results"


def install(app: Flask, classifier: Classifier, admission: Admission, reader: ResultsReader | IndexReader | None) -> None:
    app.extensions.update({CLASSIFIER: classifier, ADMISSION: admission, RESULTS: reader})


def classifier() -> Classifier:
    return current_app.extensions[CLASSIFIER]


def admission() -> Admission:
    return current_app.extensions[ADMISSION]


def results_reader(app: Flask | None = None) -> ResultsReader | IndexReader | None:
    """The app's reader: the results index's when FIREWATCH_RESULTS_TABLE is set, else the bucket's when
    FIREWATCH_RESULTS_BUCKET is; None when neither is (the feature is off)."""
    return (app or current_app).extensions.get(RESULTS)
