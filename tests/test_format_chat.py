"""The chat format: OpenAI-style `messages` cases as JSONL, a JSON list or one file per case, read
into Transcripts whose steps, agents, tool calls and errors are the ones written; bad lines are
issues and the other cases still count; re-ingest adds nothing."""

from __future__ import annotations

import json
import shutil
import tracemalloc
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

import rca
from rca.errors import TraceNotFound
from rca.formats import FORMATS, IngestIssue, Progress, detect_format, get_format
from rca.formats.chat import HEAD_BYTES, to_transcript
from rca.prompt import user_prompt
from rca.render import render_trace
from rca.store import CaseRow, FailureRow, load_cases
from rca.traces import load_transcript

DATA = Path(__file__).parent / "data"


def call(call_id: str, name: str, **args: Any) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}


def tool_case(case_id: str, **fields: Any) -> dict[str, Any]:
    """A failed case with two tool calls in one assistant message, their results and a final answer."""
    return {"id": case_id, "task": "Sum the sizes of a.txt and b.txt.",
            "error": "AssertionError: expected 30, got 25",
            "metadata": {"suite": "files", "model": "gpt-test", "run_id": "run-7"},
            "messages": [
                {"role": "system", "content": "You are a careful agent."},
                {"role": "user", "content": "Sum the sizes of a.txt and b.txt."},
                {"role": "assistant", "content": "I will read both files.",
                 "tool_calls": [call("c1", "size", path="a.txt"), call("c2", "size", path="b.txt")]},
                {"role": "tool", "tool_call_id": "c1", "content": "10"},
                {"role": "tool", "tool_call_id": "c2", "content": "Traceback (most recent call last):\nOSError: busy"},
                {"role": "assistant", "content": "The total is 25."}],
            **fields}


def plain_case(case_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": case_id, "messages": [{"role": "user", "content": f"question {case_id}"},
                                        {"role": "assistant", "content": f"answer {case_id}"}], **fields}


def write_jsonl(path: Path, lines: list[dict[str, Any] | str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines),
                    encoding="utf-8")
    return path


def items(path: Path, run_id: str = "run", **options: Any) -> list[Any]:
    return list(get_format("chat").failures(path, run_id, **options))


def rows(path: Path, run_id: str = "run", **options: Any) -> list[FailureRow]:
    return [item for item in items(path, run_id, **options) if isinstance(item, FailureRow)]


def test_tool_calls_results_agents_and_the_error_are_the_ones_written(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "cases.jsonl", [tool_case("t1")])
    [row] = rows(path)
    assert (row.run_id, row.case_id, row.suite, row.generator) == ("run-7", "t1", "files", "gpt-test")
    assert row.result == "error"
    assert row.raw_error == "AssertionError: expected 30, got 25" and row.format == "chat"
    t = load_transcript(asdict(row))
    assert [s.kind for s in t.steps] == ["system", "message", "message", "tool_call", "tool_call", "tool_result",
                                         "tool_result", "final_answer"]
    assert [(s.tool_name, s.tool_args, s.call_id) for s in t.steps if s.kind == "tool_call"] == [
        ("size", {"path": "a.txt"}, "c1"), ("size", {"path": "b.txt"}, "c2")]
    results = [s for s in t.steps if s.kind == "tool_result"]
    assert [(s.tool_name, s.call_id, s.agent, s.is_error) for s in results] == [
        ("size", "c1", "assistant", False), ("size", "c2", "assistant", True)]
    assert t.agents == ["assistant"] and not t.multi_agent  # the system and user give the task: not agents
    assert t.task == "Sum the sizes of a.txt and b.txt." and t.final_answer == "The total is 25."
    assert t.outcome.error == row.raw_error
    text = render_trace(t).text
    assert "[3] assistant: call size(path=\"a.txt\")" in text and "[5] size -> 10" in text
    assert "[6] size -> (error) Traceback" in text


def test_named_agents_parts_and_an_unmatched_tool_result(tmp_path: Path) -> None:
    case = {"id": "p1", "status": "FAILED: wrong total", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Look at this"}, {"type": "image_url", "image_url": {}}]},
        {"role": "assistant", "name": "planner", "content": [{"type": "text", "text": "Coder, check it."}]},
        {"role": "assistant", "name": "coder", "content": None, "tool_calls": [call("k", "run", cmd="ls")]},
        {"role": "tool", "tool_call_id": "elsewhere", "name": "grep", "content": "no match"},
        {"role": "assistant", "name": "coder", "content": "", "tool_calls": [call("k2", "run", cmd="pwd")]}]}
    [row] = rows(write_jsonl(tmp_path / "multi.jsonl", [case]))
    t = load_transcript(asdict(row))
    assert t.task == "Look at this\n<image_url>" and t.steps[0].agent is None and t.steps[0].role == "user"
    assert t.agents == ["planner", "coder"] and t.multi_agent
    assert [s.kind for s in t.steps] == ["message", "message", "tool_call", "tool_result", "tool_call"]
    assert (t.steps[3].tool_name, t.steps[3].agent) == ("grep", None)
    assert t.final_answer is None  # the last assistant message calls a tool: the agent never answered
    assert row.result == "FAILED: wrong total" and row.raw_error is None


def test_only_cases_the_data_fails_are_failures_unless_all_failed(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "mixed.jsonl", [
        plain_case("err", error={"type": "Timeout", "message": "took 600 s"}),
        plain_case("fail", result="fail"), plain_case("incorrect", metadata={"status": "incorrect"}),
        plain_case("not-passed", metadata={"passed": False}), plain_case("pass", result="pass"),
        plain_case("passed", metadata={"passed": True}), plain_case("silent"),
        plain_case("answer", result="The error was in line 3, fixed"),  # an answer, not a verdict
    ])
    found = items(path)
    assert [r.case_id for r in found if isinstance(r, FailureRow)] == ["err", "fail", "incorrect", "not-passed"]
    cases = {c.case_key: c.passed for c in found if isinstance(c, CaseRow)}
    assert cases == {"err": False, "fail": False, "incorrect": False, "not-passed": False, "pass": True, "passed": True}
    assert next(r for r in found if isinstance(r, FailureRow)).raw_error == '{"type":"Timeout","message":"took 600 s"}'
    everything = rows(path, all_failed=True)
    assert [r.case_id for r in everything] == ["err", "fail", "incorrect", "not-passed", "pass", "passed", "silent",
                                               "answer"]
    assert [r.case_id for r in everything if r.run_id == "run"] == [r.case_id for r in everything]  # no run in data
    assert found[-1] == Progress(finished=True)


def test_a_json_list_is_read_case_by_case_and_back_with_one_seek(tmp_path: Path) -> None:
    cases = [tool_case("a"), plain_case("b", result="error"), plain_case("c")]
    path = tmp_path / "list.json"
    path.write_text("\ufeff" + json.dumps(cases, indent=2, ensure_ascii=False), encoding="utf-8")
    assert detect_format(path) is get_format("chat")
    found = rows(path, "list")
    assert [(r.case_id, r.run_id) for r in found] == [("a", "run-7"), ("b", "list")]
    text = path.read_bytes()
    for row, case in zip(found, cases):
        _, _, where = row.trace_ref.rpartition("#")
        offset, length = map(int, where.split("+"))
        assert json.loads(text[offset:offset + length]) == case  # the ref names the case's own bytes
        assert text[:offset].count(b"\n") + 1 == row.trace_line
        assert load_transcript(asdict(row)) == to_transcript(case, row)


def test_a_folder_of_one_case_files_is_one_run(tmp_path: Path) -> None:
    folder = tmp_path / "run-2024-05-01"
    folder.mkdir()
    (folder / "case-1.json").write_text(json.dumps(plain_case("x", error="boom"), indent=1))  # pretty-printed
    (folder / "case-2.json").write_text(json.dumps({**plain_case("y", result="fail"), "id": None}))  # one line, no id
    (folder / "case-3.json").write_text(json.dumps(plain_case("z", result="pass")))
    assert get_format("chat").detect(folder)
    found = rows(folder, "ignored")
    assert [(r.run_id, r.case_id, r.benchmark_name) for r in found] == [
        ("run-2024-05-01", "x", "x"), ("run-2024-05-01", "case-2", "case-2")]
    assert len({r.trace_offset for r in found}) == 2  # distinct keys in one run, though both start at byte 0
    db = tmp_path / "c.db"
    assert rca.ingest_runs(folder, db).rows_added == 2
    frame = rca.load_failures(db)
    assert sorted(frame["case_id"]) == ["case-2", "x"] and set(frame["run_id"]) == {"run-2024-05-01"}
    assert [load_transcript(row).final_answer for _, row in frame.sort_values("case_id").iterrows()] == [
        "answer y", "answer x"]


def test_a_broken_line_is_an_issue_and_the_other_cases_still_count(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [
        plain_case("1", error="e1"), '{"id": "2", "messages": [', "[1, 2, 3]", '{"id": "4", "no": "messages"}',
        plain_case("5", error="e5"), '{"id": "6", "error": "bad \\udcff text", "messages": [{"role": "user", '
                                     '"content": "\\ud800 hi"}]}',
        '{"id": "7", "error": "deep", "messages": ' + "[" * 100_000 + "]" * 100_000 + "}"])
    with path.open("ab") as f:
        f.write(b'{"id": "8", "error": "cut", "messages": [')  # the last line, still being written
    found = items(path)
    issues = [(i.path, i.line, i.message.split(":")[0].split(";")[0]) for i in found if isinstance(i, IngestIssue)]
    not_a_case = "not a chat case (an object with a `messages` list)"
    assert issues == [(str(path), 2, "malformed JSON line"), (str(path), 3, not_a_case), (str(path), 4, not_a_case),
                      (str(path), 7, "malformed JSON line"), (str(path), 8, "truncated last line")]
    good = [r for r in found if isinstance(r, FailureRow)]
    assert [r.case_id for r in good] == ["1", "5", "6"] and good[2].raw_error == "bad ? text"
    db = tmp_path / "c.db"
    summary = rca.ingest_runs(path, db)
    assert summary.rows_added == 3 and [i.line for i in summary.issues] == [2, 3, 4, 7, 8]
    assert load_transcript(rca.load_failures(db).iloc[-1]).task == "? hi"


def test_a_broken_json_list_keeps_the_cases_before_the_break(tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_text('[\n' + json.dumps(plain_case("a", error="x")) + ',\n{"id": "b", "messages": [}\n,\n'
                    + json.dumps(plain_case("c", error="y")) + "\n]")
    found = items(path)
    assert [r.case_id for r in found if isinstance(r, FailureRow)] == ["a"]
    [issue] = [i for i in found if isinstance(i, IngestIssue)]
    assert issue.line == 3 and "the cases after it are not read" in issue.message


def test_reingest_is_idempotent_and_an_appended_case_is_added(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "runs.jsonl", [tool_case("a"), plain_case("b", error="x"), plain_case("c")])
    db = tmp_path / "c.db"
    first = rca.ingest_runs(path, db)
    assert first.rows_added == 2 and first.cases_seen == 2
    assert rca.ingest_runs(path, db).rows_added == 0
    with path.open("a") as f:
        f.write(json.dumps(plain_case("d", result="incorrect")) + "\n")
    again = rca.ingest_runs(path, db)
    assert again.rows_added == 1 and not again.issues
    frame = rca.load_failures(db)
    assert sorted(frame["case_id"]) == ["a", "b", "d"] and len(load_cases(db)) == 3


def test_a_case_moved_in_its_file_is_found_by_id_else_not_found(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "runs.jsonl", [plain_case("a", error="x"), tool_case("b")])
    row = asdict(rows(path)[1])
    write_jsonl(path, [plain_case("new", error="y"), plain_case("a", error="x"), tool_case("b")])  # offsets shift
    assert load_transcript(row).final_answer == "The total is 25."
    moved = tmp_path / "elsewhere" / "run-7"
    moved.mkdir(parents=True)
    path.rename(moved / path.name)
    with pytest.raises(TraceNotFound, match="not found"):
        load_transcript(row)
    assert load_transcript(row, runs_dir=tmp_path / "elsewhere").steps[3].tool_name == "size"
    write_jsonl(moved / path.name, [plain_case("a", error="x")])
    with pytest.raises(TraceNotFound, match="no case 'b'"):
        load_transcript(row, runs_dir=tmp_path / "elsewhere")


def test_detect_reads_the_first_64_kib_only_and_wants_top_level_messages(tmp_path: Path) -> None:
    adapter = get_format("chat")
    assert FORMATS["chat"] == "rca.formats.chat" and adapter.name == "chat"
    early = write_jsonl(tmp_path / "early.jsonl", [plain_case("a") | {"notes": "x" * HEAD_BYTES}])
    late = write_jsonl(tmp_path / "late.jsonl", [{"notes": "x" * HEAD_BYTES} | plain_case("a")])
    assert adapter.detect(early) and not adapter.detect(late)
    nested = write_jsonl(tmp_path / "nested.json", [{"samples": [plain_case("a")]}])
    no_roles = write_jsonl(tmp_path / "no_roles.jsonl", [{"messages": [{"text": "hi"}]}])
    escaped = write_jsonl(tmp_path / "escaped.jsonl", [{"content": json.dumps(plain_case("a"))}])
    assert not any(adapter.detect(p) for p in (nested, no_roles, escaped))
    assert not any(get_format(name).detect(early) for name in FORMATS if name not in ("chat", "harness"))


def test_jsonl_is_streamed_in_flat_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    with path.open("w") as f:
        for i in range(200):
            case = plain_case(str(i), error="x")
            case["messages"][0]["content"] = "y" * 50_000
            f.write(json.dumps(case) + "\n")  # 10 MB
    tracemalloc.start()
    try:
        count = sum(isinstance(item, FailureRow) for item in get_format("chat").failures(path, "big"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 200 and peak < 1_000_000, peak


def test_mixed_folder_with_who_and_when_layout_keeps_every_log_and_its_labels(tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    for subset, log in (("Algorithm-Generated", "algorithm-generated-1.json"),
                        ("Hand-Crafted", "hand-crafted-24.json")):
        (root / subset).mkdir(parents=True)
        shutil.copy(DATA / "multiagent" / log, root / subset / "1.json")  # each subset numbers its logs from 1
    write_jsonl(root / "chats.jsonl", [tool_case("a"), plain_case("b", metadata={"history": [1], "passed": False})])
    (root / "notes.txt").write_text("not a trace\n")
    db = tmp_path / "c.db"
    summary = rca.ingest_runs(root, db)
    assert summary.rows_added == 4 and [i.path for i in summary.issues] == [str(root / "notes.txt")]
    frame = rca.load_failures(db).sort_values(["format", "run_id"])
    assert list(zip(frame["format"], frame["run_id"])) == [
        ("chat", "chats"), ("chat", "run-7"), ("multiagent", "Algorithm-Generated"), ("multiagent", "Hand-Crafted")]
    for _, row in frame[frame["format"] == "multiagent"].iterrows():
        t = load_transcript(row)
        labels = t.metadata["labels"]
        assert set(labels) == {"mistake_agent", "mistake_step", "mistake_reason", "ground_truth"}
        prompt = user_prompt(t, render_trace(t))
        assert labels["mistake_reason"] not in prompt and "mistake" not in prompt.lower()
    out = rca.analyze_failures(rca.load_failures(db), db=db, backend="heuristic", progress=False)
    assert out["category"].notna().all() and len(out) == 4
    assert rca.ingest_runs(root, db).rows_added == 0


def test_all_failed_through_ingest_and_the_command_line(tmp_path: Path) -> None:
    from rca.cli import main

    path = write_jsonl(tmp_path / "only_failures.jsonl", [plain_case("a", result="fail"), plain_case("b")])
    db = tmp_path / "c.db"
    assert rca.ingest_runs(path, db).rows_added == 1
    assert main(["ingest", str(path), "--db", str(db), "--all-failed"]) == 0
    assert sorted(rca.load_failures(db)["case_id"]) == ["a", "b"]
