"""``python -m inference PATH...``: classify files and folders; one JSON line per image on stdout, or the other
formats of :mod:`inference.output`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Iterable, Iterator

from .classifier import Classifier, Prediction, validate_threshold
from .decoding import IMAGE_SUFFIXES
from .errors import NOT_FOUND, UNREADABLE_FILE, InvalidImage
from .files import read_input
from .model import MapUnavailable, ModelNotFound
from .output import FORMATS, JSONL, Report
from .settings import Limits, positive_int

EXIT_OK, EXIT_INPUT_ERROR, EXIT_USAGE = 0, 1, 2
# Images decoded per model call: amortises the call without delaying the first line much.
BATCH_SIZE = 16


def _threshold(text: str) -> float:
    try:
        return validate_threshold(float(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m inference",
        description="Classify photos as fire / nofire, in input order: one JSON object per image (JSON Lines) when "
        "stdout is not a terminal, a table and a summary line on a terminal.",
        epilog="Exit status: 0 all classified, 1 some input had an error, 2 usage error.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files, or folders to walk recursively for images")
    parser.add_argument("--threshold", type=_threshold, help="decision threshold on the fire probability (default: the model card's)")
    parser.add_argument("--model", type=Path, help="path to a .tflite model with its .json card beside it (default: models/fire_classifier.tflite or $FIREWATCH_MODEL_PATH)")
    parser.add_argument("--threads", type=positive_int, help="LiteRT threads (default: $FIREWATCH_THREADS or 1)")
    parser.add_argument("--format", choices=FORMATS, help="jsonl, csv or table (default: table on a terminal, else jsonl)")
    parser.add_argument("--map", action="store_true",
                        help="add fire_map (rows of per-cell fire evidence, 0..1, top row first) and fire_map_grid to each "
                             "JSON line (implies --format jsonl)")
    return parser


def expand_paths(paths: list[str]) -> Iterator[str | tuple[str, InvalidImage]]:
    """Files as given; folders walked recursively (sorted, hidden entries skipped) for image files.

    A folder that cannot be listed comes out in its place as ``(folder, InvalidImage)``.
    """
    for raw in paths:
        if not raw:  # Path("") would be the current folder, walked whole
            yield raw, InvalidImage(NOT_FOUND, "An empty path names no file.")
            continue
        path = Path(raw)
        if not path.is_dir():
            yield raw
            continue
        found = False
        unlistable: list[OSError] = []
        for root, dirs, files in os.walk(path, onerror=unlistable.append):
            yield from _unlistable_folders(unlistable)
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES:
                    found = True
                    yield os.path.join(root, name)
        if unlistable:
            found = True  # reported as an error line instead
        yield from _unlistable_folders(unlistable)
        if not found:
            print(f"warning: no images found in folder {raw}", file=sys.stderr)


def _unlistable_folders(errors: list[OSError]) -> Iterator[tuple[str, InvalidImage]]:
    # os.walk reports a folder it cannot list through onerror, just before it moves on to the next one.
    for error in errors:
        folder = str(error.filename)
        yield folder, InvalidImage(UNREADABLE_FILE, f"Cannot read the folder {folder}: {error.strerror or error}.")
    errors.clear()


Outcome = tuple[str, Prediction | InvalidImage]


def classify_paths(classifier: Classifier, items: Iterable[str | tuple[str, InvalidImage]],
                   with_map: bool = False) -> Iterator[Outcome]:
    """``(source, outcome)`` for each of :func:`expand_paths`' items, in order, classifying in small batches (with
    fire maps if asked)."""
    pending: list[tuple[str, bytes | InvalidImage]] = []

    def flush() -> Iterator[Outcome]:
        readable = [data for _, data in pending if not isinstance(data, InvalidImage)]
        outcomes = iter(classifier.classify_many(readable, with_map=with_map))
        for source, data in pending:
            yield source, (data if isinstance(data, InvalidImage) else next(outcomes))
        pending.clear()

    batch_size = 1  # the first image goes out alone, so the first line comes as fast as possible
    for item in items:
        if isinstance(item, tuple):  # a folder that could not be listed
            pending.append(item)
        else:
            try:
                pending.append((item, read_input(item, classifier.limits)))
            except InvalidImage as error:
                pending.append((item, error))
        if len(pending) >= batch_size:
            yield from flush()
            batch_size = BATCH_SIZE
    yield from flush()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.map:  # the map is a list of lists: it has a place in JSON Lines only
        if args.format not in (None, JSONL):
            parser.error(f"--map adds the map to JSON Lines only; it cannot go with --format {args.format}")
        args.format = JSONL
    try:
        classifier = Classifier.load(args.model, threads=args.threads, threshold=args.threshold)
    except (ModelNotFound, ValueError, KeyError) as exc:
        print(f"error: cannot load the model: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.map:
        try:
            classifier.check_map()
        except MapUnavailable as exc:
            print(f"error: --map: {exc}", file=sys.stderr)
            return EXIT_USAGE
    status = EXIT_OK
    report = Report(args.format, classifier.threshold, sys.stdout, sys.stderr)
    try:
        for source, outcome in classify_paths(classifier, report.expect(expand_paths(args.paths)), with_map=args.map):
            if isinstance(outcome, InvalidImage):
                status = EXIT_INPUT_ERROR
            report.write(source, outcome)
        report.finish()
    except BrokenPipeError:  # e.g. piped into `head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        report.close()
    return status
