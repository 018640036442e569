"""Ingest: benchmark run folders -> one `failures` row per failed attempt.

The format adapter (rca.formats) streams each run file record by record and writes rows in small batches, so memory
stays flat on multi-GB files and an interrupted ingest resumes without duplicates
(rows are unique on run, record offset and attempt). Bad input never stops the batch:
each problem becomes an IngestIssue naming the file and line.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from rca.formats import IngestIssue, get_format
from rca.formats.harness.records import find_trace_file
from rca.store import DEFAULT_DB, FailureRow, connect, insert_failures, mark_processed, processed_runs, transaction

__all__ = ["IngestIssue", "IngestSummary", "ingest_runs"]

_BATCH_ROWS = 200
_BATCH_BYTES = 8 * 1024 * 1024


class IngestSummary(BaseModel):
    runs_found: int = 0
    runs_ingested: int = 0
    runs_skipped: int = 0
    rows_added: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    issues: list[IngestIssue] = []

    def __str__(self) -> str:
        text = (
            f"ingest: {self.runs_found} runs found, {self.runs_ingested} ingested, "
            f"{self.runs_skipped} already done; {self.rows_added} failed attempts added; "
            f"{len(self.issues)} issues"
        )
        return "\n".join([text, *(f"  {issue}" for issue in self.issues)])


def ingest_runs(
    runs_dir: str | Path, db: str | Path = DEFAULT_DB, *, since: datetime | None = None
) -> IngestSummary:
    """Scan `<runs_dir>/<run_id>/trace.{jsonl,yaml}` into the cache.

    A run already in processed_runs is skipped. A run whose file ends in a truncated
    record (still being written) is ingested as far as it goes and left unmarked, so
    the next ingest picks up the rest. `since` keeps runs whose trace file changed at
    or after that time.
    """
    root = Path(runs_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"runs folder not found: {root}")
    started = time.perf_counter()
    summary = IngestSummary()
    conn = connect(db)
    try:
        done = processed_runs(conn)
        for run_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            summary.runs_found += 1
            if run_dir.name in done:
                summary.runs_skipped += 1
                continue
            trace = find_trace_file(run_dir)
            if trace is None:
                summary.issues.append(IngestIssue(path=str(run_dir), message="no trace.jsonl or trace.yaml in run folder"))
                continue
            if since is not None and _mtime(trace) < since:
                continue
            _ingest_file(conn, run_dir.name, trace, summary)
    finally:
        conn.close()
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)


def _ingest_file(conn: Any, run_id: str, path: Path, summary: IngestSummary) -> None:
    stat = path.stat()
    if stat.st_size == 0:
        summary.issues.append(IngestIssue(path=str(path), message="empty trace file"))
        return
    batch: list[FailureRow] = []
    batch_bytes = 0
    complete = True

    def flush() -> None:
        nonlocal batch, batch_bytes
        if batch:
            with transaction(conn):
                summary.rows_added += insert_failures(conn, batch)
            batch, batch_bytes = [], 0

    for item in get_format("harness").failures(path, run_id):
        if isinstance(item, IngestIssue):
            summary.issues.append(item)
            complete = complete and "truncated" not in item.message
            continue
        batch.append(item)
        batch_bytes += len(item.raw_error or "")
        if len(batch) >= _BATCH_ROWS or batch_bytes >= _BATCH_BYTES:
            flush()
    flush()
    summary.bytes_read += stat.st_size
    summary.runs_ingested += 1
    if complete:
        with transaction(conn):
            mark_processed(conn, run_id)
