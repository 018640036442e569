"""What the offline analyzer reads from a trace, in one pass over the events.

Tool calls and their results (both the tool_use/tool_result and the ADK function_call/
function_response styles), each result classed as useful, empty, no match or error (and,
for a failure the agent's own arguments caused, what it did wrong), the model's text, the
user's task, and the CLI/client errors. The rules in rca.backends.heuristic judge these facts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

HEAD = 400  # a tool's status shows in its first lines, not in the files it prints

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
    step: int
    name: str
    args: str
    text: str
    status: str = "useful"  # useful | empty | nomatch | error
    misuse: str | None = None


@dataclass
class TraceFacts:
    """What the rules need from the events, built in one pass."""

    texts: list[tuple[int, str, bool]] = field(default_factory=list)  # (step, text, shown raw) to quote from
    calls: list[tuple[int, str]] = field(default_factory=list)  # (step, tool name)
    results: list[ToolResult] = field(default_factory=list)
    answers: list[tuple[int, str]] = field(default_factory=list)  # what the model wrote
    errors: list[tuple[int, str]] = field(default_factory=list)  # CLI_STDERR / GEMINI_CLIENT_ERROR
    prompt: str = ""  # the user's messages: the task
    prompt_steps: set[int] = field(default_factory=set)

    @property
    def useful(self) -> list[ToolResult]:
        return [r for r in self.results if r.status == "useful"]

    def final_answer(self) -> int | None:
        return self.answers[-1][0] if self.answers else self.texts[-1][0] if self.texts else None

    def writer_text(self) -> str:
        """What the model wrote after its last tool result: the answer and the reasoning for it."""
        after = self.results[-1].step if self.results else -1
        return "\n".join(t for s, t in self.answers if s >= after)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            if key != "thought_signature":
                yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def _classify(result: ToolResult, raw: Any, failed: bool) -> None:
    head = result.text[:HEAD]
    if failed or isinstance(raw, dict) and any(
            (str(k).lower() in ("error", "exception") and v) or (k == "status" and v in ("error", "failed"))
            for k, v in raw.items()):
        result.status = "error"
    elif _EMPTY.match(result.text):
        result.status = "empty"
    elif _ERROR.search(head):
        result.status = "error"
    elif len(result.text) < HEAD and _NO_MATCH.search(head):
        result.status = "nomatch"
    if result.status != "useful":
        result.misuse = next((why for pattern, why in _MISUSE if pattern.search(head)), None)


def read_facts(events: list[dict[str, Any]]) -> TraceFacts:
    """One pass over the events: tool calls and results (both event styles), model text, errors."""
    trace = TraceFacts()
    calls: dict[Any, tuple[str, str]] = {}  # call id -> (tool, its arguments as JSON)

    def keep(step: int, value: Any) -> str:
        trace.texts.extend((step, s, isinstance(value, str)) for s in _strings(value))
        return value if isinstance(value, str) else "\n".join(_strings(value))

    def call(step: int, name: Any, args: Any, call_id: Any) -> None:
        trace.calls.append((step, str(name or "?")))
        try:
            calls[call_id] = (str(name or "?"), json.dumps(args, sort_keys=True, default=str))
        except (TypeError, ValueError):  # keys of mixed types cannot be sorted
            calls[call_id] = (str(name or "?"), repr(args))

    def result(step: int, name: Any, raw: Any, call_id: Any, failed: bool = False) -> None:
        tool, args = calls.get(call_id, (str(name or "?"), "")) if call_id is not None else (str(name or "?"), "")
        trace.results.append(ToolResult(step, str(name or tool), args, keep(step, raw)))
        _classify(trace.results[-1], raw, failed)

    def text(step: int, value: Any, role: Any) -> None:
        if role == "user":
            trace.prompt += keep(step, value) + "\n"
            trace.prompt_steps.add(step)
        else:
            trace.answers.append((step, keep(step, value)))

    for step, event in enumerate(events):
        if not isinstance(event, dict):
            continue
        kind, content = event.get("type"), event.get("content")
        if kind == "tool_use":
            call(step, event.get("tool_name"), event.get("tool_input"), event.get("tool_call_id"))
        elif kind == "tool_result":
            details = event.get("details") if isinstance(event.get("details"), dict) else {}
            result(step, event.get("tool_name"), event.get("tool_output"), event.get("tool_call_id"),
                   details.get("status") in ("error", "failed"))
        elif kind == "ADK_EVENT" and isinstance(content, dict) and isinstance(content.get("parts"), list):
            for part in (p for p in content["parts"] if isinstance(p, dict)):
                if isinstance(fc := part.get("function_call"), dict):
                    call(step, fc.get("name"), fc.get("args"), fc.get("id"))
                if isinstance(fr := part.get("function_response"), dict):
                    result(step, fr.get("name"), fr.get("response"), fr.get("id"))
                if isinstance(part.get("text"), str):
                    text(step, part["text"], content.get("role") or event.get("role"))
        elif kind in ("CLI_STDERR", "GEMINI_CLIENT_ERROR"):
            trace.errors.append((step, keep(step, content) + "\n" + keep(step, event.get("details"))))
        elif kind in ("message", "GEMINI_API_RESPONSE", "CLI_STDOUT_FULL", "CLI_STDOUT_RAW", "ADK_EVENT"):
            text(step, content, event.get("role"))
        else:
            keep(step, content)
    return trace
