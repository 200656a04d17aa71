"""Where a fit keeps its progress until it ends (``training.progress`` writes it), so that a stopped fit can go on.

A leaf module, free of Keras: the commands that only ask whether a folder holds a stopped fit (``python -m training
--resume``, ``training.accelerated``) import it before a Keras backend is chosen.
"""

from __future__ import annotations

from pathlib import Path

FOLDER = "progress"  # in a run folder (python -m training) or a fit's folder (training.accelerated)
STATE = "state.json"  # in FOLDER, written last after every epoch: it names the epoch's weight files


def has_progress(folder: Path) -> bool:
    """Whether ``folder`` holds the progress of a fit that was stopped before it ended."""
    return (folder / FOLDER / STATE).exists()
