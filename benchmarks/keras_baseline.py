"""The baseline the original design served with: the same model loaded and run by TensorFlow/Keras.

Only the runtime differs: :class:`KerasPredictor` is injected into the inference core's ``Classifier``, so
decoding, limits and the verdict rule are the core's own.
``python -m benchmarks.keras_baseline PATH`` behaves like the CLI for one file (for cold-start timing).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
KERAS_MODEL = ROOT / "models" / "fire_classifier.keras"


class KerasPredictor:
    """The ``.keras`` model as the core's ``Predictor``: ``model.predict`` per call, as the original application did."""

    def __init__(self, path: Path = KERAS_MODEL, threads: int | None = 1) -> None:
        import tensorflow as tf

        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        import keras

        import training.backbones  # noqa: F401  registers the mirror layer the model file uses

        self.path = path
        self.model = keras.models.load_model(path, compile=False)
        self._lock = threading.Lock()  # one predict at a time per process, as with the LiteRT interpreter
        self._mapped = None

    @property
    def map_grid(self) -> tuple[int, int]:
        """Built on first use (not in the cold start): the same two-output graph the .tflite file holds."""
        from training.fire_map import grid_of, with_fire_map

        if self._mapped is None:
            self._mapped = with_fire_map(self.model)
        return tuple(grid_of(self._mapped))

    def predict(self, images: np.ndarray) -> np.ndarray:
        with self._lock:
            return np.asarray(self.model.predict(images.astype(np.float32), verbose=0), dtype=np.float64).reshape(-1)

    def predict_with_map(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.map_grid  # noqa: B018  builds the graph once
        with self._lock:
            out = self._mapped.predict(images.astype(np.float32), verbose=0)
        return np.asarray(out["fire_probability"], dtype=np.float64).reshape(-1), np.asarray(out["fire_map"])

    def predict_on_batch(self, images: np.ndarray) -> np.ndarray:
        with self._lock:
            return np.asarray(self.model.predict_on_batch(images.astype(np.float32)), dtype=np.float64).reshape(-1)

    def with_fits(self, plan: dict) -> "KerasPredictor":
        """Each of a cascade's two fits alone, as the ``first`` and ``second`` signatures of its ``.tflite`` file
        (``plan``: the card's ``cascade`` block), so that ``inference.cascade.Cascade`` runs on Keras too."""
        from training.export import cascade_fits

        self._fits = dict(zip(("first", "second"), cascade_fits(self.model, plan)))
        self.signatures = ("serving_default", *self._fits)
        return self

    def run_signature(self, name: str, images: np.ndarray) -> dict[str, np.ndarray]:
        with self._lock:
            return self._fits[name].predict_on_batch(images.astype(np.float32))


def keras_classifier(predictor: KerasPredictor | None = None, limits=None):
    """The core's ``Classifier`` with Keras running the model (its card is the same ``.json`` file), served the way
    the card says: a cascade's card runs its two fits as a cascade here too."""
    from inference import Cascade, Classifier, ModelCard

    predictor = predictor or KerasPredictor()
    card = ModelCard.load(predictor.path.with_suffix(".json"))
    model = Cascade(predictor.with_fits(card.cascade), card.cascade["margin"], card.threshold) if card.cascade else predictor
    return Classifier(card, model, limits=limits)


def main(argv: list[str]) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    classifier = keras_classifier()
    for path in argv:
        prediction = classifier.classify(Path(path).read_bytes())
        print(json.dumps(prediction.to_dict(path)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
