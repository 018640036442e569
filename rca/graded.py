"""The labelled failures and their answers, read from the cache as the frames rca.agreement grades.

One row per label and latest good answer of each taxonomy and model, so one model is graded
against each labeller apart, and a model answer is never graded against another model's. The
answered agent is `root_cause_agent`, else the agent of the answered step: the answer schema
leaves the agent null where only one agent acts, and that one agent is then the answer.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from rca.errors import TraceNotFound
from rca.store import connect

_ANSWERS = """
SELECT l.failure_id, f.run_id, f.benchmark_name, l.labeller, a.taxonomy, a.model,
       l.category AS true_category, a.category AS pred_category, l.step AS true_step, a.root_cause_step AS pred_step,
       l.agent AS true_agent, a.root_cause_agent AS pred_agent, a.confidence, a.analysis, l.note
FROM labels l JOIN failures f ON f.id = l.failure_id
JOIN analyses a ON a.failure_id = l.failure_id AND a.id = (
  SELECT max(b.id) FROM analyses b WHERE b.failure_id = a.failure_id AND b.model = a.model
  AND b.taxonomy = a.taxonomy AND b.error IS NULL)
"""


def labelled_answers(db: str | Path, *, run_ids: Sequence[str] | None = None, suites: Sequence[str] | None = None,
                     generators: Sequence[str] | None = None, limit: int | None = None) -> pd.DataFrame:
    """The pairs frame: failure, labeller, taxonomy, model, true_/pred_ category, step and agent,
    candidates (the answer's candidate steps), confidence, the label's note."""
    where, params = _selected(run_ids, suites, generators, limit)
    conn = connect(db)
    try:
        frame = pd.read_sql_query(_ANSWERS + where + " ORDER BY a.taxonomy, a.model, l.labeller, l.failure_id",
                                  conn, params=params)
        frame["candidates"] = [_answer(text).get("candidate_steps") or [] for text in frame.pop("analysis")]
        frame["pred_agent"] = _agents(conn, frame)
    finally:
        conn.close()
    for column in ("true_step", "pred_step"):
        frame[column] = frame[column].astype("Int64")
    return frame


def labelled_failures(db: str | Path, *, run_ids: Sequence[str] | None = None, suites: Sequence[str] | None = None,
                      generators: Sequence[str] | None = None, limit: int | None = None) -> pd.DataFrame:
    """The labels of the selected failures, answered or not: what labellers are compared on."""
    where, params = _selected(run_ids, suites, generators, limit)
    conn = connect(db)
    try:
        frame = pd.read_sql_query("SELECT l.failure_id, l.labeller, l.category, l.step, l.agent FROM labels l "
                                  "JOIN failures f ON f.id = l.failure_id" + where + " ORDER BY l.failure_id",
                                  conn, params=params)
    finally:
        conn.close()
    frame["step"] = frame["step"].astype("Int64")
    return frame


def _selected(run_ids: Sequence[str] | None, suites: Sequence[str] | None, generators: Sequence[str] | None,
              limit: int | None) -> tuple[str, list[Any]]:
    """A WHERE clause on the failures `f`: load_failures' filters, and its limit (the first N failures)."""
    where: list[str] = []
    params: list[Any] = []
    for column, values in (("run_id", run_ids), ("suite", suites), ("generator", generators)):
        values = [values] if isinstance(values, str) else list(values or ())
        if values:
            where.append(f"{column} IN ({', '.join('?' for _ in values)})")
            params.extend(values)
    inner = "SELECT id FROM failures" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
    if limit is not None:
        inner, params = inner + " LIMIT ?", [*params, int(limit)]
    return f" WHERE f.id IN ({inner})", params


def _answer(text: object) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _agents(conn: sqlite3.Connection, frame: pd.DataFrame) -> list[Any]:
    """The answered agent per row: root_cause_agent, else the agent of the answered step (read from the
    trace only where a labelled agent needs it)."""
    from rca.traces import load_transcript

    agents: dict[tuple[int, int], str | None] = {}
    out = []
    for row in frame.itertuples():
        if pd.notna(row.pred_agent) or pd.isna(row.true_agent) or pd.isna(row.pred_step):
            out.append(row.pred_agent if pd.notna(row.pred_agent) else None)
            continue
        key = (int(row.failure_id), int(row.pred_step))
        if key not in agents:
            failure = dict(conn.execute("SELECT * FROM failures WHERE id = ?", (key[0],)).fetchone())
            try:
                steps = load_transcript(failure).steps
            except (TraceNotFound, OSError):
                steps = ()
            agents[key] = steps[key[1]].agent if 0 <= key[1] < len(steps) else None
        out.append(agents[key])
    return out
