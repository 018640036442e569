"""Where a failure was decided: the offline analyzer's root-cause step and its candidates.

A rule in rca.backends.heuristic says what went wrong; these say at which transcript step,
by the answer schema's definition: the EARLIEST agent decision whose correction alone would
have avoided the failure, not the step where the error surfaced. So a failed tool call is
blamed on the call (or the plan that chose it), not on its output; a guess on the moment the
agent chose to answer without facts; an invented name on its first use; a wrong answer on
the reasoning that produced it. Each function returns a transcript step index or None.
"""

from __future__ import annotations

import re
from rca.backends.trace_facts import REASONING, ToolResult, TraceFacts, has_identifier
from rca.transcript import Step

MAX_CANDIDATES = 3
_REJECTED = (  # what the harness says the agent answered, when it quotes it
    re.compile(r"Expected '[^'\n]*', but got '([^'\n]{3,})'"),
    re.compile(r"Answer '([\w.]{3,})' does not match"),
    re.compile(r"fully_qualified_class_name '([\w.]+)' does not"),
)


def _mentions(step: Step, name: str) -> bool:
    return has_identifier(name, step.text) or (step.tool_args is not None and has_identifier(name, str(step.tool_args)))


def plan_of(trace: TraceFacts, call: int | None) -> int | None:
    """The decision behind a tool call: the agent's own reasoning right before it, else the call itself."""
    if call is None or call == 0:
        return call
    before = trace.transcript.steps[call - 1]
    return before.index if before.kind in REASONING and trace.is_own(before) else call


def decision_behind(trace: TraceFacts, result: ToolResult) -> int:
    """The step that chose a failing tool call: its plan, the call, or (no call recorded) the result."""
    return plan_of(trace, result.call) if result.call is not None else result.step


def first_decision(trace: TraceFacts) -> int | None:
    """The first step an agent took: where it chose how to go about the task."""
    return next((s.index for s in trace.transcript.steps if trace.is_own(s)), None)


def first_use(trace: TraceFacts, name: str) -> int | None:
    """The first step in which an agent wrote `name` (text or tool arguments)."""
    return next((s.index for s in trace.transcript.steps if trace.is_own(s) and _mentions(s, name)), None)


def reasoning_before(trace: TraceFacts, step: int | None) -> int | None:
    """The agent's last message or thought before `step` with no tool result in between: the reasoning it acted on."""
    if step is None:
        return None
    for s in reversed(trace.transcript.steps[:step]):
        if s.kind in REASONING and trace.is_own(s):
            return s.index
        if s.kind in ("tool_result", "tool_call") or s.index in trace.prompt_steps:
            return None
    return None


def guess_step(trace: TraceFacts) -> int | None:
    """Where the agent chose to answer without facts: its first step when it called no tool, else
    its first reasoning after the last (empty or failed) tool result, else the final answer."""
    if not trace.calls and not trace.results:
        return first_decision(trace)
    after = trace.results[-1].step if trace.results else trace.calls[-1][0]
    return next((s for s, _ in trace.answers if s > after and trace.is_own(trace.transcript.steps[s])),
                trace.final_answer())


def rejected(error: str) -> str | None:
    """The answer the harness rejected, when its message quotes it (a name, a class path, a value)."""
    return next((m[1] for pattern in _REJECTED if (m := pattern.search(error))), None)


def answer_origin(trace: TraceFacts, error: str) -> int | None:
    """The step that produced a rejected answer: the first agent step naming the rejected value, else
    the reasoning the final answer rests on, else the final answer."""
    final = trace.final_answer()
    if (value := rejected(error)) and (step := first_use(trace, value.rpartition(".")[2])) is not None:
        return step
    return reasoning_before(trace, final) if reasoning_before(trace, final) is not None else final


def fatal_fault(trace: TraceFacts, matches: re.Pattern[str]) -> int | None:
    """The first of the environment faults after which no agent wrote anything: what ended the attempt."""
    last_answer = max((s for s, _ in trace.answers), default=-1)
    after = [s for s, text in trace.errors if s > last_answer and matches.search(text)]
    if after:
        return after[0]
    earlier = [s for s, text in trace.errors if matches.search(text)]
    return earlier[-1] if earlier else (len(trace.transcript.steps) - 1 if trace.transcript.steps else None)


def candidates(*steps: int | None) -> list[int]:
    """Up to three distinct steps, most likely first."""
    return list(dict.fromkeys(s for s in steps if s is not None))[:MAX_CANDIDATES]


def agent_of(trace: TraceFacts, step: int | None) -> str | None:
    """Who took the step, when more than one agent acts (the schema's root_cause_agent)."""
    if step is None or not trace.transcript.multi_agent:
        return None
    return trace.transcript.steps[step].agent
