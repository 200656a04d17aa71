"""``python -m ops``: every command is registered, and its --help is quick (no AWS SDK imported) and described."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ops.__main__ import COMMANDS
from tests.conftest import ROOT


@pytest.mark.parametrize("command", ["backfill", "replay"])
def test_help_describes_the_command_without_importing_the_aws_sdk(command):
    probe = (
        "import sys\nfrom ops.__main__ import main\ntry:\n    main([%r, '--help'])\nexcept SystemExit as e:\n"
        "    code = e.code\nprint('EXIT', code, 'boto3' in sys.modules, 'tqdm' in sys.modules)" % command
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().splitlines()[-1] == "EXIT 0 False False", result.stderr
    assert COMMANDS[command][1] in result.stdout and "--endpoint-url" in result.stdout and "--dry-run" in result.stdout


def test_commands_are_listed_in_the_top_level_help():
    result = subprocess.run([sys.executable, "-m", "ops", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "backfill" in result.stdout and "replay" in result.stdout
