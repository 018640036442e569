"""Analyzer backends: each turns one AnalysisRequest into one AnalysisOutcome.

A backend only answers; choosing rows, caching, budgets and writing results are
rca.analyze's job, so a new backend is one small class.
"""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from rca.render import RenderedTrace
from rca.schema import Taxonomy


class AnalysisRequest(BaseModel):
    """Everything a backend may read about one failed attempt."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    failure_id: int
    benchmark_name: str
    suite: str | None
    error_text: str | None
    events: list[dict[str, Any]]
    rendered: RenderedTrace
    taxonomy: Taxonomy


class AnalysisOutcome(BaseModel):
    """One backend answer: a validated answer, or an error with whatever raw text came back."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    answer: BaseModel | None = None
    error: str | None = None
    raw_text: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0


class Backend(Protocol):
    name: str
    model: str

    async def analyze(self, request: AnalysisRequest) -> AnalysisOutcome: ...
