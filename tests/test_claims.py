"""Two batches on the same rows pay once per row: a row being analyzed is claimed in the cache."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import rca
from rca.claims import claim, release
from rca.store import connect
from rca.testing import FakeGemini
from tests.conftest import REPO, attempt, result_event, write_run

GENERATE = ":generateContent"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    trace = [{"type": "message", "role": "model", "content": "answer"}]
    write_run(runs, "r1", [result_event(f"{i:02d}: case", attempts=[attempt(1, "success", None, trace)])
                           for i in range(12)])
    path = tmp_path / "analysis_cache.db"
    rca.ingest_runs(runs, path)
    return path


def test_a_row_claimed_by_a_live_process_is_skipped_and_an_expired_claim_is_taken(db: Path) -> None:
    conn = connect(db)
    assert claim(conn, 1, "other-host:1:live") is None
    assert claim(conn, 2, "other-host:2:dead", ttl_s=-1) is None  # its process died: the claim expired
    assert claim(conn, 1, "someone-else") == "other-host:1:live"
    conn.close()
    out = rca.analyze_failures(rca.load_failures(db), db=db, backend="heuristic", progress=False)
    errors = out.set_index("id")["analysis_error"]
    assert "being analyzed by another process (other-host:1:live)" in errors[1]
    assert out["category"].notna().sum() == 11 and errors.drop(1).isna().all()
    with sqlite3.connect(db) as check:  # its own claims are released once answered
        assert check.execute("SELECT failure_id FROM claims").fetchall() == [(1,)]


def test_release_frees_only_the_owners_claim(db: Path) -> None:
    conn = connect(db)
    claim(conn, 3, "a")
    release(conn, 3, "b")
    assert claim(conn, 3, "b") == "a"
    release(conn, 3, "a")
    assert claim(conn, 3, "b") is None
    conn.close()


def test_two_processes_on_the_same_rows_pay_once_per_row(db: Path) -> None:
    with FakeGemini(latency=0.4) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GOOGLE_API"))}
        env |= {"GEMINI_API_KEY": "AIzaSyA-test-key-one-000000000000000000", "GOOGLE_GEMINI_BASE_URL": server.url,
                "PYTHONPATH": str(REPO)}
        script = (f"import rca\ndf = rca.load_failures({str(db)!r})\n"
                  f"rca.analyze_failures(df, db={str(db)!r}, backend='gemini', model='gemini-2.5-flash', concurrency=4, progress=False)")
        procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE, text=True)]
        time.sleep(0.3)
        procs.append(subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE, text=True))
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
        calls = [r for r in server.requests if r.path.endswith(GENERATE)]
    assert len(calls) == 12
    assert rca.load_failures(db)["category"].notna().all()


def test_a_claim_of_a_killed_process_on_this_host_is_taken_at_once(db: Path) -> None:
    import socket

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    conn = connect(db)
    assert claim(conn, 4, f"{socket.gethostname()}:{dead.pid}:gone") is None
    assert claim(conn, 4, "me") is None  # its process is gone: no need to wait for the expiry
    assert claim(conn, 5, f"{socket.gethostname()}:{os.getpid()}:alive") is None
    assert claim(conn, 5, "me") == f"{socket.gethostname()}:{os.getpid()}:alive"
    conn.close()
