"""One failure's transcript, read back from its source by the format adapter that ingested it."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rca.errors import TraceNotFound
from rca.formats import format_of, missing
from rca.store import FailureRow
from rca.transcript import Transcript

__all__ = ["TraceNotFound", "load_trace", "load_transcript", "locate_untracked"]


def load_transcript(row: Mapping[str, Any], *, runs_dir: str | Path | None = None) -> Transcript:
    """The Transcript of exactly the failed attempt this failures row describes.

    `row` is a row of `load_failures(...)` (a Series or a dict). `runs_dir` is where to look
    for the run's files when the recorded path no longer exists. Raises TraceNotFound.
    """
    return format_of(row).read(row, runs_dir=runs_dir)


def locate_untracked(row: Mapping[str, Any], *, runs_dir: str | Path | None = None) -> FailureRow | None:
    """For a row that rca did not ingest (the harness's own cache has no trace reference): the row
    as rca would have ingested it, with its locator, so analysis can read and record it. None for
    a row that already has one; TraceNotFound (saying where it looked) when it cannot be found."""
    if _present(row.get("trace_ref")):
        return None
    return format_of(row).locate(row, runs_dir=runs_dir)


def _present(value: Any) -> bool:
    return not missing(value) and value != ""


def load_trace(row: Mapping[str, Any], *, runs_dir: str | Path | None = None) -> Transcript:
    """Deprecated alias of load_transcript, kept for one release."""
    warnings.warn("rca.load_trace is now rca.load_transcript and returns a Transcript", DeprecationWarning, stacklevel=2)
    return load_transcript(row, runs_dir=runs_dir)
