"""Run over run: pass rates, cases that changed, patterns that grew or shrank."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import rca
from rca.compare import compare_runs
from rca.errors import ParameterError
from rca.store import load_cases
from tests.conftest import attempt, event, result_event, write_run


def _run(runs: Path, run_id: str, results: dict[str, str]) -> None:
    events = [event("section_start", {"name": "Generator: g"})]
    for name, outcome in results.items():
        events.append(result_event(name, "pass" if outcome == "pass" else "fail_validation",
                                   case_id=name.split(":")[0], validation_error=None if outcome == "pass" else outcome,
                                   attempts=[attempt(1, "success" if outcome == "pass" else "failed", outcome)]))
    write_run(runs, run_id, [*events, event("section_end", {"name": "Generator: g"}), event("run_end", {"duration": 1})])


@pytest.fixture
def db(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    _run(runs, "r1", {"01: a": "pass", "02: b": "ImportError: x", "03: c": "ImportError: y", "04: d": "pass"})
    _run(runs, "r2", {"01: a": "AssertionError", "02: b": "pass", "03: c": "ImportError: y", "04: d": "pass"})
    path = tmp_path / "c.db"
    rca.ingest_runs(runs, path)
    return path


def test_pass_rates_and_cases_that_changed(db: Path) -> None:
    result = compare_runs(db, "r1", "r2")
    overall = result.pass_rates.set_index("scope").loc["all"]
    assert (overall["before"], overall["after"], overall["cases_before"]) == (0.5, 0.5, 4)
    assert result.newly_failing["case_key"].tolist() == ["01"]
    assert result.newly_passing["case_key"].tolist() == ["02"]
    assert result.failing_in_both["case_key"].tolist() == ["03"]
    assert "newly failing 1, newly passing 1, failing in both 1" in str(result)


def test_patterns_counted_in_failed_cases_per_run(db: Path) -> None:
    failures = rca.load_failures(db)
    ids = {name: failures.loc[failures["benchmark_name"] == name, "id"].tolist() for name in failures["benchmark_name"]}
    patterns = pd.DataFrame([
        {"name": "guesses imports", "failure_ids": ids["02: b"] + ids["03: c"]},
        {"name": "wrong logic", "failure_ids": ids["01: a"]},
    ])
    result = compare_runs(db, "r1", "r2", patterns=patterns)
    table = result.patterns.set_index("name")
    assert table.loc["guesses imports", ["before", "after", "status"]].tolist() == [2, 1, "shrank"]
    assert table.loc["wrong logic", ["before", "after", "status"]].tolist() == [0, 1, "appeared"]


def test_unknown_run_names_the_known_ones(db: Path) -> None:
    with pytest.raises(ParameterError, match="no cases recorded for run r9: known runs are r1, r2"):
        compare_runs(db, "r1", "r9")
    assert set(load_cases(db)["run_id"]) == {"r1", "r2"}


def test_rca_compare_prints_the_changes(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rca.cli import main

    assert main(["compare", "r1", "r2", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("r1 -> r2") and "pass rate 50% -> 50%" in out and "newly failing 1" in out
    rca.analyze_failures(rca.load_failures(db), db=db, backend="heuristic", progress=False)
    assert main(["compare", "r1", "r2", "--db", str(db), "--backend", "heuristic"]) == 0
    assert "patterns (failed cases):" in capsys.readouterr().out
    assert main(["compare", "r1", "nope", "--db", str(db)]) == 2
