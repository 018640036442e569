"""One trace's spans as transcript steps, read through the OpenInference and OpenTelemetry GenAI conventions.

A span's kind is `openinference.span.kind`, else what `gen_ai.operation.name` names (chat ->
LLM, execute_tool -> TOOL, invoke_agent -> AGENT), else TOOL when it names a tool. Its agent is
its own `gen_ai.agent.name` / `agent.name`, else that of the nearest AGENT span above it (an
AGENT span without a name attribute is named by its span name: `invoke_agent X` is X,
`CodeAgent.run` is CodeAgent).

Spans are walked depth first, children in start-time order, so a span's steps come before those
of its children and its outputs after them, whatever the clock's resolution:
- LLM: a message per output message (`llm.output_messages.N.message.*`, `gen_ai.output.messages`,
  `gen_ai.completion.N.*`, a `gen_ai.content.completion` / `gen_ai.choice` event, else
  `output.value`), and a tool call per tool call it requests;
- TOOL: a tool call (`tool.name` / `gen_ai.tool.name`, `input.value` / `gen_ai.tool.call.arguments`)
  unless the model's message already requested it, then a tool result (`output.value` /
  `gen_ai.tool.call.result`);
- AGENT: a nested agent's input is a request to it, its output its answer; the topmost agent's
  input is the task, its output the final answer;
- CHAIN and the other kinds: their output, as an observation, when it says something their
  children did not; spans of no known kind (a harness's own functions) give no step;
- status ERROR or an `exception` event: an error step, and a TOOL span's result is an error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

from rca.formats._otel_spans import Span
from rca.formats._text import output_failed, text_of

_GENAI_KINDS = {"chat": "LLM", "text_completion": "LLM", "generate_content": "LLM", "execute_tool": "TOOL",
                "invoke_agent": "AGENT", "embeddings": "EMBEDDING"}
_METHOD = re.compile(r"([A-Za-z_]\w*)\.\w+")
_EVAL_WORDS = frozenset({"eval", "evals", "evaluation", "evaluations", "score", "scores", "grade", "correct",
                         "is_correct", "correctness", "passed", "pass", "success"})
_NOT_EVAL = frozenset({"document", "documents", "retrieval", "reranker", "token_count", "usage", "embedding"})
_INCORRECT = frozenset({"incorrect", "fail", "failed", "failure", "wrong", "false", "no"})
_CORRECT = frozenset({"correct", "pass", "passed", "success", "true", "yes"})
_STACK_TAIL = 2_000
RESULTS = ("ERROR", "exception", "incorrect")
_TASK_KEYS = ("task", "input", "query", "question", "prompt", "message")


def span_kind(span: Span) -> str:
    kind = span.attrs.get("openinference.span.kind")
    if isinstance(kind, str) and kind:
        return kind.upper()
    if (op := span.attrs.get("gen_ai.operation.name")) in _GENAI_KINDS:
        return _GENAI_KINDS[op]
    return "TOOL" if "tool.name" in span.attrs or "gen_ai.tool.name" in span.attrs else ""


def agent_name(span: Span) -> str:
    """An AGENT span's agent: its name attribute, else its span name without the operation or method."""
    if own := _own_agent(span):
        return own
    name = span.name.removeprefix("invoke_agent ").strip()
    return m[1] if (m := _METHOD.fullmatch(name)) else name


def model_name(span: Span) -> str | None:
    for key in ("llm.model_name", "gen_ai.request.model", "gen_ai.response.model"):
        if isinstance(value := span.attrs.get(key), str) and value:
            return value
    return None


def failures_of(span: Span) -> Iterator[tuple[str, str]]:
    """(result, text) for each way a span says the run failed: status ERROR, an exception, an eval.
    An exception that explains the span's ERROR status is one failure, not two."""
    exceptions = [_exception(e.attrs) for e in span.events if e.name == "exception"]
    errored = span.status == "ERROR"
    if errored and not (exceptions and (not span.message or any(span.message in x for x in exceptions))):
        yield "ERROR", span.message or f"span {span.name!r} ended with status ERROR"
    for text in exceptions:
        yield "ERROR" if errored else "exception", text
    for attrs in (span.attrs, *(e.attrs for e in span.events)):
        for key, value in attrs.items():
            if _eval_key(key) and _says_incorrect(value):
                yield "incorrect", f"{span.name}: {key} = {value}"


def worst(results: Iterator[str] | list[str]) -> str | None:
    """The result a trace reports for its failures: ERROR over exception over incorrect."""
    return min(results, key=RESULTS.index, default=None)


@lru_cache(maxsize=8192)
def _eval_key(key: str) -> bool:
    parts = set(key.lower().split("."))
    return bool(parts & _EVAL_WORDS) and not parts & _NOT_EVAL


def passed_eval(span: Span) -> bool:
    """An eval attribute of the span that says the answer was right (true, 1, "correct", "pass")."""
    return any(_eval_key(key) and _says_correct(value)
               for attrs in (span.attrs, *(e.attrs for e in span.events)) for key, value in attrs.items())


def _says_correct(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value == 1
    return isinstance(value, str) and value.strip().lower() in _CORRECT


def _says_incorrect(value: Any) -> bool:
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value == 0
    return isinstance(value, str) and value.strip().lower() in _INCORRECT


def _exception(attrs: Mapping[str, Any]) -> str:
    text = f"{attrs.get('exception.type') or 'exception'}: {attrs.get('exception.message') or ''}".rstrip(": ")
    stack = str(attrs.get("exception.stacktrace") or "").rstrip()
    if not stack:
        return text
    stack = stack if len(stack) <= _STACK_TAIL else "…" + stack[-_STACK_TAIL:]
    return stack if text in stack else f"{text}\n{stack}"


# -- values and messages ----------------------------------------------------------------------

def _json(value: Any) -> Any:
    """A string holding a JSON object or array, parsed; anything else as it is."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            pass
    return value


def plain(value: Any) -> str:
    """An input or output value as text: JSON parsed, a one-field object (`{"task": ...}`) unwrapped."""
    value = _json(value)
    if isinstance(value, Mapping) and len(value) == 1 and isinstance(only := next(iter(value.values())), str):
        return only
    return text_of(value)


def task_text(value: Any) -> str:
    """An agent's input as its task: the `task` (query, question, ...) field of a call's arguments, when it has one."""
    args = _json(value)
    if isinstance(args, Mapping):
        found = next((args[k] for k in _TASK_KEYS if isinstance(args.get(k), str) and args[k].strip()), None)
        if found is not None:
            return found
    return plain(args)


def _unflatten(attrs: Mapping[str, Any], prefix: str) -> dict[Any, Any]:
    """`prefix.0.message.role = x` and the like as {0: {"message": {"role": x}}}."""
    tree: dict[Any, Any] = {}
    for key, value in attrs.items():
        if key.startswith(prefix):
            *path, last = (int(p) if p.isdigit() else p for p in key[len(prefix):].split("."))
            node = tree
            for part in path:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    break
            else:
                node[last] = value
    return tree


def _listed(value: Any) -> list[Any]:
    """A list, or the values of an index-keyed dict in index order."""
    if isinstance(value, dict):
        return [v for _, v in sorted((k, v) for k, v in value.items() if isinstance(k, int))]
    return value if isinstance(value, list) else []


def _message(raw: Any) -> dict[str, Any] | None:
    """One message of any convention as {role, text, calls: [(name, args, id)]}."""
    if isinstance(raw, str):
        return {"role": "assistant", "text": raw, "calls": []}
    if not isinstance(raw, dict):
        return None
    raw = raw.get("message", raw) if isinstance(raw.get("message"), dict) else raw
    texts = [raw["content"]] if isinstance(raw.get("content"), str) else []
    texts += [p.get("message_content", p).get("text") or "" for p in _listed(raw.get("contents")) if isinstance(p, dict)]
    calls = []
    for call in _listed(raw.get("tool_calls")):
        call = call.get("tool_call", call) if isinstance(call, dict) else {}
        fn = call.get("function") if isinstance(call.get("function"), dict) else call
        calls.append((str(fn.get("name") or "?"), _json(fn.get("arguments")), call.get("id")))
    for part in _listed(raw.get("parts")):  # gen_ai.*.messages
        if isinstance(part, dict) and part.get("type") == "tool_call":
            calls.append((str(part.get("name") or "?"), _json(part.get("arguments")), part.get("id")))
        elif isinstance(part, dict) and isinstance(part.get("content"), str):
            texts.append(part["content"])
    return {"role": str(raw.get("role") or "assistant"), "text": "\n".join(t for t in texts if t), "calls": calls}


def messages(span: Span, side: str) -> list[dict[str, Any]]:
    """A model span's input (`side="input"`) or output messages, from whichever convention it uses."""
    oi, genai, indexed = (("llm.input_messages.", "gen_ai.input.messages", "gen_ai.prompt.") if side == "input" else
                          ("llm.output_messages.", "gen_ai.output.messages", "gen_ai.completion."))
    found = list(_listed(_unflatten(span.attrs, oi)) or _listed(_json(span.attrs.get(genai)))
                 or _listed(_unflatten(span.attrs, indexed)))
    event = "gen_ai.content.prompt" if side == "input" else "gen_ai.content.completion"
    for e in span.events if not found else ():
        if e.name == event:
            found += _listed(_json(e.attrs.get(event.replace("content.", ""))))
        elif e.name == "gen_ai.choice" and side == "output":
            found.append(_json(e.attrs.get("message")) or e.attrs)
    if not found and side == "output" and "output.value" in span.attrs:
        out = _json(span.attrs["output.value"])
        found = [out if isinstance(out, dict) and ("content" in out or "tool_calls" in out) else plain(out)]
    return [m for m in map(_message, found) if m is not None]


def tool_call(span: Span) -> tuple[str, Any, str | None]:
    """A TOOL span's tool name, arguments and call id."""
    a = span.attrs
    name = a.get("tool.name") or a.get("gen_ai.tool.name") or span.name.removeprefix("execute_tool ").strip()
    args = a["gen_ai.tool.call.arguments"] if "gen_ai.tool.call.arguments" in a else a.get("input.value")
    call_id = a.get("gen_ai.tool.call.id") or a.get("tool_call.id") or a.get("tool.call_id")
    return str(name), _json(args), str(call_id) if call_id else None


def tool_output(span: Span) -> Any:
    a = span.attrs
    return _json(a["gen_ai.tool.call.result"] if "gen_ai.tool.call.result" in a else a.get("output.value"))


# -- the walk -----------------------------------------------------------------------------------

def walk(spans: list[Span]) -> tuple[str | None, list[dict[str, Any]], str | None]:
    """(task, step field dicts, final answer) of one trace's spans."""
    ids = {s.span_id for s in spans}
    children: dict[str | None, list[Span]] = {}
    for s in spans:
        parent = s.parent_id if s.parent_id in ids and s.parent_id != s.span_id else None
        children.setdefault(parent, []).append(s)
    for group in children.values():
        group.sort(key=lambda s: s.start)  # stable: ties keep the file's order
    w = _Walk()
    roots = children.get(None, [])
    for top in roots + sorted(spans, key=lambda s: s.start):  # then any span a parent cycle hides
        if top.span_id not in w.agents:
            w.tree(top, children)
    root = w.root_agent or (roots[0] if roots else None)
    task = w.task if w.task is not None else w.first_user
    if task is None and root is not None and "input.value" in root.attrs:
        task = task_text(root.attrs["input.value"])
    final = w.final
    if final is None and roots and "output.value" in roots[0].attrs:
        final = plain(roots[0].attrs["output.value"])
    return task, w.steps, final


class _Walk:
    """Steps in the order the spans happened: a span's own steps, its children's, then its outputs."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []
        self.agents: dict[str, str | None] = {}  # span id -> the agent acting in it
        self.calls: dict[str, str | None] = {}  # TOOL span id -> its call id
        self.pending: list[tuple[str, str | None]] = []  # tool calls a model requested, not yet run
        self.root_agent: Span | None = None
        self.task: str | None = None
        self.first_user: str | None = None
        self.final: str | None = None

    def tree(self, top: Span, children: Mapping[str | None, list[Span]]) -> None:
        stack: list[tuple[Span, int | None]] = [(top, None)]
        while stack:
            span, first = stack.pop()
            if first is not None:
                self.exit(span, span_kind(span), first)
                continue
            if span.span_id in self.agents:
                continue  # met again through a parent cycle
            parent = self.agents.get(span.parent_id) if span.parent_id else None
            stack.append((span, self.enter(span, span_kind(span), parent)))
            stack.extend((child, None) for child in reversed(children.get(span.span_id, ())))

    def step(self, span: Span, at: int, **fields: Any) -> None:
        self.steps.append({"source_id": span.span_id, "timestamp": at / 1e9 if at else None, **fields})

    def enter(self, span: Span, kind: str, parent: str | None) -> int:
        """The span's opening steps; returns where its children's steps begin."""
        own = agent_name(span) if kind == "AGENT" else _own_agent(span) or parent
        self.agents[span.span_id] = own
        if kind == "AGENT" and self.root_agent is None:
            self.root_agent = span
            self.task = task_text(span.attrs["input.value"]) if "input.value" in span.attrs else None
        elif kind == "AGENT" and "input.value" in span.attrs:
            self.step(span, span.start, kind="message", role="user", agent=parent,
                      text=task_text(span.attrs["input.value"]))
        elif kind == "TOOL":
            name, args, call_id = tool_call(span)
            requested = self._requested(name, call_id)
            self.calls[span.span_id] = call_id or requested
            if requested is None:
                self.step(span, span.start, kind="tool_call", role="assistant", agent=own, tool_name=name,
                          tool_args=args, call_id=call_id)
        elif kind == "LLM" and self.first_user is None:
            self.first_user = next((m["text"] for m in messages(span, "input") if m["role"] == "user" and m["text"]), None)
        return len(self.steps)

    def _requested(self, name: str, call_id: str | None) -> str | None:
        """The call a model's message already requested for this TOOL span (its id, or "" without one)."""
        for i, (n, c) in enumerate(self.pending):
            if (call_id and c == call_id) or ((not call_id or not c) and n == name):
                del self.pending[i]
                return c or call_id or ""
        return None

    def exit(self, span: Span, kind: str, first: int) -> None:
        agent, a = self.agents[span.span_id], span.attrs
        if kind == "LLM":
            for m in messages(span, "output"):
                if m["text"]:
                    self.step(span, span.end, kind="message", role=m["role"], agent=agent, text=m["text"])
                for name, args, call_id in m["calls"]:
                    self.step(span, span.end, kind="tool_call", role=m["role"], agent=agent, tool_name=name,
                              tool_args=args, call_id=call_id)
                    self.pending.append((name, call_id))
        elif kind == "TOOL" and (out := tool_output(span)) is not None:
            text = text_of(out)
            self.step(span, span.end, kind="tool_result", role="tool", agent=agent, tool_name=tool_call(span)[0],
                      text=text, call_id=self.calls.get(span.span_id) or None,
                      is_error=span.status == "ERROR" or output_failed(out, text))
        elif kind == "AGENT" and "output.value" in a:
            text = plain(a["output.value"])
            if span is self.root_agent:
                self.final = text
                self.step(span, span.end, kind="final_answer", role="assistant", agent=agent, text=text)
            else:
                self.step(span, span.end, kind="message", role="assistant", agent=agent, text=text)
        elif kind and kind not in ("LLM", "TOOL", "AGENT") and "output.value" in a:
            text = plain(a["output.value"]).strip()
            if text and not any(text in step.get("text", "") for step in self.steps[first:]):
                self.step(span, span.end, kind="system", role=span.name or kind.lower(), agent=agent, text=text)
        for result, text in failures_of(span):
            if result != "incorrect":
                self.step(span, span.end, kind="error", agent=agent, text=text, is_error=True)


def _own_agent(span: Span) -> str | None:
    for key in ("gen_ai.agent.name", "agent.name"):
        if isinstance(value := span.attrs.get(key), str) and value:
            return value
    return None
