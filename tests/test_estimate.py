"""Dry runs are honest: cached rows cost nothing, no key is needed, any taxonomy can be estimated."""

from __future__ import annotations

from pathlib import Path

import pytest

import rca
from rca.schema import Category, Taxonomy
from tests.conftest import attempt, result_event, write_run

CUSTOM = Taxonomy(name="mine", categories=(Category(name="A", definition="a"), Category(name="B", definition="b")))


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("GEMINI_API_KEY", "GEMINI_API_KEYS", "GEMINI_API_KEYS_POOL", "GOOGLE_API_KEY", "RCA_MODEL"):
        monkeypatch.delenv(name, raising=False)
    trace = [{"type": "message", "role": "model", "content": "x" * 4000}]
    write_run(tmp_path / "runs", "r1", [result_event(f"{i}: case", attempts=[attempt(1, "success", None, trace)])
                                        for i in range(4)])
    path = tmp_path / "c.db"
    rca.ingest_runs(tmp_path / "runs", path)
    return path


def test_a_gemini_estimate_needs_no_key(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = rca.analyze_failures(rca.load_failures(db), db=db, backend="gemini", dry_run=True, progress=False)
    total = out.attrs["dry_run_total"]
    assert total["rows"] == 4 and total["input_tokens"] > 4 * 1000 and total["cost_usd"] > 0
    assert "gemini-3.8-flash; no calls made" in capsys.readouterr().err


def test_cached_rows_cost_nothing_and_are_counted(db: Path) -> None:
    frame = rca.load_failures(db)
    rca.analyze_failures(frame.head(3), db=db, backend="heuristic", progress=False)
    out = rca.analyze_failures(frame, db=db, backend="heuristic", dry_run=True, progress=False)
    assert out["cached"].tolist() == [True, True, True, False]
    assert out.attrs["dry_run_total"]["cached"] == 3 and out["est_input_tokens"].tolist()[:3] == [0, 0, 0]


def test_a_custom_taxonomy_is_estimated_offline(db: Path) -> None:
    out = rca.analyze_failures(rca.load_failures(db), db=db, backend="gemini", taxonomy=CUSTOM, dry_run=True,
                               progress=False)
    assert out.attrs["dry_run_total"]["input_tokens"] > 0
    with pytest.raises(rca.InputError):  # analyzing it offline is still refused, before any row
        rca.analyze_failures(rca.load_failures(db), db=db, backend="heuristic", taxonomy=CUSTOM, progress=False)
