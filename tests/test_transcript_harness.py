"""The harness adapter on a real run: what reaches the model, and what must not.

The real run is tests/data/harness/2025-12-24_14-43-50 (ADK events as the harness writes
them: top-level author null, the agent in `details.author`, thought signatures and usage
metadata in every event). Everything here compares the prompt with the raw events.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rca.ingest import ingest_runs
from rca.prompt import user_prompt
from rca.render import render_trace
from rca.store import load_failures
from rca.traces import load_transcript
from rca.transcript import Transcript
from tests.conftest import adk_event, attempt, event, result_event, trace_event, write_run

DATA = Path(__file__).resolve().parent / "data" / "harness"
RUN = "2025-12-24_14-43-50"
DEFAULT_BUDGET = 50_000
TIGHT_BUDGET = 8_000
MAX_RATIO = 0.08
HEADER = re.compile(r"^\[(\d+)\] (?:\(×\d+, steps \d+–\d+\) )?(.*)$", re.MULTILINE)
SECTIONS = ("task", "trace", "final_answer", "error")
PATH = re.compile(r"(?<![\w.:/-])(?:\.{0,2}/)?(?:[\w.@%+-]+/)+[\w.@%+-]+(?::\d+)?")
URL = re.compile(r"https?://[^\s'\"<>)\]]+")


class Case:
    """One failure row with its raw event, its transcript and the prompt built from it."""

    def __init__(self, row: dict[str, Any], data: dict[str, Any], budget: int = DEFAULT_BUDGET) -> None:
        self.row, self.data = row, data
        self.transcript: Transcript = load_transcript(row)
        self.rendered = render_trace(self.transcript, budget_tokens=budget)
        self.prompt = user_prompt(self.transcript, self.rendered)

    @property
    def logs(self) -> list[Any]:
        index = int(self.row["attempt_index"])
        attempts = self.data.get("generation_attempts")
        if index >= 0 and attempts[index].get("trace_logs") is not None:
            return list(attempts[index]["trace_logs"])
        return list(self.data.get("trace_logs") or [])

    def section(self, name: str) -> str:
        (body,) = re.findall(rf"<{name}(?: [^>]*)?>\n(.*?)\n</{name}>", self.prompt, re.DOTALL)
        return body


def _cases(runs: Path, db: Path) -> list[Case]:
    ingest_runs(runs, db)
    out = []
    for row in load_failures(db).to_dict("records"):
        lines = Path(row["trace_log_path"]).read_text(encoding="utf-8").splitlines()
        out.append(Case(row, json.loads(lines[row["trace_line"] - 1])["data"]))
    return out


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> list[Case]:
    """The real run, copied, ingested into a fresh cache, each failure read back."""
    root = tmp_path_factory.mktemp("real")
    shutil.copytree(DATA / RUN, root / "runs" / RUN)
    return _cases(root / "runs", root / "cache.db")


# -- what the raw events carry ------------------------------------------------------------


def _walk(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, str(k))
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v, key)
    else:
        yield key, value


def _without(value: Any, keys: set[str]) -> Any:
    if isinstance(value, dict):
        return {k: _without(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [_without(v, keys) for v in value]
    return value


def agents_of(events: list[Any]) -> set[str]:
    """Every agent an event names: its author, or the raw ADK event's author in details."""
    out = set()
    for ev in events:
        for author in (ev.get("author"), (ev.get("details") or {}).get("author")):
            if isinstance(author, str) and author:
                out.add(author)
    return out


def tools_of(events: list[Any]) -> set[str]:
    out = set()
    for ev in events:
        if isinstance(ev.get("tool_name"), str):
            out.add(ev["tool_name"])
        for part in (ev.get("content") or {}).get("parts") or []:
            for key in ("function_call", "function_response"):
                if isinstance(part.get(key), dict) and part[key].get("name"):
                    out.add(part[key]["name"])
    return out


def errors_of(events: list[Any]) -> set[str]:
    """Error texts: error fields anywhere in the events (tool responses, the ADK event's own)."""
    return {str(v) for ev in events for k, v in _walk(ev)
            if k in ("error", "error_message", "error_code", "stderr") and v not in (None, "")}


def ids_of(events: list[Any]) -> set[str]:
    return {str(v) for ev in events for k, v in _walk(ev) if k in ("id", "invocation_id", "event_id") and v}


def signatures_of(events: list[Any]) -> set[str]:
    return {v for ev in events for k, v in _walk(ev) if k == "thought_signature" and isinstance(v, str)}


def paths_and_urls(text: str) -> set[str]:
    urls = set(URL.findall(text))
    paths = {p.rstrip(".,:;") for p in PATH.findall(URL.sub(" ", text)) if "/" in p.strip("./")}
    return urls | paths


# -- the real run: the targets ------------------------------------------------------


def test_the_real_run_has_the_shape_these_tests_assume(real: list[Case]) -> None:
    assert len(real) == 8  # eight failed cases, one passing one not ingested
    assert all(c.logs for c in real)
    assert all(agents_of(c.logs) for c in real)
    assert any(tools_of(c.logs) for c in real)
    assert all(ev.get("author") is None for c in real for ev in c.logs)  # the agent only in details.author


def test_rendered_traces_are_a_small_fraction_of_the_raw_events(real: list[Case]) -> None:
    raw = sum(len(json.dumps(c.logs, indent=2)) for c in real)
    rendered = sum(len(c.section("trace")) for c in real)
    assert rendered / raw <= MAX_RATIO, (rendered, raw)


def test_every_tool_error_and_agent_reaches_the_prompt(real: list[Case]) -> None:
    for c in real:
        tools, agents, errors = tools_of(c.logs), agents_of(c.logs), errors_of(c.logs)
        for tool in tools:
            assert re.search(rf"^\[\d+\] .*\b{re.escape(tool)}\b", c.rendered.text, re.MULTILINE), tool
        for name in agents:
            assert name in c.rendered.text and name in c.prompt
        for text in errors:
            assert text in c.prompt
        assert c.data["validation_error"] in c.section("error")  # the case's error, whole


def test_no_step_is_rendered_without_the_agent_its_event_names(real: list[Case]) -> None:
    for c in real:
        agents, tools = agents_of(c.logs), tools_of(c.logs)
        assert {s.agent for s in c.transcript.steps} <= agents and all(s.agent for s in c.transcript.steps)
        for m in HEADER.finditer(c.rendered.text):
            rest = m.group(2)
            by_agent = any(rest.startswith(f"{a}:") or rest.startswith(f"{a} (") or rest.startswith(f"{a} error")
                           for a in agents)
            by_tool = any(rest.startswith(f"{t} -> ") for t in tools)
            assert by_agent or by_tool, m.group(0)


def test_paths_and_urls_survive_and_nothing_is_taken_for_binary(real: list[Case]) -> None:
    checked = 0
    for c in real:
        assert "<binary" not in c.prompt
        raw = json.dumps(_without(c.logs, {"thought_signature", "usage_metadata", "details"}), ensure_ascii=False)
        values = [str(v) for _, v in _walk(json.loads(raw)) if isinstance(v, str)]
        for text in [*values, c.data["validation_error"]]:
            for found in paths_and_urls(text):
                assert found in c.prompt, found
                checked += 1
    assert checked >= 50  # the validation logs alone name dozens of paths and URLs


def test_at_a_tight_budget_every_decision_is_still_whole(real: list[Case]) -> None:
    for c in real:
        tight = render_trace(c.transcript, budget_tokens=TIGHT_BUDGET)
        assert tight.tokens <= TIGHT_BUDGET
        whole = {int(m.group(1)): m for m in HEADER.finditer(c.rendered.text)}
        for step in c.transcript.steps:
            if step.is_decision:
                start = whole[step.index].start()
                nxt = [m.start() for i, m in whole.items() if i > step.index]
                block = c.rendered.text[start:min(nxt) - 1 if nxt else len(c.rendered.text)]
                assert block in tight.text


def test_task_trace_final_answer_and_error_in_that_order(real: list[Case]) -> None:
    for c in real:
        positions = [c.prompt.index(f"<{name}") for name in SECTIONS]
        assert positions == sorted(positions)
        assert c.data["benchmark_name"] in c.section("task")
        answer = c.section("final_answer")
        for key, value in c.data["answer_data"].items():
            if key != "benchmark_type":  # the harness's bookkeeping, not the agent's answer
                assert f"{key}:" in answer and value.strip() in answer
        assert "benchmark_type" not in answer
        assert c.section("error").strip() == c.data["validation_error"].strip()
        assert c.transcript.outcome.result == c.data["result"] == "fail_validation"


def test_the_final_answer_is_shown_once(real: list[Case]) -> None:
    for c in real:
        code = c.data["answer_data"]["code"]
        assert c.prompt.count(code.strip()) == 1
        assert c.transcript.steps[-1].kind == "final_answer"
        assert "(shown in <final_answer>)" in c.rendered.text


def test_ids_usage_metadata_and_thought_signatures_do_not_appear(real: list[Case]) -> None:
    for c in real:
        ids, signatures = ids_of(c.logs), signatures_of(c.logs)
        assert ids and signatures
        for value in ids:
            assert value not in c.prompt
        for sig in signatures:
            assert sig[10:50] not in c.prompt
        for word in ("thought_signature", "usage_metadata", "token_count", "invocation_id", "finish_reason",
                     "model_version", "\\x"):
            assert word not in c.prompt


# -- a synthetic run: two sub-agents, multi-part events, an error with a long path -----------

LONG_PATH = ("/private/var/folders/nh/n7l064rj4wx0z7jsyr5q4wtc00rmmq/T/benchmark_6dd1mkhw/repos/adk-python/"
             "src/google/adk/agents/llm_agent.py")
SIG = "b'\\n\\xd4\\t\\x01r\\xc8\\xda|\\x9c\\xdc\\xf1\\x87\\x97\\x9a\\x1a\\xf4\\x10\\xf0\\xcc\\xaf\\xc6\\xff$\\xc3s1L'"
TASK = "Fix create_agent() in fixed.py so that test_create_agent_passes passes."


def _sub_agent_trace(answer: dict[str, str]) -> list[dict[str, Any]]:
    fenced = "```json\n" + json.dumps(answer, indent=2) + "\n```"
    return [
        trace_event("message", role="user", content=TASK),
        adk_event("planner",
                  {"text": "The failing test imports LlmAgent; find its fields first.", "thought": True,
                   "thought_signature": SIG},
                  {"text": "Delegating the lookup to retrieval_worker."},
                  {"function_call": {"id": "adk-1", "name": "transfer_to_agent",
                                     "args": {"agent_name": "retrieval_worker"}}, "thought_signature": SIG},
                  event_id="e1"),
        adk_event("planner", {"function_response": {"id": "adk-1", "name": "transfer_to_agent",
                                                    "response": {"result": None}}}, role="user", event_id="e2"),
        adk_event("retrieval_worker",
                  {"function_call": {"id": "adk-2", "name": "read_file", "args": {"path": LONG_PATH}}},
                  {"function_call": {"id": "adk-3", "name": "list_directory", "args": {"path": "repos/adk-python"}}},
                  event_id="e3"),
        adk_event("retrieval_worker",
                  {"function_response": {"id": "adk-2", "name": "read_file", "response": {
                      "error": f"FileNotFoundError: [Errno 2] No such file or directory: '{LONG_PATH}'"}}},
                  {"function_response": {"id": "adk-3", "name": "list_directory",
                                         "response": {"result": "src\ntests\npyproject.toml"}}},
                  role="user", event_id="e4"),
        adk_event("workflow_solver", {"text": "Model quota hit, retrying."}, event_id="e5",
                  error_code="RESOURCE_EXHAUSTED", error_message="429 quota exceeded for gemini-2.5-flash"),
        adk_event("workflow_solver", {"text": fenced, "thought_signature": SIG}, event_id="e6"),
    ]


FIRST = {"rationale": "First try: model_name is the field.", "code": "LlmAgent(name='a', model_name=m)"}
SECOND = {"rationale": "Second try: the field is model.", "code": "LlmAgent(name='a', model=m)"}
VALIDATION = (f"E   pydantic_core._pydantic_core.ValidationError: 1 validation error for LlmAgent\n"
              f"{LONG_PATH}:32: ValidationError\nFor further information visit https://errors.pydantic.dev/2.12/v/extra_forbidden")
GENERATION_PROMPT = "Write create_agent() returning a SequentialAgent of two LlmAgents named a and b."


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> list[Case]:
    root = tmp_path_factory.mktemp("synthetic")
    write_run(root / "runs", "r1", [
        event("section_start", {"name": "Generator: adk_workflow"}),
        result_event("07: A root agent delegating a task to a sub-agent.", validation_error=VALIDATION,
                     answer_data={**SECOND, "benchmark_type": "fix_error"},
                     attempts=[attempt(1, "failed", "Answer failed schema validation", _sub_agent_trace(FIRST),
                                       answer={"code": FIRST["code"]}, rationale=FIRST["rationale"]),
                               attempt(2, "success", None, _sub_agent_trace(SECOND),
                                       answer={"code": SECOND["code"]}, rationale=SECOND["rationale"])]),
        event("generation_failure", {"benchmark_name": "12: gen", "error_message": "Empty response from model",
                                     "prompt": GENERATION_PROMPT}),
        event("section_end", {"name": "Generator: adk_workflow"}),
    ])
    return _cases(root / "runs", root / "cache.db")


def test_sub_agents_named_only_in_details_are_on_their_steps(synthetic: list[Case]) -> None:
    first, second, _ = synthetic
    for c in (first, second):
        t = c.transcript
        assert t.agents == ["planner", "retrieval_worker", "workflow_solver"]
        lines = c.rendered.text.splitlines()
        assert lines[0] == "[0] user: (the task, shown in <task>)"
        assert "[1] planner (thought): The failing test imports LlmAgent; find its fields first." in lines
        assert "[2] planner: Delegating the lookup to retrieval_worker." in lines
        assert '[3] planner: call transfer_to_agent(agent_name="retrieval_worker")' in lines
        assert f'[5] retrieval_worker: call read_file(path="{LONG_PATH}")' in lines
        assert '[6] retrieval_worker: call list_directory(path="repos/adk-python")' in lines
        assert "Agents in the trace: planner, retrieval_worker, workflow_solver" in c.prompt
        assert c.section("task") == TASK


def test_a_tool_error_keeps_its_flag_and_its_long_path(synthetic: list[Case]) -> None:
    c = synthetic[0]
    (failed,) = [s for s in c.transcript.steps if s.kind == "tool_result" and s.tool_name == "read_file"]
    assert failed.is_error and failed.agent == "retrieval_worker" and LONG_PATH in failed.text
    (ok,) = [s for s in c.transcript.steps if s.tool_name == "list_directory" and s.kind == "tool_result"]
    assert not ok.is_error
    assert f"[7] read_file -> (error) error: FileNotFoundError: [Errno 2] No such file or directory: '{LONG_PATH}'" \
        in c.rendered.text
    assert "[8] list_directory -> src\ntests\npyproject.toml" in c.rendered.text
    assert "[10] workflow_solver error: RESOURCE_EXHAUSTED 429 quota exceeded for gemini-2.5-flash" in c.rendered.text
    assert c.prompt.count(LONG_PATH) == 2  # the call and the tool's error
    assert synthetic[1].prompt.count(LONG_PATH) == 3  # and the last attempt's validation log
    assert "<binary" not in c.prompt and "\\x" not in c.prompt and "adk-2" not in c.prompt


def test_each_attempt_gives_its_own_final_answer(synthetic: list[Case]) -> None:
    first, second, _ = synthetic
    assert [c.row["attempt_index"] for c in (first, second)] == [0, 1]
    for c, own, other in ((first, FIRST, SECOND), (second, SECOND, FIRST)):
        answer = c.section("final_answer")
        assert own["rationale"] in answer and own["code"] in answer
        assert other["rationale"] not in answer and other["code"] not in answer
        assert c.transcript.final_answer is not None and own["code"] in c.transcript.final_answer
        assert c.rendered.text.endswith("workflow_solver (final answer): (shown in <final_answer>)")
    assert first.section("error") == "Answer failed schema validation"  # its own error, not the case's
    assert second.section("error") == VALIDATION


def test_a_generation_failure_prompt_is_the_task(synthetic: list[Case]) -> None:
    c = synthetic[2]
    assert c.row["event_kind"] == "generation_failure"
    assert c.transcript.task == GENERATION_PROMPT and c.section("task") == GENERATION_PROMPT
    assert c.section("error") == "Empty response from model"
    assert c.transcript.steps == () and c.section("trace") == "(no trace steps recorded)"
    assert c.section("final_answer") == "(no final answer recorded)"
