"""Evidence for the offline analyzer: one-line quotes that are verbatim in what the model is shown.

A quote comes from a step's text as rendered (rca.backends.trace_facts keeps texts that
way), from <task> or <final_answer> for the steps shown there, or from the error text; it
is never a secret (rca.redact) or a binary blob the renderer would have replaced.
"""

from __future__ import annotations

import re
from typing import Any, Union

from rca.backends.trace_facts import TraceFacts
from rca.redact import redact
from rca.render import scrub_binary

MAX_QUOTE = 200
MAX_QUOTES = 3
_SCAN = 20_000  # error signs sit at the start or end of a long text
_SHOWN = 3_000  # the rendered trace keeps about this much of each end of a long step
_SUBSTANCE = re.compile(r"^[ \t]*(?!```)[^\s{}\[\]()][^\n]{2,}", re.MULTILINE)

Needle = tuple[Union["re.Pattern[str]", str, None], Union[int, None]]  # what to quote (None: a line), at which step


def quote_at(text: str, start: int, end: int) -> str | None:
    """The line around text[start:end], cut to MAX_QUOTE chars, if it is safe to show as is."""
    lo, hi = text.rfind("\n", 0, start) + 1, text.find("\n", end)
    hi = len(text) if hi < 0 else hi
    if hi - lo > MAX_QUOTE:  # a window around the match, cut at spaces where one is near
        line_lo, line_hi = lo, hi
        lo = max(lo, start - (MAX_QUOTE - min(end - start, MAX_QUOTE)) // 2)
        hi = min(hi, lo + MAX_QUOTE)
        if lo > line_lo and 0 <= (gap := text.find(" ", lo, min(start, lo + 30))):
            lo = gap + 1
        if hi < line_hi and (gap := text.rfind(" ", max(end, hi - 30), hi)) >= 0:
            hi = gap
    quote = text[lo:hi].strip()
    return quote if len(quote) >= 3 and redact(quote) == quote and scrub_binary(quote) == quote else None


def span(text: str, needle: re.Pattern[str] | str | None) -> tuple[int, int] | None:
    """Where `needle` occurs, preferring the ends of a long text: the rendered trace keeps those."""
    if needle is None:  # the first line with some substance
        m = _SUBSTANCE.search(text, 0, _SCAN)
        return m.span() if m else None
    n = len(text)
    for lo, hi in ((0, _SHOWN), (n - _SHOWN, n), (0, _SCAN), (n - _SCAN, n)):
        lo = max(lo, 0)
        if isinstance(needle, str):
            if needle and (at := text.find(needle, lo, hi)) >= 0:
                return at, at + len(needle)
        elif m := needle.search(text, lo, hi):
            return m.span()
    return None


def find(trace: TraceFacts, needle: re.Pattern[str] | str | None, step: int | None) -> tuple[int, str] | None:
    """A one-line quote of `needle` at `step` (anywhere but the task if None), latest first."""
    for s, text in reversed(trace.texts):
        if (s != step) if step is not None else (s in trace.prompt_steps):
            continue
        if (where := span(text, needle)) and (quote := quote_at(text, *where)):
            return s, quote
    return None


def evidence(trace: TraceFacts, needles: list[Needle], error: str,
             fallback: tuple[re.Pattern[str], ...]) -> list[dict[str, Any]]:
    """Up to three distinct quotes for the needles; with none in the trace, the error text's best line
    (by the needles' own patterns, then `fallback`), which belongs to no step."""
    quotes: list[dict[str, Any]] = []
    for needle, step in needles:
        hit = find(trace, needle, step) if needle != "" else None
        if hit and all(q["quote"] != hit[1] for q in quotes):
            quotes.append({"step": hit[0], "quote": hit[1]})
    if not quotes and error:
        patterns = [*(n for n, _ in needles if isinstance(n, re.Pattern)), *fallback]
        pattern = next((p for p in patterns if p.search(error)), None)
        if (where := span(error, pattern)) and (quote := quote_at(error, *where)):
            quotes.append({"step": None, "quote": quote})
    return quotes[:MAX_QUOTES]
