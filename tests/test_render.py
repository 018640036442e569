"""render_trace: each rendering rule, and the budget/keep promises as properties."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rca.render import (
    CHARS_PER_TOKEN,
    EMPTY_TEXT,
    MAX_OUTPUT_CHARS,
    MIN_BUDGET_TOKENS,
    RenderedTrace,
    estimate_tokens,
    render_trace,
    scrub_binary,
)
from rca.transcript import Transcript, number_steps

HEADER = re.compile(r"^\[(\d+)\] (?:\(×(\d+), steps (\d+)–(\d+)\) )?", re.MULTILINE)
ELISION = re.compile(r"^\[… steps? (\d+)(?:–(\d+))? elided: ([\d,]+) steps?, ~([\d,]+) tokens …\]$", re.MULTILINE)
CUT = re.compile(r"\n… \[cut ([\d,]+) chars\] …\n")
UNLIMITED = 10**9  # a budget no test trace reaches: only the per-output cap applies


# -- building transcripts --------------------------------------------------------------


def transcript(*steps: dict[str, Any], task: str | None = None, final: str | None = None) -> Transcript:
    return Transcript(format="test", ref="t", task=task, final_answer=final, steps=number_steps(list(steps)))


def user(text: str) -> dict[str, Any]:
    return {"kind": "message", "role": "user", "text": text}


def say(text: str, agent: str | None = "solver") -> dict[str, Any]:
    return {"kind": "message", "role": "model", "agent": agent, "text": text}


def think(text: str, agent: str | None = "solver") -> dict[str, Any]:
    return {"kind": "thought", "role": "model", "agent": agent, "text": text}


def call(name: str, agent: str | None = "solver", args: Any = None, **kw: Any) -> dict[str, Any]:
    return {"kind": "tool_call", "role": "model", "agent": agent, "tool_name": name,
            "tool_args": kw if args is None else args}


def output(name: str, text: str, *, error: bool = False, agent: str | None = "solver") -> dict[str, Any]:
    return {"kind": "tool_result", "role": "user", "agent": agent, "tool_name": name, "text": text, "is_error": error}


def error(text: str, agent: str | None = None) -> dict[str, Any]:
    return {"kind": "error", "agent": agent, "text": text, "is_error": True}


def system(text: str, role: str = "init", agent: str | None = None) -> dict[str, Any]:
    return {"kind": "system", "role": role, "agent": agent, "text": text}


def answer(text: str, agent: str | None = "solver") -> dict[str, Any]:
    return {"kind": "final_answer", "role": "model", "agent": agent, "text": text}


def render(*steps: dict[str, Any], budget: int = 50_000, **kw: Any) -> str:
    return render_trace(transcript(*steps, **kw), budget_tokens=budget).text


# -- reading rendered text -------------------------------------------------------------


def covered(text: str) -> set[int]:
    """Step indices shown by step headers (a collapsed run covers its whole range)."""
    out: set[int] = set()
    for m in HEADER.finditer(text):
        first = int(m.group(1))
        last = int(m.group(4)) if m.group(4) else first
        out.update(range(first, last + 1))
    return out


def elided(text: str) -> set[int]:
    out: set[int] = set()
    for m in ELISION.finditer(text):
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) else first
        assert int(m.group(3).replace(",", "")) == last - first + 1
        out.update(range(first, last + 1))
    return out


def blocks(text: str) -> dict[int, str]:
    """Each shown block's whole text (header and body, all its lines), by its first step index."""
    starts = sorted([(m.start(), int(m.group(1))) for m in HEADER.finditer(text)]
                    + [(m.start(), -1) for m in ELISION.finditer(text)])
    out: dict[int, str] = {}
    for (start, index), (end, _) in zip(starts, [*starts[1:], (len(text) + 1, -1)]):
        if index >= 0:
            out[index] = text[start:end - 1]
    return out


# -- line shapes -----------------------------------------------------------------------


def test_each_kind_of_step_has_its_line_shape() -> None:
    text = render(
        user("Write create_agent()."),
        call("list_directory", "retrieval_worker", path="repos/adk-python"),
        output("list_directory", "a.py\nb.py", agent="retrieval_worker"),
        call("read_file", path="src/x.py", limit=5),
        output("read_file", "FileNotFoundError: src/x.py", error=True),
        think("I should route.", "planner"),
        error("429 RESOURCE_EXHAUSTED"),
        error("boom", "solver"),
        system("model: gemini"),
        say("Let me check."),
        user("and hurry"),
        answer("code: x = 1"),
        task="Write create_agent().", final="code: x = 1",
    )
    assert text.splitlines() == [
        "[0] user: (the task, shown in <task>)",
        '[1] retrieval_worker: call list_directory(path="repos/adk-python")',
        "[2] list_directory -> a.py",
        "b.py",
        '[3] solver: call read_file(path="src/x.py", limit=5)',
        "[4] read_file -> (error) FileNotFoundError: src/x.py",
        "[5] planner (thought): I should route.",
        "[6] error: 429 RESOURCE_EXHAUSTED",
        "[7] solver error: boom",
        "[8] init: model: gemini",
        "[9] solver: Let me check.",
        "[10] user: and hurry",
        "[11] solver (final answer): (shown in <final_answer>)",
    ]


def test_tool_arguments_render_as_compact_json_without_nulls() -> None:
    text = render(call("f", args={"a": None, "b": 1, "c": {"d": [1, "x"], "e": None}, "s": "q\"uote"}),
                  call("g", args={}), call("h", args="raw args string"))
    assert text.splitlines() == [
        '[0] solver: call f(b=1, c={"d":[1,"x"]}, s="q\\"uote")',
        "[1] solver: call g()",
        "[2] solver: call h(raw args string)",
    ]


AGENTS = ["workflow_solver", "planner", "retrieval_worker"]


@settings(max_examples=60, deadline=None)
@given(kinds=st.lists(st.tuples(st.sampled_from(["message", "thought", "tool_call", "error", "system", "final_answer"]),
                                st.sampled_from(AGENTS)), min_size=1, max_size=12))
def test_property_every_step_with_an_agent_names_it(kinds: list[tuple[str, str]]) -> None:
    """Whatever the kind, an agent a step carries is on its line, right after `[n] `.

    Tool results are the exception by their shape (`[n] tool -> output`): their agent is the
    one that called them, named on the call's line.
    """
    make = {"message": lambda a, i: say(f"note {i}", a), "thought": lambda a, i: think(f"idea {i}", a),
            "tool_call": lambda a, i: call("read_file", a, path=f"f{i}.py"), "error": lambda a, i: error(f"e{i}", a),
            "system": lambda a, i: system(f"s{i}", "system_result", a), "final_answer": lambda a, i: answer(f"a{i}", a)}
    steps = [make[kind](agent, i) for i, (kind, agent) in enumerate(kinds)]
    shown = blocks(render(*steps))
    assert set(shown) == set(range(len(steps)))
    for i, (_, agent) in enumerate(kinds):
        assert shown[i].startswith(f"[{i}] {agent} ") or shown[i].startswith(f"[{i}] {agent}:"), shown[i]


def test_a_tool_result_is_shown_after_the_call_that_names_its_agent() -> None:
    text = render(call("search", "retrieval_worker", q="LlmAgent"), output("search", "3 hits", agent="retrieval_worker"),
                  call("search", "planner", q="x"), output("search", "0 hits", agent="planner"))
    assert text.splitlines() == ['[0] retrieval_worker: call search(q="LlmAgent")', "[1] search -> 3 hits",
                                 '[2] planner: call search(q="x")', "[3] search -> 0 hits"]


def test_steps_without_agent_fall_back_to_role_then_agent() -> None:
    text = render(say("hello", None), {"kind": "message", "text": "no role"}, call("t", None), think("hm", None))
    assert text.splitlines() == ["[0] model: hello", "[1] agent: no role", "[2] model: call t()", "[3] model (thought): hm"]


def test_long_and_multiline_names_stay_label_sized() -> None:
    text = render(call("x" * 10_000, "a\nb  c"), output("y" * 500, "out"))
    first, second = text.splitlines()
    assert first.startswith("[0] a b c: call " + "x" * 59 + "…(")
    assert second == "[1] " + "y" * 59 + "… -> out"


# -- task and final answer references --------------------------------------------------


def test_task_and_final_answer_are_referred_to_not_repeated() -> None:
    task, final = "Fix create_agent() so the test passes.", "rationale: set model\ncode: x = 1"
    text = render(user(f"  {task}\n"), say("working"), answer(final), task=task, final=final)
    assert task not in text and final not in text
    assert text.splitlines() == ["[0] user: (the task, shown in <task>)", "[1] solver: working",
                                 "[2] solver (final answer): (shown in <final_answer>)"]


def test_steps_that_differ_from_task_or_answer_are_shown() -> None:
    text = render(user("Fix it, please"), say("Fix it."), answer("code: y = 2"), task="Fix it.", final="code: x = 1")
    assert text.splitlines() == ["[0] user: Fix it, please", "[1] solver: Fix it.",
                                 "[2] solver (final answer): code: y = 2"]
    # Without a recorded task or answer nothing is referred to.
    text = render(user("Fix it."), answer("code: x = 1"))
    assert text.splitlines() == ["[0] user: Fix it.", "[1] solver (final answer): code: x = 1"]


# -- binary payloads -------------------------------------------------------------------

PATHS_AND_CODE = [
    "/private/var/folders/nh/n7l064rj4wx0z7jsyr5q4wtc00rmmq/T/benchmark_6dd1mkhw/repos/adk-python/src/google/adk/agents/llm_agent.py",
    "/Users/ivanmkc/Documents/code/agent-generator/env/lib/python3.13/site-packages/litellm/types/llms/anthropic.py:465",
    "../../../../../../../Users/ivanmkc/Documents/code/agent-generator/env/lib/python3.13/site-packages/google/adk/__init__.py",
    "repos/adk-python/src/google/adk/flows/llm_flows/_base_llm_processor_with_a_Really_Long_Name_2025/functions.py",
    "https://errors.pydantic.dev/2.12/v/extra_forbidden",
    "https://github.com/google/adk-python/blob/8f3c2a9e1b7d4c6f0a5e2d9b1c8f7a6e5d4c3b2a/src/google/adk/agents/llm_agent.py#L120",
    "https://storage.googleapis.com/download/storage/v1/b/adk-benchmarks-EU/o/runs%2F2025-12-24_14-43-50%2Ftrace.jsonl?alt=media",
    "test_create_agent_passes_when_the_RetrievalWorker_routes_requests_to_sub_agents_with_output_schema_v2_and_3_tools",
    "TestSequentialAgentWithInteractionErrorRaisesValidationErrorWhenTheSubAgentOutputSchemaIsMissingTheFieldOne2",
    "GOOGLE_GENAI_USE_VERTEXAI_AND_ADK_BENCHMARK_RUNNER_MAX_PARALLEL_GENERATIONS_PER_API_KEY_POOL_2025_12_24_RETRY",
    "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a089f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b",
    'agent = LlmAgent(name="output_schema_agent", model="gemini-2.5-flash", output_schema=BasicOutputSchema, '
    "sub_agents=[worker_a, worker_b], tools=[google_search, read_file, list_directory])",
    "from google.adk.agents.llm_agent import LlmAgent, InstructionProvider, BeforeModelCallback, AfterModelCallback",
    "x = b'hello world, this is a plain bytes literal'",
    "=" * 120,
]


@pytest.mark.parametrize("kept", PATHS_AND_CODE)
def test_paths_urls_identifiers_and_code_are_not_taken_for_binary(kept: str) -> None:
    assert scrub_binary(kept) == kept
    text = render(output("read_file", f"see {kept}\nthen"), call("read_file", path=kept), say(f"({kept})"))
    assert text.splitlines() == [f"[0] read_file -> see {kept}", "then",
                                 f"[1] solver: call read_file(path={json.dumps(kept)})", f"[2] solver: ({kept})"]


@pytest.mark.parametrize("seed", range(10))
def test_base64_of_random_bytes_becomes_a_marker(seed: int) -> None:
    blob = base64.b64encode(random.Random(seed).randbytes(300)).decode()
    urlsafe = base64.urlsafe_b64encode(random.Random(seed + 100).randbytes(301)).decode()
    text = render(output("fetch", f"data={blob} end"), say(f'inline "{urlsafe}"'))
    assert blob[:24] not in text and urlsafe[:24] not in text
    assert text.splitlines() == ["[0] fetch -> data=<binary 300 bytes> end", '[1] solver: inline "<binary 301 bytes>"']


@pytest.mark.parametrize("seed", range(5))
def test_bytes_reprs_full_of_escapes_become_a_marker(seed: int) -> None:
    raw = random.Random(seed).randbytes(300)
    text = render(output("sign", f"sig={raw!r} end"), system(f"signature: {raw!r}"))
    assert "\\x" not in text
    assert re.fullmatch(r"\[0\] sign -> sig=<binary \d{3} bytes> end\n\[1\] init: signature: <binary \d{3} bytes>", text)


def test_raw_bytes_in_arguments_say_their_size() -> None:
    text = render(call("upload", args={"data": b"\x89PNG" + b"\x00" * 96, "name": "x.png"}))
    assert text == '[0] solver: call upload(data="<binary 100 bytes>", name="x.png")'


# -- cutting and collapsing ------------------------------------------------------------


def test_oversized_output_is_cut_with_its_exact_size() -> None:
    text_in = "".join(f"line {i}\n" for i in range(30_000))
    text = render(output("read_file", text_in))
    prefix = "[0] read_file -> "
    assert text.startswith(prefix + "line 0\nline 1\n")
    assert text.endswith("line 29999\n")
    (match,) = list(CUT.finditer(text))
    head, tail = text[len(prefix): match.start()], text[match.end():]
    assert text_in.startswith(head) and text_in.endswith(tail)
    assert int(match.group(1).replace(",", "")) == len(text_in) - len(head) - len(tail)
    assert len(text) <= len(prefix) + MAX_OUTPUT_CHARS


def test_decisions_are_never_cut_by_the_per_output_cap() -> None:
    long_message, long_code = "reason " * 3_000, "x = 1\n" * 3_000
    text = render(say(long_message), call("write_file", path="a.py", content=long_code), answer(long_message + "!"))
    assert CUT.search(text) is None
    assert long_message in text and long_code.replace("\n", "\\n") in text


def test_identical_consecutive_steps_collapse_into_one_block() -> None:
    steps = [user("go")] * 7 + [call("list_directory", path=".")] * 5 + [
        call("list_directory", path="src"), call("list_directory", path=".")]
    assert render(*steps).splitlines() == [
        "[0] (×7, steps 0–6) user: go",
        '[7] (×5, steps 7–11) solver: call list_directory(path=".")',
        '[12] solver: call list_directory(path="src")',
        '[13] solver: call list_directory(path=".")',
    ]


def test_the_same_call_by_two_agents_does_not_collapse() -> None:
    text = render(call("search", "planner", q="x"), call("search", "worker", q="x"))
    assert text.splitlines() == ['[0] planner: call search(q="x")', '[1] worker: call search(q="x")']


def test_different_outputs_with_equal_heads_and_tails_do_not_collapse() -> None:
    a, b = "x" * 20_000 + "A" + "x" * 20_000, "x" * 20_000 + "B" + "x" * 20_000
    text = render(output("t", a), output("t", b))
    assert covered(text) == {0, 1} and "×2" not in text


# -- secrets ---------------------------------------------------------------------------

SECRET_CASES = [
    ("AIzaSyD3x4mPl3K3yF0rT3st1ngOnly-_abcdEF", "[REDACTED:google_api_key]", "mPl3K3yF0"),
    ("sk-proj-AbC123_def-456GhiJklMnoPqrStuVwxYz0987", "[REDACTED:secret_key]", "AbC123_def"),
    ("Bearer ya29.a0AfH6SMBx-T0k3n", "[REDACTED:bearer_token]", "SMBx-T0k3n"),
    ("-----BEGIN PRIVATE KEY-----\nMIIEow3nT35t\n-----END PRIVATE KEY-----", "[REDACTED:private_key]", "MIIEow3nT35t"),
    ("postgres://bob:hunter2pw@db/x", "[REDACTED:url_password]", "hunter2pw"),
]
WHERE = {
    "tool_output": lambda s: output("env", f"VAR={s}\nmore"),
    "tool_args": lambda s: call("http", cmd=f"use {s} now"),
    "nested_args": lambda s: call("f", args={"k": [f"x {s} y"]}),
    "message": lambda s: say(f"I found {s} here"),
    "thought": lambda s: think(f"maybe {s}?"),
    "final_answer": lambda s: answer(f"code: KEY = '{s}'"),
    "error": lambda s: error(f"failed with {s}"),
    "system": lambda s: system(f"env {s}"),
}


@pytest.mark.parametrize(("secret", "marker", "piece"), SECRET_CASES)
@pytest.mark.parametrize("where", sorted(WHERE))
def test_secrets_are_redacted_wherever_they_appear(secret: str, marker: str, piece: str, where: str) -> None:
    text = render(say("first"), WHERE[where](secret), say("last"))
    assert piece not in text
    assert marker in text


@pytest.mark.parametrize(("secret", "marker", "piece"), SECRET_CASES[:3])
def test_secrets_in_tool_and_agent_names_are_redacted(secret: str, marker: str, piece: str) -> None:
    text = render(call(secret, agent=f"agent {secret}"), output(secret, "ok"))
    assert piece not in text


def test_authorization_header_in_tool_args() -> None:
    text = render(call("http_get", url="https://x", headers={"Authorization": "Basic dXNlcjpwYXNz"}))
    assert "dXNlcjpwYXNz" not in text
    assert '"Authorization":"[REDACTED:authorization]"' in text


# -- result object, budget limits, odd input -------------------------------------------


def test_output_is_deterministic_and_hash_is_of_the_text() -> None:
    steps = [user("a"), call("t", b=[1, 2]), output("t", "ok")]
    first = render_trace(transcript(*steps))
    again = render_trace(Transcript.model_validate(transcript(*steps).model_dump()))
    assert first == again
    assert first.sha256 == hashlib.sha256(first.text.encode()).hexdigest()
    assert render_trace(transcript(*steps[:2])).sha256 != first.sha256
    assert render_trace(transcript(*steps), budget_tokens=MIN_BUDGET_TOKENS).sha256 == first.sha256  # fits: same text
    assert isinstance(first, RenderedTrace) and first.tokens == estimate_tokens(first.text)
    assert (first.steps_total, first.steps_kept, first.steps_elided) == (3, 3, 0)
    with pytest.raises(Exception):
        first.text = "changed"  # frozen: a cached result cannot drift from its hash


def test_empty_transcript() -> None:
    result = render_trace(transcript())
    assert result.text == EMPTY_TEXT
    assert (result.steps_total, result.steps_kept, result.steps_elided) == (0, 0, 0)


@pytest.mark.parametrize("budget", [0, -5, MIN_BUDGET_TOKENS - 1, True, 500.0, "500"])
def test_bad_budgets_are_refused(budget: Any) -> None:
    with pytest.raises(ValueError, match="budget_tokens"):
        render_trace(transcript(say("x")), budget_tokens=budget)


def test_estimate_tokens_rounds_up() -> None:
    assert [estimate_tokens("x" * n) for n in (0, 1, 4, 5, 8)] == [0, 1, 1, 2, 2]


class Weird:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_odd_arguments_never_raise() -> None:
    cyclic: dict[str, Any] = {"a": 1}
    cyclic["self"] = cyclic
    deep: Any = "leaf"
    for _ in range(5_000):
        deep = [deep]
    steps = [user("task"), call("a", args=cyclic), call("b", args=deep), call("c", args={1: {2, 3}, (4, 5): Weird()}),
             call("d", args=Weird()), call("e", args=[None, 1.5, float("nan")]), output("f", ""), say(""),
             error("last")]
    result = render_trace(transcript(*steps), budget_tokens=MIN_BUDGET_TOKENS)
    assert result.tokens <= MIN_BUDGET_TOKENS
    assert {0, len(steps) - 1} <= covered(result.text)
    full = render(*steps)
    assert covered(full) == set(range(len(steps)))
    assert "<unrenderable Weird>" in full and "[8] error: last" in full


# -- the budget ------------------------------------------------------------------------


def _agentic(n_rounds: int = 12) -> list[dict[str, Any]]:
    """A task, then rounds of (thought, message, call, large output), an error, a final answer."""
    steps: list[dict[str, Any]] = [user("Fix the failing test in repos/app.")]
    for i in range(n_rounds):
        steps += [think(f"round {i}: " + "considering the options " * 40, "planner"),
                  say(f"round {i}: I will read module_{i}.py next because " + "it defines the router " * 10, "planner"),
                  call("read_file", "retrieval_worker", path=f"repos/app/module_{i}.py", offset=0, limit=400),
                  output("read_file", f"# module {i}\n" + "".join(f"def handler_{i}_{j}(ctx): return {j}\n"
                                                                   for j in range(200)), agent="retrieval_worker")]
        if i == 6:
            steps.append(output("run_tests", "Traceback (most recent call last):\nImportError: cannot import router",
                                error=True, agent="retrieval_worker"))
            steps.append(error("429 RESOURCE_EXHAUSTED: quota exceeded"))
    steps.append(answer("code: from app import router\nrationale: the router lives in module_3"))
    return steps


def _full_blocks(steps: list[dict[str, Any]]) -> dict[int, str]:
    return blocks(render(*steps, budget=UNLIMITED))


def _kinds(steps: list[dict[str, Any]]) -> tuple[list[int], list[int], list[int], list[int]]:
    decisions = [i for i, s in enumerate(steps) if s["kind"] in ("message", "tool_call", "final_answer")]
    errors = [i for i, s in enumerate(steps) if s.get("is_error") or s["kind"] == "error"]
    thoughts = [i for i, s in enumerate(steps) if s["kind"] == "thought"]
    outputs = [i for i, s in enumerate(steps) if s["kind"] == "tool_result" and not s.get("is_error")]
    return decisions, errors, thoughts, outputs


def test_tool_outputs_shrink_first() -> None:
    steps = _agentic()
    full = render(*steps, budget=UNLIMITED)
    decisions, errors, thoughts, outputs = _kinds(steps)
    whole = _full_blocks(steps)
    result = render_trace(transcript(*steps), budget_tokens=estimate_tokens(full) - 2_000)
    text = result.text
    assert result.tokens <= estimate_tokens(full) - 2_000
    shown = blocks(text)
    assert set(shown) == set(range(len(steps))) and not elided(text)
    for i in decisions + errors + thoughts:
        assert shown[i] == whole[i]  # nothing but tool outputs was touched
    cut = [i for i in outputs if shown[i] != whole[i]]
    assert cut and all(CUT.search(shown[i]) for i in cut)


def test_over_budget_decisions_stay_whole_observations_are_cut_and_errors_kept() -> None:
    steps = _agentic()
    decisions, errors, thoughts, outputs = _kinds(steps)
    whole = _full_blocks(steps)
    decision_chars = sum(len(whole[i]) + 1 for i in decisions + errors)
    previous_kept = len(steps) + 1
    for budget in (12_000, 6_000, 4_000, (decision_chars + 2_000) // CHARS_PER_TOKEN):
        result = render_trace(transcript(*steps), budget_tokens=budget)
        text = result.text
        assert result.tokens <= budget
        shown, gone = blocks(text), elided(text)
        for i in decisions:
            assert shown.get(i) == whole[i], (budget, i)  # every decision whole
        for i in errors:
            assert i in shown and shown[i].startswith(whole[i].split("\n")[0][:40])  # errors kept
        assert set(shown) | gone == set(range(len(steps))) and not set(shown) & gone
        assert any(shown.get(i) != whole[i] for i in outputs + thoughts)  # observations pay
        assert result.steps_kept <= previous_kept
        previous_kept = result.steps_kept
    assert gone and gone <= set(outputs + thoughts)  # at the tightest budget only observations went


def test_elision_keeps_first_last_and_errors_and_accounts_for_every_step() -> None:
    steps = [user("the task")] + [output("read_file", f"file {i}\n" + "text " * 2_000) for i in range(1, 60)]
    steps[30] = output("run_tests", "Traceback (most recent call last):\nImportError: x", error=True)
    steps[45] = error("429 RESOURCE_EXHAUSTED")
    result = render_trace(transcript(*steps), budget_tokens=3_000)
    text = result.text
    assert result.tokens <= 3_000
    shown, gone = covered(text), elided(text)
    assert {0, 1, 2, 30, 45, 57, 58, 59} <= shown
    assert shown | gone == set(range(60)) and not shown & gone
    assert (result.steps_kept, result.steps_elided) == (len(shown), len(gone))
    markers = ELISION.findall(text)
    assert markers and all(int(tokens.replace(",", "")) > 0 for *_, tokens in markers)


def test_when_kept_steps_alone_exceed_budget_their_bodies_shrink() -> None:
    steps = [output("t", f"ValueError: {i}\n" + "word " * 9_000, error=True) for i in range(8)]
    result = render_trace(transcript(*steps), budget_tokens=MIN_BUDGET_TOKENS)
    assert result.tokens <= MIN_BUDGET_TOKENS
    assert covered(result.text) == set(range(8))
    assert len(CUT.findall(result.text)) == 8


def test_decisions_shrink_last_when_nothing_else_is_left() -> None:
    steps = [say("plan " * 2_000, "planner"), output("t", "x " * 5_000), say("step " * 2_000, "worker"),
             answer("final " * 2_000)]
    result = render_trace(transcript(*steps), budget_tokens=MIN_BUDGET_TOKENS)
    assert result.tokens <= MIN_BUDGET_TOKENS
    assert {0, 3} <= covered(result.text)
    assert result.text.startswith("[0] planner: plan plan")


# -- properties ------------------------------------------------------------------------

WORDS = st.sampled_from(["alpha", "beta", "agent", "route", "value", "path", "src", "the", "tool", "sub"])


@st.composite
def filler(draw: st.DrawFn, big: bool = True) -> str:
    """Error-free text; sometimes large (whole files read by the agent)."""
    words = draw(st.lists(WORDS, min_size=0, max_size=30))
    text = " ".join(words)
    if big and draw(st.integers(0, 9)) == 0:
        line = "\n" + " ".join(words or ["x"])
        text += line * (draw(st.integers(1_000, 300_000)) // len(line))
    return text


@st.composite
def plain_step(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["tool_call", "tool_result", "message", "thought", "system", "user", "final_answer"]))
    name = draw(st.sampled_from(["read_file", "list_directory", "search"]))
    agent = draw(st.sampled_from([None, "solver", "planner"]))
    if kind == "tool_call":
        return call(name, agent, path=draw(filler(big=False)))
    if kind == "tool_result":
        return output(name, draw(filler()), agent=agent)
    if kind == "message":
        return say(draw(filler(big=False)), agent)
    if kind == "user":
        return user(draw(filler()))
    if kind == "thought":
        return think(draw(filler()), agent)
    if kind == "final_answer":
        return answer(draw(filler(big=False)), agent)
    return system(draw(filler()), draw(st.sampled_from(["init", "CLI_STDOUT_RAW"])))


ERROR_STEP = st.one_of(
    st.builds(lambda t: error(f"429 RESOURCE_EXHAUSTED {t}"), filler()),
    st.builds(lambda t: error(t, "solver"), filler()),
    st.builds(lambda t: output("run", f"Traceback (most recent call last):\n{t}\nModuleNotFoundError: No module named 'x'",
                               error=True), filler()),
)


@st.composite
def traces(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Steps, some errors among them, with runs of repeats."""
    steps = [draw(plain_step()) for _ in range(draw(st.integers(1, 60)))]
    for _ in range(draw(st.integers(0, 5))):
        steps.insert(draw(st.integers(0, len(steps))), draw(ERROR_STEP))
    out: list[dict[str, Any]] = []
    for step in steps:
        out.extend([step] * draw(st.sampled_from([1, 1, 1, 2, 4])))
    return out


@settings(max_examples=100, deadline=None)
@given(steps=traces(), budget=st.integers(MIN_BUDGET_TOKENS, 20_000))
def test_property_budget_holds_and_first_last_errors_are_kept(steps: list[dict[str, Any]], budget: int) -> None:
    result = render_trace(transcript(*steps), budget_tokens=budget)
    assert result.tokens == estimate_tokens(result.text) <= budget
    shown, gone = covered(result.text), elided(result.text)
    _, errors, _, _ = _kinds(steps)
    assert result.text.startswith("[0] ")
    assert {0, len(steps) - 1} | set(errors) <= shown
    assert shown | gone == set(range(len(steps))) and not shown & gone
    assert (result.steps_kept, result.steps_elided) == (len(shown), len(gone))
    assert render_trace(transcript(*steps), budget_tokens=budget) == result


@settings(max_examples=100, deadline=None)
@given(steps=traces(), data=st.data())
def test_property_decisions_stay_whole_when_they_fit(steps: list[dict[str, Any]], data: st.DataObject) -> None:
    """With a budget between what the decisions and errors (and the first and last step) take
    whole, with room for elision markers, and the whole trace: no decision is cut or dropped,
    observations and thoughts pay for the budget."""
    full = render(*steps, budget=UNLIMITED)
    whole = blocks(full)
    decisions, errors, _, _ = _kinds(steps)
    keep = {i for i in whole if i in decisions or i in errors or i == 0 or i == max(whole)}
    needed = sum(len(whole[i]) + 1 for i in keep) + (len(keep) + 1) * 100
    low = max(MIN_BUDGET_TOKENS, -(-needed // CHARS_PER_TOKEN))
    budget = data.draw(st.integers(low, max(low, estimate_tokens(full))), label="budget")
    result = render_trace(transcript(*steps), budget_tokens=budget)
    assert result.tokens <= budget
    shown = blocks(result.text)
    for i in decisions:
        if i in whole:  # the first step of a collapsed run carries the block
            assert shown.get(i) == whole[i]


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.one_of(plain_step(), ERROR_STEP), min_size=1, max_size=80),
       budget=st.integers(MIN_BUDGET_TOKENS, 2_000))
def test_property_budget_holds_even_with_more_errors_than_fit(steps: list[dict[str, Any]], budget: int) -> None:
    result = render_trace(transcript(*steps), budget_tokens=budget)
    assert result.tokens <= budget
    shown, gone = covered(result.text), elided(result.text)
    assert {0, len(steps) - 1} <= shown
    assert shown | gone == set(range(len(steps))) and not shown & gone
