"""The user's own cache, as it really is: written by the harness in rollback-journal mode while
another process writes, missing columns, holding a table of the user's own, read-only."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import rca
from rca.errors import InputError
from rca.store import connect, ensure_writable

HARNESS_SCHEMA = """CREATE TABLE failures (
  id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, timestamp TEXT,
  benchmark_name TEXT, suite TEXT, generator TEXT, attempt_number INTEGER,
  error_type TEXT, raw_error TEXT, explanation TEXT);
CREATE TABLE processed_runs (run_id TEXT PRIMARY KEY);"""


def _harness_db(path: Path, schema: str = HARNESS_SCHEMA) -> Path:
    with sqlite3.connect(path) as conn:
        conn.executescript(schema)
        conn.execute("INSERT INTO failures (run_id, benchmark_name) VALUES ('r1', 'case')")
    return path


def test_a_writer_in_rollback_journal_mode_is_waited_for(tmp_path: Path) -> None:
    db = _harness_db(tmp_path / "c.db")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, time\nc = sqlite3.connect(r'%s', isolation_level=None)\n"
         "c.execute('BEGIN IMMEDIATE')\nc.execute(\"INSERT INTO processed_runs VALUES ('x')\")\n"
         "print('locked', flush=True)\ntime.sleep(2)\nc.execute('COMMIT')" % db],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        frame = rca.load_failures(db)
        assert len(frame) == 1 and time.monotonic() - started < 25
    finally:
        holder.wait(timeout=30)


def test_missing_harness_columns_are_added(tmp_path: Path) -> None:
    db = _harness_db(tmp_path / "c.db", """CREATE TABLE failures (id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT, benchmark_name TEXT, raw_error TEXT);
        CREATE TABLE processed_runs (run_id TEXT PRIMARY KEY);""")
    runs = tmp_path / "runs"
    shutil.copytree(Path(__file__).parent / "data" / "harness", runs)
    summary = rca.ingest_runs(runs, db)
    assert summary.rows_added == 8 and summary.issues == []
    assert len(rca.load_failures(db)) == 9


def test_a_users_own_analyses_table_stops_before_anything_is_written(tmp_path: Path) -> None:
    db = _harness_db(tmp_path / "c.db", HARNESS_SCHEMA + "CREATE TABLE analyses (note TEXT, score REAL);")
    before = db.read_bytes()
    with pytest.raises(InputError, match=r"table named 'analyses'.*failure_id.*rename yours"):
        connect(db)
    assert db.read_bytes() == before


def test_a_read_only_cache_is_refused_before_any_call(tmp_path: Path) -> None:
    """chattr +i makes the file read-only even for root (chmod does not)."""
    db = tmp_path / "c.db"
    connect(db).close()
    if subprocess.run(["chattr", "+i", str(db)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available on this filesystem")
    try:
        conn = connect(db)  # an up-to-date cache can still be read
        with pytest.raises(InputError, match="read-only"):
            ensure_writable(conn, db)
        conn.close()
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=True)


def test_analyze_refuses_a_read_only_cache_before_reading_any_trace(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    shutil.copytree(Path(__file__).parent / "data" / "harness", runs)
    db = tmp_path / "c.db"
    rca.ingest_runs(runs, db)
    frame = rca.load_failures(db)
    shutil.rmtree(runs)  # were any trace read, every row would fail on it instead
    if subprocess.run(["chattr", "+i", str(db)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available on this filesystem")
    try:
        with pytest.raises(InputError, match="read-only"):
            rca.analyze_failures(frame, db=db, backend="heuristic", progress=False)
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=True)
