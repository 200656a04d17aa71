"""Keep TensorFlow's start-up banners, C++ log lines and printed tensor specs off the training run's output.

TensorFlow logs from C++ (oneDNN and CPU-feature notices, SavedModel loader lines) unless told otherwise before it
is imported; Keras's SavedModel export prints every endpoint's tensor specs with ``print``; LiteRT announces its
XNNPACK delegate from C. None of it helps the person training, and it buries the per-epoch progress lines.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import tempfile
import warnings
from pathlib import Path


@contextlib.contextmanager
def optimizer_state_ignored():
    """Loading weights into a model whose optimizer state differs from the file's (weights-only files, or Adam's
    moments saved with a .keras file) warns per file; serving, exporting and fine-tuning need none of that state."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        yield


def import_tensorflow() -> None:
    """Import TensorFlow and Keras quietly, once; training modules call this before their own imports.

    ``TF_CPP_MIN_LOG_LEVEL`` (a caller's value wins) silences later C++ log lines; the lines TensorFlow writes while
    loading its libraries come before its logging is set up and ignore it, so the import itself is captured."""
    _quiet_import("keras", "tensorflow")


def import_keras() -> None:
    """Import Keras quietly, once, on whichever backend it is set to. With TensorFlow's (here), importing Keras imports
    TensorFlow, so the modules that import Keras at their top call this first, and every command that uses them
    (``training.rescore``, ``training.recalibrate``, ...) starts as quietly as ``python -m training``. A lent GPU
    machine runs Keras on JAX, without TensorFlow."""
    _quiet_import("keras")


def _quiet_import(*names: str) -> None:
    if all(name in sys.modules for name in names):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with captured_output():
        for name in names:
            importlib.import_module(name)
    if "tensorflow" in sys.modules:
        _quiet_python_loggers()


def _quiet_python_loggers() -> None:
    import logging

    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    # model.fit on a tf.data pipeline: the pipeline shuffles, Keras's own shuffle flag is moot.
    warnings.filterwarnings("ignore", message=r".*`shuffle=True` was passed.*")


@contextlib.contextmanager
def captured_output(log: Path | None = None):
    """Send everything written to file descriptors 1 and 2 (Python prints and C/C++ output alike) to ``log``
    (appended) or nowhere, for the duration of the block; if the block fails, what it wrote goes to stderr after all,
    so the failure keeps its explanation."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        failed = True
        try:
            yield
            failed = False
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            sink.seek(0)
            written = sink.read()
            if log is not None:
                with open(log, "ab") as handle:
                    handle.write(written)
            if failed and written:
                sys.stderr.buffer.write(written)
                sys.stderr.flush()
