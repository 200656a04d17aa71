"""Distillation's teachers: fits of ``training.accelerated one`` whose mean verdict on each augmented training batch
becomes part of the student's target (``--teacher DIR --distill-weight SHARE``).

A teacher is checked against the student before it is used: the same photo size and the very same training photos
(so the same sources held out). A teacher that had seen the student's held-out source would teach it that source,
and the student's leave-one-source-out figures would be figures of familiar photos."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np


class TeacherMismatch(ValueError):
    """A teacher that was not fitted on the student's training photos, or cannot be read."""


class Teachers:
    """The mean fire probability of one or more fitted models, on batches of photos (float32, 0 to 255). A folder is a
    fit's own or a finished run of one fit (as ``--trained`` takes them)."""

    def __init__(self, folders: list[Path], image_size: int, train_digest: str):
        from . import backbones, members

        self.models, self.provenance = [], []
        for folder in folders:
            try:
                fit = members.read(folder)
                record, width = fit.record, float(fit.record["settings"]["width"])
                size, digest = record["image_size"], record["train_digest"]
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                raise TeacherMismatch(f"teacher {folder}: not the folder of one fit of `training.accelerated one`, nor a "
                                      f"run of one such fit ({exc})") from None
            if size != image_size:
                raise TeacherMismatch(f"teacher {folder} was fitted on {size} px photos, the student is fitted on {image_size} px")
            if digest != train_digest:
                held = ", ".join(record["settings"].get("holdout") or []) or "none"
                raise TeacherMismatch(
                    f"teacher {folder} was fitted on other training photos (held out: {held}): a teacher must have seen "
                    "exactly the student's, or it could teach the student a source the student holds out")
            model = backbones.compact(size, width=width)
            try:
                fit.load_into(model)
            except (OSError, ValueError) as exc:
                raise TeacherMismatch(f"teacher {folder}: its weights do not fit a width-{width:g} model ({exc})") from None
            weights = fit.keras_file or folder / "model.weights.h5"
            self.models.append(model)
            self.provenance.append({"folder": folder.name, "seed": record["settings"].get("seed"), "width": width,
                                    "bn_statistics": record["settings"].get("bn_statistics", "running"),
                                    "sha256": hashlib.sha256(weights.read_bytes()).hexdigest()})

    def __len__(self) -> int:
        return len(self.models)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        import keras

        # A plain call, not predict(): batches are prepared on several threads, and each call stands alone.
        return np.mean([keras.ops.convert_to_numpy(model(images, training=False)).reshape(-1) for model in self.models], axis=0)
