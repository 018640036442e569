"""Ingest: benchmark run folders -> one `failures` row per failed attempt.

Streams each run file record by record and writes rows in small batches, so memory
stays flat on multi-GB files and an interrupted ingest resumes without duplicates
(rows are unique on run, record offset and attempt). Bad input never stops the batch:
each problem becomes an IngestIssue naming the file and line.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from rca.baseline import regex_tags_json
from rca.runfiles import Record, RecordError, decode, find_trace_file, iter_records, parse_text
from rca.store import DEFAULT_DB, FailureRow, connect, insert_failures, mark_processed, processed_runs, transaction

GENERATOR_PREFIXES = ("Generator: ", "Agent: ")
EXPLANATION_CHARS = 300
_BATCH_ROWS = 200
_BATCH_BYTES = 8 * 1024 * 1024


class IngestIssue(BaseModel):
    path: str
    line: int | None = None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"


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

    for item in failures_in_file(path, run_id, size=stat.st_size, mtime=stat.st_mtime):
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


def failures_in_file(
    path: Path, run_id: str, *, size: int = 0, mtime: float = 0.0
) -> Iterator[FailureRow | IngestIssue]:
    """The failed attempts of one run file, in file order, with any issues met on the way."""
    sections: list[str] = []
    for record in iter_records(path):
        text, replaced = decode(record)
        try:
            event = parse_text(record, text)
        except RecordError as exc:
            yield IngestIssue(path=str(exc.path), line=exc.line, message=exc.reason)
            continue
        if replaced:
            yield IngestIssue(path=str(path), line=record.line, message="invalid UTF-8 bytes replaced with U+FFFD")
        kind = event.get("event_type")
        data = event.get("data") or {}
        if kind == "section_start":
            sections.append(str(data.get("name") or ""))
        elif kind == "section_end" and sections:
            sections.pop()
        elif kind in ("test_result", "generation_failure"):
            if not data.get("benchmark_name"):
                yield IngestIssue(path=str(path), line=record.line, message=f"{kind} without benchmark_name; skipped")
                continue
            context = _Context(run_id, record, event, _generator(sections), size, mtime)
            if kind == "generation_failure":
                yield context.row(data.get("error_message"), attempt_index=-1, attempt_number=None)
            elif str(data.get("result", "")).lower() != "pass":
                yield from _test_result_failures(context, data)


def _generator(sections: list[str]) -> str | None:
    for name in reversed(sections):
        for prefix in GENERATOR_PREFIXES:
            if name.startswith(prefix):
                return name[len(prefix):].strip() or None
    return None


def _test_result_failures(context: _Context, data: dict[str, Any]) -> Iterator[FailureRow | IngestIssue]:
    """Each failed attempt of a failed case; older files without attempts give one row."""
    validation_error = data.get("validation_error")
    attempts = data.get("generation_attempts")
    if not isinstance(attempts, list) or not attempts:
        yield context.row(validation_error or data.get("error_message"), attempt_index=-1, attempt_number=None)
        return
    last = len(attempts) - 1
    for index, attempt in enumerate(attempts):
        if not isinstance(attempt, dict):
            yield IngestIssue(
                path=str(context.record.path), line=context.record.line,
                message=f"generation_attempts[{index}] is not an object; skipped",
            )
            continue
        succeeded = str(attempt.get("status", "")).lower() == "success"
        if succeeded and index != last:
            continue
        # A final attempt that generated fine still failed the case: its answer did not validate.
        error = validation_error if succeeded else (attempt.get("error_message") or validation_error)
        number = attempt.get("attempt_number")
        yield context.row(error, attempt_index=index, attempt_number=number if isinstance(number, int) else index + 1)


class _Context:
    """What every row of one event shares."""

    def __init__(self, run_id: str, record: Record, event: dict[str, Any], generator: str | None, size: int, mtime: float) -> None:
        self.run_id, self.record, self.event, self.generator = run_id, record, event, generator
        self.size, self.mtime = size, mtime

    def row(self, error: object, *, attempt_index: int, attempt_number: int | None) -> FailureRow:
        data = self.event.get("data") or {}
        text = error if isinstance(error, str) or error is None else str(error)
        return FailureRow(
            run_id=self.run_id,
            timestamp=_iso(self.event.get("timestamp")),
            benchmark_name=str(data["benchmark_name"]),
            suite=_suite(data),
            generator=self.generator,
            attempt_number=attempt_number,
            error_type=regex_tags_json(text),
            raw_error=text,
            explanation=text[:EXPLANATION_CHARS] if text else text,
            trace_log_path=str(self.record.path.resolve()),
            trace_offset=self.record.offset,
            trace_length=self.record.length,
            trace_line=self.record.line,
            attempt_index=attempt_index,
            trace_file_size=self.size,
            trace_file_mtime=self.mtime,
            event_kind=str(self.event.get("event_type")),
            case_id=str(data["id"]) if data.get("id") is not None else None,
            result=data.get("result") if self.event.get("event_type") == "test_result" else None,
        )


def _suite(data: dict[str, Any]) -> str | None:
    """The suite; older files only name it as answer_data.benchmark_type."""
    if data.get("suite"):
        return str(data["suite"])
    answer = data.get("answer_data")
    if isinstance(answer, dict) and answer.get("benchmark_type"):
        return str(answer["benchmark_type"])
    return None


def _iso(timestamp: object) -> str | None:
    if isinstance(timestamp, (int, float)):
        return datetime.fromtimestamp(timestamp, tz=UTC).isoformat()
    return str(timestamp) if timestamp is not None else None
