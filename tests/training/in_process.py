"""Run a training command's ``main`` in the test process, answering like ``subprocess.run`` would.

Each ``python -m training...`` subprocess imports TensorFlow again (4 to 6 s here); a test that runs a dozen of them
to check refusals spends a minute on imports. The commands' own start-up (``--help`` and usage errors before
TensorFlow loads, nothing on stdout) is still tested as subprocesses elsewhere."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


def _text_stream() -> io.TextIOWrapper:
    # A real byte buffer underneath: training.quiet writes what a failing block printed to sys.stderr.buffer.
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)


def run_main(main, *args) -> Done:
    """``main(argv)``'s exit status and what it printed. ``SystemExit("message")`` is status 1 with the message on
    stderr, as the interpreter does; any other exception is a crash and propagates, failing the test with its traceback."""
    out, err = _text_stream(), _text_stream()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(arg) for arg in args])
        except SystemExit as stop:
            code = stop.code
            if isinstance(code, str):
                print(code, file=err)
                code = 1
    return Done(code or 0, out.buffer.getvalue().decode(), err.buffer.getvalue().decode())
