"""Inspect AI eval logs: a sample per epoch is a transcript, read with inspect_ai's own reader;
failures follow Inspect's score conventions; without inspect_ai a log is an issue that says
how to install it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from dataclasses import asdict
from pathlib import Path

import pytest

import rca
from rca.cli import main
from rca.errors import TraceNotFound
from rca.formats import IngestIssue, detect_format, get_format
from rca.formats.inspect_log import sample_failed
from rca.store import FailureRow, load_cases

pytest.importorskip("inspect_ai")
from inspect_ai.log import read_eval_log, write_eval_log  # noqa: E402
from inspect_ai.scorer import Score  # noqa: E402

DATA = Path(__file__).parent / "data"
GUIDE = DATA / "inspect" / "security-guide.eval"  # 16 samples graded by model_graded_fact, some I
ADDITION = DATA / "inspect" / "websearch-addition-problem.eval"  # 1 sample, scored C


def _samples(log: Path) -> dict[int, dict]:
    """The log's samples as raw JSON, read straight from the zip (not through inspect_ai)."""
    with zipfile.ZipFile(log) as z:
        return {s["id"]: s for s in (json.loads(z.read(n)) for n in z.namelist() if n.startswith("samples/"))}


def _rewrite(log: Path, out: Path, changes: dict[str, bytes]) -> Path:
    """A copy of a .eval with some members replaced."""
    with zipfile.ZipFile(log) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info, changes.get(info.filename, src.read(info)))
    return out


def test_inspect_logs_are_detected_by_their_zip_members_or_json_header(tmp_path: Path) -> None:
    assert detect_format(GUIDE).name == detect_format(ADDITION).name == "inspect"
    inspect = get_format("inspect")
    assert not any(inspect.detect(p) for p in [*(DATA / "atif").iterdir(), *(DATA / "multiagent").iterdir()])
    other = tmp_path / "notes.eval"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("notes.txt", "not a log")
    assert not inspect.detect(other)
    as_json = tmp_path / "guide.json"
    write_eval_log(read_eval_log(str(ADDITION)), str(as_json))
    assert detect_format(as_json).name == "inspect"


def test_exactly_the_samples_scored_below_full_marks_fail_and_read_back(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    summary = rca.ingest_runs(GUIDE, db)
    raw = _samples(GUIDE)
    wrong = sorted(i for i, s in raw.items() if s["scores"]["model_graded_fact"]["value"] != "C")
    assert wrong and len(wrong) < len(raw) and summary.issues == []
    frame = rca.load_failures(db)
    assert sorted(frame["case_id"].astype(int)) == wrong and summary.rows_added == len(wrong)
    assert set(frame["format"]) == {"inspect"} and set(frame["result"]) == {"I"}
    assert set(frame["suite"]) == {"security_guide"} and set(frame["generator"]) == {"openai/gpt-4o-mini"}
    assert set(frame["run_id"]) == {"9zsQGSCUfJL6aZdSHP6PQc"} and set(frame["attempt_number"]) == {1}
    cases = load_cases(db)
    assert len(cases) == len(raw) and sorted(cases[~cases["passed"]]["case_key"]) == sorted(
        f"security_guide/{i}" for i in wrong)
    for _, row in frame.iterrows():
        sample = raw[int(row["case_id"])]
        t = rca.load_transcript(row)
        assert [s.role for s in t.steps] == [m["role"] for m in sample["messages"]] == ["system", "user", "assistant"]
        assert t.agents == ["generate"]  # the solver whose span made the model call
        assert t.task == sample["input"][0]["content"] and t.final_answer == sample["output"]["completion"]
        assert t.steps[-1].kind == "final_answer" and t.outcome.result == "I"
        assert sample["target"] in t.outcome.error and "GRADE: I" in t.outcome.error
        assert t.metadata["scores"]["model_graded_fact"]["value"] == "I" and t.metadata["attempt"] == 1
        assert "generate (final answer)" in rca.render_trace(t).text
    out = rca.analyze_failures(frame, db=db, backend="heuristic", progress=False)
    assert out["category"].notna().all()


def test_reingest_and_the_same_log_as_json_add_nothing(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    assert rca.ingest_runs(GUIDE, db).rows_added == 5
    again = rca.ingest_runs(GUIDE, db)
    assert again.rows_added == 0 and again.runs_skipped == 1
    as_json = tmp_path / "guide.json"
    write_eval_log(read_eval_log(str(GUIDE)), str(as_json))
    assert rca.ingest_runs(as_json, db).rows_added == 0  # rows are keyed on the eval and sample, not the file


def _agent_log(path: Path) -> Path:
    """The addition log with its sample replaced by an agent's run, written by inspect_ai itself: a
    researcher agent (a span inside the react solver) reasons and calls a tool that times out, the
    solver answers wrongly, a grader's model call scores it, and the message limit ends it."""
    from inspect_ai.event import ModelEvent, SpanBeginEvent, SpanEndEvent
    from inspect_ai.log import EvalSampleLimit
    from inspect_ai.model import (ChatCompletionChoice, ChatMessageAssistant, ChatMessageTool, ContentReasoning,
                                  ContentText, GenerateConfig, ModelOutput)
    from inspect_ai.tool import ToolCall, ToolCallError

    def model_call(message: ChatMessageAssistant, span: str) -> ModelEvent:
        return ModelEvent(model="anthropic/claude-sonnet-4-5", input=[], tools=[], tool_choice="auto",
                          config=GenerateConfig(), output=ModelOutput(choices=[ChatCompletionChoice(message=message)]),
                          span_id=span)

    search = ChatMessageAssistant(id="m1", content=[ContentReasoning(reasoning="Look it up first."),
                                                    ContentText(text="Searching.")],
                                  tool_calls=[ToolCall(id="c1", function="web_search", arguments={"query": "1 + 1"})])
    timeout = ChatMessageTool(id="m2", content="", tool_call_id="c1", function="web_search",
                              error=ToolCallError("timeout", "search timed out"))
    answer = ChatMessageAssistant(id="m3", content="It is 3.")
    log = read_eval_log(str(ADDITION))
    sample = log.samples[0]
    sample.messages = [sample.messages[0], search, timeout, answer]
    sample.events = [SpanBeginEvent(id="s", span_id="s", type="solver", name="react"),
                     SpanBeginEvent(id="a", span_id="a", parent_id="s", type="agent", name="researcher"),
                     model_call(search, "a"), SpanEndEvent(id="a", span_id="a"), model_call(answer, "s"),
                     SpanEndEvent(id="s", span_id="s"), SpanBeginEvent(id="g", span_id="g", type="scorers", name="scorers"),
                     model_call(ChatMessageAssistant(id="m4", content="GRADE: I"), "g"), SpanEndEvent(id="g", span_id="g")]
    sample.output = ModelOutput(choices=[ChatCompletionChoice(message=answer)], completion="It is 3.")
    sample.scores = {"match": Score(value="I", answer="3")}
    sample.limit = EvalSampleLimit(type="message", limit=4)
    write_eval_log(log, str(path))
    return path


def test_an_agents_reasoning_tool_calls_errors_and_limit_are_steps(tmp_path: Path) -> None:
    log = _agent_log(tmp_path / "agent.eval")
    db = tmp_path / "c.db"
    assert rca.ingest_runs(log, db).rows_added == 1
    t = rca.load_transcript(rca.load_failures(db).iloc[0])
    assert [(s.kind, s.agent) for s in t.steps] == [
        ("message", None), ("thought", "researcher"), ("message", "researcher"), ("tool_call", "researcher"),
        ("tool_result", "researcher"), ("final_answer", "react"), ("error", None)]
    call, result = t.steps[3], t.steps[4]
    assert (call.tool_name, call.tool_args, call.call_id) == ("web_search", {"query": "1 + 1"}, "c1")
    assert (result.call_id, result.text, result.is_error) == ("c1", "search timed out", True)
    assert t.agents == ["researcher", "react"] and t.final_answer == "It is 3."
    assert t.steps[-1].text == "message limit of 4 reached" and "message limit of 4 reached" in t.outcome.error
    text = rca.render_trace(t).text
    assert "researcher: call web_search" in text and "web_search -> (error) search timed out" in text


def test_a_passing_log_has_no_failure_unless_all_failed(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    assert rca.ingest_runs(ADDITION, db).rows_added == 0
    assert load_cases(db)["passed"].tolist() == [True]
    rows = [r for r in get_format("inspect").failures(ADDITION, "x", all_failed=True) if isinstance(r, FailureRow)]
    assert [(r.benchmark_name, r.result, r.attempt_index) for r in rows] == [("websearch_addition_problem/1", "C", 0)]
    t = rca.load_transcript(asdict(rows[0]))
    assert [(s.kind, s.role) for s in t.steps] == [("message", "user"), ("final_answer", "assistant")]
    assert t.agents == ["generate"] and t.final_answer.startswith("1 + 1 = 2")


def test_score_conventions_and_threshold() -> None:
    assert sample_failed({"a": Score(value="I")}, None) and sample_failed({"a": Score(value="N")}, None)
    assert not sample_failed({"a": Score(value="C")}, None) and not sample_failed({"a": Score(value=True)}, None)
    assert sample_failed({"a": Score(value="P")}, None) and not sample_failed({"a": Score(value="P")}, None, 0.5)
    assert sample_failed({"a": Score(value=0.9)}, None) and not sample_failed({"a": Score(value=0.9)}, None, 0.8)
    assert sample_failed({"a": Score(value={"x": "C", "y": 0.2})}, None)
    assert sample_failed({"a": Score(value="C"), "b": Score(value=False)}, None)
    assert sample_failed(None, "RuntimeError: boom") and not sample_failed(None, None)


def test_the_user_sets_the_threshold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "c.db"
    assert main(["ingest", str(GUIDE), "--db", str(db), "--score-threshold", "0"]) == 0
    assert "0 failed attempts added" in capsys.readouterr().out and len(load_cases(db)) == 16
    assert rca.ingest_runs(GUIDE, db).rows_added == 5  # another threshold reads the log again


def test_a_sample_that_ended_in_an_error_fails_with_its_traceback(tmp_path: Path) -> None:
    with zipfile.ZipFile(GUIDE) as z:
        sample, summaries = json.loads(z.read("samples/1_epoch_1.json")), json.loads(z.read("summaries.json"))
    error = {"message": "RuntimeError: sandbox died", "traceback": "Traceback ...\nRuntimeError: sandbox died",
             "traceback_ansi": ""}
    sample["error"] = error
    for s in summaries:
        if s["id"] == 1:
            s["error"] = error["message"]
    log = _rewrite(GUIDE, tmp_path / "guide.eval", {"samples/1_epoch_1.json": json.dumps(sample).encode(),
                                                   "summaries.json": json.dumps(summaries).encode()})
    rows = {r.case_id: r for r in get_format("inspect").failures(log, "x") if isinstance(r, FailureRow)}
    assert set(rows) == {"1", "7", "9", "13", "14", "15"} and rows["1"].result == "error"
    t = rca.load_transcript(asdict(rows["1"]))
    assert t.steps[-1].kind == "error" and "sandbox died" in t.steps[-1].text and "sandbox died" in t.outcome.error


def test_a_broken_sample_or_log_is_an_issue_naming_it(tmp_path: Path) -> None:
    log = _rewrite(GUIDE, tmp_path / "guide.eval", {"samples/9_epoch_1.json": b"{not json"})
    db = tmp_path / "c.db"
    summary = rca.ingest_runs(log, db)
    assert summary.rows_added == 4 and len(summary.issues) == 1
    assert summary.issues[0].path == str(log) and "sample 9 (epoch 1)" in summary.issues[0].message
    assert sorted(rca.load_failures(db)["case_id"].astype(int)) == [7, 13, 14, 15]
    truncated = tmp_path / "truncated.eval"
    truncated.write_bytes(GUIDE.read_bytes()[:20_000])
    issues = [i for i in get_format("inspect").failures(truncated, "x") if isinstance(i, IngestIssue)]
    assert [i.path for i in issues] == [str(truncated)] and "not readable as an Inspect AI log" in issues[0].message


def test_a_moved_log_is_found_through_runs_dir_else_not_found(tmp_path: Path) -> None:
    log = tmp_path / "logs" / GUIDE.name
    log.parent.mkdir()
    shutil.copy(GUIDE, log)
    row = asdict(next(r for r in get_format("inspect").failures(log, "x") if isinstance(r, FailureRow)))
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    log.rename(moved / GUIDE.name)
    with pytest.raises(TraceNotFound, match="security_guide/7"):
        rca.load_transcript(row)
    assert rca.load_transcript(row, runs_dir=moved).metadata["case_id"] == "7"


_WITHOUT_INSPECT = """
import sys
sys.modules["inspect_ai"] = None  # as if it were not installed
import rca
from rca.errors import InputError
summary = rca.ingest_runs(sys.argv[1], sys.argv[2])
print(summary.rows_added, [str(i) for i in summary.issues])
try:
    rca.load_transcript({"format": "inspect", "trace_ref": sys.argv[3]})
except InputError as exc:
    print("error:", exc)
"""


def test_without_inspect_ai_a_log_is_an_issue_saying_how_to_install_it(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    ref = json.dumps({"path": str(GUIDE), "id": 7, "epoch": 1})
    child = subprocess.run([sys.executable, "-c", _WITHOUT_INSPECT, str(GUIDE), str(db), ref],
                           capture_output=True, text=True, timeout=60)
    assert child.returncode == 0, child.stderr
    added, error = child.stdout.splitlines()
    assert added.startswith("0 ") and "pip install 'rca[inspect]'" in added and str(GUIDE) in added
    assert error == "error: reading Inspect AI logs needs the inspect_ai package: pip install 'rca[inspect]'"
    assert rca.ingest_runs(GUIDE, db).rows_added == 5  # not marked done: read once inspect_ai is there
    light = subprocess.run([sys.executable, "-c", "import sys, rca, rca.ingest; from pathlib import Path; "
                            f"from rca.formats import detect_format; detect_format(Path({str(GUIDE)!r})); "
                            "print('inspect_ai' in sys.modules)"], capture_output=True, text=True, timeout=60)
    assert light.stdout.strip() == "False", light.stderr
