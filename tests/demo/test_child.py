"""The demo as a child process: a demo that exits says so at once, with its output, and nothing is left running."""

from __future__ import annotations

import subprocess
import sys

import pytest

from demo.child import READY, ChildDemo, DemoFailed, stop_group


def test_a_demo_that_exits_is_reported_with_its_status_and_output_not_waited_for():
    demo = ChildDemo("--no-such-option")
    with pytest.raises(DemoFailed, match=r"(?s)exited with status 2.*--no-such-option"):
        demo.read_until(READY, timeout=60)
    assert demo.process.poll() == 2


def test_stop_group_kills_what_ignores_the_first_signal_and_reaps_it():
    stubborn = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                                 "print('ready', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True,
                                start_new_session=True)
    assert stubborn.stdout.readline() == "ready\n"
    stop_group(stubborn, timeout=0.5)
    assert stubborn.returncode is not None and stubborn.returncode < 0, "killed by SIGKILL, and reaped"
    stop_group(stubborn)  # stopping a stopped child is a no-op
