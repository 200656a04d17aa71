"""Where the model sees fire: the served model's map output, the classifier's ``with_map``, and the CLI's ``--map``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from inference import Classifier, InvalidImage, LiteRTModel, MapUnavailable, ModelCard, outcome_record
from tests.conftest import MODEL_PATH

from .test_cli import run_cli

CARD = ModelCard.load(MODEL_PATH.with_suffix(".json"))


@pytest.fixture(scope="module")
def runtime() -> LiteRTModel:
    return LiteRTModel(MODEL_PATH)


def test_the_shipped_model_has_the_map_its_card_describes(runtime):
    assert CARD.fire_map is not None and CARD.fire_map["output"] == "fire_map"
    assert list(runtime.map_grid) == CARD.fire_map["grid"] == [10, 10]
    assert "sigmoid" in CARD.fire_map["definition"] and CARD.fire_map["range"] == [0, 1]


def test_map_and_probability_come_from_one_call_and_the_probability_is_unchanged(runtime, classifier, fire_photos, nofire_photos):
    images = np.stack([classifier.preprocess(p.read_bytes()) for p in fire_photos + nofire_photos])
    probabilities, maps = runtime.predict_with_map(images)
    assert maps.shape == (len(images), 10, 10) and maps.dtype == np.float32
    assert np.all((maps >= 0) & (maps <= 1))
    assert np.array_equal(probabilities, runtime.predict(images)), "asking for the map changes nothing else"


def test_the_map_of_a_mirrored_photo_is_the_mirrored_map(runtime, classifier, fire_photos):
    """The map follows the photo: with flip averaging exactly (the mirrored pass's map is mirrored back before
    averaging); with one pass, as closely as a network that was taught mirrored photos can (not exactly: a CNN is
    not mirror-symmetric)."""
    images = np.stack([classifier.preprocess(p.read_bytes()) for p in fire_photos])
    _, maps = runtime.predict_with_map(images)
    _, mirrored = runtime.predict_with_map(np.ascontiguousarray(images[:, :, ::-1]))
    back = mirrored[:, :, ::-1]
    if CARD.test_time_augmentation:
        assert np.max(np.abs(back - maps)) <= 1e-5
    else:
        agreement = [np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in zip(maps, back)]
        assert min(agreement) > 0.2 and np.mean(agreement) > 0.5, agreement
    assert np.max(np.abs(maps - maps[:, :, ::-1])) > 0.05, "and the map is not merely symmetric"


def test_the_map_shows_more_fire_on_fire_photos(runtime, classifier, fire_photos, nofire_photos):
    def hottest(photos):
        _, maps = runtime.predict_with_map(np.stack([classifier.preprocess(p.read_bytes()) for p in photos]))
        return maps.reshape(len(photos), -1).max(axis=1)

    assert np.median(hottest(fire_photos)) >= 0.9
    assert np.median(hottest(nofire_photos)) <= 0.6


def test_the_map_sits_where_the_fire_is(runtime, classifier, fire_photo, nofire_photo):
    """A fire photo pasted into the top-left quarter of a fire-free photo lights up that quarter."""
    from PIL import Image

    size = CARD.input_size
    scene = np.asarray(Image.open(nofire_photo).convert("RGB").resize(size)).copy()
    half = (size[0] // 2, size[1] // 2)
    scene[: half[1], : half[0]] = np.asarray(Image.open(fire_photo).convert("RGB").resize(half))
    _, maps = runtime.predict_with_map(scene[np.newaxis])
    rows, columns = runtime.map_grid
    top_left = maps[0, : rows // 2, : columns // 2].mean()
    rest = np.concatenate([maps[0, rows // 2 :, :].ravel(), maps[0, : rows // 2, columns // 2 :].ravel()]).mean()
    assert top_left > rest + 0.3, (top_left, rest)


def test_the_default_record_is_unchanged_and_the_map_is_added_only_when_asked(classifier, fire_photo):
    data = fire_photo.read_bytes()
    plain = classifier.classify(data)
    assert plain.fire_map is None
    assert list(outcome_record("a.jpg", plain)) == ["source", "label", "fire_probability", "model_version"]
    mapped = classifier.classify(data, with_map=True)
    verdict = ("label", "fire_probability", "model_version", "threshold", "certainty")
    assert [getattr(mapped, name) for name in verdict] == [getattr(plain, name) for name in verdict]
    record = json.loads(json.dumps(mapped.to_dict("a.jpg")))
    assert list(record) == ["source", "label", "fire_probability", "model_version", "fire_map", "fire_map_grid"]
    assert record["fire_map_grid"] == [10, 10] and len(record["fire_map"]) == 10
    cells = [value for row in record["fire_map"] for value in row]
    assert len(cells) == 100 and all(isinstance(v, float) and 0 <= v <= 1 and round(v, 3) == v for v in cells)


def test_a_batch_with_maps_keeps_errors_in_place(classifier, fire_photo, nofire_photo):
    outcomes = classifier.classify_many([fire_photo.read_bytes(), b"not an image", nofire_photo.read_bytes()], with_map=True)
    assert isinstance(outcomes[1], InvalidImage)
    assert all(len(o.fire_map) == 10 for o in (outcomes[0], outcomes[2]))
    assert outcomes[0].fire_map == classifier.classify(fire_photo.read_bytes(), with_map=True).fire_map, "batch equals single"


class ProbabilityOnly:
    """A runtime without a map, like models exported before it, or the Keras baseline."""

    def predict(self, images: np.ndarray) -> np.ndarray:
        return np.full(len(images), 0.5)


def test_a_model_without_a_map_still_classifies_and_refuses_the_map_clearly(fire_photo):
    classifier = Classifier(CARD, ProbabilityOnly())
    assert classifier.map_grid is None
    assert classifier.classify(fire_photo.read_bytes()).fire_probability == 0.5
    with pytest.raises(MapUnavailable, match="no fire map"):
        classifier.classify(b"", with_map=True)  # refused before decoding: not an InvalidImage about the bytes
    with pytest.raises(MapUnavailable):
        classifier.classify_many([fire_photo.read_bytes()], with_map=True)


def test_cli_map_flag_adds_the_map_to_each_line(fire_photo, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really")
    status, lines, _ = run_cli(fire_photo, broken, "--map")
    assert status == 1
    assert list(lines[0]) == ["source", "label", "fire_probability", "model_version", "fire_map", "fire_map_grid"]
    assert lines[0]["fire_map_grid"] == [10, 10] and "fire_map" not in lines[1] and "error" in lines[1]
    _, plain, _ = run_cli(fire_photo)
    assert lines[0]["fire_probability"] == plain[0]["fire_probability"]


def test_cli_map_goes_with_json_lines_only(fire_photo):
    status, lines, stderr = run_cli(fire_photo, "--map", "--format", "csv")
    assert status == 2 and lines == [] and "--map" in stderr and "JSON Lines" in stderr
