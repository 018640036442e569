"""Failures with their answers as one flat table with stable column names: `rca export` and
`rca.export_failures`. One row per failed attempt; lists and evidence as JSON text in CSV."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from rca.errors import InputError, ParameterError

FORMATS = ("csv", "jsonl", "parquet")
# The columns, in order, that every export has whatever the cache holds: a consumer can rely on them.
COLUMNS = (
    "id", "run_id", "case_id", "benchmark_name", "suite", "generator", "attempt_number", "result", "format",
    "raw_error", "error_type", "category", "root_cause_explanation", "expected_behavior", "actual_behavior",
    "root_cause_step", "candidate_steps", "root_cause_agent", "fix", "confidence", "evidence", "used_tools",
    "tools_called", "received_useful_output", "hallucinated_symbols", "schema_validation_failed", "model",
    "taxonomy", "cost_usd", "pattern", "pattern_fix",
)


def export_failures(db: str | Path, *, run_ids: Sequence[str] | None = None, suites: Sequence[str] | None = None,
                    generators: Sequence[str] | None = None, limit: int | None = None) -> pd.DataFrame:
    """The failures (filtered as load_failures filters) with their latest answers, in COLUMNS order."""
    from rca.store import load_failures

    frame = load_failures(db, run_ids=run_ids, suites=suites, generators=generators, limit=limit)
    return frame.merge(stored_patterns(db), on="id", how="left").reindex(columns=list(COLUMNS))


def stored_patterns(db: str | Path) -> pd.DataFrame:
    """Each failure's pattern in the most recently updated grouping (id, pattern, pattern_fix); none
    until `rca patterns` (or the report) has grouped the failures. A failure in no pattern: "other"."""
    from rca.store import connect

    conn = connect(db)
    try:
        return pd.read_sql_query(
            "SELECT m.failure_id AS id, COALESCE(p.name, 'other') AS pattern, p.fix AS pattern_fix "
            "FROM pattern_members m LEFT JOIN patterns p ON p.id = m.pattern_id "
            "WHERE m.set_id = (SELECT id FROM pattern_sets ORDER BY updated_at DESC, id DESC LIMIT 1)", conn)
    finally:
        conn.close()


def write_export(frame: pd.DataFrame, path: str | Path, fmt: str) -> Path:
    """Write an export; CSV holds list and evidence cells as JSON text."""
    if fmt not in FORMATS:
        raise ParameterError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    path = Path(path)
    if fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    elif fmt == "csv":
        flat = frame.copy()
        for column in flat.columns:
            if flat[column].map(lambda v: isinstance(v, (list, dict))).any():
                flat[column] = flat[column].map(lambda v: json.dumps(v, ensure_ascii=False)
                                                if isinstance(v, (list, dict)) else v)
        flat.to_csv(path, index=False)
    else:
        try:
            import pyarrow  # noqa: F401  (pandas writes parquet through it)
        except ImportError:
            raise InputError("parquet needs pyarrow: pip install 'rca[parquet]' (or export --format csv/jsonl)") from None
        frame.to_parquet(path, index=False)
    return path
