"""API keys: a pool that paces calls to each key's rate limits, learns them, and retires dead keys.

A key is a secret: it is never printed, logged, stored or put in an error message.
Everything outside this module sees a Lease, whose repr shows only a fingerprint.
The pacing itself (windows, which waiting call goes next) is rca.scheduler's; the limits and how they are
learned, rca.limits'.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from rca.errors import AllKeysDead
from rca.redact import add_secrets
from rca.limits import KeyLimits, QuotaHint
from rca.scheduler import DEFAULT_WINDOW_S, FIRST_PROBE, FOLLOW_PROBE, Ask, KeyBudget, Spend, plan

KEY_ENV_VARS = ("GEMINI_API_KEYS", "GEMINI_API_KEYS_POOL", "GEMINI_API_KEY", "GOOGLE_API_KEY")
TOKEN_RATIO_BOUNDS = (0.5, 2.0)  # how far the server's token counts may correct our estimates


class Outcome(str, Enum):
    OK = "ok"
    RATE_LIMITED = "rate_limited"  # per-minute quota: cool down, then use again
    EXHAUSTED = "exhausted"  # per-day quota: retired for this run
    INVALID = "invalid"  # 401/403 or an invalid key: dead
    BUSY = "busy"  # a 429 that names no quota: the service is short of capacity, the key is not to blame
    UNSENT = "unsent"  # held back before it left (KeySource.recalled): nothing was spent
    ERROR = "error"  # anything else: the key is not to blame


def fingerprint(key: str) -> str:
    """A short, stable, non-reversible name for a key."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class Lease:
    """The right to make one call with one key."""

    key: str = field(repr=False)
    key_id: Any
    fingerprint: str
    ticket: Any = field(default=None, repr=False, compare=False)  # the pool's record of what the call spent

    def __str__(self) -> str:
        return self.fingerprint


class KeySource(Protocol):
    async def acquire(self, tokens: float = 0, *, since: float | None = None, counted: bool = True) -> Lease: ...
    def recalled(self, lease: Lease) -> bool: ...
    def sent(self, lease: Lease) -> None: ...
    def release(self, lease: Lease, outcome: Outcome, *, retry_after: float | None = None, message: str | None = None,
                used_tokens: int | None = None, quota: QuotaHint | None = None) -> None: ...
    def scrub(self, text: str) -> str: ...
    def summary(self) -> list[dict[str, Any]]: ...


@dataclass
class _KeyState:
    key: str = field(repr=False)
    fingerprint: str
    budget: KeyBudget
    status: str = "usable"  # usable | retired | dead
    reason: str | None = None  # why it is retired or dead


@dataclass
class _Ticket:
    state: _KeyState
    spend: Spend | None
    estimate: float
    sent: bool = False


@dataclass
class _Waiter:
    ask: Ask
    future: asyncio.Future[Lease]
    counted: bool
    estimate: float  # our own estimate, before the learned correction


def split_keys(value: str) -> list[str]:
    """The keys in one variable, each once: separated by commas, spaces or newlines, so a file of
    keys works as `GEMINI_API_KEYS="$(cat keys.txt)"` (a newline kept in a key would fail every call)."""
    return list(dict.fromkeys(value.replace(",", " ").split()))


class KeyPool:
    """Sends a call on a key only when that key's request and token budgets allow it.

    ``limits`` (or RCA_KEY_LIMITS="rpm=15,tpm=250000" through from_env) apply to every key,
    per ``window_s`` seconds; without them each key's limits are learned from its 429s.
    Waiting calls are granted oldest first without letting a large one block small ones
    (see rca.scheduler.plan); a call in flight holds nothing but its share of the window.
    """

    def __init__(self, keys: Sequence[str], *, limits: KeyLimits | None = None, window_s: float = DEFAULT_WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        unique = list(dict.fromkeys(k.strip() for k in keys if k and k.strip()))
        if not unique:
            raise ValueError(f"no API key given: set one of {', '.join(KEY_ENV_VARS)}")
        self.limits, self.window_s, self._clock = limits, window_s, clock
        # While limits are unknown, one key probes; the others follow a call at a time and adopt the quota
        # its first 429 names (KeyBudget.adopt): all probing at once, all would overshoot at once.
        self._keys = [_KeyState(k, fingerprint(k), KeyBudget(limits, window_s=window_s,
                                                              probe=FIRST_PROBE if i == 0 else FOLLOW_PROBE))
                      for i, k in enumerate(unique)]
        self._by_fingerprint = {s.fingerprint: s for s in self._keys}
        self._waiters: list[_Waiter] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._token_ratio = 1.0  # server-counted / estimated input tokens, learned from answers

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **options: Any) -> KeyPool | None:
        """The pool from the first key variable that is set (None when none is), with RCA_KEY_LIMITS.

        Every key in any of the variables, used or not, is registered with rca.redact, so that
        redact() takes it out of whatever a trace or an error echoes back.
        """
        env = os.environ if env is None else env
        found = [split_keys(env.get(name, "")) for name in KEY_ENV_VARS]
        add_secrets(key for keys in found for key in keys)
        for keys in found:
            if keys:
                options.setdefault("limits", KeyLimits.from_env(env))
                return cls(keys, **options)
        return None

    def __len__(self) -> int:
        return len(self._keys)

    # -- granting ------------------------------------------------------------------------

    async def acquire(self, tokens: float = 0, *, since: float | None = None, counted: bool = True) -> Lease:
        """Wait until some key may send a call of about ``tokens`` input tokens.

        ``since``: when the row first asked, so a retry keeps its place in line. ``counted=False``
        is for calls the generation quota does not count (asking about the model).
        """
        now, estimate = self._clock(), max(0.0, float(tokens)) if counted else 0.0
        ask = Ask(estimate * self._token_ratio, now if since is None else since, next(self._seq))
        waiter = _Waiter(ask, asyncio.get_running_loop().create_future(), counted, estimate)
        self._waiters.append(waiter)
        self._dispatch()
        try:
            return await waiter.future
        except asyncio.CancelledError:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif waiter.future.done() and not waiter.future.cancelled() and waiter.future.exception() is None:
                self._give_back(waiter.future.result())  # granted, never sent
            raise

    def _dispatch(self) -> None:
        """Grant every waiting call that may go now; wake up again when the budgets next grow."""
        alive = [s for s in self._keys if s.status == "usable"]
        if not alive:
            error = AllKeysDead(self._dead_message())
            for waiter in self._waiters:
                if not waiter.future.done():
                    waiter.future.set_exception(error)
            self._waiters.clear()
            return
        self._waiters = [w for w in self._waiters if not w.future.done()]
        if not self._waiters:
            return
        now = self._clock()
        by_ask = {id(w.ask): w for w in self._waiters}
        for ask, index, spend in plan(now, [w.ask for w in self._waiters], [s.budget for s in alive]):
            waiter = by_ask[id(ask)]
            state = alive[index]
            if not waiter.counted:
                state.budget.refund(spend)
                state.budget.finished(spend)
                spend = None
            ticket = _Ticket(state, spend, waiter.estimate)
            waiter.future.set_result(Lease(state.key, state.fingerprint, state.fingerprint, ticket))
        self._waiters = [w for w in self._waiters if not w.future.done()]
        self._arm_timer(now, alive)

    def _arm_timer(self, now: float, alive: list[_KeyState]) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._waiters:
            return
        wake = min((t for s in alive if (t := s.budget.next_change(now)) is not None), default=now + self.window_s / 10)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._timer = loop.call_later(max(wake - now, 0.0) + 1e-4, self._dispatch)

    def _give_back(self, lease: Lease) -> None:
        ticket = lease.ticket
        if isinstance(ticket, _Ticket) and ticket.spend is not None:
            ticket.state.budget.refund(ticket.spend)
            ticket.state.budget.finished(ticket.spend)
            ticket.state.budget.calls -= 1
        self._dispatch()

    # -- outcomes --------------------------------------------------------------------------

    def recalled(self, lease: Lease) -> bool:
        """Whether the call granted on ``lease``, about to leave, should stay home after all: its key is
        retired, rests after a 429 that came back since the grant, or a quota named since leaves no room
        for it. The caller then releases it UNSENT and asks again, instead of sending it into a 429: a
        burst granted at once can take a tenth of a second to leave a busy event loop."""
        ticket = lease.ticket
        if not isinstance(ticket, _Ticket) or ticket.spend is None or ticket.sent:
            return False
        return ticket.state.status != "usable" or ticket.state.budget.over(self._clock())

    def sent(self, lease: Lease) -> None:
        """The call on ``lease`` is going on the wire now (optional: else it is dated from the grant)."""
        ticket = lease.ticket
        if isinstance(ticket, _Ticket) and ticket.spend is not None and not ticket.sent:
            ticket.sent = True
            ticket.state.budget.sent(ticket.spend, self._clock())

    def release(self, lease: Lease, outcome: Outcome, *, retry_after: float | None = None, message: str | None = None,
                used_tokens: int | None = None, quota: QuotaHint | None = None) -> None:
        """Record how a call on ``lease`` ended: it shapes that key's pace from now on."""
        if outcome is Outcome.UNSENT:
            return self._give_back(lease)
        ticket = lease.ticket if isinstance(lease.ticket, _Ticket) else None
        state = ticket.state if ticket is not None else self._by_fingerprint[lease.fingerprint]
        spend = ticket.spend if ticket is not None else None
        budget = state.budget
        if outcome is Outcome.OK:
            if spend is not None:
                if used_tokens and ticket is not None and ticket.estimate > 0:
                    ratio = 0.9 * self._token_ratio + 0.1 * used_tokens / ticket.estimate
                    self._token_ratio = min(max(ratio, TOKEN_RATIO_BOUNDS[0]), TOKEN_RATIO_BOUNDS[1])
                budget.succeeded(spend, used_tokens)
        elif outcome is Outcome.RATE_LIMITED:
            budget.rate_limited_by(self._clock(), spend, retry_after, quota or QuotaHint())
            if (hopeless := budget.hopeless()) is not None:
                self._retire(state, "retired", hopeless)
            elif quota is not None:
                for other in self._keys:
                    other.budget.adopt(quota)
        elif outcome is Outcome.BUSY:
            budget.turned_away(spend)
        elif spend is not None:
            budget.finished(spend)  # an error: the call may have counted, so its units stay spent
        if outcome is Outcome.EXHAUSTED:
            self._retire(state, "retired", "its daily quota is used up")
        elif outcome is Outcome.INVALID:
            self._retire(state, "dead", f"the API refused it: {self.scrub(message or 'invalid key')}")
        self._dispatch()

    def _retire(self, state: _KeyState, status: str, reason: str) -> None:
        """Stop using a key for this run, and say so at once: a batch may run for hours after."""
        if state.status != "usable":
            return
        state.status, state.reason = status, reason
        print(f"rca: {state.fingerprint} {status} for this run: {reason}", file=sys.stderr)

    # -- what the user sees --------------------------------------------------------------

    def scrub(self, text: str) -> str:
        for state in self._keys:
            text = text.replace(state.key, state.fingerprint)
        return text

    def summary(self) -> list[dict[str, Any]]:
        """Each key's state, by fingerprint: calls, 429s, cooldowns and the limits it is paced to."""
        now = self._clock()
        return [
            {"key": s.fingerprint, "status": s.status, "reason": s.reason, "calls": s.budget.calls, "ok": s.budget.ok,
             "rate_limited": s.budget.rate_limited, "busy": s.budget.busy, "in_flight": s.budget.in_flight,
             "cooldowns": s.budget.cooldowns,
             "cooling_s": round(max(s.budget.cooldown_until - now, 0.0), 1), **s.budget.describe()}
            for s in self._keys
        ]

    def _dead_message(self) -> str:
        states = "; ".join(f"{s.fingerprint} {s.status}" + (f": {s.reason}" if s.reason else "") for s in self._keys)
        return f"every API key is unusable for this run ({states}): check the keys and their quotas"


def format_summary(rows: list[dict[str, Any]], window_s: float = DEFAULT_WINDOW_S) -> str:
    """A few lines for the end of a batch: each key's state, limits and how they were found."""
    per = "min" if window_s == 60 else f"{window_s:g}s"
    lines = []
    for row in rows:
        text = f"rca: {row['key']} {row['status']}"
        if row.get("reason"):
            text += f" ({row['reason']})"
        if "calls" in row:
            text += f": {row['calls']} calls, {row.get('rate_limited', 0)} answered 429"
            if row.get("busy"):
                text += f" naming a quota, {row['busy']} naming none"
        paces = [f"{row[m]:g} {m[0]}/{per} ({row[m + '_source']})" for m in ("rpm", "tpm") if row.get(m) is not None]
        if paces:
            text += "; paced to " + ", ".join(paces).replace("r/", "requests/").replace("t/", "tokens/")
        elif "rpm_source" in row:
            text += "; no limit met yet"
        if row.get("cooling_s"):
            text += f"; cooling down {row['cooling_s']:g}s more"
        lines.append(text)
    return "\n".join(lines)


class KeyManagerPool:
    """Adapter over a harness key manager with get_next_key_with_id / report_result.

    The manager chooses keys and keeps its own cooldowns, so no pacing happens here.
    """

    def __init__(self, manager: Any, key_type: Any) -> None:
        self._manager, self._key_type = manager, key_type
        self._seen: dict[str, str] = {}

    async def acquire(self, tokens: float = 0, *, since: float | None = None, counted: bool = True) -> Lease:
        # In a thread: a harness manager may block while its keys cool down.
        key, key_id = await asyncio.to_thread(self._manager.get_next_key_with_id, self._key_type)
        if not key:
            raise AllKeysDead("the key manager has no usable key left")
        self._seen[key] = fingerprint(key)
        return Lease(key=key, key_id=key_id, fingerprint=fingerprint(key))

    def recalled(self, lease: Lease) -> bool:
        return False

    def sent(self, lease: Lease) -> None:
        pass

    def release(self, lease: Lease, outcome: Outcome, *, retry_after: float | None = None, message: str | None = None,
                used_tokens: int | None = None, quota: QuotaHint | None = None) -> None:
        if outcome in (Outcome.ERROR, Outcome.BUSY, Outcome.UNSENT):
            return  # not the key's fault: do not push it into cooldown
        self._manager.report_result(self._key_type, lease.key_id, outcome is Outcome.OK, None if message is None else self.scrub(message))

    def scrub(self, text: str) -> str:
        for key, fp in self._seen.items():
            text = text.replace(key, fp)
        return text

    def summary(self) -> list[dict[str, Any]]:
        return [{"key": fp, "status": "managed"} for fp in self._seen.values()]
