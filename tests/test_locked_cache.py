"""A write lock held by another process past the busy timeout never loses an answer paid for."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import rca
from rca import store
from rca.testing import FakeGemini
from tests.conftest import attempt, result_event, write_run

GENERATE = ":generateContent"


def test_answers_refused_by_a_locked_cache_are_kept_and_written_next_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    trace = [{"type": "message", "role": "model", "content": "answer"}]
    write_run(runs, "r1", [result_event(f"{i:02d}: case", attempts=[attempt(1, "success", None, trace)])
                           for i in range(4)])
    db = tmp_path / "analysis_cache.db"
    rca.ingest_runs(runs, db)
    monkeypatch.setattr(store, "BUSY_TIMEOUT_MS", 300)  # the user's other process holds the lock far longer
    for name in ("GEMINI_API_KEYS", "GEMINI_API_KEYS_POOL", "GOOGLE_API_KEY", "RCA_MODEL"):
        monkeypatch.delenv(name, raising=False)
    with FakeGemini(latency=1.0) as server:
        monkeypatch.setenv("GEMINI_API_KEY", "AIzaSyA-test-key-one-000000000000000000")
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.url)
        holders: list[subprocess.Popen[bytes]] = []

        def lock_once_calls_are_in_flight() -> None:  # the answers then arrive while the cache is locked
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # a row is claimed just before its call is sent
                with sqlite3.connect(db) as conn:
                    if conn.execute("SELECT count(*) FROM claims").fetchone()[0]:
                        break
                time.sleep(0.02)
            holders.append(subprocess.Popen(
                [sys.executable, "-c", f"import sqlite3, time\nc = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
                 "c.execute('BEGIN IMMEDIATE')\nc.execute(\"INSERT INTO processed_runs VALUES ('lock')\")\n"
                 "time.sleep(4)\nc.execute('ROLLBACK')"]))

        locker = threading.Thread(target=lock_once_calls_are_in_flight)
        locker.start()
        try:
            out = rca.analyze_failures(rca.load_failures(db), db=db, backend="gemini", model="gemini-2.5-flash",
                                       progress=False)
        finally:
            locker.join()
            for holder in holders:
                holder.wait(timeout=30)
        assert out["category"].notna().all()  # the caller has every answer
        assert "4 answers are kept in" in capsys.readouterr().err
        assert store.unsaved_path(db).is_file()
        assert rca.load_failures(db)["category"].isna().all()  # not in the cache yet
        again = rca.analyze_failures(rca.load_failures(db), db=db, backend="gemini", model="gemini-2.5-flash",
                                     progress=False)
        calls = [r for r in server.requests if r.path.endswith(GENERATE)]
    assert len(calls) == 4  # nothing was paid for twice
    assert again["from_cache"].all() and not store.unsaved_path(db).exists()
    assert rca.load_failures(db)["category"].notna().all()
