"""Report plots say what they show: AUC to three decimals and the class names, the kept epoch, counts and intervals."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from tests.conftest import ROOT
from training import evaluate

matplotlib.use("Agg")


def texts(fig) -> list[str]:
    """Every piece of text drawn on the figure: legends, titles, labels, tick labels, annotations."""
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text) if t.get_text()]


def test_roc_legend_gives_three_decimals_and_names_the_fire_class():
    # 10 fire and 100 no-fire photos, one no-fire photo scored above 3 fires: AUC 1 - 3/1000 = 0.997.
    labels = np.array([1] * 10 + [0] * 100, dtype=np.float32)
    probs = np.concatenate([np.linspace(0.80, 0.99, 10), np.linspace(0.01, 0.30, 99), [0.85]])
    assert roc_auc_score(labels, probs) == pytest.approx(0.997)
    fig = evaluate.roc_figure(labels, probs, 0.5)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("fire vs nofire: AUC 0.997" in line for line in legend), legend
    drawn = " ".join(texts(fig))
    assert "1.00)" not in drawn and "Positive label" not in drawn
    assert "threshold 0.50: recall 1.000, false alarms 0.010" in drawn
    assert "10 fire / 100 nofire" in drawn


def test_training_curves_mark_the_kept_epoch():
    history = {"loss": [0.3, 0.2, 0.1, 0.15], "val_loss": [0.3, 0.25, 0.2, 0.22], "accuracy": [0.5, 0.6, 0.7, 0.8],
               "val_accuracy": [0.5, 0.6, 0.7, 0.7], "auc": [0.6, 0.8, 0.9, 0.95], "val_auc": [0.6, 0.95, 0.95, 0.93]}
    assert evaluate.best_epoch(history) == 2, "the first epoch with the best validation AUC, as the checkpoint keeps"
    fig = evaluate.training_curves_figure(history)
    for ax in fig.axes:
        assert "kept: epoch 2" in [t.get_text() for t in ax.get_legend().get_texts()]
        assert ax.lines[0].get_xdata()[0] == 1, "epochs count from 1"
    assert any(t.startswith("Kept epoch 2 of 4") for t in texts(fig))


def test_per_source_plot_shows_counts_and_intervals_for_every_source():
    validation = {"fire-dataset/nofire": {"images": 79, "false_alarm_rate": 0.0253},
                  "forest-fire/train/fire": {"images": 228, "fire_recall": 0.9781},
                  "weather/nofire": {"images": 369, "false_alarm_rate": 0.0461}}
    sources = {"validation": validation, "held out": {"houses/nofire": {"images": 2126, "false_alarm_rate": 0.215}}}
    fig = evaluate.per_source_figure(sources, 0.57)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert "validation: fire-dataset/nofire (2 of 79 false alarms)" in labels
    assert "validation: forest-fire/train/fire (5 of 228 missed)" in labels
    assert "held out: houses/nofire (457 of 2126 false alarms)" in labels
    assert len(labels) == 4
    assert "2.5 % (0.7-8.8)" in " ".join(texts(fig)), "the 95 % interval of 2 in 79"


def test_every_report_is_written_and_training_curves_only_with_a_history(tmp_path):
    labels = np.array([1, 1, 0, 0, 0], dtype=np.float32)
    probs = np.array([0.9, 0.4, 0.2, 0.6, 0.1])
    sources = {"validation": {"s/fire": {"images": 2, "fire_recall": 0.5}, "s/nofire": {"images": 3, "false_alarm_rate": 0.3333}}}
    written = evaluate.plot_reports(tmp_path / "a", None, labels, probs, 0.5, sources)
    assert written == ["confusion_matrix.png", "roc_curve.png", "per_source.png"]
    history = {"loss": [1.0, 0.5], "val_loss": [1.0, 0.6], "auc": [0.5, 0.7], "val_auc": [0.5, 0.6]}
    written = evaluate.plot_reports(tmp_path / "b", history, labels, probs, 0.5, sources)
    assert written[0] == "training_curves.png" and len(written) == 4
    assert all((tmp_path / "b" / name).read_bytes().startswith(b"\x89PNG") for name in written)


def test_the_shipped_reports_are_the_redrawn_ones():
    """models/reports was redrawn from the shipped model (python -m training.score --split val --reports ...)."""
    card = json.loads((ROOT / "models" / "fire_classifier.json").read_text())
    history = json.loads((ROOT / "models" / "reports" / "history.json").read_text())
    assert len(history["val_auc"]) == card["training"]["epochs_run"]
    assert round(max(history["val_auc"]), 4) == card["training"]["best_val_auc"]
