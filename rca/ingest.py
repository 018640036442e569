"""Ingest: benchmark run folders -> one `failures` row per failed attempt.

The format adapter (rca.formats) streams each run file record by record and writes rows in small batches, so memory
stays flat on multi-GB files and an interrupted ingest resumes without duplicates
(rows are unique on run, record offset and attempt). Bad input never stops the batch:
each problem becomes an IngestIssue naming the file and line.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from rca.formats import IngestIssue, Progress, get_format
from rca.formats.harness.records import find_trace_file
from rca.store import (DEFAULT_DB, FailureRow, connect, insert_failures, load_progress, mark_processed, processed_runs,
                       save_progress, transaction)

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

    A run is done once its run_end event has been read; until then each ingest reads on from
    where the last one stopped, so a run still being written loses nothing and counts nothing
    twice. A run already done is skipped. `since` keeps runs whose trace file changed at or
    after that time. Nothing in a file stops the others: every problem is an issue in the summary.
    """
    root = Path(runs_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"runs folder not found: {root}")
    started = time.perf_counter()
    summary = IngestSummary()
    conn = connect(db)
    seen: dict[Path, str] = {}
    try:
        done = processed_runs(conn)
        for run_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            summary.runs_found += 1
            real = run_dir.resolve()
            if real in seen:
                summary.issues.append(IngestIssue(path=str(run_dir), message=f"the same folder as run {seen[real]} "
                                                  f"({real}); not ingested twice"))
                continue
            seen[real] = run_dir.name
            if run_dir.name in done:
                summary.runs_skipped += 1
                continue
            trace = find_trace_file(run_dir)
            if trace is None:
                summary.issues.append(IngestIssue(path=str(run_dir), message="no trace.jsonl or trace.yaml in run folder"))
                continue
            try:
                if since is not None and _mtime(trace) < since:
                    continue
                _ingest_file(conn, run_dir.name, trace, summary)
            except OSError as exc:
                summary.issues.append(IngestIssue(path=str(trace), message=f"cannot read: {exc.strerror or exc}"))
    finally:
        conn.close()
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)


def _ingest_file(conn: sqlite3.Connection, run_id: str, path: Path, summary: IngestSummary) -> None:
    stored = load_progress(conn, run_id, path)
    resume = Progress(**stored) if stored else None
    batch: list[FailureRow] = []
    batch_bytes = 0
    refused = False

    def flush() -> None:
        nonlocal batch, batch_bytes, refused
        if batch:
            added, problems = _insert(conn, batch)
            summary.rows_added += added
            summary.issues.extend(problems)
            refused = refused or bool(problems)
            batch, batch_bytes = [], 0

    progress = resume or Progress()
    for item in get_format("harness").failures(path, run_id, resume):
        if isinstance(item, Progress):
            progress = item
        elif isinstance(item, IngestIssue):
            summary.issues.append(item)
        else:
            batch.append(item)
            batch_bytes += len(item.raw_error or "")
            if len(batch) >= _BATCH_ROWS or batch_bytes >= _BATCH_BYTES:
                flush()
    flush()
    if progress.offset == 0 and path.stat().st_size == 0:
        summary.issues.append(IngestIssue(path=str(path), message="empty trace file"))
        return
    summary.bytes_read += max(0, progress.offset - (resume.offset if resume else 0))
    summary.runs_ingested += 1
    if refused:  # read again next time, once the user's schema accepts the rows
        return
    with transaction(conn):
        save_progress(conn, run_id, path, **progress.model_dump())
        if progress.finished:
            mark_processed(conn, run_id)


def _insert(conn: sqlite3.Connection, rows: list[FailureRow]) -> tuple[int, list[IngestIssue]]:
    """Insert a batch; when the cache refuses it, row by row, so each refused row is an issue
    that names its record and the constraint (e.g. a NOT NULL column of the user's own)."""
    try:
        with transaction(conn):
            return insert_failures(conn, rows), []
    except sqlite3.IntegrityError:
        pass
    added, problems = 0, []
    for row in rows:
        try:
            with transaction(conn):
                added += insert_failures(conn, [row])
        except sqlite3.IntegrityError as exc:
            problems.append(IngestIssue(
                path=row.trace_log_path, line=row.trace_line,
                message=f"the cache refused this row: {exc}; give that column a DEFAULT or allow NULL, then ingest again"))
    return added, problems
