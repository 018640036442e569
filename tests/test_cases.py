"""Every case of a run is recorded, passed or failed, so failure rates exist."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import rca
from rca.store import load_cases
from tests.conftest import attempt, event, result_event, write_run

DATA = Path(__file__).parent / "data"


def test_the_real_run_records_its_passing_and_failing_cases(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    shutil.copytree(DATA / "harness", runs)
    summary = rca.ingest_runs(runs, tmp_path / "c.db")
    cases = load_cases(tmp_path / "c.db")
    raw = [json.loads(line)["data"] for line in (runs / "2025-12-24_14-43-50" / "trace.jsonl").read_text().splitlines()
           if json.loads(line)["event_type"] == "test_result"]
    assert summary.cases_seen == len(cases) == len(raw) == 9
    assert int(cases["passed"].sum()) == sum(d["result"] == "pass" for d in raw) == 1


def test_a_case_counts_once_whatever_its_attempts(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write_run(runs, "r1", [
        event("section_start", {"name": "Generator: g"}),
        result_event("01: three tries", attempts=[attempt(1, "failed", "boom"), attempt(2, "failed", "boom"),
                                                  attempt(3, "failed", "boom")]),
        result_event("02: passes after a retry", "pass", attempts=[attempt(1, "failed", "x"), attempt(2, "success")]),
        result_event("03: passes", "pass"),
        event("section_end", {"name": "Generator: g"}),
        event("generation_failure", {"benchmark_name": "04: nothing generated", "error_message": "429"}),
    ])
    db = tmp_path / "c.db"
    summary = rca.ingest_runs(runs, db)
    cases = load_cases(db).set_index("benchmark_name")
    assert summary.rows_added == 4  # three failed attempts and the generation failure
    assert len(cases) == 4 and cases["passed"].to_dict() == {
        "01: three tries": False, "02: passes after a retry": True, "03: passes": True, "04: nothing generated": False}
    assert cases.loc["01: three tries", "attempts"] == 3 and cases.loc["01: three tries", "generator"] == "g"
    assert cases.loc["04: nothing generated", "result"] == "generation_failure"
    rca.ingest_runs(runs, db)  # read again: still one row per case
    assert len(load_cases(db)) == 4


def test_demo_runs_have_failure_rates_per_suite_and_generator(tmp_path: Path) -> None:
    from rca.demo import make_demo

    make_demo(tmp_path / "runs")
    rca.ingest_runs(tmp_path / "runs", tmp_path / "c.db")
    cases = load_cases(tmp_path / "c.db")
    failed = rca.load_failures(tmp_path / "c.db")
    rates = 1 - cases.groupby(["run_id", "generator"])["passed"].mean()
    assert cases["passed"].any() and (~cases["passed"]).any() and ((rates > 0) & (rates < 1)).all()
    failed_cases = failed.groupby(["run_id", "benchmark_name", "generator"]).ngroups
    assert failed_cases == int((~cases["passed"]).sum())
