"""``python -m training.score``: score a served model on labelled folders, per source, as serving sees them.

Runs the ``.tflite`` file through the inference core (LiteRT, no TensorFlow), at the card's threshold unless
``--threshold`` is given, and prints fire recall per fire source and false alarms per fire-free source. Use it to
compare a new model with the shipped one on a source neither was trained on.

With ``--reports DIR`` it also draws the report plots from these scores (confusion matrix, ROC curve, per-source
rates; training curves too, given the run's ``--history`` JSON): how a model's plots are redrawn without
retraining it, e.g. ``--split val --reports models/reports --history models/reports/history.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from inference import Classifier, Settings

from . import data as data_mod
from . import evaluate, runs
from .options import DEFAULT_DATA, DEFAULT_SOURCES


def score(classifier: Classifier, samples: list[data_mod.Sample], batch: int = 64) -> tuple[np.ndarray, np.ndarray, list]:
    """(labels, probabilities, samples) for every sample the core can read."""
    labels, probs, kept = [], [], []
    for start in range(0, len(samples), batch):
        chunk = samples[start : start + batch]
        for sample, outcome in zip(chunk, classifier.classify_many(s.path.read_bytes() for s in chunk)):
            if hasattr(outcome, "fire_probability"):
                labels.append(sample.label)
                probs.append(outcome.fire_probability)
                kept.append(sample)
    return np.asarray(labels, dtype=np.float32), np.asarray(probs), kept


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.score", description=__doc__)
    p.add_argument("data", nargs="*", type=Path, help=f"folders holding fire/ and nofire/ subfolders (default: every source in {DEFAULT_DATA})")
    p.add_argument("--model", type=Path, help="the .tflite file (default: the shipped model)")
    p.add_argument("--threshold", type=float, help="decision threshold (default: the model card's)")
    p.add_argument("--split", choices=("all", "train", "val", "holdout"), default="all",
                   help="only the files the model's manifest puts in this split (default: all)")
    p.add_argument("--reports", type=Path, help="also write the report plots for these scores into this folder")
    p.add_argument("--history", type=Path,
                   help="the training run's history.json (per-epoch figures), for the training curves plot")
    args = p.parse_args(argv)
    model_path = args.model or Settings.from_env().model_path
    classifier = Classifier.load(model_path, threshold=args.threshold, threads=2)
    try:
        samples = data_mod.discover(args.data or [DEFAULT_DATA / name for name in DEFAULT_SOURCES])
    except data_mod.DataError as exc:
        raise SystemExit(f"error: {exc}") from None
    if args.split != "all":
        manifest = model_path.with_suffix(".files.sha256")
        wanted = {sha for sha, split, _ in runs.read_file_list(manifest) if split == args.split}
        samples = [s for s in samples if s.sha256 in wanted]
    labels, probs, kept = score(classifier, samples)
    report = evaluate.summary(kept, labels, probs, classifier.threshold)
    print(json.dumps({"model_version": classifier.version} | report, indent=2))
    if args.reports:
        history = json.loads(args.history.read_text(encoding="utf-8")) if args.history else None
        title = "validation" if args.split == "val" else args.split
        plots = evaluate.plot_reports(args.reports, history, labels, probs, classifier.threshold, {title: report["per_source"]})
        print(f"wrote {', '.join(plots)} into {args.reports}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
