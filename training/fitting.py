"""Fitting a model on decoded photos, on whichever Keras backend is installed: TensorFlow on a CPU (``python -m
training``) or JAX on a lent GPU (``python -m training.accelerated``). Nothing here imports TensorFlow, so both
ways run the same batches, augmentation, loss, schedule and early stopping."""

from __future__ import annotations

import dataclasses
import random
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import augment, progress, quiet

quiet.import_keras()
import keras  # noqa: E402  (after the quiet import above)


@dataclass(frozen=True)
class Schedule:
    epochs: int = 60
    patience: int = 10  # epochs without a better validation AUC before stopping
    batch_size: int = 32
    learning_rate: float = 2e-3
    loss: str = "focal"
    ema: float = 0.0  # momentum of an exponential moving average of the weights, validated and kept instead (0: off)
    source_balance: float = 0.0  # how far each source gets an equal share of its class (0: by their numbers; 1: equal)
    distill_weight: float = 0.0  # share of the target that is the teachers' probability (0: the label alone)
    seed: int = 1337
    recipe: augment.Recipe = field(default_factory=augment.Recipe)
    workers: int = 1  # threads preparing batches beside the fit
    deadline: float | None = None  # a time.time() after which no new epoch starts (the best epoch is kept)


@dataclass
class Fitted:
    model: keras.Model
    history: dict
    seconds: float  # fitting time, every part of a resumed fit's included
    resumable: bool = False  # stopped by the deadline with epochs left: its progress folder was kept


def class_weights(labels: np.ndarray) -> dict[int, float]:
    """Weights that make both classes count equally, whatever their numbers."""
    positives = float(labels.sum())
    total = len(labels)
    return {0: total / (2 * (total - positives)), 1: total / (2 * positives)}


def source_factors(labels: np.ndarray, sources: np.ndarray | None, power: float) -> np.ndarray:
    """Per photo, a factor on its weight that gives the sources of its class shares in proportion to
    ``count ** (1 - power)``: 0 leaves them as many as their photos; 1 gives each the same share, so a small source of
    hard scenes weighs as much as a large one of easy ones. The factors of a class average 1."""
    factors = np.ones(len(labels), np.float32)
    if not power or sources is None:
        return factors
    for label in np.unique(labels):
        in_class = labels == label
        _, group, counts = np.unique(sources[in_class], return_inverse=True, return_counts=True)
        raw = counts.astype(np.float64)[group] ** -power
        factors[in_class] = raw / raw.mean()
    return factors


def distillation_target(labels: np.ndarray, taught: np.ndarray, weight: float) -> np.ndarray:
    """The student's target: ``weight`` of the teachers' probability, the rest the photo's label."""
    return ((1.0 - weight) * labels + weight * taught).astype(np.float32)


class TrainingBatches(keras.utils.PyDataset):
    """Shuffled, augmented batches of the uint8 training photos, with sample weights by class (and by source, with
    ``Schedule.source_balance``: see source_factors). With ``teacher`` (a callable giving fire probabilities of a
    batch), the target is its verdict on the augmented photo blended with the label, ``Schedule.distill_weight`` of it.

    Each photo is paired with one drawn from an independent shuffle, which scene mixing may paste in. Every batch is
    full (the epoch's remainder waits for the next shuffle), so a compiled step is never rebuilt for a smaller
    batch. The randomness of batch ``i`` of epoch ``e`` is seeded by ``(seed, e, i)``: the same data, whatever the
    number of threads."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, schedule: Schedule, sources: np.ndarray | None = None,
                 teacher: Callable[[np.ndarray], np.ndarray] | None = None, first_epoch: int = 0):
        super().__init__(workers=schedule.workers, use_multiprocessing=False)
        self.images, self.labels, self.schedule, self.teacher = images, labels.astype(np.float32), schedule, teacher
        self.weights = class_weights(self.labels)
        self.source_factors = source_factors(self.labels, sources, schedule.source_balance)
        self.batch_size = min(schedule.batch_size, len(images))
        self.epoch = first_epoch  # a resumed fit's first epoch: the batches an uninterrupted fit would draw
        self._shuffle()

    def _shuffle(self) -> None:
        rng = np.random.default_rng((self.schedule.seed, self.epoch))
        self.order, self.partners = rng.permutation(len(self.images)), rng.permutation(len(self.images))
        self.batch_order = batch_order(self.schedule.seed, self.epoch, len(self))

    def __len__(self) -> int:
        return max(1, len(self.images) // self.batch_size)

    def __getitem__(self, position: int):
        """The fit asks for batches in order (``shuffle=False``): the order of this epoch's batches is drawn here."""
        return self.batch(self.batch_order[position])

    def batch(self, index: int):
        """Batch ``index`` of this epoch: its photos, augmented, with their targets and weights."""
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        mine, theirs = self.order[rows], self.partners[rows]
        rng = np.random.default_rng((self.schedule.seed, self.epoch, index))
        x, y = augment.augment_batch(self.images[mine], self.labels[mine], self.images[theirs], self.labels[theirs],
                                     rng, self.schedule.recipe)
        # By the label after mixing (a fire pasted in makes it fire), and the source of the photo underneath.
        w = (np.where(y > 0.5, self.weights[1], self.weights[0]) * self.source_factors[mine]).astype(np.float32)
        if self.teacher is not None:  # taught on the very photo the student sees: crop, shift and paste included
            y = with_label(distillation_target(y, self.teacher(x), self.schedule.distill_weight), y)
        return x, y, w

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._shuffle()


def batch_order(seed: int, epoch: int, batches: int) -> list[int]:
    """The order the batches of ``epoch`` are fitted in: the ``epoch``-th shuffle of a ``random.Random(seed)``, which is
    the order Keras drew from Python's random state when it shuffled (fits before this function are the same fits), but
    a function of the epoch alone, so that a resumed fit draws the order of an uninterrupted one on every backend
    (JAX's data adapter draws a shuffle of its own before the first epoch). Epoch 0 only serves the adapter's first look
    at the data: Keras ends an epoch before the first one it fits."""
    order, rng = list(range(batches)), random.Random(seed)
    for _ in range(epoch):
        order = list(range(batches))
        rng.shuffle(order)
    return order


def with_label(target: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """A distilled target with the label beside it, as columns: the loss reads the first, the metrics the second
    (accuracy and AUC are of labels: a blended target of 0.3 is neither class)."""
    return np.stack([target, labels], axis=-1).astype(np.float32)


class _OfTheLabel:
    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(y_true[:, 1:], y_pred, sample_weight)


class LabelAccuracy(_OfTheLabel, keras.metrics.BinaryAccuracy):
    """Accuracy against the label column of :func:`with_label`'s targets."""


class LabelAUC(_OfTheLabel, keras.metrics.AUC):
    """ROC AUC against the label column of :func:`with_label`'s targets."""


def _on_the_target(loss: Callable) -> Callable:
    def on_the_target(y_true, y_pred):
        return loss(y_true[:, :1], y_pred)
    return on_the_target


def compile_model(model: keras.Model, schedule: Schedule) -> keras.Model:
    loss = keras.losses.BinaryFocalCrossentropy(gamma=2.0) if schedule.loss == "focal" else "binary_crossentropy"
    metrics = ["accuracy", keras.metrics.AUC(name="auc")]
    if schedule.distill_weight:  # targets of two columns (with_label), the same loss and metrics on each's own
        focal = lambda y, p: keras.losses.binary_focal_crossentropy(y, p, gamma=2.0)  # noqa: E731 (as the class computes it)
        loss = _on_the_target(focal if schedule.loss == "focal" else keras.losses.binary_crossentropy)
        metrics = [LabelAccuracy(name="accuracy"), LabelAUC(name="auc")]
    model.compile(
        optimizer=keras.optimizers.Adam(schedule.learning_rate, use_ema=schedule.ema > 0, ema_momentum=schedule.ema),
        loss=loss, metrics=metrics)
    return model


class EpochLog(keras.callbacks.Callback):
    """One flushed progress line per epoch; stops the fit at the deadline, if any."""

    def __init__(self, total: int, log: Callable[[str], None], deadline: float | None = None):
        super().__init__()
        self.total, self.log, self.deadline = total, log, deadline
        self.deadline_reached = False

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        shown = " ".join(f"{k} {v:.4f}" for k, v in (logs or {}).items() if k != "learning_rate")
        self.log(f"epoch {epoch + 1}/{self.total} ({time.time() - self.started:.0f} s): {shown}")
        if self.deadline is not None and time.time() > self.deadline:
            self.log("deadline reached: stopping, keeping the best epoch so far")
            self.model.stop_training = True
            self.deadline_reached = True


def fit(model: keras.Model, train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray,
        schedule: Schedule, log: Callable[[str], None] = print, train_sources: np.ndarray | None = None,
        teacher: Callable[[np.ndarray], np.ndarray] | None = None, progress_folder: Path | None = None,
        fingerprint: dict | None = None) -> Fitted:
    """Fit with early stopping on validation AUC; return the best epoch's model, not the last one's.
    ``train_sources``: each training photo's source, for ``schedule.source_balance``; ``teacher``: see
    TrainingBatches.

    With ``progress_folder``, the fit keeps its progress there after every epoch (``training.progress``) and, if the
    folder already holds a fit's progress, goes on from its last finished epoch: the same schedule, photos and
    ``fingerprint`` (the caller's description of the data and network) are required. The folder is removed once the
    fit ends, and kept when the deadline stops it (``Fitted.resumable``)."""
    if schedule.source_balance and train_sources is None:
        raise ValueError("source balance needs each training photo's source")
    if (teacher is None) != (schedule.distill_weight == 0):
        raise ValueError("distillation needs both a teacher and a distill weight over 0")
    keras.utils.set_random_seed(schedule.seed)
    if progress_folder is None:
        return _fit(model, train_x, train_y, val_x, val_y, schedule, log, train_sources, teacher, None, fingerprint)
    with progress.claimed(progress_folder):
        return _fit(model, train_x, train_y, val_x, val_y, schedule, log, train_sources, teacher, progress_folder,
                    fingerprint)


def _fit(model, train_x, train_y, val_x, val_y, schedule: Schedule, log, train_sources, teacher,
         progress_folder: Path | None, fingerprint: dict | None) -> Fitted:
    wanted = fit_fingerprint(schedule, train_x, val_x, fingerprint)
    folder = progress_folder or Path(tempfile.mkdtemp(prefix="firewatch-train-"))
    state = progress.read(folder, wanted) if progress_folder else None
    if state is None:
        state = progress.State(wanted)
    elif state.last is not None:
        progress.restore(model, folder, state)
        log(f"resuming after epoch {state.epochs_done} of {schedule.epochs} ({state.seconds:.0f} s fitted so far; best "
            f"validation AUC {state.best_val_auc:.4f})")
    epoch_log = EpochLog(schedule.epochs, log, schedule.deadline)
    stopping = keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=schedule.patience)
    plateau = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=max(2, schedule.patience // 3))
    # With an average of the weights, each epoch is validated and kept as that average: swapped in at the epoch's end,
    # before Progress saves it.
    swap = keras.callbacks.SwapEMAWeights(swap_on_epoch=True) if schedule.ema > 0 else None
    kept = progress.Progress(folder, state, resumable=progress_folder is not None, stopping=stopping, plateau=plateau,
                             swap=swap)
    callbacks = [epoch_log, stopping, plateau, *([swap] if swap else []), kept]
    if not progress.finished(state, schedule.epochs, schedule.patience):
        model.fit(TrainingBatches(train_x, train_y, schedule, train_sources, teacher, first_epoch=state.epochs_done),
                  validation_data=(val_x.astype(np.float32), with_label(val_y, val_y) if teacher else val_y),
                  validation_batch_size=max(64, schedule.batch_size), epochs=schedule.epochs,
                  initial_epoch=state.epochs_done, callbacks=callbacks, verbose=0, shuffle=False)
    if state.best is not None:
        model.load_weights(folder / state.best)  # the best epoch, not the last
    resumable = progress_folder is not None and epoch_log.deadline_reached and \
        not progress.finished(state, schedule.epochs, schedule.patience)
    if not resumable:
        shutil.rmtree(folder, ignore_errors=True)
    return Fitted(model, state.history, state.seconds, resumable)


def fit_fingerprint(schedule: Schedule, train_x: np.ndarray, val_x: np.ndarray, extra: dict | None) -> dict:
    """What a resumed fit must share with the fit it goes on from: the schedule (but the threads and the deadline,
    which change no batch), the photos' numbers and shape, and the caller's ``extra``."""
    asked = {k: v for k, v in dataclasses.asdict(schedule).items() if k not in {"workers", "deadline"}}
    return {**asked, "train_photos": list(train_x.shape), "validation_photos": list(val_x.shape), **(extra or {})}


def batch_norm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """Every batch-norm layer of ``model``, those of nested models (a pretrained backbone) included."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found.extend(batch_norm_layers(layer))
    return found


def exact_batch_norm_statistics(model: keras.Model, batches: TrainingBatches, epochs: int = 2) -> int:
    """Give every batch-norm layer the statistics of the weights it now has: the plain mean, over ``epochs`` of
    ``batches``, of the batch statistics training normalises with, instead of running averages that lag behind the
    weights (at momentum 0.99, some 100 steps). What SWA does after averaging weights. Returns the batches seen.

    Each batch is one forward pass in training mode, which updates no weight: batch k is averaged in with momentum
    (k - 1) / k, so after n batches each holds 1/n of the statistics."""
    layers = batch_norm_layers(model)
    kept = [layer.momentum for layer in layers]
    for layer in layers:
        layer.moving_mean.assign(np.zeros(layer.moving_mean.shape, np.float32))
        layer.moving_variance.assign(np.ones(layer.moving_variance.shape, np.float32))
    seen = 0
    try:
        for _ in range(epochs):
            for index in range(len(batches)):
                seen += 1
                for layer in layers:
                    layer.momentum = (seen - 1) / seen
                model(batches.batch(index)[0], training=True)
            batches.on_epoch_end()
    finally:
        for layer, momentum in zip(layers, kept):
            layer.momentum = momentum
    return seen
