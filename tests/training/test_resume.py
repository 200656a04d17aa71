"""A fit stopped before it ended goes on from its last finished epoch (``training.progress``): as the fit that was
never stopped, refused when asked to go on with something else, whole when killed mid-write; and the commands
around it (``training.accelerated one --resume``, ``grid --resume``)."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest

from tests.training.in_process import run_main
from training import accelerated, fitting, pack, progress, resumable


def redder_photos(rng, n):
    """Tiny photos, redder when they are fire: enough for a linear model's AUC to move from epoch to epoch."""
    labels = rng.integers(0, 2, n).astype(np.float32)
    redness = labels[:, None, None] * 15 + rng.normal(0, 60, (n, 6, 6))
    photos = np.clip(np.stack([128 + redness, np.full_like(redness, 128), 128 - redness], -1), 0, 255)
    return photos.astype(np.uint8), labels


RNG = np.random.default_rng(3)
(TRAIN_X, TRAIN_Y), (VAL_X, VAL_Y) = redder_photos(RNG, 96), redder_photos(RNG, 64)


def fit(folder: Path | None, deadline: float | None = None, learning_rate: float = 1.0) -> fitting.Fitted:
    """A linear model with dropout (a seed generator's state to carry on), a weight average and a learning rate high
    enough for the plateau to cut it and for early stopping to end the fit before its last epoch."""
    import keras

    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((6, 6, 3)), keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
                              keras.layers.Dropout(0.3), keras.layers.Dense(1, activation="sigmoid")])
    schedule = fitting.Schedule(epochs=10, patience=4, batch_size=8, learning_rate=learning_rate, ema=0.8, seed=2,
                                deadline=deadline)
    return fitting.fit(fitting.compile_model(model, schedule), TRAIN_X, TRAIN_Y, VAL_X, VAL_Y, schedule,
                       log=lambda _: None, progress_folder=folder)


def weights_equal(a, b) -> bool:
    """Equal to float rounding: bit for bit on TensorFlow (the CPU here); JAX (a lent GPU machine) may round a sum
    another way once compiled again. A resume that got anything wrong differs in the second or third digit."""
    return all(np.allclose(x, y, rtol=1e-6, atol=1e-7) for x, y in zip(a.get_weights(), b.get_weights()))


def same_history(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[key] == pytest.approx(b[key], rel=1e-6) for key in a)


def test_a_fit_stopped_after_every_epoch_and_resumed_each_time_is_the_fit_that_was_never_stopped(tmp_path):
    whole = fit(None)
    epochs = len(whole.history["loss"])
    assert 1 < epochs < 10, "early stopping ended it: its counters were carried over"
    assert len(set(whole.history["learning_rate"])) > 1, "the plateau cut the learning rate: its counters and the rate too"
    folder, stops = tmp_path / "progress", 0
    while True:
        part = fit(folder, deadline=0.0)  # the deadline has passed: each call fits one epoch and stops
        stops += 1
        if not part.resumable:
            break
        assert (folder / resumable.STATE).exists()
    assert stops == epochs, "one epoch a call"
    assert same_history(part.history, whole.history), "the same epochs: batches, order, dropout masks, optimizer state"
    assert weights_equal(part.model, whole.model), "the same best epoch kept, bit for bit"
    assert not folder.exists(), "an ended fit leaves no progress behind"


def test_the_order_of_batches_is_the_one_keras_drew_and_a_function_of_the_epoch_alone():
    """Keras shuffled the batches from Python's random state, which a resumed fit (and JAX's first look at the data)
    would draw differently; the order is now drawn by epoch, and it is the order Keras drew, so earlier fits replay."""
    random.seed(5)  # what keras.utils.set_random_seed(5) did before a fit; Keras then shuffled once an epoch
    drawn = []
    for _ in range(3):
        order = list(range(7))
        random.shuffle(order)
        drawn.append(order)
    assert [fitting.batch_order(5, epoch, 7) for epoch in (1, 2, 3)] == drawn
    assert fitting.batch_order(5, 0, 7) == list(range(7)), "epoch 0 is only looked at, never fitted"
    assert fitting.batch_order(6, 1, 7) != drawn[0]


def test_a_fit_killed_while_it_wrote_an_epoch_goes_on_from_the_epoch_before(tmp_path):
    whole = fit(None)
    folder = tmp_path / "progress"
    fit(folder, deadline=0.0)
    fit(folder, deadline=0.0)
    # Killed while writing epoch 3: its weights half written, its state not yet in place.
    (folder / "epoch-0003.weights.h5").write_bytes(b"\x89HDF\r\n cut")
    (folder / f"{resumable.STATE}.partial").write_text('{"epochs_done": 3')
    resumed = fit(folder)
    assert same_history(resumed.history, whole.history) and weights_equal(resumed.model, whole.model)


def test_a_fit_is_not_resumed_with_other_settings_nor_from_a_damaged_state(tmp_path):
    folder = tmp_path / "progress"
    assert fit(folder, deadline=0.0).resumable
    with pytest.raises(progress.ProgressMismatch, match=r"learning_rate: 1\.0 then, 0\.5 now.*remove"):
        fit(folder, learning_rate=0.5)
    with progress.claimed(folder):  # the same command given twice: the second is refused while the first fits
        with pytest.raises(progress.ProgressMismatch, match=rf"another process is fitting in .*\(pid {os.getpid()}\)"):
            fit(folder)
    state = json.loads((folder / resumable.STATE).read_text())
    (folder / resumable.STATE).write_text(json.dumps({**state, "last": "../elsewhere.weights.h5"}))
    with pytest.raises(progress.ProgressMismatch, match="not a file of"):
        fit(folder)
    (folder / resumable.STATE).write_text(json.dumps(state))
    (folder / state["last"]).write_bytes(b"\x89HDF\r\n cut short")
    with pytest.raises(progress.ProgressMismatch, match="cannot be loaded into this network"):
        fit(folder)
    (folder / state["last"]).unlink()
    with pytest.raises(progress.ProgressMismatch, match="epoch-0001.weights.h5 is missing"):
        fit(folder)
    (folder / resumable.STATE).write_text("{")
    with pytest.raises(progress.ProgressMismatch, match="cannot be read"):
        fit(folder)


def write_pack(path: Path) -> Path:
    from training.data import Sample

    rng = np.random.default_rng(5)
    samples = [Sample(Path(f"{i}.jpg"), "weather" if i % 3 else "forest", i % 2, f"{i:064x}") for i in range(40)]
    images = {}
    for s in samples:
        warm = np.array([200, 90, 40] if s.label else [90, 120, 170], float)
        images[s.sha256] = np.clip(warm + rng.normal(0, 40, (16, 16, 3)), 0, 255).astype(np.uint8)
    pack.write(path, {"size": 16, "seed": 1}, {"train": samples[:28], "val": samples[28:]}, images, quality=90)
    return path


def stored_arrays(weights: Path) -> list[np.ndarray]:
    """The arrays of a weights file, in order (the file's bytes also hold the layers' names, which differ by process)."""
    import h5py

    arrays = []
    with h5py.File(weights) as f:
        f.visititems(lambda _, item: arrays.append(np.asarray(item[()])) if isinstance(item, h5py.Dataset) else None)
    return arrays


SMALL = ("--width", "0.25", "--epochs", "3", "--batch-size", "8")


def test_one_goes_on_with_resume_and_refuses_to_fit_over_a_stopped_fit_without_it(tmp_path):
    packed, out = write_pack(tmp_path / "t.pack.npz"), tmp_path / "fit"
    whole = run_main(accelerated.main, "one", packed, "--out", tmp_path / "whole", *SMALL)
    assert whole.returncode == 0, whole.stderr[-2000:]

    stopped = run_main(accelerated.main, "one", packed, "--out", out, *SMALL, "--deadline", "0")
    assert stopped.returncode == 0 and "the same command with --resume goes on" in stopped.stderr
    record = json.loads((out / accelerated.RUN).read_text())
    assert record["resumable"] is True and record["epochs_run"] == 1, "the best epoch so far is written, and marked"
    assert resumable.has_progress(out) and not accelerated.finished(out)

    again = run_main(accelerated.main, "one", packed, "--out", out, *SMALL)
    assert again.returncode == 1 and "give --resume" in again.stderr and "Traceback" not in again.stderr
    other = run_main(accelerated.main, "one", packed, "--out", out, *SMALL, "--seed", "8", "--resume")
    assert other.returncode == 1 and "seed: 1337 then, 8 now" in other.stderr

    resumed = run_main(accelerated.main, "one", packed, "--out", out, *SMALL, "--resume")
    assert resumed.returncode == 0 and "resuming after epoch 1 of 3" in resumed.stderr, resumed.stderr[-2000:]
    record = json.loads((out / accelerated.RUN).read_text())
    assert "resumable" not in record and record["epochs_run"] == 3 and accelerated.finished(out)
    history, whole_history = (json.loads((folder / accelerated.HISTORY).read_text()) for folder in (out, tmp_path / "whole"))
    assert same_history(history, whole_history), "as the fit that never stopped"
    scores, whole_scores = (json.loads((folder / accelerated.SCORES).read_text())["rows"] for folder in (out, tmp_path / "whole"))
    assert [row[:4] for row in scores] == [row[:4] for row in whole_scores]
    assert np.allclose([row[4:] for row in scores], [row[4:] for row in whole_scores], rtol=1e-5, atol=1e-6)
    assert all(np.allclose(x, y, rtol=1e-6, atol=1e-7) for x, y in zip(
        stored_arrays(out / accelerated.WEIGHTS), stored_arrays(tmp_path / "whole" / accelerated.WEIGHTS)))

    kept = (out / accelerated.RUN).read_bytes()
    done = run_main(accelerated.main, "one", packed, "--out", out, *SMALL, "--resume")
    assert done.returncode == 0 and "holds a finished fit" in done.stderr and (out / accelerated.RUN).read_bytes() == kept


def test_a_grid_with_stopped_fits_goes_on_only_with_resume_and_keeps_the_fits_that_ended(tmp_path):
    fits, packed = tmp_path / "fits", tmp_path / "missing.pack.npz"
    for name, stopped in (("t-all", False), ("t-weather", True)):
        (fits / name).mkdir(parents=True)
        command = f"python -m training.accelerated one {packed} --out {fits / name} {' '.join(SMALL)} --deadline 1.5"
        (fits / name / accelerated.RUN).write_text(json.dumps({"command": command}))
        if stopped:
            (fits / name / resumable.FOLDER).mkdir()
            (fits / name / resumable.FOLDER / resumable.STATE).write_text("{}")
    grid = ("grid", packed, "--out", fits, "--folds", "all", "weather", "--parallel", "1")
    refused = run_main(accelerated.main, *grid, "--variant", f"t:{' '.join(SMALL)}")
    assert refused.returncode == 1 and "t-weather were stopped before they ended: give --resume" in refused.stderr
    renamed = run_main(accelerated.main, *grid, "--variant", f"t:{' '.join(SMALL)} --ema 0.99", "--resume")
    assert renamed.returncode == 1 and "t-all were fitted with other options than this grid gives them" in renamed.stderr
    grid = (*grid, "--variant", f"t:{' '.join(SMALL)}")

    resumed = run_main(accelerated.main, *grid, "--resume")
    assert "kept, fitted before: t-all" in resumed.stderr and "resumed t-weather" in resumed.stderr
    results = json.loads((fits / "grid.json").read_text())
    assert results["t-all"] == {"exit": 0, "kept": "fitted before"}
    assert results["t-weather"]["exit"] != 0, "its pack is missing: the resumed fit's failure is reported, not hidden"
    log = (fits / "t-weather" / "fit.log").read_text()
    assert "missing.pack.npz" in log


def test_the_grid_passes_resume_to_each_fit():
    args = accelerated.parser().parse_args(["grid", "p.pack.npz", "--out", "f", "--variant", "t:--width 1.0", "--resume"])
    (_, command), = accelerated.grid_jobs(args, deadline=1.0)
    assert command[-1] == "--resume"


def test_a_training_run_stopped_mid_fit_is_finished_in_place_with_resume(tmp_path, datasets, monkeypatch):
    """``python -m training`` on a 2-core machine fits for an hour: Ctrl-C after an epoch, then the same command with
    --resume RUN finishes that run as the uninterrupted command would have."""
    from tests.training.test_training import make_dataset
    from training import cli

    root = make_dataset(tmp_path / "data", datasets, per_class=10)
    command = (root / "forest", root / "weather", "--epochs", "3", "--image-size", "32", "--width", "0.25",
               "--val-fraction", "0.4", "--batch-size", "8")
    whole = run_main(cli.main, *command, "--runs", tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]

    saved = progress.Progress.on_epoch_end

    def interrupted(self, epoch, logs=None):
        saved(self, epoch, logs)
        raise KeyboardInterrupt  # Ctrl-C once the first epoch is written

    monkeypatch.setattr(progress.Progress, "on_epoch_end", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_main(cli.main, *command, "--runs", tmp_path / "runs")
    monkeypatch.setattr(progress.Progress, "on_epoch_end", saved)
    (stopped,) = (tmp_path / "runs").iterdir()
    assert stopped.name.endswith("-incomplete")
    log = (stopped / "train.log").read_text()
    assert "to go on from its last finished epoch: python -m training" in log and f"--resume {stopped}" in log

    other = run_main(cli.main, *command, "--seed", "8", "--resume", stopped)
    assert other.returncode == 1 and "seed: 1337 then, 8 now" in other.stderr and "Traceback" not in other.stderr
    resumed = run_main(cli.main, *command, "--resume", stopped)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming after epoch 1 of 3" in resumed.stderr
    (finished,) = (tmp_path / "runs").iterdir()
    (reference,) = (tmp_path / "whole").iterdir()
    assert not finished.name.endswith("-incomplete") and not (finished / "progress").exists()
    assert same_history(*(json.loads((folder / "reports" / "history.json").read_text()) for folder in (finished, reference)))
    import keras

    # The same weights. (Not the .tflite's bytes: they hold the layers' names, which differ from one
    # model built in a process to the next, and the export ships whichever format measured fastest.)
    kept, uninterrupted = (keras.saving.load_model(folder / "fire_classifier.keras") for folder in (finished, reference))
    assert weights_equal(kept, uninterrupted)
    card = json.loads((finished / "fire_classifier.json").read_text())
    assert "--resume" not in card["training_command"], "the command that makes this model, not where it went on"

    again = run_main(cli.main, *command, "--resume", finished)
    assert again.returncode == 1 and "a finished run" in again.stderr
