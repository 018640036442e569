"""The SQLite cache, analysis_cache.db: open it, add failures, read them as a DataFrame.

WAL mode lets a notebook read while a batch writes; every write is a short
transaction, so a reader never sees half a row and a killed kernel loses only the
row in flight. All SQL takes parameters; no user value is formatted into a query.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from rca.errors import InputError
from rca.migrations import apply_migrations
from rca.results import expand_analysis

DEFAULT_DB = "analysis_cache.db"
BUSY_TIMEOUT_MS = 30_000


@dataclass(frozen=True, slots=True)
class FailureRow:
    """One failed attempt as ingest writes it to `failures`."""

    run_id: str
    timestamp: str | None
    benchmark_name: str
    suite: str | None
    generator: str | None
    attempt_number: int | None
    error_type: str
    raw_error: str | None
    explanation: str | None
    trace_log_path: str
    trace_offset: int
    trace_length: int
    trace_line: int
    attempt_index: int
    trace_file_size: int
    trace_file_mtime: float
    event_kind: str
    case_id: str | None
    result: str | None
    format: str  # the rca.formats adapter that read it
    trace_ref: str  # the adapter's own reference to the failure's trace


_FAILURE_COLUMNS = tuple(FailureRow.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class CaseRow:
    """One case of a run, passed or failed: what failure rates are counted from."""

    run_id: str
    case_key: str  # the case id, else its name: one case of one run for one generator
    generator: str  # '' when the source names none
    benchmark_name: str | None
    suite: str | None
    result: str | None
    passed: bool
    attempts: int | None
    format: str


def upsert_cases(conn: sqlite3.Connection, cases: Iterable[CaseRow]) -> None:
    """Record cases; a case read again (a run resumed, a file re-read) keeps its latest result."""
    conn.executemany(
        "INSERT INTO cases (run_id, case_key, generator, benchmark_name, suite, result, passed, attempts, format) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, case_key, generator) DO UPDATE SET "
        "benchmark_name = excluded.benchmark_name, suite = excluded.suite, result = excluded.result, "
        "passed = excluded.passed, attempts = excluded.attempts, format = excluded.format",
        [(c.run_id, c.case_key, c.generator, c.benchmark_name, c.suite, c.result, int(c.passed), c.attempts, c.format)
         for c in cases])


def load_cases(db: str | Path, *, run_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Every recorded case (passed or failed), optionally of some runs only."""
    where: list[str] = []
    params: list[object] = []
    _in_clause("run_id", run_ids, where, params)
    conn = connect(db)
    try:
        frame = pd.read_sql_query("SELECT * FROM cases" + (" WHERE " + " AND ".join(where) if where else "")
                                  + " ORDER BY run_id, generator, case_key", conn, params=params)
    finally:
        conn.close()
    frame["passed"] = frame["passed"].astype(bool)
    return frame
# Where a failure's trace is, as opposed to what the failure is: the columns a row written by
# the harness itself lacks, and rca fills in once it has found the trace.
LOCATOR_COLUMNS = ("trace_log_path", "trace_offset", "trace_length", "trace_line", "attempt_index",
                   "trace_file_size", "trace_file_mtime", "event_kind", "case_id", "result", "format", "trace_ref")


def connect(db: str | Path = DEFAULT_DB) -> sqlite3.Connection:
    """Open (or create) a cache and bring its schema up to date.

    Autocommit mode: callers wrap their writes in `transaction(conn)`. Every connection waits
    up to BUSY_TIMEOUT_MS for another writer, whatever the journal mode. WAL (a notebook reads
    while a batch writes) is switched on when it can be: a cache that another process is
    writing in rollback-journal mode, as the harness creates it, keeps that mode for now.
    """
    conn = sqlite3.connect(str(db), isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    try:
        apply_migrations(conn)
    except sqlite3.OperationalError as exc:
        if "readonly" in str(exc):
            raise InputError(f"cache {db} is read-only and its schema needs an upgrade: make it writable once "
                             "(the file and its folder), then it can be read-only again") from None
        raise
    try:
        conn.execute("PRAGMA journal_mode=WAL")  # needs an exclusive lock, and no busy handler waits for it
    except sqlite3.OperationalError as exc:
        if not _locked_or_readonly(exc):
            raise
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _locked_or_readonly(exc: sqlite3.OperationalError) -> bool:
    return is_locked(exc) or "readonly" in str(exc)


class _RolledBack(Exception):
    pass


def ensure_writable(conn: sqlite3.Connection, db: str | Path) -> None:
    """Raise InputError unless answers can be written: checked before any model call is paid for."""
    try:
        with transaction(conn):  # a row written and rolled back: only a real write meets read-only
            conn.execute("INSERT INTO _rca_migrations (name, applied_at) VALUES ('write check', '')")
            raise _RolledBack
    except _RolledBack:
        pass
    except sqlite3.OperationalError as exc:
        if "readonly" in str(exc):
            raise InputError(f"cache {db} is read-only: rca writes each answer to it as it arrives; make the file "
                             "and its folder writable, or analyze a copy") from None
        raise


class transaction:
    """`with transaction(conn):` — BEGIN IMMEDIATE, then COMMIT, or ROLLBACK on error."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:  # type: ignore[no-untyped-def]
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


def processed_runs(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT run_id FROM processed_runs")}


def insert_failures(conn: sqlite3.Connection, rows: Iterable[FailureRow]) -> int:
    """Insert rows not already present (same run, record and attempt); return how many were new.

    Only a duplicate is skipped: any other constraint (a user's NOT NULL column) raises
    IntegrityError, where `INSERT OR IGNORE` would drop the row without a word.
    """
    placeholders = ", ".join("?" for _ in _FAILURE_COLUMNS)
    sql = f"INSERT INTO failures ({', '.join(_FAILURE_COLUMNS)}) VALUES ({placeholders}) ON CONFLICT DO NOTHING"
    before = conn.total_changes
    conn.executemany(sql, (tuple(asdict(row).values()) for row in rows))
    return conn.total_changes - before


def record_locator(conn: sqlite3.Connection, failure_id: int, found: FailureRow) -> None:
    """Record where a row's trace was found; the row's own values (the harness's) stay as they are."""
    values = asdict(found)
    assignments = ", ".join(f"{c} = ?" for c in LOCATOR_COLUMNS)
    try:
        with transaction(conn):
            conn.execute(f"UPDATE failures SET {assignments} WHERE id = ?",
                         (*(values[c] for c in LOCATOR_COLUMNS), failure_id))
    except sqlite3.IntegrityError:
        pass  # another row already holds this locator (a duplicate row): found again next time
    except sqlite3.OperationalError as exc:
        if not is_locked(exc):
            raise  # locked: recorded by a later run, which finds the trace again


def mark_processed(conn: sqlite3.Connection, run_id: str) -> None:
    conn.execute("INSERT OR IGNORE INTO processed_runs (run_id) VALUES (?)", (run_id,))


def load_progress(conn: sqlite3.Connection, run_id: str, path: Path) -> dict[str, Any] | None:
    """Where the last ingest of this run's file stopped; None when the file was replaced since
    (another path, or shorter than where reading stopped) and must be read from the start."""
    row = conn.execute("SELECT path, byte_offset, line, state, finished FROM ingest_progress WHERE run_id = ?",
                       (run_id,)).fetchone()
    if row is None or row["path"] != str(path.resolve()) or path.stat().st_size < row["byte_offset"]:
        return None
    return {"offset": row["byte_offset"], "line": row["line"], "state": json.loads(row["state"] or "{}"),
            "finished": bool(row["finished"])}


def save_progress(conn: sqlite3.Connection, run_id: str, path: Path, *, offset: int, line: int,
                  state: dict[str, Any], finished: bool) -> None:
    conn.execute(
        "INSERT INTO ingest_progress (run_id, path, byte_offset, line, state, finished) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (run_id) DO UPDATE SET path = excluded.path, byte_offset = excluded.byte_offset, "
        "line = excluded.line, state = excluded.state, finished = excluded.finished",
        (run_id, str(path.resolve()), offset, line, json.dumps(state), int(finished)),
    )


@dataclass(frozen=True, slots=True)
class AnalysisRecord:
    """One analysis, as the `analyses` history table keeps it."""

    failure_id: int
    model: str
    taxonomy: str
    prompt_version: str
    trace_hash: str
    category: str | None
    analysis: str | None  # the answer's JSON
    confidence: float | None
    evidence_total: int
    evidence_verified: int
    input_tokens: int
    output_tokens: int
    thinking_tokens: int
    cached_tokens: int
    cost_usd: float
    latency_s: float
    error: str | None
    raw_response: str | None
    created_at: str
    root_cause_step: int | None = None
    root_cause_agent: str | None = None
    fix: str | None = None


def record_analysis(conn: sqlite3.Connection, record: AnalysisRecord) -> int:
    """Write one analysis the moment it arrives; a good one becomes the failure's latest.

    An error is kept in the history but does not replace an earlier good answer.
    """
    values = asdict(record)
    sql = f"INSERT INTO analyses ({', '.join(values)}) VALUES ({', '.join('?' for _ in values)})"
    with transaction(conn):
        analysis_id = int(conn.execute(sql, tuple(values.values())).lastrowid or 0)
        if record.error is None:
            conn.execute(
                "UPDATE failures SET llm_root_cause = ?, llm_analysis = ?, analysis_id = ? WHERE id = ?",
                (record.category, record.analysis, analysis_id, record.failure_id),
            )
    return analysis_id


def unsaved_path(db: str | Path) -> Path:
    """Where answers that could not be written to the cache are kept until the next run writes them."""
    return Path(f"{db}.unsaved.jsonl")


def keep_unsaved(db: str | Path, records: Iterable[AnalysisRecord]) -> Path:
    """Append answers the cache refused (another process held its write lock too long) to the side file."""
    path = unsaved_path(db)
    with path.open("a", encoding="utf-8") as f:
        f.writelines(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in records)
    return path


def import_unsaved(conn: sqlite3.Connection, db: str | Path) -> int:
    """Write the answers a previous run had to keep aside; the side file goes once all are in."""
    path = unsaved_path(db)
    if not path.is_file():
        return 0
    records = [AnalysisRecord(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line]
    for record in records:
        record_analysis(conn, record)
    path.unlink()
    return len(records)


def is_locked(exc: sqlite3.OperationalError) -> bool:
    """Another process held the write lock past the busy timeout: worth trying again later."""
    return "locked" in str(exc) or "busy" in str(exc)


def cached_analysis(
    conn: sqlite3.Connection, failure_id: int, *, model: str, taxonomy: str, prompt_version: str, trace_hash: str
) -> sqlite3.Row | None:
    """The latest good analysis made with exactly these inputs, if any."""
    return conn.execute(
        "SELECT * FROM analyses WHERE failure_id = ? AND model = ? AND taxonomy = ? AND prompt_version = ? "
        "AND trace_hash = ? AND error IS NULL ORDER BY id DESC LIMIT 1",
        (failure_id, model, taxonomy, prompt_version, trace_hash),
    ).fetchone()


def _in_clause(column: str, values: Sequence[object] | None, where: list[str], params: list[object]) -> None:
    if values is None:
        return
    values = [values] if isinstance(values, str) else list(values)
    if not values:
        return
    where.append(f"{column} IN ({', '.join('?' for _ in values)})")
    params.extend(values)


def load_failures(
    db: str | Path = DEFAULT_DB,
    *,
    run_ids: Sequence[str] | None = None,
    suites: Sequence[str] | None = None,
    generators: Sequence[str] | None = None,
    benchmarks: Sequence[str] | None = None,
    only_unanalyzed: bool = False,
    limit: int | None = None,
) -> pd.DataFrame:
    """The failures in a cache as a DataFrame, filtered; an empty filter means all.

    Each row carries its latest analysis (the answer's fields as columns, plus model,
    tokens and cost), so a notebook can chart root causes straight from this frame.
    `frame.attrs["rca_db"]` remembers the cache, so analyze_failures(frame) writes back
    to the same file.
    """
    path = Path(db)
    if not path.is_file():
        raise FileNotFoundError(f"no cache at {path}: run `rca ingest` (or rca.ingest_runs) first")
    where: list[str] = []
    params: list[object] = []
    _in_clause("f.run_id", run_ids, where, params)
    _in_clause("f.suite", suites, where, params)
    _in_clause("f.generator", generators, where, params)
    _in_clause("f.benchmark_name", benchmarks, where, params)
    if only_unanalyzed:
        where.append("f.llm_root_cause IS NULL")
    sql = (
        "SELECT f.*, a.model, a.taxonomy, a.confidence, a.evidence_total, a.evidence_verified, "
        "a.input_tokens, a.output_tokens, a.cost_usd, a.latency_s "
        "FROM failures f LEFT JOIN analyses a ON a.id = f.analysis_id"
    )
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY f.id"
    if limit is not None:
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        sql += " LIMIT ?"
        params.append(int(limit))
    conn = connect(path)
    try:
        frame = pd.read_sql_query(sql, conn, params=params)
    finally:
        conn.close()
    frame["error_type"] = frame["error_type"].map(_parse_tags)
    frame = _typed(expand_analysis(frame)).rename(columns={"explanation": "harness_explanation"})
    frame.attrs["rca_db"] = str(path)
    return frame


# Numeric columns as numbers even when every row lacks them (a frame before analysis), so
# sums, means and charts work on any frame; whole numbers stay whole (nullable Int64).
_INTEGERS = ("id", "attempt_number", "trace_offset", "trace_length", "trace_line", "attempt_index",
             "trace_file_size", "analysis_id", "root_cause_step", "evidence_total", "evidence_verified",
             "input_tokens", "output_tokens")
_FLOATS = ("trace_file_mtime", "confidence", "cost_usd", "latency_s")


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    for column in _INTEGERS:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
    for column in _FLOATS:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame


def unanswered_errors(db: str | Path) -> pd.Series:
    """The latest analysis error of each failure that has no answer, by failure id."""
    conn = connect(db)
    try:
        rows = conn.execute(
            "SELECT a.failure_id, a.error FROM analyses a JOIN failures f ON f.id = a.failure_id "
            "WHERE f.llm_root_cause IS NULL AND a.id = (SELECT max(id) FROM analyses WHERE failure_id = a.failure_id)"
        ).fetchall()
    finally:
        conn.close()
    return pd.Series({int(r[0]): r[1] for r in rows if r[1]}, dtype=object)


def _parse_tags(value: object) -> list[str]:
    """error_type as a list; tolerant of hand-made caches that hold plain text."""
    if not isinstance(value, str) or not value:
        return []
    try:
        tags = json.loads(value)
    except json.JSONDecodeError:
        return [value]
    return [str(tag) for tag in tags] if isinstance(tags, list) else [str(tags)]
