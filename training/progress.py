"""A fit's progress on disk, so that a fit stopped at any moment (a deadline, a lent machine taken back, a spot
instance reclaimed, Ctrl-C) goes on from its last finished epoch instead of from scratch.

After every epoch the folder gets the weights with the optimizer's state (Adam's moments, its step count and, with
``--ema``, the weight average), the best epoch's weights, and ``state.json``: the learning rate, the early-stopping
and plateau counters, the dropout layers' random state, the history and the seconds spent. Weight files are written
under new names and the state file that names them replaces the old one last, so a fit killed mid-write leaves the
previous epoch's state whole.

The batches of epoch ``e``, and the order they are fitted in, are functions of ``(seed, e)`` alone
(``fitting.TrainingBatches``), so with that state the epochs after a resume are the very epochs an uninterrupted fit
would have run. The state also records what the fit was asked to do (the
schedule and the caller's fingerprint of the data); a resume that asks for something else is refused, naming what
differs.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import quiet
from .resumable import STATE

quiet.import_keras()
import keras  # noqa: E402  (after the quiet import above)

LOCK = "lock"  # held by the process fitting in the folder
FORMAT = 1


class ProgressMismatch(ValueError):
    """The folder's progress belongs to a fit of other settings or other photos."""


@dataclass
class State:
    fingerprint: dict
    epochs_done: int = 0
    last: str | None = None  # weights and optimizer state after the last finished epoch
    best: str | None = None  # weights of the best epoch so far (validation AUC)
    best_val_auc: float = -math.inf
    learning_rate: float | None = None
    early_stopping: dict = field(default_factory=dict)
    plateau: dict = field(default_factory=dict)
    ema_in_model: bool = False  # the averaged weights are in the model (swapped in at the epoch's end)
    random_states: list = field(default_factory=list)  # of the dropout layers' seed generators, which weight files leave out
    history: dict = field(default_factory=dict)
    seconds: float = 0.0


def read(folder: Path, fingerprint: dict) -> State | None:
    """The progress in ``folder``, or None if it has none; ProgressMismatch if it was made for another fit."""
    path = folder / STATE
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text())
        if raw.pop("format") != FORMAT:
            raise ValueError("an unknown format")
        state = State(**raw)
        if not isinstance(state.fingerprint, dict):
            raise ValueError("no fingerprint")
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ProgressMismatch(f"{path} cannot be read ({exc}): remove {folder} to start the fit again") from None
    wanted = _plain(fingerprint)
    differing = sorted(key for key in set(wanted) | set(state.fingerprint) if wanted.get(key) != state.fingerprint.get(key))
    if differing:
        shown = "; ".join(f"{key}: {_shown(state.fingerprint.get(key))} then, {_shown(wanted.get(key))} now" for key in differing)
        raise ProgressMismatch(f"the fit in {folder} was started with other settings or photos ({shown}): resume it "
                               f"with the same ones, or remove {folder} to start again")
    for name in (state.last, state.best):
        if name is not None and (not isinstance(name, str) or Path(name).name != name):
            raise ProgressMismatch(f"{path} names {name!r}, not a file of {folder}: remove {folder} to start the fit again")
        if name is not None and not (folder / name).exists():
            raise ProgressMismatch(f"{folder / name} is missing: remove {folder} to start the fit again")
    return state


@contextlib.contextmanager
def claimed(folder: Path):
    """Hold ``folder`` for one fit: a second process going on with the same fit (the command given twice) would
    interleave its epochs with this one's, so it is refused while this one runs. The lock goes with the process, however
    it ends."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise ProgressMismatch(f"another process is fitting in {folder} (pid {handle.read().strip() or 'unknown'}): "
                                   f"wait for it, or stop it first") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield


def _plain(value):
    """``value`` as JSON gives it back (tuples as lists), so a fingerprint read back equals one made now."""
    return json.loads(json.dumps(value))


def _shown(value) -> str:
    return "absent" if value is None else json.dumps(value)


def finished(state: State, epochs: int, patience: int) -> bool:
    """Whether the fit had already ended: every epoch run, or early stopping's patience spent."""
    return state.epochs_done >= epochs or (state.epochs_done > 1 and state.early_stopping.get("wait", 0) >= patience)


class Progress(keras.callbacks.Callback):
    """Keeps the best epoch's weights (by validation AUC, as ``keras.callbacks.ModelCheckpoint`` would) and, with
    ``resumable``, everything the fit needs to go on after its last finished epoch.

    It must come after the callbacks whose state it keeps (early stopping, the plateau's learning-rate cuts, the swap
    of the weight average), so that each epoch's state is theirs after that epoch."""

    def __init__(self, folder: Path, state: State, resumable: bool, stopping: keras.callbacks.EarlyStopping,
                 plateau: keras.callbacks.ReduceLROnPlateau, swap: keras.callbacks.SwapEMAWeights | None = None):
        super().__init__()
        self.folder, self.state, self.resumable = folder, state, resumable
        self.stopping, self.plateau, self.swap = stopping, plateau, swap
        self.folder.mkdir(parents=True, exist_ok=True)

    def on_train_begin(self, logs=None):
        """Give the other callbacks back their counters (their own on_train_begin has just reset them)."""
        for callback, saved, names in ((self.stopping, self.state.early_stopping, ("wait", "best", "best_epoch")),
                                       (self.plateau, self.state.plateau, ("wait", "best", "cooldown_counter"))):
            for name in names:
                if name in saved:
                    setattr(callback, name, saved[name])
        if self.swap is not None:
            self.swap._ema_weights_in_model = self.state.ema_in_model

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        state = self.state
        logs = logs or {}
        for key, value in logs.items():
            state.history.setdefault(key, []).append(float(value))
        state.epochs_done, state.seconds = epoch + 1, state.seconds + time.time() - self.started
        written = []
        current = logs.get("val_auc")
        if current is not None and current > state.best_val_auc:  # strictly better, as ModelCheckpoint
            state.best_val_auc, state.best = float(current), f"best-{epoch + 1:04d}.weights.h5"
            written.append(state.best)
        if self.resumable:
            state.last = f"epoch-{epoch + 1:04d}.weights.h5"
            written.append(state.last)
            state.learning_rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            state.early_stopping = {"wait": self.stopping.wait, "best": _number(self.stopping.best),
                                    "best_epoch": self.stopping.best_epoch}
            state.plateau = {"wait": self.plateau.wait, "best": _number(self.plateau.best),
                             "cooldown_counter": self.plateau.cooldown_counter}
            state.ema_in_model = bool(self.swap is not None and self.swap._ema_weights_in_model)
            state.random_states = [keras.ops.convert_to_numpy(v).tolist() for v in _random_states(self.model)]
        for name in written:
            self.model.save_weights(self.folder / name)  # with the optimizer's state: a compiled model's file has it
        if written:
            self._write_state()

    def _write_state(self) -> None:
        path = self.folder / STATE
        partial = path.with_suffix(".json.partial")
        partial.write_text(json.dumps({"format": FORMAT, **self.state.__dict__}, indent=1) + "\n")
        os.replace(partial, path)  # the state names its files only once they are whole
        for stale in self.folder.glob("*.weights.h5"):
            if stale.name not in {self.state.last, self.state.best}:
                stale.unlink()


def restore(model: keras.Model, folder: Path, state: State) -> None:
    """Put the last finished epoch back into ``model`` (compiled as the fit was): weights, optimizer state and the
    learning rate. The optimizer is built first, or Keras would skip its saved state."""
    model.optimizer.build(model.trainable_variables)
    variables = _random_states(model)
    try:
        model.load_weights(folder / state.last)
        if len(variables) != len(state.random_states):
            raise ValueError(f"{len(state.random_states)} random states for a network with {len(variables)}")
        model.optimizer.learning_rate.assign(state.learning_rate)
        for variable, value in zip(variables, state.random_states):
            variable.assign(value)
    except (OSError, ValueError, TypeError) as exc:
        raise ProgressMismatch(f"the progress in {folder} cannot be loaded into this network ({exc}): remove {folder} to "
                               f"start the fit again") from None


def _random_states(model: keras.Model) -> list:
    """The state variables of the network's seed generators (dropout draws its masks from them), in a fixed order."""
    return [v for v in model.non_trainable_variables if v.path.endswith("seed_generator_state")]


def _number(value) -> float | None:
    return None if value is None else float(value)
