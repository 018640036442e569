"""The otel format: OTLP JSON written by the real opentelemetry-sdk and its OTLP encoder, and a real
span-tree export, read as one transcript per trace id, failures only unless all_failed."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest
from google.protobuf.json_format import MessageToJson
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode, Tracer

import rca
from rca.cli import main
from rca.errors import TraceNotFound
from rca.formats import FORMATS, IngestIssue, Progress, get_format, otel
from rca.formats.harness import records
from rca.store import CaseRow, FailureRow

SPAN_TREE = Path(__file__).parent / "data" / "span_tree" / "gaia-0ebe673d.json"
TASK = "Fix the failing test in calc.py"


def _agent_trace(tracer: Tracer) -> None:
    """A planner that reads a file and hands the fix to a coder, whose test run raises."""
    with tracer.start_as_current_span("invoke_agent planner", attributes={
            "openinference.span.kind": "AGENT", "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "planner", "input.value": json.dumps({"task": TASK}),
            "output.value": "I could not fix calc.py"}) as root:
        with tracer.start_as_current_span("chat gpt-x", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-x",
                "llm.input_messages.0.message.role": "user", "llm.input_messages.0.message.content": TASK,
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.content": "I will read calc.py first.",
                "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_1",
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "read_file",
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"path": "calc.py"}'}):
            pass
        with tracer.start_as_current_span("execute_tool read_file", attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "read_file",
                "gen_ai.tool.call.id": "call_1", "input.value": '{"path": "calc.py"}',
                "output.value": "def add(a, b):\n    return a - b\n"}):
            pass
        with tracer.start_as_current_span("invoke_agent coder", attributes={
                "openinference.span.kind": "AGENT", "gen_ai.agent.name": "coder",
                "input.value": "Make add() in calc.py add", "output.value": "The tests still fail."}):
            with tracer.start_as_current_span("LLM", attributes={
                    "openinference.span.kind": "LLM", "llm.model_name": "gpt-x",
                    "llm.output_messages.0.message.role": "assistant",
                    "llm.output_messages.0.message.content": "Running the tests before editing."}):
                pass
            with tracer.start_as_current_span("run_tests", attributes={
                    "openinference.span.kind": "TOOL", "tool.name": "run_tests",
                    "input.value": '{"path": "tests/"}', "output.value": "FAILED tests/test_calc.py::test_add"}) as tool:
                try:
                    raise RuntimeError("pytest exited with 1")
                except RuntimeError as exc:
                    tool.record_exception(exc)
                    tool.set_status(Status(StatusCode.ERROR, "pytest exited with 1"))
        root.set_status(Status(StatusCode.ERROR, "the coder gave up"))


def _passing_trace(tracer: Tracer) -> None:
    with tracer.start_as_current_span("invoke_agent helper", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "helper",
            "input.value": "Say hello", "output.value": "hello"}) as root:
        with tracer.start_as_current_span("chat gpt-x", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-x",
                "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
                    {"type": "text", "content": "hello"}]}])}):
            pass
        root.add_event("gen_ai.evaluation.result", {"gen_ai.evaluation.name": "greeting",
                                                    "gen_ai.evaluation.score.label": "correct"})
        root.set_status(Status(StatusCode.OK))


def _graded_trace(tracer: Tracer) -> None:
    """Ends without an error, but the grader's gen_ai.evaluation.result event says incorrect."""
    with tracer.start_as_current_span("invoke_agent solver", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "solver",
            "input.value": "What is 2 + 2?", "output.value": "5"}) as root:
        root.add_event("gen_ai.evaluation.result", {"gen_ai.evaluation.name": "exact_match",
                                                    "gen_ai.evaluation.score.label": "incorrect"})


@pytest.fixture(scope="module")
def produced() -> list[ReadableSpan]:
    """Three traces as the SDK finishes them: the agent's (failed), a passing one, a graded one."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "calc-bench"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("agents")
    for make in (_agent_trace, _passing_trace, _graded_trace):
        make(tracer)
    provider.shutdown()
    return list(exporter.get_finished_spans())


def _otlp(spans: list[ReadableSpan], indent: int | None = 2) -> str:
    return MessageToJson(encode_spans(spans), indent=indent)


def _by_trace(spans: list[ReadableSpan]) -> dict[int, list[ReadableSpan]]:
    out: dict[int, list[ReadableSpan]] = {}
    for span in spans:
        out.setdefault(span.context.trace_id, []).append(span)
    return out


def _interleaved_lines(spans: list[ReadableSpan]) -> Iterator[str]:
    """JSON lines as concurrent exports write them: the first line a batch of two traces, then one span
    a line, the traces' spans interleaved, each root after its children."""
    queues = list(_by_trace(spans).values())
    yield _otlp([queues[0].pop(0), queues[1].pop(0)], None)
    while any(queues):
        for queue in queues:
            if queue:
                yield _otlp([queue.pop(0)], None)


def _rows(items: list) -> list[FailureRow]:
    return [i for i in items if isinstance(i, FailureRow)]


def _check_agent_trace(t: rca.Transcript) -> None:
    kinds = [(s.kind, s.agent, s.tool_name) for s in t.steps]
    assert kinds == [
        ("message", "planner", None), ("tool_call", "planner", "read_file"), ("tool_result", "planner", "read_file"),
        ("message", "planner", None), ("message", "coder", None), ("tool_call", "coder", "run_tests"),
        ("tool_result", "coder", "run_tests"), ("error", "coder", None), ("message", "coder", None),
        ("final_answer", "planner", None), ("error", "planner", None)]
    assert t.task == TASK and t.final_answer == "I could not fix calc.py" and t.agents == ["planner", "coder"]
    assert t.steps[1].tool_args == {"path": "calc.py"} and t.steps[1].call_id == t.steps[2].call_id == "call_1"
    assert t.steps[3].role == "user" and t.steps[3].text == "Make add() in calc.py add"
    assert t.steps[6].is_error and "FAILED" in t.steps[6].text
    assert t.steps[7].text.startswith("Traceback") and "RuntimeError: pytest exited with 1" in t.steps[7].text
    assert t.steps[10].text == "the coder gave up" and t.outcome.result == "ERROR"
    assert all(s.source_id and len(s.source_id) == 16 for s in t.steps)


def test_one_otlp_object_per_file(tmp_path: Path, produced: list[ReadableSpan]) -> None:
    path = tmp_path / "export.json"
    path.write_text(_otlp(produced))
    adapter = get_format("otel")
    assert FORMATS["otel"] == "rca.formats.otel" and adapter.detect(path)
    items = list(adapter.failures(path, "run-1"))
    rows = _rows(items)
    assert [r.result for r in rows] == ["ERROR", "incorrect"] and items[-1] == Progress(finished=True)
    agent, graded = rows
    assert (agent.suite, agent.generator, agent.benchmark_name[:21]) == ("calc-bench", "planner", "invoke_agent planner:")
    assert "the coder gave up" in agent.raw_error and "RuntimeError: pytest exited with 1" in agent.raw_error
    assert graded.generator == "solver" and "incorrect" in graded.raw_error
    agent_id, passing_id, graded_id = (f"{tid:032x}" for tid in _by_trace(produced))
    assert [r.case_id for r in rows] == [agent_id, graded_id]
    assert len({r.trace_offset for r in rows}) == 2
    assert not [i for i in items if isinstance(i, IngestIssue)]
    _check_agent_trace(adapter.read(asdict(agent)))
    assert adapter.read(asdict(graded)).final_answer == "5"
    cases = [i for i in items if isinstance(i, CaseRow)]
    assert [(c.case_key, c.passed) for c in cases] == [(agent.case_id, False), (passing_id, True), (graded.case_id, False)]


def _span_line(lines: list[str], name: str) -> int:
    return next(i for i, line in enumerate(lines)
                if json.loads(line)["resourceSpans"][0]["scopeSpans"][0]["spans"][-1]["name"] == name)


def test_json_lines_interleaved_with_bad_lines(tmp_path: Path, produced: list[ReadableSpan]) -> None:
    lines = list(_interleaved_lines(produced))
    at = _span_line(lines, "LLM")  # the coder's model call
    broken = json.loads(lines[at])
    span = broken["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    del span["traceId"]
    lines[at] = json.dumps(broken)
    lines.insert(at + 2, '{"resourceSpans": [{"scopeSpans": [')
    path = tmp_path / "otel.jsonl"
    path.write_text("\n".join(lines) + "\n")
    adapter = get_format("otel")
    assert adapter.detect(path)
    items = list(adapter.failures(path, "run-1"))
    issues = [i for i in items if isinstance(i, IngestIssue)]
    span_id = base64.b64decode(span["spanId"]).hex()
    assert [(i.path, i.line) for i in issues] == [(str(path), at + 1), (str(path), at + 3)]
    assert issues[0].message == f"span {span_id}: malformed span: no traceId"
    assert issues[1].message.startswith("malformed JSON line")
    rows = _rows(items)
    assert [r.result for r in rows] == ["ERROR", "incorrect"]
    agent = rows[0]
    assert agent.trace_line == 1  # the first line holds two traces
    ref = json.loads(agent.trace_ref)
    assert ref["trace_id"] == agent.case_id and ref["ranges"][0][0] == 0
    assert sum(length for _, length in ref["ranges"]) < path.stat().st_size  # its lines, not the whole file
    t = adapter.read(asdict(agent))
    assert len(t.steps) == 10 and span_id not in {s.source_id for s in t.steps}  # all but the broken span's message
    assert [s.agent for s in t.steps if s.kind == "tool_call"] == ["planner", "coder"]
    assert sum(s.kind == "error" for s in t.steps) == 2
    everything = _rows(list(adapter.failures(path, "run-1", all_failed=True)))
    assert len({r.trace_offset for r in everything}) == 3 and [r.trace_line for r in everything][:2] == [1, 1]
    assert [asdict(r) for r in _rows(list(adapter.failures(path, "run-1")))] == [asdict(r) for r in rows]


def test_one_line_over_the_record_limit_is_streamed(tmp_path: Path, produced: list[ReadableSpan],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "otel.jsonl"
    path.write_text(_otlp(produced[:3], None) + "\n" + _otlp(produced[3:], None) + "\n")
    whole = [asdict(r) for r in _rows(list(get_format("otel").failures(path, "run-1")))]
    monkeypatch.setattr(records, "MAX_RECORD_BYTES", 1_000)
    streamed = _rows(list(get_format("otel").failures(path, "run-1")))
    assert [asdict(r) for r in streamed] == whole and len(whole) == 2
    _check_agent_trace(get_format("otel").read(asdict(streamed[0])))


@pytest.mark.parametrize("order", ["after its root", "never rooted"])
def test_a_span_after_its_trace_closed_is_an_issue(tmp_path: Path, produced: list[ReadableSpan], order: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(otel, "GRACE_SPANS", 2)
    monkeypatch.setattr(otel, "ORPHAN_GRACE", 3)
    monkeypatch.setattr(otel, "_SWEEP_EVERY", 1)
    agent, passing, graded = _by_trace(produced).values()
    first, late = (agent[-1], agent[0]) if order == "after its root" else (agent[0], agent[1])
    path = tmp_path / "late.jsonl"
    path.write_text("".join(_otlp([s], None) + "\n" for s in [first, *passing, *graded, late]))
    items = list(get_format("otel").failures(path, "run-1", all_failed=True))
    kinds = [type(i).__name__ for i in items]
    assert kinds.index("FailureRow") < kinds.index("IngestIssue")  # closed (and its row out) before the file ends
    issue = next(i for i in items if isinstance(i, IngestIssue))
    assert issue.line == 5 and f"{late.context.span_id:016x}" in issue.message and "closed" in issue.message
    assert len(_rows(items)) == 3


def test_a_truncated_object_keeps_the_traces_before_the_cut(tmp_path: Path, produced: list[ReadableSpan]) -> None:
    text = _otlp(produced)
    path = tmp_path / "cut.json"
    path.write_text(text[:text.index('"name": "invoke_agent solver"')])
    items = list(get_format("otel").failures(path, "run-1", all_failed=True))
    assert [r.generator for r in _rows(items)] == ["planner", "helper"]
    issues = [i for i in items if isinstance(i, IngestIssue)]
    assert len(issues) == 1 and issues[0].message.startswith("malformed JSON, read up to here")


def test_the_span_tree_sample(tmp_path: Path) -> None:
    adapter = get_format("otel")
    assert adapter.detect(SPAN_TREE)
    assert not _rows(list(adapter.failures(SPAN_TREE, "gaia")))  # every span Ok or Unset: says nothing failed
    rows = _rows(list(adapter.failures(SPAN_TREE, "gaia", all_failed=True)))
    assert len(rows) == 1 and rows[0].case_id == "0ebe673d64647ec44c370638b82d3c78"
    t = adapter.read(asdict(rows[0]))
    spans, stack = [], list(json.loads(SPAN_TREE.read_text())["spans"])
    while stack:
        spans.append(stack.pop())
        stack.extend(spans[-1]["child_spans"])
    attrs = [s["span_attributes"] for s in spans]
    kind = [a.get("openinference.span.kind") for a in attrs]
    expected = (kind.count("LLM") + kind.count("TOOL") + sum(k == "TOOL" and "output.value" in a for k, a in zip(kind, attrs))
                + sum(k in ("AGENT", "CHAIN") and "output.value" in a for k, a in zip(kind, attrs)))
    assert len(t.steps) == expected == 7
    assert [s.tool_name for s in t.steps if s.kind == "tool_call"] == [a["tool.name"] for a in attrs if "tool.name" in a]
    assert t.agents == ["CodeAgent"] and rows[0].generator == "CodeAgent"
    assert t.task.startswith("You have one question to answer") and t.final_answer == "right"
    assert {s.source_id for s in t.steps} <= {s["span_id"] for s in spans}
    text = rca.render_trace(t, budget_tokens=4_000).text
    assert "true_answer" not in text and "Right" not in text  # the grader's answer (in the harness's own spans) stays out


def test_detect_judges_the_first_64_kib(tmp_path: Path, produced: list[ReadableSpan]) -> None:
    late = tmp_path / "late.json"
    late.write_text('{"padding": "' + "x" * (64 << 10) + '", ' + _otlp(produced)[1:])
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"trace_id": "ab", "spans": []}))
    assert not get_format("otel").detect(late) and not get_format("otel").detect(other)


def test_ingest_read_back_analyze_and_all_failed(tmp_path: Path, produced: list[ReadableSpan],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    traces = tmp_path / "traces"
    traces.mkdir()
    (traces / "export.json").write_text(_otlp(produced))
    (traces / "stream.jsonl").write_text("\n".join(_interleaved_lines(produced)) + "\n")
    (traces / "gaia.json").write_bytes(SPAN_TREE.read_bytes())
    db = tmp_path / "c.db"
    summary = rca.ingest_runs(traces, db)
    assert summary.rows_added == 4 and not summary.issues
    frame = rca.load_failures(db)
    assert set(frame["format"]) == {"otel"} and sorted(frame["result"]) == ["ERROR", "ERROR", "incorrect", "incorrect"]
    transcripts = [rca.load_transcript(row) for _, row in frame.iterrows()]
    assert sorted(len(t.steps) for t in transcripts) == [1, 1, 11, 11]
    assert all(rca.render_trace(t).text for t in transcripts)
    out = rca.analyze_failures(frame, db=db, backend="heuristic")
    assert out["category"].notna().all()
    again = rca.ingest_runs(traces, db)
    assert again.rows_added == 0 and again.runs_skipped == 3
    with (traces / "stream.jsonl").open("a") as f:
        f.write("\n")  # a changed file is read again: the same rows, none added
    assert rca.ingest_runs(traces, db).rows_added == 0
    assert main(["ingest", str(traces), "--db", str(db), "--all-failed"]) == 0
    assert "3 failed attempts added" in capsys.readouterr().out  # the passing trace twice, the span tree once
    assert main(["ingest", str(traces), "--db", str(db), "--all-failed"]) == 0
    assert "0 failed attempts added" in capsys.readouterr().out


def test_a_moved_file_is_found_through_runs_dir(tmp_path: Path, produced: list[ReadableSpan]) -> None:
    path = tmp_path / "run-1" / "otel.jsonl"
    path.parent.mkdir()
    path.write_text("\n".join(_interleaved_lines(produced)) + "\n")
    row = asdict(_rows(list(get_format("otel").failures(path, "run-1")))[0])
    moved = tmp_path / "elsewhere" / "run-1"
    moved.parent.mkdir()
    path.parent.rename(moved)
    with pytest.raises(TraceNotFound, match="invoke_agent planner"):
        rca.load_transcript(row)
    _check_agent_trace(rca.load_transcript(row, runs_dir=tmp_path / "elsewhere"))
    assert get_format("otel").locate(row, runs_dir=tmp_path / "elsewhere").case_id == row["case_id"]
