"""``python -m training.rescore``: fits' scores again, on the photos exactly as serving decodes them.

A fit of ``python -m training.accelerated`` scores its validation and held-out photos as its pack stores them (WebP,
about 2 levels of 255 from the exact decode), so ``python -m training.loso`` on its folder is a little off what
serving would give. This finds each scored photo by its content hash in the data folders the pack was made from,
decodes it through the inference core, scores it with the fit's weights (one pass and flip-averaged, as the fit did)
and writes a copy of the fit folder into ``--out`` whose ``scores.json`` holds those probabilities and whose
``run.json`` says so (``scored_on``). ``training.loso`` on the copies then reports what serving sees; it refuses to
pool copies with fits scored on their pack.

  python -m training.rescore FIT_DIR... --out DIR [--data FOLDER...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from . import accelerated
from . import data as data_mod
from .options import DEFAULT_DATA, DEFAULT_SOURCES, IMAGE_SIDES, WIDTHS

EXACT = "the exact decodes"  # run.json's scored_on["photos"] in a rescored copy


class RescoreError(ValueError):
    """A fit that cannot be rescored as asked; the message says why."""


class AlreadyRescored(RescoreError):
    """A copy whose scores are already of the exact decodes."""


def read_fit(folder: Path) -> tuple[dict, dict]:
    """A finished fit's ``run.json`` and ``scores.json``, with its weights present."""
    try:
        record = json.loads((folder / accelerated.RUN).read_text())
        table = json.loads((folder / accelerated.SCORES).read_text())
        if table["columns"] != accelerated.SCORE_COLUMNS:
            raise ValueError(f"scores.json's columns are {table['columns']}")
        if not isinstance(record["image_size"], int) or not isinstance(record["settings"]["width"], (int, float)):
            raise ValueError("run.json names no image size and width")
        if not IMAGE_SIDES[0] <= record["image_size"] <= IMAGE_SIDES[1]:  # each photo is decoded to it
            raise ValueError(f"run.json's image size {record['image_size']} is not from {IMAGE_SIDES[0]} to {IMAGE_SIDES[1]} pixels")
        if not WIDTHS[0] <= record["settings"]["width"] <= WIDTHS[1]:  # the network is built to it
            raise ValueError(f"run.json's width {record['settings']['width']} is not from {WIDTHS[0]:g} to {WIDTHS[1]:g}")
        scored_on = record.get("scored_on", {}).get("photos")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RescoreError(f"{folder}: not a finished `python -m training.accelerated one` folder ({exc})") from None
    if not (folder / accelerated.WEIGHTS).is_file():
        raise RescoreError(f"{folder}: no {accelerated.WEIGHTS} to score with (a grid archive holds weights only for "
                           "the folds WEIGHTS named; WEIGHTS=every keeps them all)")
    if scored_on == EXACT:
        raise AlreadyRescored(f"{folder}: already rescored on the exact decodes")
    return record, table


def decode_by_hash(by_hash: dict[str, data_mod.Sample], wanted: set[str], size: int) -> dict[str, np.ndarray]:
    """The photos with these content hashes, decoded at ``size`` through the inference core."""
    missing = sorted(wanted - by_hash.keys())
    if missing:
        raise RescoreError(f"{len(missing)} scored photos are not in the data folders (the first: {missing[0][:12]}): "
                           "give the folders the pack was made from")
    chosen = [by_hash[h] for h in sorted(wanted)]
    images, _, kept = data_mod.decode_all(chosen, size)
    if len(kept) != len(chosen):
        raise RescoreError(f"{len(chosen) - len(kept)} scored photos no longer decode (listed above)")
    return {s.sha256: image for s, image in zip(kept, images)}


def rescore(folder: Path, record: dict, table: dict, decoded: dict[str, np.ndarray], by_hash: dict[str, data_mod.Sample]) -> dict:
    """The fit's ``scores.json`` again, each photo scored on its exact decode, in the same rows and order."""
    from . import backbones

    rows = table["rows"]
    changed = [row[0][:12] for row in rows if by_hash[row[0]].label != row[2]]
    if changed:
        raise RescoreError(f"{folder}: {len(changed)} photos carry another label in the data folders than when the fit "
                           f"scored them (the first: {changed[0]})")
    model = backbones.compact(record["image_size"], width=record["settings"]["width"])
    try:
        model.load_weights(folder / accelerated.WEIGHTS)
    except (OSError, ValueError) as exc:
        raise RescoreError(f"{folder}: its {accelerated.WEIGHTS} does not fit the model its run.json describes ({exc})") from None
    return accelerated.score_table(model, np.stack([decoded[row[0]] for row in rows]), [row[0] for row in rows],
                                   [row[1] for row in rows], [row[2] for row in rows], [row[3] == "held" for row in rows])


def write_copy(folder: Path, target: Path, record: dict, scores: dict, roots: list[Path]) -> None:
    """The fit folder again at ``target``: its weights and history as they are, the new scores, and a run.json that
    says where the scores come from. Written under a temporary name and renamed, so a copy is whole or absent."""
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for name in (accelerated.WEIGHTS, accelerated.HISTORY):
        if (folder / name).is_file():
            shutil.copy2(folder / name, partial / name)
    scored_on = {"photos": EXACT, "data": [str(r) for r in roots], "rescored_from": str(folder)}
    (partial / accelerated.RUN).write_text(json.dumps({**record, "scored_on": scored_on}, indent=2) + "\n")
    (partial / accelerated.SCORES).write_text(json.dumps(scores) + "\n")
    partial.rename(target)


def shift(before: dict, after: dict) -> tuple[float, float]:
    """How far the one-pass probabilities moved: mean and largest absolute difference."""
    column = accelerated.SCORE_COLUMNS.index("probability")
    moved = np.abs(np.array([r[column] for r in after["rows"]]) - np.array([r[column] for r in before["rows"]]))
    return (float(moved.mean()), float(moved.max())) if len(moved) else (0.0, 0.0)


def finished_before(folder: Path, target: Path) -> bool:
    """Whether ``target`` is this fit's rescored copy from an earlier run (kept: a retry after a failure part way
    through redoes only what is missing); an existing folder that is anything else is refused, never overwritten."""
    return earlier_copy(target, "rescored", lambda record: record["scored_on"]["rescored_from"] == str(folder) and (
        target / accelerated.WEIGHTS).read_bytes() == (folder / accelerated.WEIGHTS).read_bytes())


def earlier_copy(target: Path, kind: str, ours: Callable[[dict], bool]) -> bool:
    """Whether ``target`` is a whole copy that ``ours`` recognises by its ``run.json`` (False: nothing there yet); any
    other folder in the way is an error, so a copy is never written over something else."""
    if not target.exists():
        return False
    try:
        same = (target / accelerated.SCORES).is_file() and ours(json.loads((target / accelerated.RUN).read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        same = False
    if not same:
        raise RescoreError(f"{target} already exists and is not this fit's {kind} copy: give another --out (nothing is "
                           "overwritten)")
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.rescore", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("fits", nargs="+", type=Path, help="folders of python -m training.accelerated one (with their weights)")
    p.add_argument("--out", type=Path, required=True, help="folder for the rescored copies, each named as its fit folder")
    p.add_argument("--data", nargs="+", type=Path, metavar="FOLDER",
                   help=f"folders holding fire/ and nofire/ subfolders, those the pack was made from (default: every "
                        f"source in {DEFAULT_DATA})")
    args = p.parse_args(argv)
    roots = args.data or [DEFAULT_DATA / name for name in DEFAULT_SOURCES]
    names = [folder.name for folder in args.fits]
    if len(set(names)) < len(names):
        p.error("two fit folders share a name; their copies in --out would too")
    try:
        fits = [(folder, *read_fit(folder)) for folder in args.fits]
        for folder in [folder for folder, _, _ in fits if finished_before(folder, args.out / folder.name)]:
            print(f"{folder.name}: rescored before, kept: {args.out / folder.name}", file=sys.stderr)
            fits = [fit for fit in fits if fit[0] != folder]
        by_hash = {s.sha256: s for s in data_mod.discover(roots)}
        for size in sorted({record["image_size"] for _, record, _ in fits}):
            of_size = [(f, r, t) for f, r, t in fits if r["image_size"] == size]
            wanted = {row[0] for _, _, table in of_size for row in table["rows"]}
            print(f"decoding {len(wanted)} photos at {size} px through the inference core", file=sys.stderr, flush=True)
            decoded = decode_by_hash(by_hash, wanted, size)
            for folder, record, table in of_size:
                scores = rescore(folder, record, table, decoded, by_hash)
                write_copy(folder, args.out / folder.name, record, scores, roots)
                mean, most = shift(table, scores)
                print(f"{folder.name}: {len(scores['rows'])} photos rescored, probabilities moved {mean:.4f} on average, "
                      f"{most:.4f} at most: {args.out / folder.name}", file=sys.stderr, flush=True)
    except (RescoreError, data_mod.DataError) as exc:
        raise SystemExit(f"error: {exc}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
