"""Patterns with Gemini, end to end: the real google-genai client against rca.testing.FakeGemini,
answering as a model would from the prompt it receives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import rca
from bench.bench_patterns import insert_analyzed
from rca.errors import UnknownModel
from rca.pricing import price_known
from rca.render import estimate_tokens
from rca.synthesis import DEFAULT_SYNTHESIS_MODEL, PROMPT_BUDGET_TOKENS
from rca.testing import DEFAULT_MODELS, FakeGemini, Reply

KEY = "AIzaSyC-synthesis-test-key-000000000000"
GENERATE = ":generateContent"
CATEGORIES = ("Hallucination", "Tool Misuse", "Infrastructure")


def _failures(n: int, *, start: int = 0) -> list[dict[str, Any]]:
    """n analyzed failures over three categories, three attempts per case."""
    rows = []
    for i in range(start, start + n):
        category = CATEGORIES[i % 3]
        answer = {"root_cause_category": category, "fix": f"Fix number {i % 7} for {category}",
                  "explanation": f"Failure {i}: the agent hit the {category.lower()} cause again, as in case {i // 3}; "
                                 "it ran read_file, then wrote an answer that the checker rejected outright.",
                  "tools_called": ["read_file"], "hallucinated_symbols": [f"sym_{i % 5}"] if i % 3 == 0 else []}
        rows.append({"run_id": "r1", "benchmark_name": f"case {i // 3}", "suite": "fix_errors", "generator": "g",
                     "attempt_number": i % 3 + 1, "raw_error": f"ValueError: failure {i}", "answer": answer})
    return rows


def _lines(request: dict[str, Any], field: str) -> list[dict[str, Any]]:
    """The JSON lines of the first user turn that carry `field`: what the model was asked about."""
    text = request["contents"][0]["parts"][0]["text"]
    return [data for line in text.splitlines() if line.startswith("{") and field in (data := json.loads(line))]


def model(request: dict[str, Any], key: str | None) -> dict[str, Any]:
    """A well-behaved model: one pattern per category, merges by category, assigns by category."""
    schema = request["generationConfig"]["responseJsonSchema"]["properties"]
    if "other_ids" in schema:
        by_category: dict[str, list[int]] = {}
        for f in _lines(request, "id"):
            by_category.setdefault(f["category"], []).append(f["id"])
        return {"patterns": [{"name": f"{c} cause", "description": "It fails. Again.", "fix": f"Fix {c}",
                              "agent_caused": c != "Infrastructure", "failure_ids": ids} for c, ids in by_category.items()],
                "other_ids": []}
    if "assignments" in schema:
        keys = {p["category"]: p["key"] for p in _lines(request, "key")}
        return {"assignments": [{"failure_id": f["id"], "pattern": keys.get(f["category"], "other")}
                                for f in _lines(request, "id")]}
    merged: dict[str, list[str]] = {}
    for p in _lines(request, "key"):
        merged.setdefault(p["category"], []).append(p["key"])
    return {"patterns": [{"name": f"{c} cause", "description": "It fails. Again.", "fix": f"Fix {c}",
                          "agent_caused": c != "Infrastructure", "source_keys": keys} for c, keys in merged.items()]}


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> FakeGemini:
    for name in ("GEMINI_API_KEYS", "GEMINI_API_KEYS_POOL", "GEMINI_API_KEY", "GOOGLE_API_KEY", "RCA_SYNTHESIS_MODEL"):
        monkeypatch.delenv(name, raising=False)
    with FakeGemini(models=(*DEFAULT_MODELS, DEFAULT_SYNTHESIS_MODEL), answer=model) as fake:
        monkeypatch.setenv("GEMINI_API_KEY", KEY)
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.url)
        yield fake


def _calls(server: FakeGemini) -> list:
    return [r for r in server.requests if r.path.endswith(GENERATE)]


def _prompt_tokens(request: Any) -> int:
    texts = [p["text"] for c in request.json["contents"] for p in c["parts"]]
    texts += [p["text"] for p in request.json["systemInstruction"]["parts"]]
    return sum(estimate_tokens(t) for t in texts)


def _find(db: Path, **kw: Any) -> Any:
    return rca.find_patterns(rca.load_failures(db), backend="gemini", progress=False, **kw)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    insert_analyzed(tmp_path / "c.db", _failures(12))
    return tmp_path / "c.db"


def test_synthesis_reads_the_answers_and_names_every_failure(db: Path, server: FakeGemini) -> None:
    frame = _find(db)
    (call,) = _calls(server)
    assert call.model == DEFAULT_SYNTHESIS_MODEL and "responseJsonSchema" in call.json["generationConfig"]
    sent = _lines(call.json, "id")
    assert [f["id"] for f in sent] == sorted(f["id"] for f in sent if f["category"] == "Hallucination") + sorted(
        f["id"] for f in sent if f["category"] == "Infrastructure") + sorted(
        f["id"] for f in sent if f["category"] == "Tool Misuse")  # grouped by category
    assert {"explanation", "fix", "error", "failing_tool"} <= set(sent[0]) and "symbols" in sent[0]
    assert frame["name"].tolist() == ["Hallucination cause", "Tool Misuse cause", "Infrastructure cause"]
    assert frame["agent_caused"].tolist() == [True, True, False]
    assert sorted(i for ids in frame["failure_ids"] for i in ids) == sorted(rca.load_failures(db)["id"])
    assert frame["failed_cases"].tolist() == [4, 4, 4] and frame["attempts"].tolist() == [4, 4, 4]
    meta = frame.attrs["rca_patterns"]
    assert meta["calls"] == 1 and meta["source"] == "synthesized" and meta["cost_usd"] > 0


def _bad(request: dict[str, Any], key: str | None) -> dict[str, Any]:
    """An answer naming an id that does not exist and leaving one out."""
    answer = model(request, key)
    answer["patterns"][0]["failure_ids"] = [*answer["patterns"][0]["failure_ids"][1:], 99_999]
    return answer


def test_a_bad_id_gets_one_repair_turn_naming_it(db: Path, server: FakeGemini) -> None:
    server.script([Reply.ok(answer=_bad)])
    frame = _find(db)
    first, repair = _calls(server)
    assert len(repair.json["contents"]) == 3 and "99999" in repair.json["contents"][2]["parts"][0]["text"]
    assert "missing" in repair.json["contents"][2]["parts"][0]["text"]
    assert sorted(i for ids in frame["failure_ids"] for i in ids) == sorted(rca.load_failures(db)["id"])
    assert not frame["other"].any() and frame.attrs["rca_patterns"]["notes"] == []


def test_bad_ids_after_the_repair_are_dropped_and_the_rest_go_to_other(db: Path, server: FakeGemini) -> None:
    server.script([Reply.ok(answer=_bad), Reply.ok(answer=_bad)])
    frame = _find(db)
    assert len(_calls(server)) == 2
    ids = [i for ids in frame["failure_ids"] for i in ids]
    assert 99_999 not in ids and sorted(ids) == sorted(rca.load_failures(db)["id"])
    assert frame["other"].sum() == 1 and frame[frame["other"]]["attempts"].tolist() == [1]
    assert "99999" in frame.attrs["rca_patterns"]["notes"][0]


def test_a_large_run_is_synthesized_in_bounded_chunks_then_merged(tmp_path: Path, server: FakeGemini) -> None:
    insert_analyzed(tmp_path / "big.db", _failures(5_000))
    frame = _find(tmp_path / "big.db")
    calls = _calls(server)
    merges = [c for c in calls if "source_keys" in json.dumps(c.json["generationConfig"]["responseJsonSchema"])]
    assert len(merges) == 1 and len(calls) >= 5  # several chunks, one merge over their patterns
    assert not _lines(merges[0].json, "id") and len(_lines(merges[0].json, "key")) == len(calls) - 1 + 2
    biggest = max(_prompt_tokens(c) for c in calls)
    assert biggest <= PROMPT_BUDGET_TOKENS and frame.attrs["rca_patterns"]["max_prompt_tokens"] <= PROMPT_BUDGET_TOKENS
    assert len(frame) == 3 and frame["attempts"].sum() == 5_000 and not frame["other"].any()


def test_a_rerun_calls_nothing_and_a_new_failure_is_assigned_in_one_call(db: Path, server: FakeGemini) -> None:
    first = _find(db)
    assert len(_calls(server)) == 1
    again = _find(db)
    assert len(_calls(server)) == 1 and again.attrs["rca_patterns"]["source"] == "cache"
    (new_id,) = insert_analyzed(db, _failures(1, start=12))  # a Hallucination, like failures 0, 3, 6, 9
    grown = _find(db)
    calls = _calls(server)
    assert len(calls) == 2 and "assignments" in calls[1].json["generationConfig"]["responseJsonSchema"]["properties"]
    assert [f["id"] for f in _lines(calls[1].json, "id")] == [new_id]  # only the new failure is sent
    assert grown.attrs["rca_patterns"]["source"] == "assigned" and grown.attrs["rca_patterns"]["calls"] == 1
    assert new_id in grown["failure_ids"][0] and grown["attempts"].tolist() == [5, 4, 4]
    assert grown["name"].tolist() == first["name"].tolist()
    assert _find(db).attrs["rca_patterns"]["source"] == "cache" and len(_calls(server)) == 2


def test_the_synthesis_model_is_a_pro_model_and_can_be_changed(db: Path, server: FakeGemini,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    assert "pro" in DEFAULT_SYNTHESIS_MODEL and price_known(DEFAULT_SYNTHESIS_MODEL)
    monkeypatch.setenv("RCA_SYNTHESIS_MODEL", "gemini-2.5-pro")
    assert _find(db).attrs["rca_patterns"]["model"] == "gemini-2.5-pro"
    assert [c.model for c in _calls(server)] == ["gemini-2.5-pro"]
    with pytest.raises(UnknownModel):
        _find(db, synthesis_model="gemini-0-nonexistent")
    assert len(_calls(server)) == 1  # the unknown model was refused before any prompt was sent
