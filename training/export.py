"""Write the trained model as .tflite (choosing its format), run it as serving does, and list the files used.

``python -m training.export --model models/fire_classifier.keras`` re-exports a trained model without retraining:
the same weights, with the fire map as a second output (``training.fire_map``). It checks that the new file's
probabilities equal the old file's on real photos before it replaces anything.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from inference import DEFAULT_SIGNATURE, FIRST_FIT, PROBABILITY_OUTPUT, SECOND_FIT

from . import quiet

quiet.import_tensorflow()
import tensorflow as tf  # noqa: E402  (after the quiet import above)

# The largest difference allowed between the re-exported probabilities and the old file's (float32 rounding only).
PROBABILITY_TOLERANCE = 1e-5
CHECK_SUFFIXES = (".jpg", ".jpeg", ".png")

FORMATS = ("float32", "dynamic_range", "int8")
# How far a format's probabilities may stray from Keras's on the validation photos (largest absolute difference) and
# still be shipped. float32 differs by rounding only. Quantised formats round weights (and, int8, activations) to 8
# bits: int8 moved the served model's validation probabilities by at most 0.033, and the leave-one-source-out fold
# models' by at most 0.039 on their unseen sources, so 0.05 leaves some room. A quantised file ships only when it is
# also faster.
AGREEMENT = {"float32": 1e-4, "dynamic_range": 0.05, "int8": 0.05}
# Training photos the int8 converter runs to learn each activation's range (spread evenly over the training split).
CALIBRATION_PHOTOS = 200


def to_tflite(model, tflite_format: str = "float32", calibration: np.ndarray | None = None, log: Path | None = None,
              cascade: list | None = None) -> bytes:
    """``model`` as a ``.tflite`` file in ``tflite_format`` (one of :data:`FORMATS`); float input and output in all three.

    int8 quantises weights and activations, which needs ``calibration`` photos (N, H, W, 3, values 0-255). The
    converter saves a SavedModel first, which prints every endpoint's tensor specs and logs from C++: kept out of the
    run's output (appended to ``log`` when given).

    ``cascade``: the ensemble's two networks, first fit first (:func:`training.fire_map.with_cell_logits` models): the
    file then also has a signature for each alone (inference.cascade), beside the whole model's ``serving_default``."""
    if tflite_format not in FORMATS:
        raise ValueError(f"unknown .tflite format {tflite_format!r}; known: {', '.join(FORMATS)}")
    if tflite_format == "int8" and (calibration is None or not len(calibration)):
        raise ValueError("the int8 format needs calibration photos")
    with quiet.captured_output(log):
        signatures = {DEFAULT_SIGNATURE: model, FIRST_FIT: cascade[0], SECOND_FIT: cascade[1]} if cascade else None
        converter = _with_signatures(signatures) if signatures else tf.lite.TFLiteConverter.from_keras_model(model)
        if tflite_format != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]  # alone: dynamic range (int8 weights, float activations)
        if tflite_format == "int8":
            # With a representative dataset the activations are int8 too; input and output stay float32, so serving
            # feeds and reads every format alike. With several signatures, each is calibrated on the same photos.
            photos = [image[None].astype(np.float32) for image in calibration]
            converter.representative_dataset = (lambda: ([photo] for photo in photos)) if not signatures else \
                (lambda: ((name, {"image": photo}) for name in signatures for photo in photos))
        return converter.convert()


def _with_signatures(models: dict) -> "tf.lite.TFLiteConverter":
    """A converter for one file with a signature per model. Each model's weights are frozen into constants first:
    TensorFlow 2.21 keeps weights shared between signatures as variables, and then int8 calibration fails on a
    ``READ_VARIABLE`` node."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    functions = []
    for name, model in models.items():
        spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32, name="image")
        frozen = convert_variables_to_constants_v2(tf.function(lambda image, m=model: m(image), input_signature=[spec])
                                                   .get_concrete_function())
        keys = sorted(model.output)  # a frozen function returns a dict's values flat, in the order of its sorted keys

        def named(image, frozen=frozen, keys=keys):
            return dict(zip(keys, frozen(image)))

        named.__name__ = name  # the signature's name
        functions.append(tf.function(named, input_signature=[spec]).get_concrete_function())
    return tf.lite.TFLiteConverter.from_concrete_functions(functions, tf.Module())


def calibration_picks(available: int, count: int = CALIBRATION_PHOTOS) -> range:
    """Which training photos int8 calibrates on, as positions in the file list's order (sorted by path): up to
    ``count``, evenly spread. Training and re-export pick alike, so a re-exported int8 file comes out the same."""
    return range(0, available, max(1, available // count))[:count]


def _median_latency_ms(tflite_path: Path, size: int, repeats: int = 200) -> float:
    from inference import LiteRTModel

    image = np.random.default_rng(0).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
    with quiet.captured_output():  # LiteRT announces its XNNPACK delegate on the first call
        runner = LiteRTModel(tflite_path, threads=1)
        for _ in range(10):
            runner.predict(image)
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        runner.predict(image)
        samples.append((time.perf_counter() - started) * 1000)
    return float(np.median(samples))


def served_model(model):
    """What is exported: the trained model with its fire map as a second output (same layers, same weights)."""
    from .fire_map import with_fire_map

    return with_fire_map(model)


def cascade_fits(model, plan: dict | None) -> list | None:
    """The two networks of an ensemble ``model`` in a cascade ``plan``'s order (the card's ``cascade`` block: each of
    ``first`` and ``second`` names its ``member``), each alone with its cell logits; None without a plan."""
    if not plan:
        return None
    from .fire_map import ensemble_fits, with_cell_logits

    fits = ensemble_fits(model)
    if len(fits) != 2:
        raise ValueError(f"a cascade serves an ensemble of two fits; this model has {len(fits) or 'no'} ensemble members")
    return [with_cell_logits(fits[plan[step]["member"]]) for step in (FIRST_FIT, SECOND_FIT)]


def map_card_entry(served) -> dict:
    """The model card's ``fire_map`` block for a :func:`served_model`."""
    from .fire_map import DEFINITION, MAP_OUTPUT, grid_of

    return {"output": MAP_OUTPUT, "grid": grid_of(served), "range": [0, 1], "definition": DEFINITION}


def choose_tflite(model, size: int, calibration: np.ndarray, val_x: np.ndarray, keras_probs: np.ndarray,
                  log: Path | None = None, cascade: list | None = None) -> tuple[bytes, dict]:
    """The fastest format whose validation probabilities stay within :data:`AGREEMENT` of Keras's ``keras_probs``.

    float32 always qualifies; int8 calibrates on ``calibration`` (training photos picked by
    :func:`calibration_picks`, never the validation photos it is then judged on). On x86 CPUs dynamic range is
    usually slower than float32, and int8 faster."""
    candidates = {name: to_tflite(model, name, calibration, log, cascade) for name in FORMATS}
    latency, difference = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        for name, data in candidates.items():
            path = Path(folder) / f"{name}.tflite"
            path.write_bytes(data)
            latency[name] = round(_median_latency_ms(path, size), 3)
            difference[name] = float(np.max(np.abs(litert_probabilities(path, val_x) - keras_probs)))
    agreeing = [name for name in FORMATS if name == "float32" or difference[name] <= AGREEMENT[name]]
    chosen = min(agreeing, key=latency.get)
    report = {"shipped": chosen, "median_ms_1_thread": latency, "bytes": {k: len(v) for k, v in candidates.items()},
              "validation_max_abs_diff_vs_keras": {k: float(f"{v:.3g}") for k, v in difference.items()},
              "agreement_required": {k: AGREEMENT[k] for k in FORMATS}}
    if chosen == "int8":
        report["calibration"] = f"{len(calibration)} training photos, evenly spaced in the file list"
    return candidates[chosen], report


def litert_probabilities(tflite_path: Path, images: np.ndarray, cascade: tuple[float, float] | None = None) -> np.ndarray:
    """Run the exported file with LiteRT exactly as serving does; ``cascade``: (margin, threshold) of a cascade's."""
    from inference import Cascade, LiteRTModel

    with quiet.captured_output():  # LiteRT announces its XNNPACK delegate on the first call
        runner = LiteRTModel(tflite_path, threads=2)
        runner = Cascade(runner, *cascade) if cascade else runner
        first = runner.predict(images[:64])
    return np.concatenate([first] + [runner.predict(images[i : i + 64]) for i in range(64, len(images), 64)])


def second_fit_share(tflite_path: Path, images: np.ndarray, margin: float, threshold: float) -> float:
    """The share of ``images`` a cascade file runs its second fit on, by the cascade's own rule."""
    from inference import Cascade, LiteRTModel

    with quiet.captured_output():
        cascade = Cascade(LiteRTModel(tflite_path, threads=2), margin, threshold)
        near = sum(cascade.second_fit_needed(cascade.model.run_signature(FIRST_FIT, images[i : i + 64])[PROBABILITY_OUTPUT]
                                             .reshape(-1)).size for i in range(0, len(images), 64))
    return near / len(images)


def version_for(tflite: bytes, date: str) -> str:
    return f"{date}-{hashlib.sha256(tflite).hexdigest()[:8]}"


def write_manifest(path: Path, rows: list[tuple[str, str, str]]) -> str:
    """SHA256SUMS-style list of every file used (hash, split, path); returns its own hash."""
    text = "".join(f"{sha}  {split}  {rel}\n" for sha, split, rel in rows)
    path.write_text(text, encoding="utf-8")
    return hashlib.sha256(text.encode()).hexdigest()


def sample_photos(folders: list[Path], count: int) -> list[Path]:
    """Up to ``count`` photos spread evenly over the sorted files of ``folders`` (deterministic)."""
    files = sorted(p for folder in folders for p in folder.rglob("*") if p.suffix.lower() in CHECK_SUFFIXES)
    step = max(1, len(files) // count) if count else 1
    return files[::step][:count]


def compare_probabilities(old_path: Path, new_path: Path, photos: list[Path], size: tuple[int, int]) -> float:
    """The largest difference between two ``.tflite`` files' fire probabilities on ``photos``, decoded as served."""
    from inference import InvalidImage, decode_image

    images = []
    for photo in photos:
        try:
            images.append(decode_image(photo.read_bytes(), size))
        except InvalidImage:
            continue
    if not images:
        raise SystemExit("error: none of the check photos could be decoded")
    batch = np.stack(images)
    return float(np.max(np.abs(litert_probabilities(old_path, batch) - litert_probabilities(new_path, batch))))


def training_photos(manifest: Path, size: tuple[int, int]) -> np.ndarray:
    """The photos an int8 model was calibrated on, found again from its file list and decoded as served."""
    from inference import InvalidImage, decode_image

    from .runs import read_file_list

    root = Path(__file__).resolve().parent.parent  # the file list's paths are relative to the repository
    try:
        rows = read_file_list(manifest)
    except OSError as exc:
        raise SystemExit(f"error: an int8 model is calibrated on its training photos, and its file list cannot be read ({exc})") from None
    listed = [(sha, root / path) for sha, split, path in rows if split == "train"]
    picked = [listed[i] for i in calibration_picks(len(listed))]
    if not picked:
        raise SystemExit(f"error: an int8 model is calibrated on its training photos, and {manifest} lists none")
    images = []
    for sha, file in picked:
        try:
            data = file.read_bytes()
            if hashlib.sha256(data).hexdigest() != sha:  # other pixels would calibrate another file
                raise SystemExit(f"error: an int8 model is calibrated on its training photos, and {file} has changed since "
                                 f"training (its SHA-256 is not the one {manifest} lists); nothing was written")
            images.append(decode_image(data, size))
        except (OSError, InvalidImage) as exc:
            raise SystemExit(f"error: an int8 model is calibrated on its training photos, and {file} (listed in {manifest}) "
                             f"cannot be read here ({exc}); nothing was written") from None
    return np.stack(images)


def reexport(keras_path: Path, check_folders: list[Path], photos: int = 400) -> dict:
    """Re-export ``keras_path`` (and its card) beside it with the fire map; returns what was done.

    The ``.tflite`` format stays the one the card records; the probabilities must equal the old ``.tflite`` file's
    within :data:`PROBABILITY_TOLERANCE` on the check photos, or nothing is written.
    """
    import keras

    from inference import ModelCard

    from . import backbones  # noqa: F401  registers the mirror layer the model file uses

    tflite_path, card_path = keras_path.with_suffix(".tflite"), keras_path.with_suffix(".json")
    card = ModelCard.load(card_path)
    with quiet.optimizer_state_ignored():
        trained = keras.models.load_model(keras_path)
    served = served_model(trained)
    shipped = (card.tflite_format or {}).get("shipped", "float32")
    calibration = training_photos(card_path.parent / (card.training_data.get("file_hashes") or "-"), card.input_size) \
        if shipped == "int8" else None
    data = to_tflite(served, shipped, calibration, cascade=cascade_fits(trained, card.cascade))
    checked = sample_photos(check_folders, photos)
    with tempfile.TemporaryDirectory() as folder:
        candidate = Path(folder) / tflite_path.name
        candidate.write_bytes(data)
        difference = compare_probabilities(tflite_path, candidate, checked, card.input_size) if tflite_path.is_file() else None
    if difference is not None and difference > PROBABILITY_TOLERANCE:
        raise SystemExit(f"error: the re-exported probabilities differ from {tflite_path} by up to {difference:.2e} "
                         f"(more than {PROBABILITY_TOLERANCE:g}); nothing was written")
    fire_map = map_card_entry(served)
    tflite_format = dict(card.tflite_format or {})
    if "bytes" in tflite_format:
        tflite_format["bytes"] = {**tflite_format["bytes"], shipped: len(data)}
    updated = ModelCard.from_dict({**card.to_dict(), "version": version_for(data, card.date or time.strftime("%Y-%m-%d")),
                                   "tflite_format": tflite_format, "fire_map": fire_map})
    tflite_path.write_bytes(data)
    updated.save(card_path)
    return {"tflite": str(tflite_path), "bytes": len(data), "version": updated.version, "grid": fire_map["grid"],
            "photos_checked": len(checked), "probability_max_abs_diff": difference}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.export",
        description="Re-export a trained .keras model (no retraining) as .tflite with its fire map output, and "
                    "update its card; the old and new files' probabilities are compared on real photos first.")
    root = Path(__file__).resolve().parent.parent
    parser.add_argument("--model", type=Path, default=root / "models" / "fire_classifier.keras",
                        help="the .keras file; its .tflite and .json beside it are replaced (default: %(default)s)")
    parser.add_argument("--check", type=Path, action="append", metavar="FOLDER",
                        help="photos to compare old and new probabilities on (repeatable; default: ../shared/datasets)")
    parser.add_argument("--photos", type=int, default=400, help="how many photos to compare on (default %(default)s)")
    args = parser.parse_args(argv)
    folders = args.check or [root.parent / "shared" / "datasets"]
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        parser.error(f"no such folder: {', '.join(missing)}")
    report = reexport(args.model, folders, args.photos)
    for key, value in report.items():
        print(f"{key}: {value}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
