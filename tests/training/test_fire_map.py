"""The fire map export: its definition (a class activation map), the unchanged probability, and the re-export of a
trained model without retraining."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from inference import Classifier, LiteRTModel, MapUnavailable, decode_image  # noqa: E402
from tests.conftest import MODEL_PATH  # noqa: E402
from training import backbones, export  # noqa: E402
from training.fire_map import MapUnsupported, grid_of, with_fire_map  # noqa: E402

SIZE = 32


def small_model(seed: int) -> keras.Model:
    """A compact network at 32 px with random weights (and non-trivial batch-norm statistics), flip-averaged."""
    keras.utils.set_random_seed(seed)
    network = backbones.compact(SIZE, width=0.25)
    for layer in network.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            rng = np.random.default_rng(seed)
            layer.set_weights([gamma, rng.normal(0, 0.5, beta.shape), rng.normal(0, 0.5, mean.shape), variance])
    return backbones.with_flip_averaging(network)


def photos(count: int) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (count, SIZE, SIZE, 3)).astype(np.float32)


def test_the_map_is_the_class_activation_map_and_the_probability_is_unchanged():
    model = small_model(3)
    served = with_fire_map(model)
    images = photos(4)
    out = served.predict(images, verbose=0)
    assert np.max(np.abs(out["fire_probability"] - model.predict(images, verbose=0))) <= 1e-6
    # By hand: the network's last feature map, the dense layer's weights per cell, mirror back, average, sigmoid.
    network = model.layers[2]
    pooling = next(layer for layer in network.layers if isinstance(layer, keras.layers.GlobalAveragePooling2D))
    features = keras.Model(network.inputs, pooling.input)
    kernel, bias = network.layers[-1].get_weights()
    plain = features.predict(images, verbose=0) @ kernel[:, 0] + bias[0]
    mirrored = (features.predict(images[:, :, ::-1], verbose=0) @ kernel[:, 0] + bias[0])[:, :, ::-1]
    expected = 1 / (1 + np.exp(-(plain + mirrored) / 2))
    assert out["fire_map"].shape == expected.shape == (4, 2, 2)  # 32 px / 16
    assert np.max(np.abs(out["fire_map"] - expected)) <= 1e-5
    assert grid_of(served) == list(expected.shape[1:])


def test_a_single_pass_model_gets_its_map_too():
    network = small_model(4).layers[2]
    served = with_fire_map(network)
    out = served.predict(photos(2), verbose=0)
    assert np.max(np.abs(out["fire_probability"] - network.predict(photos(2), verbose=0))) <= 1e-6
    assert out["fire_map"].shape[0] == 2


def test_an_ensemble_serves_the_mean_of_its_networks_and_of_their_maps(tmp_path):
    networks = [small_model(seed).layers[2] for seed in (4, 5)]
    ensemble = backbones.ensemble(networks)
    ensemble.save(tmp_path / "ensemble.keras")
    reloaded = keras.models.load_model(tmp_path / "ensemble.keras")  # what a re-export starts from
    images = photos(3)
    expected = np.mean([n.predict(images, verbose=0) for n in networks], axis=0)
    assert np.max(np.abs(reloaded.predict(images, verbose=0) - expected)) <= 1e-6
    out = with_fire_map(reloaded).predict(images, verbose=0)
    assert np.max(np.abs(out["fire_probability"] - expected)) <= 1e-6
    logits = []
    for network in networks:
        pooling = next(layer for layer in network.layers if isinstance(layer, keras.layers.GlobalAveragePooling2D))
        kernel, bias = network.layers[-1].get_weights()
        logits.append(keras.Model(network.inputs, pooling.input).predict(images, verbose=0) @ kernel[:, 0] + bias[0])
    assert np.max(np.abs(out["fire_map"] - 1 / (1 + np.exp(-np.mean(logits, axis=0))))) <= 1e-5
    assert ensemble.count_params() == sum(n.count_params() for n in networks)


def test_a_head_without_pooling_and_one_sigmoid_unit_is_refused():
    inputs = keras.Input((SIZE, SIZE, 3))
    flat = keras.layers.Flatten()(keras.layers.Conv2D(4, 3)(inputs))
    with pytest.raises(MapUnsupported, match="GlobalAveragePooling2D"):
        with_fire_map(keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(flat)))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    with pytest.raises(MapUnsupported, match="sigmoid"):
        with_fire_map(keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(pooled)))


def model_folder(tmp_path, keras_model: keras.Model, tflite_model: keras.Model | None):
    """A model folder as training wrote it before the map: .keras, a single-output float32 .tflite (unless the caller
    writes its own) and the card."""
    keras_model.save(tmp_path / "fire_classifier.keras")
    if tflite_model is not None:
        (tmp_path / "fire_classifier.tflite").write_bytes(export.to_tflite(tflite_model))
    card = json.loads(MODEL_PATH.with_suffix(".json").read_text())
    card.pop("fire_map", None)
    card.pop("cascade", None)  # the served model's; these small models are one network or a plain ensemble
    card["input"] |= {"width": SIZE, "height": SIZE}
    card["tflite_format"] = {"shipped": "float32", "bytes": {"float32": 0}}
    (tmp_path / "fire_classifier.json").write_text(json.dumps(card))
    return tmp_path / "fire_classifier.keras"


def test_reexport_adds_the_map_without_changing_the_probabilities(tmp_path, fire_photos, nofire_photos):
    model = small_model(5)
    keras_path = model_folder(tmp_path, model, model)
    tflite_path = keras_path.with_suffix(".tflite")
    old = LiteRTModel(tflite_path)
    assert old.map_grid is None, "a model exported before the map"
    with pytest.raises(MapUnavailable):
        old.predict_with_map(np.zeros((1, SIZE, SIZE, 3), np.uint8))
    checks = tmp_path / "photos"
    checks.mkdir()
    for photo in fire_photos + nofire_photos:
        shutil.copy(photo, checks / photo.name)
    old_probabilities = old.predict(photos(6).astype(np.uint8))

    report = export.reexport(keras_path, [checks], photos=16)

    assert report["photos_checked"] == 16 and report["probability_max_abs_diff"] <= export.PROBABILITY_TOLERANCE
    new = LiteRTModel(tflite_path)
    assert new.map_grid == (2, 2) and np.max(np.abs(new.predict(photos(6).astype(np.uint8)) - old_probabilities)) <= 1e-6
    card = json.loads(keras_path.with_suffix(".json").read_text())
    assert card["fire_map"]["grid"] == [2, 2] and card["fire_map"]["output"] == "fire_map"
    assert card["version"] == export.version_for(tflite_path.read_bytes(), card["date"]) == report["version"]
    assert card["tflite_format"]["bytes"]["float32"] == tflite_path.stat().st_size
    classifier = Classifier.load(tflite_path)
    assert len(classifier.classify(fire_photos[0].read_bytes(), with_map=True).fire_map) == 2


@pytest.mark.slow  # two more TFLite conversions (about 40 s here)
def test_reexport_refuses_a_model_whose_probabilities_differ_and_writes_nothing(tmp_path, fire_photos):
    keras_path = model_folder(tmp_path, small_model(6), small_model(7))  # the .tflite is another model's
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    checks = tmp_path / "photos"
    checks.mkdir()
    for photo in fire_photos:
        shutil.copy(photo, checks / photo.name)
    with pytest.raises(SystemExit, match="differ"):
        export.reexport(keras_path, [checks], photos=8)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


_INT8_FILES: dict[str, bytes] = {}  # by calibration pixels: the weights are always small_model(8)'s


def int8_model_folder(tmp_path, photos: list) -> Path:
    """A served int8 model folder whose file list names ``photos`` as its training photos."""
    keras_path = model_folder(tmp_path, small_model(8), None)
    calibration = np.stack([decode_image(photo.read_bytes(), (SIZE, SIZE)) for photo in photos])
    key = hashlib.sha256(calibration.tobytes()).hexdigest()
    if key not in _INT8_FILES:  # a conversion costs seconds; the same weights and photos make the same file
        served = export.served_model(keras.models.load_model(keras_path))
        _INT8_FILES[key] = export.to_tflite(served, "int8", calibration)
    keras_path.with_suffix(".tflite").write_bytes(_INT8_FILES[key])
    (tmp_path / "fire_classifier.files.sha256").write_text(
        "".join(f"{hashlib.sha256(photo.read_bytes()).hexdigest()}  train  {photo}\n" for photo in photos))
    card_path = keras_path.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card["tflite_format"] = {"shipped": "int8", "bytes": {"int8": 0}}
    card["training_data"]["file_hashes"] = "fire_classifier.files.sha256"
    card_path.write_text(json.dumps(card))
    return keras_path


def test_an_int8_file_is_served_like_a_float_one(tmp_path, fire_photos, nofire_photos):
    keras_path = int8_model_folder(tmp_path, fire_photos + nofire_photos)
    tflite_path = keras_path.with_suffix(".tflite")
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(tflite_path))
    assert interpreter.get_input_details()[0]["dtype"] == np.float32, "float in: serving feeds every format alike"
    assert {detail["dtype"] for detail in interpreter.get_output_details()} == {np.float32}
    assert any(detail["dtype"] == np.int8 for detail in interpreter.get_tensor_details()), "activations are int8"
    images = np.stack([decode_image(photo.read_bytes(), (SIZE, SIZE)) for photo in fire_photos + nofire_photos])
    reference = keras.models.load_model(keras_path).predict(images.astype(np.float32), verbose=0).reshape(-1)
    probabilities = LiteRTModel(tflite_path).predict(images)
    assert np.max(np.abs(probabilities - reference)) <= export.AGREEMENT["int8"]
    outcome = Classifier.load(tflite_path).classify(fire_photos[0].read_bytes(), with_map=True)
    assert 0 <= outcome.fire_probability <= 1 and len(outcome.fire_map) == 2


def test_reexport_of_an_int8_model_calibrates_on_its_training_photos_again(tmp_path, fire_photos, nofire_photos):
    keras_path = int8_model_folder(tmp_path, fire_photos + nofire_photos)
    tflite_path = keras_path.with_suffix(".tflite")
    checks = tmp_path / "photos"
    checks.mkdir()
    for photo in fire_photos + nofire_photos:
        shutil.copy(photo, checks / photo.name)
    report = export.reexport(keras_path, [checks], photos=8)
    assert report["probability_max_abs_diff"] <= export.PROBABILITY_TOLERANCE, "same weights, same calibration"
    assert json.loads(keras_path.with_suffix(".json").read_text())["tflite_format"] == {"shipped": "int8", "bytes": {"int8": tflite_path.stat().st_size}}


def test_reexport_of_an_int8_model_without_its_training_photos_is_refused(tmp_path, fire_photos):
    keras_path = int8_model_folder(tmp_path, fire_photos)
    (tmp_path / "fire_classifier.files.sha256").write_text(f"{'0' * 64}  train  {tmp_path / 'gone.jpg'}\n")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(SystemExit, match="calibrated on its training photos, and .*gone.jpg .*cannot be read here"):
        export.reexport(keras_path, [fire_photos[0].parent], photos=4)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_reexport_of_an_int8_model_whose_training_photo_changed_is_refused(tmp_path, fire_photos, nofire_photos):
    """Calibrating on other pixels would make another file: say which photo changed, and write nothing."""
    photos = tmp_path / "train"
    photos.mkdir()
    copies = [Path(shutil.copy(photo, photos / photo.name)) for photo in fire_photos + nofire_photos]
    keras_path = int8_model_folder(tmp_path, copies)
    copies[3].write_bytes(nofire_photos[-1].read_bytes())  # the same name, other pixels
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    with pytest.raises(SystemExit, match=f"{copies[3].name} .*has changed since training"):
        export.reexport(keras_path, [photos], photos=4)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


def test_int8_needs_calibration_photos_and_unknown_formats_are_refused():
    with pytest.raises(ValueError, match="calibration"):
        export.to_tflite(small_model(9), "int8")
    with pytest.raises(ValueError, match="unknown .tflite format 'int4'"):
        export.to_tflite(small_model(9), "int4")


def test_a_faster_format_that_disagrees_with_keras_is_not_shipped(monkeypatch, fire_photos, nofire_photos):
    served = export.served_model(small_model(10))
    images = np.stack([decode_image(photo.read_bytes(), (SIZE, SIZE)) for photo in fire_photos + nofire_photos])
    keras_probs = served.predict(images.astype(np.float32), verbose=0)["fire_probability"].reshape(-1)
    speed = {"float32": 3.0, "dynamic_range": 2.0, "int8": 1.0}
    monkeypatch.setattr(export, "_median_latency_ms", lambda path, size: speed[formats[path.read_bytes()]])
    formats, converted = {}, {}
    real = export.to_tflite

    def remembered(model, name="float32", calibration=None, log=None, cascade=None):
        if name not in converted:  # both choices below convert the same model with the same photos: once is enough
            converted[name] = real(model, name, calibration, log, cascade)
        formats[converted[name]] = name
        return converted[name]

    monkeypatch.setattr(export, "to_tflite", remembered)
    data, report = export.choose_tflite(served, SIZE, images, images, keras_probs)
    assert report["shipped"] == "int8" and formats[data] == "int8", report
    assert report["calibration"] == f"{len(images)} training photos, evenly spaced in the file list"
    _, report = export.choose_tflite(served, SIZE, images, images, keras_probs + 0.2)  # every format is 0.2 off
    assert report["shipped"] == "float32" and report["validation_max_abs_diff_vs_keras"]["int8"] > 0.1, report


def test_calibration_picks_at_most_200_photos_spread_over_the_list():
    assert list(export.calibration_picks(5)) == [0, 1, 2, 3, 4]
    picks = export.calibration_picks(3943)
    assert len(picks) == 200 and picks[0] == 0 and picks[-1] == 199 * 19
    assert list(export.calibration_picks(0)) == []


def test_a_fully_quantised_file_with_integer_ends_is_refused_with_a_clear_error(tmp_path, fire_photos):
    """int8 or uint8 input and output would take pixels and give scores on another scale, silently."""
    import tensorflow as tf

    model = small_model(11)
    calibration = np.stack([decode_image(photo.read_bytes(), (SIZE, SIZE)) for photo in fire_photos]).astype(np.float32)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([image[None]] for image in calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.uint8
    path = tmp_path / "fire_classifier.tflite"
    path.write_bytes(converter.convert())
    with pytest.raises(ValueError, match="the model's input is uint8, not float32; export it with float input and output"):
        LiteRTModel(path)


def test_a_cascade_file_holds_the_whole_ensemble_and_each_fit_alone_with_its_cell_logits(tmp_path):
    from inference.cascade import CELL_LOGITS_OUTPUT, FIRST_FIT, SECOND_FIT, Cascade
    from training.fire_map import ensemble_fits

    networks = [small_model(seed).layers[2] for seed in (4, 5)]
    ensemble = backbones.ensemble(networks)
    assert ensemble_fits(ensemble) == [ensemble.layers[1], ensemble.layers[2]] and ensemble_fits(networks[0]) == []
    plan = {FIRST_FIT: {"member": 1}, SECOND_FIT: {"member": 0}}  # the second network first
    path = tmp_path / "cascade.tflite"
    path.write_bytes(export.to_tflite(export.served_model(ensemble), cascade=export.cascade_fits(ensemble, plan)))
    model = LiteRTModel(path)
    assert sorted(model.signatures) == ["first", "second", "serving_default"]
    images = photos(3)
    # The whole model as before: what LiteRTModel.predict runs, and what Keras computes.
    assert np.max(np.abs(model.predict(images) - ensemble.predict(images, verbose=0).reshape(-1))) <= 1e-5
    for name, network in ((FIRST_FIT, networks[1]), (SECOND_FIT, networks[0])):
        alone = model.run_signature(name, images)
        assert np.max(np.abs(alone["fire_probability"] - network.predict(images, verbose=0))) <= 1e-5
        pooling = next(layer for layer in network.layers if isinstance(layer, keras.layers.GlobalAveragePooling2D))
        kernel, bias = network.layers[-1].get_weights()
        cells = keras.Model(network.inputs, pooling.input).predict(images, verbose=0) @ kernel[:, 0] + bias[0]
        assert np.max(np.abs(alone[CELL_LOGITS_OUTPUT] - cells)) <= 1e-4
    # A cascade whose margin takes in every photo is the whole model, map included.
    everything = Cascade(model, margin=0.999, threshold=0.5)
    probabilities, maps = everything.predict_with_map(images)
    whole, whole_maps = model.predict_with_map(images)
    assert np.max(np.abs(probabilities - whole)) <= 1e-5 and np.max(np.abs(maps - whole_maps)) <= 1e-5
    with pytest.raises(ValueError, match="ensemble of two fits"):
        export.cascade_fits(networks[0], plan)


def test_reexport_of_a_cascade_keeps_its_signatures(tmp_path, fire_photos, nofire_photos):
    networks = [small_model(seed).layers[2] for seed in (6, 7)]
    ensemble = backbones.ensemble(networks)
    plan = {"margin": 0.2, "first": {"member": 0}, "second": {"member": 1}}
    keras_path = model_folder(tmp_path, ensemble, ensemble)
    card = json.loads(keras_path.with_suffix(".json").read_text())
    keras_path.with_suffix(".json").write_text(json.dumps({**card, "cascade": plan}))
    checks = tmp_path / "photos"
    checks.mkdir()
    for photo in fire_photos + nofire_photos:
        shutil.copy(photo, checks / photo.name)
    export.reexport(keras_path, [checks], photos=4)
    assert sorted(LiteRTModel(keras_path.with_suffix(".tflite")).signatures) == ["first", "second", "serving_default"]
    classifier = Classifier.load(keras_path.with_suffix(".tflite"))
    assert classifier.predictor.margin == 0.2 and classifier.classify(fire_photos[0].read_bytes()).label in ("fire", "nofire")
