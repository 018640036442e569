"""Caches made by others migrate in place without losing a row or an analysis.

Two real starting points: tests/data/cache_rca_0_1_0.db, written by the previous release
(the release before transcripts), and a cache exactly as the harness's regex pass creates
it (shared/docs/harness-format.md), with the two columns users added by hand.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from rca.demo import make_demo
from rca.ingest import ingest_runs
from rca.migrations import MIGRATIONS, apply_migrations
from rca.store import connect, load_failures
from rca.traces import TraceNotFound, load_transcript
from tests.test_store import HARNESS_SCHEMA  # the CREATE TABLE statements of shared/docs/harness-format.md

DATA = Path(__file__).resolve().parent / "data"
OLD_CACHE = DATA / "cache_rca_0_1_0.db"
REAL_RUN = "2025-12-24_14-43-50"
DEMO_RUN = "2026-01-16_23-39-35"  # the first run of make_demo(seed=7)
IDENTITY = ("run_id", "event_kind", "benchmark_name", "case_id", "generator", "attempt_index")


def _rows(db: Path, sql: str) -> list[dict[str, Any]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql)]
    finally:
        conn.close()


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


def _identity(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(None if row[k] != row[k] else row[k] for k in IDENTITY)  # NaN from pandas is missing


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """Copies of both runs the old cache was made from, in a folder of their own."""
    runs = tmp_path / "runs"
    make_demo(tmp_path / "demo", seed=7)
    shutil.copytree(tmp_path / "demo" / DEMO_RUN, runs / DEMO_RUN)
    shutil.copytree(DATA / "harness" / REAL_RUN, runs / REAL_RUN)
    return runs


# -- a cache made by the previous release ---------------------------------------------------


def test_previous_release_cache_keeps_every_row_and_analysis(tmp_path: Path, runs: Path) -> None:
    db = tmp_path / "analysis_cache.db"
    shutil.copy(OLD_CACHE, db)
    failures = _rows(db, "SELECT * FROM failures ORDER BY id")
    analyses = _rows(db, "SELECT * FROM analyses ORDER BY id")
    processed = _rows(db, "SELECT * FROM processed_runs ORDER BY run_id")
    applied = _rows(db, "SELECT * FROM _rca_migrations ORDER BY name")
    assert len(failures) == len(analyses) == 40 and all(r["trace_log_path"] for r in failures)
    # The runs regenerate the very files the old cache was made from.
    for run in (REAL_RUN, DEMO_RUN):
        sizes = {r["trace_file_size"] for r in failures if r["run_id"] == run}
        assert sizes == {(runs / run / "trace.jsonl").stat().st_size}

    conn = connect(db)
    try:
        assert set(_columns(conn, "failures")) >= set(failures[0]) | {"format", "trace_ref"}
        assert set(_columns(conn, "analyses")) >= set(analyses[0]) | {"root_cause_step", "root_cause_agent", "fix"}
        names = {r[0] for r in conn.execute("SELECT name FROM _rca_migrations")}
    finally:
        conn.close()
    assert names == {name for name, _ in MIGRATIONS}

    after = _rows(db, "SELECT * FROM failures ORDER BY id")
    assert [{k: r[k] for k in failures[0]} for r in after] == failures  # every row, every old value
    after_analyses = _rows(db, "SELECT * FROM analyses ORDER BY id")
    assert [{k: r[k] for k in analyses[0]} for r in after_analyses] == analyses
    assert _rows(db, "SELECT * FROM processed_runs ORDER BY run_id") == processed
    assert [r for r in _rows(db, "SELECT * FROM _rca_migrations ORDER BY name") if r["name"] in
            {a["name"] for a in applied}] == applied  # the old record of what ran is kept as it was

    for row, old in zip(after, failures):
        assert (row["llm_root_cause"], row["llm_analysis"]) == (old["llm_root_cause"], old["llm_analysis"])
        assert row["llm_root_cause"] is not None and row["format"] == "harness" and row["trace_ref"]
    for row in after_analyses:
        assert row["root_cause_step"] == json.loads(row["analysis"])["root_cause_step"]
        assert row["root_cause_agent"] is None and row["fix"] is None

    # The references are the ones ingest gives the same attempts today.
    fresh = tmp_path / "fresh.db"
    ingest_runs(runs, fresh)
    fresh_rows = {_identity(r): r for r in load_failures(fresh).to_dict("records")}
    assert len(fresh_rows) == 40
    migrated = load_failures(db).to_dict("records")
    assert len(migrated) == 40
    assert {_identity(r): r["trace_ref"] for r in migrated} == {k: r["trace_ref"] for k, r in fresh_rows.items()}

    # Every transcript reads from the runs' new place, the same as from a fresh ingest.
    for row in migrated:
        if not Path(row["trace_log_path"]).exists():
            with pytest.raises(TraceNotFound):
                load_transcript(row)
        transcript = load_transcript(row, runs_dir=runs)
        assert transcript == load_transcript(fresh_rows[_identity(row)])
        assert transcript.metadata["benchmark_name"] == row["benchmark_name"]
        assert transcript.steps or row["event_kind"] == "generation_failure"
    assert sum(len(load_transcript(r, runs_dir=runs).steps) for r in migrated) > 40

    # The analyses are still each row's latest, for notebooks and for load_failures.
    assert [r["category"] for r in migrated] == [r["llm_root_cause"] for r in failures]
    assert [r["model"] for r in migrated] == [a["model"] for a in analyses]

    # Ingesting the same runs again neither loses nor doubles a row.
    ingest_runs(runs, db)
    assert len(_rows(db, "SELECT id FROM failures")) == 40 and len(_rows(db, "SELECT id FROM analyses")) == 40


# -- a cache made by the harness's regex pass -----------------------------------------------

HARNESS_ROWS = [
    ("2025-12-01_10-00-00", "2025-12-01T10:03:11", "01: A minimal LlmAgent.", "fix_errors", "adk_workflow", 1,
     '["Import Error"]', "ModuleNotFoundError: No module named 'google.adk.agent'", "ModuleNotFoundError: No module",
     '{"root_cause_category": "Hallucination", "explanation": "It imported google.adk.agent."}', "Hallucination"),
    ("2025-12-01_10-00-00", "2025-12-01T10:04:02", "02: An LlmAgent with a tool.", "fix_errors", "adk_workflow", 2,
     '["Quota Limit"]', "429 RESOURCE_EXHAUSTED", "429 RESOURCE_EXHAUSTED", None, None),
    ("2025-12-01_10-00-00", None, "03: Output schema — ünïcode", None, None, None,
     "Unknown Logic Error", "x" * 50_000, "x" * 300, "not json at all", "Context Starvation"),
    ("2025-12-02_09-30-00", "2025-12-02T09:31:00", "04: A SequentialAgent.", "api_understanding", "gemini_cli", 1,
     '["Schema Violation", "Malformed JSON"]', "Field required [type=missing]", "Field required", None, None),
    (None, None, None, None, None, None, None, None, None, None, None),
]


def _harness_cache(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.executescript(HARNESS_SCHEMA)
        conn.execute("ALTER TABLE failures ADD COLUMN llm_analysis TEXT")  # added by hand
        conn.execute("ALTER TABLE failures ADD COLUMN llm_root_cause TEXT")
        conn.executemany(
            "INSERT INTO failures (run_id, timestamp, benchmark_name, suite, generator, attempt_number, error_type, "
            "raw_error, explanation, llm_analysis, llm_root_cause) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            HARNESS_ROWS)
        conn.executemany("INSERT INTO processed_runs VALUES (?)", [("2025-12-01_10-00-00",), ("2025-12-02_09-30-00",)])
    conn.close()


def test_harness_cache_migrates_without_losing_a_row_or_a_value(tmp_path: Path) -> None:
    db = tmp_path / "analysis_cache.db"
    _harness_cache(db)
    before = _rows(db, "SELECT * FROM failures ORDER BY id")
    processed = _rows(db, "SELECT * FROM processed_runs ORDER BY run_id")
    notebook_query = ("SELECT run_id, generator, suite, benchmark_name, attempt_number, llm_root_cause, llm_analysis "
                      "FROM failures WHERE llm_root_cause IS NOT NULL")
    query_before = _rows(db, notebook_query)
    assert len(before) == len(HARNESS_ROWS) and len(query_before) == 2

    conn = connect(db)
    try:
        columns = _columns(conn, "failures")
        assert columns[:12] == list(before[0])  # the harness's columns first, in their order
        assert {"format", "trace_ref", "trace_log_path", "analysis_id"} <= set(columns)
        assert "root_cause_step" in _columns(conn, "analyses")
        assert apply_migrations(conn) == []  # all recorded: nothing runs twice
    finally:
        conn.close()

    after = _rows(db, "SELECT * FROM failures ORDER BY id")
    assert [{k: r[k] for k in before[0]} for r in after] == before
    assert all(r["format"] is None and r["trace_ref"] is None for r in after)  # no locator: nothing to refer to
    assert _rows(db, "SELECT * FROM processed_runs ORDER BY run_id") == processed
    assert _rows(db, notebook_query) == query_before

    frame = load_failures(db)
    assert len(frame) == len(HARNESS_ROWS)
    assert frame["benchmark_name"].tolist()[:4] == [r[2] for r in HARNESS_ROWS[:4]]
    assert frame["raw_error"].tolist()[2] == "x" * 50_000
    assert frame["error_type"].tolist() == [["Import Error"], ["Quota Limit"], ["Unknown Logic Error"],
                                            ["Schema Violation", "Malformed JSON"], []]
    for column in ("llm_root_cause", "category"):  # a hand-made category stands even without parseable JSON
        assert [None if v != v else v for v in frame[column]] == [r[10] for r in HARNESS_ROWS]
    assert frame["root_cause_explanation"].tolist()[0] == "It imported google.adk.agent."
    assert frame.attrs["rca_db"] == str(db)


def test_harness_cache_takes_new_runs_beside_its_rows(tmp_path: Path) -> None:
    db = tmp_path / "analysis_cache.db"
    _harness_cache(db)
    before = _rows(db, "SELECT * FROM failures ORDER BY id")
    runs = tmp_path / "runs"
    shutil.copytree(DATA / "harness" / REAL_RUN, runs / REAL_RUN)
    summary = ingest_runs(runs, db)
    assert summary.rows_added == 8
    after = _rows(db, "SELECT * FROM failures ORDER BY id")
    assert [{k: r[k] for k in before[0]} for r in after[:len(before)]] == before
    frame = load_failures(db, run_ids=[REAL_RUN])
    assert len(frame) == 8 and set(frame["format"]) == {"harness"}
    for row in frame.to_dict("records"):
        assert load_transcript(row).metadata["benchmark_name"] == row["benchmark_name"]
