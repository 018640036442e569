"""One attempt's trace events as compact, budgeted, secret-free text for a model.

Pure functions, no I/O. The text is what the model reads to find a root cause, so it
keeps what matters for that (the task at the start, every error, the end) and drops
what does not (null fields, thought signatures, binary blobs, the middle of huge
outputs, repeated identical steps) until it fits a token budget that is never exceeded.

Text formats (stable: prompts and caches depend on them):

- a step:           `[12] tool_use read_file(path="src/x.py")`, `[13] tool_result read_file: ...`,
                    `[3] message model: ...`, `[4] ADK_EVENT retrieval_worker: call f(a=1)`;
                    the number is the event's position in the input list.
- identical run:    `[7] (×5, steps 7–11) tool_use ...`: five consecutive identical steps.
- cut body:         `… [cut 48,213 chars] …` on its own line between head and tail.
- elided steps:     `[… steps 14–87 elided: 74 steps, ~61,000 tokens …]` (`step 14` when one).
- binary payload:   `<binary 812 bytes>`; secrets: `[REDACTED:<kind>]` (see rca.redact).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import groupby, zip_longest
from typing import Any

import pydantic

from rca.redact import redact

__all__ = ["CHARS_PER_TOKEN", "MIN_BUDGET_TOKENS", "RenderedTrace", "estimate_tokens", "render_trace", "shorten"]

# Gemini's documented rule of thumb is ~4 characters per token for English text. Code and
# JSON run a little denser, so budgets should keep some headroom; an exact count would need
# a tokenizer call per render, and the budget only has to keep prompts in a safe range.
CHARS_PER_TOKEN = 4
MIN_BUDGET_TOKENS = 200  # below this not even the first and last step fit with their labels
MAX_STEP_TOKENS = 2_000  # one step's body beyond this is cut to head + tail
HEAD_STEPS = 3  # the first steps carry the task
TAIL_STEPS = 3  # the last steps carry the final state
MAX_NAME_CHARS = 60  # tool, author and type names from odd input stay label-sized
EMPTY_TEXT = "(no trace events recorded)"
ERROR_TYPES = frozenset({"GEMINI_CLIENT_ERROR", "CLI_STDERR"})

_IGNORED = frozenset({"type", "timestamp", "source", "tool_call_id"})
_UNWRAP = frozenset({"result", "output", "content", "text"})
_B64_RUN = re.compile(r"(?<![A-Za-z0-9+/_\-])[A-Za-z0-9+/_\-]{100,}={0,2}")
_BYTES_REPR = re.compile(r"""\bb'((?:[^'\\\n]|\\.){16,})'|\bb"((?:[^"\\\n]|\\.){16,})\"""")
_ESCAPE = re.compile(r"\\(?:x[0-9a-fA-F]{2}|.)")
_WEAK_ERROR = re.compile(
    r"(?:Error|Exception)\b|Traceback|(?i:\b(?:error|errors|exception|failed|failure)\b)|\b429\b"
    r"|RESOURCE_EXHAUSTED|(?i:rate.?limit|quota exceeded|timed out)"
)
_STRONG_ERROR = re.compile(
    r"Traceback \(most recent call last\)|^(?:E[ \t]+)?[A-Za-z_][\w.]*(?:Error|Exception)(?::|$)"
    r"|^(?:ERROR|FAILED|FAILURE)\b|RESOURCE_EXHAUSTED|\A\s*[{\[]?\s*[\"']?(?i:error|exception)[\"']?\s*:",
    re.MULTILINE,
)
_HTTP_429 = re.compile(r"(?i)\b429\b[ \w:,-]{0,20}(?:too many|resource|quota|rate)|(?:status|code|error)[\"' :=]{1,4}429\b")
_ERROR_KEYS = frozenset({"error", "exception", "stderr", "traceback", "error_message"})
_ERROR_STATUS = frozenset({"error", "failed", "failure", "fail"})
_WINDOW = 3_000  # errors in tool output show at its start or end, not in the files it prints


def estimate_tokens(text: str) -> int:
    """Tokens `text` is taken to cost: ceil(len / CHARS_PER_TOKEN)."""
    return -(-len(text) // CHARS_PER_TOKEN)


class RenderedTrace(pydantic.BaseModel):
    """The rendered text and what it kept; `sha256` of `text` is a cache key."""

    model_config = pydantic.ConfigDict(frozen=True)

    text: str
    sha256: str
    tokens: int
    steps_total: int  # events in the input
    steps_kept: int  # events shown, counting each member of a collapsed identical run
    steps_elided: int  # events replaced by elision markers (= total - kept)


@dataclass(slots=True)
class _Block:
    first: int  # original index of the first event
    last: int  # original index of the last event (> first for a collapsed run)
    head: str  # "tool_result read_file: ", kept whole
    body: str  # may be cut
    error: bool
    tier: int = 0  # 0 optional, 1 first/last steps, 2 error, 3 the very first and last block

    def prefix(self) -> str:
        if self.last == self.first:
            return f"[{self.first}] {self.head}"
        return f"[{self.first}] (×{self.last - self.first + 1}, steps {self.first}–{self.last}) {self.head}"


# -- values --------------------------------------------------------------------------


def _binary(n: int) -> str:
    return f"<binary {n:,} bytes>"


def _clean(value: Any) -> Any:
    """JSON-able copy without nulls, thought signatures or raw bytes."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items() if v is not None and k != "thought_signature"}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _binary(len(value))
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return _safe_repr(value)


def _json(value: Any) -> str:
    try:
        return json.dumps(_clean(value), ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return _safe_repr(value)


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:  # a broken __repr__ or endless nesting: say what it was
        return f"<unrenderable {type(value).__name__}>"


def _text(value: Any) -> str:
    """A field value as readable text: strings raw, small dicts as `key: value` lines."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _binary(len(value))
    if isinstance(value, Mapping):
        clean = _clean(value)
        if len(clean) == 1:
            key, only = next(iter(clean.items()))
            if isinstance(only, str):
                return only if key in _UNWRAP else f"{key}: {only}"
        if any(isinstance(v, str) and "\n" in v for v in clean.values()):
            return "\n".join(f"{k}: {v if isinstance(v, str) else _json(v)}" for k, v in clean.items())
    return _json(value)


def _name(value: Any, default: str = "?") -> str:
    if value is None or value == "":
        return default
    name = " ".join(str(value).split())
    return name if len(name) <= MAX_NAME_CHARS else name[: MAX_NAME_CHARS - 1] + "…"


def _args(args: Any) -> str:
    if isinstance(args, Mapping):
        return ", ".join(f"{k}={_json(v)}" for k, v in _clean(args).items())
    return _text(args)


def _scrub_bytes_repr(m: re.Match[str]) -> str:
    inner = m.group(1) if m.group(1) is not None else m.group(2)
    hexes = inner.count("\\x")
    if hexes < 4 or hexes * 16 < len(inner):
        return m.group(0)  # an ordinary short bytes literal such as b'hello world'
    return _binary(len(_ESCAPE.sub("_", inner)))


def _scrub_b64(m: re.Match[str]) -> str:
    run = m.group(0)
    if run.isdigit() or run.islower() or run.isupper() or not any(c.isdigit() for c in run):
        return run  # separators, hex digests, identifiers: not a binary payload
    return _binary(len(run.rstrip("=")) * 3 // 4)


def _scrub_binary(text: str) -> str:
    if "b'" in text or 'b"' in text:
        text = _BYTES_REPR.sub(_scrub_bytes_repr, text)
    return _B64_RUN.sub(_scrub_b64, text)


# -- errors --------------------------------------------------------------------------


def _weak_error(text: str) -> bool:
    return bool(text) and _WEAK_ERROR.search(text) is not None


def _output_error(value: Any, text: str) -> bool:
    """A tool's output signals failure: an error field or status, or an error at its start or end."""
    for key, v in value.items() if isinstance(value, Mapping) else ():
        k = str(key).lower()
        if (k in _ERROR_KEYS and v) or (k in ("is_error", "iserror") and v is True) or (
                k in ("status", "state") and isinstance(v, str) and v.lower() in _ERROR_STATUS):
            return True
    windows = (text,) if len(text) <= 2 * _WINDOW else (text[:_WINDOW], text[-_WINDOW:])
    return any(_STRONG_ERROR.search(w) or ("429" in w and _HTTP_429.search(w)) for w in windows)


# -- events --------------------------------------------------------------------------


def _parts(content: Any) -> tuple[str, bool]:
    """ADK content `{"parts": [...], "role": ...}`: one line per non-null part."""
    if not isinstance(content, Mapping) or not isinstance(content.get("parts"), (list, tuple)):
        text = _text(content)
        return text, _weak_error(text)
    lines: list[str] = []
    error = False
    for part in content["parts"]:
        if not isinstance(part, Mapping):
            lines.append(_text(part))
            error = error or _weak_error(lines[-1])
            continue
        for key, value in part.items():
            if value is None or key in ("thought_signature", "thought"):
                continue
            if key == "text":
                text = _text(value)
                error = error or _weak_error(text)
                lines.append(f"(thought) {text}" if part.get("thought") else text)
            elif key == "function_call" and isinstance(value, Mapping):
                lines.append(f"call {_name(value.get('name'))}({_args(value.get('args'))})")
            elif key == "function_response" and isinstance(value, Mapping):
                response = value.get("response")
                text = _text(response)
                error = error or _output_error(response, text)
                lines.append(f"response {_name(value.get('name'))}: {text}")
            else:
                lines.append(f"{key}: {_text(value)}")
    return "\n".join(lines), error


def _render_event(event: Any, names: dict[Any, str]) -> tuple[str, str, bool]:
    """(head, body, error) of one event; unknown shapes fall back to compact JSON."""
    if not isinstance(event, Mapping):
        body = _text(event)
        return "event: ", body, _weak_error(body)
    kind = _name(event.get("type"), "event")
    consumed: set[str] = set()
    error = kind in ERROR_TYPES
    call_id = event.get("tool_call_id")
    call_id = call_id if isinstance(call_id, (str, int)) else None
    if kind == "tool_use":
        name = _name(event.get("tool_name"))
        if call_id is not None:
            names[call_id] = name
        head, body = f"tool_use {name}", f"({_args(event.get('tool_input'))})"
        consumed = {"tool_name", "tool_input"}
    elif kind == "tool_result":
        name = _name(event.get("tool_name") or names.get(call_id) or call_id)
        output = event.get("tool_output")
        head, body = f"tool_result {name}: ", _text(output)
        error = error or _output_error(output, body)
        consumed = {"tool_name", "tool_output"}
    elif kind in ("message", "ADK_EVENT"):  # ADK names the sub-agent; a message its role
        who = event.get("role") or event.get("author") if kind == "message" else event.get("author")
        head = f"{kind} {_name(who)}: "
        body, err = _parts(event.get("content"))
        error = error or err
        consumed = {"role", "author", "content"}
    else:
        author = event.get("author")
        head = f"{kind} {_name(author)}: " if author else f"{kind}: "
        body = _text(event.get("content"))
        error = error or _weak_error(body)
        consumed = {"author", "content"}
    extras = []
    for key, value in event.items():
        if value is None or key in consumed or key in _IGNORED:
            continue
        text = _text(value)
        error = error or _weak_error(text)
        extras.append(f"{key}: {text}")
    if extras:
        body = "\n".join([body, *extras]) if body else "\n".join(extras)
    return head, body, error


def _blocks(events: Sequence[Any]) -> list[_Block]:
    """One block per event, redacted and scrubbed; identical consecutive blocks merged."""
    names: dict[Any, str] = {}
    blocks: list[_Block] = []
    for index, event in enumerate(events):
        try:
            head, body, error = _render_event(event, names)
        except Exception:  # odd input must not stop the analysis of everything else
            head, body, error = "event: ", _safe_repr(event), False
        head, body = redact(head), _scrub_binary(redact(body))
        prev = blocks[-1] if blocks else None
        if prev is not None and prev.head == head and prev.body == body:
            prev.last, prev.error = index, prev.error or error
        else:
            blocks.append(_Block(index, index, head, body, error))
    for block in blocks:  # cut after comparing, so only truly identical steps merge
        block.body = shorten(block.body, MAX_STEP_TOKENS * CHARS_PER_TOKEN)
    return blocks


# -- budget --------------------------------------------------------------------------


def _cut_marker(n: int) -> str:
    return f"\n… [cut {n:,} chars] …\n"


def shorten(text: str, limit: int) -> str:
    """`text` in at most `limit` chars: head + cut marker + tail, snapped to line breaks."""
    if len(text) <= limit:
        return text
    room = limit - len(_cut_marker(len(text)))
    if room < 2:
        return "…"[:limit]
    head_n, tail_n = room // 2, room - room // 2
    head, tail = text[:head_n], text[len(text) - tail_n :]
    if (nl := head.rfind("\n", head_n * 4 // 5)) >= 0:
        head = head[:nl]
    if (nl := tail.find("\n", 0, tail_n // 5)) >= 0:
        tail = tail[nl + 1 :]
    return f"{head}{_cut_marker(len(text) - len(head) - len(tail))}{tail}"


def _elision(first: int, last: int, count: int, tokens: int) -> str:
    steps = f"step {first}" if first == last else f"steps {first}–{last}"
    return f"[… {steps} elided: {count:,} step{'' if count == 1 else 's'}, ~{tokens:,} tokens …]"


def _middle_out(items: list[int]) -> list[int]:
    """`items` ordered from the middle outwards, alternating right and left."""
    mid = len(items) // 2
    return [p for pair in zip_longest(items[mid:], items[mid - 1 :: -1] if mid else []) for p in pair if p is not None]


def _water_level(lengths: list[int], allowance: int) -> int:
    """The largest cap t with sum(min(length, t)) <= allowance: short bodies stay whole."""
    remaining = allowance
    ordered = sorted(lengths)
    for i, length in enumerate(ordered):
        share = remaining // (len(ordered) - i)
        if length > share:
            return share
        remaining -= length
    return ordered[-1] if ordered else 0


def _fit(blocks: list[_Block], cap: int, n_events: int) -> tuple[str, int]:
    """The blocks as text of at most `cap` chars, and how many events it shows.

    Drops whole blocks from the middle outwards, lowest tier first (optional steps, then
    the first/last few, then errors; never the very first or last); once no optional step
    is left, shrinks the bodies of what is kept rather than dropping more. Sizes are
    counted once and updated per drop, so this is linear in the number of blocks.
    """
    n = len(blocks)
    for p, block in enumerate(blocks):
        block.tier = 3 if p in (0, n - 1) else 2 if block.error else 1 if p < HEAD_STEPS or p >= n - TAIL_STEPS else 0
    prefixes = [b.prefix() for b in blocks]
    sizes = [len(pf) + len(b.body) for pf, b in zip(prefixes, blocks)]
    tokens = [-(-s // CHARS_PER_TOKEN) for s in sizes]
    reserve = len(_elision(n_events, n_events + 1, n_events, sum(tokens))) + 1  # >= any marker + newline
    dropped = [False] * n
    total, bodies, segments = sum(sizes) + n - 1, sum(len(b.body) for b in blocks), 0

    for tier in (0, 1, 2):
        for p in _middle_out([p for p in range(n) if blocks[p].tier == tier]):
            length = total + segments * reserve
            if length <= cap or (tier > 0 and length - bodies <= cap):
                break
            left, right = p > 0 and dropped[p - 1], p < n - 1 and dropped[p + 1]
            segments += -1 if left and right else 0 if left or right else 1
            dropped[p] = True
            total -= sizes[p] + 1
            bodies -= len(blocks[p].body)
        length = total + segments * reserve
        if length <= cap or length - bodies <= cap:
            break

    kept = [p for p in range(n) if not dropped[p]]
    bodies_text = [blocks[p].body for p in kept]
    if total + segments * reserve > cap:
        level = _water_level([len(b) for b in bodies_text], cap - (total + segments * reserve - bodies))
        bodies_text = [shorten(b, level) for b in bodies_text]
    body_of = dict(zip(kept, bodies_text))

    items: list[str] = []
    for gone, group in groupby(range(n), key=dropped.__getitem__):
        run = list(group)
        if not gone:
            items.extend(prefixes[p] + body_of[p] for p in run)
            continue
        first, last = blocks[run[0]].first, blocks[run[-1]].last
        items.append(_elision(first, last, last - first + 1, sum(tokens[p] for p in run)))
    text = "\n".join(items)
    if len(text) > cap:  # unreachable by construction; the budget is a hard promise
        text = shorten(text, cap)
    return text, sum(blocks[p].last - blocks[p].first + 1 for p in kept)


def render_trace(events: Sequence[Any] | None, *, budget_tokens: int = 50_000) -> RenderedTrace:
    """One attempt's trace events as text of at most `budget_tokens` estimated tokens.

    Never raises on odd events (they render as compact JSON or repr); raises ValueError
    for a budget below MIN_BUDGET_TOKENS, which cannot hold even the first and last step.
    """
    if isinstance(budget_tokens, bool) or not isinstance(budget_tokens, int) or budget_tokens < MIN_BUDGET_TOKENS:
        raise ValueError(
            f"budget_tokens must be an int >= {MIN_BUDGET_TOKENS} (room for the first and last step), "
            f"got {budget_tokens!r}"
        )
    events = list(events) if events else []
    if events:
        text, kept = _fit(_blocks(events), budget_tokens * CHARS_PER_TOKEN, len(events))
    else:
        text, kept = EMPTY_TEXT, 0
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return RenderedTrace(text=text, sha256=digest, tokens=estimate_tokens(text),
                         steps_total=len(events), steps_kept=kept, steps_elided=len(events) - kept)
