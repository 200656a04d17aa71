"""Distillation (``training.accelerated one --teacher DIR``): the student's target is part label, part the teachers'
verdict on the very photo it sees, and a teacher must have been fitted on exactly the student's training photos."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests.training.in_process import run_main
from tests.training.test_accelerated import _figures
from training import accelerated, fitting, loso, pack

SIZE = 32


def synthetic_pack(path: Path) -> Path:
    """A pack of plain photos in three sources: reddish fires, and fire-free rooms and skies."""
    rng = np.random.default_rng(3)
    samples, images = {"train": [], "val": []}, {}
    for source, label, count in (("forest", 1, 16), ("forest", 0, 8), ("rooms", 0, 12), ("skies", 0, 12)):
        for i in range(count):
            photo = rng.integers(0, 120, (SIZE, SIZE, 3), dtype=np.uint8)
            photo[..., 0] += np.uint8(120 * label)
            sha = hashlib.sha256(photo.tobytes()).hexdigest()
            images[sha] = photo
            samples["val" if i % 4 == 0 else "train"].append(SimpleNamespace(label=label, source=source, sha256=sha))
    pack.write(path, {"size": SIZE, "val_fraction": 0.25, "seed": 1, "folders": []}, samples, images, quality=90)
    return path


def fit(packed: Path, out: Path, *options):
    return run_main(accelerated.main, "one", packed, "--out", out, "--width", "0.25", "--epochs", "1", "--batch-size", "8",
                    "--workers", "1", *options)


def test_the_target_blends_the_teachers_verdict_on_the_augmented_photo_and_keeps_the_weights():
    photos = np.random.default_rng(0).integers(0, 256, (12, 24, 24, 3), dtype=np.uint8)
    labels = np.array([1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0], np.float32)
    schedule = fitting.Schedule(batch_size=6, seed=5, distill_weight=0.25)
    seen = []

    def teacher(batch):  # a verdict that depends on the photo as augmented: its mean brightness
        seen.append(batch.copy())
        return batch.mean(axis=(1, 2, 3)) / 255.0

    plain_x, plain_y, plain_w = fitting.TrainingBatches(photos, labels, schedule)[1]
    x, y, w = fitting.TrainingBatches(photos, labels, schedule, teacher=teacher)[1]
    assert np.array_equal(x, plain_x) and np.array_equal(seen[0], x), "the teacher judges the photo the student sees"
    assert np.array_equal(w, plain_w), "the class weights follow the label, not the blend"
    assert y.shape == (6, 2) and np.array_equal(y[:, 1], plain_y), "the label beside the target, for the metrics"
    assert np.allclose(y[:, 0], 0.75 * plain_y + 0.25 * x.mean(axis=(1, 2, 3)) / 255.0)
    assert y.dtype == np.float32


def test_a_fit_asks_its_teacher_about_every_batch_it_trains_on():
    from training import backbones

    photos = np.random.default_rng(1).integers(0, 256, (16, 24, 24, 3), dtype=np.uint8)
    labels = np.array([1, 0] * 8, np.float32)
    schedule = fitting.Schedule(epochs=1, batch_size=4, distill_weight=0.5)
    asked = []
    model = fitting.compile_model(backbones.compact(24, width=0.25), schedule)
    fitted = fitting.fit(model, photos, labels, photos[:8], labels[:8], schedule, log=lambda _: None,
                         teacher=lambda x: asked.append(len(x)) or np.full(len(x), 0.5, np.float32))
    assert len(asked) >= 4 and set(asked) == {4}, "every batch of the epoch (Keras reads the first once more to see its shape)"
    # Accuracy and AUC on the training batches are of their labels, not of the blended targets (neither class).
    assert 0 < fitted.history["accuracy"][0] < 1 and 0 < fitted.history["auc"][0] < 1
    assert set(fitted.history) >= {"loss", "val_loss", "val_accuracy", "val_auc"}


@pytest.mark.parametrize("loss", ["focal", "crossentropy"])
def test_a_distilled_fit_has_the_recipes_loss_on_the_target_column(loss):
    from training import backbones

    target, labels = np.array([0.1, 0.7, 0.45, 0.95], np.float32), np.array([0, 1, 0, 1], np.float32)
    predicted = np.array([[0.2], [0.6], [0.5], [0.9]], np.float32)
    plain = fitting.compile_model(backbones.compact(24, width=0.25), fitting.Schedule(loss=loss))
    distilled = fitting.compile_model(backbones.compact(24, width=0.25), fitting.Schedule(loss=loss, distill_weight=0.5))
    expected = plain.compute_loss(y=target, y_pred=predicted)
    got = distilled.compute_loss(y=fitting.with_label(target, labels), y_pred=predicted)
    assert float(got) == pytest.approx(float(expected), rel=1e-6) and float(got) != pytest.approx(
        float(plain.compute_loss(y=labels, y_pred=predicted)))


@pytest.mark.parametrize("teacher, weight", [(lambda x: x, 0.0), (None, 0.5)])
def test_a_fit_is_refused_a_teacher_without_a_weight_and_a_weight_without_a_teacher(teacher, weight):
    with pytest.raises(ValueError, match="both a teacher and a distill weight"):
        fitting.fit(None, None, None, None, None, fitting.Schedule(distill_weight=weight), teacher=teacher)


def test_a_student_is_taught_only_by_fits_of_its_own_training_photos(tmp_path):
    packed = synthetic_pack(tmp_path / "s.pack.npz")
    teachers = [tmp_path / "t1", tmp_path / "t2"]
    done = fit(packed, teachers[0], "--holdout", "skies", "--width", "0.5")
    assert done.returncode == 0, done.stderr[-2000:]
    shutil.copytree(teachers[0], teachers[1])  # as good as a second seed here, for a fit less

    student = tmp_path / "student"
    done = fit(packed, student, "--holdout", "skies", "--teacher", teachers[0], "--teacher", teachers[1],
               "--distill-weight", "0.4")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "0.4 of each target is the mean verdict of 2 teacher(s)" in done.stderr
    record = json.loads((student / accelerated.RUN).read_text())
    assert record["settings"]["distill_weight"] == 0.4 and record["settings"]["teachers"] == 2
    assert "teacher" not in record["settings"], "the teachers' folders differ by fold; the recipe does not"
    assert [t["width"] for t in record["teachers"]] == [0.5, 0.5], "a wider teacher teaches a narrower student"
    assert record["teachers"][1]["sha256"] == hashlib.sha256((teachers[1] / accelerated.WEIGHTS).read_bytes()).hexdigest()
    name = loso.settings_text(loso.fit_settings(record))
    assert "distill_weight=0.4" in name and "teachers=2" in name
    undistilled = json.loads((teachers[0] / accelerated.RUN).read_text())
    assert "teachers" not in loso.settings_text(loso.fit_settings(undistilled)), "named as fits from before distillation"

    leak = fit(packed, tmp_path / "leak", "--teacher", teachers[0])  # the teacher held out skies; this student does not
    assert leak.returncode == 1 and "fitted on other training photos (held out: skies)" in leak.stderr
    other_fold = fit(packed, tmp_path / "other", "--holdout", "rooms", "--teacher", teachers[0])
    assert other_fold.returncode == 1 and "other training photos" in other_fold.stderr
    (tmp_path / "empty").mkdir()
    not_a_fit = fit(packed, tmp_path / "x", "--holdout", "skies", "--teacher", tmp_path / "empty")
    assert not_a_fit.returncode == 1 and "not the folder of one fit" in not_a_fit.stderr
    untaught = fit(packed, tmp_path / "y", "--distill-weight", "0.5")
    assert untaught.returncode == 1 and "--distill-weight needs --teacher" in untaught.stderr
    for refused in ("leak", "other", "x", "y"):
        assert not (tmp_path / refused).exists() and "Traceback" not in leak.stderr


def test_loso_ranks_a_distilled_recipe_beside_one_without_teachers():
    four = ("fire-dataset", "forest-fire", "houses", "weather")
    lines = loso.ranking({"seed=1 width=1.0": _figures(four, 0.90),
                          "distill_weight=0.5 seed=1 teachers=2 width=1.0": _figures(four, 0.92)}).splitlines()
    assert lines[-2].endswith("distill_weight=0.5 teachers=2") and lines[-1].endswith("distill_weight=0 teachers=0")


def test_a_grid_names_each_fits_own_teacher_by_fold_and_seed(tmp_path):
    args = accelerated.parser().parse_args(["grid", "p.pack.npz", "--out", str(tmp_path), "--folds", "houses", "weather",
                                            "--seeds", "1", "2", "--variant", "d:--teacher t/base-s{seed}-{fold}"])
    jobs = accelerated.grid_jobs(args, deadline=0.0)
    taught = {out.name: command[command.index("--teacher") + 1] for out, command in jobs}
    assert taught == {"d-s1-houses": "t/base-s1-houses", "d-s2-houses": "t/base-s2-houses",
                      "d-s1-weather": "t/base-s1-weather", "d-s2-weather": "t/base-s2-weather"}
    assert all(command[0] == sys.executable for _, command in jobs)
    args.seeds = None
    with pytest.raises(SystemExit, match="names {seed}, which needs --seeds"):
        accelerated.grid_jobs(args, deadline=0.0)
