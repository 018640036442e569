"""What the offline analyzer reads from a transcript, in one pass over its steps.

Only the Transcript is read, so every input format rca.formats reads gets the same rules:
the task-giver's messages (the task), the agents' own steps (messages, thoughts, tool calls,
the final answer) and the tool results, each classed as useful, empty, no match or error
(and, for a failure the agent's own arguments caused, what it did wrong), plus error steps.
Texts are kept as the model is shown them (rca.render.step_line), so a quote taken from one
is verbatim in the prompt. The rules in rca.backends.heuristic judge these facts; where a
failure was decided is rca.backends.step_choice's question.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from rca.render import step_line
from rca.transcript import Step, Transcript

HEAD = 400  # a tool's status shows in its first lines, not in the files it prints
REASONING = frozenset({"message", "thought"})

_EMPTY = re.compile(r"\A\s*(?:\[\]|\{\}|None|null|\"\"|'')?\s*\Z")
_NO_MATCH = re.compile(r"(?i:\bno (?:matches|results|files?|entries|such file|match)\b|\b0 (?:matches|results)\b"
                       r"|\bfound 0\b|\bnot found\b|does not exist|\bis empty\b)")
_ERROR = re.compile(r"\A\s*[{\[]?\s*[\"']?(?i:error|exception)\b|Traceback \(most recent|^\w*(?:Error|Exception):",
                    re.MULTILINE)
_MISUSE = (  # a tool's error caused by the agent's own arguments -> what it did wrong
    (re.compile(r"(?i:is a directory|IsADirectoryError|EISDIR)"), "read a directory as a file"),
    (re.compile(r"(?i:not a directory|NotADirectoryError|ENOTDIR)"), "listed a file as a directory"),
    (re.compile(r"(?i:invalid (?:regex|regular expression)|re\.error|bad escape|unterminated character set"
                r"|nothing to repeat|missing \), unterminated|unbalanced parenthesis)"), "passed an invalid regex"),
    (re.compile(r"(?i:unknown tool|tool [\"']?[\w.-]+[\"']? (?:is )?not found|not found in the tools_dict|no such tool"
                r"|not a valid tool|function \w+ is not found)"), "called a tool that does not exist"),
    (re.compile(r"(?i:must have required property|missing \d+ required (?:positional )?argument|unexpected keyword "
                r"argument|invalid argument|unknown (?:argument|parameter))"),
     "passed arguments the tool does not take"),
)


@dataclass(slots=True)
class ToolResult:
    step: int  # the tool_result step
    call: int | None  # the tool_call step that asked for it: the agent's decision
    name: str
    args: str
    text: str
    status: str = "useful"  # useful | empty | nomatch | error
    misuse: str | None = None


@dataclass
class TraceFacts:
    """What the rules need from the steps, built in one pass."""

    transcript: Transcript
    texts: list[tuple[int, str]] = field(default_factory=list)  # (step, text as shown) to quote from
    calls: list[tuple[int, str]] = field(default_factory=list)  # (step, tool name)
    results: list[ToolResult] = field(default_factory=list)
    answers: list[tuple[int, str]] = field(default_factory=list)  # what the agents wrote
    errors: list[tuple[int, str]] = field(default_factory=list)  # error steps: client and CLI errors
    prompt: str = ""  # the task-giver's messages, and the task
    prompt_steps: set[int] = field(default_factory=set)

    @property
    def useful(self) -> list[ToolResult]:
        return [r for r in self.results if r.status == "useful"]

    def final_answer(self) -> int | None:
        """The final answer's step: the one marked so, else the last text an agent wrote, else any text."""
        marked = [s.index for s in self.transcript.steps if s.kind == "final_answer"]
        return marked[-1] if marked else self.answers[-1][0] if self.answers else (
            self.texts[-1][0] if self.texts else None)

    def writer_text(self) -> str:
        """What the agents wrote after the last tool result: the answer and the reasoning for it."""
        after = self.results[-1].step if self.results else -1
        return "\n".join(t for s, t in self.answers if s >= after)

    def is_own(self, step: Step) -> bool:
        """A step an agent took itself (a message, thought, tool call or final answer), not the task-giver's."""
        return step.kind in ("message", "thought", "tool_call", "final_answer") and step.index not in self.prompt_steps


def from_task_giver(step: Step) -> bool:
    """The user's message (the task), not an agent's: some formats log agents' turns with role user too."""
    return step.kind == "message" and step.role == "user" and step.agent in (None, "user")


def has_identifier(name: str, text: str) -> bool:
    """`name` occurs in `text` as a whole identifier (str.find: megabytes of tool output are common)."""
    at = text.find(name)
    while at >= 0:
        end = at + len(name)
        if not (at and (text[at - 1].isalnum() or text[at - 1] == "_")) and not (
                end < len(text) and (text[end].isalnum() or text[end] == "_")):
            return True
        at = text.find(name, at + 1)
    return False


def _args_json(args: object) -> str:
    try:
        return json.dumps(args, sort_keys=True, default=str)
    except (TypeError, ValueError):  # keys of mixed types cannot be sorted
        return repr(args)


def _classify(result: ToolResult, failed: bool) -> None:
    head = result.text[:HEAD]
    if failed:
        result.status = "error"
    elif _EMPTY.match(result.text):
        result.status = "empty"
    elif _ERROR.search(head):
        result.status = "error"
    elif len(result.text) < HEAD and _NO_MATCH.search(head):
        result.status = "nomatch"
    if result.status != "useful":
        result.misuse = next((why for pattern, why in _MISUSE if pattern.search(head)), None)


def _shown(step: Step, transcript: Transcript) -> str:
    """The step's text as the model reads it; a step shown in <task> or <final_answer> is quoted from there."""
    body = step_line(step, transcript)[1]
    if body == "(shown in <final_answer>)":
        return transcript.final_answer or ""
    return (transcript.task or "") if body == "(the task, shown in <task>)" else body


def read_facts(transcript: Transcript) -> TraceFacts:
    """One pass over the steps: the task, tool calls and results, the agents' text, errors."""
    trace = TraceFacts(transcript, prompt=(transcript.task or "") + "\n")
    calls: dict[str, tuple[int, str]] = {}  # call id -> (its step, its arguments as JSON)
    last_call: tuple[int, str] | None = None
    for step in transcript.steps:
        text = _shown(step, transcript)
        trace.texts.append((step.index, text))
        if from_task_giver(step):
            trace.prompt += step.text + "\n"
            trace.prompt_steps.add(step.index)
        elif step.kind == "tool_call":
            name = step.tool_name or "?"
            trace.calls.append((step.index, name))
            last_call = (step.index, _args_json(step.tool_args))
            if step.call_id:
                calls[step.call_id] = last_call
        elif step.kind == "tool_result":
            call_step, args = calls.get(step.call_id or "") or last_call or (None, "")
            trace.results.append(ToolResult(step.index, call_step, step.tool_name or "?", args, step.text))
            _classify(trace.results[-1], step.is_error)
            last_call = None
        elif step.kind in ("message", "thought", "final_answer"):
            trace.answers.append((step.index, step.text))
        elif step.kind == "error":
            trace.errors.append((step.index, step.text))
    return trace
