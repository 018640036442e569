"""Labels: what a person (or a data set) says caused a failure, kept beside the model's answers.

A label names a failure, its labeller, and any of the category, the root-cause step and the
responsible agent, with a note. Each labeller has one label per failure (a new one replaces it),
so several people can label the same failures and be compared with each other as well as with
the model (rca.agreement). Labels come from code (`label`), from a CSV or JSONL file
(`import_labels`: every good line is imported, every bad one is an error naming its file and
line), from the labeller widget (rca.labeller), or from the data itself at ingest: the
multi-agent logs' mistake_step and mistake_agent become the labeller `dataset`.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rca.errors import ParameterError
from rca.schema import Taxonomy, resolve_taxonomy
from rca.store import connect, transaction

DATASET = "dataset"  # the labeller of labels that came with the data
LABELLED_FORMATS = frozenset({"multiagent"})  # formats whose transcripts carry metadata["labels"]
_FROM_DATA = {"step": "mistake_step", "agent": "mistake_agent", "note": "mistake_reason"}
_JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")


class Label(BaseModel):
    """One line of a labels file, or one call of `label`: which failure, and what its labeller says."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    failure_id: int | None = None
    run_id: str | None = None
    benchmark_name: str | None = None
    attempt_number: int | None = None
    category: str | None = None
    step: int | None = Field(default=None, ge=0)
    agent: str | None = None
    labeller: str | None = None
    note: str | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        """An empty CSV cell means "not given", not an empty name."""
        return None if isinstance(value, str) and not value.strip() else value


class LabelImport(BaseModel):
    """What `import_labels` did: the lines written and, per bad line, `file:line: what is wrong`."""

    path: str
    imported: int = 0
    errors: list[str] = []

    def __str__(self) -> str:
        head = f"labels: {self.imported} imported from {self.path}; {len(self.errors)} bad lines"
        return "\n".join([head, *(f"  {e}" for e in self.errors)])


def label(db: str | Path, failure_id: int, *, category: str | None = None, step: int | None = None,
          agent: str | None = None, labeller: str = "human", note: str | None = None,
          taxonomy: Taxonomy | str | Path | None = "default") -> None:
    """Record `labeller`'s label of one failure (replacing their earlier one); ParameterError when it is
    not a label of a failure in the cache (unknown id, a category outside the taxonomy, nothing said)."""
    try:
        given = Label(failure_id=failure_id, category=category, step=step, agent=agent, labeller=labeller, note=note)
    except ValidationError as exc:
        raise ParameterError(_validation_text(exc)) from None
    conn = connect(db)
    try:
        row = _resolve(conn, given, resolve_taxonomy(taxonomy), None)
        if isinstance(row, str):
            raise ParameterError(row)
        with transaction(conn):
            _write(conn, [row])
    finally:
        conn.close()


def import_labels(path: str | Path, db: str | Path, *, labeller: str | None = None,
                  taxonomy: Taxonomy | str | Path | None = "default") -> LabelImport:
    """Import a CSV or JSONL file of labels; `labeller` is the default for lines that name none.

    Columns: `failure_id`, or `run_id` + `benchmark_name` (+ `attempt_number` where a case has
    several attempts); then any of `category` (a name of the taxonomy), `step`, `agent`, and
    `labeller`, `note`. Good lines are written in one transaction; bad ones are listed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no labels file at {path}")
    tax = resolve_taxonomy(taxonomy)
    result = LabelImport(path=str(path))
    rows: list[dict[str, Any]] = []
    conn = connect(db)
    try:
        for line, record in _records(path):
            if isinstance(record, str):
                result.errors.append(f"{path}:{line}: {record}")
                continue
            try:
                row = _resolve(conn, Label.model_validate(record), tax, labeller)
            except ValidationError as exc:
                row = _validation_text(exc)
            if isinstance(row, str):
                result.errors.append(f"{path}:{line}: {row}")
            else:
                rows.append(row)
        with transaction(conn):
            _write(conn, rows)
    finally:
        conn.close()
    result.imported = len(rows)
    return result


def load_labels(db: str | Path) -> pd.DataFrame:
    """Every label: failure_id, labeller, category, step, agent, note, created_at."""
    conn = connect(db)
    try:
        frame = pd.read_sql_query("SELECT failure_id, labeller, category, step, agent, note, created_at FROM labels "
                                  "ORDER BY failure_id, labeller", conn)
    finally:
        conn.close()
    frame["step"] = frame["step"].astype("Int64")
    return frame


def import_dataset_labels(conn: sqlite3.Connection, format_name: str, path: Path) -> int:
    """After ingest has read `path`: the labels its data carries (a multi-agent log's mistake_step and
    mistake_agent), as labeller `dataset`, for each of its failures; 0 for formats that carry none."""
    if format_name not in LABELLED_FORMATS:
        return 0
    from rca.traces import load_transcript

    failures = conn.execute("SELECT * FROM failures WHERE format = ? AND trace_log_path = ?",
                            (format_name, str(path.resolve()))).fetchall()
    rows = []
    for failure in failures:
        given = load_transcript(dict(failure)).metadata.get("labels") or {}
        try:
            found = Label(failure_id=failure["id"], labeller=DATASET,
                          **{field: given.get(key) for field, key in _FROM_DATA.items()})
        except ValidationError:
            continue  # a label the data gets wrong (a step that is no index) grades nothing
        if found.step is not None or found.agent is not None:
            rows.append(_row(found, int(failure["id"]), DATASET, None))
    with transaction(conn):
        _write(conn, rows)
    return len(rows)


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, the line's fields, or what is wrong with it) for each line of a CSV or JSONL file."""
    with path.open(encoding="utf-8-sig", newline="") as f:  # -sig: a spreadsheet's byte-order mark
        head = f.read(4096).lstrip()
        f.seek(0)
        if path.suffix.lower() in _JSON_SUFFIXES or (path.suffix.lower() != ".csv" and head.startswith("{")):
            for number, text in enumerate(f, start=1):
                if text.strip():
                    yield number, _json_record(text)
            return
        reader = csv.DictReader(f)
        columns = set(reader.fieldnames or ())
        if "failure_id" not in columns and not {"run_id", "benchmark_name"} <= columns:
            yield 1, (f"the header {sorted(columns)} has no failure_id column, nor run_id and benchmark_name: "
                      "each line must say which failure it labels")
            return
        for record in reader:
            if None in record:
                yield reader.line_num, f"{len(record[None])} more cells than the header's {len(columns)} columns"
            else:
                yield reader.line_num, record


def _json_record(text: str) -> dict[str, Any] | str:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"not JSON: {exc.msg} at column {exc.colno}"
    return value if isinstance(value, dict) else f"a JSON {type(value).__name__}, not an object of label fields"


def _resolve(conn: sqlite3.Connection, given: Label, tax: Taxonomy, default_labeller: str | None
             ) -> dict[str, Any] | str:
    """The labels row for `given`, or what is wrong with it."""
    failure_id = _failure_id(conn, given)
    if isinstance(failure_id, str):
        return failure_id
    if given.category is None and given.step is None and given.agent is None:
        return "nothing to label: give a category, a step or an agent"
    labeller = given.labeller or default_labeller
    if labeller is None:
        return "no labeller: fill the labeller column (or pass --labeller NAME for the whole file)"
    category = None
    if given.category is not None:
        known = {name.casefold(): name for name in tax.names}
        category = known.get(given.category.casefold())
        if category is None:
            return f"category {given.category!r} is not in the taxonomy {tax.name!r}: use one of {tax.names}"
    return _row(given, failure_id, labeller, category)


def _failure_id(conn: sqlite3.Connection, given: Label) -> int | str:
    if given.failure_id is not None:
        if conn.execute("SELECT 1 FROM failures WHERE id = ?", (given.failure_id,)).fetchone() is None:
            return f"no failure {given.failure_id} in the cache"
        return given.failure_id
    if given.run_id is None or given.benchmark_name is None:
        return "which failure? give failure_id, or run_id and benchmark_name (and attempt_number)"
    sql, params = "SELECT id FROM failures WHERE run_id = ? AND benchmark_name = ?", [given.run_id, given.benchmark_name]
    if given.attempt_number is not None:
        sql, params = sql + " AND attempt_number = ?", [*params, given.attempt_number]
    ids = [r[0] for r in conn.execute(sql, params)]
    which = f"run {given.run_id!r}, benchmark {given.benchmark_name!r}" + (
        f", attempt {given.attempt_number}" if given.attempt_number is not None else "")
    if not ids:
        return f"no failure of {which} in the cache"
    if len(ids) > 1:
        return f"{len(ids)} failures of {which} (ids {ids[:5]}): give attempt_number or failure_id"
    return int(ids[0])


def _row(given: Label, failure_id: int, labeller: str, category: str | None) -> dict[str, Any]:
    return {"failure_id": failure_id, "labeller": labeller, "category": category, "step": given.step,
            "agent": given.agent, "note": given.note, "created_at": datetime.now(UTC).isoformat(timespec="seconds")}


def _write(conn: sqlite3.Connection, rows: list[dict[str, Any]]) -> None:
    """Upsert: a labeller's new label of a failure replaces their old one."""
    conn.executemany(
        "INSERT INTO labels (failure_id, labeller, category, step, agent, note, created_at) "
        "VALUES (:failure_id, :labeller, :category, :step, :agent, :note, :created_at) "
        "ON CONFLICT (failure_id, labeller) DO UPDATE SET category = excluded.category, step = excluded.step, "
        "agent = excluded.agent, note = excluded.note, created_at = excluded.created_at", rows)


def _validation_text(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'line'}: {e['msg']}" for e in exc.errors())
