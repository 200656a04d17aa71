"""Validation metrics, the decision threshold, and report plots."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from sklearn import metrics as skm

from .data import Sample
from .intervals import auc_interval, balanced_accuracy_interval, wilson_interval

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
    auc = round(float(skm.roc_auc_score(truth, probs)), 4) if both_classes else None
    return {
        "threshold": threshold,
        "images": int(len(truth)),
        "accuracy": round(float(skm.accuracy_score(truth, predicted)), 4),
        "balanced_accuracy": round(float(skm.balanced_accuracy_score(truth, predicted)), 4),
        "balanced_accuracy_ci95": _rounded(balanced_accuracy_interval(int(tp), int(fn), int(tn), int(fp))),
        "precision": round(float(skm.precision_score(truth, predicted, zero_division=0)), 4),
        "recall": round(float(skm.recall_score(truth, predicted, zero_division=0)), 4),
        "f1": round(float(skm.f1_score(truth, predicted, zero_division=0)), 4),
        "roc_auc": auc,
        "roc_auc_ci95": _rounded(auc_interval(auc, int(tp + fn), int(tn + fp))) if auc is not None else None,
        "confusion_matrix": {"labels": ["nofire", "fire"], "rows_true_cols_predicted": [[int(tn), int(fp)], [int(fn), int(tp)]]},
        "per_source": per_source(samples, labels, probs, threshold),
    }


def _rounded(interval: tuple[float, float]) -> list[float]:
    return [round(interval[0], 4), round(interval[1], 4)]


def best_epoch(history: dict) -> int | None:
    """The 1-based epoch training kept: the first with the highest validation AUC (what the checkpoint monitors)."""
    scores = history.get("val_auc")
    return int(np.argmax(scores)) + 1 if scores else None


def plot_reports(folder: Path, history: dict | None, labels: np.ndarray, probs: np.ndarray, threshold: float,
                 sources: dict | None = None) -> list[str]:
    """Training curves (when there is a history), confusion matrix, ROC curve and per-source rates as PNG files;
    returns their names. ``sources`` maps a title ("validation", "held out") to a :func:`per_source` table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    figures = {}
    if history:
        figures["training_curves.png"] = training_curves_figure(history)
    figures["confusion_matrix.png"] = confusion_figure(labels, probs, threshold)
    if len(set(labels.astype(int))) == 2:
        figures["roc_curve.png"] = roc_figure(labels, probs, threshold)
    if sources:
        figures["per_source.png"] = per_source_figure(sources, threshold)
    for name, fig in figures.items():
        fig.savefig(folder / name, dpi=100)
        plt.close(fig)
    return list(figures)


def training_curves_figure(history: dict):
    """Loss, accuracy and AUC per epoch (1-based), the kept epoch marked: the model is that epoch, not the last."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    keys = [k for k in ("loss", "accuracy", "auc") if k in history]
    kept = best_epoch(history)
    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.5))
    for ax, key in zip(np.atleast_1d(axes), keys):
        epochs = np.arange(1, len(history[key]) + 1)
        ax.plot(epochs, history[key], label="train")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], label="validation")
        if kept is not None:
            ax.axvline(kept, color="k", linestyle=":", linewidth=1, label=f"kept: epoch {kept}")
            if f"val_{key}" in history:
                ax.plot([kept], [history[f"val_{key}"][kept - 1]], "ko", markersize=4)
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8)
    if kept is not None:
        fig.suptitle(f"Kept epoch {kept} of {len(history['val_auc'])}: best validation AUC {max(history['val_auc']):.4f} "
                     "(figures of the model in training: one pass, accuracy at 0.5)", fontsize=10)
    fig.tight_layout()
    return fig


def confusion_figure(labels: np.ndarray, probs: np.ndarray, threshold: float):
    import matplotlib.pyplot as plt

    cm = skm.confusion_matrix(labels.astype(int), (probs >= threshold).astype(int), labels=[0, 1])
    fig, ax = plt.subplots(figsize=(4, 3.6))
    skm.ConfusionMatrixDisplay(cm, display_labels=["nofire", "fire"]).plot(ax=ax, colorbar=False, cmap="Oranges")
    ax.set_title(f"Validation, threshold {threshold:.2f}")
    fig.tight_layout()
    return fig


def roc_figure(labels: np.ndarray, probs: np.ndarray, threshold: float):
    """ROC of "fire" against "nofire", its AUC with three decimals and a 95 % interval (0.997 must not read 1.00),
    and the point the decision threshold picks."""
    import matplotlib.pyplot as plt

    truth = labels.astype(int)
    fpr, tpr, _ = skm.roc_curve(truth, probs, pos_label=1)
    auc = float(skm.roc_auc_score(truth, probs))
    low, high = auc_interval(auc, int(truth.sum()), int(len(truth) - truth.sum()))
    predicted = probs >= threshold
    point = (float(predicted[truth == 0].mean()), float(predicted[truth == 1].mean()))
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    ax.plot(fpr, tpr, label=f"fire vs nofire: AUC {auc:.3f} (95 % {low:.3f}-{high:.3f})")
    ax.plot(*point, "o", color="#c0392b", label=f"threshold {threshold:.2f}: recall {point[1]:.3f}, false alarms {point[0]:.3f}")
    ax.plot([0, 1], [0, 1], "k--", linewidth=0.8, label="chance")
    ax.set_xlabel("false alarm rate (nofire photos called fire)")
    ax.set_ylabel("fire recall (fire photos called fire)")
    ax.set_title(f"Validation ROC, {int(truth.sum())} fire / {int(len(truth) - truth.sum())} nofire photos", fontsize=9)
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    return fig


def per_source_rows(sources: dict) -> list[tuple[str, int, int, bool]]:
    """(label, wrong, images, is a fire source) per source: missed fires for fire sources, false alarms otherwise.
    The card keeps rates rounded to 4 decimals; counts come back exactly, as every folder holds under 10,000 photos."""
    rows = []
    for title, table in sources.items():
        for name, figures in table.items():
            fire = "fire_recall" in figures
            rate = 1 - figures["fire_recall"] if fire else figures["false_alarm_rate"]
            rows.append((f"{title}: {name}", int(round(rate * figures["images"])), int(figures["images"]), fire))
    return rows


def per_source_figure(sources: dict, threshold: float):
    """False alarms per fire-free source and missed fires per fire source, where the risk of a model is: counts,
    and 95 % Wilson intervals, since a rate on 79 photos says less than one on 639."""
    import matplotlib.pyplot as plt

    rows = per_source_rows(sources)
    fig, ax = plt.subplots(figsize=(9.5, 0.45 * len(rows) + 1.4))
    rates = np.array([wrong / n for _, wrong, n, _ in rows]) * 100
    intervals = np.array([wilson_interval(wrong, n) for _, wrong, n, _ in rows]) * 100
    errors = np.clip(np.stack([rates - intervals[:, 0], intervals[:, 1] - rates]), 0, None)  # float round-off at 0 and 1
    colours = ["#c0392b" if fire else "#2c7fb8" for *_, fire in rows]
    names = [f"{name} ({wrong} of {n} {'missed' if fire else 'false alarms'})" for name, wrong, n, fire in rows]
    ax.barh(names, rates, color=colours, xerr=errors, ecolor="#555555", capsize=3)
    for i in range(len(rows)):
        ax.text(intervals[i, 1], i, f"  {rates[i]:.1f} % ({intervals[i, 0]:.1f}-{intervals[i, 1]:.1f})", va="center", fontsize=7)
    ax.invert_yaxis()
    fig.suptitle(f"At threshold {threshold:.2f}: missed fires (red), false alarms (blue), with 95 % intervals", fontsize=9)
    ax.set_xlabel("% of the source's photos")
    top = max(10.0, float(intervals[:, 1].max()))
    ax.set_xlim(0, top * 1.45)  # room for the labels right of the intervals
    ax.set_xticks([t for t in ax.get_xticks() if 0 <= t <= min(100, top)])
    fig.tight_layout()
    return fig
