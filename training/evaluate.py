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


def plot_reports(folder: Path, history: dict, labels: np.ndarray, probs: np.ndarray, threshold: float) -> list[str]:
    """Training curves, confusion matrix and ROC curve as PNG files; returns their names."""
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
    return written
