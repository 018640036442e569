"""Cost from genai-prices, and honesty about a model whose price nobody knows."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rca import analyze_failures, ingest_runs, load_failures
from rca.errors import ParameterError
from rca.pricing import Price, call_cost, estimate_cost, price_known
from rca.testing import FakeGemini, Reply
from tests.conftest import attempt, result_event, write_run

KEY = "AIzaSyA-test-key-one-000000000000000000"
GENERATE = ":generateContent"


def test_prices_are_googles_list_prices() -> None:
    # $0.30 / $2.50 per 1M input / output tokens for gemini-3.5-flash-lite, $1.50 / $9.00 for gemini-3.5-flash
    assert call_cost("gemini-3.5-flash-lite", input_tokens=1_000_000, output_tokens=1_000_000) == pytest.approx(2.80)
    assert call_cost("gemini-3.5-flash", input_tokens=1_000_000, output_tokens=0) == pytest.approx(1.50)
    assert call_cost("models/gemini-3.5-flash", input_tokens=0, output_tokens=1_000_000) == pytest.approx(9.00)
    cached = call_cost("gemini-3.8-flash", input_tokens=1_000_000, output_tokens=0, cached_tokens=1_000_000)
    assert cached is not None and cached < call_cost("gemini-3.8-flash", input_tokens=1_000_000, output_tokens=0)
    assert call_cost("heuristic", input_tokens=10**6, output_tokens=10**6) == 0.0


def test_an_unknown_model_has_an_unknown_price_unless_the_user_gives_one() -> None:
    assert not price_known("gemini-99-ultra") and price_known("gemini-3.8-flash")
    assert estimate_cost("gemini-99-ultra", 1_000) is None
    assert estimate_cost("gemini-99-ultra", 1_000_000, Price.parse("1,2")) == pytest.approx(1.0 + 700 * 2 / 1e6)
    with pytest.raises(ParameterError, match="INPUT,OUTPUT"):
        Price.parse("cheap")


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("GEMINI_API_KEYS", "GEMINI_API_KEYS_POOL", "GOOGLE_API_KEY", "RCA_MODEL"):
        monkeypatch.delenv(name, raising=False)
    runs = tmp_path / "runs"
    trace = [{"type": "message", "role": "model", "content": "answer"}]
    write_run(runs, "r1", [result_event(f"{i}: case", attempts=[attempt(1, "success", None, trace)]) for i in range(2)])
    path = tmp_path / "analysis_cache.db"
    ingest_runs(runs, path)
    return path


def test_a_budget_for_an_unknown_model_needs_a_price(db: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    with FakeGemini(models=["gemini-99-ultra"]) as server:
        monkeypatch.setenv("GEMINI_API_KEY", KEY)
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.url)
        rows = load_failures(db)
        analyze_failures(rows, db=db, backend="gemini", model="gemini-99-ultra", dry_run=True, progress=False)
        assert "cost unknown" in capsys.readouterr().err
        with pytest.raises(ParameterError, match="budget_usd needs the price of gemini-99-ultra"):
            analyze_failures(rows, db=db, backend="gemini", model="gemini-99-ultra", budget_usd=1.0, progress=False)
        assert not [r for r in server.requests if r.path.endswith(GENERATE)]
        out = analyze_failures(rows, db=db, backend="gemini", model="gemini-99-ultra", budget_usd=1.0, price="1,2",
                               progress=False)
    assert out["category"].notna().all() and (out["cost_usd"] > 0).all()


def test_the_request_timeout_is_an_option(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeGemini() as server:
        monkeypatch.setenv("GEMINI_API_KEY", KEY)
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.url)
        server.script([Reply.latency(8.0)])  # the first call hangs; its retry is answered at once
        started = time.monotonic()
        out = analyze_failures(load_failures(db, limit=1), db=db, backend="gemini", model="gemini-2.5-flash",
                               timeout=1.0, progress=False)
        elapsed = time.monotonic() - started
    # answered by the retry, well before the hanging call would have returned (it is recorded only then)
    assert out["category"].notna().all() and elapsed < 7.0
