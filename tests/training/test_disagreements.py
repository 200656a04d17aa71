"""Contact sheets of the photos a model disagrees with most (``python -m training.disagreements``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from PIL import Image

from tests.conftest import ROOT
from tests.training.in_process import run_main
from training import data, disagreements


def photo(path, colour):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), colour).save(path, "JPEG")
    return path


def scores_file(tmp_path, records):
    out = tmp_path / "scores.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in records) + "\n")
    return out


def labelled_set(tmp_path):
    """Three fire-free photos, two fires, a photo outside any class folder, an unreadable one and an error record."""
    s = tmp_path / "s"
    records = [{"source": str(photo(s / "nofire" / f"n{i}.jpg", (40 * i, 90, 90))), "label": "fire" if p > 0.5 else "nofire",
                "fire_probability": p} for i, p in enumerate((0.2, 0.9, 0.6))]
    records += [{"source": str(photo(s / "fire" / f"f{i}.jpg", (200, 40 * i, 0))), "label": "fire", "fire_probability": p}
                for i, p in enumerate((0.95, 0.1))]
    records.append({"source": str(photo(tmp_path / "loose.jpg", "red")), "label": "fire", "fire_probability": 0.99})
    broken = s / "fire" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not a jpeg")
    records.append({"source": str(broken), "label": "fire", "fire_probability": 0.05})
    records.append({"source": str(s / "fire" / "gone.jpg"), "error": {"code": "unreadable_file", "message": "gone"}})
    return s, scores_file(tmp_path, records)


def tsv(folder):
    return [line.split("\t") for line in (folder / "disagreements.tsv").read_text().splitlines()[1:]]


def test_the_sheets_show_the_worst_disagreements_first_and_survive_an_unreadable_photo(tmp_path):
    s, scores = labelled_set(tmp_path)
    done = run_main(disagreements.main, scores, "--out", tmp_path / "out", "--count", "2", "--columns", "2", "--tile", "64")
    assert done.returncode == 0, done.stderr
    assert "6 labelled photos read; 1 error records and 1 photos outside fire/ and nofire/ skipped" in done.stderr
    rows = tsv(tmp_path / "out")
    assert [(r[0], r[1], r[3], r[4]) for r in rows] == [
        ("fire-free-scored-highest.png", "0", "0.9000", str(s / "nofire" / "n1.jpg")),
        ("fire-free-scored-highest.png", "1", "0.6000", str(s / "nofire" / "n2.jpg")),
        ("fires-scored-lowest.png", "0", "0.0500", str(s / "fire" / "broken.jpg")),
        ("fires-scored-lowest.png", "1", "0.1000", str(s / "fire" / "f1.jpg")),
    ]
    sheet = Image.open(tmp_path / "out" / "fires-scored-lowest.png")
    assert sheet.size == (2 * 64, 64 + disagreements.CAPTION), "two tiles in one row"
    assert sheet.getpixel((32, 8)) == sheet.getpixel((8, 55)) == (211, 211, 211), "the unreadable photo is a grey tile"
    assert abs(sheet.getpixel((64 + 32, 32))[0] - 200) < 12, "the fire photo, as decoded"


def test_a_label_correction_moves_a_photo_to_the_other_sheet(tmp_path, monkeypatch):
    s, scores = labelled_set(tmp_path)
    monkeypatch.setitem(data.LABEL_CORRECTIONS, data.file_sha256(s / "nofire" / "n1.jpg"), (1, "a fire filed under nofire"))
    assert run_main(disagreements.main, scores, "--out", tmp_path / "out").returncode == 0
    rows = tsv(tmp_path / "out")
    assert [r[4] for r in rows if r[0] == "fire-free-scored-highest.png"] == [str(s / "nofire" / n) for n in ("n2.jpg", "n0.jpg")]
    assert ["fires-scored-lowest.png", "fire"] == next(r for r in rows if r[4].endswith("n1.jpg"))[0:3:2]


def test_input_that_is_not_scores_is_refused_with_a_reason(tmp_path):
    (tmp_path / "notes.txt").write_text("hello\n")
    done = run_main(disagreements.main, tmp_path / "notes.txt", "--out", tmp_path / "out")
    assert done.returncode == 1 and "cannot read" in done.stderr and "JSON Lines" in done.stderr
    loose = scores_file(tmp_path, [{"source": str(photo(tmp_path / "a.jpg", "red")), "fire_probability": 0.5}])
    done = run_main(disagreements.main, loose, "--out", tmp_path / "out")
    assert done.returncode == 1 and "no scored photo" in done.stderr and not (tmp_path / "out").exists()
    done = run_main(disagreements.main, tmp_path / "missing.jsonl", "--out", tmp_path / "out")
    assert done.returncode == 1 and "missing.jsonl" in done.stderr


def test_it_reads_what_the_inference_cli_writes(tmp_path):
    s, _ = labelled_set(tmp_path)
    (s / "fire" / "broken.jpg").unlink()
    cli = subprocess.run([sys.executable, "-m", "inference", str(s)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    scores = tmp_path / "cli.jsonl"
    scores.write_text(cli.stdout)
    done = run_main(disagreements.main, scores, "--out", tmp_path / "out", "--count", "3")
    assert done.returncode == 0 and "5 labelled photos read; 0 error records" in done.stderr
    assert sorted(r[4] for r in tsv(tmp_path / "out")) == sorted(str(p) for p in s.rglob("*.jpg"))


def test_a_named_pipe_in_the_scores_is_a_grey_tile_not_a_hang(tmp_path, monkeypatch):
    monkeypatch.setitem(data.LABEL_CORRECTIONS, "0" * 64, (1, "a correction, so labels are looked up by content"))
    pipe = tmp_path / "s" / "nofire" / "pipe.jpg"
    pipe.parent.mkdir(parents=True)
    os.mkfifo(pipe)
    scores = scores_file(tmp_path, [{"source": str(pipe), "fire_probability": 0.9}])
    done = run_main(disagreements.main, scores, "--out", tmp_path / "out", "--tile", "64")
    assert done.returncode == 0, done.stderr
    assert [r[4] for r in tsv(tmp_path / "out")] == [str(pipe)]
    assert Image.open(tmp_path / "out" / "fire-free-scored-highest.png").getpixel((32, 8)) == (211, 211, 211)
