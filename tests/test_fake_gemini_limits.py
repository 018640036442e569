"""FakeGemini's rate limits, latency, concurrency and random faults, against the real google-genai client."""

from __future__ import annotations

import asyncio
import time

import pytest
from google.genai import errors

from rca.testing import FakeGemini, Latency, Limits, Reply, Stats
from tests.test_fake_gemini import CONFIG, MODEL, client_for, error_details, generate


def test_rpm_window_rejects_then_recovers() -> None:
    with FakeGemini(limits={"k1": Limits(rpm=3)}, window_s=1.0) as fake:
        async def run() -> float:
            client = client_for(fake)
            for _ in range(3):
                await client.aio.models.generate_content(model=MODEL, contents="hi", config=CONFIG)
            with pytest.raises(errors.ClientError) as caught:
                await client.aio.models.generate_content(model=MODEL, contents="hi", config=CONFIG)
            assert caught.value.code == 429
            details = error_details(caught.value)
            assert "PerMinute" in details["QuotaFailure"]["violations"][0]["quotaId"]
            delay = float(details["RetryInfo"]["retryDelay"].rstrip("s"))
            assert 0 < delay <= 1.0
            await asyncio.sleep(delay + 0.05)
            await client.aio.models.generate_content(model=MODEL, contents="hi", config=CONFIG)
            return delay

        asyncio.run(run())
        generate(client_for(fake, "unlimited"))  # other keys have no limits
        assert fake.stats("k1") == Stats(requests=5, ok=4, rate_limited=1, errors=0, input_tokens=5)
        assert fake.stats().requests == 6


def test_tpm_and_rpd_limits() -> None:
    with FakeGemini(default_limits=Limits(tpm=100, rpd=3), window_s=1.0) as fake:
        client = client_for(fake)
        generate(client, contents="x" * 300)  # 75 tokens
        with pytest.raises(errors.ClientError) as caught:
            generate(client, contents="x" * 200)  # 50 more would exceed 100
        violation = error_details(caught.value)["QuotaFailure"]["violations"][0]
        assert violation["quotaId"] == "GenerateContentInputTokensPerModelPerMinute-FreeTier"
        assert violation["quotaValue"] == "100"
        generate(client, contents="x" * 40)
        generate(client, contents="x" * 40)
        with pytest.raises(errors.ClientError) as caught:
            generate(client, contents="x")
        assert "PerDay" in error_details(caught.value)["QuotaFailure"]["violations"][0]["quotaId"]


def test_latency_is_honoured() -> None:
    with FakeGemini(latency=0.3) as fake:
        fake.script([Reply.error(503)])
        client = client_for(fake)
        start = time.monotonic()
        with pytest.raises(errors.ServerError):
            generate(client)
        assert time.monotonic() - start < 0.3  # errors come back fast
        start = time.monotonic()
        generate(client)
        assert time.monotonic() - start >= 0.3
        fake.script([Reply.latency(0.5)])
        start = time.monotonic()
        generate(client)
        assert time.monotonic() - start >= 0.5


def test_concurrent_slow_requests_do_not_block_each_other() -> None:
    with FakeGemini(latency=1.0) as fake:
        async def run() -> None:
            client = client_for(fake)
            await asyncio.gather(*(client.aio.models.generate_content(model=MODEL, contents=f"q{i}", config=CONFIG)
                                   for i in range(40)))

        start = time.monotonic()
        asyncio.run(run())
        elapsed = time.monotonic() - start
        assert 1.0 <= elapsed < 6.0, elapsed  # serial would take 40 s
        assert fake.max_in_flight >= 20 and fake.in_flight == 0
        assert fake.stats().ok == 40


def test_lognormal_latency_is_seeded_and_long_tailed() -> None:
    first = Latency.lognormal(1.0, 0.8, seed=3)()
    again = Latency.lognormal(1.0, 0.8, seed=3)
    many = [again() for _ in range(2000)]
    assert first == many[0]
    many.sort()
    assert 0.8 < many[1000] < 1.25 and many[-1] > 3 * many[1000]
    capped = Latency.lognormal(1.0, 2.0, cap=2.0)
    assert max(capped() for _ in range(500)) <= 2.0


def test_random_faults_answer_their_share_of_calls_reproducibly() -> None:
    def statuses(seed: int) -> list[int]:
        with FakeGemini(faults=[(0.3, Reply.resource_exhausted()), (0.1, Reply.error(503))], seed=seed) as fake:
            fake.script([Reply.ok()] * 5)  # scripted steps come first and draw nothing
            client = client_for(fake)
            for _ in range(205):
                try:
                    generate(client)
                except errors.APIError:
                    pass
            return [r.status for r in fake.requests]

    first = statuses(1)
    assert first[:5] == [200] * 5 and statuses(1) == first != statuses(2)
    assert 40 <= first.count(429) <= 80 and 8 <= first.count(503) <= 35
