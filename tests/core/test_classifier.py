"""The classifier API: one verdict per image, batch equals single, errors as values, the threshold rule."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from inference import Classifier, InvalidImage, Limits, ModelCard, Settings, outcome_record
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
    probability = Classifier.load(MODEL_PATH).classify(data).fire_probability
    assert Classifier.load(MODEL_PATH, threshold=0.0).classify(data).label == "fire"
    assert Classifier.load(MODEL_PATH, threshold=1.0).classify(data).label == ("fire" if probability >= 1.0 else "nofire")
    at_own_probability = Classifier.load(MODEL_PATH, threshold=probability).classify(data)
    assert at_own_probability.label == "fire", "at or above the threshold is fire"


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_threshold_must_be_a_probability(bad):
    with pytest.raises(ValueError, match="between 0 and 1"):
        Classifier.load(MODEL_PATH, threshold=bad)


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
    small = Classifier.load(MODEL_PATH, limits=Limits(max_bytes=1000))
    with pytest.raises(InvalidImage) as error:
        small.classify(fire_photo.read_bytes())
    assert error.value.code == "too_large"


def test_limits_and_model_path_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FIREWATCH_MAX_PIXELS", "100")
    assert Classifier.load(MODEL_PATH).limits.max_pixels == 100
    monkeypatch.setenv("FIREWATCH_MODEL_PATH", str(tmp_path / "missing.tflite"))
    with pytest.raises(FileNotFoundError, match="missing"):
        Classifier.load()
    monkeypatch.setenv("FIREWATCH_MAX_BYTES", "lots")
    with pytest.raises(ValueError, match="FIREWATCH_MAX_BYTES"):
        Classifier.load(MODEL_PATH)


def test_outcome_records_follow_the_contract(classifier, fire_photo):
    record = outcome_record("a.jpg", classifier.classify(fire_photo.read_bytes()))
    assert list(record) == ["source", "label", "fire_probability", "model_version"]
    error = outcome_record("b.jpg", InvalidImage("corrupt_image", "Broken."))
    assert error == {"source": "b.jpg", "error": {"code": "corrupt_image", "message": "Broken."}}


def test_thread_count_does_not_change_results(fire_photo):
    data = fire_photo.read_bytes()
    one = Classifier.load(MODEL_PATH, threads=1).classify(data)
    two = Classifier.load(MODEL_PATH, threads=2).classify(data)
    assert one.fire_probability == pytest.approx(two.fire_probability, abs=1e-4)


class FixedPredictor:
    """A predictor that answers given probabilities and records the batches it was handed."""

    def __init__(self, *probabilities: float) -> None:
        self.probabilities = probabilities
        self.batches: list[np.ndarray] = []

    def predict(self, images: np.ndarray) -> np.ndarray:
        self.batches.append(images)
        return np.asarray(self.probabilities[: len(images)])


def test_an_injected_predictor_gets_the_decoded_batch_and_the_core_s_verdict_rule(fire_photo):
    card = ModelCard.load(MODEL_PATH.with_suffix(".json"))
    predictor = FixedPredictor(1.7, 0.123456, -0.2)
    classifier = Classifier(card, predictor, threshold=0.1235)
    outcomes = classifier.classify_many([fire_photo.read_bytes(), fire_photo.read_bytes(), b"nope", fire_photo.read_bytes()])
    (batch,) = predictor.batches
    assert batch.shape == (3, card.input_height, card.input_width, 3) and batch.dtype == np.uint8
    assert [(o.label, o.fire_probability) for o in outcomes if not isinstance(o, InvalidImage)] == [
        ("fire", 1.0), ("fire", 0.1235), ("nofire", 0.0)], "clipped, rounded to 4 decimals, then compared"
    assert classifier.verdict(0.12344).label == "nofire"
    assert {o.model_version for o in outcomes if not isinstance(o, InvalidImage)} == {card.version}


def test_the_constructor_reads_no_settings_only_load_does(monkeypatch, tmp_path):
    monkeypatch.setenv("FIREWATCH_MAX_PIXELS", "100")
    monkeypatch.setenv("FIREWATCH_MODEL_PATH", str(tmp_path / "missing.tflite"))
    card = ModelCard.load(MODEL_PATH.with_suffix(".json"))
    plain = Classifier(card, FixedPredictor(0.5))
    assert plain.limits == Limits() and plain.threshold == card.threshold
    given = Settings(model_path=MODEL_PATH, limits=Limits(max_pixels=1234))
    assert Classifier.load(settings=given).limits.max_pixels == 1234, "explicit settings win over the environment"


def test_certainty_is_borderline_within_a_factor_of_3_in_odds_of_the_threshold():
    card = ModelCard.load(MODEL_PATH.with_suffix(".json"))
    classifier = Classifier(card, FixedPredictor(), threshold=0.57)
    low, high = classifier.borderline_band
    assert (round(low, 3), round(high, 3)) == (0.306, 0.799)  # odds 1.326 / 3 and x 3
    verdicts = {p: classifier.verdict(p) for p in (0.015, 0.30, 0.39, 0.57, 0.75, 0.81, 0.97)}
    assert {p: v.certainty for p, v in verdicts.items()} == {
        0.015: "clear", 0.30: "clear", 0.39: "borderline", 0.57: "borderline", 0.75: "borderline", 0.81: "clear",
        0.97: "clear"}  # fmt: skip
    assert verdicts[0.39].margin == -0.18 and verdicts[0.97].margin == 0.4 and verdicts[0.57].margin == 0.0
    assert verdicts[0.39].threshold == 0.57
    # In log-odds the band is symmetric about any threshold and never reaches 0 or 1.
    edge = Classifier(card, FixedPredictor(), threshold=0.95)
    assert edge.verdict(0.999).certainty == "clear" and edge.verdict(0.9).certainty == "borderline"
    assert Classifier(card, FixedPredictor(), threshold=0.0).verdict(0.0).certainty == "borderline"


def test_a_card_can_set_its_own_borderline_band():
    raw = ModelCard.load(MODEL_PATH.with_suffix(".json")).to_dict()
    narrow = Classifier(ModelCard.from_dict(raw | {"borderline_logits": 0.1}), FixedPredictor(), threshold=0.5)
    assert narrow.verdict(0.6).certainty == "clear" and narrow.verdict(0.52).certainty == "borderline"
    with pytest.raises(ValueError, match="borderline_logits"):
        Classifier(ModelCard.from_dict(raw | {"borderline_logits": -1}), FixedPredictor())


def test_the_contract_record_carries_certainty_only_when_asked(classifier, fire_photo):
    prediction = classifier.classify(fire_photo.read_bytes())
    assert list(prediction.to_dict("a.jpg")) == ["source", "label", "fire_probability", "model_version"]
    full = prediction.to_dict("a.jpg", with_certainty=True)
    assert list(full) == ["source", "label", "fire_probability", "model_version", "threshold", "margin", "certainty"]
    assert full["margin"] == round(full["fire_probability"] - classifier.threshold, 4)
