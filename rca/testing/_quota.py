"""A fake key's quotas: its limits, and the sliding windows that decide when a call is over them."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

Quota = Literal["rpm", "tpm", "rpd"]


@dataclass(frozen=True)
class Limits:
    """A key's quota: requests and input tokens per window, requests per day (None = unlimited)."""

    rpm: int | None = None
    tpm: int | None = None
    rpd: int | None = None


class Window:
    """A key's sliding windows: (arrival, input tokens) over ``window_s``, arrivals over ``day_s``."""

    def __init__(self) -> None:
        self.recent: deque[tuple[float, int]] = deque()
        self.tokens = 0
        self.daily: deque[float] = deque()

    def admit(self, lim: Limits, tokens: int, now: float, window: float, day: float) -> tuple[Quota, int, float] | None:
        """Count the request and return None, or return (quota, limit, seconds until it would fit)."""
        while self.recent and self.recent[0][0] <= now - window:
            self.tokens -= self.recent.popleft()[1]
        while self.daily and self.daily[0] <= now - day:
            self.daily.popleft()
        if lim.rpd is not None and len(self.daily) >= lim.rpd:
            oldest = self.daily[len(self.daily) - lim.rpd] if lim.rpd else now
            return "rpd", lim.rpd, oldest + day - now
        if lim.rpm is not None and len(self.recent) >= lim.rpm:
            oldest = self.recent[len(self.recent) - lim.rpm][0] if lim.rpm else now
            return "rpm", lim.rpm, oldest + window - now
        if lim.tpm is not None and self.tokens + tokens > lim.tpm:
            wait, freed = window, 0
            if tokens <= lim.tpm:
                for arrival, used in self.recent:
                    freed += used
                    if self.tokens - freed + tokens <= lim.tpm:
                        wait = arrival + window - now
                        break
            return "tpm", lim.tpm, wait
        self.recent.append((now, tokens))
        self.tokens += tokens
        self.daily.append(now)
        return None
