"""Analyzer backends: each turns one AnalysisRequest into one AnalysisOutcome.

A backend only answers; choosing rows, caching, budgets and writing results are
rca.analyze's job, so a new backend is one small class.
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from rca.prompt import user_prompt
from rca.render import RenderedTrace
from rca.schema import Taxonomy
from rca.transcript import Transcript


class AnalysisRequest(BaseModel):
    """Everything a backend may read about one failed attempt."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    failure_id: int
    transcript: Transcript
    rendered: RenderedTrace  # the transcript's steps within the token budget
    taxonomy: Taxonomy

    @property
    def error_text(self) -> str | None:
        return self.transcript.outcome.error

    @cached_property
    def prompt(self) -> str:
        """The per-attempt prompt (rca.prompt.user_prompt), built once: estimates and the call share it."""
        return user_prompt(self.transcript, self.rendered)

    @cached_property
    def prompt_hash(self) -> str:
        """The cache key of what the model reads: task, trace, final answer and error together."""
        return hashlib.sha256(self.prompt.encode("utf-8", "surrogatepass")).hexdigest()


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
    cost_usd: float | None = 0.0  # None: the model's price is unknown
    latency_s: float = 0.0


class Backend(Protocol):
    """What rca.analyze needs of a backend; registered by name in rca.backends.registry.

    Two hooks are optional (rca.analyze calls them when a backend has them), so a backend
    without a model or a taxonomy of its own implements neither:

    - `check_taxonomy(taxonomy) -> None`: raise InputError when it cannot answer in this
      taxonomy; called once, before any row.
    - `async check_model() -> None`: raise UnknownModel when the API does not know the
      model; called once, before the first uncached row.
    """

    name: str
    model: str

    async def analyze(self, request: AnalysisRequest) -> AnalysisOutcome: ...
