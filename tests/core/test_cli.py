"""`python -m inference PATH...`: JSON Lines in input order, folders walked, exit codes, --threshold."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from inference import cli
from tests.conftest import ROOT

from .images import encode, solid


def run_cli(*args, env=None, timeout=120):
    done = subprocess.run([sys.executable, "-m", "inference", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    lines = [json.loads(line) for line in done.stdout.splitlines()]  # stdout holds nothing but JSON
    return done.returncode, lines, done.stderr


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory, fire_photo, nofire_photo):
    root = tmp_path_factory.mktemp("photos")
    (root / "b" / "deeper").mkdir(parents=True)
    (root / "a.jpg").write_bytes(fire_photo.read_bytes())
    (root / "b" / "deeper" / "c.PNG").write_bytes(encode(Image.open(nofire_photo), "PNG"))
    (root / "b" / "notes.txt").write_text("not an image, not picked up from a folder")
    (root / ".hidden.jpg").write_bytes(fire_photo.read_bytes())
    return root


def test_one_file_classified(fire_photo):
    status, lines, _ = run_cli(fire_photo)
    assert status == 0 and len(lines) == 1
    line = lines[0]
    assert set(line) == {"source", "label", "fire_probability", "model_version"}
    assert line["source"] == str(fire_photo) and line["label"] in ("fire", "nofire")
    assert isinstance(line["fire_probability"], float) and 0 <= line["fire_probability"] <= 1


def test_folders_are_walked_recursively_for_images_only(photo_folder):
    status, lines, _ = run_cli(photo_folder)
    assert status == 0
    assert [line["source"] for line in lines] == [str(photo_folder / "a.jpg"), str(photo_folder / "b/deeper/c.PNG")]


def test_output_keeps_input_order_and_reports_errors_in_place(tmp_path, fire_photo, nofire_photo):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    broken = tmp_path / "broken.png"
    broken.write_bytes(encode(solid(size=(300, 300)), "PNG")[:200])
    inputs = [nofire_photo, empty, fire_photo, text, tmp_path / "missing.jpg", broken]
    status, lines, _ = run_cli(*inputs)
    assert status == 1
    assert [line["source"] for line in lines] == [str(p) for p in inputs]
    codes = [line.get("error", {}).get("code") for line in lines]
    assert codes == [None, "empty_file", None, "unsupported_format", "not_found", "corrupt_image"]
    assert all(line["error"]["message"] for line in lines if "error" in line)


def test_an_empty_path_is_not_found_not_the_current_folder(fire_photo):
    # Path("") is "."; walking it would classify whatever lies under the working folder (here, the repository).
    assert list(cli.expand_paths(["", str(fire_photo)]))[1] == str(fire_photo)
    status, lines, _ = run_cli("", fire_photo)
    assert status == 1 and [line["source"] for line in lines] == ["", str(fire_photo)]
    assert lines[0]["error"]["code"] == "not_found" and "label" in lines[1]


def test_byte_limit_is_checked_before_reading(tmp_path, fire_photo):
    env = {"FIREWATCH_MAX_BYTES": "1000", "PATH": "/usr/bin:/bin"}
    status, lines, _ = run_cli(fire_photo, env=env)
    assert status == 1 and lines[0]["error"]["code"] == "too_large"


def test_threshold_override(fire_photo):
    _, [low], _ = run_cli(fire_photo, "--threshold", "0")
    _, [high], _ = run_cli(fire_photo, "--threshold", "1")
    assert low["label"] == "fire"
    assert high["label"] == ("fire" if high["fire_probability"] >= 1 else "nofire")


@pytest.mark.parametrize("args", [[], ["--threshold", "2", "x.jpg"], ["--threshold", "abc", "x.jpg"], ["--threads", "0", "x.jpg"]])
def test_usage_errors_exit_2_with_nothing_on_stdout(args):
    status, lines, stderr = run_cli(*args)
    assert status == 2 and lines == [] and "usage" in stderr


def test_missing_model_is_a_clear_error(fire_photo, tmp_path):
    status, lines, stderr = run_cli(fire_photo, "--model", tmp_path / "nope.tflite")
    assert status == 2 and lines == [] and "cannot load the model" in stderr and "nope" in stderr


def test_many_files_are_batched_but_stay_in_order(tmp_path, fire_photos, nofire_photos):
    paths = []
    for i, photo in enumerate((fire_photos + nofire_photos) * 2):
        path = tmp_path / f"{i:03d}.jpg"
        path.write_bytes(photo.read_bytes())
        paths.append(path)
    status, lines, _ = run_cli(tmp_path)
    assert status == 0 and [line["source"] for line in lines] == [str(p) for p in paths]
    from inference import Classifier

    classifier = Classifier.load()
    for path, line in zip(paths[:3], lines[:3]):
        assert line["fire_probability"] == pytest.approx(classifier.classify(path.read_bytes()).fire_probability, abs=1e-4)


def test_pipes_and_devices_are_refused_unopened(tmp_path, fire_photo):
    fifo = tmp_path / "camera.jpg"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
    folder = tmp_path / "folder"
    folder.mkdir()
    os.mkfifo(folder / "inside.jpg")
    status, lines, _ = run_cli(fire_photo, fifo, "/dev/null", folder, timeout=30)
    assert status == 1
    assert [line["source"] for line in lines] == [str(fire_photo), str(fifo), "/dev/null", str(folder / "inside.jpg")]
    assert "label" in lines[0]
    assert [line["error"]["code"] for line in lines[1:]] == ["unreadable_file"] * 3
    assert "named pipe" in lines[1]["error"]["message"] and "device" in lines[2]["error"]["message"]


def deny_listing(monkeypatch, folder: str) -> None:
    """Make ``folder`` unlistable. Root reads any folder whatever its mode, so refuse where os.walk lists."""
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path) == folder:
            raise PermissionError(13, "Permission denied", folder)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_unreadable_folders_are_error_lines_in_place(tmp_path, monkeypatch, capsys, fire_photo):
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "photo.jpg").write_bytes(fire_photo.read_bytes())
    locked = str(tmp_path / "b")
    deny_listing(monkeypatch, locked)
    status = cli.main([str(tmp_path)])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert status == cli.EXIT_INPUT_ERROR
    assert [line["source"] for line in lines] == [str(tmp_path / "a" / "photo.jpg"), locked, str(tmp_path / "c" / "photo.jpg")]
    assert lines[1]["error"] == {"code": "unreadable_file", "message": f"Cannot read the folder {locked}: Permission denied."}


def test_an_unreadable_folder_given_directly_is_an_error_line(tmp_path, monkeypatch, capsys):
    deny_listing(monkeypatch, str(tmp_path))
    assert cli.main([str(tmp_path)]) == cli.EXIT_INPUT_ERROR
    [line] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert line["source"] == str(tmp_path) and line["error"]["code"] == "unreadable_file"
