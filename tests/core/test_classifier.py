"""The classifier API: one verdict per image, batch equals single, errors as values, the threshold rule."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from inference import Classifier, InvalidImage, Limits, outcome_record
from tests.conftest import MODEL_PATH


def test_classify_returns_an_immutable_verdict(classifier, fire_photo):
    prediction = classifier.classify(fire_photo.read_bytes())
    assert prediction.label in ("fire", "nofire")
    assert 0.0 <= prediction.fire_probability <= 1.0
    assert prediction.model_version == classifier.card.version
    assert prediction.is_fire == (prediction.label == "fire")
    with pytest.raises(dataclasses.FrozenInstanceError):
        prediction.label = "fire"


def test_label_follows_the_threshold(fire_photo):
    data = fire_photo.read_bytes()
    probability = Classifier(MODEL_PATH).classify(data).fire_probability
    assert Classifier(MODEL_PATH, threshold=0.0).classify(data).label == "fire"
    assert Classifier(MODEL_PATH, threshold=1.0).classify(data).label == ("fire" if probability >= 1.0 else "nofire")
    at_own_probability = Classifier(MODEL_PATH, threshold=probability).classify(data)
    assert at_own_probability.label == "fire", "at or above the threshold is fire"


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_threshold_must_be_a_probability(bad):
    with pytest.raises(ValueError, match="between 0 and 1"):
        Classifier(MODEL_PATH, threshold=bad)


def test_batch_equals_one_by_one(classifier, fire_photos, nofire_photos):
    images = [p.read_bytes() for p in fire_photos[:3] + nofire_photos[:3]]
    batch = classifier.classify_many(images)
    single = [classifier.classify(data) for data in images]
    assert [b.label for b in batch] == [s.label for s in single]
    np.testing.assert_allclose([b.fire_probability for b in batch], [s.fire_probability for s in single], atol=1e-4)


def test_batch_returns_errors_in_place(classifier, fire_photo):
    good = fire_photo.read_bytes()
    outcomes = classifier.classify_many([good, b"", b"not an image", good])
    assert [type(o).__name__ for o in outcomes] == ["Prediction", "InvalidImage", "InvalidImage", "Prediction"]
    assert outcomes[1].code == "empty_file" and outcomes[2].code == "unsupported_format"
    assert outcomes[0] == outcomes[3]
    assert classifier.classify_many([]) == []


def test_limits_are_settings(fire_photo):
    small = Classifier(MODEL_PATH, limits=Limits(max_bytes=1000))
    with pytest.raises(InvalidImage) as error:
        small.classify(fire_photo.read_bytes())
    assert error.value.code == "too_large"


def test_limits_and_model_path_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FIREWATCH_MAX_PIXELS", "100")
    assert Classifier(MODEL_PATH).limits.max_pixels == 100
    monkeypatch.setenv("FIREWATCH_MODEL_PATH", str(tmp_path / "missing.tflite"))
    with pytest.raises(FileNotFoundError, match="missing"):
        Classifier()
    monkeypatch.setenv("FIREWATCH_MAX_BYTES", "lots")
    with pytest.raises(ValueError, match="FIREWATCH_MAX_BYTES"):
        Classifier(MODEL_PATH)


def test_outcome_records_follow_the_contract(classifier, fire_photo):
    record = outcome_record("a.jpg", classifier.classify(fire_photo.read_bytes()))
    assert list(record) == ["source", "label", "fire_probability", "model_version"]
    error = outcome_record("b.jpg", InvalidImage("corrupt_image", "Broken."))
    assert error == {"source": "b.jpg", "error": {"code": "corrupt_image", "message": "Broken."}}


def test_thread_count_does_not_change_results(fire_photo):
    data = fire_photo.read_bytes()
    one = Classifier(MODEL_PATH, threads=1).classify(data)
    two = Classifier(MODEL_PATH, threads=2).classify(data)
    assert one.fire_probability == pytest.approx(two.fire_probability, abs=1e-4)
