from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from rca import TraceNotFound, ingest_runs, load_failures
from rca.traces import load_trace, load_transcript
from rca.transcript import Transcript
from tests.conftest import attempt, event, result_event, write_run


def _trace(tag: str, n: int = 2) -> list[dict]:
    return [{"type": "message", "role": "model", "content": f"{tag} step {i}"} for i in range(n)]


def _runs(tmp_path: Path, fmt: str = "jsonl") -> tuple[Path, Path]:
    runs = tmp_path / "runs"
    path = write_run(runs, "r1", [
        event("section_start", {"name": "Generator: a"}),
        result_event("01: x", attempts=[attempt(1, "failed", "429", _trace("a1")), attempt(2, "success", None, None)],
                     trace=_trace("final")),
        result_event("02: old", trace=_trace("old", 3)),
        event("generation_failure", {"benchmark_name": "03: gen", "error_message": "boom", "prompt": ""}),
        event("section_end", {"name": "Generator: a"}),
    ], fmt=fmt)
    db = tmp_path / "c.db"
    ingest_runs(runs, db)
    return path, db


def _texts(transcript: Transcript) -> list[str]:
    return [step.text for step in transcript.steps]


@pytest.mark.parametrize("fmt", ["jsonl", "yaml"])
def test_each_row_reads_its_own_attempt(tmp_path: Path, fmt: str) -> None:
    _, db = _runs(tmp_path, fmt)
    rows = load_failures(db).to_dict("records")
    traces = [_texts(load_transcript(row)) for row in rows]
    assert traces == [["a1 step 0", "a1 step 1"], ["final step 0", "final step 1"],
                      ["old step 0", "old step 1", "old step 2"], []]


def test_changed_file_falls_back_to_a_scan(tmp_path: Path) -> None:
    path, db = _runs(tmp_path)
    rows = load_failures(db).to_dict("records")
    # Prepend a line: every stored offset is now wrong.
    path.write_text(json.dumps(event("message", {"message": "x" * 500})) + "\n" + path.read_text())
    assert _texts(load_transcript(rows[2])) == ["old step 0", "old step 1", "old step 2"]
    assert _texts(load_transcript(rows[0])) == ["a1 step 0", "a1 step 1"]


def test_same_size_and_mtime_but_other_record_is_detected(tmp_path: Path) -> None:
    path, db = _runs(tmp_path)
    rows = load_failures(db).to_dict("records")
    stat = path.stat()
    text = path.read_text().replace("01: x", "01: z")  # same length, different case at that offset
    path.write_text(text)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(TraceNotFound, match=r"'01: x'.* matches failure 1"):
        load_transcript(rows[0])


def test_moved_run_folder_is_found_through_runs_dir(tmp_path: Path) -> None:
    _, db = _runs(tmp_path)
    row = load_failures(db).to_dict("records")[2]
    shutil.move(tmp_path / "runs", tmp_path / "archive")
    with pytest.raises(TraceNotFound, match="runs_dir="):
        load_transcript(row)
    assert _texts(load_transcript(row, runs_dir=tmp_path / "archive")) == ["old step 0", "old step 1", "old step 2"]


def test_each_row_reads_its_own_attempt_with_its_metadata(tmp_path: Path) -> None:
    _, db = _runs(tmp_path)
    rows = load_failures(db).to_dict("records")
    transcripts = [load_transcript(row) for row in rows]
    assert [t.format for t in transcripts] == ["harness"] * 4
    assert [t.ref for t in transcripts] == [row["trace_ref"] for row in rows]
    assert len({t.ref for t in transcripts}) == 4
    assert [t.metadata["attempt_number"] for t in transcripts] == [1, 2, None, None]
    assert [t.outcome.error for t in transcripts] == ["429", "AssertionError: expected 2, got 3",
                                                      "AssertionError: expected 2, got 3", "boom"]
    assert {t.metadata["generator"] for t in transcripts} == {"a"}
    assert [s.kind for s in transcripts[0].steps] == ["message", "final_answer"]


def test_load_trace_is_a_deprecated_alias(tmp_path: Path) -> None:
    import rca

    _, db = _runs(tmp_path)
    row = load_failures(db).to_dict("records")[0]
    with pytest.warns(DeprecationWarning, match="load_transcript"):
        old = load_trace(row)
    with pytest.warns(DeprecationWarning, match="load_transcript"):
        via_package = rca.load_trace(row)
    assert isinstance(old, Transcript)
    assert old == via_package == load_transcript(row)
