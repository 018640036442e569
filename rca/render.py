"""A transcript's steps as compact, budgeted, secret-free text: the `<trace>` the model reads.

Pure functions, no I/O. The text is what the model reads to find a root cause, so it keeps
the agent's decisions (its messages, tool calls and final answer) whole and every error,
and shrinks what is bulky and cheap to lose (tool outputs, file contents, page dumps)
until it fits a token budget that is never exceeded.

Text formats (stable: prompts and caches depend on them):

- a step:          `[7] workflow_solver: call read_file(path="src/x.py")`, `[8] read_file -> ...output...`,
                   `[9] workflow_solver: <text>`, `[3] planner (thought): ...`,
                   `[5] read_file -> (error) ...`, `[6] error: ...`, `[2] init: ...`;
                   `[n]` is the step's 0-based index, the number an answer cites.
- task / answer:   a step that repeats the task or the final answer says so instead of repeating it:
                   `[0] user: (the task, shown in <task>)`, `[9] solver (final answer): (shown in <final_answer>)`.
- identical run:   `[7] (×5, steps 7–11) ...`: five consecutive identical steps.
- cut body:        `… [cut 48,213 chars] …` on its own line between head and tail.
- elided steps:    `[… steps 14–87 elided: 74 steps, ~61,000 tokens …]` (`step 14` when one).
- binary payload:  `<binary 812 bytes>`; secrets: `[REDACTED:<kind>]` (see rca.redact).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import groupby, zip_longest
from typing import Any

import pydantic

from rca.formats._text import compact_json, text_of
from rca.redact import redact
from rca.transcript import Step, Transcript

__all__ = ["CHARS_PER_TOKEN", "MIN_BUDGET_TOKENS", "RenderedTrace", "estimate_tokens", "render_trace",
           "scrub_binary", "shorten"]

# Gemini's documented rule of thumb is ~4 characters per token for English text. Code and
# JSON run a little denser, so budgets should keep some headroom; an exact count would need
# a tokenizer call per render, and the budget only has to keep prompts in a safe range.
CHARS_PER_TOKEN = 4
MIN_BUDGET_TOKENS = 200  # below this not even the first and last step fit with their labels
MAX_OUTPUT_CHARS = 8_000  # one observation beyond this is cut to head + tail whatever the budget
MAX_NAME_CHARS = 60  # tool and agent names from odd input stay label-sized
EMPTY_TEXT = "(no trace steps recorded)"
OBSERVATION_FLOOR = 300  # a shrunk tool output keeps at least this much (its head and tail)
ERROR_FLOOR = 1_200  # an error keeps more: its message is the diagnosis's best evidence
DECISION_FLOOR = 200

_B64_RUN = re.compile(r"(?<![A-Za-z0-9+/_\-])[A-Za-z0-9+/_\-]{100,}={0,2}")
_BYTES_REPR = re.compile(r"""\bb'((?:[^'\\\n]|\\.){16,})'|\bb"((?:[^"\\\n]|\\.){16,})\"""")
_ESCAPE = re.compile(r"\\(?:x[0-9a-fA-F]{2}|.)")
_MIN_BLOB_ENTROPY = 4.5  # bits per character: random base64 has ~6, paths and identifiers ~4
_MIN_BLOB_SEGMENT = 24  # mean chars between slashes: base64 ~64, a path's folders ~10


def estimate_tokens(text: str) -> int:
    """Tokens `text` is taken to cost: ceil(len / CHARS_PER_TOKEN)."""
    return -(-len(text) // CHARS_PER_TOKEN)


class RenderedTrace(pydantic.BaseModel):
    """The rendered text and what it kept; `sha256` of `text` is a cache key."""

    model_config = pydantic.ConfigDict(frozen=True)

    text: str
    sha256: str
    tokens: int
    steps_total: int  # steps in the transcript
    steps_kept: int  # steps shown, counting each member of a collapsed identical run
    steps_elided: int  # steps replaced by elision markers (= total - kept)


# -- binary blobs -------------------------------------------------------------------------


def _binary(n: int) -> str:
    return f"<binary {n:,} bytes>"


def _entropy(text: str) -> float:
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _scrub_b64(m: re.Match[str]) -> str:
    """An opaque encoded blob by character set and entropy; never a path, identifier or digest."""
    run = m.group(0)
    if not (any(c.isdigit() for c in run) and any(c.isupper() for c in run) and any(c.islower() for c in run)):
        return run  # hex digests, identifiers, separators
    if len(run) / (run.count("/") + 1) < _MIN_BLOB_SEGMENT or _entropy(run) < _MIN_BLOB_ENTROPY:
        return run  # a path (many short folders) or a long name: words repeat, blobs do not
    return _binary(len(run.rstrip("=")) * 3 // 4)


def _scrub_bytes_repr(m: re.Match[str]) -> str:
    inner = m.group(1) if m.group(1) is not None else m.group(2)
    hexes = inner.count("\\x")
    if hexes < 4 or hexes * 16 < len(inner):
        return m.group(0)  # an ordinary short bytes literal such as b'hello world'
    return _binary(len(_ESCAPE.sub("_", inner)))


def scrub_binary(text: str) -> str:
    """`text` with bytes reprs and base64 blobs replaced by `<binary N bytes>`."""
    if "b'" in text or 'b"' in text:
        text = _BYTES_REPR.sub(_scrub_bytes_repr, text)
    return _B64_RUN.sub(_scrub_b64, text)


# -- steps as lines -----------------------------------------------------------------------


def _name(value: Any, default: str = "?") -> str:
    if value is None or value == "":
        return default
    name = " ".join(str(value).split())
    return name if len(name) <= MAX_NAME_CHARS else name[: MAX_NAME_CHARS - 1] + "…"


def _args(args: Any) -> str:
    if isinstance(args, Mapping):
        return ", ".join(f"{k}={compact_json(v)}" for k, v in args.items() if v is not None)
    return text_of(args)


def _same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and a.strip() == b.strip()  # type: ignore[union-attr]


def step_line(step: Step, transcript: Transcript) -> tuple[str, str]:
    """(head, body) of one step: the head is kept whole, the body may be cut."""
    who = _name(step.agent or step.role, "agent")
    if step.kind == "tool_call":
        return f"{who}: call {_name(step.tool_name)}", f"({_args(step.tool_args)})"
    if step.kind == "tool_result":
        return f"{_name(step.tool_name)} -> {'(error) ' if step.is_error else ''}", step.text
    if step.kind == "final_answer":
        shown = _same(step.text, transcript.final_answer)
        return f"{who} (final answer): ", "(shown in <final_answer>)" if shown else step.text
    if step.kind == "thought":
        return f"{who} (thought): ", step.text
    if step.kind == "error":
        return (f"{_name(step.agent)} error: " if step.agent else "error: "), step.text
    if step.kind == "system":
        label = _name(step.role, "system")
        return (f"{_name(step.agent)} {label}: " if step.agent else f"{label}: "), step.text
    if step.role == "user" and _same(step.text, transcript.task):
        return f"{who}: ", "(the task, shown in <task>)"
    return f"{who}: ", step.text


@dataclass(slots=True)
class _Block:
    first: int  # index of the first step
    last: int  # index of the last step (> first for a collapsed run)
    head: str
    body: str
    rank: int  # 0 observation, 1 thought, 2 decision; errors rank 3: what survives longest
    floor: int  # how short the body may be cut

    def prefix(self) -> str:
        if self.last == self.first:
            return f"[{self.first}] {self.head}"
        return f"[{self.first}] (×{self.last - self.first + 1}, steps {self.first}–{self.last}) {self.head}"


def _rank(step: Step) -> tuple[int, int]:
    if step.is_error or step.kind == "error":
        return 3, ERROR_FLOOR
    if step.is_decision:
        return 2, DECISION_FLOOR
    return (1, OBSERVATION_FLOOR) if step.kind == "thought" else (0, OBSERVATION_FLOOR)


def _blocks(transcript: Transcript) -> list[_Block]:
    """One block per step, redacted and scrubbed; identical consecutive steps merged."""
    blocks: list[_Block] = []
    for step in transcript.steps:
        head, body = step_line(step, transcript)
        head, body = redact(head), scrub_binary(redact(body))
        rank, floor = _rank(step)
        prev = blocks[-1] if blocks else None
        if prev is not None and prev.head == head and prev.body == body:
            prev.last = step.index
        else:
            blocks.append(_Block(step.index, step.index, head, body, rank, floor))
    for block in blocks:  # cut after comparing, so only truly identical steps merge
        if block.rank in (0, 1):
            block.body = shorten(block.body, MAX_OUTPUT_CHARS)
    return blocks


# -- budget -------------------------------------------------------------------------------


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


class _Layout:
    """The blocks being fitted, with their total length kept up to date."""

    def __init__(self, blocks: list[_Block], n_steps: int) -> None:
        self.blocks = blocks
        self.prefixes = [b.prefix() for b in blocks]
        self.dropped = [False] * len(blocks)
        self.tokens = [estimate_tokens(p + b.body) for p, b in zip(self.prefixes, blocks)]
        self.reserve = len(_elision(n_steps, n_steps + 1, n_steps, sum(self.tokens))) + 1  # >= any marker
        self.segments = 0
        self.total = sum(len(p) + len(b.body) for p, b in zip(self.prefixes, blocks)) + len(blocks) - 1

    def length(self) -> int:
        return self.total + self.segments * self.reserve

    def shrink(self, ranks: set[int], cap: int) -> None:
        """Cut the bodies of blocks of these ranks by one common cap, each no lower than its floor."""
        kept = [p for p, b in enumerate(self.blocks) if b.rank in ranks and not self.dropped[p]]
        excess = self.length() - cap
        if excess <= 0 or not kept:
            return
        lengths = [len(self.blocks[p].body) for p in kept]
        level = _water_level(lengths, sum(lengths) - excess)
        for p in kept:
            block = self.blocks[p]
            limit = max(level, block.floor)
            if len(block.body) > limit:
                new = shorten(block.body, limit)
                self.total += len(new) - len(block.body)
                block.body = new

    def drop(self, ranks: set[int], cap: int) -> None:
        """Drop whole blocks of these ranks, middle-out, never the first or last, until it fits."""
        n = len(self.blocks)
        for p in _middle_out([p for p in range(1, n - 1) if self.blocks[p].rank in ranks]):
            if self.length() <= cap:
                return
            left, right = self.dropped[p - 1], self.dropped[p + 1]
            self.segments += -1 if left and right else 0 if left or right else 1
            self.dropped[p] = True
            self.total -= len(self.prefixes[p]) + len(self.blocks[p].body) + 1

    def text(self) -> tuple[str, int]:
        items: list[str] = []
        for gone, group in groupby(range(len(self.blocks)), key=self.dropped.__getitem__):
            run = list(group)
            if not gone:
                items.extend(self.prefixes[p] + self.blocks[p].body for p in run)
                continue
            first, last = self.blocks[run[0]].first, self.blocks[run[-1]].last
            items.append(_elision(first, last, last - first + 1, sum(self.tokens[p] for p in run)))
        kept = sum(b.last - b.first + 1 for b, gone in zip(self.blocks, self.dropped) if not gone)
        return "\n".join(items), kept


def _fit(blocks: list[_Block], cap: int, n_steps: int) -> tuple[str, int]:
    """The blocks as text of at most `cap` chars, and how many steps it shows.

    In order, until it fits: shrink tool outputs to their floor, then thoughts, then errors;
    drop whole tool outputs, then thoughts (middle-out); only then shrink and drop the
    agent's own decisions. Errors, the first and the last step are never dropped.
    """
    layout = _Layout(blocks, n_steps)
    for action, ranks in ((layout.shrink, {0}), (layout.shrink, {0, 1}), (layout.shrink, {0, 1, 3}),
                          (layout.drop, {0}), (layout.drop, {1}), (layout.shrink, {2}), (layout.drop, {2})):
        if layout.length() <= cap:
            break
        action(ranks, cap)
    if layout.length() > cap:  # only errors and the ends are left: cut them to fit
        for block in blocks:
            block.floor = 0
        layout.shrink({0, 1, 2, 3}, cap)
    text, kept = layout.text()
    if len(text) > cap:  # markers larger than foreseen; the budget is a hard promise
        text = shorten(text, cap)
    return text, kept


def render_trace(transcript: Transcript, *, budget_tokens: int = 50_000) -> RenderedTrace:
    """A transcript's steps as text of at most `budget_tokens` estimated tokens.

    Raises ValueError for a budget below MIN_BUDGET_TOKENS, which cannot hold even the
    first and last step.
    """
    if isinstance(budget_tokens, bool) or not isinstance(budget_tokens, int) or budget_tokens < MIN_BUDGET_TOKENS:
        raise ValueError(
            f"budget_tokens must be an int >= {MIN_BUDGET_TOKENS} (room for the first and last step), "
            f"got {budget_tokens!r}"
        )
    n = len(transcript.steps)
    if n:
        text, kept = _fit(_blocks(transcript), budget_tokens * CHARS_PER_TOKEN, n)
    else:
        text, kept = EMPTY_TEXT, 0
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return RenderedTrace(text=text, sha256=digest, tokens=estimate_tokens(text),
                         steps_total=n, steps_kept=kept, steps_elided=n - kept)
