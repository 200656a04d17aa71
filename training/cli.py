"""``python -m training``: train, evaluate and export the fire classifier into a new run folder (see ``options``)."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import shlex
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inference import ModelCard

from . import data as data_mod
from . import intervals, resumable, runs
from .options import BATCH_NORM_MOMENTUM, CROP_SCALE, DEFAULT_DATA, DEFAULT_SOURCES, ROOT, build_parser, parse_arguments, without  # noqa: F401  (build_parser: public)

SHIPPED = ROOT / "models"
DATA_CREDITS = {
    "forest-fire": "Khan, A. & Hassan, B. (2020), Dataset for Forest Fire Detection, Mendeley Data, doi:10.17632/gjmr63rz2r.1 (CC BY 4.0)",
    "fire-dataset": "Saied, A. (2020), FIRE Dataset, Kaggle (terms of its Kaggle page)",
    "weather": "Ajayi, G. (2018), Multi-class Weather Dataset for Image Classification, Mendeley Data, doi:10.17632/4drtyfjtfy.1 (CC BY 4.0)",
    "houses": "Ahmed, E. H. & Moustafa, M. (2016), House price estimation from visual and textual features, IJCCI 2016, doi:10.5220/0006040700620068",
}


CASCADE_RULE = ("the first fit alone where its probability is at least `margin` from the threshold, the mean of both fits "
                "(probability, and cell logits for the map) elsewhere; the margin is the one that ran the second fit least "
                "among those at which no out-of-fold verdict differed from the mean's (python -m training.loso --cascade)")
THRESHOLD_RULES = {
    "validation": "maximises validation balanced accuracy averaged per source folder (hard negatives weigh as much as easy ones)",
    "loso": "maximises balanced accuracy averaged per source folder over leave-one-source-out predictions: each photo scored by "
            "a model of the same recipe that never saw its source (metrics.leave_one_source_out); metrics.validation_threshold "
            "is what the validation split alone would choose",
}

LIMITATIONS = [
    "Controlled flames (candles, fireplaces, stoves) are not scored either way and were not measured: no photo of the "
    "shared sources shows one (all their fire photos were looked at). The model is taught what flames look like, not "
    "where they burn: a flame that fills a fair part of the photo is called fire wherever it is; a small candle in a "
    "large room (a few pixels at the input size) usually is not.",
    "Fire shown on a screen or in a painting looks like flames at the input size and is called fire; not measured, as no "
    "photo of the shared sources shows one.",
    "Kinds of scene that no training source shows (night streets, string lights, red decor, red-lit interiors) raise "
    "more false alarms: with one source held out, up to a quarter of that source's fire-free photos were called fire "
    "(metrics.leave_one_source_out, when present). Add such photos as a nofire source when you have them.",
]
LOSO_NAME = "leave_one_source_out.json"  # in reports/: the figures behind a --loso threshold
_LOG_FILES: list = []  # the run's train.log, once the run folder exists


def log(message: str) -> None:
    line = f"[{time.strftime('%H:%M:%S')}] {message}"
    print(line, file=sys.stderr, flush=True)
    for handle in _LOG_FILES:
        print(line, file=handle, flush=True)


@dataclass
class Splits:
    """The decoded data: training and validation arrays, and the samples behind each row."""

    train_s: list
    val_s: list
    held_s: list
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    held_x: np.ndarray
    held_y: np.ndarray


@dataclass
class Trained:
    model: Any
    history: dict
    seconds: float
    mix_probability: float
    keras_path: Path
    elsewhere: dict | None = None  # where and how the weights were fitted, when not in this run (--trained)


@dataclass
class Exported:
    tflite_path: Path
    tflite_bytes: bytes
    format_report: dict
    threshold: float
    litert_probs: np.ndarray
    metrics: dict
    holdout_metrics: dict | None
    held_s: list  # the held-out samples that could be decoded
    fire_map: dict  # the card's description of the map output
    cascade: dict | None = None  # the card's cascade block, when the ensemble is served as one


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    roots = args.data or [DEFAULT_DATA / name for name in DEFAULT_SOURCES]
    samples, held_s = discover(args, roots)  # bad data folders fail before anything is loaded or written
    args.loso_report = _loso(args)
    model, size = build_model(args)
    try:
        run = runs.Run.resume(args.resume) if args.resume else runs.Run.start(args.runs)
    except runs.RunError as exc:
        raise SystemExit(f"error: {exc}") from None
    with run_log(run.folder, argv):
        log(f"run folder {run.folder}: python -m training {shlex.join(_argv(argv))}")
        splits = load_splits(args, samples, held_s, size)
        trained = train(args, model, splits, run.folder)
        exported = export_and_evaluate(args, trained.model, size, splits, run.folder, cascade_plan(args, trained))
        card = report(args, argv, roots, size, splits, trained, exported, run)
    folder = run.finish(card.version)
    log(f"run complete: {folder}")
    if args.output:
        install_output(args, folder)
    else:
        log(f"to serve it: python -m training promote {display_path(folder)}")
    return 0


@contextlib.contextmanager
def run_log(folder: Path, argv: list[str] | None = None):
    """Progress lines go to the run's train.log as well as stderr; a run that stops says where its files are, and how to
    go on with its fit when it left progress."""
    with (folder / runs.LOG_NAME).open("a", encoding="utf-8") as handle:
        _LOG_FILES.append(handle)
        try:
            yield
        except BaseException:
            log(f"the run stopped; what it wrote is in {folder}")
            if resumable.has_progress(folder):
                again = shlex.join([*_recorded(_argv(argv)), "--resume", display_path(folder)])
                log(f"to go on from its last finished epoch: python -m training {again}")
            raise
        finally:
            _LOG_FILES.remove(handle)


def report(args, argv, roots, size, splits: Splits, trained: Trained, exported: Exported, run: runs.Run) -> ModelCard:
    """Plots, history, file manifest, chance-level check and card, all in the run folder; returns the card."""
    from . import evaluate, export

    reports = run.folder / runs.REPORTS
    sources = {"validation": exported.metrics["validation"]["per_source"]} | (
        {"held out": exported.holdout_metrics} if exported.holdout_metrics else {}) | (
        {"unseen (out of fold)": args.loso_report["out_of_fold"]["per_source"]} if args.loso_report else {})
    plots = evaluate.plot_reports(reports, trained.history, splits.val_y, exported.litert_probs, exported.threshold, sources)
    (reports / "history.json").write_text(json.dumps(trained.history) + "\n", encoding="utf-8")
    if args.loso_report:
        (reports / LOSO_NAME).write_text(json.dumps(args.loso_report, indent=2) + "\n", encoding="utf-8")
    chance = intervals.chance_level_reasons(exported.metrics["validation"])
    if chance:
        exported.metrics["warnings"] = [f"NO BETTER THAN CHANCE: {reason}" for reason in chance]
    manifest_name, manifest_hash = write_file_manifest(args, splits, exported.held_s, run.folder)
    # The card names the reports where they will be once the run is complete.
    final_reports = run.final_folder(export.version_for(exported.tflite_bytes, "")) / runs.REPORTS
    card = model_card(args, argv, roots, size, splits, trained, exported, final_reports, plots, manifest_name, manifest_hash)
    card.save(run.folder / f"{args.name}.json")
    (reports / "metrics.json").write_text(json.dumps(card.metrics, indent=2) + "\n", encoding="utf-8")
    if args.reports:
        shutil.copytree(reports, args.reports, dirs_exist_ok=True)
    log_summary(card, exported)
    if chance:
        shout(["THIS MODEL IS NO BETTER THAN CHANCE ON ITS VALIDATION PHOTOS:", *chance,
               "Do not promote it; promote refuses it unless --force."])
    return card


def install_output(args: argparse.Namespace, folder: Path) -> None:
    """``--output DIR``: the old way, kept for scripts. Into ``models/`` it skips promote's checks, so say so loudly."""
    if args.output.resolve() == SHIPPED.resolve():
        shout([f"--output {display_path(args.output)} replaces the served model WITHOUT promote's checks",
               "(complete run, better than chance, no worse than the current model).",
               f"Prefer: python -m training promote {display_path(folder)}"])
    runs.install(folder, runs.check_complete(folder), args.output, display_path(args.output / runs.REPORTS))
    log(f"installed into {args.output}")


def shout(lines: list[str]) -> None:
    """A warning nobody scrolls past: on stderr (and in the run's log while it is open), framed."""
    bar = "!" * 100
    for line in ["", bar, *(f"!! WARNING: {line}" for line in lines), bar, ""]:
        log(line)


def _argv(argv: list[str] | None) -> list[str]:
    return argv if argv is not None else sys.argv[1:]


def _recorded(argv: list[str]) -> list[str]:
    """The command as it trains, without ``--resume RUN``: a resumed fit is the fit its command makes, and the folder
    it went on in is gone once the run is complete."""
    return without(argv, valued=("--resume",))


def build_model(args: argparse.Namespace) -> tuple[Any, int]:
    """The compiled Keras model and its input side; first, so a backbone that cannot be built fails before minutes
    of decoding."""
    log("loading TensorFlow")
    from . import quiet

    quiet.import_tensorflow()
    import keras

    from . import backbones

    size = args.image_size or backbones.DEFAULT_SIZES[args.backbone]
    keras.utils.set_random_seed(args.seed)
    try:
        model = backbones.build(args.backbone, size, _weights(args), width=args.width, bn_momentum=args.bn_momentum)
    except backbones.WeightsUnavailable as exc:
        raise SystemExit(f"error: {exc}") from None
    from . import fitting

    fitting.compile_model(model, schedule_for(args))
    log(f"model {model.name}: {model.count_params():,} parameters")
    return model, size


def discover(args: argparse.Namespace, roots: list[Path]) -> tuple[list, list]:
    """The deduplicated samples to train and validate on, and those of held-out sources."""
    log(f"scanning {', '.join(map(str, roots))}")
    try:
        samples = data_mod.discover(roots, args.limit_per_class)
        return data_mod.hold_out(samples, args.holdout)
    except data_mod.DataError as exc:
        raise SystemExit(f"error: {exc}") from None


def load_splits(args: argparse.Namespace, samples: list, held_s: list, size: int) -> Splits:
    """Decode and split the data (by near-duplicate group, so no twin straddles the split)."""
    decoded = data_mod.decode_and_split(samples, held_s, size, args.val_fraction, args.seed, log)
    (train_x, train_y), (val_x, val_y), (held_x, held_y) = (decoded.arrays(p) for p in (decoded.train, decoded.val, decoded.held))
    log(f"{len(decoded.train)} train, {len(decoded.val)} validation"
        + (f", {len(decoded.held)} held out ({', '.join(args.holdout)})" if decoded.held else ""))
    if len(set(train_y)) < 2 or len(set(val_y)) < 2:
        raise SystemExit("error: both training and validation need fire and nofire images; add data or change --val-fraction")
    return Splits(decoded.train, decoded.val, decoded.held, train_x, train_y, val_x, val_y, held_x, held_y)


def schedule_for(args: argparse.Namespace):
    from . import augment, fitting

    return fitting.Schedule(epochs=args.epochs, patience=args.patience, batch_size=args.batch_size, learning_rate=args.learning_rate,
                            loss=args.loss, ema=args.ema, seed=args.seed, source_balance=args.source_balance,
                            recipe=augment.Recipe.of(vars(args)))  # --mix-probability unset (None): the default


def train(args: argparse.Namespace, model, splits: Splits, folder: Path) -> Trained:
    """Fit (or take the weights fitted elsewhere, ``--trained``); keep the best epoch, add test-time flipping, save
    ``.keras``."""
    import numpy as np

    from . import accelerated, backbones, fitting, progress

    schedule = schedule_for(args)
    if args.trained:
        fitted, fitted_elsewhere = trained_ensemble(args, model, splits) if len(args.trained) > 1 else \
            trained_elsewhere(args, model, splits, args.trained[0])
    else:
        # Beside the schedule, what a resumed fit must share with the one it goes on from: the network and the photos.
        fingerprint = {"backbone": args.backbone, "weights": _weights(args), "width": args.width,
                       "bn_momentum": args.bn_momentum, "image_size": int(splits.train_x.shape[1]),
                       "train_photos": accelerated.digest(s.sha256 for s in splits.train_s),
                       "validation_photos": accelerated.digest(s.sha256 for s in splits.val_s)}
        try:
            fitted = fitting.fit(model, splits.train_x, splits.train_y, splits.val_x, splits.val_y, schedule, log,
                                 train_sources=np.asarray([sample.source for sample in splits.train_s]),
                                 progress_folder=folder / resumable.FOLDER, fingerprint=fingerprint)
        except progress.ProgressMismatch as exc:
            raise SystemExit(f"error: {exc}") from None
        fitted_elsewhere = None
    model = fitted.model
    if args.tta == "flip":
        model = backbones.with_flip_averaging(model)
    keras_path = folder / f"{args.name}.keras"
    model.save(keras_path)
    return Trained(model, fitted.history, fitted.seconds, schedule.recipe.mix_probability, keras_path, fitted_elsewhere)


def trained_ensemble(args: argparse.Namespace, model, splits: Splits):
    """Several fits of this recipe with other seeds, each checked as :func:`trained_elsewhere` does, served as the mean of
    their verdicts. The training curves and kept epoch reported are the first member's; the card lists every member."""
    import keras

    from . import backbones, fitting

    fits = [trained_elsewhere(args, model if i == 0 else keras.models.clone_model(model), splits, folder)
            for i, folder in enumerate(args.trained)]
    seeds = [elsewhere["settings"].get("seed") for _, elsewhere in fits]
    if len(set(seeds)) < len(seeds):
        raise SystemExit(f"error: --trained: the fits' seeds are {', '.join(map(str, seeds))}: an ensemble of one seed "
                         "twice is one model at twice the cost; give fits of other seeds")
    log(f"serving the mean of {len(fits)} fits (seeds {', '.join(map(str, seeds))})")
    ensemble = backbones.ensemble([fitted.model for fitted, _ in fits])
    elsewhere = {"ensemble_of": len(fits), "history": "the first member's", "members": [e for _, e in fits]}
    return fitting.Fitted(ensemble, fits[0][0].history, sum(fitted.seconds for fitted, _ in fits)), elsewhere


def trained_elsewhere(args: argparse.Namespace, model, splits: Splits, folder: Path):
    """The weights, history and record of ``python -m training.accelerated one``, checked against this run: same input
    size, width, hold-outs, recipe and the very same training photos, or the card and its figures would be a lie."""
    from . import accelerated, fitting, members

    recipe = schedule_for(args).recipe
    try:
        fit = members.read(folder, args.name)
        record, settings = fit.record, fit.record["settings"]
        ours = {"image size": (record["image_size"], model.input_shape[1]), "width": (settings["width"], args.width),
                "held-out sources": (sorted(settings["holdout"]), sorted(args.holdout)),
                "training photos": (record["train_digest"], accelerated.digest(s.sha256 for s in splits.train_s)),
                # the card describes the recipe from this run's options, so they must be the fit's
                "loss": (settings["loss"], args.loss), "batch size": (settings["batch_size"], args.batch_size),
                "weight average momentum (--ema)": (settings.get("ema", 0.0), args.ema),
                "source balance (--source-balance)": (settings.get("source_balance", 0.0), args.source_balance),
                "batch-norm momentum (--bn-momentum)": (settings.get("bn_momentum", BATCH_NORM_MOMENTUM), args.bn_momentum),
                "mix probability": (settings["mix_probability"], recipe.mix_probability),
                "white-balance probability": (settings["white_balance_probability"], recipe.white_balance_probability),
                "white-balance strength": (settings["white_balance_strength"], recipe.white_balance_strength),
                "decoy probability": (settings.get("decoy_probability", 0.0), recipe.decoy_probability),
                "grayscale probability (--grayscale-probability)": (settings.get("grayscale_probability", 0.0),
                                                                    recipe.grayscale_probability),
                "crop scale (--crop-scale)": (settings.get("crop_scale", CROP_SCALE), recipe.crop_scale)}
    except members.NotOneFit as exc:
        raise SystemExit(f"error: --trained {folder}: {exc}") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SystemExit(f"error: --trained {folder}: neither a finished `python -m training.accelerated one` folder nor a run "
                         f"folder of one such fit ({exc!r})") from None
    differ = [f"{name}: {theirs} there, {mine} here" for name, (theirs, mine) in ours.items() if theirs != mine]
    if differ:
        raise SystemExit(f"error: --trained {folder} was fitted on something else: " + "; ".join(differ))
    try:
        fit.load_into(model)
    except (OSError, ValueError) as exc:
        weights = fit.keras_file.name if fit.keras_file else accelerated.WEIGHTS
        raise SystemExit(f"error: --trained {folder}: its {weights} does not fit this model ({exc})") from None
    log(f"weights fitted on {record['device']} ({record['backend']}) in {record['fit_seconds']} s: {record['command']}"
        + (f" (from the run {folder})" if fit.keras_file else ""))
    elsewhere = {"device": record["device"], "backend": record["backend"], "command": record["command"],
                 **({"started_from": record["init"]} if "init" in record else {}),
                 **({"distilled_from": record["teachers"]} if "teachers" in record else {}),
                 "settings": {k: v for k, v in settings.items() if k not in {"pack", "out", "workers"}}}
    return fitting.Fitted(model, fit.history, record["fit_seconds"]), elsewhere


def cascade_plan(args: argparse.Namespace, trained: Trained) -> dict | None:
    """How an ensemble of two fits is served as a cascade (inference.cascade), from the ``--loso`` report's cascade
    rows (``python -m training.loso --seeds mean --cascade``); None without them, or when every margin changed a verdict."""
    from . import loso

    rows = (args.loso_report or {}).get("cascade")
    members = (trained.elsewhere or {}).get("members", [])
    if not rows or len(members) != 2:
        return None
    chosen = loso.cascade_choice(rows)
    if chosen is None:
        log("served as the mean of both fits: out of fold, a cascade changed some verdict at every margin")
        return None
    seeds = [member["settings"].get("seed") for member in members]
    if sorted(seeds) != sorted((chosen["first"], chosen["second"])):
        raise SystemExit(f"error: --loso {args.loso} measured a cascade of seeds {chosen['first']} and {chosen['second']}, "
                         f"but this run serves seeds {' and '.join(map(str, seeds))}")
    log(f"served as a cascade: seed {chosen['first']}'s fit alone, and the mean of both within {chosen['margin']} of the "
        f"threshold (out of fold: the second fit on {100 * chosen['second_fit_share']:.1f} % of photos, every verdict the mean's)")
    return {"margin": chosen["margin"],
            "first": {"member": seeds.index(chosen["first"]), "seed": chosen["first"]},
            "second": {"member": seeds.index(chosen["second"]), "seed": chosen["second"]},
            "rule": CASCADE_RULE, "out_of_fold": chosen}


def export_and_evaluate(args: argparse.Namespace, model, size: int, splits: Splits, folder: Path,
                        cascade: dict | None = None) -> Exported:
    """Choose the threshold on Keras's validation probabilities, export ``.tflite``, and measure it as served."""
    from . import evaluate, export

    log("evaluating on the validation split")
    keras_probs = model.predict(splits.val_x.astype(np.float32), batch_size=64, verbose=0).reshape(-1)
    validation_threshold = evaluate.choose_threshold(splits.val_s, splits.val_y, keras_probs)
    threshold = args.loso_report["out_of_fold"]["threshold"] if args.loso_report else validation_threshold

    log(f"exporting to TFLite ({', '.join(export.FORMATS)}), with the fire map as a second output")
    served = export.served_model(model)
    by_path = sorted(range(len(splits.train_s)), key=lambda i: splits.train_s[i].path)  # the file list's order
    calibration = splits.train_x[[by_path[i] for i in export.calibration_picks(len(by_path))]]
    tflite_bytes, format_report = export.choose_tflite(served, size, calibration, splits.val_x, keras_probs, folder / runs.LOG_NAME,
                                                       export.cascade_fits(model, cascade))
    log(f"shipping {format_report['shipped']}: median ms per photo {format_report['median_ms_1_thread']}, "
        f"largest validation difference from Keras {format_report['validation_max_abs_diff_vs_keras']}")
    tflite_path = folder / f"{args.name}.tflite"
    tflite_path.write_bytes(tflite_bytes)
    served_as = (cascade["margin"], threshold) if cascade else None
    litert_probs = export.litert_probabilities(tflite_path, splits.val_x, served_as)
    whole = export.litert_probabilities(tflite_path, splits.val_x) if cascade else litert_probs  # the mean of both fits
    if cascade:
        share = export.second_fit_share(tflite_path, splits.val_x, cascade["margin"], threshold)
        cascade = {**cascade, "validation_second_fit_share": round(share, 4),
                   "validation_verdicts_unlike_the_mean": int(np.sum((litert_probs >= threshold) != (whole >= threshold)))}
    metrics = evaluate.summary(splits.val_s, splits.val_y, litert_probs, threshold)
    metrics_block = {"validation": metrics, "litert_vs_keras_max_abs_diff": float(np.max(np.abs(whole - keras_probs)))}
    if args.loso_report:
        metrics_block["validation_threshold"] = validation_threshold  # what validation alone would have chosen
        metrics_block["leave_one_source_out"] = args.loso_report
    holdout_metrics, held_s = None, splits.held_s
    if held_s:
        holdout_metrics = evaluate.per_source(held_s, splits.held_y, export.litert_probabilities(tflite_path, splits.held_x, served_as),
                                              threshold)
        metrics_block["held_out_sources"] = holdout_metrics
    return Exported(tflite_path, tflite_bytes, format_report, threshold, litert_probs, metrics_block, holdout_metrics, held_s,
                    export.map_card_entry(served), cascade)


def write_file_manifest(args: argparse.Namespace, splits: Splits, held_s: list, folder: Path) -> tuple[str, str]:
    """Every file used, with its hash and split; returns the manifest's name and its own hash."""
    from . import export

    split_of = {s.sha256: "holdout" for s in held_s} | {s.sha256: "val" for s in splits.val_s} | {s.sha256: "train" for s in splits.train_s}
    name = f"{args.name}.files.sha256"
    rows = [(s.sha256, split_of[s.sha256], display_path(s.path))
            for s in sorted(splits.train_s + splits.val_s + held_s, key=lambda s: s.path)]
    return name, export.write_manifest(folder / name, rows)


def model_card(args, argv, roots, size, splits: Splits, trained: Trained, exported: Exported, reports: Path,
               plots: list, manifest_name: str, manifest_hash: str) -> ModelCard:
    from . import evaluate, export

    today = dt.date.today().isoformat()
    history = trained.history
    return ModelCard(
        name=args.name,
        version=export.version_for(exported.tflite_bytes, today),
        input={"width": size, "height": size, "channels": 3, "dtype": "float32", "value_range": [0, 255],
               "preprocessing": "inference.decode_image: EXIF orientation, RGB (alpha on white), bilinear resize to a square; normalisation is inside the model"},
        threshold=exported.threshold,
        threshold_rule=THRESHOLD_RULES["loso" if args.loso_report else "validation"],
        backbone=args.backbone,
        width=args.width,
        loss=args.loss,
        test_time_augmentation="mean of the photo and its mirror image, inside the model" if args.tta == "flip" else None,
        augmentation={"mix_probability": trained.mix_probability, "white_balance_probability": args.white_balance_probability,
                      "white_balance_strength": args.white_balance_strength, "decoy_probability": args.decoy_probability,
                      "grayscale_probability": args.grayscale_probability, "crop_scale": args.crop_scale},
        pretrained_weights=_weights(args),
        parameters=int(trained.model.count_params()),
        training_data={
            "folders": [display_path(r) for r in roots],
            "images": data_mod.describe(splits.train_s + splits.val_s + exported.held_s),
            "train_images": len(splits.train_s),
            "validation_images": len(splits.val_s),
            "split": f"deterministic by near-duplicate group (difference hashes <= 6 of 64 bits apart and 16x16 thumbnails <= 8 levels apart), seed {args.seed}, "
                     f"validation fraction {args.val_fraction}; byte-identical files merged first",
            "held_out_sources": args.holdout,
            "label_corrections": data_mod.corrections_applied(splits.train_s + splits.val_s + exported.held_s),
            "credits": {name: credit for name, credit in DATA_CREDITS.items() if any(Path(r).name == name for r in roots)},
            "file_hashes": manifest_name,
            "file_hashes_sha256": manifest_hash,
        },
        metrics=exported.metrics,
        training={"epochs_run": len(history["loss"]), "seconds": round(trained.seconds, 1),
                  "best_val_auc": round(float(max(history.get("val_auc", [0]))), 4), "kept_epoch": evaluate.best_epoch(history),
                  "batch_size": args.batch_size, "weight_average_momentum": args.ema, "source_balance": args.source_balance,
                  "batch_norm_momentum": args.bn_momentum,
                  **({"fitted_elsewhere": trained.elsewhere} if trained.elsewhere else {})},
        reports={"folder": display_path(reports), "plots": plots},
        date=today,
        training_command="python -m training " + shlex.join(_recorded(_argv(argv))),
        files={"tflite": exported.tflite_path.name, "keras": trained.keras_path.name},
        tflite_format=exported.format_report,
        fire_map=exported.fire_map,
        cascade=exported.cascade,
        limitations=LIMITATIONS,
    )


def log_summary(card: ModelCard, exported: Exported) -> None:
    validation = card.metrics["validation"]
    log(f"wrote {exported.tflite_path} ({len(exported.tflite_bytes) / 1e6:.2f} MB), version {card.version}, threshold {card.threshold}")
    log(f"validation: accuracy {validation['accuracy']}, balanced {validation['balanced_accuracy']}, AUC {validation['roc_auc']}, "
        f"LiteRT/Keras max diff {card.metrics['litert_vs_keras_max_abs_diff']:.2e}")
    for source, figures in validation["per_source"].items():
        log(f"  {source}: {figures}")
    for source, figures in (exported.holdout_metrics or {}).items():
        log(f"  held out {source}: {figures}")
    if card.cascade:
        log(f"cascade: the second fit scored {100 * card.cascade['validation_second_fit_share']:.1f} % of the validation photos; "
            f"verdicts unlike the mean of both fits': {card.cascade['validation_verdicts_unlike_the_mean']}")
    members = (card.training.get("fitted_elsewhere") or {}).get("ensemble_of")
    of_whom = f" (the first of {members} averaged fits)" if members else ""
    log(f"kept epoch {card.training['kept_epoch']} of {card.training['epochs_run']}{of_whom}")


def _loso(args: argparse.Namespace) -> dict | None:
    if not args.loso:
        return None
    from . import loso, members

    recipe, figures = loso.one_recipe(args.loso)
    fits, measured = len(args.trained or [None]), loso.fits_averaged(recipe)
    if fits != measured:
        raise SystemExit(f"error: --loso {args.loso} measured {_fits(measured)}, but this run serves {_fits(fits)}: its "
                         "threshold was chosen for another model (python -m training.loso --seeds mean reports ensembles)")
    for folder in args.trained or []:  # unreadable folders are refused with their reasons when their weights load
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
            record = members.read(folder, args.name).record
            served = loso.settings_text(loso.fit_settings(record), seed=False)
            if served != loso.recipe_but_seed(recipe):
                raise SystemExit(f"error: --loso {args.loso} measured another recipe than --trained {folder}: "
                                 f"{loso.recipe_but_seed(recipe)} there, {served} here")
    if only := loso.one_class(figures["out_of_fold"]):  # its threshold would be served on nothing's say-so
        raise SystemExit(f"error: every photo --loso {args.loso} held out is {only}: its threshold was chosen on one "
                         "class and means nothing; report folds that hold out a source of the other class too")
    return {"recipe": recipe, "file": f"{runs.REPORTS}/{LOSO_NAME}", **figures}


def _fits(count: int) -> str:
    return "one fit" if count == 1 else f"the mean of {count} fits"


def _weights(args: argparse.Namespace) -> str | None:
    return None if args.weights == "none" else args.weights


def display_path(path: Path) -> str:
    """Paths relative to the repository when inside or beside it, so the card is machine-independent."""
    resolved = path.resolve()
    for base, prefix in ((ROOT, ""), (ROOT.parent, "../")):
        try:
            return prefix + resolved.relative_to(base).as_posix()
        except ValueError:
            continue
    return resolved.as_posix()
