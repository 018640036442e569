"""rca ingest on other agents' traces: a file or a folder, the format detected by content."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import rca
from rca.cli import main

DATA = Path(__file__).parent / "data"


def test_a_folder_of_multiagent_logs_ingests_analyzes_and_reads_back(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    shutil.copytree(DATA / "multiagent", logs)
    (logs / "notes.txt").write_text("not a trace\n")
    db = tmp_path / "c.db"
    summary = rca.ingest_runs(logs, db)
    assert summary.rows_added == 2
    assert [str(issue) for issue in summary.issues] == [
        f"{logs / 'notes.txt'}: no format recognizes this file (tried multiagent)"] or \
        all("no format recognizes this file" in str(issue) for issue in summary.issues)
    frame = rca.load_failures(db)
    assert set(frame["format"]) == {"multiagent"}
    transcripts = [rca.load_transcript(row) for _, row in frame.iterrows()]
    assert all(t.steps and t.task for t in transcripts)
    out = rca.analyze_failures(frame, db=db, backend="heuristic", progress=False)
    assert out["category"].notna().all()
    again = rca.ingest_runs(logs, db)  # unchanged files are not read again
    assert again.rows_added == 0 and again.runs_skipped == 2


def test_one_file_with_its_format_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = next((DATA / "multiagent").glob("*.json"))
    db = tmp_path / "c.db"
    assert main(["ingest", str(log), "--db", str(db), "--format", "multiagent"]) == 0
    assert "1 failed attempts added" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        main(["ingest", str(log), "--db", str(db), "--format", "nonsense"])
    assert exit_.value.code == 2 and "invalid choice: 'nonsense'" in capsys.readouterr().err
