"""``python -m training.accelerated``: fit models from a pack (``python -m training.pack``) wherever Keras runs,
on any backend: made for a lent GPU machine, which has JAX but no TensorFlow.

  one PACK --out DIR [--holdout SOURCE] [--width W] ...   fit one model; DIR gets model.weights.h5, history.json,
                                                          run.json and scores.json (validation and held-out photos)
                                                          and, until the fit ends, its progress (DIR/progress/)
  grid PACK --out DIR --variant NAME:ARGS ... --folds all SOURCE ... [--seeds SEED ...]
                                                          fit every variant on every fold (all: nothing held out)
                                                          as parallel processes, each in DIR/NAME-FOLD/ (with
                                                          --seeds, each seed in DIR/NAME-sSEED-FOLD/)

A fit stopped before it ended (its --deadline, a machine taken back, Ctrl-C) goes on from its last finished epoch when
the same command is given again with --resume, as an uninterrupted fit would have; with --resume, a fit that had
ended is left as it is, and one that never started starts.

Then, here: ``python -m training --trained DIR ...`` (the same data, size, seed and hold-outs) chooses the threshold,
exports the ``.tflite`` and evaluates it on the exact decoded photos, and writes the usual run folder and card.
Augmentation, loss, schedule and early stopping are the very code ``python -m training`` uses (``training.fitting``).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from . import resumable  # free of Keras, as options is: the backend is chosen later
from .options import without

WEIGHTS, HISTORY, RUN, SCORES = "model.weights.h5", "history.json", "run.json", "scores.json"
DISTILL_WEIGHT = 0.5


def _fit_options(p: argparse.ArgumentParser) -> None:
    from . import augment, options

    p.add_argument("--holdout", action="append", default=[], metavar="SOURCE")
    p.add_argument("--width", type=options.network_width, default=2.0)
    options.add_bn_momentum_option(p)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--patience", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=2e-3)
    p.add_argument("--loss", choices=("focal", "crossentropy"), default="focal")
    p.add_argument("--ema", type=options.ema_momentum, default=0.0, metavar="MOMENTUM",
                   help="validate and keep an exponential moving average of the weights with this momentum per step (0: off)")
    p.add_argument("--mix-probability", type=options.probability, default=augment.MIX_PROBABILITY)
    options.add_source_balance_option(p)
    p.add_argument("--white-balance-probability", type=options.probability, default=augment.WHITE_BALANCE_PROBABILITY)
    p.add_argument("--white-balance-strength", type=float, default=augment.WHITE_BALANCE_STRENGTH)
    p.add_argument("--decoy-probability", type=options.probability, default=augment.DECOY_PROBABILITY)
    options.add_grayscale_option(p)
    options.add_crop_scale_option(p)
    p.add_argument("--init", type=Path, metavar="WEIGHTS",
                   help="start from these weights (a model.weights.h5 of the same width and size) instead of from scratch: "
                        "fine-tuning; the file's hash goes into run.json")
    p.add_argument("--teacher", action="append", default=[], type=Path, metavar="DIR",
                   help="distil: a fit folder of this command, fitted on the same training photos (the same pack and "
                        "hold-outs), whose verdict on each augmented photo becomes part of the target; repeatable (the "
                        "teachers' mean verdict). In a grid, {fold} and {seed} in a variant's options name the fit's own")
    p.add_argument("--distill-weight", type=options.probability, metavar="SHARE",
                   help=f"with --teacher: the share of the target that is the teachers' verdict, the rest the label "
                        f"(default {DISTILL_WEIGHT})")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--workers", type=int, default=2, help="threads preparing batches (default 2)")
    p.add_argument("--deadline", type=float, help="a Unix time after which no new epoch starts; the fit can then be "
                                                  "resumed (--resume)")
    p.add_argument("--resume", action="store_true",
                   help="go on from the progress in --out of a fit of the same options that was stopped (a deadline, a "
                        "machine taken back, Ctrl-C), from its last finished epoch; a fit that had ended is left as it is, "
                        "and one that never started starts")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.accelerated", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = p.add_subparsers(dest="command", required=True)
    one = commands.add_parser("one", help="fit one model")
    one.add_argument("pack", type=Path)
    one.add_argument("--out", type=Path, required=True)
    _fit_options(one)
    grid = commands.add_parser("grid", help="fit every variant on every fold, in parallel")
    grid.add_argument("pack", type=Path)
    grid.add_argument("--out", type=Path, required=True)
    grid.add_argument("--variant", action="append", required=True, metavar="NAME:ARGS",
                      help='a name and the options of "one" for it, e.g. "w2:--width 2.0"; repeatable. {fold} and {seed} '
                           'in them become each fit\'s own, e.g. "d:--teacher fits/base-s{seed}-{fold}"')
    grid.add_argument("--folds", nargs="+", default=["all"], help="all (nothing held out) and/or sources to hold out")
    grid.add_argument("--seeds", nargs="+", type=int, metavar="SEED",
                      help="fit every variant and fold with each of these seeds, in DIR/NAME-sSEED-FOLD/ (default: the "
                           "variant's own seed, in DIR/NAME-FOLD/); one seed's figures can differ from another's by as "
                           "much as two recipes do")
    grid.add_argument("--parallel", type=int, default=4, help="processes at once (default 4)")
    grid.add_argument("--minutes", type=float, default=30.0, help="no new epoch starts after this many minutes (default 30)")
    grid.add_argument("--resume", action="store_true",
                      help="the same grid again, after a stop: fits that ended are kept, stopped ones go on from their last "
                           "finished epoch, and the others start")
    return p


def digest(hashes) -> str:
    """One hash for a set of photos (their content hashes), to check that two runs trained on the same ones."""
    return hashlib.sha256("\n".join(sorted(map(str, hashes))).encode()).hexdigest()


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def fit_one(args: argparse.Namespace) -> int:
    if "KERAS_BACKEND" not in os.environ and importlib.util.find_spec("tensorflow") is None:
        os.environ["KERAS_BACKEND"] = "jax"  # a GPU machine without TensorFlow
    import keras

    from . import augment, backbones, fitting, pack, progress, quiet, teachers

    started = time.time()
    progress_folder = args.out / resumable.FOLDER
    if resumable.has_progress(args.out) and not args.resume:
        raise SystemExit(f"error: {args.out} holds a fit that was stopped before it ended: give --resume to go on from "
                         f"its last finished epoch, or remove {progress_folder} to fit again from the start")
    if args.resume and finished(args.out):
        log(f"{args.out} holds a finished fit: nothing to resume")
        return 0
    data = pack.read(args.pack)
    rows = data.fold(args.holdout)
    size = data.meta["size"]
    train_digest = digest(data.sha256[rows["train"]])
    teacher = None
    if args.distill_weight is not None and not (args.teacher and args.distill_weight > 0):
        raise SystemExit("error: --distill-weight needs --teacher, and a weight over 0 (without --teacher, nothing is distilled)")
    if args.teacher:
        args.distill_weight = DISTILL_WEIGHT if args.distill_weight is None else args.distill_weight
        try:
            teacher = teachers.Teachers(args.teacher, size, train_digest)
        except teachers.TeacherMismatch as exc:
            raise SystemExit(f"error: {exc}") from None
        log(f"distilling: {args.distill_weight:g} of each target is the mean verdict of {len(teacher)} teacher(s)")
    log(f"{keras.backend.backend()} backend; pack {args.pack.name}: {rows['train'].sum()} train, {rows['val'].sum()} validation, "
        f"{rows['held'].sum()} held out ({', '.join(args.holdout) or 'none'}), {size} px; read in {time.time() - started:.0f} s")
    schedule = fitting.Schedule(
        epochs=args.epochs, patience=args.patience, batch_size=args.batch_size, learning_rate=args.learning_rate,
        loss=args.loss, ema=args.ema, seed=args.seed, workers=args.workers, deadline=args.deadline,
        distill_weight=args.distill_weight if teacher else 0.0,
        source_balance=args.source_balance,
        recipe=augment.Recipe.of(vars(args)))
    keras.utils.set_random_seed(args.seed)
    model = fitting.compile_model(backbones.compact(size, width=args.width, bn_momentum=args.bn_momentum), schedule)
    init = None
    if args.init:
        try:
            with quiet.optimizer_state_ignored():
                model.load_weights(args.init)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"error: --init {args.init} does not fit a width-{args.width} model of {size} px ({exc})") from None
        init = {"file": args.init.name, "sha256": hashlib.sha256(args.init.read_bytes()).hexdigest()}
        log(f"starting from {args.init} (sha256 {init['sha256'][:12]})")
    # What the progress of a stopped fit must share with this one, beside the schedule: the network and the photos.
    fingerprint = {"width": args.width, "bn_momentum": args.bn_momentum, "image_size": size, "train_digest": train_digest,
                   "init": init, "teachers": teacher.provenance if teacher else None}
    try:
        fitted = fitting.fit(model, data.images[rows["train"]], data.labels[rows["train"]], data.images[rows["val"]],
                             data.labels[rows["val"]], schedule, log, train_sources=data.sources[rows["train"]],
                             teacher=teacher, progress_folder=progress_folder, fingerprint=fingerprint)
    except progress.ProgressMismatch as exc:
        raise SystemExit(f"error: {exc}") from None
    except KeyboardInterrupt:
        log(f"interrupted: give the same command with --resume to go on from the last finished epoch ({progress_folder})")
        return 130
    args.out.mkdir(parents=True, exist_ok=True)
    # The weights alone: an uncompiled copy, so the file carries no optimizer state (a third of the size).
    served = backbones.compact(size, width=args.width)
    served.set_weights(fitted.model.get_weights())
    served.save_weights(args.out / WEIGHTS)
    (args.out / HISTORY).write_text(json.dumps(fitted.history) + "\n")
    scored = rows["val"] | rows["held"]
    (args.out / SCORES).write_text(json.dumps(score_table(
        fitted.model, data.images[scored], data.sha256[scored], data.sources[scored], data.labels[scored],
        rows["held"][scored])) + "\n")
    # The teachers' folders differ from fold to fold; what makes the recipe is that there were teachers, and how many.
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                if k not in {"command", "deadline", "argv", "init", "teacher", "distill_weight", "resume"}}
    if teacher:
        settings.update(distill_weight=args.distill_weight, teachers=len(teacher))
    (args.out / RUN).write_text(json.dumps({
        "command": "python -m training.accelerated " + shlex.join(args.argv),
        "settings": settings, "image_size": size, "backend": keras.backend.backend(), "device": _device(),
        "pack": data.meta, **({"init": init} if init else {}), **({"teachers": teacher.provenance} if teacher else {}),
        "train_digest": train_digest, "parameters": int(fitted.model.count_params()), "fit_seconds": round(fitted.seconds, 1),
        "epochs_run": len(fitted.history.get("loss", [])), "best_val_auc": round(max(fitted.history.get("val_auc", [0.0])), 4),
        **({"resumable": True} if fitted.resumable else {}),
    }, indent=2) + "\n")
    if fitted.resumable:
        log(f"stopped at the deadline after epoch {len(fitted.history.get('loss', []))} of {args.epochs}; the best epoch's "
            f"files are written, and the same command with --resume goes on from there")
    log(f"done in {time.time() - started:.0f} s (fit {fitted.seconds:.0f} s): {args.out}")
    return 0


def fitted_as(out: Path, command: list[str]) -> bool:
    """Whether the fit in ``out`` was made by ``command`` (a grid job's), its deadline and --resume aside."""
    try:
        recorded = shlex.split(json.loads((out / RUN).read_text())["command"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    def fitted(argv: list[str]) -> list[str]:  # after "python -m training.accelerated"; the deadline and --resume
        return without(argv[3:], valued=("--deadline",), flags=("--resume",))  # say when it ran, not what it fitted

    return fitted(recorded) == fitted(command)


def finished(out: Path) -> bool:
    """Whether ``out`` holds a fit that ended: its files are written and it left no progress to go on from."""
    return (out / RUN).exists() and not resumable.has_progress(out)


SCORE_COLUMNS = ["sha256", "source", "label", "split", "probability", "flip_averaged"]


def score_table(model, images, hashes, sources, labels, held) -> dict:
    """A fit's ``scores.json``: each photo's probability in one pass and flip-averaged (the photo and its mirror)."""
    import numpy as np

    images = np.asarray(images, dtype=np.float32)
    plain = model.predict(images, batch_size=256, verbose=0).reshape(-1)
    mirrored = model.predict(images[:, :, ::-1], batch_size=256, verbose=0).reshape(-1)
    return {"columns": SCORE_COLUMNS,
            "rows": [[str(h), str(s), int(y), "held" if out else "val", round(float(p), 6), round(float((p + m) / 2), 6)]
                     for h, s, y, out, p, m in zip(hashes, sources, labels, held, plain, mirrored)]}


def _device() -> str:
    try:
        import jax

        return ", ".join(sorted({d.device_kind for d in jax.devices()}))
    except Exception:  # another backend: the CPU
        return "cpu"


def grid_jobs(args: argparse.Namespace, deadline: float) -> list[tuple[Path, list[str]]]:
    """Each fit of the grid: its folder and its command."""
    jobs = []
    seeds = [(f"-s{seed}", ["--seed", str(seed)]) for seed in args.seeds] if args.seeds else [("", [])]
    for variant in args.variant:
        name, _, options = variant.partition(":")
        for fold in args.folds:
            holdout = [] if fold == "all" else ["--holdout", fold]
            for tag, seed in seeds:
                out = args.out / f"{name}{tag}-{fold.replace('/', '_')}"
                # {fold} and {seed} name this fit's own (a teacher fitted on the same fold), so one variant serves all.
                own = options.replace("{fold}", fold.replace("/", "_"))
                if "{seed}" in own and not seed:
                    raise SystemExit(f"error: variant {name} names {{seed}}, which needs --seeds")
                own = own.replace("{seed}", seed[1] if seed else "")
                jobs.append((out, [sys.executable, "-m", "training.accelerated", "one", str(args.pack), "--out", str(out),
                                   *holdout, *shlex.split(own), *seed, "--deadline", str(deadline),
                                   *(["--resume"] if args.resume else [])]))
    return jobs


def grid(args: argparse.Namespace) -> int:
    """Every variant on every fold, ``--parallel`` processes at once; one failing job does not stop the others."""
    deadline = time.time() + args.minutes * 60
    jobs = grid_jobs(args, deadline)
    twice = sorted(out.name for out, count in Counter(out for out, _ in jobs).items() if count > 1)
    if twice:  # two fits writing one folder would leave neither readable
        raise SystemExit(f"error: {', '.join(twice)} would be fitted twice: give each variant, fold and seed once")
    stopped = [out.name for out, _ in jobs if resumable.has_progress(out)]
    if stopped and not args.resume:  # each would refuse to start over its own progress
        raise SystemExit(f"error: {', '.join(stopped)} were stopped before they ended: give --resume to go on with them "
                         f"(and keep the fits that ended), or choose another --out")
    results = {}
    if args.resume:
        done = [out for out, _ in jobs if finished(out)]
        other = [out.name for out, command in jobs if out in done and not fitted_as(out, command)]
        if other:  # kept under a name that now means another fit
            raise SystemExit(f"error: {', '.join(other)} were fitted with other options than this grid gives them (see "
                             f"their run.json): give this recipe another variant name, or another --out")
        for out in done:
            results[out.name] = {"exit": 0, "kept": "fitted before"}
        if done:
            log(f"kept, fitted before: {', '.join(out.name for out in done)}")
        jobs = [(out, command) for out, command in jobs if out not in done]
    args.out.mkdir(parents=True, exist_ok=True)
    if len(jobs) > args.parallel:
        log(f"{len(jobs)} fits, {args.parallel} at a time: the others wait for a free place, and one that has not "
            f"started within {args.minutes:g} minutes is skipped (give --parallel {len(jobs)} to run them all at once)")
    running: list[tuple[Path, subprocess.Popen, float]] = []
    pending = list(jobs)
    while pending or running:
        while pending and len(running) < args.parallel:
            out, command = pending.pop(0)
            if time.time() > deadline:  # it would stop after one epoch: a fit in name only
                results[out.name] = {"exit": None, "skipped": "not started before the deadline"}
                log(f"{out.name}: skipped, not started before the deadline")
                continue
            out.mkdir(parents=True, exist_ok=True)
            resumed = resumable.has_progress(out)
            handle = (out / "fit.log").open("a" if resumed else "w")  # a resumed fit's log goes on
            running.append((out, subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT), time.time()))
            log(f"{'resumed' if resumed else 'started'} {out.name}")
        time.sleep(2)
        for job in list(running):
            out, process, began = job
            if process.poll() is not None:
                running.remove(job)
                results[out.name] = {"exit": process.returncode, "seconds": round(time.time() - began, 1),
                                     **({"resumable": True} if resumable.has_progress(out) else {})}
                log(f"{out.name}: exit {process.returncode} after {time.time() - began:.0f} s")
    (args.out / "grid.json").write_text(json.dumps(results, indent=2) + "\n")
    failed = [name for name, result in results.items() if result["exit"]]
    skipped = [name for name, result in results.items() if "skipped" in result]
    if failed:
        log(f"failed: {', '.join(failed)} (see their fit.log)")
    if skipped:
        log(f"not fitted, the deadline came first: {', '.join(skipped)}")
    unfinished = [name for name, result in results.items() if result.get("resumable")]
    if unfinished:
        log(f"stopped before they ended (their best epoch's files are written): {', '.join(unfinished)}; the same "
            f"command with --resume goes on with them")
    return 1 if failed or skipped else 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return fit_one(args) if args.command == "one" else grid(args)


if __name__ == "__main__":
    sys.exit(main())
