"""The harness's trace events (a test_result's trace_logs) as transcript steps. Pure.

What real runs carry, and how each becomes steps (see shared/docs/harness-format.md):

- `ADK_EVENT`: one step per part of `content.parts`: text (a thought when `thought` is
  set), function_call (a tool call), function_response (its result), executable code and
  its result. The agent is the event's `author`, or the raw ADK event's `details.author`
  when the top level is null (as real runs write it). `details` repeats the raw event
  (content, usage metadata, ids): only its error fields are read.
- `message` / `GEMINI_API_RESPONSE`: a message; `tool_use` / `tool_result`: a call and its
  output, paired by `tool_call_id`; `CLI_STDERR` / `GEMINI_CLIENT_ERROR`: errors;
  `init`, `system_result`, `CLI_STDOUT_*`, anything else: system steps.

Thought signatures, ids and usage metadata are dropped: they carry nothing a diagnosis needs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from rca.formats._text import answer_text, compact_json, output_failed, text_of

ERROR_TYPES = frozenset({"GEMINI_CLIENT_ERROR", "CLI_STDERR"})
MESSAGE_TYPES = frozenset({"message", "GEMINI_API_RESPONSE"})
ANSWER_SKIP = frozenset({"benchmark_type"})  # harness bookkeeping inside answer_data, not the agent's answer
_PART_SKIP = frozenset({"thought", "thought_signature", "media_resolution", "video_metadata"})
_SYSTEM_SKIP = frozenset({"type", "timestamp", "source", "tool_call_id", "author", "role", "session_id",
                          "invocation_id", "id", "event_id", "usage_metadata"})
_FENCED = re.compile(r"\A\s*```(?:json)?\s*\n(.*)\n\s*```\s*\Z", re.DOTALL)

Fields = dict[str, Any]


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _agent(event: Mapping[str, Any]) -> str | None:
    """The sub-agent that produced an event: top-level author, else the raw event's."""
    details = event.get("details")
    return _str(event.get("author")) or (_str(details.get("author")) if isinstance(details, Mapping) else None)


def _stamp(event: Mapping[str, Any]) -> float | None:
    for value in (event.get("timestamp"), (event.get("details") or {}).get("timestamp")
                  if isinstance(event.get("details"), Mapping) else None):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
            return float(value)
    return None


def _source_id(event: Mapping[str, Any]) -> str | None:
    details = event.get("details")
    for value in (details.get("id"), details.get("event_id")) if isinstance(details, Mapping) else ():
        if isinstance(value, (str, int)):
            return str(value)
    return None


def _adk_parts(event: Mapping[str, Any], base: Fields) -> list[Fields]:
    content = event.get("content")
    role = content.get("role") if isinstance(content, Mapping) else None
    base = {**base, "role": _str(role) or base.get("role")}
    parts = content.get("parts") if isinstance(content, Mapping) else None
    if not isinstance(parts, (list, tuple)):
        text = text_of(content)
        return [{**base, "kind": "message", "text": text}] if text else []
    steps: list[Fields] = []
    for part in parts:
        if not isinstance(part, Mapping):
            steps.append({**base, "kind": "message", "text": text_of(part)})
            continue
        for key, value in part.items():
            if value is None or key in _PART_SKIP:
                continue
            if key == "text":
                steps.append({**base, "kind": "thought" if part.get("thought") else "message", "text": text_of(value)})
            elif key == "function_call" and isinstance(value, Mapping):
                steps.append({**base, "kind": "tool_call", "tool_name": _str(value.get("name")) or "?",
                              "tool_args": value.get("args"), "call_id": _str(value.get("id"))})
            elif key == "function_response" and isinstance(value, Mapping):
                response = value.get("response")
                text = text_of(response)
                steps.append({**base, "kind": "tool_result", "tool_name": _str(value.get("name")) or "?",
                              "text": text, "call_id": _str(value.get("id")), "is_error": output_failed(response, text)})
            elif key == "executable_code" and isinstance(value, Mapping):
                steps.append({**base, "kind": "tool_call", "tool_name": "code_execution",
                              "tool_args": {"code": value.get("code")}})
            elif key == "code_execution_result" and isinstance(value, Mapping):
                text = text_of(value.get("output"))
                failed = str(value.get("outcome", "")).upper() not in ("", "OUTCOME_OK")
                steps.append({**base, "kind": "tool_result", "tool_name": "code_execution", "text": text,
                              "is_error": failed or output_failed(value, text)})
            else:  # inline_data, file_data, ...: say what was there
                steps.append({**base, "kind": "message", "text": f"({key}: {compact_json(value)})"})
    details = event.get("details")
    if isinstance(details, Mapping) and (details.get("error_code") or details.get("error_message")):
        text = " ".join(str(details[k]) for k in ("error_code", "error_message") if details.get(k))
        steps.append({**base, "kind": "error", "text": text, "is_error": True})
    return steps


def _system_text(event: Mapping[str, Any]) -> str:
    """What a system event says, without ids and bookkeeping."""
    lines = [text_of(event.get("content"))] if event.get("content") is not None else []
    details = event.get("details")
    if isinstance(details, Mapping):
        kept = {k: v for k, v in details.items() if k not in _SYSTEM_SKIP and v is not None}
        if kept:
            lines.append(compact_json(kept))
    return "\n".join(line for line in lines if line)


def event_steps(event: Any, calls: dict[str, str]) -> list[Fields]:
    """The step fields of one trace event; `calls` maps call ids to tool names across events."""
    if not isinstance(event, Mapping):
        return [{"kind": "system", "text": text_of(event)}]
    kind = str(event.get("type") or "event")
    base: Fields = {"agent": _agent(event), "role": _str(event.get("role")), "timestamp": _stamp(event),
                    "source_id": _source_id(event)}
    if kind == "ADK_EVENT":
        steps = _adk_parts(event, base)
    elif kind == "tool_use":
        steps = [{**base, "kind": "tool_call", "tool_name": _str(event.get("tool_name")) or "?",
                  "tool_args": event.get("tool_input"), "call_id": _str(event.get("tool_call_id"))}]
    elif kind == "tool_result":
        call_id = _str(event.get("tool_call_id"))
        output, details = event.get("tool_output"), event.get("details")
        text = text_of(output)
        status = str(details.get("status", "")).lower() if isinstance(details, Mapping) else ""
        steps = [{**base, "kind": "tool_result", "call_id": call_id, "text": text,
                  "tool_name": _str(event.get("tool_name")) or calls.get(call_id or "") or "?",
                  "is_error": status in ("error", "failed") or output_failed(output, text)}]
    elif kind in MESSAGE_TYPES:
        steps = [{**base, "kind": "message", "text": text_of(event.get("content"))}]
    elif kind in ERROR_TYPES:
        steps = [{**base, "kind": "error", "text": _system_text(event), "is_error": True}]
    else:
        text = _system_text(event)
        status = (event.get("details") or {}).get("status") if isinstance(event.get("details"), Mapping) else None
        steps = [{**base, "kind": "system", "role": kind, "text": text,
                  "is_error": str(status).lower() in ("error", "failed")}]
    for step in steps:
        if step["kind"] == "tool_call" and step.get("call_id"):
            calls[step["call_id"]] = step["tool_name"]
    return steps


def _parsed_answer(text: str) -> Any:
    """A model's text answer as JSON, fenced (```json ... ```) or bare; None when it is prose."""
    m = _FENCED.match(text)
    body = m.group(1) if m else text.strip()
    if not body.startswith("{"):
        return None
    try:
        return json.loads(body)
    except (json.JSONDecodeError, RecursionError):
        return None


def trace_steps(events: Sequence[Any]) -> list[Fields]:
    """The step fields of an attempt's events, in order."""
    calls: dict[str, str] = {}
    return [fields for event in events for fields in event_steps(event, calls)]


def mark_final_answer(steps: list[Fields], answer: Any) -> str | None:
    """Mark the agent's final answer among the steps; return it as text.

    The last text the agent wrote, with no tool call after it, is its final answer. When it
    is the structured answer the harness recorded (`answer`), the step's text becomes that
    answer's text, so the renderer can show it once.
    """
    final = answer_text(answer, skip=ANSWER_SKIP) if isinstance(answer, Mapping) else _str(answer)
    for fields in reversed(steps):
        if fields["kind"] == "tool_call":
            break
        if fields["kind"] == "message" and fields.get("role") not in ("user", "system"):
            fields["kind"] = "final_answer"
            parsed = _parsed_answer(fields.get("text", ""))
            if isinstance(parsed, Mapping) and isinstance(answer, Mapping) and all(
                    answer.get(k) == v for k, v in parsed.items()):
                fields["text"] = final
            elif final is None:
                final = fields.get("text") or None
            break
    return final


def first_user_message(steps: list[Fields]) -> str | None:
    for fields in steps:
        if fields["kind"] == "message" and fields.get("role") == "user" and fields.get("text"):
            return str(fields["text"])
    return None
