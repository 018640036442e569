from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from rca import ingest_runs, load_failures
from rca.baseline import regex_tags
from tests.conftest import attempt, event, result_event, write_run


def test_real_fixture_gives_each_failed_result_and_generation_failure(fixture_runs: Path, tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    summary = ingest_runs(fixture_runs, db)
    assert summary.rows_added == 184 and summary.issues == []
    df = load_failures(db)
    assert (df.event_kind == "test_result").sum() == 178
    assert (df.event_kind == "generation_failure").sum() == 6
    assert set(df.suite.dropna()) == {"multiple_choice", "api_understanding", "fix_error"}
    gen = df[df.event_kind == "generation_failure"].iloc[0]
    assert "code 125" in gen.raw_error and len(gen.harness_explanation) <= 300
    assert all(isinstance(tags, list) and tags for tags in df.error_type)


def test_reingest_adds_nothing(fixture_runs: Path, tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    ingest_runs(fixture_runs, db)
    again = ingest_runs(fixture_runs, db)  # this older file has no run_end: read on from where it stopped
    assert again.rows_added == 0 and again.bytes_read == 0
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM ingest_progress")  # even a rescan from the start inserts no duplicates
    assert ingest_runs(fixture_runs, db).rows_added == 0
    assert len(load_failures(db)) == 184


def test_every_failed_attempt_is_a_row_with_generator_and_numbers(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write_run(runs, "r1", [
        event("section_start", {"name": "Generator: adk_agent"}),
        result_event("01: retries", attempts=[attempt(1, "failed", "429 RESOURCE_EXHAUSTED"),
                                             attempt(2, "failed", "ImportError: cannot import name 'X'"),
                                             attempt(3, "success")]),
        result_event("02: passes after retry", "pass", attempts=[attempt(1, "failed", "boom"), attempt(2, "success")]),
        event("section_end", {"name": "Generator: adk_agent"}),
        event("section_start", {"name": "Agent: cli"}),
        result_event("03: one try", attempts=[attempt(1, "success")], validation_error="1 validation error for Answer\ncode\n  Field required"),
        event("section_end", {"name": "Agent: cli"}),
        result_event("04: no section", attempts=[attempt(1, "timeout", None)], validation_error="TimeoutError"),
    ])
    db = tmp_path / "c.db"
    assert ingest_runs(runs, db).rows_added == 5
    df = load_failures(db)
    got = list(zip(df.benchmark_name, df.generator.fillna("(none)"), df.attempt_number, df.raw_error))
    assert got == [
        ("01: retries", "adk_agent", 1, "429 RESOURCE_EXHAUSTED"),
        ("01: retries", "adk_agent", 2, "ImportError: cannot import name 'X'"),
        ("01: retries", "adk_agent", 3, "AssertionError: expected 2, got 3"),
        ("03: one try", "cli", 1, "1 validation error for Answer\ncode\n  Field required"),
        ("04: no section", "(none)", 1, "TimeoutError"),
    ]
    assert df.error_type.tolist() == [["Quota Limit"], ["Import Error"], ["Unknown Logic Error"],
                                      ["Schema Violation"], ["Timeout"]]


def test_yaml_runs_are_ingested_like_jsonl(tmp_path: Path) -> None:
    events = [event("section_start", {"name": "Generator: g"}), result_event("01: a"), result_event("02: b", "pass")]
    write_run(tmp_path / "j", "r1", events)
    write_run(tmp_path / "y", "r1", events, fmt="yaml")
    frames = [load_failures(db) for db in (tmp_path / "j.db", tmp_path / "y.db")
              if ingest_runs(tmp_path / db.stem, db).rows_added == 1]
    assert len(frames) == 2
    cols = ["run_id", "benchmark_name", "suite", "generator", "raw_error", "error_type"]
    assert frames[0][cols].to_dict("records") == frames[1][cols].to_dict("records")


def test_bad_input_is_reported_with_file_and_line_and_never_fatal(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    good = json.dumps(result_event("01: good")) + "\n"
    folder = runs / "r_bad"
    folder.mkdir(parents=True)
    (folder / "trace.jsonl").write_bytes(
        good.encode()
        + b'{"event_type": "test_result", "data": {broken\n'
        + json.dumps(result_event("02: latin")).encode().replace(b"latin", b"lat\xe9n") + b"\n"
        + (json.dumps(event("test_result", {"result": "fail_validation"})) + "\n").encode()
        + good.replace("01: good", "05: after").encode()
        + b'{"event_type": "test_result", "data": {"benchmark_name": "06: cut'
    )
    (runs / "r_empty").mkdir()
    (runs / "r_empty" / "trace.jsonl").write_bytes(b"")
    (runs / "r_none").mkdir()
    (runs / "r_yaml").mkdir()
    (runs / "r_yaml" / "trace.yaml").write_text(
        yaml_docs := "---\n" + "event_type: test_result\ndata: {benchmark_name: '07: y', result: fail}\n"
        + "---\nevent_type: [unclosed\n---\nevent_type: test_result\ndata: {benchmark_name: '08: y', result: fail}\n"
    )
    assert yaml_docs
    db = tmp_path / "c.db"
    summary = ingest_runs(runs, db)
    messages = {str(issue) for issue in summary.issues}
    bad = folder / "trace.jsonl"
    assert f"{bad}:2: malformed JSON line" in "\n".join(messages)
    assert f"{bad}:3: invalid UTF-8 bytes replaced with U+FFFD" in messages
    assert f"{bad}:4: test_result without benchmark_name; skipped" in messages
    assert f"{bad}:6: truncated last record (is the run still being written?)" in messages
    assert f"{runs / 'r_empty' / 'trace.jsonl'}: empty trace file" in messages
    assert f"{runs / 'r_none'}: no trace.jsonl or trace.yaml in run folder" in messages
    assert any(m.startswith(f"{runs / 'r_yaml' / 'trace.yaml'}:5: malformed YAML document") for m in messages)
    names = set(load_failures(db).benchmark_name)
    assert names == {"01: good", "02: lat\ufffdn", "05: after", "07: y", "08: y"}


def test_run_still_being_written_is_resumed_on_next_ingest(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    path = write_run(runs, "r1", [result_event("01: a")])
    with path.open("ab") as f:
        f.write(b'{"event_type": "test_result", "data": {"benchmark_name": "02')
    db = tmp_path / "c.db"
    assert ingest_runs(runs, db).rows_added == 1
    text = path.read_bytes().rsplit(b"\n", 1)[0] + b"\n" + json.dumps(result_event("02: b")).encode() + b"\n"
    path.write_bytes(text)
    with path.open("ab") as f:
        f.write((json.dumps(event("run_end", {"duration": 1.0})) + "\n").encode())
    second = ingest_runs(runs, db)
    assert second.rows_added == 1 and second.issues == []
    assert ingest_runs(runs, db).runs_skipped == 1  # its run_end was read, so it is done


def test_missing_runs_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="runs folder not found"):
        ingest_runs(tmp_path / "nope", tmp_path / "c.db")


@pytest.mark.parametrize(("text", "tags"), [
    (None, ["Unknown"]),
    ("", ["Unknown"]),
    ("all wrong", ["Unknown Logic Error"]),
    ("AttributeError: module 'agent' has no attribute 'create_agent'",
     ["Interface Violation: Missing create_agent", "Code Logic Error"]),
    ("json.decoder.JSONDecodeError ... NoneType", ["Malformed JSON", "Empty Response"]),
    ("resourceexhausted", ["Quota Limit"]),
])
def test_regex_baseline_follows_the_contract(text: str | None, tags: list[str]) -> None:
    assert regex_tags(text) == tags


def test_demo_data_ingests_into_the_promised_spread(tmp_path: Path) -> None:
    from rca.demo import make_demo

    make_demo(tmp_path / "runs")
    summary = ingest_runs(tmp_path / "runs", tmp_path / "c.db")
    df = load_failures(tmp_path / "c.db")
    assert summary.issues == [] and len(df) == summary.rows_added >= 60
    assert df.run_id.nunique() >= 3 and df.generator.nunique() >= 2 and df.suite.nunique() >= 3
    assert (df.event_kind == "generation_failure").any()
    assert any(path.endswith("trace.yaml") for path in df.trace_log_path)
