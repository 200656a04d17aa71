"""``python -m training.loso``: leave-one-source-out figures from fold folders, to rank recipes and choose the threshold
on what generalises to a source the model has never seen.

Each fold folder is one ``python -m training.accelerated one`` fit with one source held out (its ``scores.json`` holds
the fold's probabilities on its validation photos and on the whole held-out source). A recipe is a fit's settings,
seed included, so folds of two seeds are reported side by side, which shows how much the seed alone moves the
figures. For each recipe it prints:

- per fold, the held-out source's false alarms (and fire recall, where it has fires) at the threshold the fold chose on
  its own validation photos: what a model trained without that source does on it;
- pooled over folds (every photo scored by the fold that never saw its source: "out of fold"), the per-source table,
  its macro balanced accuracy and ROC AUC, at one threshold chosen on those out-of-fold scores.

With ``--seeds mean`` (or ``both``), a recipe fitted with several seeds is reported as their ensemble: each photo's
probability is the mean of the seeds' fits, which is what serving those fits as one model computes
(``python -m training --trained DIR DIR ...``).

With ``--cascade`` (and ``--seeds mean`` or ``both``), an ensemble of two seeds is also reported as a cascade would
serve it: the first fit alone where it is clear, the mean of both where the first is near the threshold. For each
order and margin: the share of photos the second fit scores, how many verdicts differ from the mean's, and how many
wrong verdicts the core would call clear (against the mean's count).

A fit scores its pack's photos (WebP); ``python -m training.rescore`` copies fit folders scored on the exact decodes,
what serving sees. The report says which (``scored_on``), and folders of both kinds are never pooled.

Several recipes end with a ranking: best first by out-of-fold macro balanced accuracy, each named by the settings in
which it differs from the others. Only recipes held out on the same sources are ranked together.

  python -m training.loso FOLD_DIR... [--score probability|flip_averaged] [--seeds apart|mean|both] [--cascade] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference import CLEAR, certainty_of

from . import accelerated
from .options import BATCH_NORM_MOMENTUM, CROP_SCALE, DEFAULT_SIZES


SERVED_SIZE = DEFAULT_SIZES["compact"]
PACK = "the pack's photos"  # what a fit scores; training.rescore's copies say "the exact decodes" in run.json


@dataclass(frozen=True)
class Scored:
    source: str
    label: int


@dataclass
class Fold:
    recipe: str
    held_out: list[str]
    val: tuple[list[Scored], np.ndarray, np.ndarray]
    held: tuple[list[Scored], np.ndarray, np.ndarray]
    seed: int | None = None
    settings_but_seed: str = ""
    photos: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())  # content hashes of val and held, in row order
    scored_on: str = PACK  # the photos the probabilities are of: the pack's, or the exact decodes (training.rescore)


def fit_settings(record: dict) -> dict:
    """What makes a fit's recipe, from its ``run.json``: its settings but where it ran and what it held out."""
    settings = {k: v for k, v in record["settings"].items() if k not in {"pack", "out", "holdout", "workers"}}
    settings.setdefault("decoy_probability", 0.0)  # fits from before decoys existed had none
    if not settings.get("ema"):
        settings.pop("ema", None)  # off: named as before it existed, so reports of earlier fits still match
    if not settings.get("source_balance"):
        settings.pop("source_balance", None)  # off: named as before it existed
    if not settings.get("grayscale_probability"):
        settings.pop("grayscale_probability", None)  # off: named as before it existed
    if settings.get("crop_scale", CROP_SCALE) == CROP_SCALE:
        settings.pop("crop_scale", None)  # the default, which every fit had before the option existed
    if settings.get("bn_momentum", BATCH_NORM_MOMENTUM) == BATCH_NORM_MOMENTUM:
        settings.pop("bn_momentum", None)  # the default, which every fit had before the option existed
    if "init" in record:
        settings["fine_tuned"] = True  # from each fold's own weights: not the same recipe as a fit from scratch
    if record.get("image_size", SERVED_SIZE) != SERVED_SIZE:
        settings["image_size"] = record["image_size"]  # the pack's photo size; at the served size, named as before
    return settings


# What fit_settings leaves out of a name means this.
UNNAMED_MEANS = {"image_size": str(SERVED_SIZE), "ema": "0", "source_balance": "0", "grayscale_probability": "0",
                 "crop_scale": str(CROP_SCALE),
                 "fine_tuned": "False", "bn_momentum": str(BATCH_NORM_MOMENTUM), "bn_statistics": "running",
                 "distill_weight": "0", "teachers": "0"}


def settings_text(settings: dict, seed: bool = True) -> str:
    """A recipe as reports name it: its settings, sorted, as key=value (without the seed: what other seeds share)."""
    return " ".join(f"{k}={v}" for k, v in sorted(settings.items()) if seed or k != "seed")


def recipe_but_seed(recipe: str) -> str:
    """A reported recipe without its seed (or an ensemble's seeds and size): what fits of other seeds share."""
    recipe = re.sub(r" \(mean of \d+ fits\)$", "", recipe)
    return " ".join(token for token in recipe.split(" ") if not token.startswith(("seed=", "seeds=")))


def read_fold(folder: Path, score: str) -> Fold:
    record = json.loads((folder / accelerated.RUN).read_text())
    table = json.loads((folder / accelerated.SCORES).read_text())
    column = table["columns"].index(score)
    parts: dict[str, tuple[list, list, list]] = {"val": ([], [], []), "held": ([], [], [])}
    hashes: dict[str, list[str]] = {"val": [], "held": []}
    for row in table["rows"]:
        samples, labels, probs = parts[row[3]]
        hashes[row[3]].append(row[0])
        samples.append(Scored(row[1], int(row[2])))
        labels.append(row[2])
        probs.append(row[column])
    # The seed is part of the recipe: two seeds' folds of the same settings are two results, not one pool.
    settings = fit_settings(record)
    as_arrays = {k: (s, np.asarray(y, np.float32), np.asarray(p, np.float32)) for k, (s, y, p) in parts.items()}
    return Fold(settings_text(settings), record["settings"]["holdout"], as_arrays["val"], as_arrays["held"], settings.get("seed"),
                settings_text(settings, seed=False),
                (tuple(hashes["val"]), tuple(hashes["held"])), record.get("scored_on", {}).get("photos", PACK))


ENSEMBLE = "(mean of {} fits)"  # ends the recipe of a seed ensemble


def fits_averaged(recipe: str) -> int:
    """How many fits a recipe's probabilities are the mean of: 1, or N for a :func:`seed_ensembles` recipe."""
    ensemble = re.search(r"\(mean of (\d+) fits\)$", recipe)
    return int(ensemble.group(1)) if ensemble else 1


def seeded_folds(folds: list[Fold]) -> dict[str, tuple[list[int], list[dict[int, Fold]]]]:
    """For each recipe fitted with several seeds on every one of its folds: the ensemble's recipe, its seeds (those
    every fold has) and, per fold, each seed's fold."""
    by_recipe: dict[str, dict[tuple[str, ...], dict[int, Fold]]] = defaultdict(lambda: defaultdict(dict))
    for fold in folds:
        if fold.seed is not None:
            by_recipe[fold.settings_but_seed][tuple(sorted(fold.held_out))][fold.seed] = fold
    found = {}
    for settings, by_fold in by_recipe.items():
        seeds = sorted(set.intersection(*(set(seeded) for seeded in by_fold.values())))
        if len(seeds) >= 2:
            found[f"{settings} seeds={'+'.join(map(str, seeds))} {ENSEMBLE.format(len(seeds))}"] = (seeds, list(by_fold.values()))
    return found


def seed_ensembles(folds: list[Fold], seeded: dict | None = None) -> dict[str, list[Fold]]:
    """For each recipe fitted with several seeds on every one of its folds: folds whose probabilities are the mean of
    those seeds' (the seeds every fold has). Every seed of a fold must have scored the same photos in the same order.
    ``seeded``: :func:`seeded_folds` of ``folds``, when the caller has it already."""
    return {recipe: [_mean_of([by_seed[s] for s in seeds], recipe) for by_seed in by_fold]
            for recipe, (seeds, by_fold) in (seeded if seeded is not None else seeded_folds(folds)).items()}


CASCADE_MARGINS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3)


def cascade(seeds: list[int], by_fold: list[dict[int, Fold]], threshold: float,
            margins: tuple[float, ...] = CASCADE_MARGINS) -> list[dict]:
    """A cascade of two seeds' fits, out of fold: each photo is scored by the first fit, and by the mean of both only
    when the first is within ``margin`` of ``threshold``. What serving that way would save, and what it would change
    against serving the mean, for each order of the two seeds and each margin."""
    from sklearn import metrics as skm

    from . import evaluate

    if len(seeds) != 2:
        return []
    first_seed, second_seed = seeds
    samples = [s for seeded in by_fold for s in seeded[first_seed].held[0]]
    labels = np.concatenate([seeded[first_seed].held[1] for seeded in by_fold])
    probs = {seed: np.concatenate([seeded[seed].held[2] for seeded in by_fold]) for seed in seeds}
    mean = (probs[first_seed] + probs[second_seed]) / 2

    def clear_but_wrong(score: np.ndarray) -> int:
        """Wrong verdicts the core would call clear (its certainty, at the default band): the cost of a cascade is
        that a clear photo's probability is one fit's, further from the threshold than the mean of two."""
        wrong = (score >= threshold) != (labels == 1)
        return sum(certainty_of(float(p), threshold) == CLEAR for p in score[wrong])

    mean_clear_but_wrong = clear_but_wrong(mean)
    rows = []
    for first, second in ((first_seed, second_seed), (second_seed, first_seed)):
        for margin in margins:
            both = np.abs(probs[first] - threshold) < margin
            score = np.where(both, mean, probs[first])
            rows.append({
                "first": first, "second": second, "margin": margin,
                "second_fit_share": round(float(both.mean()), 4),
                "verdicts_unlike_the_mean": int(((score >= threshold) != (mean >= threshold)).sum()),
                "clear_but_wrong": clear_but_wrong(score), "clear_but_wrong_as_the_mean": mean_clear_but_wrong,
                "photos": len(score),
                "macro_balanced_accuracy": round(float(evaluate._macro_balanced_accuracy(samples, labels, score, threshold)), 4),
                "roc_auc": round(float(skm.roc_auc_score(labels, score)), 4) if len(set(labels.tolist())) == 2 else None,
            })
    return rows


def cascade_choice(rows: list[dict]) -> dict | None:
    """The cascade to serve from :func:`cascade`'s rows: of those whose verdicts are all the mean's, the one that runs
    the second fit least (then the smaller margin); None when every margin changed some verdict."""
    same = [row for row in rows if row["verdicts_unlike_the_mean"] == 0]
    return min(same, key=lambda row: (row["second_fit_share"], row["margin"])) if same else None


def render_cascade(rows: list[dict], threshold: float) -> str:
    lines = [f"  cascade, out of fold at {threshold:.2f}: the first seed's fit alone, the mean of both when the first is "
             "within the margin of the threshold"]
    lines += [f"    seed {r['first']} first, margin {r['margin']:.2f}: second fit on {100 * r['second_fit_share']:.1f} %, "
              f"{r['verdicts_unlike_the_mean']} of {r['photos']} verdicts unlike the mean's, macro balanced accuracy "
              f"{r['macro_balanced_accuracy']:.4f}, ROC AUC {r['roc_auc']}, {r['clear_but_wrong']} wrong verdicts clear "
              f"(the mean: {r['clear_but_wrong_as_the_mean']})" for r in rows]
    return "\n".join(lines)


def _mean_of(members: list[Fold], recipe: str) -> Fold:
    first = members[0]
    for other in members[1:]:
        if other.photos != first.photos:
            raise ValueError(f"the folds holding out {', '.join(first.held_out)} with seeds {first.seed} and {other.seed} "
                             "scored different photos (another pack or split?): their probabilities cannot be averaged")
    def mean(part: str) -> tuple:
        samples, labels, _ = getattr(first, part)
        return samples, labels, np.mean([getattr(member, part)[2] for member in members], axis=0)

    return Fold(recipe, first.held_out, mean("val"), mean("held"), None, first.settings_but_seed, first.photos, first.scored_on)


def summarise(folds: list[Fold]) -> dict:
    """The figures of one recipe's folds (see the module's docstring)."""
    from sklearn import metrics as skm

    from . import evaluate

    per_fold = {}
    pooled: tuple[list, list, list] = ([], [], [])
    for fold in sorted(folds, key=lambda f: f.held_out):
        threshold = evaluate.choose_threshold(*fold.val)
        name = ",".join(fold.held_out)
        per_fold[name] = {"threshold": threshold, **evaluate.per_source(*fold.held, threshold)}
        for part, values in zip(pooled, fold.held):
            part.extend(values)
    samples, labels, probs = pooled[0], np.asarray(pooled[1]), np.asarray(pooled[2])
    threshold = evaluate.choose_threshold(samples, labels, probs)
    both = len(set(labels.tolist())) == 2
    return {
        "folds": per_fold,
        "out_of_fold": {
            "threshold": threshold,
            "macro_balanced_accuracy": round(float(evaluate._macro_balanced_accuracy(samples, labels, probs, threshold)), 4),
            "roc_auc": round(float(skm.roc_auc_score(labels, probs)), 4) if both else None,
            "per_source": evaluate.per_source(samples, labels, probs, threshold),
        },
    }


def render(recipe: str, figures: dict) -> str:
    lines = [f"recipe: {recipe}", "  held out (at the fold's own validation threshold):"]
    for name, table in figures["folds"].items():
        cells = [f"{source} {_rate(v)}" for source, v in table.items() if source != "threshold"]
        lines.append(f"    {name:<14} t={table['threshold']:.2f}  " + "; ".join(cells))
    oof = figures["out_of_fold"]
    lines.append(f"  out of fold, one threshold {oof['threshold']:.2f}: macro balanced accuracy {oof['macro_balanced_accuracy']:.4f}, "
                 f"ROC AUC {oof['roc_auc']}")
    lines += [f"    {source:<28} {_rate(v)}" for source, v in oof["per_source"].items()]
    if only := one_class(oof):
        lines.append(f"    (every held-out photo is {only}: one threshold cannot be chosen on them, so this one and its "
                     "balanced accuracy mean nothing; hold out a source of the other class too)")
    return "\n".join(lines)


def one_class(out_of_fold: dict) -> str | None:
    """What every pooled held-out photo is when they are all of one class ("a fire", "fire-free"), else None."""
    kinds = {key for figures in out_of_fold.get("per_source", {}).values() for key in figures if key != "images"}
    return {"false_alarm_rate": "fire-free", "fire_recall": "a fire"}.get(kinds.pop()) if len(kinds) == 1 else None


def ranking(report: dict[str, dict]) -> str:
    """The recipes, best first by out-of-fold macro balanced accuracy, each named by the settings that set it apart.

    Out-of-fold figures pool the held-out sources, so a recipe missing a fold was scored on other photos than the
    rest (and one threshold had fewer kinds of photo to suit): recipes are ranked only against those held out on the
    same sources."""
    settings = {recipe: dict(token.split("=", 1) for token in recipe.split(" ") if "=" in token) for recipe in report}
    keys = sorted({key for named in settings.values() for key in named})
    differing = [key for key in keys if len({named.get(key) for named in settings.values()}) > 1]
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for recipe, figures in report.items():
        groups[tuple(sorted(figures["folds"]))].append(recipe)
    lines = ["ranked by out-of-fold macro balanced accuracy (recipes named by the settings in which they differ):"]
    for held_out, recipes in sorted(groups.items(), key=lambda group: -len(group[1])):
        if len(groups) > 1:
            lines.append(f"  held out {', '.join(held_out)} ({len(recipes)} of {len(report)} recipes; not comparable with "
                         "the others):")
        best_first = sorted(recipes, key=lambda r: (-report[r]["out_of_fold"]["macro_balanced_accuracy"],
                                                    -(report[r]["out_of_fold"]["roc_auc"] or 0)))
        for rank, recipe in enumerate(best_first, 1):
            oof = report[recipe]["out_of_fold"]
            named = {**UNNAMED_MEANS, **settings[recipe]}
            name = " ".join(f"{key}={named[key]}" for key in differing if key in named)
            lines.append(f"  {rank:>3}. {oof['macro_balanced_accuracy']:.4f}  ROC AUC {oof['roc_auc']}  "
                         f"threshold {oof['threshold']:.2f}  {name}" + ("  (one class held out: means nothing)" if one_class(oof) else ""))
    return "\n".join(lines)


def _rate(v: dict) -> str:
    if "fire_recall" in v:
        return f"fires found {100 * v['fire_recall']:.1f} % of {v['images']}"
    return f"false alarms {100 * v['false_alarm_rate']:.1f} % of {v['images']}"


def one_recipe(path: Path) -> tuple[str, dict]:
    """The recipe and figures of a ``--json`` report that holds exactly one recipe (``python -m training --loso``)."""
    try:
        report = json.loads(path.read_text())
        (recipe, figures), = report.items()
        figures["out_of_fold"]["threshold"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SystemExit(f"error: --loso {path}: not a report of one recipe from python -m training.loso --json ({exc})") from None
    return recipe, figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.loso", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folds", nargs="+", type=Path, help="fold folders of python -m training.accelerated one (folds without a held-out source are skipped)")
    p.add_argument("--score", choices=("probability", "flip_averaged"), default="probability",
                   help="probability (default): one pass, as served with --tta none; flip_averaged: the photo and its mirror "
                        "image, as served with --tta flip")
    p.add_argument("--seeds", choices=("apart", "mean", "both"), default="apart",
                   help="apart (default): each seed's folds are a result of their own; mean: a recipe fitted with several "
                        "seeds on every fold is reported only as the mean of those seeds' probabilities (an ensemble), a "
                        "recipe of one seed as it is; both: each seed and the mean")
    p.add_argument("--cascade", action="store_true",
                   help="with --seeds mean or both, for an ensemble of two seeds: what serving it as a cascade would "
                        "give (the first fit alone on clear photos, both near the threshold), out of fold")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    recipes: dict[str, list[Fold]] = defaultdict(list)
    for folder in args.folds:
        try:
            fold = read_fold(folder, args.score)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SystemExit(f"error: {folder}: not a finished fold folder ({exc!r})") from None
        if not fold.held_out:
            continue
        twin = next((f for f in recipes[fold.recipe] if sorted(f.held_out) == sorted(fold.held_out)), None)
        if twin is not None:
            raise SystemExit(f"error: {folder} holds out {', '.join(fold.held_out)} again, with the same recipe and seed as "
                             "another folder: pass each fold once")
        recipes[fold.recipe].append(fold)
    if not recipes:
        raise SystemExit("error: no fold with a held-out source among those folders")
    scored_on = {fold.scored_on for folds in recipes.values() for fold in folds}
    if len(scored_on) > 1:
        raise SystemExit("error: some folders were scored on their pack's photos and some on the exact decodes (python -m "
                         "training.rescore): their figures differ by that alone; give folders of one kind")
    (scored_on,) = scored_on
    if args.cascade and args.seeds == "apart":
        p.error("--cascade needs --seeds mean or both: it compares a cascade with the seeds' mean")
    seeded = {}
    if args.seeds != "apart":
        try:
            every_fold = [fold for folds in recipes.values() for fold in folds]
            seeded = seeded_folds(every_fold)
            ensembles = seed_ensembles(every_fold, seeded)
        except ValueError as exc:
            raise SystemExit(f"error: {exc}") from None
        if args.seeds == "mean":  # a recipe's seeds are then reported only as their ensemble
            averaged = {fold.settings_but_seed for folds in ensembles.values() for fold in folds}
            recipes = {recipe: folds for recipe, folds in recipes.items() if folds[0].settings_but_seed not in averaged}
        recipes.update(ensembles)
    report = {recipe: {**summarise(folds), "scored_on": scored_on} for recipe, folds in recipes.items()}
    print(f"scored on {scored_on}" + (" (WebP; python -m training.rescore scores the exact decodes)" if scored_on == PACK else ""))
    if args.cascade:
        for recipe, (seeds, by_fold) in seeded.items():
            report[recipe]["cascade"] = cascade(seeds, by_fold, report[recipe]["out_of_fold"]["threshold"])
    print("\n\n".join(render(recipe, figures) + ("\n" + render_cascade(figures["cascade"], figures["out_of_fold"]["threshold"])
                                                 if figures.get("cascade") else "")
                       for recipe, figures in report.items()))
    if len(report) > 1:
        print("\n" + ranking(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
