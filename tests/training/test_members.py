"""What ``--trained`` reads of a finished run folder: the fit its card records, checked against its manifest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from training import accelerated, members

FIT = {"device": "NVIDIA H200", "backend": "jax", "command": "python -m training.accelerated one p.pack.npz --out f",
       "settings": {"holdout": [], "width": 2.0, "seed": 1337}}


def _run_folder(folder: Path, fit: dict | None = FIT, manifest: str | None = None) -> Path:
    folder.mkdir()
    text = manifest or "aa  train  a.jpg\nbb  val  b.jpg\ncc  train  c d.jpg\ndd  holdout  d.jpg\n"
    (folder / "fire_classifier.files.sha256").write_text(text)
    training = {"epochs_run": 3, "seconds": 12.5, **({"fitted_elsewhere": fit} if fit else {})}
    card = {"input": {"width": 160}, "training": training, "files": {"keras": "fire_classifier.keras"},
            "training_data": {"file_hashes": "fire_classifier.files.sha256",
                              "file_hashes_sha256": hashlib.sha256(text.encode()).hexdigest()}}
    (folder / "fire_classifier.json").write_text(json.dumps(card))
    (folder / "reports").mkdir()
    (folder / "reports" / "history.json").write_text(json.dumps({"loss": [0.3, 0.2, 0.1]}))
    return folder


def test_a_run_of_one_fit_lends_that_fit_with_its_training_photos(tmp_path):
    fit = members.read(_run_folder(tmp_path / "run"))
    assert fit.record["train_digest"] == accelerated.digest(["aa", "cc"]), "the manifest's train rows, nothing else"
    assert fit.record["settings"] == FIT["settings"] and fit.record["image_size"] == 160
    assert fit.record["fit_seconds"] == 12.5 and fit.history == {"loss": [0.3, 0.2, 0.1]}
    assert fit.keras_file == tmp_path / "run" / "fire_classifier.keras"
    tuned = members.read(_run_folder(tmp_path / "tuned", {**FIT, "started_from": {"file": "w.h5", "sha256": "ee"}}))
    assert tuned.record["init"] == {"file": "w.h5", "sha256": "ee"}, "a fine-tuned fit stays a fine-tuned recipe"


def test_a_fit_folder_is_read_as_the_fit_wrote_it(tmp_path):
    (tmp_path / accelerated.RUN).write_text(json.dumps({"settings": {"seed": 7}}))
    (tmp_path / accelerated.HISTORY).write_text(json.dumps({"loss": [1.0]}))
    fit = members.read(tmp_path)
    assert fit.record == {"settings": {"seed": 7}} and fit.keras_file is None


@pytest.mark.parametrize("fit, says", [
    (None, "fitted by `python -m training` itself"),
    ({"ensemble_of": 2, "members": [FIT, FIT]}, "already the mean of 2 fits"),
])
def test_a_run_that_is_not_one_fit_lends_nothing(tmp_path, fit, says):
    with pytest.raises(members.NotOneFit, match=says):
        members.read(_run_folder(tmp_path / "run", fit))


def test_a_manifest_that_is_not_the_cards_is_refused(tmp_path):
    run = _run_folder(tmp_path / "run")
    (run / "fire_classifier.files.sha256").write_text("aa  train  a.jpg\n\nzz  train  z.jpg\n")
    with pytest.raises(ValueError, match="not the one its card names"):
        members.read(run)


def test_blank_or_short_manifest_lines_are_no_training_photos(tmp_path):
    fit = members.read(_run_folder(tmp_path / "run", manifest="aa  train  a.jpg\n\nbroken\nbb  train  b.jpg\n"))
    assert fit.record["train_digest"] == accelerated.digest(["aa", "bb"])


def test_a_folder_with_neither_is_an_error_that_names_the_missing_file(tmp_path):
    with pytest.raises(OSError):
        members.read(tmp_path)


def test_a_damaged_card_is_an_error_the_training_run_reports(tmp_path):
    run = _run_folder(tmp_path / "run")
    (run / "fire_classifier.json").write_text(json.dumps({"training": ["not", "a", "record"]}))
    with pytest.raises((KeyError, TypeError, AttributeError)):
        members.read(run)
