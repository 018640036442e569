"""Small agent traces for the offline analyzer's tests: raw harness events (CLI tool_use /
tool_result pairs, ADK function calls, messages, errors) read into Transcripts by the harness
adapter, and `check`, which every answer must pass: it validates, quotes verbatim what the
model is shown, and names steps, candidates, agent and fix as the answer schema asks."""

from __future__ import annotations

import json
from typing import Any

from rca.backends.heuristic import diagnose
from rca.formats.harness import to_transcript
from rca.render import render_trace
from rca.schema import DEFAULT_TAXONOMY, Taxonomy, answer_model, category_of
from rca.transcript import Transcript

SRC = "repos/adk-python/src/google/adk/agents"
LLM_AGENT_SOURCE = (
    "# Copyright 2025 Google LLC\n\nfrom pydantic import BaseModel, ConfigDict, Field\n\n\n"
    "class LlmAgent(BaseAgent):\n  model_config = ConfigDict(extra='forbid')\n\n"
    "  model: str = ''\n  instruction: str = ''\n  \"\"\"Instructions for the LLM model.\"\"\"\n"
    "  tools: list = Field(default_factory=list)\n"
)
PYTEST_HEAD = ("--- Pytest stdout ---\n============================= test session starts ==============================\n"
               "collected 2 items\n\ntest_temp.py F.\n\n=================================== FAILURES ===================================\n")


# -- building traces ----------------------------------------------------------------------


def ev(type_: str, **fields: Any) -> dict[str, Any]:
    keys = ("type", "timestamp", "source", "role", "author", "tool_name", "tool_call_id",
            "tool_input", "tool_output", "content", "details")
    return {k: type_ if k == "type" else 1.0 if k == "timestamp" else fields.get(k) for k in keys}


def user(text: str) -> dict[str, Any]:
    return ev("message", role="user", content=text)


def model(text: str) -> dict[str, Any]:
    return ev("message", role="model", content=text)


def tool(name: str, output: str, n: int = 0, **args: Any) -> list[dict[str, Any]]:
    """A CLI-style tool_use/tool_result pair."""
    cid = f"{name}-{n}-{len(output)}"
    return [ev("tool_use", tool_name=name, tool_call_id=cid, tool_input=args),
            ev("tool_result", tool_call_id=cid, tool_output=output)]


def adk_tool(name: str, output: str, n: int = 0, **args: Any) -> list[dict[str, Any]]:
    """An ADK-style function_call / function_response pair."""
    def part(**kw: Any) -> dict[str, Any]:
        return {"text": None, "thought": None, "function_call": None, "function_response": None,
                "thought_signature": "b'\\n\\xa5\\x06\\x01\\x02'", **kw}
    cid = f"adk-{n}"
    return [ev("ADK_EVENT", author="retrieval_worker", role="model", content={"role": "model", "parts": [
                part(function_call={"id": cid, "name": name, "args": args})]}),
            ev("ADK_EVENT", author="retrieval_worker", role="user", content={"role": "user", "parts": [
                part(function_response={"id": cid, "name": name, "response": {"result": output}})]})]


def answer_json(**fields: Any) -> str:
    return "```json\n" + json.dumps(fields, indent=2) + "\n```"


def transcript(events: list[Any], error: str | None = None) -> Transcript:
    """The events as one failed attempt, read by the harness adapter as rca reads a real one."""
    data = {"benchmark_name": "case", "trace_logs": events, "validation_error": error}
    return to_transcript({"event_type": "test_result", "data": data}, {"attempt_index": -1})


def run(events: list[Any], error: str | None) -> tuple[Any, Transcript]:
    t = transcript(events, error)
    return diagnose(t), t


def shown(t: Transcript) -> str:
    """Everything the model is shown: the whole rendered trace, the task, the final answer, the error."""
    rendered = render_trace(t, budget_tokens=1_000_000).text
    return "\n".join(x for x in (rendered, t.task, t.final_answer, t.outcome.error) if x)


def check(answer: Any, t: Transcript, taxonomy: Taxonomy = DEFAULT_TAXONOMY) -> str:
    """Every answer must validate, quote verbatim what the model is shown, and name steps as specified."""
    answer_model(taxonomy).model_validate(answer.model_dump())
    assert 0.3 <= answer.confidence <= 0.6
    assert 1 <= len(answer.evidence) <= 3 or not t.steps
    seen = shown(t)
    for item in answer.evidence:
        assert "\n" not in item.quote and 0 < len(item.quote) <= 200
        assert not item.quote.startswith("```"), "a code fence says nothing"
        assert item.quote in seen, item.quote
        if item.step is not None:
            step = t.steps[item.step]
            own = [step.text, str(step.tool_args)] + ([t.final_answer or ""] if step.kind == "final_answer" else [])
            assert any(item.quote in text for text in own), (item.step, item.quote)
    steps = answer.candidate_steps
    if answer.root_cause_step is None:
        assert not t.steps and steps == [] and answer.root_cause_agent is None
    else:
        assert 0 <= answer.root_cause_step < len(t.steps)
        assert steps[0] == answer.root_cause_step and len(set(steps)) == len(steps) <= 3
        assert all(0 <= s < len(t.steps) for s in steps)
        expected_agent = t.steps[answer.root_cause_step].agent if t.multi_agent else None
        assert answer.root_cause_agent == expected_agent
    for field in ("explanation", "expected_behavior", "actual_behavior", "fix"):
        assert getattr(answer, field).strip()
    return category_of(answer)
