"""Our first users start from the cache the harness wrote: its failures rows have no trace
locator and its processed_runs already lists the runs. rca finds each row's trace in the runs
folder the user gives, records where, and says plainly which rows it could not find."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

import rca
from rca.baseline import regex_tags_json
from rca.cli import main

DATA = Path(__file__).parent / "data"
RUN = "2025-12-24_14-43-50"


def _harness_cache(db: Path, runs: Path) -> int:
    """A cache as the harness's regex pass writes it: its schema, one row per failed case, the run
    listed as processed. Returns the number of rows."""
    with sqlite3.connect(db) as conn:
        conn.execute("""CREATE TABLE failures (
          id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, timestamp TEXT,
          benchmark_name TEXT, suite TEXT, generator TEXT, attempt_number INTEGER,
          error_type TEXT, raw_error TEXT, explanation TEXT)""")
        conn.execute("CREATE TABLE processed_runs (run_id TEXT PRIMARY KEY)")
        conn.execute("INSERT INTO processed_runs VALUES (?)", (RUN,))
        rows = 0
        for line in (runs / RUN / "trace.jsonl").read_text().splitlines():
            event = json.loads(line)
            data = event["data"]
            if event["event_type"] != "test_result" or data["result"] == "pass":
                continue
            error = data["validation_error"]
            conn.execute(
                "INSERT INTO failures (run_id, timestamp, benchmark_name, suite, generator, attempt_number, "
                "error_type, raw_error, explanation) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (RUN, str(event["timestamp"]), data["benchmark_name"], None, None, 1, regex_tags_json(error),
                 error, error[:300]))
            rows += 1
    return rows


@pytest.fixture
def harness_cache(tmp_path: Path) -> tuple[Path, Path, int]:
    runs = tmp_path / "benchmark_runs"
    shutil.copytree(DATA / "harness", runs)
    db = tmp_path / "analysis_cache.db"
    return db, runs, _harness_cache(db, runs)


def test_rows_the_harness_wrote_are_found_analyzed_and_located(harness_cache: tuple[Path, Path, int]) -> None:
    db, runs, n = harness_cache
    out = rca.analyze_failures(rca.load_failures(db), db=db, backend="heuristic", runs_dir=runs, progress=False)
    assert out["analysis_error"].isna().all(), out["analysis_error"].dropna().tolist()
    assert out["category"].notna().sum() == n == 8
    located = rca.load_failures(db)
    assert located["trace_ref"].notna().all() and (located["format"] == "harness").all()
    # the harness's own values are kept as they were
    assert located["attempt_number"].tolist() == [1] * n and located["suite"].isna().all()
    # once located, no runs folder is needed any more
    again = rca.analyze_failures(located, db=db, backend="heuristic", progress=False)
    assert again["from_cache"].all()


def test_a_row_that_cannot_be_found_says_where_rca_looked(harness_cache: tuple[Path, Path, int]) -> None:
    db, runs, _ = harness_cache
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO failures (run_id, benchmark_name, attempt_number, raw_error) "
                     "VALUES ('2030-01-01_00-00-00', 'gone', 1, 'x')")
        conn.execute("INSERT INTO failures (run_id, benchmark_name, attempt_number, raw_error) "
                     f"VALUES ('{RUN}', 'no such case', 1, 'x')")
    out = rca.analyze_failures(rca.load_failures(db), db=db, backend="heuristic", runs_dir=runs, progress=False)
    errors = out.set_index("benchmark_name")["analysis_error"]
    assert str(runs / "2030-01-01_00-00-00") in errors["gone"]
    assert "no failed attempt 1 of 'no such case'" in errors["no such case"]
    assert out["category"].notna().sum() == 8


def test_rca_analyze_with_runs_dir_on_the_harness_cache(harness_cache: tuple[Path, Path, int],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    db, runs, n = harness_cache
    assert main(["analyze", "--db", str(db), "--runs-dir", str(runs), "--backend", "heuristic"]) == 0
    assert f"{n} failed attempts: {n} with a root cause" in capsys.readouterr().out
