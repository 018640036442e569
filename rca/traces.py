"""One attempt's trace events, read back from its run file through the cache's locator.

The fast path is one seek to the stored byte offset. When the file has changed
(size or mtime differ, or the record there is not the one expected) or moved, the
file is scanned again with ingest's own walk, and the attempt is found by what it is
(kind, case, generator, attempt) rather than where it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rca.ingest import failures_in_file
from rca.runfiles import RecordError, find_trace_file, parse_record, read_record_at
from rca.store import FailureRow


class TraceNotFound(LookupError):
    """The attempt's trace cannot be found on disk."""


def load_trace(row: Mapping[str, Any], *, runs_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """The trace events of exactly the attempt this failures row describes.

    `row` is a row of `load_failures(...)` (a Series or a dict). `runs_dir` is where to
    look for `<run_id>/trace.*` when the stored path no longer exists.
    """
    path = _locate(row, runs_dir)
    if _unchanged(path, row):
        event = _read_at(path, row)
        if event is not None:
            return _attempt_events(event, int(row["attempt_index"]))
    return _attempt_events(_rescan(path, row), int(row["attempt_index"]))


def _value(row: Mapping[str, Any], key: str) -> Any:
    value = row.get(key)
    return None if value is None or value != value else value  # NaN from pandas means missing


def _locate(row: Mapping[str, Any], runs_dir: str | Path | None) -> Path:
    stored = _value(row, "trace_log_path")
    if stored and Path(stored).is_file():
        return Path(stored)
    if runs_dir is not None:
        found = find_trace_file(Path(runs_dir) / str(row["run_id"]))
        if found is not None:
            return found
    where = f"{stored}" if stored else "no trace_log_path recorded"
    raise TraceNotFound(
        f"trace of failure {_value(row, 'id')} (run {row.get('run_id')}, {row.get('benchmark_name')!r}) "
        f"not found: {where}; pass runs_dir= to look in the run folders"
    )


def _unchanged(path: Path, row: Mapping[str, Any]) -> bool:
    if _value(row, "trace_offset") is None or str(path) != _value(row, "trace_log_path"):
        return False
    stat = path.stat()
    return stat.st_size == _value(row, "trace_file_size") and stat.st_mtime == _value(row, "trace_file_mtime")


def _read_at(path: Path, row: Mapping[str, Any]) -> dict[str, Any] | None:
    record = read_record_at(path, int(row["trace_offset"]), int(row["trace_length"]), int(row.get("trace_line") or 0))
    try:
        event = parse_record(record)
    except RecordError:
        return None
    same = (event.get("data") or {}).get("benchmark_name") == row.get("benchmark_name")
    return event if same and event.get("event_type") == row.get("event_kind") else None


def _identity(item: FailureRow | Mapping[str, Any]) -> tuple[Any, ...]:
    get = (lambda k: getattr(item, k)) if isinstance(item, FailureRow) else (lambda k: _value(item, k))
    return tuple(get(k) for k in ("event_kind", "benchmark_name", "case_id", "generator", "attempt_index"))


def _rescan(path: Path, row: Mapping[str, Any]) -> dict[str, Any]:
    wanted = _identity(row)
    for item in failures_in_file(path, str(row["run_id"])):
        if isinstance(item, FailureRow) and _identity(item) == wanted:
            return parse_record(read_record_at(path, item.trace_offset, item.trace_length, item.trace_line))
    raise TraceNotFound(f"{path}: no {row.get('event_kind')} for {row.get('benchmark_name')!r} matches failure {_value(row, 'id')}")


def _attempt_events(event: dict[str, Any], attempt_index: int) -> list[dict[str, Any]]:
    """The attempt's own trace_logs; the final attempt falls back to data.trace_logs."""
    data = event.get("data") or {}
    attempts = data.get("generation_attempts")
    logs: Any = None
    if attempt_index >= 0 and isinstance(attempts, list) and attempt_index < len(attempts):
        attempt = attempts[attempt_index]
        logs = attempt.get("trace_logs") if isinstance(attempt, dict) else None
        if logs is None and attempt_index == len(attempts) - 1:
            logs = data.get("trace_logs")
    elif attempt_index < 0:
        logs = data.get("trace_logs")
    if not isinstance(logs, list):
        return []
    return [e if isinstance(e, dict) else {"type": "unknown", "content": e} for e in logs]
