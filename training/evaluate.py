"""Validation metrics, the decision threshold, and report plots."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from sklearn import metrics as skm

from .data import Sample

THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.01), 2)


def per_source(samples: list[Sample], labels: np.ndarray, probs: np.ndarray, threshold: float) -> dict:
    """Fire recall for each fire folder, false-alarm rate for each no-fire folder."""
    groups: dict[tuple[str, int], list[int]] = defaultdict(list)
    for i, sample in enumerate(samples):
        groups[(sample.source, sample.label)].append(i)
    report = {}
    for (source, label), idx in sorted(groups.items()):
        predicted_fire = probs[idx] >= threshold
        key = f"{source}/{'fire' if label else 'nofire'}"
        if label:
            report[key] = {"images": len(idx), "fire_recall": round(float(predicted_fire.mean()), 4)}
        else:
            report[key] = {"images": len(idx), "false_alarm_rate": round(float(predicted_fire.mean()), 4)}
    return report


def _macro_balanced_accuracy(samples, labels, probs, threshold) -> float:
    """Mean fire recall over fire folders and mean specificity over no-fire folders, averaged:
    a small folder of hard negatives (sunsets) weighs as much as a big easy one."""
    table = per_source(samples, labels, probs, threshold)
    recall = [v["fire_recall"] for v in table.values() if "fire_recall" in v]
    specificity = [1 - v["false_alarm_rate"] for v in table.values() if "false_alarm_rate" in v]
    return (np.mean(recall or [0.0]) + np.mean(specificity or [0.0])) / 2


def choose_threshold(samples: list[Sample], labels: np.ndarray, probs: np.ndarray) -> float:
    """The threshold maximising per-folder balanced accuracy; ties go to the one nearest 0.5."""
    scores = [(_macro_balanced_accuracy(samples, labels, probs, t), -abs(t - 0.5), t) for t in THRESHOLD_GRID]
    return float(max(scores)[2])


def summary(samples: list[Sample], labels: np.ndarray, probs: np.ndarray, threshold: float) -> dict:
    predicted = (probs >= threshold).astype(int)
    truth = labels.astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(truth, predicted, labels=[0, 1]).ravel()
    both_classes = len(set(truth)) == 2
    return {
        "threshold": threshold,
        "images": int(len(truth)),
        "accuracy": round(float(skm.accuracy_score(truth, predicted)), 4),
        "balanced_accuracy": round(float(skm.balanced_accuracy_score(truth, predicted)), 4),
        "precision": round(float(skm.precision_score(truth, predicted, zero_division=0)), 4),
        "recall": round(float(skm.recall_score(truth, predicted, zero_division=0)), 4),
        "f1": round(float(skm.f1_score(truth, predicted, zero_division=0)), 4),
        "roc_auc": round(float(skm.roc_auc_score(truth, probs)), 4) if both_classes else None,
        "confusion_matrix": {"labels": ["nofire", "fire"], "rows_true_cols_predicted": [[int(tn), int(fp)], [int(fn), int(tp)]]},
        "per_source": per_source(samples, labels, probs, threshold),
    }


def plot_reports(folder: Path, history: dict, labels: np.ndarray, probs: np.ndarray, threshold: float,
                 sources: dict | None = None) -> list[str]:
    """Training curves, confusion matrix, ROC curve and per-source rates as PNG files; returns their names.
    ``sources`` maps a title ("validation", "held out") to a :func:`per_source` table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []

    keys = [k for k in ("loss", "accuracy", "auc") if k in history]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.5))
    for ax, key in zip(np.atleast_1d(axes), keys):
        ax.plot(history[key], label="train")
        if f"val_{key}" in history:
            ax.plot(history[f"val_{key}"], label="validation")
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "training_curves.png", dpi=100)
    plt.close(fig)
    written.append("training_curves.png")

    truth = labels.astype(int)
    cm = skm.confusion_matrix(truth, (probs >= threshold).astype(int), labels=[0, 1])
    fig, ax = plt.subplots(figsize=(4, 3.6))
    skm.ConfusionMatrixDisplay(cm, display_labels=["nofire", "fire"]).plot(ax=ax, colorbar=False, cmap="Oranges")
    ax.set_title(f"Validation, threshold {threshold:.2f}")
    fig.tight_layout()
    fig.savefig(folder / "confusion_matrix.png", dpi=100)
    plt.close(fig)
    written.append("confusion_matrix.png")

    if len(set(truth)) == 2:
        fig, ax = plt.subplots(figsize=(4, 4))
        skm.RocCurveDisplay.from_predictions(truth, probs, ax=ax, name="validation")
        ax.plot([0, 1], [0, 1], "k--", linewidth=0.8)
        fig.tight_layout()
        fig.savefig(folder / "roc_curve.png", dpi=100)
        plt.close(fig)
        written.append("roc_curve.png")

    if sources:
        written.append(_plot_per_source(folder / "per_source.png", sources, threshold))
    return written


def _plot_per_source(path: Path, sources: dict, threshold: float) -> str:
    """False alarms per fire-free source and missed fires per fire source, where the risk of a model is."""
    import matplotlib.pyplot as plt

    rows = [(f"{title}: {name}", 1 - v["fire_recall"] if "fire_recall" in v else v["false_alarm_rate"], "fire_recall" in v, v["images"])
            for title, table in sources.items() for name, v in table.items()]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.2))
    colours = ["#c0392b" if fire else "#2c7fb8" for _, _, fire, _ in rows]
    ax.barh([r[0] for r in rows], [r[1] * 100 for r in rows], color=colours)
    for i, (_, rate, _, n) in enumerate(rows):
        ax.text(rate * 100, i, f" {rate * 100:.1f} % of {n}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"% wrong at threshold {threshold:.2f}: missed fires (red), false alarms (blue)")
    ax.set_xlim(0, max(10.0, max(r[1] for r in rows) * 130))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name
