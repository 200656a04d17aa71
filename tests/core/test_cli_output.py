"""`python -m inference` for people and spreadsheets: --format jsonl|csv|table, the table on a terminal, the progress
bar on a terminal's stderr, CSV quoting of odd file names; JSON Lines untouched whenever stdout is not a terminal."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import subprocess
import sys

import pytest

from inference import cli, output
from tests.conftest import ROOT

CONTRACT_KEYS = ["source", "label", "fire_probability", "model_version"]


class Terminal(io.StringIO):
    """A text stream that says it is a terminal, as sys.stdout or sys.stderr does in an interactive shell."""

    def isatty(self) -> bool:
        return True


def run(argv, monkeypatch, *, stdout_tty=False, stderr_tty=False):
    stdout = Terminal() if stdout_tty else io.StringIO()
    stderr = Terminal() if stderr_tty else io.StringIO()
    monkeypatch.setattr(sys, "stdout", stdout)
    monkeypatch.setattr(sys, "stderr", stderr)
    status = cli.main([str(arg) for arg in argv])
    return status, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def photos(tmp_path_factory, fire_photos, nofire_photos):
    """Twelve photos and a text file that claims to be a photo, in one folder."""
    root = tmp_path_factory.mktemp("cli-output")
    for i, photo in enumerate((fire_photos[:6] + nofire_photos[:6])):
        (root / f"{i:02d}.jpg").write_bytes(photo.read_bytes())
    (root / "zz-notes.jpg").write_text("not a photo")
    return root


def test_json_lines_stay_the_default_when_stdout_is_not_a_terminal(monkeypatch, fire_photo):
    status, out, _ = run([fire_photo], monkeypatch)
    assert status == 0 and out.endswith("\n")
    [line] = [json.loads(text) for text in out.splitlines()]
    assert list(line) == CONTRACT_KEYS  # exactly today's keys, no certainty fields


def test_a_terminal_gets_a_table_and_a_summary_line(monkeypatch, classifier, fire_photo, tmp_path):
    missing = tmp_path / "missing.jpg"
    status, out, _ = run([fire_photo, missing], monkeypatch, stdout_tty=True)
    assert status == cli.EXIT_INPUT_ERROR
    lines = out.splitlines()
    assert lines[0].split() == ["RESULT", "FIRE", "%", "CERTAINTY", "FILE"]
    prediction = classifier.classify(fire_photo.read_bytes())
    assert lines[1].split() == ["fire" if prediction.is_fire else "no", *([] if prediction.is_fire else ["fire"]),
                                f"{prediction.fire_probability * 100:.1f}", prediction.certainty, str(fire_photo)]
    assert lines[2].split() == ["error", "-", "-", str(missing)]
    assert lines[3].strip() == f"not_found: No such file: {missing}"
    fire = int(prediction.is_fire)
    assert lines[4].startswith(f"{fire} fire, {1 - fire} no fire, 1 error")
    assert out.endswith("\n") and not any(line.startswith("{") for line in lines)


def test_the_table_counts_borderline_verdicts(monkeypatch, classifier, photos):
    verdicts = [classifier.classify(path.read_bytes()) for path in sorted(photos.glob("[0-9]*.jpg"))]
    status, out, _ = run([photos], monkeypatch, stdout_tty=True)
    assert status == 1
    fire = sum(v.is_fire for v in verdicts)
    borderline = sum(v.certainty == "borderline" for v in verdicts)
    summary = out.splitlines()[-1]
    assert summary.startswith(f"{fire} fire, {len(verdicts) - fire} no fire, 1 error")
    assert (f"({borderline} borderline, near the threshold {classifier.threshold:g})" in summary) == (borderline > 0)


def test_format_can_be_chosen_whatever_stdout_is(monkeypatch, fire_photo):
    _, table, _ = run([fire_photo, "--format", "table"], monkeypatch)
    assert table.startswith("RESULT") and table.endswith("\n")
    _, lines, _ = run([fire_photo, "--format", "jsonl"], monkeypatch, stdout_tty=True)
    assert list(json.loads(lines)) == CONTRACT_KEYS and lines.endswith("\n")


def test_a_bad_format_is_a_usage_error(monkeypatch, fire_photo):
    with pytest.raises(SystemExit) as exit_:
        run([fire_photo, "--format", "xml"], monkeypatch)
    assert exit_.value.code == cli.EXIT_USAGE


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "table"])
def test_every_format_ends_with_a_newline_even_without_images(monkeypatch, tmp_path, fmt, fire_photo):
    status, out, err = run([tmp_path, "--format", fmt], monkeypatch)  # an empty folder
    assert status == 0 and "no images found" in err
    assert out == "" if fmt == "jsonl" else out.endswith("\n")
    status, out, _ = run([fire_photo, "--format", fmt], monkeypatch)
    assert status == 0 and out.endswith("\n") and not out.endswith("\n\n")


def test_csv_quotes_odd_file_names_and_keeps_their_bytes(tmp_path, fire_photo):
    names = ["comma, and space.jpg", 'say "cheese".jpg', "two\nlines.jpg", "ünïcode.jpg"]
    paths = [tmp_path / name for name in names]
    raw = os.fsencode(tmp_path) + b"/latin1-\xe9t\xe9.jpg"  # not UTF-8: a name from an old camera card
    for path in paths:
        path.write_bytes(fire_photo.read_bytes())
    with open(raw, "wb") as handle:
        handle.write(b"not a photo")
    done = subprocess.run([sys.executable, "-m", "inference", *map(str, paths), os.fsdecode(raw), "--format", "csv"],
                          cwd=ROOT, capture_output=True, timeout=120)  # fmt: skip
    assert done.returncode == 1
    assert done.stdout.endswith(b"\n") and b"\r\n" not in done.stdout
    rows = list(csv.DictReader(io.StringIO(done.stdout.decode("utf-8", "surrogateescape"), newline="")))
    assert list(rows[0]) == list(output.CSV_COLUMNS)
    assert [row["source"] for row in rows] == [str(p) for p in paths] + [os.fsdecode(raw)]
    assert os.fsencode(rows[-1]["source"]) == raw  # the exact bytes of the name on disk
    assert all(row["label"] in ("fire", "nofire") and float(row["fire_probability"]) >= 0 for row in rows[:4])
    assert rows[0]["margin"] and rows[0]["certainty"] in ("clear", "borderline")
    assert rows[-1]["error_code"] == "unsupported_format" and rows[-1]["label"] == ""


def test_the_table_shows_odd_names_on_one_line(monkeypatch, tmp_path, fire_photo):
    odd = tmp_path / "two\nlines.jpg"
    odd.write_bytes(fire_photo.read_bytes())
    _, out, _ = run([odd], monkeypatch, stdout_tty=True)
    assert len(out.splitlines()) == 3 and out.splitlines()[1].endswith("two\\nlines.jpg")


def test_progress_shows_on_a_terminal_stderr_only(monkeypatch, photos):
    status, out, err = run([photos], monkeypatch, stderr_tty=True)
    assert status == 1
    assert "0/13" in err and "photo/s" in err and err.endswith("\r")  # tqdm's bar on stderr, cleared at the end
    records = [json.loads(line) for line in out.splitlines()]  # stdout: nothing but the JSON Lines
    assert len(records) == 13 and all(list(r) == CONTRACT_KEYS or list(r) == ["source", "error"] for r in records)

    _, out_quiet, err_quiet = run([photos], monkeypatch)  # stderr not a terminal: no bar
    assert out_quiet == out and "/13" not in err_quiet and "\r" not in err_quiet


def test_no_progress_for_a_handful_of_photos(monkeypatch, fire_photo):
    _, _, err = run([fire_photo], monkeypatch, stderr_tty=True)
    assert "1/1" not in err and "\r" not in err


def test_a_real_terminal_gets_the_table(fire_photo):
    """stdout on a pseudo-terminal, as in an interactive shell (stderr stays a pipe: no progress)."""
    leader, follower = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "inference", str(fire_photo)], cwd=ROOT, stdout=follower,
                              stderr=subprocess.PIPE, timeout=120)  # fmt: skip
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal's other end is closed: everything has been read
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)
    text = b"".join(chunks).decode().replace("\r\n", "\n")
    assert done.returncode == 0
    assert text.startswith("RESULT") and str(fire_photo) in text and text.endswith(" 0 errors\n")


def test_table_and_progress_on_one_terminal_do_not_mix(monkeypatch, photos):
    status, out, err = run([photos], monkeypatch, stdout_tty=True, stderr_tty=True)
    assert status == 1 and "/13" in err
    lines = out.splitlines()
    assert lines[0].startswith("RESULT") and len([line for line in lines if line.split()[0] in ("fire", "no", "error")]) == 13
    assert "%|" not in out  # the bar stays on stderr
    assert ", 1 error" in lines[-1]
