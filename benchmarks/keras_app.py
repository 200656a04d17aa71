"""Baseline for ``web_bench``: the same classify endpoint doing inference with TensorFlow/Keras ``model.predict``
per request, as the original application did. Benchmark-only; the product serves with LiteRT (``web_app``).

Decoding is the inference core's, so the two apps differ only in the runtime that runs the model.
Serve with: ``gunicorn -c web_app/gunicorn.conf.py 'benchmarks.keras_app:create_app()'``.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from flask import Flask, jsonify, request  # noqa: E402

from inference import InvalidImage, Limits, ModelCard, decode_image  # noqa: E402
from inference.contract import http_status  # noqa: E402
from web_app.uploads import source_name  # noqa: E402

KERAS_MODEL = Path(__file__).resolve().parent.parent / "models" / "fire_classifier.keras"


def create_app(model_path: Path = KERAS_MODEL) -> Flask:
    import training.backbones  # noqa: F401  registers the mirror layer the model file uses

    model = keras.models.load_model(model_path, compile=False)
    card = ModelCard.load(model_path.with_suffix(".json"))
    limits = Limits.from_env()
    lock = threading.Lock()  # one predict at a time per process, as with the LiteRT interpreter
    app = Flask(__name__)

    @app.post("/api/v1/classify")
    def classify():
        upload = request.files.get("image")
        if upload is None:
            return jsonify(error={"code": "missing_file", "message": "No photo was sent."}), 400
        try:
            image = decode_image(upload.read(), card.input_size, limits)
        except InvalidImage as error:
            return jsonify(error=error.to_dict()), http_status(error.code)
        with lock:
            probability = float(model.predict(image[np.newaxis].astype(np.float32), verbose=0).reshape(-1)[0])
        label = "fire" if probability >= card.threshold else "nofire"
        return jsonify(source=source_name(upload.filename), label=label, fire_probability=round(probability, 4),
                       model_version=card.version)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok", model_version=card.version)

    return app
