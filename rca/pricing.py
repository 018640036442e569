"""Prices per model, in one place, and the cost of a call from its token counts.

USD per 1M tokens, list prices for prompts under 200k tokens, as of the table's date.
They drift: check https://ai.google.dev/gemini-api/docs/pricing and edit here.
promptTokenCount includes cached tokens, which are billed at the cached rate.
"""

from __future__ import annotations

from pydantic import BaseModel

PRICES_AS_OF = "2026-11"
EXPECTED_OUTPUT_TOKENS = 700  # a typical answer, for estimates made before a call


class Price(BaseModel, frozen=True):
    input: float
    output: float  # thinking tokens are billed as output
    cached_input: float


PRICES: dict[str, Price] = {
    # the default model (rca.backends.gemini.DEFAULT_MODEL): its published list price as of PRICES_AS_OF
    "gemini-3.8-flash": Price(input=0.50, output=3.00, cached_input=0.05),
    "gemini-3.5-flash-lite": Price(input=0.10, output=0.40, cached_input=0.025),
    "gemini-3.5-flash": Price(input=0.30, output=2.50, cached_input=0.075),
    "gemini-2.5-flash-lite": Price(input=0.10, output=0.40, cached_input=0.025),
    "gemini-2.5-flash": Price(input=0.30, output=2.50, cached_input=0.075),
    "gemini-2.5-pro": Price(input=1.25, output=10.00, cached_input=0.31),
    "heuristic": Price(input=0.0, output=0.0, cached_input=0.0),
}


def price_of(model: str) -> Price | None:
    """The model's price; versioned names (models/x, x-001, x-preview-...) fall back to their base."""
    name = model.removeprefix("models/")
    while name:
        if name in PRICES:
            return PRICES[name]
        name = name.rpartition("-")[0]
    return None


def call_cost(model: str, *, input_tokens: int, output_tokens: int, thinking_tokens: int = 0, cached_tokens: int = 0) -> float:
    """USD for one call; 0.0 for a model with no known price (the report says so)."""
    price = price_of(model)
    if price is None:
        return 0.0
    fresh = max(input_tokens - cached_tokens, 0)
    total = fresh * price.input + cached_tokens * price.cached_input + (output_tokens + thinking_tokens) * price.output
    return total / 1_000_000


def estimate_cost(model: str, input_tokens: int) -> float:
    """Expected USD before a call: the input estimate plus a typical answer."""
    return call_cost(model, input_tokens=input_tokens, output_tokens=EXPECTED_OUTPUT_TOKENS)
