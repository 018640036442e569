"""Answers as DataFrame columns, and the check of their evidence against the trace. Pure."""

from __future__ import annotations

import json
import re
from typing import Any

import pandas as pd

# Result columns that analyze_failures adds and load_failures carries for analyzed rows.
# `explanation` is taken by the harness (raw_error cut short), hence root_cause_explanation.
ANSWER_COLUMNS = {
    "root_cause_category": "category",
    "explanation": "root_cause_explanation",
    "expected_behavior": "expected_behavior",
    "actual_behavior": "actual_behavior",
    "root_cause_step": "root_cause_step",
    "candidate_steps": "candidate_steps",
    "root_cause_agent": "root_cause_agent",
    "fix": "fix",
    "evidence": "evidence",
    "used_tools": "used_tools",
    "tools_called": "tools_called",
    "received_useful_output": "received_useful_output",
    "hallucinated_symbols": "hallucinated_symbols",
    "schema_validation_failed": "schema_validation_failed",
}

_SPACE = re.compile(r"\s+")


def _normalized(text: str) -> str:
    return _SPACE.sub(" ", text).strip().casefold()


def verify_evidence(evidence: list[dict[str, Any]], shown: str) -> int:
    """How many quotes occur in what the model was shown (whitespace and case folded)."""
    haystack = _normalized(shown)
    quotes = (_normalized(str(item.get("quote", ""))) for item in evidence)
    return sum(1 for quote in quotes if quote and quote.strip(".… ") and quote.strip(".… ") in haystack)


def answer_columns(answer: dict[str, Any] | None) -> dict[str, Any]:
    """One row's result columns from an answer dict (None: all missing)."""
    answer = answer or {}
    return {column: answer.get(field) for field, column in ANSWER_COLUMNS.items()}


def expand_analysis(frame: pd.DataFrame) -> pd.DataFrame:
    """Add the answer columns, parsed from llm_analysis, to a failures frame."""
    parsed = frame["llm_analysis"].map(_parse) if "llm_analysis" in frame else pd.Series([None] * len(frame), index=frame.index)
    columns = pd.DataFrame([answer_columns(a) for a in parsed], index=frame.index, columns=list(ANSWER_COLUMNS.values()))
    # Hand-made caches may hold a category but no parseable JSON: keep their llm_root_cause.
    if "llm_root_cause" in frame:
        columns["category"] = columns["category"].where(columns["category"].notna(), frame["llm_root_cause"])
    return pd.concat([frame.drop(columns=[c for c in columns if c in frame]), columns], axis=1)


def _parse(value: object) -> dict[str, Any] | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        data = json.loads(value)
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def reason_of(error: str) -> str:
    """What kind of failure an analysis error is: its leading phrase, without the row's details."""
    head = error.strip().splitlines()[0] if error.strip() else "unknown error"
    for sep in (": ", " ("):
        if 0 < head.find(sep) <= 60:
            return head[: head.find(sep)]
    return head[:60]


def failure_summary(errors: pd.Series) -> str:
    """Rows that ended without an answer, grouped by reason, most frequent first, each with an example."""
    errors = errors.dropna()
    if errors.empty:
        return ""
    reasons = errors.map(reason_of)
    lines = [f"{len(errors)} row{'s' * (len(errors) != 1)} without an answer:"]
    for reason, n in reasons.value_counts().items():
        example = errors[reasons == reason].iloc[0]
        lines.append(f"  {n:>5}  {reason}" + (f"  (e.g. {example[:160]})" if example != reason else ""))
    return "\n".join(lines)
