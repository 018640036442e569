"""A harness key manager plugged in through KeyManagerPool, against the fake Gemini."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from rca import analyze_failures, load_failures
from rca.backends.gemini import GeminiBackend
from rca.keys import AllKeysDead, KeyManagerPool
from rca.testing import FakeGemini, Reply
from tests.test_analyze_gemini import K1, K2, _calls, db  # noqa: F401 - fixture reused

GEMINI = "GEMINI"  # stands for the harness's enum member


class HarnessKeyManager:
    """Behaves as the contract describes the harness's manager: a cooldown after a 429
    (doubling; shortened here), dead after 401/403, both read from the reported error
    message; it blocks while every live key cools, and gives None once all are dead."""

    def __init__(self, keys: list[str], cooldown_s: float = 0.3) -> None:
        self.keys = {f"id{i}": k for i, k in enumerate(keys)}
        self.dead: set[str] = set()
        self.cool_until: dict[str, float] = {}
        self.cooldown_s = cooldown_s
        self.reports: list[tuple[object, str, bool, str | None]] = []
        self.lock = threading.Lock()

    def get_next_key_with_id(self, key_type: object) -> tuple[str | None, str | None]:
        while True:
            with self.lock:
                live = [k for k in self.keys if k not in self.dead]
                if not live:
                    return None, None
                now = time.monotonic()
                ready = [k for k in live if self.cool_until.get(k, 0) <= now]
                if ready:
                    return self.keys[ready[0]], ready[0]
                wait = min(self.cool_until[k] for k in live) - now
            time.sleep(wait)

    def report_result(self, key_type: object, key_id: str, success: bool, error_message: str | None = None) -> None:
        with self.lock:
            self.reports.append((key_type, key_id, success, error_message))
            if not success and re.match(r"(401|403)\b", error_message or ""):
                self.dead.add(key_id)
            elif not success and (error_message or "").startswith("429"):
                self.cool_until[key_id] = time.monotonic() + self.cooldown_s


def _backend(server: FakeGemini, manager: HarnessKeyManager) -> GeminiBackend:
    return GeminiBackend("gemini-3.5-flash-lite", KeyManagerPool(manager, GEMINI), base_url=server.url)


def test_results_are_reported_to_the_manager_and_its_decisions_are_followed(db: Path) -> None:  # noqa: F811
    manager = HarnessKeyManager([K1, K2])
    with FakeGemini() as server:
        server.revoke(K1, code=403)
        server.script([Reply.rate_limited(retry_delay=1)], key=K2)
        server.script([Reply.error(503)])
        out = analyze_failures(load_failures(db), backend=_backend(server, manager), progress=False, concurrency=1)
    assert out.analysis_error.isna().all()
    assert manager.dead == {"id0"} and "id1" in manager.cool_until
    failures = [r for r in manager.reports if not r[2]]
    assert all(r[0] == GEMINI for r in manager.reports)
    assert any(m.startswith("403") for *_, m in failures) and any(m.startswith("429") for *_, m in failures)
    assert not any("503" in (m or "") for *_, m in failures)  # a server error is not the key's fault
    assert sum(r[2] for r in manager.reports) >= 6
    assert not any(K1 in (m or "") or K2 in (m or "") for *_, m in manager.reports)


def test_a_manager_without_keys_stops_the_batch(db: Path) -> None:  # noqa: F811
    manager = HarnessKeyManager([K1])
    with FakeGemini() as server:
        server.revoke(K1, code=401)
        with pytest.raises(AllKeysDead, match="key manager has no usable key"):
            analyze_failures(load_failures(db), backend=_backend(server, manager), progress=False)
    assert load_failures(db).llm_root_cause.isna().all()
