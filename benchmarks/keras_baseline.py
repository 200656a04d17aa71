"""The baseline the original design served with: the same model loaded and run by TensorFlow/Keras.

Decoding still goes through the inference core, so only the runtime differs.
``python -m benchmarks.keras_baseline PATH`` behaves like the CLI for one file (for cold-start timing).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
KERAS_MODEL = ROOT / "models" / "fire_classifier.keras"


class KerasClassifier:
    def __init__(self, path: Path = KERAS_MODEL, threads: int | None = 1) -> None:
        import tensorflow as tf

        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        import keras

        import training.backbones  # noqa: F401  registers the mirror layer the model file uses
        from inference import ModelCard

        self.model = keras.models.load_model(path)
        self.card = ModelCard.load(path.with_suffix(".json"))

    def preprocess(self, data: bytes) -> np.ndarray:
        from inference import decode_image

        return decode_image(data, self.card.input_size)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """``model.predict``, as the original application called it per request."""
        return self.model.predict(images.astype(np.float32), verbose=0).reshape(-1)

    def predict_on_batch(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_on_batch(images.astype(np.float32))).reshape(-1)


def main(argv: list[str]) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    classifier = KerasClassifier()
    for path in argv:
        probability = float(classifier.predict(classifier.preprocess(Path(path).read_bytes())[np.newaxis])[0])
        label = "fire" if probability >= classifier.card.threshold else "nofire"
        print(json.dumps({"source": path, "label": label, "fire_probability": round(probability, 4)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
