"""One failed attempt, whatever wrote it: the task, the steps, the final answer, the outcome.

Every input format (rca.formats) reads its files into this type, and everything that
reads a trace (rendering, the offline analyzer, the report's trace view) reads only this
type, so a new format is taught once. Pure data: nothing here touches a file.

A step's `index` is its 0-based position in `steps`: what the model cites as `[n]` and
what an answer's `root_cause_step` means.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

StepKind = Literal["message", "thought", "tool_call", "tool_result", "error", "final_answer", "system"]

# The agent's own choices: what the budget keeps whole. Observations (tool results, system
# output) are what it shrinks first.
DECISION_KINDS = frozenset({"message", "tool_call", "final_answer"})


class Step(BaseModel):
    """One thing that happened: an agent's message, thought or tool call, a tool's output, an error."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(ge=0, description="0-based position in Transcript.steps: what [n] cites.")
    kind: StepKind
    agent: str | None = None  # who acted: the (sub-)agent's name; for a tool result, the agent that called it
    role: str | None = None  # the source's own role: user, model, assistant, tool, system
    text: str = ""  # message, thought, error or final-answer text; for a tool result, its output
    tool_name: str | None = None
    tool_args: Any = None  # a tool call's arguments as the source gave them (usually a dict)
    call_id: str | None = None  # links a tool result to its call
    is_error: bool = False  # a tool result that reports failure, or an error step
    timestamp: float | None = None
    source_id: str | None = None  # the source's own id for this step (event id, span id, ...)

    @property
    def is_decision(self) -> bool:
        """The agent's own choice (a message, a tool call, its final answer), not an observation."""
        return self.kind in DECISION_KINDS


class Outcome(BaseModel):
    """How the attempt ended, as the source reports it."""

    model_config = ConfigDict(frozen=True)

    error: str | None = None  # the error text: a validation log, an exception, a grader's verdict
    result: str | None = None  # the source's own status word: fail_validation, I, ERROR, ...


class Transcript(BaseModel):
    """A normalized, format-independent trace of one failed attempt."""

    model_config = ConfigDict(frozen=True)

    format: str  # the rca.formats adapter that read it
    ref: str  # a stable reference to the attempt in its source, opaque outside the adapter
    task: str | None = None  # what the agent was asked to do, when the source says
    steps: tuple[Step, ...] = ()
    final_answer: str | None = None  # the agent's final answer as text, when the source has one
    outcome: Outcome = Outcome()
    metadata: dict[str, Any] = Field(default_factory=dict)  # run_id, case_id, benchmark_name, suite, generator, attempt

    @model_validator(mode="after")
    def _indices(self) -> Transcript:
        for position, step in enumerate(self.steps):
            if step.index != position:
                raise ValueError(f"step {position} has index {step.index}: indices must be 0, 1, 2, ...")
        return self

    @property
    def agents(self) -> list[str]:
        """The agents that act in the steps, in order of first appearance."""
        return list(dict.fromkeys(s.agent for s in self.steps if s.agent and s.kind != "tool_result"))

    @property
    def multi_agent(self) -> bool:
        return len(self.agents) > 1


def number_steps(steps: list[dict[str, Any]]) -> tuple[Step, ...]:
    """Steps from field dicts, numbered in order: adapters build dicts and let this count."""
    return tuple(Step(index=i, **fields) for i, fields in enumerate(steps))
