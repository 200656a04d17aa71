"""Baseline for ``web_bench``: the same classify endpoint doing inference with TensorFlow/Keras ``model.predict``
per request, as the original application did. Benchmark-only; the product serves with LiteRT (``web_app``).

The inference core's ``Classifier`` is given a Keras predictor, so the two apps differ only in the runtime that
runs the model. Serve with: ``gunicorn -c web_app/gunicorn.conf.py 'benchmarks.keras_app:create_app()'``.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402,F401  TensorFlow loads at import, as in the original application
from flask import Flask, jsonify, request  # noqa: E402

from benchmarks.keras_baseline import KERAS_MODEL, KerasPredictor, keras_classifier  # noqa: E402
from inference import InvalidImage, Limits  # noqa: E402
from inference.contract import http_status  # noqa: E402
from web_app.uploads import source_name  # noqa: E402


def create_app(model_path: Path = KERAS_MODEL) -> Flask:
    classifier = keras_classifier(KerasPredictor(model_path, threads=None), limits=Limits.from_env())
    app = Flask(__name__)

    @app.post("/api/v1/classify")
    def classify():
        upload = request.files.get("image")
        if upload is None:
            return jsonify(error={"code": "missing_file", "message": "No photo was sent."}), 400
        try:
            prediction = classifier.classify(upload.read())
        except InvalidImage as error:
            return jsonify(error=error.to_dict()), http_status(error.code)
        return jsonify(prediction.to_dict(source_name(upload.filename)))

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok", model_version=classifier.version)

    return app
