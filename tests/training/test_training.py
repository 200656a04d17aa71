"""Training pipeline: split rules on real files, a smoke run end to end, and the offline Xception path."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inference import Classifier, ModelCard
from tests.conftest import ROOT
from tests.training.in_process import run_main
from training import cli, data, intervals


def make_dataset(root: Path, datasets: Path, per_class: int) -> Path:
    """A tiny copy of the real data in two sources, with a duplicate to merge."""
    for source, fire, nofire in (("forest", "forest-fire/train/fire", "forest-fire/train/nofire"), ("weather", None, "weather/nofire")):
        for label, folder in (("fire", fire), ("nofire", nofire)):
            if folder is None:
                continue
            target = root / source / label
            target.mkdir(parents=True)
            for path in sorted((datasets / folder).glob("*.jpg"))[:per_class]:
                shutil.copy(path, target / path.name)
    first = next((root / "forest" / "fire").iterdir())
    shutil.copy(first, root / "forest" / "fire" / ("copy-of-" + first.name))
    return root


def test_duplicates_are_merged_and_never_straddle_the_split(tmp_path, datasets):
    root = make_dataset(tmp_path / "data", datasets, per_class=6)
    samples = data.discover([root / "forest", root / "weather"])
    assert len(samples) == 18, "the byte-identical copy is merged"
    assert {s.source for s in samples} == {"forest", "weather"}
    train, val = data.split(samples, 0.3, seed=7)
    assert not {s.sha256 for s in train} & {s.sha256 for s in val}
    assert data.split(samples, 0.3, seed=7) == (train, val), "deterministic"
    assert data.split(samples, 0.3, seed=8) != (train, val), "seeded"


def test_known_duplicate_pairs_of_the_shared_data_are_merged(datasets):
    samples = data.discover([datasets / "forest-fire"])
    names = {s.path.name for s in samples}
    for a, b in (("fire_0504.jpg", "fire_0505.jpg"), ("nofire_0462.jpg", "nofire_0463.jpg")):
        assert (a in names) != (b in names)


def test_conflicting_labels_are_dropped(tmp_path, datasets):
    photo = next((datasets / "forest-fire/train/fire").glob("*.jpg"))
    for label in ("fire", "nofire"):
        (tmp_path / "s" / label).mkdir(parents=True)
        shutil.copy(photo, tmp_path / "s" / label / photo.name)
    shutil.copy(next((datasets / "weather/nofire").glob("*.jpg")), tmp_path / "s" / "nofire" / "other.jpg")
    assert [s.path.name for s in data.discover([tmp_path / "s"])] == ["other.jpg"]


def test_a_label_correction_wins_over_the_folder_for_every_copy(tmp_path, datasets, monkeypatch):
    fire = next((datasets / "forest-fire/train/fire").glob("*.jpg"))
    for label, name in (("nofire", "filed-wrong.jpg"), ("fire", "copy.jpg")):
        (tmp_path / "s" / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(fire, tmp_path / "s" / label / name)
    shutil.copy(next((datasets / "weather/nofire").glob("*.jpg")), tmp_path / "s" / "nofire" / "other.jpg")
    digest = data.file_sha256(fire)
    assert [(s.path.name, s.label) for s in data.discover([tmp_path / "s"])] == [("other.jpg", 0)], "without it: a conflict, dropped"
    monkeypatch.setitem(data.LABEL_CORRECTIONS, digest, (1, "a fire filed under nofire"))
    samples = data.discover([tmp_path / "s"])
    assert sorted((s.path.name, s.label) for s in samples) == [("copy.jpg", 1), ("other.jpg", 0)], "the copies now agree: merged"
    assert data.corrections_applied(samples) == [], "the kept copy was filed right"
    (tmp_path / "s" / "fire" / "copy.jpg").unlink()
    samples = data.discover([tmp_path / "s"])
    assert [(s.path.name, s.label) for s in samples] == [("filed-wrong.jpg", 1), ("other.jpg", 0)]
    assert data.describe(samples) == {"s": {"fire": 1, "nofire": 1}}
    assert data.corrections_applied(samples) == [{"file": (tmp_path / "s" / "nofire" / "filed-wrong.jpg").as_posix(),
                                                   "sha256": digest, "label": "fire", "why": "a fire filed under nofire"}]


def test_the_known_label_error_of_the_shared_data_is_corrected(datasets):
    samples = data.discover([datasets / "fire-dataset"])
    (corrected,) = [s for s in samples if s.path.name == "non_fire.133.jpg"]
    assert corrected.label == 1 and corrected.path.parent.name == "nofire"
    assert data.describe(samples)["fire-dataset"] == {"fire": 718, "nofire": 243}
    assert [c["label"] for c in data.corrections_applied(samples)] == ["fire"]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_training(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "training", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def test_smoke_training_run_writes_a_servable_model_into_a_new_run_folder(tmp_path, datasets):
    root = make_dataset(tmp_path / "data", datasets, per_class=12)
    served = snapshot(ROOT / "models")
    done = run_training(root / "forest", root / "weather", "--epochs", "2", "--image-size", "48", "--val-fraction", "0.4",
                        "--width", "1.0", "--tta", "flip", "--runs", tmp_path / "runs")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "epoch 1/2" in done.stderr and "epoch 2/2" in done.stderr, "progress per epoch"
    (out,) = (tmp_path / "runs").iterdir()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d-\d{6}-[0-9a-f]{8}", out.name), out.name
    assert snapshot(ROOT / "models") == served, "training alone never touches the served model"
    assert f"python -m training promote {out}" in done.stderr
    # No TensorFlow noise: no C++ log lines, no tensor specs from the export, nothing at all on stdout.
    assert done.stdout == ""
    for noise in ("TensorSpec", "oneDNN", "absl::InitializeLog", "XNNPACK", "I0000", "UserWarning"):
        assert noise not in done.stderr, noise
    log = (out / "train.log").read_text()
    assert "epoch 2/2" in log and "TensorSpec" in log, "the run's log keeps the details"
    history = json.loads((out / "reports" / "history.json").read_text())
    assert len(history["val_auc"]) == 2
    for name in ("fire_classifier.keras", "fire_classifier.tflite", "fire_classifier.json", "fire_classifier.files.sha256"):
        assert (out / name).is_file(), name
    card = json.loads((out / "fire_classifier.json").read_text())
    assert card["input"]["width"] == 48 and 0 <= card["threshold"] <= 1
    assert card["training_data"]["train_images"] + card["training_data"]["validation_images"] == 36
    assert set(card["metrics"]["validation"]["per_source"]) == {"forest/fire", "forest/nofire", "weather/nofire"}
    formats = card["tflite_format"]
    assert set(formats["median_ms_1_thread"]) == set(formats["validation_max_abs_diff_vs_keras"]) == {"float32", "dynamic_range", "int8"}
    assert formats["validation_max_abs_diff_vs_keras"]["float32"] <= 1e-4 == formats["agreement_required"]["float32"]
    agreeing = [name for name, difference in formats["validation_max_abs_diff_vs_keras"].items()
                if name == "float32" or difference <= formats["agreement_required"][name]]
    assert formats["shipped"] == min(agreeing, key=formats["median_ms_1_thread"].get), "the fastest format that agrees with Keras"
    assert card["metrics"]["litert_vs_keras_max_abs_diff"] <= formats["agreement_required"][formats["shipped"]]
    assert card["training_command"].startswith("python -m training")
    for plot in card["reports"]["plots"]:
        assert (out / "reports" / plot).stat().st_size > 1000
    manifest = (out / "fire_classifier.files.sha256").read_text().splitlines()
    assert len(manifest) == 36 and all(line.split()[1] in ("train", "val") for line in manifest)
    prediction = Classifier.load(out / "fire_classifier.tflite").classify(next((root / "forest" / "fire").iterdir()).read_bytes())
    assert prediction.model_version == card["version"]
    assert list(card) == [f.name for f in dataclasses.fields(ModelCard) if f.name != "raw"], "the card type defines the keys"
    assert ModelCard.load(out / "fire_classifier.json").to_dict() == card, "what training writes reads back unchanged"
    assert card["training_data"]["label_corrections"] == [], "no photo of this copy needs one"
    assert {"held_out_sources", "credits"} <= set(card["training_data"]) and card["augmentation"]["mix_probability"] >= 0
    assert card["test_time_augmentation"].startswith("mean of the photo")
    assert card["fire_map"]["grid"] == [3, 3], "the map output: 48 px / 16"
    assert Classifier.load(out / "fire_classifier.tflite").map_grid == (3, 3)
    assert card["training"]["kept_epoch"] in (1, 2) and card["reports"]["folder"].endswith(f"{out.name}/reports")
    assert {"balanced_accuracy_ci95", "roc_auc_ci95"} <= set(card["metrics"]["validation"])
    # 24 photos barely teach anything: when the figures do not beat chance, the run says so loudly and so does the card.
    chance = intervals.chance_level_reasons(card["metrics"]["validation"])
    assert bool(chance) == ("NO BETTER THAN CHANCE" in done.stderr) == bool(card["metrics"].get("warnings"))


def test_the_training_tools_import_keras_quietly():
    """rescore, recalibrate and the rest reach Keras through training.fitting, backbones or fire_map: importing it must
    not print TensorFlow's start-up lines (oneDNN, CPU features) over the tool's own progress."""
    done = subprocess.run([sys.executable, "-c", "import training.fitting"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout == done.stderr == "", done.stderr[-2000:]
    import ast

    for module in (ROOT / "training").glob("*.py"):
        quieted = False
        for node in ast.parse(module.read_text()).body:
            call = node.value if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) else None
            if call is not None and ast.unparse(call.func) in ("quiet.import_keras", "quiet.import_tensorflow"):
                quieted = True
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) else [])
            if any(name.split(".")[0] in ("keras", "tensorflow") for name in names if name):
                assert quieted, f"{module.name}: imports {names[0]} at its top before quiet.import_keras()"


def test_training_uses_only_the_core_s_public_names():
    import ast

    import inference

    for module in (ROOT / "training").glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("inference"):
                assert node.module == "inference", f"{module.name} imports from {node.module}"
                assert {alias.name for alias in node.names} <= set(inference.__all__), module.name


def test_imagenet_weights_offline_fail_fast_with_a_clear_message(tmp_path, datasets):
    root = make_dataset(tmp_path / "data", datasets, per_class=4)
    # A closed local port stands in for "no internet", also on machines that have it.
    env = {**os.environ, "KERAS_HOME": str(tmp_path / "keras"), "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    done = run_training(root / "forest", "--backbone", "xception", "--weights", "imagenet", "--output", tmp_path / "out",
                        "--runs", tmp_path / "runs", env=env, timeout=120)
    assert done.returncode != 0
    assert "internet" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists(), "nothing written"


@pytest.mark.parametrize("args, message", [(["--val-fraction", "0.9"], "val-fraction"), (["/nonexistent/folder"], "not found")])
def test_bad_arguments_are_explained(args, message):
    done = run_training(*args, timeout=120)
    assert done.returncode != 0 and message in done.stderr


def test_resized_and_reencoded_copies_are_grouped_and_never_straddle_the_split(datasets):
    import io

    from PIL import Image

    photos = sorted((datasets / "forest-fire/train/fire").glob("*.jpg"))[:20]
    originals = [data.decode_image(p.read_bytes(), (96, 96)) for p in photos]
    # A near-twin: the first photo downscaled and saved again at a lower JPEG quality.
    buffer = io.BytesIO()
    Image.open(photos[0]).resize((180, 180)).save(buffer, "JPEG", quality=70)
    twin = data.decode_image(buffer.getvalue(), (96, 96))
    samples = [data.Sample(p, "s", 1, f"{i:064x}") for i, p in enumerate(photos)] + [data.Sample(photos[0], "s", 1, "f" * 64)]
    groups = data.near_duplicate_groups(samples, np.stack(originals + [twin]))
    assert groups["f" * 64] == groups[samples[0].sha256], "the re-encoded copy joins its original's group"
    assert len(set(groups.values())) >= 15, "different photos stay apart"
    for seed in range(5):
        train, val = data.split(samples, 0.5, seed, groups)
        sides = {s.sha256: "train" for s in train} | {s.sha256: "val" for s in val}
        assert sides["f" * 64] == sides[samples[0].sha256]


def test_hold_out_sets_whole_sources_aside_and_names_unknown_ones(tmp_path, datasets):
    root = make_dataset(tmp_path / "data", datasets, per_class=3)
    samples = data.discover([root / "forest", root / "weather"])
    kept, held = data.hold_out(samples, ["weather"])
    assert {s.source for s in held} == {"weather"} and {s.source for s in kept} == {"forest"}
    assert data.hold_out(samples, []) == (samples, [])
    with pytest.raises(data.DataError, match="no source named houses.*forest, weather"):
        data.hold_out(samples, ["houses"])


def test_scene_mixing_pastes_a_feathered_patch_and_labels_fire_if_either_photo_shows_fire():
    from training import augment

    rng = np.random.default_rng(3)
    scene, other = np.zeros((64, 64, 3), np.uint8), np.full((64, 64, 3), 200, np.uint8)
    for scene_label, other_label in ((0.0, 1.0), (1.0, 0.0), (0.0, 0.0)):
        mixed, label = augment.paste(scene, scene_label, other, other_label, rng)
        covered = float((mixed[:, :, 0] > 0).mean())
        assert 0.3**2 * 0.5 < covered <= 0.6**2 + 1e-6, "the patch covers 30-60 % of each side"
        assert label == max(scene_label, other_label)
        values = mixed[:, :, 0]
        assert ((values > 0) & (values < 200)).any(), "feathered edges, no hard seam"
    assert not scene.any(), "the scene itself is left untouched"


def test_white_balance_shifts_red_against_blue_within_range():
    from training import augment

    rng = np.random.default_rng(0)
    gains = np.array([augment.white_balance_gains(rng) for _ in range(40)])
    red_minus_blue = (gains[:, 0] - gains[:, 2]) * 128
    assert red_minus_blue.min() < -10 and red_minus_blue.max() > 10, "both warmer and cooler"
    assert (np.abs(gains - 1) <= augment.WHITE_BALANCE_STRENGTH + 1e-6).all()


def _warm(pixels: np.ndarray) -> np.ndarray:
    """Pixels whose red is above green and green at least blue: red, orange, amber, yellow."""
    r, g, b = (pixels[..., i].astype(int) for i in range(3))
    return (r > g + 20) & (g >= b)


def test_each_decoy_puts_fire_colours_into_a_scene_without_fire():
    from training import augment

    rng = np.random.default_rng(5)
    grey = np.full((64, 64, 3), 120, np.uint8)  # no warm pixel at all
    for decoy in augment.DECOYS:
        for _ in range(5):
            out = decoy(grey, rng)
            assert out.shape == grey.shape and out.dtype == np.uint8
            assert _warm(out).mean() > 0.002, f"{decoy.__name__} adds warm colour"
    assert (grey == 120).all(), "the photo itself is left untouched"
    painted = augment.warm_object(grey, np.random.default_rng(1))
    changed = (painted != 120).any(axis=2)
    rows, cols = np.nonzero(changed)
    box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    assert changed.sum() == box, "a warm object is one square patch"
    assert 0.2**2 * 0.5 <= box / 64**2 <= 0.6**2 + 1e-6
    dimmed = augment.night_lights(grey, np.random.default_rng(2))
    assert np.median(dimmed) < 120 * 0.6, "night: the scene is dimmed"
    assert dimmed.max() > 200, "with bright points of light"
    lit = augment.warm_light(grey, np.random.default_rng(3)).astype(int)
    assert (lit[..., 0] >= lit[..., 2]).all() and (lit[..., 0] - lit[..., 2]).max() > 60, "red up, blue down"


def test_decoys_never_change_a_label_and_are_off_by_default():
    from training import augment

    photos = np.random.default_rng(1).integers(0, 256, (8, 40, 40, 3), dtype=np.uint8)
    labels = np.array([0, 1] * 4, np.float32)
    plain = augment.Recipe(mix_probability=0.0)
    decoyed = augment.Recipe(mix_probability=0.0, decoy_probability=1.0)
    x, y = augment.augment_batch(photos, labels, photos, labels, np.random.default_rng(4), decoyed)
    assert np.array_equal(y, labels), "a fire with a decoy is still a fire, a room with one is still no fire"
    base, _ = augment.augment_batch(photos, labels, photos, labels, np.random.default_rng(4), plain)
    assert not np.array_equal(x, base)
    assert augment.Recipe().decoy_probability == 0.0, "off unless asked for"


def test_grey_photos_keep_their_labels_and_take_the_white_balance_shift_like_any_other():
    from training import augment

    photos = np.random.default_rng(1).integers(0, 256, (8, 40, 40, 3), dtype=np.uint8)
    labels = np.array([0, 1] * 4, np.float32)
    grey = augment.Recipe(mix_probability=0.0, white_balance_probability=0.0, grayscale_probability=1.0)
    x, y = augment.augment_batch(photos, labels, photos, labels, np.random.default_rng(4), grey)
    assert np.array_equal(y, labels), "a grey fire is still a fire, a grey room still no fire"
    assert np.allclose(x[..., 0], x[..., 1], atol=1e-3) and np.allclose(x[..., 1], x[..., 2], atol=1e-3)
    tinted, _ = augment.augment_batch(photos, labels, photos, labels, np.random.default_rng(4),
                                      augment.Recipe(mix_probability=0.0, white_balance_probability=1.0, grayscale_probability=1.0))
    assert np.abs(tinted[..., 0] - tinted[..., 2]).max() > 10, "then shifted warmer or cooler like any photo"
    assert np.array_equal(augment.grey(np.full((2, 2, 3), (255, 0, 0), np.uint8))[0, 0], [76, 76, 76]), "BT.601 luma"
    assert augment.Recipe().grayscale_probability == 0.0, "off unless asked for"
    from training.options import build_parser
    assert build_parser().parse_args([]).grayscale_probability == augment.GRAYSCALE_PROBABILITY


def test_the_crop_scale_sets_how_far_a_training_crop_zooms_in():
    """A photo whose red channel is its column: a crop's span of columns is its share of the side (flips reverse it)."""
    from training import augment
    from training.options import build_parser

    side = 200
    columns = np.tile(np.linspace(0, 255, side).round().astype(np.uint8)[None, :, None], (side, 1, 3))

    def spans(crop_scale: float) -> list[float]:
        recipe = augment.Recipe(mix_probability=0.0, white_balance_probability=0.0, crop_scale=crop_scale)
        rng = np.random.default_rng(5)
        scenes = [augment.augment(columns, 0.0, columns, 0.0, rng, recipe)[0] for _ in range(300)]
        return [(int(s[0, :, 0].max()) - int(s[0, :, 0].min())) / 255 for s in scenes]

    whole, default, zoomed = spans(1.0), spans(augment.CROP_SCALE), spans(0.4)
    assert min(whole) > 0.99, "1: only flips, every crop is the whole photo"
    assert 0.68 < min(default) < 0.75 and max(default) > 0.97, "the default: 70 to 100 % of the side"
    assert 0.39 < min(zoomed) < 0.45 and max(zoomed) > 0.97
    assert augment.Recipe().crop_scale == build_parser().parse_args([]).crop_scale == 0.7


def test_a_recipe_is_read_by_name_and_an_option_newer_than_a_fit_keeps_its_default():
    from training import augment
    from training.options import build_parser

    assert augment.Recipe.of(vars(build_parser().parse_args([]))) == augment.Recipe(), "--mix-probability unset: 0.35"
    old_fit = {"mix_probability": 0.6, "white_balance_probability": 0.8, "white_balance_strength": 0.25, "seed": 11,
               "holdout": ["houses"]}  # from before decoys, grey photos and the crop scale
    assert augment.Recipe.of(old_fit) == augment.Recipe(mix_probability=0.6)
    assert augment.Recipe.of({**old_fit, "crop_scale": 0.4}).crop_scale == 0.4


def test_an_augmented_batch_is_float_0_to_255_and_repeatable_for_a_seed():
    from training import augment

    photos = np.random.default_rng(1).integers(0, 256, (6, 48, 48, 3), dtype=np.uint8)
    labels = np.array([0, 1, 0, 1, 0, 0], np.float32)
    first = augment.augment_batch(photos, labels, photos[::-1], labels[::-1], np.random.default_rng(7))
    again = augment.augment_batch(photos, labels, photos[::-1], labels[::-1], np.random.default_rng(7))
    x, y = first
    assert x.shape == photos.shape and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 255
    assert np.array_equal(x, again[0]) and np.array_equal(y, again[1])
    assert (y >= labels).all(), "mixing can only turn a photo into fire, never a fire into no fire"
    assert not np.array_equal(x, augment.augment_batch(photos, labels, photos, labels, np.random.default_rng(8))[0])


def test_no_recipe_means_only_crops_flips_and_light_noise():
    """With mixing and white balance off, every channel keeps its relation: a grey photo stays grey."""
    from training import augment

    grey = np.full((4, 32, 32, 3), 100, np.uint8)
    x, y = augment.augment_batch(grey, np.zeros(4), grey, np.ones(4), np.random.default_rng(0),
                                 augment.Recipe(mix_probability=0.0, white_balance_probability=0.0))
    assert not y.any(), "nothing pasted, so no label changes"
    assert np.allclose(x[..., 0], x[..., 1]) and np.allclose(x[..., 1], x[..., 2])


def test_smoke_run_with_a_held_out_source_reports_it_apart_and_output_still_installs(tmp_path, datasets):
    root = make_dataset(tmp_path / "data", datasets, per_class=10)
    out = tmp_path / "out"
    done = run_main(cli.main, root / "forest", root / "weather", "--holdout", "weather", "--epochs", "1", "--image-size", "48",
                    "--val-fraction", "0.4", "--output", out, "--runs", tmp_path / "runs")  # in this process: one TF import less
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = (tmp_path / "runs").iterdir()
    assert (out / "fire_classifier.tflite").read_bytes() == (run / "fire_classifier.tflite").read_bytes(), "the run's model"
    assert "WITHOUT promote's checks" not in done.stderr, "only models/ gets the loud warning"
    card = json.loads((out / "fire_classifier.json").read_text())
    assert card["reports"]["folder"].endswith("out/reports") and (out / "reports" / "per_source.png").is_file()
    assert set(card["metrics"]["held_out_sources"]) == {"weather/nofire"}
    assert "weather/nofire" not in card["metrics"]["validation"]["per_source"], "not used to pick the threshold"
    assert card["training_data"]["held_out_sources"] == ["weather"]
    splits = [line.split()[1] for line in (out / "fire_classifier.files.sha256").read_text().splitlines()]
    assert splits.count("holdout") == 10
    assert "per_source.png" in card["reports"]["plots"]


def test_different_photos_of_smooth_scenes_are_not_grouped():
    """Two sunsets share a difference hash (bright sky over a dark horizon) but are different photos."""
    ramp = np.linspace(230, 30, 64)[:, None, None] * np.ones((64, 64, 1))
    orange = np.concatenate([ramp, ramp * 0.6, ramp * 0.2], axis=2).astype(np.uint8)
    violet = np.concatenate([ramp * 0.5, ramp * 0.3, ramp * 0.9], axis=2).astype(np.uint8)
    samples = [data.Sample(Path(f"{i}.jpg"), "s", 0, f"{i:064x}") for i in range(2)]
    assert data.difference_hashes(np.stack([orange, violet]))[0] == data.difference_hashes(np.stack([orange, violet]))[1]
    groups = data.near_duplicate_groups(samples, np.stack([orange, violet]))
    assert len(set(groups.values())) == 2


def test_the_served_card_states_the_limitations_training_writes():
    card = json.loads((ROOT / "models" / "fire_classifier.json").read_text())
    assert card["limitations"] == cli.LIMITATIONS, "edit the served card when the limitations change"
