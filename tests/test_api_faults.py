"""Every way a call can end, in long runs on one key: the batch ends, every row is accounted for.

The real google-genai client against FakeGemini. A call that ends in a way the backend did not
foresee must still give its key's slot back: with limits still unknown a key lets only a few
calls be in flight, so a few lost slots would stop the batch for good, silently.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from pathlib import Path

import pandas as pd
import pytest

from rca import analyze_failures_async, ingest_runs, load_failures
from rca.backends import gemini
from rca.backends.gemini import GeminiBackend
from rca.errors import AllKeysDead
from rca.keys import KeyPool
from rca.testing import FakeGemini, Reply
from tests.conftest import attempt, event, result_event, write_run

K1 = "AIzaSyA-faults-key-one-000000000000000000"
K2 = "AIzaSyB-faults-key-two-000000000000000000"
MODEL = "gemini-3.5-flash-lite"
ROWS = 30
HARD_TIMEOUT_S = 45.0  # a batch that has not ended by then hangs
REQUEST_TIMEOUT_S = 0.5
WINDOW_S = 0.25  # the pool's rate window: a paced key recovers from a named quota in seconds, not minutes

GAVE_UP = r".* \(gave up after 4 retries\)$"

# Each kind of reply, and what a row it defeats must say.
FAULTS: dict[str, tuple[Reply, str | None]] = {
    "malformed": (Reply.malformed(), rf"^malformed answer: the body is not JSON {GAVE_UP}"),
    "blocked": (Reply.blocked(), r"^blocked: SAFETY$"),
    "truncated": (Reply.max_tokens(), r"^answer cut short: finish reason MAX_TOKENS$"),
    "empty": (Reply.empty(), r"^empty answer"),
    "off_schema": (Reply.off_schema(), r"^parse error: answer does not match the schema after one repair"),
    "400": (Reply.error(400, "Request contains an invalid argument."), r"^API error 400 INVALID_ARGUMENT"),
    "5xx": (Reply.error(503), rf"^API error 503 UNAVAILABLE: {GAVE_UP}"),
    "timeout": (Reply.latency(4 * REQUEST_TIMEOUT_S), rf"^network error: \w*Timeout\w*{GAVE_UP}"),
    "reset": (Reply.reset(), rf"^network error: \w+(Error|Disconnected)\w*{GAVE_UP}"),
    "reset_mid_body": (Reply.reset(stage="body"), rf"^network error: \w+(Error|Disconnected)\w*{GAVE_UP}"),
    "bare_429": (Reply.resource_exhausted(), rf"^API error 429 RESOURCE_EXHAUSTED: {GAVE_UP}"),
    "quota_429": (Reply.rate_limited(retry_delay=0.05), None),  # the key rests, the row is answered
}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    trace = [{"type": "message", "role": "model", "content": "agent.system_prompt = 'x'"}]
    write_run(tmp_path / "runs", "r1", [event("section_start", {"name": "Generator: g"}), *[
        result_event(f"{i:02d}: case", attempts=[attempt(1, "success", None, trace)], validation_error=f"boom {i}")
        for i in range(ROWS)]])
    path = tmp_path / "analysis_cache.db"
    ingest_runs(tmp_path / "runs", path)
    return path


@pytest.fixture(autouse=True)
def short_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Transient failures back off 20 ms, not seconds: what is tested is that they end, not how long they wait."""
    monkeypatch.setattr(gemini, "BACKOFF_BASE_S", 0.02)


def _batch(server: FakeGemini, db: Path, pool: KeyPool) -> pd.DataFrame:
    backend = GeminiBackend(MODEL, pool, base_url=server.url, timeout_s=REQUEST_TIMEOUT_S)

    async def go() -> pd.DataFrame:
        batch = analyze_failures_async(load_failures(db), backend=backend, progress=False, concurrency=8,
                                       force=True)  # a second batch on the same rows calls again
        return await asyncio.wait_for(batch, HARD_TIMEOUT_S)

    return asyncio.run(go())


def _unaccounted(out: pd.DataFrame, reasons: list[str]) -> list[str]:
    """Rows with neither an answer nor an error that matches one of ``reasons``."""
    return [f"row {i}: {error!r}" for i, (category, error) in enumerate(zip(out.category, out.analysis_error))
            if pd.isna(category) and not (isinstance(error, str) and any(re.search(r, error) for r in reasons))]


@pytest.mark.parametrize("kind", list(FAULTS))
def test_seven_of_a_kind_in_a_row_on_one_key(kind: str, db: Path) -> None:
    """Seven: more than a key's first probe (4 calls in flight, what four lost slots used to stop for good),
    fewer than the rounds of 429s that retire a key (8)."""
    reply, reason = FAULTS[kind]
    with FakeGemini() as server:
        server.script([reply] * 7)
        pool = KeyPool([K1], window_s=WINDOW_S)
        out = _batch(server, db, pool)
        assert server.remaining() == 0
    assert len(out) == ROWS and not _unaccounted(out, [reason] if reason else [])
    assert 0 < out.category.notna().sum() and out.analysis_error.notna().sum() <= 7
    assert pool.summary()[0]["in_flight"] == 0  # every call gave its slot back


def test_every_kind_mixed_through_one_long_run(db: Path) -> None:
    replies = [reply for reply, _ in FAULTS.values()] * 3
    random.Random(4).shuffle(replies)
    with FakeGemini() as server:
        server.script(replies)
        pool = KeyPool([K1], window_s=WINDOW_S)
        out = _batch(server, db, pool)
        assert server.remaining() == 0
    assert not _unaccounted(out, [reason for _, reason in FAULTS.values() if reason])
    assert pool.summary()[0]["in_flight"] == 0


def test_bare_429s_neither_rest_the_key_nor_lower_its_pace(db: Path) -> None:
    """A 429 naming no quota says the service is short of capacity, not that this key is over its quota."""
    with FakeGemini(latency=0.05) as server:
        pool = KeyPool([K1])  # the real one-minute window: a cooldown would be seconds
        start = time.monotonic()
        _batch(server, db, pool)
        clean = time.monotonic() - start
        server.reset()
        server.script([Reply.resource_exhausted()] * 6)
        pool = KeyPool([K1])
        start = time.monotonic()
        out = _batch(server, db, pool)
        faulty = time.monotonic() - start
    assert out.category.notna().all() and not out.from_cache.any() and server.remaining() == 0
    row = pool.summary()[0]
    assert row["cooldowns"] == 0 and row["decreases"] == 0 and row["rpm"] is None
    assert faulty < clean + 1.0, (clean, faulty)  # brief, jittered backoffs of the rows concerned only


def test_a_key_that_answers_429_to_every_call_is_retired_with_its_reason(db: Path, capsys) -> None:  # noqa: ANN001
    with FakeGemini() as server:
        server.script(key=K1, then=Reply.rate_limited(retry_delay=0.05))
        pool = KeyPool([K1], window_s=WINDOW_S)
        with pytest.raises(AllKeysDead) as info:
            _batch(server, db, pool)
        calls = server.stats(K1).requests
    message = str(info.value)
    assert pool.summary()[0]["status"] == "retired" and pool.summary()[0]["key"] in message
    assert "8 rounds of calls answered 429" in message and K1 not in message
    assert calls <= 8 * 8  # eight rounds of at most the rows in flight, not 36 tries per row
    err = capsys.readouterr().err
    assert f"{pool.summary()[0]['key']} retired for this run" in err and K1 not in err
    assert load_failures(db).llm_root_cause.isna().all()


def test_a_key_that_answers_429_to_every_call_costs_the_batch_a_few_calls(db: Path) -> None:
    with FakeGemini(latency=0.2) as server:
        server.script(key=K1, then=Reply.rate_limited(retry_delay=0.05))
        pool = KeyPool([K1, K2], window_s=WINDOW_S)
        out = _batch(server, db, pool)
        wasted = server.stats(K1).requests
    assert out.category.notna().all() and wasted <= 10  # its pace falls to a call a window, rows move to K2


def test_a_quota_of_zero_retires_the_key_at_its_first_429(db: Path) -> None:
    """"limit: 0" is what a project without billing meets on a paid-only model: no wait will help."""
    with FakeGemini() as server:
        server.script(key=K1, then=Reply.rate_limited(retry_delay=30, limit=0))
        pool = KeyPool([K1, K2], window_s=WINDOW_S)
        out = _batch(server, db, pool)
        calls = server.stats(K1).requests
    assert out.category.notna().all() and calls <= 8  # the first burst only, not a 30 s wait per row
    assert pool.summary()[0]["status"] == "retired" and "quota of 0" in pool.summary()[0]["reason"]
