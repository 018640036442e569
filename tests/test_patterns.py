"""Patterns offline: the grouping recovers the demo's scripted causes, counts failed cases, keeps
causes outside the agent apart, is stored and reused, and `rca patterns` prints it ranked."""

from __future__ import annotations

import shutil
import sqlite3
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

import rca
from bench.bench_patterns import insert_analyzed
from rca.cli import EXIT_OK, main
from rca.demo import demo_scenarios, make_demo
from rca.pattern_types import error_signature, summaries
from rca.patterns import find_patterns

KEY_VARS = ("GEMINI_API_KEYS", "GEMINI_API_KEYS_POOL", "GEMINI_API_KEY", "GOOGLE_API_KEY")


@pytest.fixture(autouse=True)
def _no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KEY_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The demo runs, ingested and analyzed offline once; tests copy the cache before writing to it."""
    work = tmp_path_factory.mktemp("patterns")
    make_demo(work / "runs")
    rca.ingest_runs(work / "runs", work / "cache.db")
    rca.analyze_failures(rca.load_failures(work / "cache.db"), backend="heuristic", progress=False)
    return work / "runs", work / "cache.db"


@pytest.fixture
def db(demo: tuple[Path, Path], tmp_path: Path) -> Path:
    shutil.copy(demo[1], tmp_path / "cache.db")
    return tmp_path / "cache.db"


def _labels(frame: pd.DataFrame) -> dict[int, str]:
    """A label per failure: its pattern, or (in "other") a label of its own, since other is no group."""
    labels = {}
    for n, row in enumerate(frame.itertuples()):
        labels.update({i: f"other {i}" if row.other else f"pattern {n}" for i in row.failure_ids})
    return labels


def test_the_demo_has_several_specific_causes_in_each_category(demo: tuple[Path, Path]) -> None:
    causes = defaultdict(set)
    for scenario in demo_scenarios(demo[0]).values():
        category, cause = scenario.split(": ", 1)
        causes[category].add(cause)
    assert len(causes) == 6 and all(len(c) >= 2 for c in causes.values()), causes
    assert sum(len(c) for c in causes.values()) >= 18


def test_offline_grouping_recovers_the_demo_scenarios(demo: tuple[Path, Path], db: Path) -> None:
    df = rca.load_failures(db)
    frame = find_patterns(df, backend="heuristic", progress=False)
    truth = demo_scenarios(demo[0])
    key = {int(r.id): (r.run_id, r.benchmark_name, None if pd.isna(r.attempt_number) else int(r.attempt_number))
           for r in df.itertuples()}
    labels = _labels(frame)
    assert sorted(labels) == sorted(key)  # every analyzed failure is placed once
    ids = sorted(labels)
    ari = adjusted_rand_score([truth[key[i]] for i in ids], [labels[i] for i in ids])
    assert ari >= 0.8, ari


def test_patterns_count_failed_cases_and_rank_agent_causes_first(tmp_path: Path) -> None:
    quota = {"root_cause_category": "Infrastructure", "explanation": "429 RESOURCE_EXHAUSTED: the quota ran out.",
             "fix": "Give the run more quota", "tools_called": [], "hallucinated_symbols": []}
    kwarg = {"root_cause_category": "Hallucination", "explanation": "The agent passed `model_name=` to LlmAgent, "
             "whose field is `model`.", "fix": "Tell the agent LlmAgent's field is `model`", "tools_called": ["read_file"],
             "hallucinated_symbols": ["model_name"]}

    def row(case: str, attempt: int, answer: dict, run: str = "r1") -> dict:
        return {"run_id": run, "benchmark_name": case, "suite": "fix_errors", "generator": "g", "attempt_number": attempt,
                "raw_error": "ValidationError: model_name\n  Extra inputs are not permitted", "answer": answer}

    rows = [row("a", n, kwarg) for n in (1, 2, 3)] + [row("b", 1, kwarg)]  # case a failed three attempts: one case
    rows += [row(c, 1, quota) for c in "cdefg"] + [row("a", 1, quota, run="r2")]
    insert_analyzed(tmp_path / "c.db", rows)
    frame = find_patterns(rca.load_failures(tmp_path / "c.db"), backend="heuristic", progress=False)
    assert frame["agent_caused"].tolist() == [True, False]  # the agent's cause first, though the quota has more cases
    assert frame[["failed_cases", "attempts"]].values.tolist() == [[2, 4], [6, 6]]
    assert frame["share"].tolist() == pytest.approx([2 / 8, 6 / 8])  # 8 failed cases in all: (r1, a) counted once
    assert "model_name" in frame["name"][0] and frame["category"].tolist() == ["Hallucination", "Infrastructure"]


def test_a_rerun_reads_the_stored_grouping_and_a_changed_answer_regroups(db: Path) -> None:
    df = rca.load_failures(db)
    first = find_patterns(df, backend="heuristic", progress=False)
    again = find_patterns(df, backend="heuristic", progress=False)
    assert (first.attrs["rca_patterns"]["source"], again.attrs["rca_patterns"]["source"]) == ("grouped", "cache")
    pd.testing.assert_frame_equal(first, again)
    suite = find_patterns(rca.load_failures(db, suites=["fix_errors"]), backend="heuristic", progress=False)
    assert suite.attrs["rca_patterns"]["source"] == "cache"  # a subset of the stored members: nothing to redo
    assert set().union(*suite["failure_ids"]) == set(df[df.suite == "fix_errors"]["id"])
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE failures SET llm_analysis = json_set(llm_analysis, '$.fix', 'something else') "
                     "WHERE id = (SELECT min(id) FROM failures)")
    changed = find_patterns(rca.load_failures(db), backend="heuristic", progress=False)
    assert changed.attrs["rca_patterns"]["source"] == "grouped"
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM pattern_sets").fetchone() == (1,)  # replaced, not piled up


def test_the_grouping_is_deterministic(demo: tuple[Path, Path], tmp_path: Path) -> None:
    frames = []
    for n in range(2):
        shutil.copy(demo[1], tmp_path / f"{n}.db")
        frames.append(find_patterns(rca.load_failures(tmp_path / f"{n}.db"), backend="heuristic", progress=False))
    pd.testing.assert_frame_equal(frames[0], frames[1])


def test_summaries_read_answers_not_traces(db: Path) -> None:
    items = summaries(rca.load_failures(db))
    assert items and all(s.explanation and s.category for s in items)
    misuse = [s for s in items if s.category == "Tool Misuse"]
    assert any(s.failing_tool == "read_file" for s in misuse)
    assert any("system_prompt" in s.symbols for s in items if s.category == "Hallucination")


def test_error_signature_keeps_the_telling_line_and_masks_its_values() -> None:
    log = ("--- Pytest stdout ---\nrootdir: /tmp/benchmark_0a1b2c3d4e\nE   ImportError: cannot import name 'RepeatAgent' "
           "from 'google.adk.agents' (/usr/lib/python3.12/site-packages/google/adk/agents/__init__.py)\nFAILED")
    assert error_signature(log) == "ImportError: cannot import name '…' from '…' (/…)"
    verdict = "--- Validation Failed for: Which parameter? ---\n  - Ground Truth 'tools' failed: Answer 'x' does not match."
    assert error_signature(verdict) == "Ground Truth '…' failed: Answer '…' does not match."
    assert error_signature("") is None


def test_cli_prints_agent_patterns_first_then_causes_outside_the_agent(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["patterns", "--db", str(db), "--backend", "heuristic"]) == EXIT_OK
    out = capsys.readouterr().out
    agent, outside = out.index("What to fix first"), out.index("Outside the agent")
    assert agent < outside and "Infrastructure" in out[outside:] and "Infrastructure" not in out[agent:outside]
    assert "fix: " in out and "failed cases" in out.splitlines()[0]
    assert main(["patterns", "--db", str(db), "--suite", "fix_errors", "--limit", "5"]) == EXIT_OK
    assert "(from the cache)" in capsys.readouterr().out


def test_cli_says_when_nothing_is_analyzed(tmp_path: Path, demo: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    rca.ingest_runs(demo[0], tmp_path / "fresh.db")
    assert main(["patterns", "--db", str(tmp_path / "fresh.db")]) == EXIT_OK
    assert "rca analyze" in capsys.readouterr().out
