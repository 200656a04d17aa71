"""Exact batch-norm statistics for a fit's final weights (``fitting.exact_batch_norm_statistics``) and the command
that gives fit folders them (``training.recalibrate``)."""

from __future__ import annotations

import json
import shutil

import keras
import numpy as np
import pytest

from tests.training.test_training import make_dataset
from training import accelerated, backbones, fitting, loso, pack, recalibrate, rescore


def _batches(photos, labels, schedule, epochs):
    batches = fitting.TrainingBatches(photos, labels, schedule)
    for _ in range(epochs):
        for index in range(len(batches)):
            yield batches.batch(index)[0]
        batches.on_epoch_end()


def test_exact_statistics_are_the_mean_of_the_batch_statistics_and_change_no_weight():
    rng = np.random.default_rng(0)
    photos = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(40) % 2
    schedule = fitting.Schedule(batch_size=8, seed=5)
    model = backbones.compact(32, width=0.25)
    layers = fitting.batch_norm_layers(model)
    trained = [w.numpy() for w in model.trainable_weights]

    seen = fitting.exact_batch_norm_statistics(model, fitting.TrainingBatches(photos, labels, schedule), epochs=2)

    assert seen == 10 and len(layers) == 15
    # The first layer's input depends on no batch norm, so its exact statistics can be computed apart: the plain
    # mean of each batch's channel means and variances, over the same augmented batches.
    stem = keras.Model(model.inputs, layers[0].input)
    seen_by_it = [stem(x).numpy() for x in _batches(photos, labels, schedule, epochs=2)]
    assert np.allclose(layers[0].moving_mean.numpy(), np.mean([s.mean(axis=(0, 1, 2)) for s in seen_by_it], axis=0), atol=1e-5)
    assert np.allclose(layers[0].moving_variance.numpy(), np.mean([s.var(axis=(0, 1, 2)) for s in seen_by_it], axis=0),
                       rtol=1e-4, atol=1e-6)
    assert all(not np.allclose(layer.moving_variance.numpy(), 1.0) for layer in layers), "every layer, not only the first"
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(trained, model.trainable_weights)), "no weight is trained"
    assert {layer.momentum for layer in layers} == {0.99}, "the layers' own momentum is given back"


def test_a_nested_backbone_s_batch_norm_layers_are_found():
    inner = backbones.compact(32, width=0.25)
    outer = keras.Sequential([keras.Input((32, 32, 3)), inner])
    assert fitting.batch_norm_layers(outer) == fitting.batch_norm_layers(inner) != []


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, datasets):
    """One tiny fit of one epoch (its running statistics lag far behind its weights), with its pack."""
    tmp_path = tmp_path_factory.mktemp("recalibrate")
    root = make_dataset(tmp_path / "data", datasets, per_class=8)
    packed = tmp_path / "d.pack.npz"
    # In this process, not as commands: the test run saves two TensorFlow imports.
    assert pack.main([str(packed), str(root / "forest"), str(root / "weather"), "--image-size", "32", "--val-fraction", "0.4"]) == 0
    fit = tmp_path / "fits" / "t-weather"
    assert accelerated.main(["one", str(packed), "--out", str(fit), "--holdout", "weather", "--width", "1.0", "--epochs", "1",
                             "--batch-size", "8"]) == 0
    return fit, packed


@pytest.mark.timeout(300)
def test_a_recalibrated_copy_has_exact_statistics_new_scores_and_is_a_recipe_of_its_own(tmp_path, fitted, capsys):
    fit, packed = fitted
    out = tmp_path / "exact"
    assert recalibrate.main([str(fit), "--out", str(out), "--epochs", "1"]) == 0
    copy = out / fit.name
    assert "statistics of 1 batches" in capsys.readouterr().err and not (out / (fit.name + ".partial")).exists()

    record, original = (json.loads((f / accelerated.RUN).read_text()) for f in (copy, fit))
    assert record["settings"] == {**original["settings"], "bn_statistics": "exact"}
    assert record["recalibrated"]["from"] == str(fit) and record["recalibrated"]["batches"] == 1
    assert (copy / accelerated.HISTORY).read_bytes() == (fit / accelerated.HISTORY).read_bytes()
    model, before = backbones.compact(32, width=1.0), backbones.compact(32, width=1.0)
    model.load_weights(copy / accelerated.WEIGHTS)
    before.load_weights(fit / accelerated.WEIGHTS)
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(model.trainable_weights, before.trainable_weights))
    assert all(not np.allclose(a.moving_mean.numpy(), b.moving_mean.numpy())
               for a, b in zip(fitting.batch_norm_layers(model), fitting.batch_norm_layers(before)))

    # The same photos in the same rows, each scored by the new weights on its pack image.
    old, new = (json.loads((f / accelerated.SCORES).read_text())["rows"] for f in (fit, copy))
    assert [r[:4] for r in new] == [r[:4] for r in old]
    stored = pack.read(packed)
    index = {h: i for i, h in enumerate(stored.sha256)}
    images = stored.images[[index[r[0]] for r in new]].astype(np.float32)
    assert np.allclose([r[4] for r in new], model.predict(images, verbose=0).reshape(-1), atol=1e-5)
    assert not np.allclose([r[4] for r in new], [r[4] for r in old], atol=1e-3), "a one-epoch fit's statistics lagged"

    # Reported beside the fit as another recipe, never pooled with it.
    report = tmp_path / "r.json"
    assert loso.main([str(fit), str(copy), "--json", str(report)]) == 0
    assert sorted(" bn_statistics=exact " in f" {name} " for name in json.loads(report.read_text())) == [False, True]
    ranked = capsys.readouterr().out.split("ranked by")[1]
    assert "bn_statistics=exact" in ranked and "bn_statistics=running" in ranked, ranked


@pytest.mark.timeout(300)
def test_recalibrate_refuses_what_it_cannot_do_and_a_retry_keeps_what_it_made(tmp_path, fitted, capsys):
    fit, packed = fitted

    def refused(*args) -> str:
        with pytest.raises(SystemExit) as stopped:
            recalibrate.main([*map(str, args)])
        assert stopped.value.code not in (0, None)
        return str(stopped.value.code) + capsys.readouterr().err

    out = tmp_path / "out"
    assert recalibrate.main([str(fit), "--out", str(out), "--epochs", "1"]) == 0
    assert "already exact" in refused(out / fit.name, "--out", tmp_path / "twice")
    rescored = shutil.copytree(fit, tmp_path / "rescored" / fit.name)
    record = json.loads((fit / accelerated.RUN).read_text())
    (rescored / accelerated.RUN).write_text(json.dumps({**record, "scored_on": {"photos": rescore.EXACT}}))
    assert "recalibrate the fit it was rescored from" in refused(rescored, "--out", tmp_path / "a")

    # A retry after a failure part way keeps the copies already made; another folder in the way is refused.
    second = shutil.copytree(fit, tmp_path / "fits" / "t-second")
    (second / accelerated.WEIGHTS).write_bytes((fit / accelerated.WEIGHTS).read_bytes()[:500])
    assert "does not fit the model" in refused(fit, second, "--out", out)
    shutil.copy(fit / accelerated.WEIGHTS, second / accelerated.WEIGHTS)
    assert recalibrate.main([str(fit), str(second), "--out", str(out), "--epochs", "1"]) == 0
    assert f"{fit.name}: recalibrated before, kept" in capsys.readouterr().err and (out / second.name).is_dir()
    refitted = backbones.compact(32, width=1.0)  # the fit made again since: its old copy is not kept as if current
    refitted.save_weights(second / accelerated.WEIGHTS)
    assert "is not this fit's recalibrated copy" in refused(second, "--out", out)
    clash = shutil.copytree(fit, tmp_path / "elsewhere" / fit.name)
    assert "already exists and is not this fit's recalibrated copy" in refused(clash, "--out", out)

    # The pack: where the fit says it was, holding the fit's training photos, at its size.
    moved = shutil.copytree(fit, tmp_path / "moved" / fit.name)
    (moved / accelerated.RUN).write_text(json.dumps({**record, "settings": {**record["settings"], "pack": "gone.pack.npz"}}))
    assert "give that pack with --pack" in refused(moved, "--out", tmp_path / "b")
    assert recalibrate.main([str(moved), "--out", str(tmp_path / "b"), "--pack", str(packed), "--epochs", "1"]) == 0
    other = tmp_path / "other.pack.npz"
    data = packed.parent / "data"
    assert pack.main([str(other), str(data / "forest"), str(data / "weather"), "--image-size", "32", "--val-fraction", "0.2"]) == 0
    assert "does not hold this fit's training photos" in refused(fit, "--out", tmp_path / "c", "--pack", other)
    larger = tmp_path / "larger.pack.npz"
    assert pack.main([str(larger), str(data / "forest"), str(data / "weather"), "--image-size", "40", "--val-fraction", "0.4"]) == 0
    assert "holds 40 px photos, the fit 32 px" in refused(fit, "--out", tmp_path / "d", "--pack", larger)
    assert "no pack at" in refused(fit, "--out", tmp_path / "e", "--pack", tmp_path)
    for damage in ({"batch_size": 10**9}, {"seed": "x"}, {"mix_probability": 3}, {"holdout": "weather"}, {"white_balance_strength": None},
                   {"seed": -1}, {"holdout": [3]}):
        (moved / accelerated.RUN).write_text(json.dumps({**record, "settings": {**record["settings"], **damage}}))
        assert "does not say how it was fitted" in refused(moved, "--out", tmp_path / "f"), damage
    (moved / accelerated.RUN).write_text(json.dumps({**record, "settings": {**record["settings"], "pack": str(packed)}}))
    table = json.loads((fit / accelerated.SCORES).read_text())
    (moved / accelerated.SCORES).write_text(json.dumps({**table, "rows": [[["x"], *table["rows"][0][1:]]]}))
    assert "its scores.json is damaged" in refused(moved, "--out", tmp_path / "g")
    assert not any((tmp_path / name).exists() for name in "acdefg")


@pytest.mark.slow  # a whole served run (export, plots) on top of the fit: make test-all
@pytest.mark.timeout(300)
def test_a_recalibrated_copy_is_served_like_any_fit_and_its_card_says_so(tmp_path, fitted):
    from tests.training.test_training import run_training

    fit, packed = fitted
    assert recalibrate.main([str(fit), "--out", str(tmp_path / "exact"), "--epochs", "1"]) == 0
    copy = tmp_path / "exact" / fit.name
    data = packed.parent / "data"
    done = run_training(data / "forest", data / "weather", "--image-size", "32", "--val-fraction", "0.4", "--batch-size", "8",
                        "--width", "1.0", "--holdout", "weather", "--trained", copy, "--runs", tmp_path / "runs")
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = (tmp_path / "runs").iterdir()
    card = json.loads((run / "fire_classifier.json").read_text())
    assert card["training"]["fitted_elsewhere"]["settings"]["bn_statistics"] == "exact"
    served = keras.models.load_model(run / card["files"]["keras"], compile=False)
    recalibrated = backbones.compact(32, width=1.0)
    recalibrated.load_weights(copy / accelerated.WEIGHTS)
    assert all(np.array_equal(a, b) for a, b in zip(served.get_weights(), recalibrated.get_weights())), "the copy's statistics"
