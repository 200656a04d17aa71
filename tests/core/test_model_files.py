"""The committed model: its card, its size, LiteRT/Keras parity, and its quality on held-out photos."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pytest

from inference import Classifier, LiteRTModel
from tests.conftest import MODEL_PATH, ROOT

CARD_PATH = MODEL_PATH.with_suffix(".json")
KERAS_PATH = MODEL_PATH.with_suffix(".keras")


@pytest.fixture(scope="module")
def card() -> dict:
    return json.loads(CARD_PATH.read_text())


def test_card_holds_what_the_contract_lists(card):
    for key in ("name", "version", "labels", "input", "threshold", "training_data", "metrics", "date", "training_command"):
        assert key in card, key
    assert card["labels"] == ["nofire", "fire"]
    assert 0 < card["threshold"] < 1
    assert card["training_command"].startswith("python -m training")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", card["date"])
    validation = card["metrics"]["validation"]
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "confusion_matrix", "per_source", "threshold"):
        assert key in validation, key


def test_version_names_the_exact_model_bytes(card):
    digest = hashlib.sha256(MODEL_PATH.read_bytes()).hexdigest()[:8]
    assert card["version"] == f"{card['date']}-{digest}"


def test_training_data_is_listed_with_file_hashes(card):
    data = card["training_data"]
    manifest = ROOT / "models" / data["file_hashes"]
    assert hashlib.sha256(manifest.read_bytes()).hexdigest() == data["file_hashes_sha256"]
    rows = [line.split("  ") for line in manifest.read_text().splitlines()]
    assert len(rows) == data["train_images"] + data["validation_images"]
    assert all(re.fullmatch(r"[0-9a-f]{64}", sha) and split in ("train", "val") for sha, split, _ in rows)
    assert len({sha for sha, _, _ in rows}) == len(rows), "no duplicate file in the data"
    assert data["folders"] and all(folder.startswith("../shared/datasets/") for folder in data["folders"])


def test_model_is_small_and_its_input_matches_the_card(card):
    assert MODEL_PATH.stat().st_size <= 10 * 1024 * 1024
    assert KERAS_PATH.stat().st_size <= 10 * 1024 * 1024
    from ai_edge_litert.interpreter import Interpreter

    shape = Interpreter(model_path=str(MODEL_PATH)).get_input_details()[0]["shape_signature"]
    assert list(shape[1:]) == [card["input"]["height"], card["input"]["width"], 3]


def test_report_plots_exist(card):
    folder = ROOT / card["reports"]["folder"]
    assert {"training_curves.png", "confusion_matrix.png", "roc_curve.png"} <= set(card["reports"]["plots"])
    for plot in card["reports"]["plots"]:
        assert (folder / plot).read_bytes().startswith(b"\x89PNG")


def held_out(datasets, card, source_prefix: str) -> list[tuple[bytes, int]]:
    rows = [line.split("  ") for line in (ROOT / "models" / card["training_data"]["file_hashes"]).read_text().splitlines()]
    picked = []
    for _, split, path in rows:
        if split == "val" and path.startswith(f"../shared/datasets/{source_prefix}"):
            file = datasets / path.removeprefix("../shared/datasets/")
            picked.append((file.read_bytes(), int(file.parent.name == "fire")))
    return picked


def test_litert_and_keras_agree_on_real_photos(datasets, card, classifier):
    keras = pytest.importorskip("keras")
    import training.backbones  # noqa: F401  registers the mirror layer the model file uses
    images = np.stack([classifier.preprocess(data) for data, _ in held_out(datasets, card, "")[::25]])
    assert len(images) >= 20
    model = keras.models.load_model(KERAS_PATH)
    keras_probs = model.predict(images.astype(np.float32), verbose=0).reshape(-1)
    whole = LiteRTModel(MODEL_PATH)  # the whole model, as exported; a cascade's card serves it in two steps (below)
    # float32 agrees to rounding; a quantised file within the bound its export was held to (recorded in the card).
    shipped = card["tflite_format"]["shipped"]
    bound = card["tflite_format"].get("agreement_required", {}).get(shipped, 1e-4)
    assert bound <= (1e-4 if shipped == "float32" else 0.05)
    assert np.max(np.abs(keras_probs - whole.predict(images))) <= bound
    if card.get("cascade"):  # and each fit alone, as the cascade runs it, agrees with that fit in Keras
        from inference.cascade import FIRST_FIT, SECOND_FIT
        from training.export import cascade_fits

        for name, fit in zip((FIRST_FIT, SECOND_FIT), cascade_fits(model, card["cascade"])):
            alone = whole.run_signature(name, images)["fire_probability"].reshape(-1)
            assert np.max(np.abs(fit.predict(images.astype(np.float32), verbose=0)["fire_probability"].reshape(-1) - alone)) <= bound


@pytest.mark.parametrize("source, minimum", [("forest-fire", 0.95), ("fire-dataset", 0.85), ("weather", 0.90)])
def test_held_out_accuracy_per_source(datasets, card, source, minimum):
    """The validation split was never trained on: the shipped model must still be good on it."""
    photos = held_out(datasets, card, source)
    assert len(photos) > 50
    classifier = Classifier.load(MODEL_PATH, threads=2)
    outcomes = classifier.classify_many([data for data, _ in photos])
    accuracy = np.mean([int(o.is_fire) == label for o, (_, label) in zip(outcomes, photos)])
    assert accuracy >= minimum, f"{source}: accuracy {accuracy:.3f} on {len(photos)} held-out photos"
