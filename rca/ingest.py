"""Ingest: benchmark runs and other agents' traces -> one `failures` row per failed attempt.

The format adapter (rca.formats) streams each file record by record and rows are written in
small batches, so memory stays flat on multi-GB files and an interrupted ingest resumes without duplicates
(rows are unique on run, record offset and attempt). Bad input never stops the batch:
each problem becomes an IngestIssue naming the file and line.
"""

from __future__ import annotations

import inspect
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, PrivateAttr

from rca.formats import FORMATS, Format, IngestIssue, Progress, detect_format, get_format
from rca.progress import Progress as Bar
from rca.formats.harness.records import find_trace_file
from rca.labels import import_dataset_labels
from rca.store import (DEFAULT_DB, CaseRow, FailureRow, connect, insert_failures, load_progress, mark_processed,
                       processed_runs, save_progress, transaction, upsert_cases)

__all__ = ["IngestIssue", "IngestSummary", "ingest_runs"]

_BATCH_ROWS = 200
_BATCH_BYTES = 8 * 1024 * 1024


class IngestSummary(BaseModel):
    runs_found: int = 0
    runs_ingested: int = 0
    runs_skipped: int = 0
    rows_added: int = 0
    cases_seen: int = 0  # cases read, passed or failed (rca.store.load_cases)
    bytes_read: int = 0
    seconds: float = 0.0
    issues: list[IngestIssue] = []
    _bar: Any = PrivateAttr(default=None)  # rca.progress.Progress while ingesting

    def __str__(self) -> str:
        text = (
            f"ingest: {self.runs_found} runs found, {self.runs_ingested} ingested, "
            f"{self.runs_skipped} already done; {self.rows_added} failed attempts added; "
            f"{len(self.issues)} issues"
        )
        return "\n".join([text, *(f"  {issue}" for issue in self.issues)])


def ingest_runs(
    path: str | Path, db: str | Path = DEFAULT_DB, *, format: str = "auto", since: datetime | None = None,
    all_failed: bool = False, score_threshold: float = 1.0, progress: bool = False,
) -> IngestSummary:
    """Read failed attempts from `path` (a file or a folder) into the cache.

    The harness's runs folder, `<path>/<run_id>/trace.{jsonl,yaml}`, is read run by run: a run is
    done once its run_end event has been read, and until then each ingest reads on from where the
    last one stopped. Any other input is read file by file, each by the format that recognizes
    it (`format="auto"`) or the one named; a file nothing recognizes is an issue that says which
    formats were tried. Nothing in a file stops the others: every problem is an issue in the
    summary. `since` keeps sources changed at or after that time. `all_failed` takes every trace of
    the files as a failure, for sources that hold failed runs only (the harness's runs ignore it).
    `score_threshold` is the score below which a scored case fails (Inspect logs, ATIF rewards); the
    default 1.0 fails anything below full marks. `progress` shows how far it is (rca.progress).
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"runs folder not found: {root}" if format in ("auto", "harness") else f"not found: {root}")
    if format != "auto":
        get_format(format)  # an unknown name fails before anything is read
    started = time.perf_counter()
    summary = IngestSummary()
    summary._bar = Bar(None, "rca ingest", "failed attempts", enabled=progress)
    conn = connect(db)
    try:
        if format == "harness" or (format == "auto" and _harness_runs(root)):
            _ingest_harness_runs(conn, root, since, summary)
        else:
            _ingest_files(conn, root, format, since, summary, all_failed, score_threshold)
    finally:
        conn.close()
        summary._bar.close()
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


def _harness_runs(root: Path) -> bool:
    """A folder of run folders, as the harness writes them (or an empty folder, to be filled by it)."""
    if not root.is_dir():
        return False
    folders = [p for p in root.iterdir() if p.is_dir()]
    return not any(p.is_file() for p in root.iterdir()) or any(find_trace_file(p) for p in folders)


def _ingest_harness_runs(conn: sqlite3.Connection, root: Path, since: datetime | None, summary: IngestSummary) -> None:
    done = processed_runs(conn)
    seen: dict[Path, str] = {}
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
            _ingest_source(conn, get_format("harness"), run_dir.name, run_dir.name, trace, summary)
        except OSError as exc:
            summary.issues.append(IngestIssue(path=str(trace), message=f"cannot read: {exc.strerror or exc}"))


def _ingest_files(conn: sqlite3.Connection, root: Path, format: str, since: datetime | None,
                  summary: IngestSummary, all_failed: bool = False, score_threshold: float = 1.0) -> None:
    files = [root] if root.is_file() else sorted(
        p for p in root.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts))
    seen: set[Path] = set()
    for file in files:
        real = file.resolve()
        if real in seen:
            continue  # a symlink to a file already read
        seen.add(real)
        summary.runs_found += 1
        try:
            if since is not None and _mtime(file) < since:
                continue
            adapter = get_format(format) if format != "auto" else detect_format(file)
            if adapter is None:
                tried = ", ".join(name for name in FORMATS if name != "harness")
                summary.issues.append(IngestIssue(path=str(file), message=f"no format recognizes this file (tried {tried})"))
                continue
            # a file's progress is kept under its format and path (and all_failed: it reads more rows)
            key = f"{adapter.name}:{real}" + (":all-failed" if all_failed else "") + (
                f":score-threshold={score_threshold!r}" if score_threshold != 1.0 else "")
            if (stored := load_progress(conn, key, file)) is not None and stored["finished"] \
                    and stored["offset"] == file.stat().st_size:
                summary.runs_skipped += 1
                continue
            _ingest_source(conn, adapter, key, file.stem, file, summary, all_failed, score_threshold)
        except OSError as exc:
            summary.issues.append(IngestIssue(path=str(file), message=f"cannot read: {exc.strerror or exc}"))


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)


def _ingest_source(conn: sqlite3.Connection, adapter: Format, key: str, run_id: str, path: Path,
                   summary: IngestSummary, all_failed: bool = False, score_threshold: float = 1.0) -> None:
    """One run file (or any source file) through its adapter: rows in batches, then its progress."""
    stored = load_progress(conn, key, path)
    resume = Progress(**stored) if stored and not stored["finished"] else None
    batch: list[FailureRow] = []
    cases: list[CaseRow] = []
    batch_bytes = 0
    refused = False

    def flush() -> None:
        nonlocal batch, cases, batch_bytes, refused
        if batch:
            added, problems = _insert(conn, batch)
            summary.rows_added += added
            summary._bar.update(added, sources=summary.runs_ingested + summary.runs_skipped, issues=len(summary.issues))
            summary.issues.extend(problems)
            refused = refused or bool(problems)
            batch, batch_bytes = [], 0
        if cases:
            with transaction(conn):
                upsert_cases(conn, cases)
            summary.cases_seen += len(cases)
            cases = []

    progress = resume or Progress()
    wanted = {"all_failed": True} if all_failed else {}
    if score_threshold != 1.0:
        wanted["score_threshold"] = score_threshold
    accepted = inspect.signature(adapter.failures).parameters
    options = {name: value for name, value in wanted.items() if name in accepted}
    for item in adapter.failures(path, run_id, resume, **options):
        if isinstance(item, Progress):
            progress = item
        elif isinstance(item, IngestIssue):
            summary.issues.append(item)
        elif isinstance(item, CaseRow):
            cases.append(item)
        else:
            batch.append(item)
            batch_bytes += len(item.raw_error or "")
            if len(batch) >= _BATCH_ROWS or batch_bytes >= _BATCH_BYTES:
                flush()
    flush()
    import_dataset_labels(conn, adapter.name, path)  # labels the data carries: labeller `dataset`
    size = path.stat().st_size
    if progress.offset == 0 and size == 0:
        summary.issues.append(IngestIssue(path=str(path), message="empty trace file"))
        return
    summary.bytes_read += max(0, (progress.offset or size) - (resume.offset if resume else 0))
    summary.runs_ingested += 1
    if refused:  # read again next time, once the user's schema accepts the rows
        return
    if progress.finished and not progress.offset:
        progress = progress.model_copy(update={"offset": size})  # read whole: unchanged while its size is
    with transaction(conn):
        save_progress(conn, key, path, **progress.model_dump())
        if progress.finished and adapter.name == "harness":
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
