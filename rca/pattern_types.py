"""What pattern finding reads and returns: one compact summary per analyzed failure, and patterns.

Both groupings (rca.patterns_offline, rca.synthesis) read the same summaries, built from the
per-failure answers alone (never the traces), so a pattern costs a few hundred tokens per
failure and the stored inputs hash changes only when an answer does.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from functools import cached_property
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

EXPLANATION_CHARS, FIX_CHARS, SIGNATURE_CHARS, SYMBOL_CHARS, MAX_SYMBOLS = 500, 300, 160, 80, 5
# Categories whose causes lie outside the agent: the environment or the harness, not a decision it made.
_OUTSIDE = re.compile(r"(?i)infrastructure|harness|environment|external")

_EXCEPTION = re.compile(r"^(?:E\s+)?(?:FAILED \S+ - )?((?:[\w.]+\.)?[A-Z]\w*(?:Error|Exception|Exceeded|Exhausted)\b.*)$",
                        re.MULTILINE)
_BANNER = re.compile(r"\s*(?:-{3}|={3})")  # "--- Validation Failed for: ... ---": a heading, not the verdict
_VERDICT = re.compile(r"(?i)\b(?:failed|expected|does not|error|invalid|not found|exhausted|unavailable)\b")
_MASKS = (  # the parts of an error line that differ between failures of one cause
    (re.compile(r"'[^'\n]*'"), "'…'"), (re.compile(r'"[^"\n]*"'), '"…"'),
    (re.compile(r"(?:/[\w.\-]+){2,}/?"), "/…"), (re.compile(r"\b0x[0-9a-fA-F]+\b|\b[0-9a-f]{8,}\b"), "#"),
    (re.compile(r"\d{4,}"), "N"),
)


class FailureSummary(BaseModel):
    """One analyzed failure as pattern finding sees it: the answer's gist and an error signature."""

    model_config = ConfigDict(frozen=True)
    id: int
    category: str
    explanation: str
    fix: str
    agent: str | None = None
    failing_tool: str | None = None
    symbols: tuple[str, ...] = ()
    error: str | None = None  # the error's telling line with its values masked

    @cached_property
    def digest(self) -> str:
        """What a stored assignment was made from: a changed answer is a new failure to place."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


class Pattern(BaseModel):
    """One specific recurring root cause and the failures it explains."""

    name: str = Field(min_length=1)
    description: str
    fix: str
    category: str | None
    agent_caused: bool
    failure_ids: list[int]


class Grouping(BaseModel):
    """A grouping's result: patterns, the failures in none ("other"), and what it cost."""

    patterns: list[Pattern]
    other: list[int]
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    max_prompt_tokens: int = 0  # the largest single call's prompt, estimated as rca.render does
    notes: list[str] = []  # what a model's answer got wrong and how it was resolved


def outside_agent(category: str | None) -> bool:
    """Infrastructure and harness causes are kept apart from the agent's own."""
    return bool(category) and bool(_OUTSIDE.search(str(category)))


def error_signature(text: object) -> str | None:
    """The line of an error text that says what went wrong, with quoted values, paths and ids masked.

    Failures of one cause raise the same error about different names; the masked line is
    what they share (the names themselves are in the summary's symbols).
    """
    if not isinstance(text, str) or not text.strip():
        return None
    lines = [line.strip() for line in text.splitlines() if line.strip(" -=_*") and not _BANNER.match(line)]
    found = _EXCEPTION.search(text)
    line = found.group(1) if found else next((x for x in lines if _VERDICT.search(x)), lines[0] if lines else "")
    for pattern, mask in _MASKS:
        line = pattern.sub(mask, line)
    return line.strip(" -")[:SIGNATURE_CHARS] or None


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else []


def summarize(row: dict[str, Any]) -> FailureSummary:
    """One load_failures row (with its answer columns) as a summary."""
    explanation = str(row.get("root_cause_explanation") or "")[:EXPLANATION_CHARS]
    fix = str(row.get("fix") or "")[:FIX_CHARS]
    tools = _texts(row.get("tools_called"))  # the one the explanation blames, not every tool the fix lists
    failing = next((t for t in tools if re.search(rf"(?<![\w.]){re.escape(t)}(?!\w)", explanation)), None)
    agent = row.get("root_cause_agent")
    return FailureSummary(
        id=int(row["id"]), category=str(row["category"]), explanation=explanation, fix=fix,
        agent=agent if isinstance(agent, str) and agent else None, failing_tool=failing,
        symbols=tuple(dict.fromkeys(s[:SYMBOL_CHARS] for s in _texts(row.get("hallucinated_symbols"))))[:MAX_SYMBOLS],
        error=error_signature(row.get("raw_error")),
    )


READ = ("id", "category", "root_cause_explanation", "fix", "tools_called", "root_cause_agent",
        "hallucinated_symbols", "raw_error")


def summaries(df: pd.DataFrame) -> list[FailureSummary]:
    """The analyzed rows of a load_failures frame (those with a category), in id order."""
    analyzed = df[df["category"].notna()] if "category" in df else df.iloc[0:0]
    return sorted((summarize(row) for row in analyzed[[c for c in READ if c in df]].to_dict("records")),
                  key=lambda s: s.id)


def inputs_hash(digests: Iterable[tuple[int, str]]) -> str:
    """One hash over the members' (id, answer digest) pairs, in id order: equal hashes, equal inputs."""
    return hashlib.sha256(json.dumps(sorted(digests)).encode()).hexdigest()[:16]
