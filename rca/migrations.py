"""Named schema migrations for analysis_cache.db, each recorded once it has run.

As in simonw/llm: a migration is a function with a name; `_rca_migrations` records
which have run, so an existing cache (made by the harness, edited by hand, or by an
older rca) is brought up to date in place. A migration only adds: it never changes or
drops a row or column the user already has. Each runs in its own transaction with its
record, so it applies whole or not at all.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import PurePath

from rca.errors import InputError

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append((fn.__name__, fn))
    return fn


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def _add_columns(conn: sqlite3.Connection, table: str, columns: dict[str, str]) -> None:
    """Add the columns a table lacks; ones a user already added by hand are kept as they are."""
    existing = _columns(conn, table)
    for name, decl in columns.items():
        if name not in existing:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")


@migration
def m001_harness_tables(conn: sqlite3.Connection) -> None:
    """The tables exactly as the harness's regex pass creates them."""
    conn.execute(
        """CREATE TABLE IF NOT EXISTS failures (
          id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, timestamp TEXT,
          benchmark_name TEXT, suite TEXT, generator TEXT, attempt_number INTEGER,
          error_type TEXT, raw_error TEXT, explanation TEXT)"""
    )
    conn.execute("CREATE TABLE IF NOT EXISTS processed_runs (run_id TEXT PRIMARY KEY)")


HARNESS_COLUMNS = {"run_id": "TEXT", "timestamp": "TEXT", "benchmark_name": "TEXT", "suite": "TEXT",
                   "generator": "TEXT", "attempt_number": "INTEGER", "error_type": "TEXT", "raw_error": "TEXT",
                   "explanation": "TEXT"}


@migration
def m001b_harness_columns(conn: sqlite3.Connection) -> None:
    """Caches made by hand or by older harness versions may lack some of the harness's columns."""
    _add_columns(conn, "failures", HARNESS_COLUMNS)


@migration
def m002_llm_columns(conn: sqlite3.Connection) -> None:
    """The two columns users added by hand and existing notebooks read."""
    _add_columns(conn, "failures", {"llm_analysis": "TEXT", "llm_root_cause": "TEXT"})


@migration
def m003_trace_locator(conn: sqlite3.Connection) -> None:
    """Where an attempt's trace lives, so re-analysis reads it with one seek.

    attempt_index is the index into generation_attempts, or -1 when the row comes from
    the event itself (older files' data.trace_logs, generation_failure events).
    """
    _add_columns(
        conn,
        "failures",
        {
            "trace_log_path": "TEXT",
            "trace_offset": "INTEGER",
            "trace_length": "INTEGER",
            "trace_line": "INTEGER",
            "attempt_index": "INTEGER",
            "trace_file_size": "INTEGER",
            "trace_file_mtime": "REAL",
            "event_kind": "TEXT",
            "case_id": "TEXT",
            "result": "TEXT",
        },
    )
    conn.execute(
        "CREATE UNIQUE INDEX IF NOT EXISTS failures_locator "
        "ON failures (run_id, trace_offset, attempt_index)"
    )
    conn.execute("CREATE INDEX IF NOT EXISTS failures_run ON failures (run_id)")


@migration
def m004_analyses(conn: sqlite3.Connection) -> None:
    """Every analysis ever made, and a pointer from each failure to its latest one."""
    conn.execute(
        """CREATE TABLE IF NOT EXISTS analyses (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          failure_id INTEGER NOT NULL REFERENCES failures(id),
          model TEXT NOT NULL, taxonomy TEXT NOT NULL, prompt_version TEXT NOT NULL,
          trace_hash TEXT NOT NULL,
          category TEXT, analysis TEXT, confidence REAL,
          evidence_total INTEGER, evidence_verified INTEGER,
          input_tokens INTEGER, output_tokens INTEGER, thinking_tokens INTEGER,
          cached_tokens INTEGER, cost_usd REAL, latency_s REAL,
          error TEXT, raw_response TEXT, created_at TEXT NOT NULL)"""
    )
    conn.execute(
        "CREATE INDEX IF NOT EXISTS analyses_key "
        "ON analyses (failure_id, model, taxonomy, prompt_version, trace_hash)"
    )
    _add_columns(conn, "failures", {"analysis_id": "INTEGER"})


@migration
def m005_transcript_source(conn: sqlite3.Connection) -> None:
    """Which format adapter read a row, and its own reference to the trace.

    Rows that rca ingested before formats existed came from the harness: they get its name
    and a reference built from their locator. Rows the harness wrote itself have no locator
    and keep NULL until rca finds their trace.
    """
    _add_columns(conn, "failures", {"format": "TEXT", "trace_ref": "TEXT"})
    rows = conn.execute(
        "SELECT id, run_id, trace_log_path, trace_line, event_kind, attempt_index FROM failures "
        "WHERE trace_log_path IS NOT NULL AND trace_ref IS NULL"
    ).fetchall()
    conn.executemany(
        "UPDATE failures SET format = 'harness', trace_ref = ? WHERE id = ?",
        [(f"{run}/{PurePath(path).name}:{line}:{kind}:{index}", id_) for id_, run, path, line, kind, index in rows],
    )


@migration
def m006_answer_columns(conn: sqlite3.Connection) -> None:
    """The answer's step, agent and fix as columns of the analyses history, for queries and charts."""
    _add_columns(conn, "analyses", {"root_cause_step": "INTEGER", "root_cause_agent": "TEXT", "fix": "TEXT"})
    conn.execute(
        "UPDATE analyses SET root_cause_step = json_extract(analysis, '$.root_cause_step') "
        "WHERE analysis IS NOT NULL AND json_valid(analysis)"
    )


@migration
def m007_ingest_progress(conn: sqlite3.Connection) -> None:
    """Where each run's ingest stopped, so a run still being written is read on, not again."""
    conn.execute(
        """CREATE TABLE IF NOT EXISTS ingest_progress (
          run_id TEXT PRIMARY KEY, path TEXT NOT NULL, byte_offset INTEGER NOT NULL,
          line INTEGER NOT NULL, state TEXT, finished INTEGER NOT NULL DEFAULT 0)"""
    )


@migration
def m008_claims(conn: sqlite3.Connection) -> None:
    """Which process is analyzing which row, until when (rca.claims)."""
    conn.execute("CREATE TABLE IF NOT EXISTS claims (failure_id INTEGER PRIMARY KEY, owner TEXT NOT NULL, "
                 "expires_at REAL NOT NULL)")


@migration
def m009_cases(conn: sqlite3.Connection) -> None:
    """Every case of a run, passed or failed, so failure rates exist per suite, generator and run."""
    conn.execute(
        """CREATE TABLE IF NOT EXISTS cases (
          run_id TEXT NOT NULL, case_key TEXT NOT NULL, generator TEXT NOT NULL DEFAULT '',
          benchmark_name TEXT, suite TEXT, result TEXT, passed INTEGER NOT NULL, attempts INTEGER,
          format TEXT, PRIMARY KEY (run_id, case_key, generator))"""
    )


@migration
def m010_patterns(conn: sqlite3.Connection) -> None:
    """Recurring root causes (rca.patterns): one grouping per backend, model and prompt version, its
    patterns, and each member failure's pattern (NULL: other) with the digest of the answer it was placed by."""
    conn.execute(
        """CREATE TABLE IF NOT EXISTS pattern_sets (
          id INTEGER PRIMARY KEY AUTOINCREMENT, backend TEXT NOT NULL, model TEXT NOT NULL,
          prompt_version TEXT NOT NULL, inputs_hash TEXT NOT NULL, members INTEGER NOT NULL,
          calls INTEGER NOT NULL, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, cost_usd REAL,
          created_at TEXT NOT NULL, updated_at TEXT NOT NULL)"""
    )
    conn.execute(
        """CREATE TABLE IF NOT EXISTS patterns (
          id INTEGER PRIMARY KEY AUTOINCREMENT, set_id INTEGER NOT NULL REFERENCES pattern_sets(id),
          name TEXT NOT NULL, description TEXT NOT NULL, fix TEXT NOT NULL, category TEXT,
          agent_caused INTEGER NOT NULL)"""
    )
    conn.execute(
        """CREATE TABLE IF NOT EXISTS pattern_members (
          set_id INTEGER NOT NULL REFERENCES pattern_sets(id), failure_id INTEGER NOT NULL,
          pattern_id INTEGER REFERENCES patterns(id), answer_hash TEXT NOT NULL,
          PRIMARY KEY (set_id, failure_id))"""
    )


@migration
def m011_labels(conn: sqlite3.Connection) -> None:
    """Human (and data-set) labels of failures, one per failure and labeller, for grading the answers
    (rca.labels); and each `rca eval`'s settings and figures, so settings can be compared (rca.evaluate)."""
    conn.execute(
        """CREATE TABLE IF NOT EXISTS labels (
          id INTEGER PRIMARY KEY AUTOINCREMENT, failure_id INTEGER NOT NULL REFERENCES failures(id),
          labeller TEXT NOT NULL, category TEXT, step INTEGER, agent TEXT, note TEXT, created_at TEXT NOT NULL,
          UNIQUE (failure_id, labeller))"""
    )
    conn.execute(
        """CREATE TABLE IF NOT EXISTS evals (
          id INTEGER PRIMARY KEY AUTOINCREMENT, data TEXT NOT NULL, backend TEXT NOT NULL, model TEXT NOT NULL,
          taxonomy TEXT NOT NULL, prompt_version TEXT NOT NULL, budget_usd REAL, labeller TEXT NOT NULL,
          cases INTEGER NOT NULL, figures TEXT NOT NULL, created_at TEXT NOT NULL)"""
    )


# Tables rca creates, with the columns it needs: a user's own table of that name is not rca's.
OWN_TABLES = {
    "analyses": ("m004_analyses", {"failure_id", "model", "taxonomy", "prompt_version", "trace_hash", "created_at"}),
    "ingest_progress": ("m007_ingest_progress", {"run_id", "path", "byte_offset", "line"}),
    "claims": ("m008_claims", {"failure_id", "owner", "expires_at"}),
    "cases": ("m009_cases", {"run_id", "case_key", "generator", "passed"}),
    "pattern_sets": ("m010_patterns", {"backend", "model", "prompt_version", "inputs_hash"}),
    "patterns": ("m010_patterns", {"set_id", "name", "description", "fix", "category", "agent_caused"}),
    "pattern_members": ("m010_patterns", {"set_id", "failure_id", "pattern_id", "answer_hash"}),
    "labels": ("m011_labels", {"failure_id", "labeller", "category", "step", "agent"}),
    "evals": ("m011_labels", {"data", "backend", "model", "taxonomy", "figures"}),
}


def _check_own_tables(conn: sqlite3.Connection, done: set[str]) -> None:
    """Stop before writing anything when a user's own table has the name of one rca creates."""
    for table, (creator, needed) in OWN_TABLES.items():
        existing = _columns(conn, table)
        if existing and creator not in done and (missing := needed - existing):
            raise InputError(
                f"the cache already has a table named {table!r} that is not rca's (it lacks {sorted(missing)}); "
                f"rca needs that name: rename yours (ALTER TABLE {table} RENAME TO my_{table}) or use another cache "
                "file. Nothing was changed.")


def apply_migrations(conn: sqlite3.Connection) -> list[str]:
    """Run the migrations this database has not seen; return their names."""
    known = bool(_columns(conn, "_rca_migrations"))
    done = {row[0] for row in conn.execute("SELECT name FROM _rca_migrations")} if known else set()
    _check_own_tables(conn, done)
    if not known:
        conn.execute("CREATE TABLE IF NOT EXISTS _rca_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    applied = []
    for name, fn in MIGRATIONS:
        if name in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have applied it while we waited for the lock.
            if conn.execute("SELECT 1 FROM _rca_migrations WHERE name = ?", (name,)).fetchone():
                conn.execute("ROLLBACK")
                continue
            fn(conn)
            conn.execute(
                "INSERT INTO _rca_migrations (name, applied_at) VALUES (?, ?)",
                (name, datetime.now(UTC).isoformat(timespec="seconds")),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied
