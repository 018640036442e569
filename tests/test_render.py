"""render_trace: each rendering rule, and the budget/keep promises as properties."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rca.render import EMPTY_TEXT, MIN_BUDGET_TOKENS, RenderedTrace, estimate_tokens, render_trace

FIELDS = ("type", "timestamp", "source", "role", "author", "tool_name", "tool_call_id",
          "tool_input", "tool_output", "content", "details")
HEADER = re.compile(r"^\[(\d+)\] (?:\(×(\d+), steps (\d+)–(\d+)\) )?", re.MULTILINE)
ELISION = re.compile(r"^\[… steps? (\d+)(?:–(\d+))? elided: ([\d,]+) steps?, ~([\d,]+) tokens …\]$", re.MULTILINE)
CUT = re.compile(r"\n… \[cut ([\d,]+) chars\] …\n")


def ev(type_: str, **fields: Any) -> dict[str, Any]:
    """A harness trace event: every field present, most of them null."""
    event = {key: None for key in FIELDS}
    event.update(type=type_, timestamp=1_767_000_000.0, source="adk", **fields)
    return event


def adk(author: str, *parts: dict[str, Any]) -> dict[str, Any]:
    full = [{"text": None, "function_call": None, "function_response": None, "thought": None,
             "thought_signature": None, **p} for p in parts]
    return ev("ADK_EVENT", author=author, content={"parts": full, "role": "model"})


def covered(text: str) -> set[int]:
    """Original indices shown by step headers (a collapsed run covers its whole range)."""
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


# -- rendering rules -------------------------------------------------------------------


def test_steps_render_with_original_indices_and_formats() -> None:
    events = [
        ev("message", role="user", content="Write create_agent()."),
        adk("retrieval_worker", {"function_call": {"id": "adk-1", "name": "list_directory",
                                                   "args": {"path": "repos/adk-python"}}}),
        adk("retrieval_worker", {"function_response": {"id": "adk-1", "name": "list_directory",
                                                       "response": {"result": "a.py\nb.py"}}}),
        ev("tool_use", tool_name="read_file", tool_call_id="c1", tool_input={"path": "src/x.py", "limit": 5}),
        ev("tool_result", tool_call_id="c1", tool_output="print('hi')"),
        adk("planner", {"text": "I should route.", "thought": True}),
        ev("CLI_STDERR", content="boom"),
    ]
    lines = render_trace(events).text.splitlines()
    assert lines == [
        "[0] message user: Write create_agent().",
        '[1] ADK_EVENT retrieval_worker: call list_directory(path="repos/adk-python")',
        "[2] ADK_EVENT retrieval_worker: response list_directory: a.py",
        "b.py",
        '[3] tool_use read_file(path="src/x.py", limit=5)',
        "[4] tool_result read_file: print('hi')",
        "[5] ADK_EVENT planner: (thought) I should route.",
        "[6] CLI_STDERR: boom",
    ]


def test_null_fields_and_thought_signatures_are_dropped() -> None:
    signature = repr(bytes(range(256)) * 3)
    events = [adk("worker", {"text": "hello", "thought_signature": signature}),
              adk("worker", {"function_call": {"id": "x", "name": "f", "args": {"a": None, "b": 1}},
                             "thought_signature": b"\x00\xa5" * 300})]
    text = render_trace(events).text
    assert text == '[0] ADK_EVENT worker: hello\n[1] ADK_EVENT worker: call f(b=1)'
    for absent in ("thought_signature", "None", "null", "\\xa5", "timestamp"):
        assert absent not in text


def test_binary_payloads_become_a_short_marker() -> None:
    blob = base64.b64encode(bytes(range(256)) * 4).decode()  # 1,024 bytes
    events = [ev("GEMINI_API_RESPONSE", content={"inline": blob, "usage": 12}),
              ev("tool_result", tool_name="fetch", tool_output=b"\x89PNG" + b"\x00" * 96),
              ev("CLI_STDOUT_RAW", content=f"sig=b'{chr(92)}x0a{chr(92)}xa5" + f"{chr(92)}xff" * 40 + "' end")]
    text = render_trace(events).text
    assert blob[:40] not in text and "\\xff" not in text
    assert '{"inline":"<binary 1,024 bytes>","usage":12}' in text
    assert "[1] tool_result fetch: <binary 100 bytes>" in text
    assert "sig=<binary 42 bytes> end" in text


def test_ordinary_long_tokens_are_not_taken_for_binary() -> None:
    digest = "ab12" * 40  # hex digest: lowercase + digits
    rule = "=" * 120
    text = render_trace([ev("CLI_STDOUT_RAW", content=f"{digest}\n{rule}\nb'plain bytes literal'")]).text
    assert digest in text and rule in text and "b'plain bytes literal'" in text


def test_oversized_output_is_cut_with_its_exact_size() -> None:
    output = "".join(f"line {i}\n" for i in range(30_000))
    text = render_trace([ev("tool_result", tool_name="read_file", tool_output=output)]).text
    prefix = "[0] tool_result read_file: "
    assert text.startswith(prefix + "line 0\nline 1\n")
    assert text.endswith("line 29999\n")
    (match,) = list(CUT.finditer(text))
    head, tail = text[len(prefix): match.start()], text[match.end():]
    assert output.startswith(head) and output.endswith(tail)
    assert int(match.group(1).replace(",", "")) == len(output) - len(head) - len(tail)
    assert estimate_tokens(text) <= 2_000 + 20


def test_identical_consecutive_steps_collapse_into_one_block() -> None:
    call = ev("tool_use", tool_name="list_directory", tool_input={"path": "."})
    events = [ev("message", role="user", content="go")] * 7 + [call] * 5 + [
        ev("tool_use", tool_name="list_directory", tool_input={"path": "src"}), call]
    text = render_trace(events).text
    assert text.splitlines() == [
        "[0] (×7, steps 0–6) message user: go",
        '[7] (×5, steps 7–11) tool_use list_directory(path=".")',
        '[12] tool_use list_directory(path="src")',
        '[13] tool_use list_directory(path=".")',
    ]


def test_different_outputs_with_equal_heads_and_tails_do_not_collapse() -> None:
    a, b = "x" * 20_000 + "A" + "x" * 20_000, "x" * 20_000 + "B" + "x" * 20_000
    text = render_trace([ev("tool_result", tool_name="t", tool_output=a),
                         ev("tool_result", tool_name="t", tool_output=b)]).text
    assert covered(text) == {0, 1} and "×2" not in text


SECRET_CASES = [
    ("AIzaSyD3x4mPl3K3yF0rT3st1ngOnly-_abcdEF", "[REDACTED:google_api_key]"),
    ("sk-proj-AbC123_def-456GhiJklMnoPqrStuVwxYz0987", "[REDACTED:secret_key]"),
    ("Bearer ya29.a0AfH6SMBx-T0k3n", "[REDACTED:bearer_token]"),
    ("-----BEGIN PRIVATE KEY-----\nMIIEow3nT35t\n-----END PRIVATE KEY-----", "[REDACTED:private_key]"),
    ("postgres://bob:hunter2pw@db/x", "[REDACTED:url_password]"),
]


@pytest.mark.parametrize(("secret", "marker"), SECRET_CASES)
@pytest.mark.parametrize("where", ["tool_output", "tool_input", "adk_args", "content", "details", "tool_name"])
def test_secrets_are_redacted_wherever_they_appear(secret: str, marker: str, where: str) -> None:
    events = {
        "tool_output": ev("tool_result", tool_name="env", tool_output=f"VAR={secret}\nmore"),
        "tool_input": ev("tool_use", tool_name="http", tool_input={"cmd": f"use {secret} now"}),
        "adk_args": adk("w", {"function_call": {"id": "1", "name": "f", "args": {"k": f"x {secret} y"}}}),
        "content": ev("message", role="model", content=f"I found {secret} here"),
        "details": ev("system_result", details={"env": f"x {secret} y"}),
        "tool_name": ev("tool_use", tool_name=secret.splitlines()[0], tool_input={}),
    }[where]
    text = render_trace([events]).text
    for piece in ("mPl3K3yF0", "AbC123_def", "SMBx-T0k3n", "MIIEow3nT35t", "hunter2pw", secret.splitlines()[0][:-2]):
        if piece in secret and not (where == "tool_name" and marker == "[REDACTED:private_key]"):
            assert piece not in text
    if where != "tool_name":
        assert marker in text


def test_authorization_header_in_tool_input_dict() -> None:
    events = [ev("tool_use", tool_name="http_get",
                 tool_input={"url": "https://x", "headers": {"Authorization": "Basic dXNlcjpwYXNz"}})]
    text = render_trace(events).text
    assert "dXNlcjpwYXNz" not in text
    assert '"Authorization":"[REDACTED:authorization]"' in text


def test_output_is_deterministic_and_hash_is_of_the_text() -> None:
    events = [ev("message", role="user", content="a"), ev("tool_use", tool_name="t", tool_input={"b": [1, 2]})]
    first, second = render_trace(events), render_trace([dict(e) for e in events])
    assert first == second
    assert first.sha256 == hashlib.sha256(first.text.encode()).hexdigest()
    assert render_trace(events[:1]).sha256 != first.sha256
    assert isinstance(first, RenderedTrace) and first.tokens == estimate_tokens(first.text)
    with pytest.raises(Exception):
        first.text = "changed"  # frozen: a cached result cannot drift from its hash


def test_empty_trace() -> None:
    result = render_trace([])
    assert result.text == EMPTY_TEXT
    assert (result.steps_total, result.steps_kept, result.steps_elided) == (0, 0, 0)


@pytest.mark.parametrize("budget", [0, -5, MIN_BUDGET_TOKENS - 1])
def test_budget_below_minimum_is_refused(budget: int) -> None:
    with pytest.raises(ValueError, match="budget_tokens"):
        render_trace([ev("message", content="x")], budget_tokens=budget)


def test_estimate_tokens_rounds_up() -> None:
    assert [estimate_tokens("x" * n) for n in (0, 1, 4, 5, 8)] == [0, 1, 1, 2, 2]


class Weird:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_odd_shapes_never_raise() -> None:
    cyclic: dict[str, Any] = {"a": 1}
    cyclic["self"] = cyclic
    deep: Any = "leaf"
    for _ in range(5_000):
        deep = [deep]
    events: list[Any] = [
        None, 42, "a bare string", ["a", "list"], {"no_type": True}, {"type": None},
        ev("tool_result", tool_call_id={"unhashable": 1}, tool_output=12345),
        ev("message", role=["odd"], content=[{"parts": "not a list"}]),
        ev("ADK_EVENT", content={"parts": [None, "text", {"function_call": "not a dict"}, {"unknown": {"k": 1}}]}),
        ev("init", content=cyclic), ev("init", content=deep), ev("init", content={1: {2, 3}, (4, 5): Weird()}),
        ev("tool_use", tool_name="x" * 10_000, tool_input="raw args string"),
        {"type": "GEMINI_CLIENT_ERROR", "content": {"error": {"code": 429}}},
    ]
    result = render_trace(events, budget_tokens=MIN_BUDGET_TOKENS)
    assert result.tokens <= MIN_BUDGET_TOKENS
    assert {0, len(events) - 1} <= covered(result.text)
    full = render_trace(events).text
    assert covered(full) == set(range(len(events)))
    assert "[13] GEMINI_CLIENT_ERROR: " in full and "<unrenderable" in full


def test_elision_keeps_first_last_and_errors_and_accounts_for_every_step() -> None:
    events = [ev("message", role="user", content="the task")]
    events += [ev("tool_result", tool_name="read_file", tool_output=f"file {i}\n" + "text " * 2_000) for i in range(1, 60)]
    events[30] = ev("tool_result", tool_name="run_tests", tool_output="Traceback (most recent call last):\nImportError: x")
    events[45] = ev("GEMINI_CLIENT_ERROR", content="429 RESOURCE_EXHAUSTED")
    result = render_trace(events, budget_tokens=3_000)
    text = result.text
    assert result.tokens <= 3_000
    shown, gone = covered(text), elided(text)
    assert {0, 1, 2, 30, 45, 57, 58, 59} <= shown
    assert shown | gone == set(range(60)) and not shown & gone
    assert (result.steps_kept, result.steps_elided) == (len(shown), len(gone))
    assert ELISION.search(text) is not None


def test_when_kept_steps_alone_exceed_budget_their_bodies_shrink() -> None:
    events = [ev("tool_result", tool_name="t", tool_output=f"ValueError: {i}\n" + "word " * 9_000) for i in range(8)]
    result = render_trace(events, budget_tokens=MIN_BUDGET_TOKENS)
    assert result.tokens <= MIN_BUDGET_TOKENS
    assert covered(result.text) == set(range(8))
    assert len(CUT.findall(result.text)) == 8


# -- properties ------------------------------------------------------------------------

WORDS = st.sampled_from(["alpha", "beta", "agent", "route", "value", "path", "src", "the", "tool", "sub"])


@st.composite
def filler(draw: st.DrawFn) -> str:
    """Error-free text; sometimes large (whole files read by the agent)."""
    words = draw(st.lists(WORDS, min_size=0, max_size=30))
    text = " ".join(words)
    if draw(st.integers(0, 9)) == 0:
        line = "\n" + " ".join(words or ["x"])
        text += line * (draw(st.integers(1_000, 300_000)) // len(line))
    return text


@st.composite
def plain_event(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["tool_use", "tool_result", "message", "adk_call", "adk_text", "cli", "init"]))
    name = draw(st.sampled_from(["read_file", "list_directory", "search"]))
    if kind == "tool_use":
        return ev("tool_use", tool_name=name, tool_input={"path": draw(filler())})
    if kind == "tool_result":
        return ev("tool_result", tool_name=name, tool_output=draw(filler()))
    if kind == "message":
        return ev("message", role=draw(st.sampled_from(["user", "model"])), content=draw(filler()))
    if kind == "adk_call":
        return adk("worker", {"function_call": {"id": "i", "name": name, "args": {"q": draw(filler())}},
                              "thought_signature": "b'" + "\\xa5" * 200 + "'"})
    if kind == "adk_text":
        return adk("planner", {"text": draw(filler())})
    if kind == "cli":
        return ev("CLI_STDOUT_RAW", content=draw(filler()))
    return ev("init", content={"model": "gemini", "tools": [name]}, details={"note": draw(filler())})


ERROR_EVENT = st.one_of(
    st.builds(lambda t: ev("GEMINI_CLIENT_ERROR", content=f"429 RESOURCE_EXHAUSTED {t}"), filler()),
    st.builds(lambda t: ev("CLI_STDERR", content=t), filler()),
    st.builds(lambda t: ev("tool_result", tool_name="run", tool_output=f"Traceback (most recent call last):\n{t}\n"
                           "ModuleNotFoundError: No module named 'x'"), filler()),
)


@st.composite
def traces(draw: st.DrawFn) -> tuple[list[dict[str, Any]], set[int]]:
    """Events (with runs of repeats) and the indices of the error steps among them."""
    events = [draw(plain_event()) for _ in range(draw(st.integers(1, 60)))]
    for _ in range(draw(st.integers(0, 5))):
        events.insert(draw(st.integers(0, len(events))), draw(ERROR_EVENT))
    out: list[dict[str, Any]] = []
    for event in events:
        out.extend([event] * draw(st.sampled_from([1, 1, 1, 2, 4])))
    errors = {i for i, e in enumerate(out) if e["type"] in ("GEMINI_CLIENT_ERROR", "CLI_STDERR")
              or "Traceback" in str(e["tool_output"])}
    return out, errors


@settings(max_examples=100, deadline=None)
@given(trace=traces(), budget=st.integers(MIN_BUDGET_TOKENS, 20_000))
def test_property_budget_holds_and_first_last_errors_are_kept(trace: tuple[list[dict], set[int]], budget: int) -> None:
    events, errors = trace
    result = render_trace(events, budget_tokens=budget)
    assert result.tokens == estimate_tokens(result.text) <= budget
    shown, gone = covered(result.text), elided(result.text)
    assert result.text.startswith("[0] ")
    assert {0, len(events) - 1} | errors <= shown
    assert shown | gone == set(range(len(events))) and not shown & gone
    assert (result.steps_kept, result.steps_elided) == (len(shown), len(gone))
    assert render_trace(events, budget_tokens=budget) == result


@settings(max_examples=60, deadline=None)
@given(events=st.lists(st.one_of(plain_event(), ERROR_EVENT), min_size=1, max_size=80),
       budget=st.integers(MIN_BUDGET_TOKENS, 2_000))
def test_property_budget_holds_even_with_more_errors_than_fit(events: list[dict], budget: int) -> None:
    result = render_trace(events, budget_tokens=budget)
    assert result.tokens <= budget
    shown, gone = covered(result.text), elided(result.text)
    assert {0, len(events) - 1} <= shown
    assert shown | gone == set(range(len(events))) and not shown & gone
