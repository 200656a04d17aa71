"""Contact sheets of the labelled photos a model disagrees with most: where label errors and blind spots show.

Reads the JSON Lines that ``python -m inference`` writes for labelled folders, takes each photo's label from its
class folder (``fire`` or ``nofire``; ``training.data.LABEL_CORRECTIONS`` wins), and writes two numbered sheets, the
fire-free photos scored highest and the fires scored lowest, each tile the photo as the model sees it (squeezed to
a square by the inference core's own decoder), plus a table of what each number is::

    python -m inference ../shared/datasets > scores.jsonl
    python -m training.disagreements scores.jsonl --out sheets
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from inference import InvalidImage, Limits, decode_image, read_input
from training.data import corrected, folder_label

SHEETS = {"fire-free-scored-highest.png": 0, "fires-scored-lowest.png": 1}  # file name: the label it shows
CAPTION = 14  # pixels of text under each tile
LIMITS = Limits()  # the core's default decode budget: a sheet never reads or decodes what serving would refuse


@dataclass(frozen=True)
class Scored:
    path: Path
    label: int
    probability: float


def label_of(path: Path) -> int | None:
    """The photo's label as training gives it (``training.data.corrected``); None if it sits in no class folder."""
    filed_as = folder_label(path)
    if filed_as is None:
        return None
    try:  # read as the CLI read it to score it; a file it cannot read now keeps its folder's label
        return corrected(hashlib.sha256(read_input(str(path), LIMITS)).hexdigest(), filed_as)
    except InvalidImage:
        return filed_as


def read_scores(lines) -> tuple[list[Scored], int, int]:
    """The scored, labelled photos; how many records were errors; how many photos sat in no class folder."""
    scored, errors, unlabelled = [], 0, 0
    for line in lines:
        if not line.strip():
            continue
        record = json.loads(line)
        if "fire_probability" not in record:
            errors += 1
            continue
        path = Path(record["source"])
        label = label_of(path)
        if label is None:
            unlabelled += 1
            continue
        scored.append(Scored(path, label, float(record["fire_probability"])))
    return scored, errors, unlabelled


def most_disagreed(scored: list[Scored], label: int, count: int) -> list[Scored]:
    """The ``count`` photos of ``label`` whose score is furthest from it (ties broken by path, so runs agree)."""
    of_label = [s for s in scored if s.label == label]
    return sorted(of_label, key=lambda s: (s.probability if label else -s.probability, str(s.path)))[:count]


def tile_of(path: Path, side: int) -> Image.Image:
    """The photo as the model sees it, or a grey tile saying why it could not be read."""
    try:
        return Image.fromarray(decode_image(read_input(str(path), LIMITS), (side, side), LIMITS))
    except InvalidImage as exc:  # read_input and decode_image raise nothing else for a bad or missing file
        tile = Image.new("RGB", (side, side), "lightgrey")
        ImageDraw.Draw(tile).text((4, side // 2), f"unreadable: {exc.code}"[:side // 6], fill="black")
        return tile


def contact_sheet(items: list[Scored], columns: int, side: int) -> Image.Image:
    rows = max(1, -(-len(items) // columns))
    sheet = Image.new("RGB", (columns * side, rows * (side + CAPTION)), "white")
    draw = ImageDraw.Draw(sheet)
    for number, item in enumerate(items):
        x, y = number % columns * side, number // columns * (side + CAPTION)
        sheet.paste(tile_of(item.path, side - 2), (x + 1, y))
        draw.text((x + 2, y + side - 1), f"{number} {item.probability:.2f}", fill="black")
    return sheet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.disagreements", description=__doc__.split("\n\n")[0])
    parser.add_argument("scores", type=Path, help="JSON Lines from python -m inference, run on labelled folders ('-': stdin)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the two sheets and disagreements.tsv")
    parser.add_argument("--count", type=int, default=60, help="photos on each sheet (default 60)")
    parser.add_argument("--columns", type=int, default=10, help="tiles a row (default 10)")
    parser.add_argument("--tile", type=int, default=128, help="tile side in pixels (default 128)")
    args = parser.parse_args(argv)
    if min(args.count, args.columns) < 1 or args.tile < 32:
        parser.error("--count and --columns must be at least 1, --tile at least 32")
    try:
        if str(args.scores) == "-":
            scored, errors, unlabelled = read_scores(sys.stdin)
        else:
            with args.scores.open(encoding="utf-8") as lines:
                scored, errors, unlabelled = read_scores(lines)
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise SystemExit(f"error: cannot read {args.scores} as python -m inference JSON Lines: {exc}") from None
    if not scored:
        raise SystemExit(f"error: no scored photo in {args.scores} sits in a fire/ or nofire/ folder")
    args.out.mkdir(parents=True, exist_ok=True)
    table = ["sheet\tnumber\tlabel\tfire_probability\tfile"]
    for name, label in SHEETS.items():
        picked = most_disagreed(scored, label, args.count)
        contact_sheet(picked, args.columns, args.tile).save(args.out / name)
        table += [f"{name}\t{n}\t{'fire' if label else 'nofire'}\t{s.probability:.4f}\t{s.path}" for n, s in enumerate(picked)]
        print(f"{args.out / name}: {len(picked)} photos", file=sys.stderr)
    (args.out / "disagreements.tsv").write_text("\n".join(table) + "\n", encoding="utf-8")
    print(f"{len(scored)} labelled photos read; {errors} error records and {unlabelled} photos outside fire/ and nofire/ skipped",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
