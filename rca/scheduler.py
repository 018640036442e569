"""Pacing calls to each key's rate limits: sliding-window budgets, AIMD learning, fair picking.

Why a bucket whose tokens come back exactly one window after they were spent, rather than
one that refills continuously: Gemini's quotas are "per minute". A continuously refilled
bucket either bursts past a sliding-window quota (capacity + refill over one window >
limit) or wastes its capacity of it, while returning each unit one window after use is
exactly what a sliding-window server allows and never more than a fixed-window or
refilling-bucket server does. A small margin covers the time a request takes to arrive.

What a key's limits are and how they are learned is rca.limits'; this module keeps the
books (what each key spent when, its cooldown, its calls in flight) and picks which waiting
call goes next. Everything here takes the time as an argument, so it is tested with a fake
clock; rca.keys drives it from asyncio.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from rca.limits import KeyLimits, Limit, QuotaHint

DEFAULT_WINDOW_S = 60.0
BINDING = 0.9  # a call "binds" when it leaves its window this full; only such successes raise the limit
OWN = 0.9  # a 429 when our own calls filled this share of the quota the server named is a timing slip, not a lower limit
SLIP = 0.1  # how much later than we date them the server may count our calls, as a share of the window
MARGIN_SHARE = 0.02  # a spent unit comes back this share of a window late: for the request's arrival jitter
FIRST_PROBE = 4  # while a key's request limit is unknown: calls in flight at first
PROBE_GROWTH = 0.5  # per success: x1.5 calls in flight per round trip, so the first 429 finds at most half a burst in flight
FOLLOW_PROBE = 1  # the pool's other keys start here: still well under their quota when the first key's 429 names it
RETIRE_AFTER = 8  # rounds of 429s with no answer between: a key with no quota left to wait for

_uses = itertools.count()  # orders keys by last use; times tie when several calls go at once


class Spend:
    """One call's use of a key's window: refunded on a 429, corrected to the real tokens on success."""

    __slots__ = ("at", "tokens", "live", "refunded", "open", "binding")

    def __init__(self, at: float, tokens: float, binding: tuple[bool, bool]) -> None:
        self.at, self.tokens, self.binding = at, tokens, binding
        self.live, self.refunded, self.open = True, False, True


class KeyBudget:
    """One key's sliding-window budget, cooldown and learned limits."""

    def __init__(self, limits: KeyLimits | None = None, *, window_s: float = DEFAULT_WINDOW_S,
                 margin_s: float | None = None, probe: float = FIRST_PROBE) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        limits = limits or KeyLimits()
        self.window_s = window_s
        self.span = window_s + (MARGIN_SHARE * window_s if margin_s is None else margin_s)
        self.requests, self.tokens = Limit(limits.rpm), Limit(limits.tpm)
        self._spent: deque[Spend] = deque()
        self._recent: deque[Spend] = deque()  # expired in our view over the last window: the server may lag us
        self.count, self.used = 0, 0.0  # live spends and their tokens
        self.cooldown_until = 0.0
        self._cooldown_s = window_s / 12
        self.last_used = -1
        self.calls = self.ok = self.rate_limited = self.busy = self.cooldowns = 0
        self.in_flight, self.probe = 0, float(probe)  # slow start until the request limit is known
        self.strikes, self.struck_at = 0, -math.inf  # rounds of 429s since the last answer; when the last began
        self.no_quota = False  # a 429 named a quota of 0

    # -- the window ----------------------------------------------------------------------

    def _expire(self, now: float) -> None:
        spent = self._spent
        while spent and spent[0].at + self.span <= now:
            gone = spent.popleft()
            gone.live = False
            self.count -= 1
            self.used -= gone.tokens
            self._recent.append(gone)
        recent = self._recent
        while recent and recent[0].at + 2 * self.span <= now:
            recent.popleft()

    def need(self, tokens: float) -> float:
        """Tokens a call is paced for: a call bigger than the whole budget waits for an empty window."""
        return min(float(tokens), self.tokens.room())

    def over(self, now: float) -> bool:
        """Whether a call granted but not yet sent should stay home: the key rests after a 429 that came
        back since, or a limit named since leaves the window fuller than its pace."""
        self._expire(now)
        return (now < self.cooldown_until or self.count > self.requests.calls()
                or self.used > self.tokens.room() + 1e-9)

    def probing(self) -> bool:
        """Request limit unknown and as many calls in flight as the probe allows: wait for an answer."""
        return self.requests.value is None and self.in_flight >= self.probe

    def open(self, now: float) -> bool:
        """Whether a call of any size could go now: not cooling, not probing, room for one more call."""
        self._expire(now)
        return now >= self.cooldown_until and not self.probing() and self.count + 1 <= self.requests.calls()

    def fits(self, now: float, tokens: float) -> bool:
        return self.open(now) and self.used + self.need(tokens) <= self.tokens.room()

    def ready_at(self, now: float, tokens: float) -> float:
        """The earliest time a call of ``tokens`` fits, given what is spent now."""
        self._expire(now)
        if self.probing():
            return math.inf  # until an answer comes back
        at = max(now, self.cooldown_until)
        excess_calls = self.count + 1 - self.requests.calls()
        excess_tokens = self.used + self.need(tokens) - self.tokens.room()
        for spend in self._spent:  # oldest first: each one's expiry frees one call and its tokens
            if excess_calls <= 0 and excess_tokens <= 1e-9:
                break
            at = max(at, spend.at + self.span)
            excess_calls -= 1
            excess_tokens -= spend.tokens
        return at

    def usage_at(self, when: float) -> tuple[int, float]:
        """Calls and tokens still in the window at ``when`` (spends after now not included)."""
        calls, tokens = self.count, self.used
        for spend in self._spent:
            if spend.at + self.span > when:
                break
            calls, tokens = calls - 1, tokens - spend.tokens
        return calls, tokens

    def next_change(self, now: float) -> float | None:
        """When the budget next grows by itself: the oldest spend expires or a cooldown ends."""
        self._expire(now)
        times = [t for t in (self.cooldown_until, self._spent[0].at + self.span if self._spent else None)
                 if t is not None and t > now]
        return min(times, default=None)

    def spend(self, now: float, tokens: float) -> Spend:
        self._expire(now)
        need = self.need(tokens)
        binding = (self.count + 1 >= BINDING * self.requests.calls(),  # whole calls: a pace of 1.6 sends 1
                   self.used + need >= BINDING * self.tokens.room())
        spend = Spend(now, need, binding)
        self._spent.append(spend)
        self.count += 1
        self.used += need
        self.last_used = next(_uses)
        self.calls += 1
        self.in_flight += 1
        return spend

    def sent(self, spend: Spend, now: float) -> None:
        """The call left just now: its units come back one window from now, not from when it was granted.

        A burst granted at once leaves one by one as the event loop gets to it, and the server
        counts each from its arrival; dating them from the grant would free them too soon.
        """
        if spend.refunded:
            return
        if spend.live:
            self._spent.remove(spend)
        else:  # granted more than a window ago and only now sent: count it again
            self.count += 1
            self.used += spend.tokens
            spend.live = True
        spend.at = now  # every spend is dated at or before now, so appending keeps the window in order
        self._spent.append(spend)

    def refund(self, spend: Spend) -> None:
        """The server did not count the call (a 429): give its units back."""
        spend.refunded = True
        if spend.live:
            self._spent.remove(spend)
            spend.live = False
            self.count -= 1
            self.used -= spend.tokens

    # -- outcomes --------------------------------------------------------------------------

    def finished(self, spend: Spend) -> None:
        """The call is over, however it ended: it no longer counts as in flight."""
        if spend.open:
            spend.open = False
            self.in_flight -= 1

    def succeeded(self, spend: Spend, used_tokens: float | None = None) -> None:
        """Correct the window to the tokens really used; raise binding limits a little."""
        self.finished(spend)
        if self.requests.value is None:
            self.probe += PROBE_GROWTH  # grows the calls in flight each round trip, until the first 429
        self.ok += 1
        self.strikes = 0
        self._cooldown_s = self.window_s / 12
        if used_tokens is not None and spend.live:
            self.used += used_tokens - spend.tokens
            spend.tokens = float(used_tokens)
        if spend.binding[0]:
            self.requests.increase(spend.at, self.window_s)
        if spend.binding[1]:
            self.tokens.increase(spend.at, self.window_s)

    def rate_limited_by(self, now: float, spend: Spend | None, retry_after: float | None, hint: QuotaHint) -> None:
        """A 429: refund the call, learn from it, and rest the key until the server says it may be used."""
        self.rate_limited += 1
        self.cooldowns += 1
        sent = now
        if spend is not None:
            self.finished(spend)
            sent = spend.at
        if sent >= self.struck_at:  # sent after the last round's 429 came back: a new round, not the same burst
            self.strikes, self.struck_at = self.strikes + 1, now
        if hint.value == 0:  # no wait will help (hopeless); a pace of 0 would be no pace at all
            self.no_quota, hint = True, QuotaHint(hint.metric)
        # Our calls the server may still have counted when it said no: those within a window of this
        # one, reaching a little further back, as the server may see them arrive later than we sent them.
        since = sent - self.span - SLIP * self.window_s
        calls = tokens = 0.0
        for earlier in itertools.chain(self._recent, self._spent):
            if earlier is spend:
                break
            if earlier.at >= since and not earlier.refunded:
                calls, tokens = calls + 1, tokens + earlier.tokens
        if spend is not None:
            tokens += spend.tokens
            self.refund(spend)
        limit, observed = (self.tokens, tokens) if hint.metric == "tokens" else (self.requests, calls)
        if sent >= limit.changed_at:  # one reaction per pace: the calls sent before it tell nothing new
            explained = hint.value is not None and (limit.told(hint.value, now) or observed >= OWN * hint.value - 1)
            if not explained:  # someone else uses this quota too, or it is lower than we thought
                limit.decrease(observed, now)
        wait = retry_after if retry_after is not None else self._cooldown_s
        self._cooldown_s = min(self._cooldown_s * 2, 5 * self.window_s)
        self.cooldown_until = max(self.cooldown_until, now + max(wait, 0.0))

    def adopt(self, hint: QuotaHint) -> None:
        """A quota the server named for another key of the pool (keys of one pool mostly share a tier):
        paced to it from the start instead of probing into the same 429s."""
        if hint.metric is not None and hint.value:
            (self.tokens if hint.metric == "tokens" else self.requests).adopt(hint.value)

    def turned_away(self, spend: Spend | None) -> None:
        """A 429 that names no quota (the service short of capacity): the call did not count, and it says
        nothing about this key's limits, so no cooldown and no lower pace; the call itself backs off."""
        self.busy += 1
        if spend is not None:
            self.finished(spend)
            self.refund(spend)

    def hopeless(self) -> str | None:
        """Why no wait will make this key answer, or None while one may.

        Rounds, not 429s: the calls of one burst all come back 429 at once, a healthy key's too, while
        limits are being learned; a round is a call sent after the previous round's 429 came back.
        """
        if self.no_quota:
            return "the API names a quota of 0 for it (a project without billing, or a model its tier lacks)"
        if self.strikes >= RETIRE_AFTER:
            return (f"{self.strikes} rounds of calls answered 429, each after the wait asked for, and none answered "
                    "(no billing, or its quota used up elsewhere?)")
        return None

    def describe(self) -> dict[str, object]:
        def show(limit: Limit) -> object:
            return None if limit.value is None else round(limit.value, 1)

        return {"rpm": show(self.requests), "rpm_source": self.requests.source,
                "tpm": show(self.tokens), "tpm_source": self.tokens.source,
                "decreases": self.requests.decreases + self.tokens.decreases}


@dataclass(frozen=True)
class Ask:
    """One call waiting to be sent: its estimated input tokens and its age (older goes first)."""

    tokens: float
    since: float
    seq: int


def plan(now: float, asks: Sequence[Ask], budgets: Sequence[KeyBudget]) -> list[tuple[Ask, int, Spend]]:
    """Which waiting calls go now, on which key (by index), oldest first.

    A call that fits nowhere does not block younger ones; but the oldest such call reserves
    the earliest moment it fits on some key, and younger calls may use that key only if
    they leave that reservation intact (backfilling). So a large call waits at most until
    its key has room for it, and small calls keep flowing meanwhile.
    """
    grants: list[tuple[Ask, int, Spend]] = []
    reserved: tuple[int, float, float] | None = None  # key, calls and tokens to spare at the reserved time
    for ask in sorted(asks, key=lambda a: (a.since, a.seq)):
        if reserved is not None and not any(b.open(now) for b in budgets):
            break  # nothing more can go now, whatever its size
        fitting = [i for i, b in enumerate(budgets) if b.fits(now, ask.tokens)]
        if reserved is not None:
            key, calls, tokens = reserved
            if key in fitting and (calls < 1 or tokens < budgets[key].need(ask.tokens)):
                fitting.remove(key)
        if fitting:
            index = min(fitting, key=lambda i: (reserved is not None and i == reserved[0], budgets[i].last_used))
            budget = budgets[index]
            if reserved is not None and index == reserved[0]:
                reserved = (index, reserved[1] - 1, reserved[2] - budget.need(ask.tokens))
            grants.append((ask, index, budget.spend(now, ask.tokens)))
        elif reserved is None and budgets:
            index = min(range(len(budgets)), key=lambda i: budgets[i].ready_at(now, ask.tokens))
            budget = budgets[index]
            at = budget.ready_at(now, ask.tokens)
            calls, tokens = budget.usage_at(at)
            reserved = (index, budget.requests.calls() - calls - 1,
                        budget.tokens.room() - tokens - budget.need(ask.tokens))
    return grants
