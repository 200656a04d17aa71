"""How ``python -m inference`` prints its results: JSON Lines (the contract), CSV, or a table for people.

JSON Lines is the default whenever stdout is not a terminal: programs pipe stdout and parse it, so in that format
nothing but the contract's JSON objects goes there. On a terminal the default is a table and a summary line. A
progress bar goes to stderr, and only when stderr is a terminal and there are enough inputs to wait for.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass
from typing import IO, Iterable, TypeVar

from .classifier import BORDERLINE, Prediction, outcome_record
from .errors import InvalidImage

JSONL, CSV, TABLE = "jsonl", "csv", "table"
FORMATS = (JSONL, CSV, TABLE)
# Fewer inputs than this finish before a bar would be worth reading.
PROGRESS_MIN_INPUTS = 10
CSV_COLUMNS = ("source", "label", "fire_probability", "model_version", "threshold", "margin", "certainty",
               "error_code", "error_message")  # fmt: skip
_TABLE_ROW = "{result:<8} {percent:>6}  {certainty:<10}  {source}\n"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

Outcome = Prediction | InvalidImage
T = TypeVar("T")


def is_terminal(stream: IO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def choose_format(requested: str | None, stdout: IO) -> str:
    """``--format`` when given; otherwise a table on a terminal and JSON Lines everywhere else."""
    return requested or (TABLE if is_terminal(stdout) else JSONL)


def printable(text: str) -> str:
    """A file name or message as a terminal can show it on one line: undecodable bytes as ``\\xff``, control
    characters (a newline in a name) escaped."""
    text = os.fsencode(text).decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda match: repr(match.group())[1:-1], text)


@dataclass
class Tally:
    fire: int = 0
    nofire: int = 0
    errors: int = 0
    borderline: int = 0

    def count(self, outcome: Outcome) -> None:
        if isinstance(outcome, InvalidImage):
            self.errors += 1
            return
        if outcome.is_fire:
            self.fire += 1
        else:
            self.nofire += 1
        self.borderline += outcome.certainty == BORDERLINE

    def line(self, threshold: float) -> str:
        errors = f"{self.errors} error{'s' if self.errors != 1 else ''}"
        line = f"{self.fire} fire, {self.nofire} no fire, {errors}"
        if self.borderline:
            line += f" ({self.borderline} borderline, near the threshold {threshold:g})"
        return line + "\n"


class Report:
    """Writes each outcome in the chosen format as it comes, with a progress bar on stderr when that helps."""

    def __init__(self, requested_format: str | None, threshold: float, stdout: IO, stderr: IO) -> None:
        self.format = choose_format(requested_format, stdout)
        self.threshold = threshold
        self.stdout = stdout
        self.stderr = stderr
        self.tally = Tally()
        self._progress = None
        self._expected = 0  # inputs counted for the progress bar, which starts with the first result
        self._csv = None
        if self.format == CSV:
            # The exact bytes of an undecodable file name, so the CSV names the file that is on disk.
            _set_errors(stdout, "surrogateescape")
            self._csv = csv.writer(_Lines(self), lineterminator="\n")
            self._csv.writerow(CSV_COLUMNS)
        elif self.format == TABLE:
            self._emit(_TABLE_ROW.format(result="RESULT", percent="FIRE %", certainty="CERTAINTY", source="FILE"))

    def expect(self, items: Iterable[T]) -> Iterable[T]:
        """``items`` (the inputs) as given; when stderr is a terminal, counted first so a progress bar can show."""
        if not is_terminal(self.stderr):
            return items
        items = list(items)
        if len(items) >= PROGRESS_MIN_INPUTS:
            self._expected = len(items)
        return items

    def write(self, source: str, outcome: Outcome) -> None:
        if self._expected:  # drawn after the first model call, whose runtime may log a line to stderr
            self._progress, self._expected = _progress_bar(self._expected, self.stderr), 0
        self.tally.count(outcome)
        if self.format == JSONL:
            self._emit(json.dumps(outcome_record(source, outcome)) + "\n")
        elif self.format == CSV:
            self._csv.writerow(_csv_row(source, outcome))
        else:
            self._emit(_table_rows(source, outcome))
        if self._progress is not None:
            self._progress.update()

    def finish(self) -> None:
        """The summary line, under the table; JSON Lines and CSV hold nothing but their records."""
        self.close()
        if self.format == TABLE:
            self._emit(self.tally.line(self.threshold))

    def close(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None

    def _emit(self, text: str) -> None:
        if self._progress is not None and is_terminal(self.stdout):
            with self._progress.external_write_mode(file=self.stdout):  # clears the bar, then draws it again
                self.stdout.write(text)
        else:
            self.stdout.write(text)
        self.stdout.flush()


class _Lines:
    """What ``csv.writer`` writes to: the report's own output."""

    def __init__(self, report: Report) -> None:
        self.write = report._emit


def _csv_row(source: str, outcome: Outcome) -> list:
    if isinstance(outcome, InvalidImage):
        return [source, "", "", "", "", "", "", outcome.code, outcome.message]
    return [source, outcome.label, outcome.fire_probability, outcome.model_version, outcome.threshold, outcome.margin,
            outcome.certainty, "", ""]  # fmt: skip


def _table_rows(source: str, outcome: Outcome) -> str:
    if isinstance(outcome, InvalidImage):
        row = _TABLE_ROW.format(result="error", percent="-", certainty="-", source=printable(source))
        return row + f"{'':9}{outcome.code}: {printable(outcome.message)}\n"
    result = "fire" if outcome.is_fire else "no fire"
    percent = f"{outcome.fire_probability * 100:.1f}"
    return _TABLE_ROW.format(result=result, percent=percent, certainty=outcome.certainty, source=printable(source))


def _progress_bar(total: int, stream: IO):
    from tqdm import tqdm  # installed with ai-edge-litert; imported only for a terminal, off the piped path

    return tqdm(total=total, file=stream, unit="photo", leave=False, dynamic_ncols=True)


def _set_errors(stream: IO, errors: str) -> None:
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors=errors)
