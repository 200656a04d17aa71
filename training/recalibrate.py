"""``python -m training.recalibrate``: fits again with their batch-norm statistics made exact, at no fitting cost.

Outside training (validation, ``scores.json``, serving) a batch-norm layer normalises with running averages of the
batch statistics, which follow the weights at ``--bn-momentum``'s pace (0.99: some 100 steps behind). For each fit
folder of ``python -m training.accelerated one`` this recomputes them as the plain mean over two epochs of the fit's
own augmented training batches, for its final weights, rescores its validation and held-out photos from the pack and
writes a copy of the folder into ``--out``: the new weights, the same history, and a ``run.json`` whose settings say
``bn_statistics: exact``, so ``python -m training.loso`` reports the copies as a recipe of their own beside the fits
and ``python -m training --trained`` can serve them. To score the copies on the exact decodes, give them to
``python -m training.rescore`` afterwards.

  python -m training.recalibrate FIT_DIR... --out DIR [--pack PACK] [--epochs N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from dataclasses import astuple
from pathlib import Path

from . import accelerated, rescore

EXACT = "exact"  # run.json's settings["bn_statistics"] in a recalibrated copy (absent: the running averages)
MAX_BATCH = 4096  # photos in one forward pass: a damaged run.json must not ask for the whole pack at once


class RecalibrateError(ValueError):
    """A fit that cannot be recalibrated as asked; the message says why."""


def read_fit(folder: Path) -> tuple[dict, dict, object]:
    """A finished fit's ``run.json``, ``scores.json`` and training batches' schedule, scored on its pack and not
    recalibrated before; a damaged record is refused here, before any fit is recalibrated."""
    try:
        record, table = rescore.read_fit(folder)
    except rescore.AlreadyRescored:
        raise RecalibrateError(f"{folder}: scored on the exact decodes (training.rescore): recalibrate the fit it was "
                               "rescored from, then rescore the copy") from None
    if record["settings"].get("bn_statistics") == EXACT:
        raise RecalibrateError(f"{folder}: its batch-norm statistics are already exact (training.recalibrate)")
    return record, table, schedule_of(folder, record["settings"])


def schedule_of(folder: Path, settings: dict):
    """The batches the fit trained on: its batch size, seed and augmentation recipe, from its settings."""
    from . import augment, fitting

    try:
        unset = [k for k in ("mix_probability", "white_balance_probability", "white_balance_strength") if settings[k] is None]
        if unset:  # every fit records these three; Recipe.of gives options newer than a fit their defaults
            raise ValueError(f"no {unset[0]}")
        recipe = augment.Recipe.of(settings)
        shares = astuple(recipe)
        batch_size, seed = settings["batch_size"], settings["seed"]
        if not all(isinstance(share, (int, float)) and 0.0 <= share <= 1.0 for share in shares):
            raise ValueError(f"augmentation shares {shares} not from 0 to 1")
        if not (isinstance(batch_size, int) and 1 <= batch_size <= MAX_BATCH) or not (isinstance(seed, int) and seed >= 0):
            raise ValueError(f"batch size {batch_size!r} (1 to {MAX_BATCH}) or seed {seed!r} (0 or more) is not as fitted")
        if not (isinstance(settings["holdout"], list) and all(isinstance(name, str) for name in settings["holdout"])):
            raise ValueError("no list of held-out sources")
    except (KeyError, TypeError, ValueError) as exc:
        raise RecalibrateError(f"{folder}: its run.json does not say how it was fitted ({exc})") from None
    return fitting.Schedule(batch_size=batch_size, seed=seed, recipe=recipe)


def pack_for(record: dict, given: Path | None, cache: dict):
    """The pack holding the fit's training photos: ``--pack`` or the one its run.json names, checked by the
    digest of the training photos (a pack made again from other photos, or split otherwise, is refused)."""
    from . import pack

    path = given or Path(str(record["settings"].get("pack", "")))
    if not path.is_file():
        raise RecalibrateError(f"no pack at {path}" if given else f"no pack at {path}, where the fit's run.json says it "
                               "was made from: give that pack with --pack")
    if path not in cache:
        cache[path] = pack.read(path)  # a damaged pack is a clear error there
    data = cache[path]
    if data.meta["size"] != record["image_size"]:
        raise RecalibrateError(f"the pack {path} holds {data.meta['size']} px photos, the fit {record['image_size']} px")
    rows = data.fold(record["settings"]["holdout"])
    if accelerated.digest(data.sha256[rows["train"]]) != record.get("train_digest"):
        raise RecalibrateError(f"the pack {path} does not hold this fit's training photos (another digest): give the "
                               "one the fits were made from with --pack")
    return data, rows


def recalibrate(folder: Path, record: dict, table: dict, schedule, data, rows, epochs: int) -> tuple[object, dict, int]:
    """The fit's model with exact batch-norm statistics, its ``scores.json`` again (the same rows, in order) and the
    number of batches averaged."""
    from . import backbones, fitting

    settings = record["settings"]
    model = backbones.compact(record["image_size"], width=settings["width"])
    try:
        model.load_weights(folder / accelerated.WEIGHTS)
    except (OSError, ValueError) as exc:
        raise RecalibrateError(f"{folder}: its {accelerated.WEIGHTS} does not fit the model its run.json describes ({exc})") from None
    batches = fitting.TrainingBatches(data.images[rows["train"]], data.labels[rows["train"]], schedule)
    seen = fitting.exact_batch_norm_statistics(model, batches, epochs)
    index = {h: i for i, h in enumerate(data.sha256)}
    try:
        at = [index[row[0]] for row in table["rows"]]
    except KeyError as exc:
        raise RecalibrateError(f"{folder}: a scored photo ({str(exc)[1:13]}) is not in the pack") from None
    except (TypeError, IndexError) as exc:
        raise RecalibrateError(f"{folder}: its scores.json is damaged ({exc})") from None
    if [int(data.labels[i]) for i in at] != [row[2] for row in table["rows"]]:
        raise RecalibrateError(f"{folder}: the pack labels some scored photos otherwise than the fit did")
    scores = accelerated.score_table(model, data.images[at], [row[0] for row in table["rows"]],
                                     [row[1] for row in table["rows"]], [row[2] for row in table["rows"]],
                                     [row[3] == "held" for row in table["rows"]])
    return model, scores, seen


def write_copy(folder: Path, target: Path, record: dict, model, scores: dict, provenance: dict) -> None:
    """The fit folder again at ``target``, with the new weights and scores; whole or absent (renamed into place)."""
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    if (folder / accelerated.HISTORY).is_file():
        shutil.copy2(folder / accelerated.HISTORY, partial / accelerated.HISTORY)
    model.save_weights(partial / accelerated.WEIGHTS)
    copied = {**record, "settings": {**record["settings"], "bn_statistics": EXACT}, "recalibrated": provenance}
    (partial / accelerated.RUN).write_text(json.dumps(copied, indent=2) + "\n")
    (partial / accelerated.SCORES).write_text(json.dumps(scores) + "\n")
    partial.rename(target)


def weights_hash(folder: Path) -> str:
    return hashlib.sha256((folder / accelerated.WEIGHTS).read_bytes()).hexdigest()


def finished_before(folder: Path, weights_sha256: str, target: Path) -> bool:
    """Whether ``target`` is this fit's recalibrated copy from an earlier run, of the weights the fit has now (kept, so a
    retry redoes only what is missing); any other folder in the way, a copy of earlier weights among them, is refused,
    never overwritten."""
    return rescore.earlier_copy(target, "recalibrated", lambda record: record["recalibrated"]["from"] == str(folder)
                                and record["recalibrated"]["weights_sha256"] == weights_sha256)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.recalibrate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("fits", nargs="+", type=Path, help="folders of python -m training.accelerated one (with their weights)")
    p.add_argument("--out", type=Path, required=True, help="folder for the copies, each named as its fit folder")
    p.add_argument("--pack", type=Path, help="the pack the fits were made from (default: the one each run.json names)")
    p.add_argument("--epochs", type=int, default=2, choices=range(1, 11), metavar="N",
                   help="epochs of training batches to average the statistics over, 1 to 10 (default 2)")
    args = p.parse_args(argv)
    names = [folder.name for folder in args.fits]
    if len(set(names)) < len(names):
        p.error("two fit folders share a name; their copies in --out would too")
    packs: dict = {}
    try:
        fits = [(folder, *read_fit(folder)) for folder in args.fits]
        for folder, record, table, schedule in fits:
            target, source = args.out / folder.name, weights_hash(folder)  # read once: checked against a copy, then recorded
            if finished_before(folder, source, target):
                print(f"{folder.name}: recalibrated before, kept: {target}", file=sys.stderr)
                continue
            data, rows = pack_for(record, args.pack, packs)
            started = time.time()
            model, scores, seen = recalibrate(folder, record, table, schedule, data, rows, args.epochs)
            write_copy(folder, target, record, model, scores, {"from": str(folder), "weights_sha256": source,
                       "epochs": args.epochs, "batches": seen, "seconds": round(time.time() - started, 1)})
            mean, most = rescore.shift(table, scores)
            print(f"{folder.name}: statistics of {seen} batches in {time.time() - started:.0f} s; probabilities moved "
                  f"{mean:.4f} on average, {most:.4f} at most: {target}", file=sys.stderr, flush=True)
    except (RecalibrateError, rescore.RescoreError) as exc:
        raise SystemExit(f"error: {exc}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
