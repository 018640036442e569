"""API keys: a pool that rotates them, cools them after a 429 and retires dead ones.

A key is a secret: it is never printed, logged, stored or put in an error message.
Everything outside this module sees a Lease, whose repr shows only a fingerprint.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

KEY_ENV_VARS = ("GEMINI_API_KEYS", "GEMINI_API_KEYS_POOL", "GEMINI_API_KEY", "GOOGLE_API_KEY")
COOLDOWN_START_S = 5.0
COOLDOWN_MAX_S = 300.0


class AllKeysDead(RuntimeError):
    """No key can make another call in this run."""


class Outcome(str, Enum):
    OK = "ok"
    RATE_LIMITED = "rate_limited"  # per-minute quota: cool down, then use again
    EXHAUSTED = "exhausted"  # per-day quota: retired for this run
    INVALID = "invalid"  # 401/403 or an invalid key: dead
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

    def __str__(self) -> str:
        return self.fingerprint


class KeySource(Protocol):
    async def acquire(self) -> Lease: ...
    def release(self, lease: Lease, outcome: Outcome, *, retry_after: float | None = None, message: str | None = None) -> None: ...
    def scrub(self, text: str) -> str: ...
    def summary(self) -> list[dict[str, Any]]: ...


@dataclass
class _KeyState:
    key: str = field(repr=False)
    fingerprint: str
    last_used: float = 0.0
    cooldown_until: float = 0.0
    cooldown_s: float = COOLDOWN_START_S
    status: str = "usable"  # usable | retired | dead
    calls: int = 0
    rate_limited: int = 0


class KeyPool:
    """Least-recently-used among usable keys; waits out cooldowns; fails when none is left."""

    def __init__(self, keys: Sequence[str]) -> None:
        unique = list(dict.fromkeys(k.strip() for k in keys if k and k.strip()))
        if not unique:
            raise ValueError(f"no API key given: set one of {', '.join(KEY_ENV_VARS)}")
        self._keys = [_KeyState(key=k, fingerprint=fingerprint(k)) for k in unique]
        self._by_fingerprint = {s.fingerprint: s for s in self._keys}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KeyPool | None:
        """The pool from the first key variable that is set, or None when none is."""
        env = os.environ if env is None else env
        for name in KEY_ENV_VARS:
            value = env.get(name, "").strip()
            if value:
                return cls(value.split(","))
        return None

    def __len__(self) -> int:
        return len(self._keys)

    async def acquire(self) -> Lease:
        while True:
            alive = [s for s in self._keys if s.status == "usable"]
            if not alive:
                raise AllKeysDead(self._dead_message())
            now = time.monotonic()
            ready = [s for s in alive if s.cooldown_until <= now]
            if ready:
                state = min(ready, key=lambda s: s.last_used)
                state.last_used = now
                state.calls += 1
                return Lease(key=state.key, key_id=state.fingerprint, fingerprint=state.fingerprint)
            await asyncio.sleep(min(s.cooldown_until for s in alive) - now)

    def release(self, lease: Lease, outcome: Outcome, *, retry_after: float | None = None, message: str | None = None) -> None:
        state = self._by_fingerprint[lease.fingerprint]
        if outcome is Outcome.OK:
            state.cooldown_s = COOLDOWN_START_S
        elif outcome is Outcome.RATE_LIMITED:
            state.rate_limited += 1
            wait = retry_after if retry_after is not None else state.cooldown_s
            state.cooldown_until = time.monotonic() + wait
            state.cooldown_s = min(state.cooldown_s * 2, COOLDOWN_MAX_S)
        elif outcome is Outcome.EXHAUSTED:
            state.status = "retired"
        elif outcome is Outcome.INVALID:
            state.status = "dead"

    def scrub(self, text: str) -> str:
        for state in self._keys:
            text = text.replace(state.key, state.fingerprint)
        return text

    def summary(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [
            {"key": s.fingerprint, "status": s.status, "calls": s.calls, "rate_limited": s.rate_limited,
             "cooling_s": round(max(s.cooldown_until - now, 0.0), 1)}
            for s in self._keys
        ]

    def _dead_message(self) -> str:
        states = ", ".join(f"{s.fingerprint} {s.status}" for s in self._keys)
        return f"every API key is unusable for this run ({states}): check the keys and their quotas"


class KeyManagerPool:
    """Adapter over a harness key manager with get_next_key_with_id / report_result."""

    def __init__(self, manager: Any, key_type: Any) -> None:
        self._manager, self._key_type = manager, key_type
        self._seen: dict[str, str] = {}

    async def acquire(self) -> Lease:
        key, key_id = self._manager.get_next_key_with_id(self._key_type)
        if not key:
            raise AllKeysDead("the key manager has no usable key left")
        self._seen[key] = fingerprint(key)
        return Lease(key=key, key_id=key_id, fingerprint=fingerprint(key))

    def release(self, lease: Lease, outcome: Outcome, *, retry_after: float | None = None, message: str | None = None) -> None:
        if outcome is Outcome.ERROR:
            return  # not the key's fault: do not push it into cooldown
        self._manager.report_result(self._key_type, lease.key_id, outcome is Outcome.OK, None if message is None else self.scrub(message))

    def scrub(self, text: str) -> str:
        for key, fp in self._seen.items():
            text = text.replace(key, fp)
        return text

    def summary(self) -> list[dict[str, Any]]:
        return [{"key": fp, "status": "managed"} for fp in self._seen.values()]
