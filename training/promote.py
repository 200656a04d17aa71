"""``python -m training promote RUN``: put a finished training run's model where serving reads it (``models/``).

Checks the run is complete (card, model files, reports, hashes, a ``.tflite`` LiteRT can load), prints the
current and the new model's validation figures side by side, and refuses a model whose figures do not beat
chance or are worse than the current model's, unless ``--force``. The files are copied all or nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from inference import ModelCard

from . import intervals, runs
from .cli import display_path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
COMPARED = (("images", "images"), ("accuracy", "accuracy"), ("balanced_accuracy", "balanced accuracy"), ("roc_auc", "ROC AUC"),
            ("precision", "precision"), ("recall", "fire recall"), ("f1", "F1"), ("threshold", "threshold"))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training promote", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a finished run folder, e.g. runs/2026-11-29-101500-b6ec0b06")
    p.add_argument("--models", type=Path, default=MODELS, help="where the served model lives (default: models/)")
    p.add_argument("--force", action="store_true",
                   help="promote even a model no better than chance or worse than the current one")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        new = runs.check_complete(args.run)
    except runs.RunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    current = _current_card(args.models, new.name)
    print(comparison_table(current, new, args.models, args.run))
    problems = refusal_reasons(current, new)
    if problems and not args.force:
        print("refused, models/ unchanged:" if args.models == MODELS else f"refused, {args.models} unchanged:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        print("  (--force promotes it anyway)", file=sys.stderr)
        return 1
    for problem in problems:
        print(f"warning: promoted despite: {problem}", file=sys.stderr)
    runs.install(args.run, new, args.models, display_path(args.models / runs.REPORTS))
    print(f"promoted {new.version} from {args.run} into {args.models}" + (f" (replacing {current.version})" if current else ""))
    return 0


def _current_card(models: Path, name: str) -> ModelCard | None:
    path = models / f"{name}.json"
    return ModelCard.load(path) if path.is_file() else None


def refusal_reasons(current: ModelCard | None, new: ModelCard) -> list[str]:
    """Why the new model should not replace the current one: chance-level figures, or worse ones."""
    validation = new.metrics.get("validation")
    if not validation:
        return ["the new card has no validation metrics"]
    reasons = [f"the new model is no better than chance: {reason}" for reason in intervals.chance_level_reasons(validation)]
    old = (current.metrics.get("validation") if current else None) or {}
    for key, label in (("balanced_accuracy", "balanced accuracy"), ("roc_auc", "ROC AUC")):
        if old.get(key) is not None and (validation.get(key) is None or validation[key] < old[key]):
            reasons.append(f"validation {label} {validation.get(key)} is worse than the current model's {old[key]}")
    return reasons


def comparison_table(current: ModelCard | None, new: ModelCard, models: Path, run: Path) -> str:
    """The two cards' validation figures side by side, as a Markdown-style table."""
    old = (current.metrics.get("validation") if current else None) or {}
    fresh = new.metrics.get("validation") or {}
    rows = [("validation", f"current ({current.version})" if current else "current (none)", f"new ({new.version})")]
    for key, label in COMPARED:
        rows.append((label, _figure(old, key), _figure(fresh, key)))
    for source in sorted(set(old.get("per_source", {})) | set(fresh.get("per_source", {}))):
        rows.append((source, _source(old.get("per_source", {}).get(source)), _source(fresh.get("per_source", {}).get(source))))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (width + 2) for width in widths) + "|")
    note = _split_note(current, new, models, run)
    return "\n".join(lines + ([note] if note else []))


def _figure(validation: dict, key: str) -> str:
    value = validation.get(key)
    if value is None:
        return "-"
    interval = validation.get(f"{key}_ci95")
    return f"{value}" + (f" ({interval[0]}-{interval[1]})" if interval else "")


def _source(figures: dict | None) -> str:
    if not figures:
        return "-"
    if "fire_recall" in figures:
        return f"recall {figures['fire_recall']:.4f} of {figures['images']}"
    return f"false alarms {figures['false_alarm_rate']:.4f} of {figures['images']}"


def _split_note(current: ModelCard | None, new: ModelCard, models: Path, run: Path) -> str | None:
    """Figures on different validation photos are not comparable one to one: say so when the manifests differ."""
    if current is None:
        return None
    old_val, new_val = (_validation_hashes(folder / (card.training_data.get("file_hashes") or "-"))
                        for folder, card in ((models, current), (run, new)))
    if old_val is None or new_val is None or old_val == new_val:
        return None
    shared = len(old_val & new_val)
    return (f"note: the validation photos differ ({shared} shared of {len(old_val)} / {len(new_val)}); for a like-for-like "
            "comparison score both with python -m training.score FOLDERS --model M.tflite")


def _validation_hashes(manifest: Path) -> set[str] | None:
    if not manifest.is_file():
        return None
    return {sha for sha, split, _ in runs.read_file_list(manifest) if split == "val"}


