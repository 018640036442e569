"""The cost of a call, from pydantic's maintained price data (genai-prices), not a table of ours.

genai-prices knows Google's models, their cached-input rates, long-prompt tiers and dated price
changes. For a model it does not know, a user gives a price (`Price.parse("0.5,3")`: USD per
1M input and output tokens); without one, the cost is unknown, not zero: a dry run says so and
a budget refuses to start. promptTokenCount includes cached tokens, as genai-prices expects.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from genai_prices import Usage, calc_price
from pydantic import BaseModel

from rca.errors import ParameterError

PROVIDER = "google"
FREE_MODELS = frozenset({"heuristic"})  # the offline analyzer calls nothing
EXPECTED_OUTPUT_TOKENS = 700  # a typical answer, for estimates made before a call


class Price(BaseModel, frozen=True):
    """A user's own price for a model genai-prices does not know: USD per 1M tokens."""

    input: float
    output: float  # thinking tokens are billed as output

    @classmethod
    def parse(cls, text: str) -> Price:
        """`"0.5,3"`: input and output USD per 1M tokens."""
        try:
            value_in, value_out = (float(part) for part in text.split(","))
        except ValueError:
            raise ParameterError(f"price {text!r}: give INPUT,OUTPUT in USD per 1M tokens, e.g. 0.5,3") from None
        if value_in < 0 or value_out < 0:
            raise ParameterError(f"price {text!r}: prices cannot be negative")
        return cls(input=value_in, output=value_out)


@lru_cache(maxsize=64)
def price_known(model: str) -> bool:
    """Whether genai-prices (or rca, for the offline analyzer) knows what this model costs."""
    return model in FREE_MODELS or _calc(model, 1, 0, 0) is not None


def _calc(model: str, input_tokens: int, output_tokens: int, cached_tokens: int,
          when: datetime | None = None) -> float | None:
    try:
        result = calc_price(Usage(input_tokens=input_tokens, output_tokens=output_tokens,
                                  cache_read_tokens=cached_tokens),
                            model.removeprefix("models/"), provider_id=PROVIDER, genai_request_timestamp=when)
    except LookupError:
        return None
    return float(result.total_price)


def call_cost(model: str, *, input_tokens: int, output_tokens: int, thinking_tokens: int = 0, cached_tokens: int = 0,
              price: Price | None = None) -> float | None:
    """USD for one call; None when the price is unknown (no user price for an unknown model)."""
    if model in FREE_MODELS:
        return 0.0
    if price is not None and not price_known(model):
        fresh = max(input_tokens - cached_tokens, 0) + cached_tokens  # no cached rate given: billed in full
        return (fresh * price.input + (output_tokens + thinking_tokens) * price.output) / 1_000_000
    return _calc(model, input_tokens, output_tokens + thinking_tokens, min(cached_tokens, input_tokens))


def estimate_cost(model: str, input_tokens: int, price: Price | None = None) -> float | None:
    """Expected USD before a call: the input estimate plus a typical answer; None when unknown."""
    return call_cost(model, input_tokens=input_tokens, output_tokens=EXPECTED_OUTPUT_TOKENS, price=price)
