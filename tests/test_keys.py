"""KeyPool under asyncio, and the Gemini backend pacing itself against FakeGemini's rate limits."""

from __future__ import annotations

import asyncio
import time

import pytest

from rca.backends import AnalysisRequest
from rca.backends.gemini import GeminiBackend
from rca.keys import AllKeysDead, KeyPool, Outcome, format_summary
from rca.render import render_trace
from rca.transcript import Outcome as Ending, Transcript, number_steps
from rca.limits import KeyLimits, QuotaHint
from rca.schema import DEFAULT_TAXONOMY
from rca.testing import FakeGemini, Limits

K1 = "AIzaSyA-pool-key-one-00000000000000000"
K2 = "AIzaSyB-pool-key-two-00000000000000000"
MODEL = "gemini-3.5-flash-lite"


def run(coro):  # noqa: ANN001, ANN201 - a test helper
    return asyncio.run(coro)


# -- the pool ------------------------------------------------------------------------------------


def test_calls_beyond_a_keys_limit_wait_for_its_window() -> None:
    pool = KeyPool([K1], limits=KeyLimits(rpm=4), window_s=0.4)

    async def go() -> list[float]:
        start = time.monotonic()

        async def one() -> float:
            lease = await pool.acquire(10)
            pool.release(lease, Outcome.OK, used_tokens=10)
            return time.monotonic() - start

        return sorted(await asyncio.gather(*(one() for _ in range(8))))

    times = run(go())
    assert max(times[:4]) < 0.2 and min(times[4:]) >= 0.4  # paced, not fired and retried
    assert max(times) < 3.0  # sanity


def test_keys_rotate_and_a_dead_key_is_skipped() -> None:
    pool = KeyPool([K1, K2])

    async def go() -> list[str]:
        first = await pool.acquire()
        pool.release(first, Outcome.INVALID)
        seen = []
        for _ in range(3):
            lease = await pool.acquire()
            seen.append(lease.fingerprint)
            pool.release(lease, Outcome.OK)
        return [first.fingerprint, *seen]

    first, *rest = run(go())
    assert first not in rest and len(set(rest)) == 1


def test_every_waiter_learns_when_the_last_key_dies() -> None:
    pool = KeyPool([K1], limits=KeyLimits(rpm=1), window_s=30)

    async def go() -> list[object]:
        lease = await pool.acquire()
        waiting = [asyncio.ensure_future(pool.acquire()) for _ in range(3)]
        await asyncio.sleep(0.01)
        pool.release(lease, Outcome.EXHAUSTED)
        return await asyncio.gather(*waiting, return_exceptions=True)

    assert all(isinstance(r, AllKeysDead) for r in run(go()))


def test_a_cancelled_waiter_gives_nothing_away() -> None:
    pool = KeyPool([K1], limits=KeyLimits(rpm=1), window_s=0.3)

    async def go() -> float:
        lease = await pool.acquire()
        pool.release(lease, Outcome.OK)
        waiter = asyncio.ensure_future(pool.acquire())
        await asyncio.sleep(0.01)
        waiter.cancel()
        start = time.monotonic()
        lease = await pool.acquire()
        return time.monotonic() - start

    assert 0.2 < run(go()) < 2.0


def test_retry_delay_rests_the_key_and_the_429_teaches_its_limit() -> None:
    pool = KeyPool([K1], window_s=10)

    async def go() -> float:
        lease = await pool.acquire(100)
        start = time.monotonic()
        pool.release(lease, Outcome.RATE_LIMITED, retry_after=0.3, quota=QuotaHint("requests", 7))
        await pool.acquire(100)
        return time.monotonic() - start

    assert 0.25 < run(go()) < 2.0
    row = pool.summary()[0]
    assert row["rpm"] == 7 and row["rpm_source"] == "server" and row["rate_limited"] == 1


def test_while_limits_are_unknown_one_key_probes_and_the_others_follow_one_call_at_a_time() -> None:
    """All keys probing at once would all overshoot their quota at once, before the first 429 names it."""
    pool = KeyPool([K1, K2, "AIzaSyC-pool-key-three-0000000000000000"], window_s=10)

    async def go() -> list[str]:
        waiting = [asyncio.ensure_future(pool.acquire(100)) for _ in range(12)]
        await asyncio.sleep(0.01)
        granted = [w.result().fingerprint for w in waiting if w.done()]
        for w in waiting:
            w.cancel()
        return granted

    granted = run(go())
    first, *others = [row["key"] for row in pool.summary()]
    assert granted.count(first) == 4 and [granted.count(k) for k in others] == [1, 1]


def test_a_quota_named_for_one_key_paces_the_keys_still_learning_theirs() -> None:
    """Keys of one pool share a tier far more often than not: the others start at that pace, not at a probe."""
    pool = KeyPool([K1, K2], window_s=10)

    async def go() -> None:
        lease = await pool.acquire(100)
        pool.release(lease, Outcome.RATE_LIMITED, retry_after=5, quota=QuotaHint("tokens", 5_000))

    run(go())
    first, other = pool.summary()
    assert (first["tpm"], first["tpm_source"], first["rpm"]) == (5_000, "server", None)
    assert (other["tpm"], other["tpm_source"], other["rpm"]) == (5_000, "another key", None)
    assert "5000 tokens/10s (another key)" in format_summary([other], 10)


def test_a_call_granted_before_its_keys_429_is_recalled_unless_it_has_left() -> None:
    pool = KeyPool([K1], limits=KeyLimits(rpm=10), window_s=10)

    async def go() -> tuple[bool, bool, int]:
        first, second, third = [await pool.acquire(100) for _ in range(3)]
        pool.sent(first)
        pool.sent(second)
        pool.release(first, Outcome.RATE_LIMITED, retry_after=5, quota=QuotaHint("requests", 10))
        kept, recalled = pool.recalled(second), pool.recalled(third)
        pool.release(third, Outcome.UNSENT)
        return kept, recalled, pool.summary()[0]["in_flight"]

    kept, recalled, in_flight = run(go())
    assert not kept and recalled and in_flight == 1  # only the call already on the wire is still out


def test_limits_from_the_environment_and_a_summary_without_keys() -> None:
    pool = KeyPool.from_env({"GEMINI_API_KEYS": f"{K1},{K2}", "RCA_KEY_LIMITS": "rpm=15,tpm=250000"})
    assert pool is not None and pool.limits == KeyLimits(15, 250_000)
    text = format_summary(pool.summary())
    assert "15 requests/min (configured)" in text and "250000 tokens/min (configured)" in text
    assert K1 not in text and K2 not in text and text.count("key-") == 2
    with pytest.raises(ValueError, match="bad key limits"):
        KeyPool.from_env({"GEMINI_API_KEY": K1, "RCA_KEY_LIMITS": "15 per minute"})


# -- against the fake server ---------------------------------------------------------------------


def _requests(n: int) -> list[AnalysisRequest]:
    out = []
    for i in range(n):
        size = 400 if i % 5 else 4_000  # every fifth trace is ten times larger
        transcript = Transcript(format="test", ref=f"case {i}", outcome=Ending(error="boom"), steps=number_steps(
            [{"kind": "message", "role": "model", "text": f"step {i}: " + "x" * size}]))
        out.append(AnalysisRequest(failure_id=i, transcript=transcript,
                                   rendered=render_trace(transcript, budget_tokens=10_000), taxonomy=DEFAULT_TAXONOMY))
    return out


def _batch(server: FakeGemini, pool: KeyPool, n: int) -> list:
    backend = GeminiBackend(MODEL, pool, base_url=server.url)

    async def go() -> list:
        return await asyncio.gather(*(backend.analyze(r) for r in _requests(n)))

    return run(go())


def test_configured_limits_mean_next_to_no_429s() -> None:
    limits = Limits(rpm=6, tpm=6_000)
    with FakeGemini(default_limits=limits, window_s=1.0) as server:
        pool = KeyPool([K1, K2], limits=KeyLimits(rpm=6, tpm=6_000), window_s=1.0)
        start = time.monotonic()
        outcomes = _batch(server, pool, 40)
        elapsed = time.monotonic() - start
        stats = server.stats()
    assert all(o.error is None for o in outcomes)
    assert stats.ok == 40 and stats.rate_limited <= 1
    assert 1.5 < elapsed < 15  # 40 calls at 12 a second across two keys: paced, not instant, no stalls
    assert all(row["calls"] >= 15 for row in pool.summary())  # both keys carried the load


def test_learned_limits_recover_after_the_first_429s() -> None:
    with FakeGemini(default_limits=Limits(rpm=5), window_s=1.0) as server:
        pool = KeyPool([K1], window_s=1.0)
        outcomes = _batch(server, pool, 25)
        statuses = [r.status for r in server.requests if r.path.endswith(":generateContent")]
    assert all(o.error is None for o in outcomes)
    learned = statuses.index(429)
    recovered = statuses.index(200, learned)
    assert 429 not in statuses[recovered:]  # once the 429 taught the limit: paced, no more 429s
    assert statuses.count(429) <= 10  # slow start: a probe's worth, not the whole batch
    row = pool.summary()[0]
    assert row["rpm"] == 5 and row["rpm_source"] == "server" and row["ok"] == 25


def test_the_analyzer_reports_each_keys_pace_without_its_key(tmp_path, capsys) -> None:  # noqa: ANN001
    from rca import analyze_failures, ingest_runs, load_failures
    from tests.conftest import attempt, event, result_event, write_run

    trace = [{"type": "message", "role": "model", "content": "agent.system_prompt = 'x'"}]
    write_run(tmp_path / "runs", "r1", [event("section_start", {"name": "Generator: g"}), *[
        result_event(f"{i:02d}: case", attempts=[attempt(1, "success", None, trace)], validation_error=f"boom {i}")
        for i in range(10)]])
    db = tmp_path / "analysis_cache.db"
    ingest_runs(tmp_path / "runs", db)
    with FakeGemini(default_limits=Limits(rpm=3), window_s=0.5) as server:
        pool = KeyPool([K1, K2], limits=KeyLimits(rpm=3), window_s=0.5)
        out = analyze_failures(load_failures(db), backend=GeminiBackend(MODEL, pool, base_url=server.url),
                               progress=False, concurrency=10)
        assert server.stats().rate_limited == 0
    assert out.category.notna().all()
    err = capsys.readouterr().err
    assert err.count("paced to 3 requests/0.5s (configured)") == 2 and K1 not in err and K2 not in err
    assert [row["ok"] for row in out.attrs["rca_keys"]] == [5, 5]
    assert K1 not in str(out.attrs["rca_keys"])
