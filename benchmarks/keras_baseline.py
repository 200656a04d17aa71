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


def keras_classifier(predictor: KerasPredictor | None = None, limits=None):
    """The core's ``Classifier`` with Keras running the model (its card is the same ``.json`` file). A cascade's card
    (inference.cascade) is served here by the whole model, both fits for every photo, in one ``model.predict``: what
    serving the ``.keras`` file would do."""
    from inference import Classifier, ModelCard

    predictor = predictor or KerasPredictor()
    return Classifier(ModelCard.load(predictor.path.with_suffix(".json")), predictor, limits=limits)


def main(argv: list[str]) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    classifier = keras_classifier()
    for path in argv:
        prediction = classifier.classify(Path(path).read_bytes())
        print(json.dumps(prediction.to_dict(path)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
