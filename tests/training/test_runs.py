"""Run folders and promote: what reaches models/, and only when it should. No TensorFlow: runs are built from the
shipped model's files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from training import cli, intervals, promote, runs

SHIPPED = ROOT / "models"


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (hidden ones included) and its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def run(tmp_path) -> Path:
    """A finished run folder holding the shipped model set."""
    card = json.loads((SHIPPED / "fire_classifier.json").read_text())
    folder = tmp_path / "runs" / f"2026-11-29-101500-{card['version'].rsplit('-', 1)[-1]}"
    folder.mkdir(parents=True)
    for name in ("fire_classifier.json", "fire_classifier.tflite", "fire_classifier.keras", "fire_classifier.files.sha256"):
        shutil.copy(SHIPPED / name, folder / name)
    shutil.copytree(SHIPPED / "reports", folder / "reports")
    (folder / "train.log").write_text("[10:15:00] epoch 1/1\n")
    return folder


@pytest.fixture
def models(tmp_path) -> Path:
    """A copy of the served folder, to promote into."""
    target = tmp_path / "models"
    shutil.copytree(SHIPPED, target)
    return target


def edit_card(run: Path, **validation) -> None:
    path = run / "fire_classifier.json"
    card = json.loads(path.read_text())
    card["metrics"]["validation"].update(validation)
    path.write_text(json.dumps(card, indent=2))


CHANCE = {"confusion_matrix": {"labels": ["nofire", "fire"], "rows_true_cols_predicted": [[5, 4], [2, 3]]},
          "roc_auc": 0.6, "balanced_accuracy": 0.58, "images": 14}


def test_a_complete_run_is_promoted_into_an_empty_folder(run, tmp_path, capsys):
    target = tmp_path / "served"
    assert promote.main([str(run), "--models", str(target)]) == 0
    for name in ("fire_classifier.tflite", "fire_classifier.keras", "fire_classifier.files.sha256", "reports/roc_curve.png"):
        assert (target / name).read_bytes() == (run / name).read_bytes(), name
    card = json.loads((target / "fire_classifier.json").read_text())
    assert card["reports"]["folder"].endswith("served/reports"), "the installed card names the installed plots"
    assert card["version"] == json.loads((run / "fire_classifier.json").read_text())["version"]
    assert not (target / "train.log").exists(), "the log stays with the run"
    assert not [p for p in target.iterdir() if p.name.startswith(".")], "no temporary file left"
    assert "promoted" in capsys.readouterr().out


def test_a_better_run_replaces_the_current_model_and_the_table_shows_both(run, models, capsys):
    served = json.loads((models / "fire_classifier.json").read_text())["metrics"]["validation"]
    edit_card(run, balanced_accuracy=0.999, roc_auc=0.9999)
    assert promote.main([str(run), "--models", str(models)]) == 0
    out = capsys.readouterr().out
    assert "| balanced accuracy" in out and f"{served['balanced_accuracy']}" in out and "0.999 " in out, out
    houses = served["per_source"]["houses/nofire"]
    assert f"false alarms {houses['false_alarm_rate']:.4f} of {houses['images']}" in out
    assert json.loads((models / "fire_classifier.json").read_text())["metrics"]["validation"]["balanced_accuracy"] == 0.999


@pytest.mark.parametrize("change, reason", [
    ({"balanced_accuracy": 0.95}, "balanced accuracy 0.95 is worse than the current model's {balanced_accuracy}"),
    ({"roc_auc": 0.99}, "ROC AUC 0.99 is worse than the current model's {roc_auc}"),
    (CHANCE, "no better than chance"),
])
def test_a_worse_or_chance_level_run_is_refused_and_models_stay_as_they_were(run, models, capsys, change, reason):
    reason = reason.format(**json.loads((models / "fire_classifier.json").read_text())["metrics"]["validation"])
    edit_card(run, **change)
    before = snapshot(models)
    assert promote.main([str(run), "--models", str(models)]) == 1
    assert reason in capsys.readouterr().err
    assert snapshot(models) == before


def test_a_chance_level_run_is_refused_even_with_nothing_served_yet(run, tmp_path, capsys):
    edit_card(run, **CHANCE)
    assert promote.main([str(run), "--models", str(tmp_path / "empty")]) == 1
    assert "does not exclude chance" in capsys.readouterr().err
    assert not (tmp_path / "empty").exists()


def test_force_promotes_a_refused_run_with_a_warning(run, models, capsys):
    edit_card(run, **CHANCE)
    assert promote.main([str(run), "--models", str(models), "--force"]) == 0
    assert "warning: promoted despite" in capsys.readouterr().err
    assert json.loads((models / "fire_classifier.json").read_text())["metrics"]["validation"]["roc_auc"] == 0.6


@pytest.mark.parametrize("damage, message", [
    (lambda run: (run / "fire_classifier.tflite").unlink(), "missing fire_classifier.tflite"),
    (lambda run: (run / "reports" / "roc_curve.png").unlink(), "missing reports/roc_curve.png"),
    (lambda run: (run / "fire_classifier.tflite").write_bytes(b"TFL3 not a model"), "not the model the card describes"),
    (lambda run: (run / "fire_classifier.files.sha256").write_text("edited\n"), "does not match the hash in the card"),
    (lambda run: (run / "fire_classifier.json").unlink(), "expected one model card"),
])
def test_an_incomplete_or_damaged_run_is_refused(run, models, capsys, damage, message):
    damage(run)
    before = snapshot(models)
    assert promote.main([str(run), "--models", str(models)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err
    assert snapshot(models) == before


def test_a_run_still_marked_incomplete_is_refused_from_the_command_line(run, models):
    unfinished = run.rename(run.with_name("2026-11-29-101500-incomplete"))
    done = subprocess.run([sys.executable, "-m", "training", "promote", str(unfinished), "--models", str(models)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "incomplete run" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("fail_at, nth", [("copy", 1), ("copy", 3), ("replace", 1), ("replace", 3), ("replace", 4),
                                         ("replace", 9)])
def test_a_failure_midway_leaves_the_served_folder_intact(run, models, monkeypatch, fail_at, nth):
    """Copies first (``copy``), then each file swapped in with two renames (``replace``): fail at any of them."""
    edit_card(run, balanced_accuracy=0.99, roc_auc=0.999)
    before = snapshot(models)
    calls = {"n": 0}

    def failing(real):
        def wrapper(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == nth:
                raise OSError(28, "No space left on device")
            return real(*args, **kwargs)
        return wrapper

    if fail_at == "copy":
        monkeypatch.setattr(runs.shutil, "copy2", failing(shutil.copy2))
    else:
        monkeypatch.setattr(runs.os, "replace", failing(os.replace))
    with pytest.raises(OSError, match="No space left"):
        promote.main([str(run), "--models", str(models)])
    assert snapshot(models) == before, "every file as it was, no temporary file left"


def test_output_into_the_served_folder_warns_loudly_and_installs_all_or_nothing(run, models, monkeypatch, capsys):
    monkeypatch.setattr(cli, "SHIPPED", models)
    args = cli.parse_arguments(["--output", str(models)])
    cli.install_output(args, run)
    err = capsys.readouterr().err
    assert "!! WARNING" in err and "WITHOUT promote's checks" in err and f"promote {run}" in err
    assert (models / "fire_classifier.tflite").read_bytes() == (run / "fire_classifier.tflite").read_bytes()


def test_training_writes_a_new_run_folder_by_default_not_models():
    args = cli.parse_arguments([])
    assert args.output is None and args.runs == ROOT / "runs"
    assert "runs/" in (ROOT / ".gitignore").read_text().split()


def test_run_folders_are_named_by_start_and_model_hash_and_marked_until_finished(tmp_path):
    run = runs.Run.start(tmp_path / "runs")
    assert run.folder.name.endswith("-incomplete") and run.folder.is_dir()
    second = runs.Run.start(tmp_path / "runs")
    assert second.folder != run.folder, "two runs in the same second get two folders"
    final = run.finish("2026-11-29-b6ec0b06")
    assert final.name == f"{run.stamp}-b6ec0b06" and final.is_dir()
    assert not (tmp_path / "runs" / f"{run.stamp}-incomplete").exists()


def test_help_answers_without_importing_tensorflow():
    code = ("import runpy, sys\n"
            "for argv in (['training', '--help'], ['training', 'promote', '--help']):\n"
            "    sys.argv = argv\n"
            "    try:\n"
            "        runpy.run_module('training', run_name='__main__')\n"
            "    except SystemExit as exit:\n"
            "        assert exit.code == 0\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'sklearn', 'matplotlib'}))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage: python -m training" in done.stdout and "usage: python -m training promote" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_chance_level_is_judged_from_the_card_with_intervals():
    shipped = json.loads((SHIPPED / "fire_classifier.json").read_text())["metrics"]["validation"]
    assert intervals.chance_level_reasons(shipped) == []
    reasons = intervals.chance_level_reasons(CHANCE)
    assert len(reasons) == 2 and "balanced accuracy 0.578" in reasons[0] and "ROC AUC 0.600" in reasons[1]
    # A perfect score on a handful of photos is no proof either way; on enough photos it is.
    tiny = {"confusion_matrix": {"rows_true_cols_predicted": [[2, 0], [0, 1]]}, "roc_auc": 1.0}
    assert intervals.chance_level_reasons(tiny)
    clear = {"confusion_matrix": {"rows_true_cols_predicted": [[40, 10], [10, 40]]}, "roc_auc": 0.85}
    assert intervals.chance_level_reasons(clear) == []


def test_wilson_interval_covers_zero_and_small_folders():
    low, high = intervals.wilson_interval(0, 79)
    assert low == 0 and 0.04 < high < 0.05
    low, high = intervals.wilson_interval(2, 79)
    assert 0.006 < low < 0.008 and 0.08 < high < 0.09


def test_make_train_installs_the_python_packages_but_no_browser():
    import re

    makefile = (ROOT / "Makefile").read_text()
    rules = dict(re.findall(r"^([\w$().\-/]+):([^=\n]*)$", makefile, re.M))

    def needs(target: str, seen: set) -> set:
        for prerequisite in rules.get(target, "").split():
            if prerequisite not in seen:
                seen.add(prerequisite)
                needs(prerequisite, seen)
        return seen

    prerequisites = needs("train", set())
    assert "$(VENV)/.full" in prerequisites and "install" not in prerequisites
    recipes = re.findall(r"^(?:train|\$\(VENV\)/\.full|\$\(VENV\)/\.serving|\$\(PY\)):.*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipes and not any("install-browser" in recipe or "npm" in recipe for recipe in recipes)
