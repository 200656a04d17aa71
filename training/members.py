"""What ``python -m training --trained DIR`` takes from each DIR: one fit's record (the keys of the ``run.json`` that
``training.accelerated one`` writes), its history and its weights.

A DIR is the fit's own folder, or a finished run folder (or ``models/``) whose model is one such fit served alone: its
card records the fit, its ``.keras`` file holds the weights and its file manifest names the training photos. So the
served model can join a seed ensemble later, after its fit folder is gone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from . import accelerated, quiet, runs


class NotOneFit(ValueError):
    """A run folder whose model is not one fit of ``training.accelerated one``, so it has no fit to lend."""


@dataclass(frozen=True)
class Fit:
    folder: Path
    record: dict  # command, device, backend, settings, image_size, train_digest, fit_seconds; init if fine-tuned, teachers if distilled
    history: dict
    keras_file: Path | None = None  # a run folder's model; None: the fit folder's weights file

    def load_into(self, model) -> None:
        """Give ``model`` (the same network, freshly built) this fit's weights; OSError or ValueError if they do not fit."""
        if self.keras_file is None:
            with quiet.optimizer_state_ignored():  # files from before save_weights left the optimizer out carry Adam's moments
                model.load_weights(self.folder / accelerated.WEIGHTS)
            return
        import keras

        model.set_weights(keras.models.load_model(self.keras_file, compile=False).get_weights())


def read(folder: Path, name: str = "fire_classifier") -> Fit:
    """The fit in ``folder``; OSError, ValueError (NotOneFit among them), KeyError, TypeError or AttributeError when it
    holds none (a damaged card or record)."""
    card_file = folder / f"{name}.json"
    if not card_file.is_file() or (folder / accelerated.RUN).is_file():  # a fit folder (or nothing: its files are missing)
        return Fit(folder, json.loads((folder / accelerated.RUN).read_text()),
                   json.loads((folder / accelerated.HISTORY).read_text()))
    card = json.loads(card_file.read_text())
    fit = card["training"].get("fitted_elsewhere")
    if not fit:
        raise NotOneFit("its model was fitted by `python -m training` itself, and only fits of "
                        "`python -m training.accelerated one` record what an ensemble member needs")
    if "ensemble_of" in fit:
        raise NotOneFit(f"its model is already the mean of {fit['ensemble_of']} fits: give those fits' folders instead")
    if not runs.manifest_matches(folder, card["training_data"]):
        raise ValueError("its file manifest is not the one its card names (another hash): the training photos are unknown")
    manifest = runs.read_file_list(folder / card["training_data"]["file_hashes"])
    trained_on = [sha256 for sha256, split, _ in manifest if split == "train"]
    record = {"command": fit["command"], "device": fit["device"], "backend": fit["backend"], "settings": fit["settings"],
              "image_size": card["input"]["width"], "train_digest": accelerated.digest(trained_on),
              "fit_seconds": card["training"]["seconds"], **({"init": fit["started_from"]} if "started_from" in fit else {}),
              **({"teachers": fit["distilled_from"]} if "distilled_from" in fit else {})}
    history = json.loads((folder / runs.REPORTS / "history.json").read_text())
    return Fit(folder, record, history, folder / card["files"]["keras"])
