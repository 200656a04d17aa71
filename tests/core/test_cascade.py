"""Two fits served as a cascade: the first alone where it is clear, the mean of both near the threshold."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from inference import Classifier, LiteRTModel
from inference.cascade import CELL_LOGITS_OUTPUT, FIRST_FIT, SECOND_FIT, Cascade
from inference.model import DEFAULT_SIGNATURE, PROBABILITY_OUTPUT
from tests.conftest import MODEL_PATH


class TwoFits:
    """A model file's signatures, faked: each photo's probability per fit is its first pixel's value / 100, and its
    cell logits are filled with the fit's number (1 or 2) times that probability. Records what each fit was shown."""

    signatures = (DEFAULT_SIGNATURE, FIRST_FIT, SECOND_FIT)
    map_grid = (2, 2)

    def __init__(self, second_offset: float) -> None:
        self.second_offset = second_offset
        self.shown: dict[str, list[int]] = {FIRST_FIT: [], SECOND_FIT: []}

    def run_signature(self, name: str, images: np.ndarray) -> dict[str, np.ndarray]:
        self.shown[name].append(len(images))
        probabilities = images[:, 0, 0, 0].astype(np.float32) / 100 + (self.second_offset if name == SECOND_FIT else 0)
        factor = 1.0 if name == FIRST_FIT else 2.0
        cells = np.repeat(probabilities[:, None, None] * factor, 4).reshape(len(images), 2, 2)
        return {PROBABILITY_OUTPUT: probabilities[:, None], CELL_LOGITS_OUTPUT: cells}


def photos(*percent: int) -> np.ndarray:
    images = np.zeros((len(percent), 4, 4, 3), np.uint8)
    images[:, 0, 0, 0] = percent
    return images


def test_clear_photos_are_the_first_fit_s_and_the_second_fit_never_runs():
    fits = TwoFits(second_offset=-0.3)
    cascade = Cascade(fits, margin=0.2, threshold=0.6)  # type: ignore[arg-type]
    probabilities = cascade.predict(photos(95, 10, 81))  # 0.35, 0.5 and 0.21 from 0.6: all clear
    assert probabilities.tolist() == pytest.approx([0.95, 0.10, 0.81])
    assert fits.shown == {FIRST_FIT: [3], SECOND_FIT: []}


def test_photos_near_the_threshold_get_the_mean_of_both_fits_and_only_they_meet_the_second():
    fits = TwoFits(second_offset=-0.3)
    cascade = Cascade(fits, margin=0.2, threshold=0.6)  # type: ignore[arg-type]
    probabilities, maps = cascade.predict_with_map(photos(95, 65, 10, 45))
    # 0.65 and 0.45 are within 0.2 of 0.6: the mean of 0.65 and 0.35 (a fire by the first fit alone, not by the mean),
    # and of 0.45 and 0.15. The others are the first fit's.
    assert probabilities.tolist() == pytest.approx([0.95, 0.50, 0.10, 0.30])
    assert fits.shown == {FIRST_FIT: [4], SECOND_FIT: [2]}
    # The map: the sigmoid of the first fit's cell logits, or of the mean of both fits' (1 x p and 2 x (p - 0.3)).
    sigmoid = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    assert maps.shape == (4, 2, 2) and maps.dtype == np.float32
    assert maps[0, 0, 0] == pytest.approx(sigmoid(0.95), abs=1e-6)
    assert maps[1, 1, 1] == pytest.approx(sigmoid((0.65 + 2 * 0.35) / 2), abs=1e-6)
    assert cascade.predict(photos(65)).tolist() == pytest.approx([probabilities[1]]), "alone as in a batch"


@pytest.mark.parametrize("margin", [0, 1, -0.1, float("nan"), "0.2", None])
def test_a_margin_outside_0_to_1_is_refused(margin):
    with pytest.raises(ValueError, match="cascade margin must be a number between 0 and 1"):
        Cascade(TwoFits(0), margin=margin, threshold=0.5)  # type: ignore[arg-type]


def test_a_file_without_the_fits_signatures_is_refused_with_what_to_do():
    class OneSignature(TwoFits):
        signatures = (DEFAULT_SIGNATURE,)

    with pytest.raises(ValueError, match="no first or second signature .* re-export it"):
        Cascade(OneSignature(0), margin=0.2, threshold=0.5)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def served_card() -> dict:
    return json.loads(MODEL_PATH.with_suffix(".json").read_text())


def test_the_served_cascade_gives_the_first_fit_or_the_mean_of_both_as_its_card_says(served_card, fire_photo, nofire_photo,
                                                                                      datasets):
    if not served_card.get("cascade"):
        pytest.skip("the served model is not a cascade")
    classifier = Classifier.load(MODEL_PATH)
    assert isinstance(classifier.predictor, Cascade) and classifier.predictor.margin == served_card["cascade"]["margin"]
    files = sorted((datasets / "weather" / "nofire").glob("*.jp*g"))[:40] + [fire_photo, nofire_photo]
    images = np.stack([classifier.preprocess(path.read_bytes()) for path in files])
    model = LiteRTModel(MODEL_PATH)
    first = model.run_signature(FIRST_FIT, images)[PROBABILITY_OUTPUT].reshape(-1)
    second = model.run_signature(SECOND_FIT, images)[PROBABILITY_OUTPUT].reshape(-1)
    near = np.abs(first - classifier.threshold) < served_card["cascade"]["margin"]
    assert 0 < near.sum() < len(files), "these photos include clear and near ones"
    served = [p.fire_probability for p in classifier.predict_arrays(images)]
    expected = np.where(near, (first + second) / 2, first)
    assert served == pytest.approx(np.round(expected, 4).tolist(), abs=1e-4)
    # One photo at a time, or with the map, the same probabilities: the map never changes the verdict.
    with_map = classifier.predict_arrays(images, with_map=True)
    assert [p.fire_probability for p in with_map] == served
    assert [classifier.predict_arrays(images[i : i + 1])[0].fire_probability for i in range(len(files))] == served
    # Near the threshold, the whole model (serving_default) computes the same mean, within int8 rounding.
    whole = model.predict(images)
    assert np.max(np.abs(whole[near] - expected[near])) < 0.02


@pytest.mark.parametrize("plan, message", [({"margin": 2}, "cascade margin"), ({"first": {}}, "cascade margin"),
                                           ("0.2", "cascade must be an object"), ([0.2], "cascade must be an object")])
def test_a_card_with_a_bad_cascade_fails_at_load_not_on_the_first_photo(tmp_path, served_card, plan, message):
    shutil.copy(MODEL_PATH, tmp_path / "m.tflite")
    (tmp_path / "m.json").write_text(json.dumps({**served_card, "cascade": plan}))
    with pytest.raises(ValueError, match=message):
        Classifier.load(tmp_path / "m.tflite")


def test_the_cascade_runs_around_the_threshold_verdicts_are_made_at(served_card):
    if not served_card.get("cascade"):
        pytest.skip("the served model is not a cascade")
    assert Classifier.load(MODEL_PATH).predictor.threshold == served_card["threshold"]
    assert Classifier.load(MODEL_PATH, threshold=0.4).predictor.threshold == 0.4, "a threshold given overrides the card's"
