"""Run folders: every training run writes its own folder, and only ``promote`` puts a model where serving reads it.

A run is first written as ``runs/<start>-incomplete/`` and renamed to ``runs/<start>-<model hash>/`` once its card,
model files and reports are all written, so a folder without ``-incomplete`` is a finished run (``check_complete``
also checks the files themselves). ``install`` copies a run's model set into a folder such as ``models/`` so that a
failure at any point leaves that folder as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from inference import Cascade, LiteRTModel, ModelCard

from . import resumable

INCOMPLETE = "-incomplete"
LOG_NAME = "train.log"
REPORTS = "reports"


class RunError(ValueError):
    """The run folder cannot be promoted as it is (missing files, mismatched hashes, still incomplete)."""


@dataclass
class Run:
    """A run being written: its folder now, and where it will be once complete."""

    folder: Path
    runs: Path
    stamp: str

    @classmethod
    def start(cls, runs: Path) -> "Run":
        stamp = time.strftime("%Y-%m-%d-%H%M%S")
        folder = runs / f"{stamp}{INCOMPLETE}"
        suffix = 1
        while folder.exists():  # two runs started in the same second
            suffix += 1
            stamp = f"{time.strftime('%Y-%m-%d-%H%M%S')}-{suffix}"
            folder = runs / f"{stamp}{INCOMPLETE}"
        folder.mkdir(parents=True)
        return cls(folder, runs, stamp)

    @classmethod
    def resume(cls, folder: Path) -> "Run":
        """An incomplete run whose fit stopped, to go on with in place (``python -m training --resume``)."""
        if not folder.is_dir():
            raise RunError(f"--resume {folder}: no such run folder")
        if not folder.name.endswith(INCOMPLETE):
            raise RunError(f"--resume {folder}: a finished run (only a run folder named <start>{INCOMPLETE} can be resumed)")
        if not resumable.has_progress(folder):
            raise RunError(f"--resume {folder}: its fit left no progress to go on from (it stopped before its first epoch "
                           f"ended, or after the fit itself had ended): start a new run")
        return cls(folder, folder.parent, folder.name[: -len(INCOMPLETE)])

    def final_folder(self, version: str) -> Path:
        """``<start>-<first 8 hex digits of the .tflite's SHA-256>``: sortable by time, tied to the model bytes."""
        return self.runs / f"{self.stamp}-{version.rsplit('-', 1)[-1]}"

    def finish(self, version: str) -> Path:
        final = self.final_folder(version)
        os.replace(self.folder, final)
        self.folder = final
        return final


def read_file_list(path: Path) -> list[tuple[str, str, str]]:
    """A model's file list (``*.files.sha256``, written by training): (sha256, split, path) per file, the path as
    written (relative to the repository when inside or beside it). Raises OSError when it cannot be read."""
    rows = (line.split("  ", 2) for line in path.read_text(encoding="utf-8").splitlines())
    return [(row[0], row[1], row[2]) for row in rows if len(row) == 3]


def manifest_matches(folder: Path, training_data: dict) -> bool:
    """Whether the file list a card's ``training_data`` names, in ``folder``, has the SHA-256 the card records (so the
    training photos it lists are the ones the model was fitted on). Raises OSError when the file cannot be read."""
    manifest = (folder / training_data["file_hashes"]).read_bytes()
    return hashlib.sha256(manifest).hexdigest() == training_data.get("file_hashes_sha256")


def find_card(run: Path) -> Path:
    cards = sorted(p for p in run.glob("*.json") if p.is_file())
    if len(cards) != 1:
        found = ", ".join(p.name for p in cards) or "none"
        raise RunError(f"{run}: expected one model card (*.json) in the run folder, found {found}")
    return cards[0]


def model_files(card: ModelCard) -> list[str]:
    """The files that make up a model set, by name; the card comes separately (it is rewritten on install)."""
    names = [card.files.get("tflite"), card.files.get("keras"), card.training_data.get("file_hashes")]
    return [name for name in names if name]


def check_complete(run: Path) -> ModelCard:
    """The run's card, after checking the run finished and its files are the ones the card describes."""
    if not run.is_dir():
        raise RunError(f"run folder not found: {run}")
    if run.name.endswith(INCOMPLETE):
        raise RunError(f"{run} is an incomplete run (training stopped or is still going; see its {LOG_NAME})")
    card_path = find_card(run)
    try:
        card = ModelCard.load(card_path)
    except (ValueError, KeyError, TypeError) as exc:
        raise RunError(f"{card_path}: not a readable model card ({exc})") from None
    missing = [name for name in model_files(card) if not (run / name).is_file()]
    if not card.files.get("tflite"):
        missing.append("(the card names no .tflite file)")
    if not (run / REPORTS).is_dir():
        missing.append(f"{REPORTS}/")
    missing += [f"{REPORTS}/{plot}" for plot in card.reports.get("plots", []) if not (run / REPORTS / plot).is_file()]
    if missing:
        raise RunError(f"{run} is incomplete: missing {', '.join(missing)}")
    tflite = (run / card.files["tflite"]).read_bytes()
    if not card.version.endswith(hashlib.sha256(tflite).hexdigest()[:8]):
        raise RunError(f"{run}: {card.files['tflite']} is not the model the card describes (version {card.version})")
    manifest = card.training_data.get("file_hashes")
    if manifest and not manifest_matches(run, card.training_data):
        raise RunError(f"{run}: {manifest} does not match the hash in the card")
    try:
        model = LiteRTModel(run / card.files["tflite"])
    except Exception as exc:  # LiteRT raises ValueError/RuntimeError for a damaged flatbuffer
        raise RunError(f"{run}: LiteRT cannot load {card.files['tflite']} ({exc})") from None
    if card.cascade:
        try:
            Cascade.from_card(model, card.cascade, card.threshold)
        except ValueError as exc:
            raise RunError(f"{run}: {exc}") from None
    return card


def install(run: Path, card: ModelCard, target: Path, reports_name: str) -> list[Path]:
    """Copy the run's model set into ``target``, all or nothing: every file is first copied under a temporary name
    beside its destination, then moved into place with ``os.replace`` (atomic per file), the card last; a failure
    at any step puts back what was there. ``reports_name`` is what the installed card calls its reports folder."""
    target.mkdir(parents=True, exist_ok=True)
    token = f".{os.getpid()}-{time.time_ns()}"
    card_name = f"{card.name}.json"
    staged: dict[Path, Path] = {}  # destination -> temporary copy
    backups: dict[Path, Path] = {}  # destination -> what was there before
    moved_in: list[Path] = []
    try:
        for name in model_files(card):
            staged[target / name] = target / f".{name}{token}.new"
            shutil.copy2(run / name, staged[target / name])
        staged[target / REPORTS] = target / f".{REPORTS}{token}.new"
        shutil.copytree(run / REPORTS, staged[target / REPORTS])
        raw = dict(card.raw) | {"reports": dict(card.raw.get("reports", {})) | {"folder": reports_name}}
        staged[target / card_name] = target / f".{card_name}{token}.new"
        staged[target / card_name].write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")
        for destination, temporary in staged.items():
            if destination.exists():
                backup = destination.with_name(f".{destination.name}{token}.old")
                os.replace(destination, backup)
                backups[destination] = backup
            os.replace(temporary, destination)
            moved_in.append(destination)
    except BaseException:
        for destination in moved_in:
            _remove(destination)
        for destination, backup in backups.items():
            os.replace(backup, destination)
        for temporary in staged.values():
            _remove(temporary)
        raise
    for backup in backups.values():
        _remove(backup)
    return list(staged)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()
