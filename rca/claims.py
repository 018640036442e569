"""Claims: a row being analyzed belongs to one process, so two batches never pay twice for it.

A claim is a row in `claims` with its owner (host, pid) and an expiry; the rows of a process
killed mid-call are free at once on the same host, and elsewhere when their claims expire. Answers written by the other process are then found in
the cache by the next run.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
import uuid

from rca.store import is_locked, transaction

CLAIM_TTL_S = 15 * 60  # longer than any call with its retries; a killed process's rows free up after it


def new_owner() -> str:
    """This batch's name in the claims table: host, process and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def claim(conn: sqlite3.Connection, failure_id: int, owner: str, *, ttl_s: float = CLAIM_TTL_S) -> str | None:
    """Take the row for `owner`; return None when taken, else the live owner that holds it.

    A cache locked past its busy timeout cannot record the claim: the row goes ahead unclaimed
    rather than stall the batch.
    """
    try:
        return _claim(conn, failure_id, owner, ttl_s)
    except sqlite3.OperationalError as exc:
        if is_locked(exc):
            return None
        raise


def _claim(conn: sqlite3.Connection, failure_id: int, owner: str, ttl_s: float) -> str | None:
    now = time.time()
    with transaction(conn):
        held = conn.execute("SELECT owner, expires_at FROM claims WHERE failure_id = ?", (failure_id,)).fetchone()
        if held is not None and held["owner"] != owner and held["expires_at"] > now and _alive(held["owner"]):
            return str(held["owner"])
        conn.execute(
            "INSERT INTO claims (failure_id, owner, expires_at) VALUES (?, ?, ?) ON CONFLICT (failure_id) "
            "DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at",
            (failure_id, owner, now + ttl_s))
    return None


def _alive(owner: str) -> bool:
    """False for a claim of a process on this host that no longer runs (killed mid-batch)."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine's process: trust its expiry
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def release(conn: sqlite3.Connection, failure_id: int, owner: str) -> None:
    """Free the row; a claim that cannot be deleted now (locked cache) simply expires."""
    try:
        with transaction(conn):
            conn.execute("DELETE FROM claims WHERE failure_id = ? AND owner = ?", (failure_id, owner))
    except sqlite3.OperationalError as exc:
        if not is_locked(exc):
            raise
