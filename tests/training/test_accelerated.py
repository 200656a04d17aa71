"""Training elsewhere: the pack, a fit from it (``training.accelerated``), finishing the run here (``--trained``), the
leave-one-source-out report (``training.loso``) and its threshold (``--loso``)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from inference import Classifier, LiteRTModel
from inference.cascade import Cascade
from tests.conftest import ROOT
from tests.training.in_process import run_main
from tests.training.test_training import make_dataset
from training import accelerated, cli, fitting, loso, pack, rescore, runs


def run_module(module: str, *args, timeout=300):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_training_batches_are_full_weighted_by_class_and_repeatable():
    photos = np.random.default_rng(0).integers(0, 256, (10, 24, 24, 3), dtype=np.uint8)
    labels = np.array([1, 0, 0, 0, 0, 0, 0, 0, 1, 0], np.float32)
    schedule = fitting.Schedule(batch_size=4, seed=5, recipe=fitting.augment.Recipe(mix_probability=0.0))
    batches = fitting.TrainingBatches(photos, labels, schedule)
    assert len(batches) == 2, "the remainder waits for the next shuffle: no smaller batch to recompile for"
    x, y, w = batches[0]
    assert x.shape == (4, 24, 24, 3) and x.dtype == np.float32
    weights = fitting.class_weights(labels)
    assert weights[1] == pytest.approx(2.5) and weights[0] == pytest.approx(10 / 16)
    assert np.allclose(w, np.where(y > 0.5, weights[1], weights[0]))
    again = fitting.TrainingBatches(photos, labels, schedule)[0]
    assert np.array_equal(x, again[0]), "batch i of epoch e is the same whatever the threads"
    batches.on_epoch_end()
    assert not np.array_equal(x, batches[0][0]), "a new shuffle and new augmentation each epoch"


def test_source_balance_gives_the_sources_of_a_class_equal_shares_and_keeps_the_class_weight():
    labels = np.array([0] * 6 + [1] * 4, np.float32)
    sources = np.array(["rooms"] * 4 + ["sunsets"] * 2 + ["forest"] * 3 + ["city"])
    share = {}
    for power in (0.0, 0.5, 1.0):
        factors = fitting.source_factors(labels, sources, power)
        assert factors[labels == 0].mean() == pytest.approx(1) and factors[labels == 1].mean() == pytest.approx(1)
        share[power] = {name: factors[sources == name].sum() for name in ("rooms", "sunsets", "forest", "city")}
    assert share[0.0] == {"rooms": 4, "sunsets": 2, "forest": 3, "city": 1}  # off: by their numbers
    assert share[1.0]["rooms"] == pytest.approx(3) and share[1.0]["sunsets"] == pytest.approx(3)  # each half of 6
    assert share[1.0]["forest"] == pytest.approx(2) and share[1.0]["city"] == pytest.approx(2)
    assert share[0.5]["rooms"] / share[0.5]["sunsets"] == pytest.approx(2 ** 0.5)  # in proportion to count ** 0.5
    assert np.array_equal(fitting.source_factors(labels, None, 1.0), np.ones(10))

    photos = np.random.default_rng(0).integers(0, 256, (10, 24, 24, 3), dtype=np.uint8)
    schedule = fitting.Schedule(batch_size=10, seed=5, source_balance=1.0,
                                recipe=fitting.augment.Recipe(mix_probability=0.0))
    batches = fitting.TrainingBatches(photos, labels, schedule, sources)
    _, y, w = batches[0]
    factors, weights = fitting.source_factors(labels, sources, 1.0), fitting.class_weights(labels)
    assert np.allclose(w, np.where(y > 0.5, weights[1], weights[0]) * factors[batches.order])
    with pytest.raises(ValueError, match="source"):
        fitting.fit(None, photos, labels, photos, labels, schedule)


def test_the_kept_weights_are_the_ones_validated_raw_or_their_moving_average():
    """Early stopping and the checkpoint judge each epoch by its validation AUC; the model returned must be the one
    that scored it: with --ema, the moving average of the weights (swapped in before validation and before the
    checkpoint), not the last step's weights. The average changes what is validated and kept, not the steps taken. A
    linear model on redder-or-bluer photos, so every epoch's AUC differs."""
    import keras

    rng = np.random.default_rng(3)
    def photos(n):
        labels = rng.integers(0, 2, n).astype(np.float32)
        redness = labels[:, None, None] * 15 + rng.normal(0, 60, (n, 6, 6))
        x = np.clip(np.stack([128 + redness, np.full_like(redness, 128), 128 - redness], -1), 0, 255)
        return x.astype(np.uint8), labels
    (train_x, train_y), (val_x, val_y) = photos(96), photos(64)
    histories = {}
    for ema in (0.0, 0.8):
        keras.utils.set_random_seed(2)  # the same first weights
        model = keras.Sequential([keras.Input((6, 6, 3)), keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
                                  keras.layers.Dense(1, activation="sigmoid")])
        schedule = fitting.Schedule(epochs=4, patience=4, batch_size=8, learning_rate=0.2, ema=ema, seed=2,
                                    recipe=fitting.augment.Recipe(mix_probability=0.0, white_balance_probability=0.0))
        fitted = fitting.fit(fitting.compile_model(model, schedule), train_x, train_y, val_x, val_y, schedule, log=lambda _: None)
        histories[ema] = fitted.history
        assert len(set(fitted.history["val_auc"])) > 1, "a test that cannot tell two epochs apart tells nothing"
        kept = keras.metrics.AUC()
        kept.update_state(val_y, fitted.model.predict(val_x.astype(np.float32), verbose=0))
        assert float(kept.result()) == pytest.approx(max(fitted.history["val_auc"]), abs=1e-6), f"ema {ema}"
    assert histories[0.8]["loss"] == pytest.approx(histories[0.0]["loss"], rel=1e-5), "the same steps either way"
    assert histories[0.8]["val_auc"] != pytest.approx(histories[0.0]["val_auc"], abs=1e-4), "the average was validated"


def test_a_fit_stopped_at_its_deadline_still_keeps_the_validated_average():
    """Stopped before its last epoch (a lease's deadline, or early stopping), Keras writes the last step's weights back
    at the end of the fit; the model returned is still the average that was validated and checkpointed."""
    import keras

    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, 96).astype(np.float32)
    redness = labels[:, None, None] * 15 + rng.normal(0, 60, (96, 6, 6))
    photos = np.clip(np.stack([128 + redness, np.full_like(redness, 128), 128 - redness], -1), 0, 255).astype(np.uint8)
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((6, 6, 3)), keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
                              keras.layers.Dense(1, activation="sigmoid")])
    schedule = fitting.Schedule(epochs=4, patience=4, batch_size=8, learning_rate=0.2, ema=0.8, seed=2, deadline=0.0,
                                recipe=fitting.augment.Recipe(mix_probability=0.0, white_balance_probability=0.0))
    fitted = fitting.fit(fitting.compile_model(model, schedule), photos[:64], labels[:64], photos[64:], labels[64:], schedule,
                         log=lambda _: None)
    assert len(fitted.history["val_auc"]) == 1, "stopped after its first epoch"
    kept = keras.metrics.AUC()
    kept.update_state(labels[64:], fitted.model.predict(photos[64:].astype(np.float32), verbose=0))
    assert float(kept.result()) == pytest.approx(fitted.history["val_auc"][0], abs=1e-6)


def test_a_pack_keeps_photos_labels_sources_and_the_split(tmp_path):
    from training.data import Sample

    rng = np.random.default_rng(2)
    samples = [Sample(Path(f"{i}.jpg"), source, label, f"{i:064x}")
               for i, (source, label) in enumerate([("forest/train", 1), ("forest/train", 0), ("weather", 0), ("houses", 0)])]
    smooth = np.linspace(0, 255, 32 * 32 * 3).reshape(32, 32, 3)
    images = {s.sha256: np.clip(smooth + rng.normal(0, 3, smooth.shape), 0, 255).astype(np.uint8) for s in samples}
    path = tmp_path / "t.pack.npz"
    pack.write(path, {"size": 32, "seed": 1}, {"train": samples[:3], "val": samples[3:]}, images, quality=90)
    read = pack.read(path)
    assert read.meta["size"] == 32 and read.meta["count"] == 4
    assert read.labels.tolist() == [1, 0, 0, 0] and read.splits.tolist() == ["train", "train", "train", "val"]
    assert np.abs(read.images.astype(float) - np.stack([images[s.sha256] for s in samples])).mean() < 4, "WebP q90: a few levels"
    fold = read.fold(["forest"])
    assert fold["held"].tolist() == [True, True, False, False], "a source holds its sub-sources"
    assert fold["train"].tolist() == [False, False, True, False] and fold["val"].tolist() == [False, False, False, True]
    with pytest.raises(SystemExit, match="no source named kitchens.*forest/train, houses, weather"):
        read.fold(["kitchens"])


def test_a_pack_whose_photos_are_not_its_size_is_refused_before_decoding_them(tmp_path):
    from training.data import Sample

    sample = Sample(Path("big.jpg"), "weather", 0, "0" * 64)
    path = tmp_path / "forged.pack.npz"
    pack.write(path, {"size": 32}, {"train": [sample]}, {sample.sha256: np.zeros((48, 48, 3), np.uint8)}, quality=90)
    with pytest.raises(SystemExit, match="a photo of 48x48 in a pack of 32x32 photos"):
        pack.read(path)


def test_a_damaged_pack_is_a_clear_error(tmp_path):
    (tmp_path / "cut.pack.npz").write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(SystemExit, match="is not a whole pack"):
        pack.read(tmp_path / "cut.pack.npz")
    with pytest.raises(SystemExit, match="is not a whole pack"):
        pack.read(tmp_path / "missing.pack.npz")


def test_a_pack_must_be_named_so_the_repository_ignores_it(tmp_path):
    done = run_module("training.pack", tmp_path / "photos.npz")
    assert done.returncode == 2 and ".pack.npz" in done.stderr
    assert subprocess.run(["git", "check-ignore", "-q", "any.pack.npz"], cwd=ROOT).returncode == 0


@pytest.mark.timeout(600)
def test_fit_from_a_pack_then_finish_the_run_here_with_the_loso_threshold(tmp_path, datasets):
    """The whole way a lent GPU is used, on a CPU: pack, fit from it (two folds), the LOSO report, then the served run."""
    root = make_dataset(tmp_path / "data", datasets, per_class=12)
    for label in ("fire", "nofire"):  # a third source, with fires: a report must hold out both classes to choose a threshold
        (root / "fires" / label).mkdir(parents=True)
        for photo in sorted((datasets / "fire-dataset" / label).glob("*.jpg"))[:8]:
            shutil.copy(photo, root / "fires" / label / photo.name)
    folders = [root / "forest", root / "weather", root / "fires"]

    def train(*args):  # python -m training on these photos, in this process
        return run_main(cli.main, *folders, *args)

    packed = tmp_path / "d.pack.npz"
    done = run_main(pack.main, packed, *folders, "--image-size", "48", "--val-fraction", "0.4")
    assert done.returncode == 0, done.stderr[-2000:]
    # Step 2 as a lent machine runs it: the script's preflight, the grid, one archive per variant for the trip back.
    settings = {"PYTHON": sys.executable, "VARIANTS": "small:--width 1.0 --epochs 1 --batch-size 8", "FOLDS": "all weather fires",
                "PARALLEL": "3", "SEEDS": "1 2"}
    grid = subprocess.run(["scripts/gpu-loso.sh", str(packed), str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **settings})
    fits = tmp_path / "out" / "fits"
    assert grid.returncode == 0, grid.stderr[-2000:] + "".join(p.read_text() for p in fits.glob("*/fit.log"))
    assert sorted(p.name for p in (tmp_path / "out").glob("*.tgz")) == ["small.tgz"], "a lent machine returns few files"
    with tarfile.open(tmp_path / "out" / "small.tgz") as archive:
        packed_files = set(archive.getnames())
    for seed in (1, 2):
        assert {f"small-s{seed}-{fold}/{accelerated.SCORES}" for fold in ("all", "weather")} <= packed_files
        assert f"small-s{seed}-all/{accelerated.WEIGHTS}" in packed_files, "the full fits' weights, to finish and serve"
        assert f"small-s{seed}-weather/{accelerated.WEIGHTS}" not in packed_files, "a fold's scores are enough"
    assert sorted(p.name for p in fits.iterdir() if p.is_dir()) == [f"small-s{s}-{f}" for s in (1, 2) for f in ("all", "fires", "weather")]
    assert [json.loads((fits / f"small-s{s}-weather" / accelerated.RUN).read_text())["settings"]["seed"] for s in (1, 2)] == [1, 2]
    full, fold, fire_fold = fits / "small-s1-all", fits / "small-s1-weather", fits / "small-s1-fires"
    for name in (accelerated.WEIGHTS, accelerated.HISTORY, accelerated.RUN, accelerated.SCORES):
        assert (full / name).is_file() and (fold / name).is_file()
    scores = json.loads((fold / accelerated.SCORES).read_text())
    assert {row[3] for row in scores["rows"]} == {"val", "held"}
    assert {row[1] for row in scores["rows"] if row[3] == "held"} == {"weather"}

    report = tmp_path / "loso.json"
    summary = run_main(loso.main, full, fold, fire_fold, "--json", report)
    assert summary.returncode == 0, summary.stderr[-2000:]
    assert "weather/nofire false alarms" in summary.stdout and "out of fold" in summary.stdout
    recipe, figures = loso.one_recipe(report)
    assert "width=1.0" in recipe and set(figures["folds"]) == {"weather", "fires"}
    fire_free = tmp_path / "fire-free.json"
    assert run_main(loso.main, fold, "--json", fire_free).returncode == 0
    per_seed = tmp_path / "per-seed.json"
    assert run_main(loso.main, fold, fits / "small-s2-weather", "--json", per_seed).returncode == 0
    assert len(json.loads(per_seed.read_text())) == 2, "each seed's folds are a result of their own"

    mismatch = train("--image-size", "48", "--val-fraction", "0.4", "--width", "2.0", "--trained", full,
                     "--runs", tmp_path / "runs")
    assert mismatch.returncode != 0 and "fitted on something else: width: 1.0 there, 2.0 here" in mismatch.stderr
    same = ("--image-size", "48", "--val-fraction", "0.4", "--batch-size", "8", "--width", "1.0")
    recipe_differs = train(*same, "--trained", full, "--white-balance-strength", "0.45", "--runs", tmp_path / "runs")
    assert recipe_differs.returncode != 0 and "white-balance strength: 0.25 there, 0.45 here" in recipe_differs.stderr
    balance_differs = train(*same, "--trained", full, "--source-balance", "1", "--grayscale-probability", "0.2",
                            "--runs", tmp_path / "runs")
    assert balance_differs.returncode != 0 and "source balance (--source-balance): 0.0 there, 1.0 here" in balance_differs.stderr
    assert "grayscale probability (--grayscale-probability): 0.0 there, 0.2 here" in balance_differs.stderr
    damaged = tmp_path / "damaged"
    shutil.copytree(full, damaged)
    (damaged / accelerated.WEIGHTS).write_bytes((full / accelerated.WEIGHTS).read_bytes()[:500])
    broken = train(*same, "--trained", damaged, "--runs", tmp_path / "runs")
    assert broken.returncode != 0 and "does not fit this model" in broken.stderr and "Traceback" not in broken.stderr

    # Fine-tuning: a fit that starts from another's weights records which, and its recipe must be this run's too.
    tuned = tmp_path / "tuned"
    small = ("--width", "1.0", "--epochs", "1", "--batch-size", "8", "--decoy-probability", "0.5", "--ema", "0.9",
             "--bn-momentum", "0.9", "--grayscale-probability", "0.5", "--crop-scale", "0.5")
    # ... and distilled from the fit it starts from (the same training photos): the card names its teacher too.
    done = run_main(accelerated.main, "one", packed, "--out", tuned, "--init", full / accelerated.WEIGHTS, *small,
                    "--teacher", full)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((tuned / accelerated.RUN).read_text())
    assert [teacher["folder"] for teacher in record["teachers"]] == [full.name]
    assert record["init"]["sha256"] == hashlib.sha256((full / accelerated.WEIGHTS).read_bytes()).hexdigest()
    assert record["settings"]["decoy_probability"] == 0.5 and record["settings"]["bn_momentum"] == 0.9
    assert record["settings"]["grayscale_probability"] == 0.5 and record["settings"]["crop_scale"] == 0.5
    bad_init = run_main(accelerated.main, "one", packed, "--out", tmp_path / "x", "--init", damaged / accelerated.WEIGHTS, *small)
    assert bad_init.returncode != 0 and "--init" in bad_init.stderr and "Traceback" not in bad_init.stderr
    no_decoys = train(*same, "--trained", tuned, "--runs", tmp_path / "runs")
    assert no_decoys.returncode != 0 and "decoy probability: 0.5 there, 0.0 here" in no_decoys.stderr
    assert "weight average momentum (--ema): 0.9 there, 0.0 here" in no_decoys.stderr
    assert "batch-norm momentum (--bn-momentum): 0.9 there, 0.99 here" in no_decoys.stderr
    assert "crop scale (--crop-scale): 0.5 there, 0.7 here" in no_decoys.stderr
    with_decoys = train(*same, "--trained", tuned, "--decoy-probability", "0.5", "--ema", "0.9", "--bn-momentum", "0.9",
                        "--grayscale-probability", "0.5", "--crop-scale", "0.5", "--runs", tmp_path / "tuned-runs")
    assert with_decoys.returncode == 0, with_decoys.stderr[-3000:]
    (tuned_run,) = (tmp_path / "tuned-runs").iterdir()
    tuned_card = json.loads((tuned_run / "fire_classifier.json").read_text())
    assert tuned_card["training"]["fitted_elsewhere"]["started_from"] == record["init"]
    assert tuned_card["training"]["fitted_elsewhere"]["distilled_from"] == record["teachers"]
    assert tuned_card["augmentation"]["decoy_probability"] == 0.5 and tuned_card["augmentation"]["grayscale_probability"] == 0.5
    assert tuned_card["augmentation"]["crop_scale"] == 0.5
    assert tuned_card["training"]["weight_average_momentum"] == 0.9 and tuned_card["training"]["batch_norm_momentum"] == 0.9
    one_class = train(*same, "--trained", full, "--loso", fire_free, "--runs", tmp_path / "one-class")
    assert one_class.returncode != 0 and "every photo --loso" in one_class.stderr and "held out is fire-free" in one_class.stderr
    assert not (tmp_path / "one-class").exists(), "refused before a run folder is made"
    finished = train(*same, "--trained", full, "--loso", report, "--runs", tmp_path / "runs")
    assert finished.returncode == 0, finished.stderr[-3000:]
    (run,) = [p for p in (tmp_path / "runs").iterdir() if not p.name.endswith("incomplete")]
    card = json.loads((run / "fire_classifier.json").read_text())
    assert card["threshold"] == figures["out_of_fold"]["threshold"], "the out-of-fold threshold, not validation's"
    assert "leave-one-source-out" in card["threshold_rule"] and "validation_threshold" in card["metrics"]
    assert card["metrics"]["leave_one_source_out"]["recipe"] == recipe
    assert card["training"]["fitted_elsewhere"]["command"].startswith("python -m training.accelerated one")
    assert (run / "reports" / "leave_one_source_out.json").is_file() and "per_source.png" in card["reports"]["plots"]

    # A report of another recipe (another width here) chose its threshold for another model.
    other = json.loads(report.read_text())
    (tmp_path / "other.json").write_text(json.dumps({recipe.replace("width=1.0", "width=2.0"): figures for recipe, figures in other.items()}))

    # The two seeds' fits served as one model, the mean of both, at the threshold their mean chose out of fold. The first
    # is the run served above, as after its fit folder is gone: its card, .keras and manifest hold the fit.
    both = (run, fits / "small-s2-all")
    assert run_main(loso.main, fold, fire_fold, fits / "small-s2-weather", fits / "small-s2-fires", "--seeds", "mean",
                    "--json", tmp_path / "mean.json").returncode == 0
    wrong_threshold = train(*same, "--trained", *both, "--loso", report, "--runs", tmp_path / "runs")
    assert wrong_threshold.returncode != 0 and "measured one fit, but this run serves the mean of 2 fits" in wrong_threshold.stderr
    other_recipe = train(*same, "--trained", full, "--loso", tmp_path / "other.json", "--runs", tmp_path / "runs")
    assert other_recipe.returncode != 0 and "measured another recipe than --trained" in other_recipe.stderr
    one_seed_twice = train(*same, "--trained", run, full, "--runs", tmp_path / "runs")
    assert one_seed_twice.returncode != 0 and "an ensemble of one seed twice" in one_seed_twice.stderr, "a run is its fit"
    fitted_here = shutil.copytree(run, tmp_path / "fitted-here")
    (fitted_here / "fire_classifier.json").write_text(json.dumps({**card, "training": {"epochs_run": 1, "seconds": 1.0}}))
    not_a_fit = train(*same, "--trained", fitted_here, "--runs", tmp_path / "runs")
    assert not_a_fit.returncode != 0 and "fitted by `python -m training` itself" in not_a_fit.stderr
    ensemble = train(*same, "--trained", *both, "--loso", tmp_path / "mean.json", "--runs", tmp_path / "ensemble")
    assert ensemble.returncode == 0, ensemble.stderr[-3000:]
    assert "(the first of 2 averaged fits)" in ensemble.stderr, "the kept epoch is one member's, and says so"
    (ensemble_run,) = (tmp_path / "ensemble").iterdir()
    ensemble_card = json.loads((ensemble_run / "fire_classifier.json").read_text())
    members = ensemble_card["training"]["fitted_elsewhere"]
    assert members["ensemble_of"] == 2 and [m["settings"]["seed"] for m in members["members"]] == [1, 2]
    assert members["members"][0] == card["training"]["fitted_elsewhere"], "the served run lent its fit unchanged"
    assert ensemble_card["parameters"] == 2 * card["parameters"]
    assert ensemble_card["metrics"]["leave_one_source_out"]["recipe"].endswith("(mean of 2 fits)")
    served = LiteRTModel(ensemble_run / "fire_classifier.tflite")
    assert list(served.map_grid) == ensemble_card["fire_map"]["grid"], "the ensemble serves its fire map too"
    nested = train(*same, "--trained", ensemble_run, fits / "small-s2-all", "--runs", tmp_path / "runs")
    assert nested.returncode != 0 and "already the mean of 2 fits: give those fits' folders" in nested.stderr
    assert "cascade" not in ensemble_card or ensemble_card["cascade"] is None, "a cascade only from a report that measured one"

    # The same two fits served as a cascade: the report's rows (as --cascade writes them) choose the order and margin.
    (recipe_m, figures_m), = json.loads((tmp_path / "mean.json").read_text()).items()
    row = {"photos": 9, "macro_balanced_accuracy": 1.0, "roc_auc": 1.0}
    figures_m["cascade"] = [{**row, "first": 2, "second": 1, "margin": 0.25, "second_fit_share": 0.4, "verdicts_unlike_the_mean": 0},
                            {**row, "first": 2, "second": 1, "margin": 0.1, "second_fit_share": 0.2, "verdicts_unlike_the_mean": 1},
                            {**row, "first": 1, "second": 2, "margin": 0.3, "second_fit_share": 0.5, "verdicts_unlike_the_mean": 0}]
    (tmp_path / "cascade.json").write_text(json.dumps({recipe_m: figures_m}))
    cascaded = train(*same, "--trained", *both, "--loso", tmp_path / "cascade.json", "--runs", tmp_path / "cascaded")
    assert cascaded.returncode == 0, cascaded.stderr[-3000:]
    assert "served as a cascade: seed 2's fit alone, and the mean of both within 0.25" in cascaded.stderr
    (cascade_run,) = (tmp_path / "cascaded").iterdir()
    cascade_card = json.loads((cascade_run / "fire_classifier.json").read_text())
    plan = cascade_card["cascade"]
    assert plan["margin"] == 0.25 and plan["first"] == {"member": 1, "seed": 2} and plan["second"] == {"member": 0, "seed": 1}
    assert 0 <= plan["validation_second_fit_share"] <= 1 and "no out-of-fold verdict differed" in plan["rule"]
    classifier = Classifier.load(cascade_run / "fire_classifier.tflite")
    assert isinstance(classifier.predictor, Cascade) and classifier.predictor.margin == 0.25
    assert runs.check_complete(cascade_run).cascade == plan, "promote's checks read the cascade and find its signatures"
    other_seeds = json.loads((tmp_path / "cascade.json").read_text())
    for cascade_row in other_seeds[recipe_m]["cascade"]:
        cascade_row["first"] = 3
    (tmp_path / "other-seeds.json").write_text(json.dumps(other_seeds))
    wrong_seeds = train(*same, "--trained", *both, "--loso", tmp_path / "other-seeds.json", "--runs", tmp_path / "runs")
    assert wrong_seeds.returncode != 0 and "measured a cascade of seeds 3 and 1, but this run serves seeds 1 and 2" in wrong_seeds.stderr


def test_loso_refuses_folders_without_a_held_out_source(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / accelerated.RUN).write_text(json.dumps({"settings": {"holdout": [], "width": 1.0}}))
    (folder / accelerated.SCORES).write_text(json.dumps({"columns": ["sha256", "source", "label", "split", "probability", "flip_averaged"],
                                                          "rows": []}))
    done = run_module("training.loso", folder)
    assert done.returncode == 1 and "no fold with a held-out source" in done.stderr
    broken = run_module("training.loso", tmp_path / "missing")
    assert broken.returncode == 1 and "not a finished fold folder" in broken.stderr
    (folder / accelerated.RUN).write_text(json.dumps({"settings": {"holdout": ["weather"], "width": 1.0}, "scored_on": "x"}))
    damaged = run_module("training.loso", folder)
    assert damaged.returncode == 1 and "not a finished fold folder" in damaged.stderr and "Traceback" not in damaged.stderr
    (tmp_path / "two.json").write_text(json.dumps({"a": {}, "b": {}}))
    with pytest.raises(SystemExit, match="not a report of one recipe"):
        loso.one_recipe(tmp_path / "two.json")


@pytest.mark.parametrize("command", [("training",), ("training.accelerated", "one", "x.pack.npz", "--out", "x")])
@pytest.mark.parametrize("option", ["--mix-probability", "--white-balance-probability", "--decoy-probability",
                                    "--grayscale-probability"])
def test_a_share_of_photos_outside_0_to_1_is_a_usage_error(command, option):
    """``--decoy-probability 30`` (meant as 30 %) would otherwise give every photo a decoy without a word."""
    done = run_module(*command, option, "30")
    assert done.returncode == 2 and "a probability is between 0 and 1, got 30" in done.stderr


@pytest.mark.parametrize("command", [("training",), ("training.accelerated", "one", "x.pack.npz", "--out", "x")])
@pytest.mark.parametrize("value", ["0.1", "1.5", "nan"])
def test_a_crop_scale_outside_a_quarter_to_the_whole_side_is_a_usage_error(command, value):
    done = run_module(*command, "--crop-scale", value)
    assert done.returncode == 2 and f"a crop scale is from 0.25 to 1, got {value}" in done.stderr


@pytest.mark.parametrize("command", [("training",), ("training.pack", "x.pack.npz")])
@pytest.mark.parametrize("side", ["16000", "8", "1.5"])
def test_an_image_side_out_of_range_is_a_usage_error(command, side):
    """A typed 16000 would decode every photo to 768 MB before the fit fails; 8 px is below what the network halves."""
    done = run_module(*command, "--image-size", side)
    assert done.returncode == 2 and ("from 32 to 1024 pixels" in done.stderr or "not a whole number" in done.stderr)
    assert ("not a whole number: '1.5'" in done.stderr) == (side == "1.5")


@pytest.mark.parametrize("command", [("training",), ("training.accelerated", "one", "x.pack.npz", "--out", "x")])
@pytest.mark.parametrize("width", ["20", "0.1"])
def test_a_network_width_out_of_range_is_a_usage_error(command, width):
    """--width 20, meant as 2.0, builds a network of 200 M parameters that fails only once memory runs out."""
    done = run_module(*command, "--width", width)
    assert done.returncode == 2 and f"a network width is from 0.25 to 8, got {width}" in done.stderr


@pytest.mark.parametrize("command", [("training",), ("training.accelerated", "one", "x.pack.npz", "--out", "x")])
@pytest.mark.parametrize("momentum", ["1", "0", "99", "nan"])
def test_a_batch_norm_momentum_outside_0_to_1_is_a_usage_error(command, momentum):
    """1 would serve the untrained network's statistics; 99 was meant as 0.99."""
    done = run_module(*command, "--bn-momentum", momentum)
    assert done.returncode == 2 and f"a batch-norm momentum is over 0 and under 1, got {momentum}" in done.stderr


def test_the_batch_norm_momentum_reaches_every_batch_norm_layer_of_either_backbone():
    import keras

    from training import backbones

    for model in (backbones.build("compact", 32, None, width=0.25, bn_momentum=0.9),
                  backbones.build("xception", 71, None, bn_momentum=0.9)):
        norms = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
        assert len(norms) > 10 and {layer.momentum for layer in norms} == {0.9}, model.name
    default = backbones.build("compact", 32, None, width=0.25)
    assert {layer.momentum for layer in default._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)} == {0.99}


def test_the_batch_norm_momentum_changes_what_is_validated_not_the_steps_taken():
    """It sets how fast the statistics used outside training follow the batches: the training losses are the same, the
    validation differs (here, after 6 steps, 0.99 still validates with 94 % of the untrained statistics)."""
    import keras

    from training import backbones

    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, 64).astype(np.float32)
    photos = np.clip(rng.normal(100, 40, (64, 32, 32, 3)) + labels[:, None, None, None] * [60, 0, -60], 0, 255).astype(np.uint8)
    histories = {}
    for momentum in (0.99, 0.5):
        keras.utils.set_random_seed(3)
        schedule = fitting.Schedule(epochs=2, patience=2, batch_size=8, seed=3,
                                    recipe=fitting.augment.Recipe(mix_probability=0.0, white_balance_probability=0.0))
        model = fitting.compile_model(backbones.compact(32, width=0.25, bn_momentum=momentum), schedule)
        histories[momentum] = fitting.fit(model, photos[:48], labels[:48], photos[48:], labels[48:], schedule, log=lambda _: None).history
    assert histories[0.5]["loss"] == pytest.approx(histories[0.99]["loss"], rel=1e-5), "the same steps either way"
    assert histories[0.5]["val_loss"] != pytest.approx(histories[0.99]["val_loss"], rel=1e-3), "other statistics validated"


@pytest.mark.parametrize("command", [("training",), ("training.accelerated", "one", "x.pack.npz", "--out", "x")])
@pytest.mark.parametrize("momentum", ["1", "0.2", "99"])
def test_a_moving_average_that_would_not_average_is_a_usage_error(command, momentum):
    """1 never leaves the first weights, 0.2 is the last step's weights, 99 was meant as 0.99."""
    done = run_module(*command, "--ema", momentum)
    assert done.returncode == 2 and f"0 (off) or from 0.5 to under 1, got {momentum}" in done.stderr


def _fake_fold(folder: Path, seed: int, held_out: str = "weather", held: float = 0.3, photo: str = "c") -> Path:
    folder.mkdir()
    settings = {"holdout": [held_out], "width": 1.0, "seed": seed}
    (folder / accelerated.RUN).write_text(json.dumps({"settings": settings}))
    rows = [["a", "forest/fire", 1, "val", 0.9, 0.9], ["b", "forest/nofire", 0, "val", 0.1, 0.1],
            [photo, f"{held_out}/nofire", 0, "held", held, held]]
    (folder / accelerated.SCORES).write_text(json.dumps({"columns": ["sha256", "source", "label", "split", "probability",
                                                                     "flip_averaged"], "rows": rows}))
    return folder


def test_loso_keeps_two_seeds_apart_and_refuses_the_same_fold_twice(tmp_path):
    """Two seeds of one recipe are two results (pooled, the second fold would silently replace the first)."""
    one, other = _fake_fold(tmp_path / "s1", seed=1), _fake_fold(tmp_path / "s2", seed=2)
    done = run_module("training.loso", one, other, "--json", tmp_path / "r.json")
    assert done.returncode == 0, done.stderr
    assert sorted(recipe.split("seed=")[1].split()[0] for recipe in json.loads((tmp_path / "r.json").read_text())) == ["1", "2"]
    twice = run_module("training.loso", one, _fake_fold(tmp_path / "copy", seed=1))
    assert twice.returncode == 1 and "holds out weather again" in twice.stderr


@pytest.mark.parametrize("twice", [("--seeds", "1", "1"), ("--folds", "weather", "weather")])
def test_a_grid_that_would_fit_one_folder_twice_is_refused_before_it_starts(tmp_path, twice):
    done = run_module("training.accelerated", "grid", tmp_path / "missing.pack.npz", "--out", tmp_path / "fits",
                      "--variant", "t:--width 1.0", *twice)
    assert done.returncode == 1 and "would be fitted twice" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "fits").exists()


def test_a_grid_skips_fits_that_could_not_start_before_its_deadline(tmp_path):
    """A fit started after the deadline would stop after one epoch and look like a result: it is not started."""
    fits = tmp_path / "fits"
    done = run_module("training.accelerated", "grid", tmp_path / "missing.pack.npz", "--out", fits, "--variant",
                      "t:--width 1.0", "--folds", "all", "weather", "--parallel", "1", "--minutes", "0")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "2 fits, 1 at a time" in done.stderr and "not fitted, the deadline came first: t-all, t-weather" in done.stderr
    assert json.loads((fits / "grid.json").read_text()) == {
        name: {"exit": None, "skipped": "not started before the deadline"} for name in ("t-all", "t-weather")}
    assert not [p for p in fits.iterdir() if p.is_dir()], "no folder that looks like a fit"


def test_loso_reports_several_seeds_as_their_ensemble_on_request(tmp_path):
    """The mean of the seeds' probabilities, photo by photo: what serving those fits averaged would compute."""
    folders = [_fake_fold(tmp_path / f"s{seed}-{source}", seed, source, held=held)
               for seed, held in ((1, 0.2), (2, 0.6)) for source in ("weather", "houses")]
    folds = [loso.read_fold(folder, "probability") for folder in folders]
    (recipe, ensemble), = loso.seed_ensembles(folds).items()
    assert recipe.endswith("seeds=1+2 (mean of 2 fits)") and "seed=" not in recipe
    assert sorted(f.held_out[0] for f in ensemble) == ["houses", "weather"]
    assert all(np.allclose(f.held[2], [0.4]) and np.allclose(f.val[2], [0.9, 0.1]) for f in ensemble)
    assert loso.seed_ensembles(folds[:2]) == {}, "one seed is no ensemble"

    assert loso.fits_averaged(recipe) == 2 and loso.fits_averaged(folds[0].recipe) == 1

    done = run_module("training.loso", *folders, "--seeds", "both", "--json", tmp_path / "r.json")
    assert done.returncode == 0, done.stderr
    assert "(mean of 2 fits)" in done.stdout and len(json.loads((tmp_path / "r.json").read_text())) == 3
    assert "(mean of" not in run_module("training.loso", *folders).stdout, "only on request"
    mean = run_module("training.loso", *folders, "--seeds", "mean", "--json", tmp_path / "m.json")
    assert mean.returncode == 0 and list(json.loads((tmp_path / "m.json").read_text())) == [recipe], "one report for --loso"

    other_photos = _fake_fold(tmp_path / "s3-weather", 3, "weather", photo="d")
    only_weather = [folders[0], folders[2], other_photos]
    mismatch = run_module("training.loso", *only_weather, "--seeds", "mean")
    assert mismatch.returncode == 1 and "scored different photos" in mismatch.stderr and "Traceback" not in mismatch.stderr


def _figures(held_out: tuple[str, ...], balanced: float, auc: float | None = 0.9) -> dict:
    return {"folds": {source: {} for source in held_out},
            "out_of_fold": {"macro_balanced_accuracy": balanced, "roc_auc": auc, "threshold": 0.6}}


def test_a_fit_at_the_default_batch_norm_momentum_is_named_as_fits_from_before_the_option():
    base = {"holdout": ["houses"], "width": 1.0, "seed": 1}
    before = loso.fit_settings({"settings": base})
    assert loso.fit_settings({"settings": {**base, "bn_momentum": 0.99}}) == before
    assert loso.fit_settings({"settings": {**base, "bn_momentum": 0.9}}) == {**before, "bn_momentum": 0.9}


def test_fits_of_another_photo_size_are_another_recipe_and_the_served_size_is_named_as_before():
    base = {"holdout": ["houses"], "width": 1.0, "seed": 1}
    before = loso.fit_settings({"settings": base})
    assert loso.fit_settings({"settings": base, "image_size": 160}) == before
    assert loso.fit_settings({"settings": base, "image_size": 96}) == {**before, "image_size": 96}


def test_a_fit_at_the_default_crop_scale_is_named_as_fits_from_before_the_option():
    base = {"holdout": ["houses"], "width": 1.0, "seed": 1}
    before = loso.fit_settings({"settings": base})
    assert loso.fit_settings({"settings": {**base, "crop_scale": 0.7}}) == before
    assert loso.fit_settings({"settings": {**base, "crop_scale": 0.4}}) == {**before, "crop_scale": 0.4}
    assert loso.UNNAMED_MEANS["crop_scale"] == "0.7"


def test_loso_ranks_recipes_by_their_out_of_fold_figures_and_only_against_the_same_folds(tmp_path):
    """A grid of many recipes ends with which is best, named by what sets each apart; a recipe missing a fold pooled
    other photos, so it is ranked apart (here its figure would have come first)."""
    four = ("fire-dataset", "forest-fire", "houses", "weather")
    report = {
        "decoy_probability=0.0 seed=1 width=1.0": _figures(four, 0.85),
        "decoy_probability=0.0 ema=0.99 seed=1 width=1.0": _figures(four, 0.91),
        "decoy_probability=0.0 seeds=1+2 width=1.0 (mean of 2 fits)": _figures(four, 0.88, auc=None),
        "decoy_probability=0.0 seed=1 width=2.0": _figures(four[1:], 0.99),
    }
    lines = loso.ranking(report).splitlines()
    assert lines[1].startswith("  held out fire-dataset, forest-fire, houses, weather (3 of 4 recipes")
    assert [line.split()[1] for line in lines[2:5]] == ["0.9100", "0.8800", "0.8500"]
    assert lines[2].endswith("ema=0.99 seed=1 width=1.0") and lines[4].endswith("ema=0 seed=1 width=1.0")
    assert lines[3].endswith("ema=0 seeds=1+2 width=1.0") and "ROC AUC None" in lines[3]
    assert "decoy_probability" not in "".join(lines), "a setting every recipe shares names none of them"
    assert lines[5].startswith("  held out forest-fire, houses, weather (1 of 4") and lines[6].split()[1] == "0.9900"

    folders = [_fake_fold(tmp_path / f"s{seed}", seed, held=held) for seed, held in ((1, 0.2), (2, 0.95))]
    done = run_module("training.loso", *folders)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("ranked by out-of-fold macro balanced accuracy")[1].count("seed=") == 2
    assert "ranked by" not in run_module("training.loso", folders[0]).stdout, "one recipe: nothing to rank"


def test_an_ensemble_with_flip_averaging_is_a_usage_error(tmp_path):
    done = run_module("training", "--trained", tmp_path / "a", tmp_path / "b", "--tta", "flip", "--runs", tmp_path / "runs")
    assert done.returncode == 1 and "an ensemble is served without flip averaging" in done.stderr
    assert not (tmp_path / "runs").exists(), "refused before anything is written"


def _held_fold(seed: int, probs: list[float], labels: list[int]) -> loso.Fold:
    samples = [loso.Scored("weather/nofire" if not y else "forest/fire", y) for y in labels]
    return loso.Fold("r", ["weather"], ([], np.zeros(0), np.zeros(0)), (samples, np.asarray(labels, np.float32),
                     np.asarray(probs, np.float32)), seed)


def test_a_cascade_runs_the_second_fit_only_near_the_threshold_and_counts_what_that_changes():
    labels = [1, 0, 0, 1]
    by_fold = [{1: _held_fold(1, [0.9, 0.55, 0.1, 0.45], labels), 2: _held_fold(2, [0.8, 0.2, 0.1, 0.9], labels)}]
    rows = {(r["first"], r["margin"]): r for r in loso.cascade([1, 2], by_fold, 0.5, margins=(0.05, 0.1))}
    # Seed 1 first: within 0.1 of 0.5 are 0.55 and 0.45, scored by the mean (0.375, 0.675): the mean's verdicts.
    assert rows[(1, 0.1)]["second_fit_share"] == 0.5 and rows[(1, 0.1)]["verdicts_unlike_the_mean"] == 0
    assert rows[(1, 0.1)]["macro_balanced_accuracy"] == 1.0
    # Within 0.05, none: seed 1 alone calls 0.55 fire and 0.45 not, unlike the mean both times.
    assert rows[(1, 0.05)]["second_fit_share"] == 0 and rows[(1, 0.05)]["verdicts_unlike_the_mean"] == 2
    assert rows[(1, 0.05)]["macro_balanced_accuracy"] == 0.5 and rows[(1, 0.05)]["photos"] == 4
    # Seed 2 first is clear on every photo and agrees with the mean without the second fit.
    assert rows[(2, 0.1)]["second_fit_share"] == 0 and rows[(2, 0.1)]["verdicts_unlike_the_mean"] == 0
    assert loso.cascade([1, 2, 3], by_fold, 0.5) == [], "a cascade of two fits only"


def test_a_cascade_counts_the_wrong_verdicts_it_makes_look_clear():
    # A fire-free photo: one fit sure of fire (0.95), the other sure of none (0.1). Their mean, 0.525, is wrong but
    # borderline; the first fit alone is just as wrong and looks clear. The band at 0.5 is 0.25 < p < 0.75.
    labels = [0, 1]
    by_fold = [{1: _held_fold(1, [0.95, 0.9], labels), 2: _held_fold(2, [0.1, 0.9], labels)}]
    rows = {(r["first"], r["margin"]): r for r in loso.cascade([1, 2], by_fold, 0.5, margins=(0.1, 0.5))}
    assert rows[(1, 0.1)]["clear_but_wrong"] == 1 and rows[(1, 0.1)]["clear_but_wrong_as_the_mean"] == 0
    assert rows[(1, 0.5)]["clear_but_wrong"] == 0, "within the margin the mean scores it: wrong, but borderline"
    assert rows[(2, 0.1)]["clear_but_wrong"] == 0 and rows[(2, 0.1)]["verdicts_unlike_the_mean"] == 1


def test_loso_reports_a_cascade_only_for_an_ensemble(tmp_path):
    folders = [_fake_fold(tmp_path / f"s{seed}-{source}", seed, source, held=held)
               for seed, held in ((1, 0.2), (2, 0.6)) for source in ("weather", "houses")]
    done = run_module("training.loso", *folders, "--seeds", "mean", "--cascade", "--json", tmp_path / "r.json")
    assert done.returncode == 0, done.stderr
    assert "seed 1 first, margin 0.20: second fit on" in done.stdout and "seed 2 first" in done.stdout
    assert "wrong verdicts clear (the mean: " in done.stdout
    (figures,) = json.loads((tmp_path / "r.json").read_text()).values()
    assert len(figures["cascade"]) == 2 * len(loso.CASCADE_MARGINS)
    apart = run_module("training.loso", *folders, "--cascade")
    assert apart.returncode == 2 and "--cascade needs --seeds mean or both" in apart.stderr


def _telling_photos_apart(model, images):
    """The network with weights that give these photos different probabilities. A fit of one epoch leaves batch
    normalisation's running statistics near their start, where activations fade to nothing and every photo scores
    alike; here each layer is normalised by what it sees on these photos, and the head is random."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            seen = keras.Model(model.inputs, layer.input).predict(images, verbose=0)
            gamma, beta, _, _ = layer.get_weights()
            layer.set_weights([gamma, beta, seen.mean(axis=(0, 1, 2)), seen.var(axis=(0, 1, 2)) + 1e-3])
    head = model.get_layer("fire_probability")
    kernel, bias = head.get_weights()
    head.set_weights([np.random.default_rng(3).normal(0, 0.5, kernel.shape), bias])
    return model


@pytest.mark.timeout(300)
def test_rescore_scores_a_fit_again_on_the_exact_decodes_and_loso_never_pools_the_two_kinds(tmp_path, datasets):
    """A fit scores its pack's WebP photos; its rescored copy holds what serving would give, the same photos in the
    same rows, and says so, so a report never mixes the two."""
    from inference import decode_image
    from training import backbones

    root = make_dataset(tmp_path / "data", datasets, per_class=8)
    folders = [root / "forest", root / "weather"]
    packed = tmp_path / "d.pack.npz"
    assert run_main(pack.main, packed, *folders, "--image-size", "32", "--val-fraction", "0.4").returncode == 0
    fit = tmp_path / "fits" / "t-weather"
    done = run_main(accelerated.main, "one", packed, "--out", fit, "--holdout", "weather", "--width", "1.0",
                    "--epochs", "1", "--batch-size", "8")
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads((fit / accelerated.SCORES).read_text())["rows"]
    by_hash = {hashlib.sha256(p.read_bytes()).hexdigest(): p for p in root.rglob("*.jpg")}
    exact = np.stack([decode_image(by_hash[r[0]].read_bytes(), (32, 32)) for r in rows]).astype(np.float32)
    model = _telling_photos_apart(backbones.compact(32, width=1.0), exact)
    model.save_weights(fit / accelerated.WEIGHTS)

    out = tmp_path / "exact"
    done = run_main(rescore.main, fit, "--out", out, "--data", *folders)
    assert done.returncode == 0, done.stderr[-2000:]
    copy = out / fit.name
    assert "probabilities moved" in done.stderr and not (out / (fit.name + ".partial")).exists()
    before, after = (json.loads((f / accelerated.SCORES).read_text()) for f in (fit, copy))
    assert [r[:4] for r in after["rows"]] == [r[:4] for r in before["rows"]], "the same photos, labels and splits, in order"
    record = json.loads((copy / accelerated.RUN).read_text())
    assert record["scored_on"]["photos"] == "the exact decodes" and record["settings"] == json.loads((fit / accelerated.RUN).read_text())["settings"]
    assert (copy / accelerated.WEIGHTS).read_bytes() == (fit / accelerated.WEIGHTS).read_bytes()
    # Each probability is the fit's weights on the photo as the core decodes it, not on the pack's WebP copy.
    rescored = np.array([r[4] for r in after["rows"]])
    assert np.allclose(rescored, model.predict(exact, verbose=0).reshape(-1), atol=1e-5)
    assert np.allclose([r[5] for r in after["rows"]], (rescored + model.predict(exact[:, :, ::-1], verbose=0).reshape(-1)) / 2, atol=1e-5)
    stored = pack.read(packed)
    index = {h: i for i, h in enumerate(stored.sha256)}
    webp = stored.images[[index[r[0]] for r in after["rows"]]].astype(np.float32)
    assert np.abs(webp - exact).mean() > 0.1, "the pack stores other pixels than the exact decode"
    assert not np.allclose(rescored, model.predict(webp, verbose=0).reshape(-1), atol=1e-5), "which score otherwise"

    report = tmp_path / "r.json"
    done = run_main(loso.main, copy, "--json", report)
    assert done.returncode == 0 and "scored on the exact decodes" in done.stdout, done.stderr
    assert [f["scored_on"] for f in json.loads(report.read_text()).values()] == ["the exact decodes"]
    assert "scored on the pack's photos" in run_main(loso.main, fit).stdout
    mixed = run_main(loso.main, copy, _fake_fold(tmp_path / "other", seed=9))
    assert mixed.returncode == 1 and "some on the exact decodes" in mixed.stderr

    # A retry after a failure part way through keeps the copies already made and makes the rest.
    second = shutil.copytree(fit, tmp_path / "fits" / "t-second")
    (second / accelerated.WEIGHTS).write_bytes((fit / accelerated.WEIGHTS).read_bytes()[:500])
    failed = run_main(rescore.main, fit, second, "--out", tmp_path / "retry", "--data", *folders)
    assert failed.returncode == 1 and "does not fit the model" in failed.stderr and "Traceback" not in failed.stderr
    assert (tmp_path / "retry" / fit.name).is_dir() and not (tmp_path / "retry" / second.name).exists()
    shutil.copy(fit / accelerated.WEIGHTS, second / accelerated.WEIGHTS)
    retried = run_main(rescore.main, fit, second, "--out", tmp_path / "retry", "--data", *folders)
    assert retried.returncode == 0 and f"{fit.name}: rescored before, kept" in retried.stderr, retried.stderr[-2000:]
    assert json.loads((tmp_path / "retry" / second.name / accelerated.SCORES).read_text())["rows"] == after["rows"]
    clash = shutil.copytree(fit, tmp_path / "elsewhere" / fit.name)
    again = run_main(rescore.main, clash, "--out", out, "--data", *folders)
    assert again.returncode == 1 and "already exists and is not this fit's" in again.stderr, "another fit's copy is never overwritten"
    twice = run_main(rescore.main, copy, "--out", tmp_path / "twice", "--data", *folders)
    assert twice.returncode == 1 and "already rescored" in twice.stderr
    odd = shutil.copytree(copy, tmp_path / "odd" / "t-weather")
    (odd / accelerated.RUN).write_text(json.dumps({**record, "scored_on": "x"}))
    damaged = run_main(rescore.main, odd, "--out", tmp_path / "z", "--data", *folders)
    assert damaged.returncode == 1 and "not a finished" in damaged.stderr and "Traceback" not in damaged.stderr
    huge = shutil.copytree(fit, tmp_path / "huge" / "t-weather")  # each photo would be decoded to 768 MB
    (huge / accelerated.RUN).write_text(json.dumps({**json.loads((fit / accelerated.RUN).read_text()), "image_size": 16000}))
    too_large = run_main(rescore.main, huge, "--out", tmp_path / "z", "--data", *folders)
    assert too_large.returncode == 1 and "image size 16000 is not from 32 to 1024 pixels" in too_large.stderr
    (huge / accelerated.RUN).write_text(json.dumps({**json.loads((fit / accelerated.RUN).read_text()), "settings": {"width": 200.0}}))
    too_wide = run_main(rescore.main, huge, "--out", tmp_path / "z", "--data", *folders)
    assert too_wide.returncode == 1 and "width 200.0 is not from 0.25 to 8" in too_wide.stderr
    elsewhere = run_main(rescore.main, fit, "--out", tmp_path / "x", "--data", root / "forest")
    assert elsewhere.returncode == 1 and "scored photos are not in the data folders" in elsewhere.stderr
    assert not (tmp_path / "x" / fit.name).exists()
    (fit / accelerated.WEIGHTS).unlink()
    no_weights = run_main(rescore.main, fit, "--out", tmp_path / "y", "--data", *folders)
    assert no_weights.returncode == 1 and "no model.weights.h5" in no_weights.stderr and "Traceback" not in no_weights.stderr


def test_loso_says_when_the_held_out_photos_are_all_of_one_class(tmp_path):
    """Out of fold, one threshold is chosen on the pooled held-out photos; with no fire among them (a grid of the
    `houses` fold alone) the highest threshold wins and its figures mean nothing, which the report must say."""
    rooms = [_fake_fold(tmp_path / f"s{seed}", seed=seed, held_out="houses") for seed in (1, 2)]
    done = run_module("training.loso", *rooms)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("every held-out photo is fire-free") == 2 and done.stdout.count("(one class held out") == 2
    fires = _fake_fold(tmp_path / "fires", seed=3, held_out="forest")
    rows = json.loads((fires / accelerated.SCORES).read_text())
    rows["rows"].append(["d", "forest/fire", 1, "held", 0.8, 0.8])
    (fires / accelerated.SCORES).write_text(json.dumps(rows))
    both = run_module("training.loso", fires)
    assert both.returncode == 0 and "every held-out photo" not in both.stdout, both.stderr
    assert loso.one_class({"per_source": {"a/fire": {"images": 2, "fire_recall": 1.0}}}) == "a fire"
