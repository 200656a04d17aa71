"""The demo's banner and the README print the same commands; every option of `python -m demo` is explained."""

from __future__ import annotations

import re

from demo.runner import LocalSystem, build_parser
from tests.conftest import ROOT


def banner_commands(banner: str) -> list[str]:
    block = banner[banner.index("\nTry"):banner.index("Ctrl-C stops everything")]
    return [line.strip() for line in block.splitlines()[2:] if line.strip()]


def test_the_readme_shows_the_commands_the_banner_prints():
    banner = LocalSystem(build_parser().parse_args([])).banner()
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("`make demo` starts"):readme.index("After either command")]
    shown = re.search(r"```bash\n(.*?)```", section, re.S).group(1).splitlines()
    assert shown == banner_commands(banner)


def test_the_banner_sets_credentials_and_reads_results_without_the_cli():
    commands = banner_commands(LocalSystem(build_parser().parse_args(["--s3-port", "4999", "--bucket", "b-x"])).banner())
    assert commands[0].startswith("export AWS_ACCESS_KEY_ID=") and "AWS_SECRET_ACCESS_KEY=" in commands[0]
    assert "curl http://127.0.0.1:4999/b-x/results/photo.jpg.json   # the result, a second later" in commands


def test_every_option_has_a_description():
    parser = build_parser()
    undocumented = [action.dest for action in parser._actions if not action.help]
    assert undocumented == []


def test_the_screenshot_script_says_when_the_photos_are_missing(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "demo.screenshot", "--datasets", str(tmp_path), "--output",
                           str(tmp_path / "shot.png")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "the real photos are not there" in done.stderr and str(tmp_path) in done.stderr
    assert not (tmp_path / "shot.png").exists()
