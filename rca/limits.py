"""A key's limits: configured, named by the server, or learned; a pace per window for each.

A key's limits are configured (RCA_KEY_LIMITS, or KeyPool(limits=...)), told by the server
(a 429's QuotaFailure carries the quota's value, for that key and as a first guess for the
pool's others), or learned: additive increase while calls succeed with the limit binding,
multiplicative decrease on a 429 our own pace does not explain. rca.scheduler keeps the
books against these paces.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

LIMITS_ENV_VAR = "RCA_KEY_LIMITS"
DECREASE = 0.8  # multiplicative decrease on a 429 that our own pace does not explain
INCREASE_SHARE = 0.05  # additive increase, once per window in which the limit bound: this share of the limit

Metric = Literal["requests", "tokens"]


@dataclass(frozen=True)
class KeyLimits:
    """A key's quota per window (default a minute): requests and input tokens; None = unknown."""

    rpm: float | None = None
    tpm: float | None = None

    @classmethod
    def parse(cls, text: str) -> KeyLimits:
        """``"rpm=15,tpm=250000"`` (either part may be left out), as in RCA_KEY_LIMITS."""
        values: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, _, value = part.partition("=")
            name = name.strip().lower()
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if name not in ("rpm", "tpm") or not number > 0 or name in values:
                raise ValueError(f"bad key limits {text!r}: expected e.g. 'rpm=15,tpm=250000' (positive numbers)")
            values[name] = number
        return cls(**values)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> KeyLimits | None:
        text = env.get(LIMITS_ENV_VAR, "").strip()
        return cls.parse(text) if text else None


@dataclass(frozen=True)
class QuotaHint:
    """What a 429 said about the quota it hit: which one, and its value when the server gave it."""

    metric: Metric | None = None
    value: float | None = None


class Limit:
    """One paced quantity (requests or tokens per window) and how it is learned."""

    def __init__(self, configured: float | None) -> None:
        self.value = configured  # the pace; None: not paced, nothing known yet
        self.cap = configured  # never raised above: configured, or the value a 429 named
        self.source = "configured" if configured is not None else "unknown"
        self.step = max(1.0, INCREASE_SHARE * configured) if configured is not None else 1.0
        self.decreases = 0
        self.changed_at = -math.inf  # a 429 for a call sent before this is old news about an older pace
        self.increased_at = -math.inf

    def room(self) -> float:
        return math.inf if self.value is None else self.value

    def calls(self) -> float:
        """Whole calls per window (at least one), or infinity when not paced."""
        return math.inf if self.value is None else max(1, math.floor(self.value))

    def increase(self, sent_at: float, window_s: float) -> None:
        """One step up per window in which a call that filled the window succeeded (none before the last change)."""
        if self.value is None or sent_at < max(self.changed_at, self.increased_at + window_s):
            return
        self.value += self.step
        if self.cap is not None:
            self.value = min(self.value, self.cap)
        self.increased_at = sent_at

    def told(self, value: float, now: float) -> bool:
        """The server named the quota; True when our pace was above it (the 429 is explained)."""
        borrowed = self.source == "another key"  # this key's own quota replaces the one borrowed
        self.cap = value if self.cap is None or borrowed else min(self.cap, value)
        if borrowed:
            self.source = "server"
        if self.value is not None and self.value <= value:
            return False
        self.value, self.step, self.changed_at = value, max(1.0, INCREASE_SHARE * value), now
        self.increased_at = now
        if self.source != "configured":
            self.source = "server"
        return True

    def adopt(self, value: float) -> None:
        """Another key's quota, as the server named it: this one's pace and ceiling until its own is named
        (the keys of one pool mostly share a tier, as RCA_KEY_LIMITS assumes; one with a higher quota
        is under-used, where climbing past the pool's would cost each key a 429)."""
        if self.value is None:
            self.value = self.cap = value
            self.step, self.source = max(1.0, INCREASE_SHARE * value), "another key"

    def decrease(self, observed: float, now: float) -> None:
        base = max(1.0, observed if self.value is None else min(self.value, observed))
        self.value = max(1.0, DECREASE * base)
        self.step = max(1.0, INCREASE_SHARE * base)
        self.decreases += 1
        self.changed_at = self.increased_at = now
        if self.source == "unknown":
            self.source = "learned"
