"""Bad input never stops an ingest: each bad record is an issue naming its file and line,
and the rest of the run and every other run are still read. Runs still being written are
resumed where they stopped."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rca import ingest_runs, load_failures
from tests.conftest import REPO, event, result_event, write_run

GOOD = json.dumps(result_event("01: good")) + "\n"
AFTER = json.dumps(result_event("99: after")) + "\n"


def _run_with(runs: Path, run_id: str, middle: bytes) -> Path:
    folder = runs / run_id
    folder.mkdir(parents=True)
    path = folder / "trace.jsonl"
    path.write_bytes(GOOD.encode() + middle + b"\n" + AFTER.encode())
    return path


def _line(name: str, **data: object) -> bytes:
    return json.dumps(result_event(name) | {"data": result_event(name)["data"] | data}).encode()


BAD_RECORDS = {
    "huge_timestamp": json.dumps(event("test_result", result_event("02: x")["data"], ts=1e20)).encode(),
    "infinite_timestamp": json.dumps(event("test_result", result_event("02: x")["data"], ts=float("inf"))).encode(),
    "nan_timestamp": json.dumps(event("test_result", result_event("02: x")["data"], ts=float("nan"))).encode(),
    "huge_attempt_number": _line("02: x", generation_attempts=[{"attempt_number": 10**23, "status": "failed",
                                                                "error_message": "boom", "trace_logs": []}]),
    "result_list": _line("02: x", result=["fail", "fail"]),
    "deep_nesting": b'{"event_type": "test_result", "data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
}


@pytest.mark.parametrize("kind", sorted(BAD_RECORDS))
def test_a_bad_record_is_an_issue_naming_file_and_line(tmp_path: Path, kind: str) -> None:
    runs = tmp_path / "runs"
    path = _run_with(runs, "r1", BAD_RECORDS[kind])
    write_run(runs, "r2", [result_event("03: other run")])
    summary = ingest_runs(runs, tmp_path / "c.db")
    assert any(issue.path == str(path) and issue.line == 2 for issue in summary.issues), summary
    names = set(load_failures(tmp_path / "c.db").benchmark_name)
    assert {"01: good", "99: after", "03: other run"} <= names


def test_lone_surrogates_are_replaced_and_reported(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    record = json.dumps(result_event("02: sur\udcffrogate", validation_error="bad \udcff text"))
    path = _run_with(runs, "r1", record.encode())
    summary = ingest_runs(runs, tmp_path / "c.db")
    assert any(issue.path == str(path) and issue.line == 2 and "surrogate" in issue.message for issue in summary.issues)
    df = load_failures(tmp_path / "c.db")
    assert "02: sur\ufffdrogate" in set(df.benchmark_name)
    from rca import load_transcript

    row = df[df.benchmark_name == "02: sur\ufffdrogate"].iloc[0]
    assert load_transcript(row).outcome.error == "bad \ufffd text"


def test_flow_style_yaml_documents_keep_their_content(tmp_path: Path) -> None:
    folder = tmp_path / "runs" / "r1"
    folder.mkdir(parents=True)
    events = [event("section_start", {"name": "Generator: g"}), result_event("01: a"), result_event("02: b"),
              event("run_end", {"duration": 1.0})]
    (folder / "trace.yaml").write_text(yaml.safe_dump_all(events, default_flow_style=True, explicit_start=True))
    assert "--- {" in (folder / "trace.yaml").read_text()
    summary = ingest_runs(tmp_path / "runs", tmp_path / "c.db")
    assert summary.issues == [] and summary.rows_added == 2
    df = load_failures(tmp_path / "c.db")
    assert df.generator.tolist() == ["g", "g"]
    from rca import load_transcript

    assert load_transcript(df.iloc[1]).metadata["benchmark_name"] == "02: b"


def test_yaml_alias_bomb_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "runs" / "r1"
    folder.mkdir(parents=True)
    levels = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    levels += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    bomb = "event_type: test_result\ndata:\n  benchmark_name: '02: bomb'\n  result: fail\n  trace_logs:\n  - content:\n" + \
        "\n".join("      " + line.strip() for line in levels) + "\n"
    good = yaml.safe_dump(result_event("01: good"))
    (folder / "trace.yaml").write_text(f"---\n{good}---\n{bomb}---\n{good.replace('01: good', '03: after')}")
    summary = ingest_runs(tmp_path / "runs", tmp_path / "c.db")
    assert any(issue.line == good.count("\n") + 3 and "alias" in issue.message for issue in summary.issues), summary
    assert set(load_failures(tmp_path / "c.db").benchmark_name) == {"01: good", "03: after"}


def test_shared_objects_written_as_yaml_aliases_still_ingest(tmp_path: Path) -> None:
    logs = [{"type": "message", "role": "model", "content": "hi"}]
    data = result_event("01: a")["data"] | {"trace_logs": logs,
                                            "generation_attempts": [{"attempt_number": 1, "status": "success",
                                                                     "trace_logs": logs}]}
    folder = tmp_path / "runs" / "r1"
    folder.mkdir(parents=True)
    (folder / "trace.yaml").write_text(yaml.safe_dump_all([event("test_result", data)], explicit_start=True))
    assert "*id" in (folder / "trace.yaml").read_text()  # the dumper aliases the shared list
    summary = ingest_runs(tmp_path / "runs", tmp_path / "c.db")
    assert summary.issues == [] and summary.rows_added == 1


def test_a_file_without_newlines_is_read_in_bounded_memory(tmp_path: Path) -> None:
    """A 300 MB record of NUL bytes is refused with an issue, and memory stays far below its size."""
    folder = tmp_path / "runs" / "r1"
    folder.mkdir(parents=True)
    path = folder / "trace.jsonl"
    with path.open("wb") as f:
        f.write(GOOD.encode())
        chunk = b"\0" * (1 << 20)
        for _ in range(300):
            f.write(chunk)
    # VmHWM, not ru_maxrss: a forked child's ru_maxrss starts at its parent's (this pytest process)
    script = (f"import json, rca\ns = rca.ingest_runs({str(tmp_path / 'runs')!r}, {str(tmp_path / 'c.db')!r})\n"
              "peak = int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])\n"
              "print(json.dumps([s.rows_added, [str(i) for i in s.issues], peak]))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr
    rows, issues, peak_kb = json.loads(out.stdout)
    assert rows == 1 and any(issue.startswith(f"{path}:2:") for issue in issues), issues
    assert peak_kb < 200 * 1024, f"peak RSS {peak_kb / 1024:.0f} MB for a 300 MB record"


def test_a_symlinked_duplicate_run_folder_is_ingested_once(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write_run(runs, "r1", [result_event("01: a")])
    (runs / "r1-copy").symlink_to(runs / "r1", target_is_directory=True)
    summary = ingest_runs(runs, tmp_path / "c.db")
    assert summary.rows_added == 1
    assert any("r1-copy" in str(issue) and "r1" in issue.message for issue in summary.issues)


def test_an_unreadable_trace_file_is_an_issue_and_other_runs_go_on(tmp_path: Path) -> None:
    """A file whose read fails with an OS error (here EIO from /proc/self/mem; a missing read
    permission is the same PermissionError path, but root reads any file whatever its mode)."""
    if not Path("/proc/self/mem").exists():
        pytest.skip("needs /proc/self/mem for a file whose read fails")
    runs = tmp_path / "runs"
    (runs / "r1").mkdir(parents=True)
    (runs / "r1" / "trace.jsonl").symlink_to("/proc/self/mem")
    write_run(runs, "r2", [result_event("02: open")])
    summary = ingest_runs(runs, tmp_path / "c.db")
    assert summary.rows_added == 1
    assert any(issue.path == str(runs / "r1" / "trace.jsonl") and "cannot read" in issue.message
               for issue in summary.issues), summary


def test_a_run_is_done_only_after_its_run_end(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    path = write_run(runs, "r1", [event("section_start", {"name": "Generator: g"}), result_event("01: a")])
    db = tmp_path / "c.db"
    assert ingest_runs(runs, db).rows_added == 1  # the file ends on a complete line, but no run_end yet
    with path.open("a") as f:
        f.write(json.dumps(result_event("02: b")) + "\n")
    second = ingest_runs(runs, db)
    assert second.rows_added == 1 and second.runs_skipped == 0
    with path.open("a") as f:
        f.write(json.dumps(event("section_end", {"name": "Generator: g"})) + "\n")
        f.write(json.dumps(event("run_end", {"duration": 3.0})) + "\n")
    assert ingest_runs(runs, db).rows_added == 0
    assert ingest_runs(runs, db).runs_skipped == 1
    df = load_failures(db)
    assert df.benchmark_name.tolist() == ["01: a", "02: b"] and df.generator.tolist() == ["g", "g"]


def test_a_resumed_run_reads_only_what_was_added(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    path = write_run(runs, "r1", [result_event(f"{i:02d}: case") for i in range(50)])
    db = tmp_path / "c.db"
    first = ingest_runs(runs, db)
    with path.open("a") as f:
        f.write(json.dumps(result_event("50: new")) + "\n")
    second = ingest_runs(runs, db)
    assert second.rows_added == 1 and second.bytes_read < first.bytes_read / 10


def test_a_row_the_users_schema_refuses_is_an_issue_and_the_run_stays_open(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    with sqlite3.connect(db) as conn:
        conn.execute("""CREATE TABLE failures (
          id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, timestamp TEXT,
          benchmark_name TEXT, suite TEXT, generator TEXT, attempt_number INTEGER,
          error_type TEXT, raw_error TEXT, explanation TEXT, reviewer TEXT NOT NULL)""")
        conn.execute("CREATE TABLE processed_runs (run_id TEXT PRIMARY KEY)")
    runs = tmp_path / "runs"
    write_run(runs, "r1", [result_event("01: a"), event("run_end", {"duration": 1.0})])
    summary = ingest_runs(runs, db)
    assert summary.rows_added == 0
    assert any("reviewer" in issue.message for issue in summary.issues), summary
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM processed_runs").fetchone()[0] == 0


def test_memory_guard_does_not_refuse_ordinary_large_records(tmp_path: Path) -> None:
    """A 20 MB tool output inside one record is real data, not an attack."""
    runs = tmp_path / "runs"
    big = [{"type": "tool_result", "tool_name": "read_file", "tool_output": "x" * (20 << 20)}]
    write_run(runs, "r1", [result_event("01: big", trace=big)])
    summary = ingest_runs(runs, tmp_path / "c.db")
    assert summary.issues == [] and summary.rows_added == 1
