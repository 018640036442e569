"""The Gemini path, end to end: the real google-genai client against rca.testing.FakeGemini."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path

import pytest

from rca import analyze_failures, analyze_failures_async, ingest_runs, load_failures
from rca.backends.gemini import DEFAULT_MODEL, generation_settings
from rca.errors import AllKeysDead, UnknownModel
from rca.pricing import call_cost
from rca.schema import DEFAULT_TAXONOMY, Category, Taxonomy
from rca.testing import DEFAULT_MODELS, FakeGemini, Reply
from tests.conftest import attempt, event, result_event, write_run

K1 = "AIzaSyA-test-key-one-000000000000000000"
K2 = "AIzaSyB-test-key-two-000000000000000000"
GENERATE = ":generateContent"


def _trace(i: int) -> list[dict]:
    return [
        {"type": "message", "role": "user", "content": f"Task {i}: write an agent"},
        {"type": "tool_use", "tool_name": "read_file", "tool_call_id": f"c{i}", "tool_input": {"path": "agents.py"}},
        {"type": "tool_result", "tool_call_id": f"c{i}", "tool_output": "class LlmAgent:\n    instruction: str"},
        {"type": "message", "role": "model", "content": f"agent.system_prompt = 'x'  # case {i}"},
    ]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    write_run(runs, "r1", [event("section_start", {"name": "Generator: g"}),
                           *[result_event(f"{i:02d}: case", attempts=[attempt(1, "success", None, _trace(i))],
                                          validation_error=f"AttributeError: 'LlmAgent' has no attribute 'system_prompt' ({i})")
                             for i in range(6)]])
    path = tmp_path / "analysis_cache.db"
    ingest_runs(runs, path)
    return path


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> FakeGemini:
    for name in ("GEMINI_API_KEYS", "GEMINI_API_KEYS_POOL", "GEMINI_API_KEY", "GOOGLE_API_KEY", "RCA_MODEL"):
        monkeypatch.delenv(name, raising=False)
    with FakeGemini() as fake:
        monkeypatch.setenv("GEMINI_API_KEYS", f"{K1},{K2}")
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.url)
        yield fake


def _calls(server: FakeGemini, key: str | None = None) -> list:
    return [r for r in server.requests if r.path.endswith(GENERATE) and (key is None or r.key == key)]


def _run(db: Path, **kw) -> "pd.DataFrame":  # noqa: F821
    return analyze_failures(load_failures(db), backend="gemini", progress=False, **kw)


def test_the_default_model_is_the_latest_flash_priced_and_set_up_as_gemini_3() -> None:
    assert DEFAULT_MODEL == "gemini-3.8-flash" and DEFAULT_MODEL in DEFAULT_MODELS
    cost = call_cost(DEFAULT_MODEL, input_tokens=2_000_000, output_tokens=1_000_000, cached_tokens=1_000_000)
    assert cost == pytest.approx(0.75 + 0.075 + 3.75)  # genai-prices' list price per 1M: input, cached input, output
    settings = generation_settings(DEFAULT_MODEL)  # Gemini 3: default temperature, a thinking level
    assert "temperature" not in settings and settings["thinking_config"].thinking_level is not None


def test_each_row_gets_a_category_written_to_the_cache(db: Path, server: FakeGemini) -> None:
    out = _run(db)
    assert out.category.isin(DEFAULT_TAXONOMY.names).all() and out.analysis_error.isna().all()
    assert (out.input_tokens > 0).all() and (out.cost_usd > 0).all()
    assert (out.model == DEFAULT_MODEL).all()
    stored = load_failures(db)
    assert stored.llm_root_cause.tolist() == out.category.tolist()
    assert json.loads(stored.llm_analysis[0])["root_cause_category"] == out.category[0]
    body = _calls(server)[0].json
    system = body["systemInstruction"]["parts"][0]["text"]
    assert all(c.name in system for c in DEFAULT_TAXONOMY.categories)
    schema = body["generationConfig"]["responseJsonSchema"]
    assert "root_cause_category" in schema["properties"]
    user = body["contents"][0]["parts"][0]["text"]
    assert user.index("<task>") < user.index("<trace") < user.index("<final_answer>") < user.index("<error>")
    assert "[1] agent: call read_file(" in user and "[2] read_file -> class LlmAgent" in user and "system_prompt" in user
    assert _calls(server)[0].path.startswith(f"/v1/models/{DEFAULT_MODEL}")


def test_rerun_makes_no_calls_unless_forced_or_inputs_change(db: Path, server: FakeGemini) -> None:
    _run(db)
    first = len(_calls(server))
    assert first == 6
    requests = len(server.requests)
    again = _run(db)
    assert len(server.requests) == requests and again.from_cache.all()  # not even a model check
    _run(db, force=True)
    assert len(_calls(server)) == 2 * first
    finer = Taxonomy(name="finer", categories=(*DEFAULT_TAXONOMY.categories, Category(name="Other", definition="None of these.")))
    _run(db, taxonomy=finer)
    assert len(_calls(server)) == 3 * first
    _run(db, model="gemini-2.5-flash")
    assert len(_calls(server)) == 4 * first


def test_a_rate_limited_key_cools_down_and_calls_move_to_the_other(db: Path, server: FakeGemini) -> None:
    server.script([Reply.rate_limited(retry_delay=60)], key=K1)
    out = _run(db, concurrency=1)
    assert out.analysis_error.isna().all()
    k1 = _calls(server, K1)
    assert len(k1) == 1 and k1[0].status == 429  # never tried again within its cooldown
    assert len([r for r in _calls(server, K2) if r.status == 200]) == 6


def test_retry_delay_from_the_response_is_honoured(db: Path, server: FakeGemini, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEYS", K1)
    server.script([Reply.rate_limited(retry_delay=1.0)], key=K1)
    out = _run(db, concurrency=1)
    assert out.analysis_error.isna().all()
    calls = _calls(server, K1)
    assert calls[0].status == 429 and calls[1].time - calls[0].time >= 0.95


def test_per_day_quota_retires_the_key_and_dead_keys_are_dropped(db: Path, server: FakeGemini) -> None:
    server.script([Reply.rate_limited(retry_delay=1, per_day=True)], key=K1)
    out = _run(db, concurrency=2)
    assert out.analysis_error.isna().all() and len(_calls(server, K1)) == 1
    server.reset()
    server.revoke(K2, code=403)
    out = _run(db, force=True, concurrency=1)
    assert out.analysis_error.isna().all() and len(_calls(server, K2)) == 1


def test_every_key_dead_stops_the_batch_with_one_clear_error(db: Path, server: FakeGemini, capsys) -> None:
    server.revoke(K1)
    server.revoke(K2, code=401)
    with pytest.raises(AllKeysDead, match="every API key is unusable") as info:
        _run(db)
    assert K1 not in str(info.value) and K2 not in str(info.value)
    assert len(_calls(server)) <= 2 + 2  # one check_model per key at most, no call per row
    assert load_failures(db).llm_root_cause.isna().all()


def test_server_errors_are_retried_and_hard_failures_stay_per_row(db: Path, server: FakeGemini) -> None:
    server.script([Reply.error(503), Reply.malformed(), Reply.blocked(), Reply.max_tokens()])
    out = _run(db, concurrency=1)
    errors = out.analysis_error.dropna().tolist()
    assert len(errors) == 2 and out.category.notna().sum() == 4  # the 503 and the proxy's HTML page: retried
    assert [r.status for r in _calls(server)][:3] == [503, 200, 200]
    assert any("blocked: SAFETY" in e for e in errors)
    assert any("finish reason MAX_TOKENS" in e for e in errors)
    with sqlite3.connect(db) as conn:
        kept = conn.execute("SELECT raw_response FROM analyses WHERE error LIKE '%MAX_TOKENS%'").fetchone()[0]
    assert kept  # the truncated text is kept for inspection


def test_off_schema_answer_gets_one_repair_then_a_parse_error(db: Path, server: FakeGemini) -> None:
    server.script([Reply.off_schema(), Reply.ok(), Reply.off_schema(), Reply.off_schema()])
    out = _run(db, concurrency=1)
    assert out.analysis_error.notna().sum() == 1
    assert "parse error" in out.analysis_error.dropna().iloc[0]
    repair = _calls(server)[1].json["contents"]
    assert [c["role"] for c in repair] == ["user", "model", "user"] and "did not match" in repair[-1]["parts"][0]["text"]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT raw_response FROM analyses WHERE error LIKE 'parse error%'").fetchone()[0]


def test_unknown_model_fails_fast_before_any_row(db: Path, server: FakeGemini) -> None:
    with pytest.raises(UnknownModel, match="does not know model 'gemini-9-nope'"):
        _run(db, model="gemini-9-nope")
    assert _calls(server) == []


def test_dry_run_makes_no_calls_and_estimates_cost(db: Path, server: FakeGemini) -> None:
    out = _run(db, dry_run=True)
    assert server.requests == []
    assert (out.est_input_tokens > 100).all() and (out.est_cost_usd > 0).all()
    assert out.attrs["dry_run_total"]["rows"] == 6


def test_budget_stops_scheduling_new_calls(db: Path, server: FakeGemini, capsys) -> None:
    estimate = _run(db, dry_run=True).est_cost_usd.iloc[0]
    spent = _run(db).cost_usd.iloc[0]  # what one row really costs at this fake's token counts
    assert 0 < spent < estimate
    # One call at a time: a row is sent only while spent so far + its estimate fits, so exactly two go.
    budget = estimate + 1.5 * spent
    out = _run(db, budget_usd=budget, concurrency=1, force=True)
    assert out.category.notna().sum() == 2 and out.cost_usd.fillna(0).sum() <= budget
    assert out.analysis_error.dropna().str.contains("budget").all() and out.analysis_error.notna().sum() == 4
    assert "budget" in capsys.readouterr().err


def test_an_interrupted_batch_resumes_without_repeating_answered_rows(db: Path, server: FakeGemini) -> None:
    server.script([Reply.ok(), Reply.ok(), Reply.latency(30)] * 2)

    async def interrupted() -> None:
        task = asyncio.ensure_future(analyze_failures_async(load_failures(db), backend="gemini", progress=False, concurrency=1))
        while load_failures(db).llm_root_cause.notna().sum() < 2:
            await asyncio.sleep(0.05)
        task.cancel()  # like a kernel interrupt in the middle of the third call
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(interrupted())
    assert load_failures(db).llm_root_cause.notna().sum() == 2
    server.reset()
    out = _run(db)
    assert out.from_cache.sum() == 2 and len(_calls(server)) == 4


def test_keys_never_reach_the_database_or_the_output(db: Path, server: FakeGemini, capsys, caplog) -> None:
    server.script([Reply.rate_limited(retry_delay=0.1), Reply.error(500)], key=K1)
    server.revoke(K2)
    _run(db)
    dump = "\n".join(sqlite3.connect(db).iterdump())
    seen = dump + capsys.readouterr().err + caplog.text
    assert K1 not in seen and K2 not in seen


def test_works_inside_a_running_event_loop_like_a_notebook(db: Path, server: FakeGemini) -> None:
    async def cell() -> int:
        out = analyze_failures(load_failures(db), backend="gemini", progress=False)  # sync call, loop running
        return int(out.category.notna().sum())

    assert asyncio.run(cell()) == 6


def test_concurrency_is_bounded(db: Path, server: FakeGemini) -> None:
    server.latency = 0.2
    start = time.perf_counter()
    _run(db, concurrency=3)
    assert server.max_in_flight <= 3
    assert time.perf_counter() - start < 6 * 0.2 * 0.95 + 5  # sanity: did not run one by one with long stalls


def test_offline_analyzer_refuses_a_custom_taxonomy_before_any_row(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GEMINI_API_KEYS", "GEMINI_API_KEYS_POOL", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    custom = Taxonomy(name="mine", categories=(Category(name="A", definition="a"), Category(name="B", definition="b")))
    with pytest.raises(ValueError, match="custom taxonomy with the gemini backend"):
        analyze_failures(load_failures(db), taxonomy=custom, progress=False)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM analyses").fetchone()[0] == 0
