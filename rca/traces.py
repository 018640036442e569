"""One failure's transcript, read back from its source by the format adapter that ingested it."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rca.errors import TraceNotFound
from rca.formats import format_of
from rca.transcript import Transcript

__all__ = ["TraceNotFound", "load_trace", "load_transcript"]


def load_transcript(row: Mapping[str, Any], *, runs_dir: str | Path | None = None) -> Transcript:
    """The Transcript of exactly the failed attempt this failures row describes.

    `row` is a row of `load_failures(...)` (a Series or a dict). `runs_dir` is where to look
    for the run's files when the recorded path no longer exists. Raises TraceNotFound.
    """
    return format_of(row).read(row, runs_dir=runs_dir)


def load_trace(row: Mapping[str, Any], *, runs_dir: str | Path | None = None) -> Transcript:
    """Deprecated alias of load_transcript, kept for one release."""
    warnings.warn("rca.load_trace is now rca.load_transcript and returns a Transcript", DeprecationWarning, stacklevel=2)
    return load_transcript(row, runs_dir=runs_dir)
