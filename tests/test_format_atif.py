"""ATIF trajectories: a file is a transcript; it is a failure only when it says so (a status,
result or reward) or when the user says every input failed."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

import rca
from rca.errors import TraceNotFound
from rca.formats import IngestIssue, detect_format, get_format
from rca.formats.atif import verdict
from rca.store import CaseRow, FailureRow, load_cases

DATA = Path(__file__).parent / "data" / "atif"
OPENHANDS = DATA / "openhands_hello-world.trajectory.json"  # ATIF-v1.5, tool calls with results
TERMINUS = DATA / "terminus_2_hello-world.trajectory.json"  # ATIF-v1.7, actions without tool calls, a hand-off


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _items(path: Path, **options: Any) -> list[Any]:
    return list(get_format("atif").failures(path, path.stem, **options))


def test_trajectories_are_detected_by_their_schema_version(tmp_path: Path) -> None:
    assert detect_format(OPENHANDS).name == detect_format(TERMINUS).name == "atif"
    atif = get_format("atif")
    other = tmp_path / "notes.json"
    other.write_text('{"steps": [], "schema_version": "2"}')
    assert not atif.detect(other) and not atif.detect(DATA)
    assert not atif.detect(Path(__file__).parent / "data" / "multiagent" / "hand-crafted-24.json")


@pytest.mark.parametrize("path", [OPENHANDS, TERMINUS])
def test_steps_agents_and_tool_calls_match_the_file(path: Path, tmp_path: Path) -> None:
    raw = _load(path)
    rows = [r for r in _items(path, all_failed=True) if isinstance(r, FailureRow)]
    assert len(rows) == 1 and rows[0].format == "atif" and rows[0].run_id == raw["session_id"]
    t = rca.load_transcript(asdict(rows[0]))
    expected = sum(bool(s.get("message")) + bool(s.get("reasoning_content")) + len(s.get("tool_calls") or [])
                   + len((s.get("observation") or {}).get("results") or []) for s in raw["steps"])
    assert len(t.steps) == expected + bool(raw.get("continued_trajectory_ref"))
    assert t.agents == [raw["agent"]["name"]]
    calls = [c for s in raw["steps"] for c in s.get("tool_calls") or []]
    assert [(s.tool_name, s.tool_args, s.call_id) for s in t.steps if s.kind == "tool_call"] == [
        (c["function_name"], c["arguments"], c["tool_call_id"]) for c in calls]
    assert t.task == next(s["message"] for s in raw["steps"] if s["source"] == "user")
    assert not any(s.is_error for s in t.steps)
    assert t.metadata["agent_version"] == raw["agent"]["version"] and t.metadata["schema_version"] == raw["schema_version"]
    assert rca.render_trace(t).text.startswith("[0] ")


def test_openhands_results_follow_their_calls_and_end_in_the_agents_answer() -> None:
    t = rca.load_transcript(asdict(next(r for r in _items(OPENHANDS, all_failed=True) if isinstance(r, FailureRow))))
    result = next(s for s in t.steps if s.kind == "tool_result")
    assert (result.tool_name, result.call_id, result.agent) == ("str_replace_editor", "call_fake_1", "openhands")
    assert result.text == "File created successfully at: /app/hello.txt"
    assert t.steps[-2].kind == "final_answer" and t.final_answer == "All done! What's next on the agenda?"
    assert t.steps[-1].tool_name == "finish" and t.metadata["generator"] == "openhands 1.1.0"


def test_terminus_observations_and_hand_off_are_kept() -> None:
    t = rca.load_transcript(asdict(next(r for r in _items(TERMINUS, all_failed=True) if isinstance(r, FailureRow))))
    observations = [s for s in t.steps if s.role == "observation"]
    assert len(observations) == 4 and observations[0].agent == "terminus-2" and "mkdir test_dir" in observations[0].text
    assert "trajectory.summarization-1-summary.json" in observations[-1].text
    assert t.steps[-1].text == "continued in trajectory.cont-1.json" and t.final_answer is None
    assert t.metadata["generator"] == "terminus-2 2.0.0 (openai/gpt-4o)"


def test_a_trajectory_that_says_nothing_is_no_failure_and_no_case(tmp_path: Path) -> None:
    for path in (OPENHANDS, TERMINUS):
        assert [type(i).__name__ for i in _items(path)] == ["Progress"]
    db = tmp_path / "c.db"
    summary = rca.ingest_runs(DATA, db)
    assert summary.rows_added == 0 and summary.issues == [] and load_cases(db).empty


@pytest.mark.parametrize(("fields", "failed"), [
    ({"extra": {"reward": 0.0}}, True), ({"extra": {"reward": 1}}, False),
    ({"final_metrics": {"extra": {"status": "failed"}}}, True), ({"result": "success"}, False),
    ({"status": False}, True), ({"extra": {"result": "error"}}, True),
])
def test_a_trajectory_that_says_it_failed_is_a_failure(tmp_path: Path, fields: dict, failed: bool) -> None:
    raw = _load(OPENHANDS)
    for key, value in fields.items():
        raw[key] = {**raw[key], **value} if isinstance(value, dict) and isinstance(raw.get(key), dict) else value
    path = tmp_path / "run.trajectory.json"
    path.write_text(json.dumps(raw))
    items = _items(path)
    assert [type(i).__name__ for i in items] == (["FailureRow"] if failed else []) + ["CaseRow", "Progress"]
    case = next(i for i in items if isinstance(i, CaseRow))
    assert case.passed is not failed and case.benchmark_name == "run"


def test_reward_threshold() -> None:
    assert verdict({"reward": 0.7}) == (True, "reward: 0.7")
    assert verdict({"reward": 0.7}, 0.5) == (False, "reward: 0.7")
    assert verdict({"steps": []}) is None


def test_ingest_with_all_failed_reads_back_analyzes_and_is_idempotent(tmp_path: Path) -> None:
    folder = tmp_path / "trajectories"
    shutil.copytree(DATA, folder)
    db = tmp_path / "c.db"
    summary = rca.ingest_runs(folder, db, all_failed=True)
    assert summary.rows_added == 2 and summary.issues == []
    frame = rca.load_failures(db)
    assert sorted(frame["benchmark_name"]) == ["openhands_hello-world", "terminus_2_hello-world"]
    assert all(rca.load_transcript(row).steps for _, row in frame.iterrows())
    out = rca.analyze_failures(frame, db=db, backend="heuristic", progress=False)
    assert out["category"].notna().all()
    again = rca.ingest_runs(folder, db, all_failed=True)
    assert again.rows_added == 0 and again.runs_skipped == 2


def test_a_harbor_trial_is_named_after_its_folder(tmp_path: Path) -> None:
    trial = tmp_path / "job" / "hello-world__x7Yz" / "agent"
    trial.mkdir(parents=True)
    shutil.copy(OPENHANDS, trial / "trajectory.json")
    row = next(r for r in _items(trial / "trajectory.json", all_failed=True) if isinstance(r, FailureRow))
    assert row.benchmark_name == "hello-world__x7Yz"


def test_broken_input_is_an_issue_naming_the_file_or_step(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema_version": "ATIF-v1.5", "steps": [')
    raw = _load(OPENHANDS)
    raw["steps"][2] = ["not", "a", "step"]
    bad_step = tmp_path / "bad_step.json"
    bad_step.write_text(json.dumps(raw))
    issues = [i for p in (broken, bad_step) for i in _items(p, all_failed=True) if isinstance(i, IngestIssue)]
    assert [i.path for i in issues] == [str(broken), str(bad_step)]
    assert "not readable as JSON" in issues[0].message and issues[1].message.startswith("step 3: is a list")
    odd = {"schema_version": "ATIF-v1.5", "session_id": "s", "agent": "openhands", "steps": [
        {"step_id": 1, "source": "user", "message": {"text": "do it"}, "timestamp": ["no"]},
        {"step_id": 2, "source": "agent", "message": "ok", "tool_calls": "none", "observation": {"results": [7]}}]}
    (tmp_path / "odd.json").write_text(json.dumps(odd))
    t = rca.load_transcript(asdict(next(r for r in _items(tmp_path / "odd.json", all_failed=True)
                                        if isinstance(r, FailureRow))))
    assert [(s.kind, s.text) for s in t.steps] == [("message", "do it"), ("final_answer", "ok"), ("system", "7")]


def test_a_moved_trajectory_is_found_through_runs_dir_else_not_found(tmp_path: Path) -> None:
    path = tmp_path / "a" / OPENHANDS.name
    path.parent.mkdir()
    shutil.copy(OPENHANDS, path)
    row = asdict(next(r for r in _items(path, all_failed=True) if isinstance(r, FailureRow)))
    moved = tmp_path / "b"
    moved.mkdir()
    path.rename(moved / OPENHANDS.name)
    with pytest.raises(TraceNotFound, match="openhands_hello-world"):
        rca.load_transcript(row)
    assert rca.load_transcript(row, runs_dir=moved).agents == ["openhands"]
