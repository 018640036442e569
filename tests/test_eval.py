"""`rca eval` on the shared multi-agent logs: offline, and through FakeGemini with scripted answers whose
figures are worked out by hand; each eval recorded and listed side by side."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import rca
from rca.cli import main
from rca.errors import InputError
from rca.evaluate import eval_history, evaluate, format_eval
from rca.testing import FakeGemini

LOGS = Path(__file__).parent / "data" / "multiagent"
ANALYZER, FIRST, LAST = "analyzer", "always first step", "always last step"


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    shutil.copytree(LOGS, tmp_path / "multiagent")
    return tmp_path / "multiagent"


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GEMINI_API_KEYS", "GEMINI_API_KEYS_POOL", "GEMINI_API_KEY", "GOOGLE_API_KEY", "RCA_MODEL"):
        monkeypatch.delenv(name, raising=False)


def _value(result: Any, who: str, figure: str) -> float:
    return float(result.table().loc[who, figure])


def test_offline_eval_on_the_shared_logs_beside_the_trivial_guesses(logs: Path, tmp_path: Path) -> None:
    db = tmp_path / "eval.db"
    result = evaluate(logs, db=db)
    assert result.cases == 2 and result.settings["backend"] == "heuristic" and result.settings["labeller"] == "dataset"
    # labels: algorithm-generated-1 step 0 Excel_Expert (of 6 steps), hand-crafted-24 step 1 Orchestrator (of 5)
    # the offline analyzer names step 0 (Excel_Expert) and step 1 (Orchestrator, the only agent)
    assert _value(result, ANALYZER, "step exact") == 1.0 and _value(result, ANALYZER, "agent accuracy") == 1.0
    # first: steps 0 (right) and 0 (the human's question: one off, no agent)
    assert [_value(result, FIRST, f) for f in ("step exact", "step within 1", "agent accuracy")] == [0.5, 1.0, 0.5]
    # last: steps 5 (DataVerification_Expert, five off) and 4 (Orchestrator, three off)
    assert [_value(result, LAST, f) for f in ("step exact", "step within 3", "agent accuracy")] == [0.0, 0.5, 0.5]
    assert "random step (seed 0)" in result.figures
    text = format_eval(result)
    assert "| offline analyzer | 2 | 100% [100%, 100%] | 100% [100%, 100%] |" in text
    assert "| always last step | 2 | 50% | 0% | 0% | 50% | – |" in text and "step accuracy" in text
    again = evaluate(logs, db=db, budget_usd=0.5)  # answers from the cache, a second record
    assert again.id == result.id + 1 and again.table().equals(result.table())
    history = eval_history(db)
    assert history["id"].tolist() == [result.id, again.id] and history["budget_usd"].isna().tolist() == [True, False]
    assert history["step exact"].tolist() == [1.0, 1.0] and set(history["model"]) == {"heuristic"}


def test_eval_against_a_persons_labels_imported_into_the_eval_cache(logs: Path, tmp_path: Path) -> None:
    db = tmp_path / "eval.db"
    evaluate(logs, db=db)
    rca.label(db, 1, category="Context Starvation", step=0, labeller="ann")
    rca.label(db, 2, category="Logic Error", step=3, labeller="ann")
    result = evaluate(logs, db=db, labeller="ann")
    # the offline analyzer answers Context Starvation for both, at steps 0 and 1
    assert _value(result, ANALYZER, "category accuracy") == 0.5 and _value(result, ANALYZER, "step exact") == 0.5
    assert _value(result, ANALYZER, "step within 3") == 1.0 and "agent accuracy" not in format_eval(result)
    with pytest.raises(InputError, match="no labels by 'bob'.*labellers there: \\['ann', 'dataset'\\]"):
        evaluate(logs, db=db, labeller="bob")


def test_a_data_set_without_labels_is_refused(tmp_path: Path) -> None:
    chats = tmp_path / "chats.jsonl"
    chats.write_text(json.dumps({"id": "c1", "error": "wrong answer", "messages": [
        {"role": "user", "content": "add 2 and 2"}, {"role": "assistant", "content": "5"}]}) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="no labels by 'dataset'.*rca eval needs a labelled data set"):
        evaluate(chats, db=tmp_path / "eval.db")


def _scripted(request: dict[str, Any], key: str | None) -> dict[str, Any]:
    """Algorithm-generated-1 (the awning spreadsheet): step 0 by Excel_Expert, right. Hand-crafted-24 (Tizin):
    step 3 with no agent named (one agent acts: the Orchestrator), candidates 3 then 1."""
    prompt = request["contents"][0]["parts"][0]["text"]
    awning = "awning" in prompt
    return {"explanation": "x", "expected_behavior": "x", "actual_behavior": "x",
            "root_cause_step": 0 if awning else 3, "candidate_steps": [0] if awning else [3, 1],
            "root_cause_agent": "Excel_Expert" if awning else None, "evidence": [], "fix": "x",
            "confidence": 0.9 if awning else 0.6, "used_tools": False, "tools_called": [],
            "received_useful_output": True, "hallucinated_symbols": [], "schema_validation_failed": False,
            "root_cause_category": "Logic Error"}


def test_eval_through_fake_gemini_gives_the_scripted_figures(
        logs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "eval.db"
    with FakeGemini(answer=_scripted) as server:
        monkeypatch.setenv("GEMINI_API_KEY", "AIzaSy-eval-test-key-00000000000000000")
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.url)
        assert main(["eval", str(logs), "--db", str(db), "--backend", "gemini", "--model", "gemini-2.5-flash"]) == 0
        prompts = [r.json["contents"][0]["parts"][0]["text"] for r in server.requests if r.path.endswith(":generateContent")]
    assert len(prompts) == 2 and not any("mistake" in p.lower() for p in prompts)  # the labels stay out
    out = capsys.readouterr().out
    # agent: Excel_Expert right; the Orchestrator (agent of step 3) right -> 100%
    # step: 0 exact; 3 against 1: two off (not within 1, within 3), 1 among the candidates -> 50%, 50%, 100%, 100%
    assert "| gemini gemini-2.5-flash | 2 | 100% [100%, 100%] | 50% [0%, 100%] | 50% [0%, 100%] | " \
           "100% [100%, 100%] | 100% [100%, 100%] |" in out
    history = eval_history(db)
    assert history[["backend", "model"]].values.tolist() == [["gemini", "gemini-2.5-flash"]]
    assert main(["eval", "--history", "--db", str(db)]) == 0
    assert "| gemini | gemini-2.5-flash |" in capsys.readouterr().out
    with sqlite3.connect(db) as conn:
        assert json.loads(conn.execute("SELECT figures FROM evals").fetchone()[0])[ANALYZER]["step exact"]["value"] == 0.5


def test_rca_eval_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(tmp_path / "missing")]) == 2
    assert main(["eval", "--history"]) == 2
    assert main(["eval", "--history", "--db", str(tmp_path / "none.db")]) == 2
    assert "no labelled data set" in capsys.readouterr().err
