from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from rca import connect, ingest_runs, load_failures
from rca import migrations
from tests.conftest import event, result_event, write_run

HARNESS_SCHEMA = """
CREATE TABLE failures (
  id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, timestamp TEXT,
  benchmark_name TEXT, suite TEXT, generator TEXT, attempt_number INTEGER,
  error_type TEXT, raw_error TEXT, explanation TEXT);
CREATE TABLE processed_runs (run_id TEXT PRIMARY KEY);
"""


def _harness_db(path: Path, hand_columns: bool) -> None:
    with sqlite3.connect(path) as conn:
        conn.executescript(HARNESS_SCHEMA)
        if hand_columns:
            conn.execute("ALTER TABLE failures ADD COLUMN llm_analysis TEXT")
            conn.execute("ALTER TABLE failures ADD COLUMN llm_root_cause TEXT")
            conn.execute("INSERT INTO failures (run_id, benchmark_name, error_type, llm_root_cause, llm_analysis) "
                         "VALUES ('old', 'x', '[\"Import Error\"]', 'Hallucination', '{\"a\": 1}')")
        else:
            conn.execute("INSERT INTO failures (run_id, benchmark_name, error_type) VALUES ('old', 'x', 'plain text')")
        conn.execute("INSERT INTO processed_runs VALUES ('old')")


@pytest.mark.parametrize("hand_columns", [True, False])
def test_existing_harness_cache_migrates_without_touching_rows(tmp_path: Path, hand_columns: bool) -> None:
    db = tmp_path / "analysis_cache.db"
    _harness_db(db, hand_columns)
    with sqlite3.connect(db) as conn:
        before = conn.execute("SELECT * FROM failures").fetchall()
    conn = connect(db)
    cols = [r[1] for r in conn.execute("PRAGMA table_info(failures)")]
    assert cols[:10] == ["id", "run_id", "timestamp", "benchmark_name", "suite", "generator",
                         "attempt_number", "error_type", "raw_error", "explanation"]
    assert {"llm_analysis", "llm_root_cause", "trace_log_path", "trace_offset", "attempt_index"} <= set(cols)
    after = conn.execute(f"SELECT {', '.join(cols[:len(before[0])])} FROM failures").fetchall()
    assert [tuple(r) for r in after] == before
    names = [r[0] for r in conn.execute("SELECT name FROM _rca_migrations ORDER BY name")]
    assert names == [name for name, _ in migrations.MIGRATIONS]
    conn.close()
    assert migrations.apply_migrations(sqlite3.connect(db)) == []  # recorded: nothing runs twice
    # The query existing notebooks run still works.
    rows = sqlite3.connect(db).execute(
        "SELECT run_id, generator, suite, benchmark_name, attempt_number, llm_root_cause, llm_analysis "
        "FROM failures WHERE llm_root_cause IS NOT NULL").fetchall()
    assert rows == ([("old", None, None, "x", None, "Hallucination", '{"a": 1}')] if hand_columns else [])
    assert load_failures(db).error_type.tolist() == [["Import Error"] if hand_columns else ["plain text"]]


def test_a_failing_migration_applies_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "c.db"
    connect(db).close()

    def m999_half_done(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE failures ADD COLUMN half TEXT")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, ("m999_half_done", m999_half_done)])
    with pytest.raises(RuntimeError, match="disk on fire"):
        connect(db)
    conn = sqlite3.connect(db)
    assert "half" not in {r[1] for r in conn.execute("PRAGMA table_info(failures)")}
    assert conn.execute("SELECT 1 FROM _rca_migrations WHERE name = 'm999_half_done'").fetchone() is None


@pytest.fixture
def filled_db(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    for run in ("r1", "r2"):
        write_run(runs, run, [
            event("section_start", {"name": "Generator: a"}),
            result_event("01: x", suite="fix_errors"), result_event("02: y", suite="api_understanding"),
            event("section_end", {"name": "Generator: a"}),
            event("section_start", {"name": "Agent: b"}),
            result_event("01: x", suite="fix_errors"),
            event("section_end", {"name": "Agent: b"}),
        ])
    db = tmp_path / "c.db"
    ingest_runs(runs, db)
    return db


def test_load_failures_filters(filled_db: Path) -> None:
    assert len(load_failures(filled_db)) == 6
    assert set(load_failures(filled_db, run_ids=["r2"]).run_id) == {"r2"}
    assert len(load_failures(filled_db, suites=["fix_errors"], generators=["b"])) == 2
    assert len(load_failures(filled_db, benchmarks="02: y")) == 2  # a lone string is one value
    assert len(load_failures(filled_db, limit=3)) == 3
    assert len(load_failures(filled_db, run_ids=[])) == 6  # empty filter means all
    assert len(load_failures(filled_db, suites=["x') OR 1=1 --"])) == 0  # values are parameters
    with sqlite3.connect(filled_db) as conn:
        conn.execute("UPDATE failures SET llm_root_cause = 'Logic Error' WHERE id = 1")
    assert 1 not in set(load_failures(filled_db, only_unanalyzed=True).id)


def test_load_failures_on_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no cache at .*rca ingest"):
        load_failures(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()


def test_reader_is_not_blocked_by_a_writer_in_wal_mode(filled_db: Path) -> None:
    writer = connect(filled_db)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE failures SET llm_root_cause = 'half written'")
    seen: list[int] = []
    reader = threading.Thread(target=lambda: seen.append(int(load_failures(filled_db).llm_root_cause.notna().sum())))
    reader.start()
    reader.join(timeout=10)
    writer.execute("COMMIT")
    assert seen == [0]  # read went through during the write and saw none of it
    assert connect(filled_db).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_load_failures_types_its_columns_before_any_analysis(tmp_path: Path) -> None:
    from rca import ingest_runs
    from tests.conftest import result_event, write_run

    write_run(tmp_path / "runs", "r1", [result_event("01: a"), result_event("02: b")])
    ingest_runs(tmp_path / "runs", tmp_path / "c.db")
    frame = load_failures(tmp_path / "c.db")
    assert str(frame["confidence"].dtype) == "float64" and str(frame["root_cause_step"].dtype) == "Int64"
    assert str(frame["cost_usd"].dtype) == "float64" and frame["cost_usd"].sum() == 0
    # the harness's regex text is named as such, apart from the model's explanation
    assert "harness_explanation" in frame and "explanation" not in frame and "root_cause_explanation" in frame
