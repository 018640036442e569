"""Agreement figures on a hand-made labelled set whose answers are worked out by hand (in the comments),
then the same read from a cache: per model and labeller, latest answers only, the agent of the step."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import rca
from rca.agreement import (between_labellers, by_confidence, confusion_figure, confusion_frame, figures,
                           format_agreement, per_category, worst_disagreements)
from rca.cli import main
from rca.store import AnalysisRecord, connect, record_analysis

A, B, C = "Hallucination", "Tool Misuse", "Logic Error"
LOGS = Path(__file__).parent / "data" / "multiagent"


@pytest.fixture
def pairs() -> pd.DataFrame:
    """Ten answers against their labels."""
    return pd.DataFrame({
        "failure_id": range(1, 11), "benchmark_name": [f"case {i}" for i in range(1, 11)], "labeller": "ann",
        "taxonomy": rca.DEFAULT_TAXONOMY.key, "model": "m",
        "true_category": [A, A, A, A, B, B, B, C, C, C],
        "pred_category": [A, A, A, B, B, B, A, C, C, B],
        "true_step": pd.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], dtype="Int64"),
        "pred_step": pd.array([0, 2, 5, 3, None, 9, 6, 6, 8, 0], dtype="Int64"),
        "candidates": [[0], [2, 1], [5], [3], [], [9, 5], [6], [6, 7], [8], [0]],
        "true_agent": ["a", "a", "b", "b", None, None, "a", "b", "a", "b"],
        "pred_agent": ["a", "b", " B", "b", "x", None, "a", "a", "a", None],
        "confidence": [0.95, 0.95, 0.95, 0.95, 0.8, 0.8, 0.6, 0.6, 0.3, 0.3],
        "note": None,
    })


def _values(frame: pd.DataFrame) -> dict[str, tuple[float, int]]:
    return {row.figure: (row.value, row.n) for row in frame.itertuples()}


def test_figures_match_the_hand_computed_values(pairs: pd.DataFrame) -> None:
    got = _values(figures(pairs))
    # categories: cases 1-3, 5-6, 8-9 agree -> 7/10
    assert got["category accuracy"] == (pytest.approx(0.7), 10)
    # kappa: p_o = .7; labelled A4 B3 C3, answered A4 B4 C2 -> p_e = (16 + 12 + 6) / 100 = .34;
    # (.7 - .34) / (1 - .34) = 6/11
    assert got["category kappa"] == (pytest.approx(6 / 11), 10)
    # step distances 0, 1, 3, 0, (no step), 4, 0, 1, 0, 9
    assert got["step exact"] == (pytest.approx(0.4), 10)
    assert got["step within 1"] == (pytest.approx(0.6), 10)
    assert got["step within 3"] == (pytest.approx(0.7), 10)
    # the labelled step is a candidate in cases 1, 2, 4, 6, 7, 8, 9
    assert got["step among candidates"] == (pytest.approx(0.7), 10)
    # 8 labelled agents; right in cases 1, 3 (" B" is b), 4, 7, 9; wrong 2, 8, and 10 (no agent answered)
    assert got["agent accuracy"] == (pytest.approx(5 / 8), 8)


def test_intervals_hold_the_value_are_reproducible_and_close_on_a_perfect_set(pairs: pd.DataFrame) -> None:
    first, again = figures(pairs, seed=3), figures(pairs, seed=3)
    pd.testing.assert_frame_equal(first, again)
    assert ((first["low"] <= first["value"]) & (first["value"] <= first["high"])).all()
    accuracy = first.set_index("figure").loc["category accuracy"]
    assert 0.3 <= accuracy["low"] < 0.7 < accuracy["high"] <= 1.0  # ten cases: a wide interval
    perfect = pairs.assign(pred_category=pairs["true_category"], pred_step=pairs["true_step"])
    exact = figures(perfect).set_index("figure")
    assert exact.loc["category accuracy", ["value", "low", "high"]].tolist() == [1.0, 1.0, 1.0]
    assert exact.loc["category kappa", "value"] == 1.0 and exact.loc["step exact", "high"] == 1.0


def test_confusion_and_per_category_precision_recall(pairs: pd.DataFrame) -> None:
    matrix = confusion_frame(pairs)
    assert list(matrix.index) == rca.DEFAULT_TAXONOMY.names  # the taxonomy's order
    assert matrix.loc[[A, B, C], [A, B, C]].values.tolist() == [[3, 1, 0], [1, 2, 0], [0, 1, 2]]
    assert int(matrix.values.sum()) == 10
    per = per_category(pairs).set_index("category")
    # A: 3 of 4 answered right, 3 of 4 labelled found; B: 2 of 4, 2 of 3; C: 2 of 2, 2 of 3
    assert per.loc[A, ["precision", "recall"]].tolist() == [0.75, 0.75]
    assert per.loc[B, ["precision", "recall"]].tolist() == pytest.approx([0.5, 2 / 3])
    assert per.loc[C, ["precision", "recall"]].tolist() == pytest.approx([1.0, 2 / 3])
    assert per.loc[C, ["labelled", "answered"]].tolist() == [3, 2]
    assert np.isnan(per.loc["Infrastructure", "precision"])  # never answered, never labelled
    fig = confusion_figure(matrix)
    assert fig.data[0].type == "heatmap" and list(fig.data[0].y) == rca.DEFAULT_TAXONOMY.names


def test_accuracy_by_confidence_band(pairs: pd.DataFrame) -> None:
    bands = by_confidence(pairs).set_index("confidence")
    assert bands["n"].tolist() == [2, 2, 2, 4]
    # 0.9-1: cases 1-4; 0.7-0.9: 5, 6; 0.5-0.7: 7, 8; 0-0.5: 9, 10
    assert bands.loc["0.9–1", ["category accuracy", "step exact"]].tolist() == [0.75, 0.5]
    assert bands.loc["0.7–0.9", ["category accuracy", "step exact"]].tolist() == [1.0, 0.0]
    assert bands.loc["0.5–0.7", ["category accuracy", "step exact"]].tolist() == [0.5, 0.5]
    assert bands.loc["0–0.5", ["category accuracy", "step exact"]].tolist() == [0.5, 0.5]


def test_worst_disagreements_are_the_most_confident_contradictions(pairs: pd.DataFrame) -> None:
    # wrong category: 4, 7, 10; step off by more than one (or none): 3, 5, 6, 10
    assert worst_disagreements(pairs)["failure_id"].tolist() == [3, 4, 5, 6, 7, 10]
    assert worst_disagreements(pairs, n=2)["failure_id"].tolist() == [3, 4]


def test_labeller_against_labeller_on_the_failures_both_labelled() -> None:
    labels = pd.DataFrame({
        "failure_id": [1, 2, 3, 4, 1, 2, 3, 4, 9],
        "labeller": ["ann"] * 4 + ["bob"] * 4 + ["carol"],
        "category": [A, A, B, B, A, B, B, B, A],
        "step": pd.array([1, 2, 3, None, 1, 4, None, 2, 0], dtype="Int64"),
        "agent": None,
    })
    got = between_labellers(labels)
    assert set(zip(got["labeller_a"], got["labeller_b"])) == {("ann", "bob")}  # carol shares no failure
    values = _values(got)
    assert values["category accuracy"] == (pytest.approx(0.75), 4)
    # p_o = .75; ann A2 B2, bob A1 B3 -> p_e = (2 + 6) / 16 = .5 -> kappa .5
    assert values["category kappa"] == (pytest.approx(0.5), 4)
    # steps both gave: failures 1 (1, 1) and 2 (2, 4)
    assert values["step exact"] == (pytest.approx(0.5), 2) and values["step within 3"] == (pytest.approx(1.0), 2)
    assert values["agent accuracy"][1] == 0


def _answer(conn, failure_id: int, model: str, category: str, step: int | None, agent: str | None,
            error: str | None = None) -> None:
    analysis = None if error else (f'{{"root_cause_category": "{category}", "root_cause_step": {step or 0}, '
                                   f'"candidate_steps": [{step or 0}], "confidence": 0.9}}')
    record_analysis(conn, AnalysisRecord(
        failure_id=failure_id, model=model, taxonomy=rca.DEFAULT_TAXONOMY.key, prompt_version="2", trace_hash="h",
        category=None if error else category, analysis=analysis, confidence=None if error else 0.9,
        evidence_total=0, evidence_verified=0, input_tokens=0, output_tokens=0, thinking_tokens=0, cached_tokens=0,
        cost_usd=0.0, latency_s=0.0, error=error, raw_response=None, created_at=datetime.now(UTC).isoformat(),
        root_cause_step=step, root_cause_agent=agent))


def test_agreement_from_a_cache_grades_each_models_latest_answer_against_each_labeller(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(LOGS, tmp_path / "logs")
    db = tmp_path / "cache.db"
    rca.ingest_runs(tmp_path / "logs", db)  # dataset labels: 1 -> step 0 Excel_Expert, 2 -> step 1 Orchestrator
    conn = connect(db)
    _answer(conn, 1, "m1", C, 3, "Excel_Expert")   # superseded below
    _answer(conn, 1, "m1", A, 0, "Excel_Expert")
    _answer(conn, 1, "m1", B, 5, None, error="blocked")  # an error is no answer
    _answer(conn, 2, "m1", A, 2, None)  # no agent named: the agent of step 2, Orchestrator
    _answer(conn, 1, "m2", C, 4, "DataVerification_Expert")
    conn.close()
    rca.label(db, 1, category=A, step=0, labeller="ann")
    rca.label(db, 2, category=C, step=1, agent="Orchestrator", labeller="ann")
    result = rca.agreement(db)
    judge = result.judge.set_index(["model", "labeller", "figure"])
    assert judge.loc[("m1", "dataset", "step exact"), ["value", "n"]].tolist() == [0.5, 2]
    assert judge.loc[("m1", "dataset", "agent accuracy"), ["value", "n"]].tolist() == [1.0, 2]
    assert judge.loc[("m1", "ann", "category accuracy"), ["value", "n"]].tolist() == [0.5, 2]
    assert judge.loc[("m2", "dataset", "step exact"), ["value", "n"]].tolist() == [0.0, 1]
    assert judge.loc[("m2", "dataset", "agent accuracy"), "value"] == 0.0
    pairs = result.pairs.set_index(["model", "labeller", "failure_id"])
    assert pairs.loc[("m1", "ann", 2), "pred_agent"] == "Orchestrator"
    assert set(result.labellers["labeller_b"]) == {"dataset"}
    assert rca.agreement(db, limit=1).pairs["failure_id"].unique().tolist() == [1]
    assert main(["validate", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "m1 (default@" in out and "against ann: 2 labelled failures" in out and "dataset against ann" in out
    assert "category accuracy" in out and "[" in out and "by confidence" in out


def test_an_unlabelled_cache_says_what_to_do(tmp_path: Path) -> None:
    db = tmp_path / "cache.db"
    connect(db).close()
    result = rca.agreement(db)
    assert result.judge.empty and result.labellers.empty
    assert "label some" in format_agreement(result)


def test_the_resampled_kappas_are_scikit_learns() -> None:
    from sklearn.metrics import cohen_kappa_score

    from rca.agreement import _kappas

    rng = np.random.default_rng(1)
    truth = rng.choice([A, B, C, "Infrastructure"], 30).astype(object)
    pred = np.where(rng.random(30) < 0.6, truth, rng.choice([A, B, C], 30)).astype(object)
    draws = rng.integers(0, 30, size=(40, 30))
    assert _kappas(truth, pred, draws) == pytest.approx([cohen_kappa_score(truth[i], pred[i]) for i in draws])
