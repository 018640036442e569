"""Input formats: one adapter per format, each the only place that knows its raw records.

An adapter can tell whether it reads a run folder or file (`detect`), list the failed
attempts in it as cache rows (`failures`), and read one failure back as a Transcript
(`read`). Adding a format is one module here and one line in FORMATS.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from rca.errors import ParameterError
from rca.store import CaseRow, FailureRow
from rca.transcript import Transcript

# name -> module; modules load on first use, so a heavy reader costs nothing until needed.
FORMATS: dict[str, str] = {
    "harness": "rca.formats.harness",
    "inspect": "rca.formats.inspect_log",  # before multiagent: its JSON logs have `"history": [` too
    "atif": "rca.formats.atif",
    "otel": "rca.formats.otel",
    "multiagent": "rca.formats.multiagent",
    "chat": "rca.formats.chat",
}
DEFAULT_FORMAT = "harness"  # rows written before formats existed came from the harness


class IngestIssue(BaseModel):
    """One problem met while reading input: where it is and what is wrong. Ingest goes on."""

    path: str
    line: int | None = None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"


class Progress(BaseModel):
    """Where reading a source stopped. Until `finished`, the next ingest resumes from here."""

    offset: int = 0
    line: int = 1
    state: dict[str, Any] = {}  # what the adapter needs to read on (the harness: its open sections)
    finished: bool = False


class Format(Protocol):
    name: str

    def detect(self, path: Path) -> bool:
        """Whether this adapter reads `path` (a run folder or a file), judged from at most its
        first 64 KiB: auto-detection asks every adapter about every file."""

    def failures(self, path: Path, run_id: str, resume: Progress | None = None
                 ) -> Iterator[FailureRow | CaseRow | IngestIssue | Progress]:
        """The failed attempts in `path` (from `resume` on), in order, with any issue met on the
        way; the last item is the Progress to resume from. An adapter that knows every case,
        passed or failed, also yields a CaseRow per case, so failure rates exist."""

    def read(self, row: Mapping[str, Any], *, runs_dir: str | Path | None = None) -> Transcript:
        """The transcript of one failure row; TraceNotFound when its source is gone."""

    def locate(self, row: Mapping[str, Any], *, runs_dir: str | Path | None = None) -> FailureRow:
        """A row written without a trace reference, found in its source; TraceNotFound if not."""


def missing(value: Any) -> bool:
    """None, NaN, pandas' NA or NaT: a row value that is not there (rows come as dicts or Series)."""
    if value is None:
        return True
    try:
        return bool(value != value)
    except TypeError:  # pandas.NA: its comparisons are NA, whose truth is undefined
        return True


def whole_file(row: Mapping[str, Any], runs_dir: str | Path | None, what: str, *, in_run_folder: bool = False) -> Path:
    """The file that holds a whole-file trace (a log or trajectory per file): where it was ingested
    (its trace_ref), else under `runs_dir` (in its run's folder when `in_run_folder`)."""
    from rca.errors import TraceNotFound

    recorded = Path(str(row.get("trace_ref") or row.get("trace_log_path") or ""))
    moved = Path(runs_dir) / str(row.get("run_id")) if in_run_folder and runs_dir else Path(runs_dir or ".")
    candidates = [recorded] + ([moved / recorded.name] if runs_dir else [])
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise TraceNotFound(f"{what} of {row.get('benchmark_name')!r} not found: looked at "
                            f"{', '.join(map(str, candidates))}")
    return found


def get_format(name: str) -> Format:
    """The adapter registered under `name`."""
    if name not in FORMATS:
        raise ParameterError(f"unknown format {name!r}: use one of {sorted(FORMATS)}")
    return importlib.import_module(FORMATS[name]).ADAPTER  # type: ignore[no-any-return]


def detect_format(path: Path) -> Format | None:
    """The adapter that recognizes a file by its content (each sniffs at most its first bytes), if any."""
    for name in FORMATS:
        if name != "harness" and get_format(name).detect(path):
            return get_format(name)
    return None


def format_of(row: Mapping[str, Any]) -> Format:
    """The adapter that wrote a cache row (rows from before formats existed are the harness's)."""
    name = row.get("format")
    return get_format(name if isinstance(name, str) and name else DEFAULT_FORMAT)
