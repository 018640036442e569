"""find_patterns: the specific recurring root causes of the failures, ranked by failed cases.

A pattern is one cause ("passes `model_name=` to LlmAgent, whose field is `model`") with its
member failures. Patterns rank by failed cases (run x case x generator: a case that failed
three attempts for one cause counts once); causes outside the agent (infrastructure, the
harness) are flagged apart. With Gemini a stronger model names them (rca.synthesis); without
a key a deterministic grouping does (rca.patterns_offline).

Groupings are stored in the cache with their backend, model, prompt version, an inputs hash
and each member's answer digest: a re-run over unchanged members calls nothing, and new
failures join the stored Gemini patterns through one assignment call instead of a redo.
"""

from __future__ import annotations

import sqlite3
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from rca import patterns_offline
from rca.backends.registry import AUTO
from rca.errors import ParameterError
from rca.keys import KeyPool
from rca.pattern_types import FailureSummary, Grouping, Pattern, inputs_hash, outside_agent, summaries
from rca.store import DEFAULT_DB, connect, transaction

COLUMNS = ["name", "description", "fix", "category", "agent_caused", "other", "failed_cases", "attempts", "share",
           "generators", "suites", "failure_ids"]
BACKENDS = (AUTO, "gemini", "heuristic")  # as for analysis: heuristic is the offline grouping
INCREMENTAL_SHARE = 0.25  # new failures up to this share of the stored members are assigned, not regrouped


@dataclass
class _Stored:
    """A grouping as the cache keeps it: patterns in rank order, and each member's pattern (None: other)."""

    set_id: int
    patterns: list[Pattern]
    placed: dict[int, tuple[int | None, str]]  # failure id -> (index into patterns, answer digest)


def find_patterns(df: pd.DataFrame, *, db: str | Path | None = None, backend: str = AUTO,
                  synthesis_model: str | None = None, force: bool = False, progress: bool = True,
                  timeout: float = 120.0) -> pd.DataFrame:
    """The patterns among the analyzed rows of `df` (rows of load_failures), one row each, ranked.

    Agent patterns come first, most failed cases first, then the agent's failures in no
    pattern ("other"), then causes outside the agent the same way. `backend`: "auto"
    (Gemini when a key is set), "gemini" or "heuristic" (offline); `synthesis_model` (or
    $RCA_SYNTHESIS_MODEL) picks the Gemini model. `force=True` groups again from scratch.
    """
    if backend not in BACKENDS:
        raise ParameterError(f"unknown backend {backend!r}: use one of {', '.join(map(repr, BACKENDS))}")
    if "id" not in df.columns:
        raise ParameterError("df lacks the column 'id': pass rows of rca.load_failures(...)")
    db_path = Path(db or df.attrs.get("rca_db") or DEFAULT_DB)
    if not db_path.is_file():
        raise FileNotFoundError(f"no cache at {db_path}: pass db= the analysis_cache.db these rows came from")
    items = summaries(df)
    cases = _case_keys(df)
    use_gemini = backend == "gemini" or (backend == AUTO and KeyPool.from_env() is not None)
    if progress and backend == AUTO and not use_gemini:
        print("rca: no Gemini API key set (GEMINI_API_KEY); grouping patterns offline", file=sys.stderr)
    conn = connect(db_path)
    try:
        if use_gemini:
            grouping, source, ident = _synthesized(conn, items, synthesis_model, force, progress, timeout)
        else:
            grouping, source, ident = _grouped_offline(conn, items, cases, force)
    finally:
        conn.close()
    frame = _frame(grouping, df, cases)
    frame.attrs["rca_patterns"] = {
        "backend": ident[0], "model": ident[1], "prompt_version": ident[2], "source": source,
        "inputs_hash": _digests_hash(items), "calls": grouping.calls,
        "input_tokens": grouping.input_tokens, "output_tokens": grouping.output_tokens, "cost_usd": grouping.cost_usd,
        "max_prompt_tokens": grouping.max_prompt_tokens, "notes": grouping.notes,
        "failed_cases": len({cases[s.id] for s in items}), "attempts": len(items),
    }
    return frame


def _synthesized(conn: sqlite3.Connection, items: list[FailureSummary], model: str | None, force: bool,
                 progress: bool, timeout: float) -> tuple[Grouping, str, tuple[str, str, str]]:
    """Gemini's grouping: the stored one, extended by one assignment call, or synthesized anew."""
    from rca.synthesis import Synthesizer
    from rca.sync import run_sync

    synth = Synthesizer.from_env(model, progress=progress, timeout_s=timeout)
    ident = (synth.backend, synth.model, synth.version)
    stored = None if force else _load(conn, *ident)
    fresh = _fresh(items, stored)
    if stored is not None and not fresh:
        return _restrict(stored, items), "cache", ident
    if stored is not None and len(fresh) <= INCREMENTAL_SHARE * len(stored.placed):
        assigned = run_sync(synth.assign(stored.patterns, fresh), thread_name="rca-patterns")
        _extend(conn, stored, assigned, fresh)
        return _merged(stored, assigned, items), "assigned", ident
    grouping = run_sync(synth.group(items), thread_name="rca-patterns")
    _save(conn, ident, grouping, items)
    return grouping, "synthesized", ident


def _grouped_offline(conn: sqlite3.Connection, items: list[FailureSummary], cases: dict[int, tuple[str, str, str]],
                     force: bool) -> tuple[Grouping, str, tuple[str, str, str]]:
    """The offline grouping: the stored one while its members are unchanged, else grouped again whole
    (cheap and deterministic, so no incremental step)."""
    ident = ("heuristic", patterns_offline.METHOD, patterns_offline.VERSION)
    stored = None if force else _load(conn, *ident)
    if stored is not None and not _fresh(items, stored):
        return _restrict(stored, items), "cache", ident
    grouping = patterns_offline.group(items, cases)
    _save(conn, ident, grouping, items)
    return grouping, "grouped", ident


def _case_keys(df: pd.DataFrame) -> dict[int, tuple[str, str, str]]:
    """Each row's failed case: run x case x generator, the case being its id, else its name (as `cases` keys it)."""
    def column(name: str) -> pd.Series:
        return df[name] if name in df else pd.Series([None] * len(df), index=df.index, dtype=object)

    case = column("case_id").where(column("case_id").notna() & (column("case_id") != ""), column("benchmark_name"))
    return {int(i): (str(run), str(c), str(g) if isinstance(g, str) else "")
            for i, run, c, g in zip(df["id"], column("run_id"), case, column("generator"))}


def _digests_hash(items: list[FailureSummary]) -> str:
    return inputs_hash((s.id, s.digest) for s in items)


def _fresh(items: list[FailureSummary], stored: _Stored | None) -> list[FailureSummary]:
    """The failures the stored grouping has not placed, or placed from an answer since changed."""
    if stored is None:
        return list(items)
    return [s for s in items if stored.placed.get(s.id, (None, ""))[1] != s.digest]


def _restrict(stored: _Stored, items: list[FailureSummary]) -> Grouping:
    """The stored grouping, limited to these failures; patterns with none of them left out."""
    members: list[list[int]] = [[] for _ in stored.patterns]
    other = []
    for s in items:
        index = stored.placed[s.id][0]
        (other if index is None else members[index]).append(s.id)
    kept = [p.model_copy(update={"failure_ids": ids}) for p, ids in zip(stored.patterns, members) if ids]
    return Grouping(patterns=kept, other=other)


def _merged(stored: _Stored, assigned: Grouping, items: list[FailureSummary]) -> Grouping:
    """Stored members plus the newly assigned ones, over `items`; the assignment's cost kept."""
    placed = dict(stored.placed)
    for index, p in enumerate(assigned.patterns):
        placed.update({i: (index, "") for i in p.failure_ids})
    placed.update({i: (None, "") for i in assigned.other})
    whole = _restrict(_Stored(stored.set_id, stored.patterns, placed), items)
    return assigned.model_copy(update={"patterns": whole.patterns, "other": whole.other})


# -- storage ------------------------------------------------------------------------------------


def _load(conn: sqlite3.Connection, backend: str, model: str, version: str) -> _Stored | None:
    row = conn.execute("SELECT id FROM pattern_sets WHERE backend = ? AND model = ? AND prompt_version = ? "
                       "ORDER BY id DESC LIMIT 1", (backend, model, version)).fetchone()
    if row is None:
        return None
    set_id = int(row[0])
    rows = conn.execute("SELECT id, name, description, fix, category, agent_caused FROM patterns WHERE set_id = ? "
                        "ORDER BY id", (set_id,)).fetchall()
    index = {int(r["id"]): n for n, r in enumerate(rows)}
    patterns = [Pattern(name=r["name"], description=r["description"], fix=r["fix"], category=r["category"],
                        agent_caused=bool(r["agent_caused"]), failure_ids=[]) for r in rows]
    placed = {int(r[0]): (index.get(r[1]) if r[1] is not None else None, str(r[2])) for r in conn.execute(
        "SELECT failure_id, pattern_id, answer_hash FROM pattern_members WHERE set_id = ?", (set_id,))}
    return _Stored(set_id, patterns, placed)


def _save(conn: sqlite3.Connection, ident: tuple[str, str, str], grouping: Grouping,
          items: list[FailureSummary]) -> None:
    """A new grouping replaces the stored one for the same backend, model and prompt version."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    with transaction(conn):
        for (old,) in conn.execute("SELECT id FROM pattern_sets WHERE backend = ? AND model = ? AND prompt_version = ?",
                                   ident).fetchall():
            _delete(conn, old)
        set_id = int(conn.execute(
            "INSERT INTO pattern_sets (backend, model, prompt_version, inputs_hash, members, calls, input_tokens, "
            "output_tokens, cost_usd, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*ident, _digests_hash(items), len(items), grouping.calls, grouping.input_tokens, grouping.output_tokens,
             grouping.cost_usd, now, now)).lastrowid or 0)
        _write_members(conn, set_id, _insert_patterns(conn, set_id, grouping.patterns), grouping, items)


def _extend(conn: sqlite3.Connection, stored: _Stored, assigned: Grouping, fresh: list[FailureSummary]) -> None:
    """Record newly assigned failures in the stored grouping, and what the assignment cost."""
    ids = [int(r[0]) for r in conn.execute("SELECT id FROM patterns WHERE set_id = ? ORDER BY id", (stored.set_id,))]
    with transaction(conn):
        _write_members(conn, stored.set_id, ids, assigned, fresh)
        conn.execute("UPDATE pattern_sets SET members = (SELECT count(*) FROM pattern_members WHERE set_id = ?), "
                     "calls = calls + ?, input_tokens = input_tokens + ?, output_tokens = output_tokens + ?, "
                     "cost_usd = cost_usd + ?, updated_at = ? WHERE id = ?",
                     (stored.set_id, assigned.calls, assigned.input_tokens, assigned.output_tokens,
                      assigned.cost_usd, datetime.now(UTC).isoformat(timespec="seconds"), stored.set_id))
        placed = conn.execute("SELECT failure_id, answer_hash FROM pattern_members WHERE set_id = ?", (stored.set_id,))
        conn.execute("UPDATE pattern_sets SET inputs_hash = ? WHERE id = ?",
                     (inputs_hash((int(r[0]), str(r[1])) for r in placed.fetchall()), stored.set_id))


def _insert_patterns(conn: sqlite3.Connection, set_id: int, patterns: list[Pattern]) -> list[int]:
    return [int(conn.execute(
        "INSERT INTO patterns (set_id, name, description, fix, category, agent_caused) VALUES (?, ?, ?, ?, ?, ?)",
        (set_id, p.name, p.description, p.fix, p.category, int(p.agent_caused))).lastrowid or 0) for p in patterns]


def _write_members(conn: sqlite3.Connection, set_id: int, pattern_ids: list[int], grouping: Grouping,
                   items: list[FailureSummary]) -> None:
    digest = {s.id: s.digest for s in items}
    rows = [(set_id, i, pattern_ids[n], digest[i]) for n, p in enumerate(grouping.patterns) for i in p.failure_ids]
    rows += [(set_id, i, None, digest[i]) for i in grouping.other]
    conn.executemany("INSERT INTO pattern_members (set_id, failure_id, pattern_id, answer_hash) VALUES (?, ?, ?, ?) "
                     "ON CONFLICT (set_id, failure_id) DO UPDATE SET pattern_id = excluded.pattern_id, "
                     "answer_hash = excluded.answer_hash", rows)


def _delete(conn: sqlite3.Connection, set_id: int) -> None:
    for table, column in (("pattern_members", "set_id"), ("patterns", "set_id"), ("pattern_sets", "id")):
        conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (set_id,))


# -- the ranked frame ---------------------------------------------------------------------------


def _frame(grouping: Grouping, df: pd.DataFrame, cases: dict[int, tuple[str, str, str]]) -> pd.DataFrame:
    """One row per pattern, plus an "other" row for each side with failures in no pattern, ranked."""
    rows_of = df.set_index(df["id"].astype(int))
    category_of = rows_of["category"].to_dict() if "category" in rows_of else {}
    total = len({cases[i] for i in category_of if isinstance(category_of[i], str)}) or 1
    rows = [_row(p.name, p.description, p.fix, p.category, p.agent_caused, False, p.failure_ids, rows_of, cases, total)
            for p in grouping.patterns]
    for agent in (True, False):
        ids = [i for i in grouping.other if outside_agent(category_of.get(i)) != agent]
        if ids:
            name = "other agent failures" if agent else "other failures outside the agent"
            rows.append(_row(name, "Failures whose cause no other failure shares.", "", None, agent, True, ids,
                             rows_of, cases, total))
    frame = pd.DataFrame(rows, columns=COLUMNS)
    order = frame.assign(_side=~frame["agent_caused"], _cases=-frame["failed_cases"], _n=-frame["attempts"])
    order = order.sort_values(["_side", "other", "_cases", "_n", "name"], kind="stable")
    return frame.loc[order.index].reset_index(drop=True)


def _row(name: str, description: str, fix: str, category: str | None, agent: bool, other: bool, ids: list[int],
         rows_of: pd.DataFrame, cases: dict[int, tuple[str, str, str]], total: int) -> dict[str, object]:
    members = rows_of.loc[ids]
    failed = len({cases[i] for i in ids})
    return {"name": name, "description": description, "fix": fix, "category": category, "agent_caused": agent,
            "other": other, "failed_cases": failed, "attempts": len(ids), "share": failed / total,
            "generators": sorted({str(g) for g in members.get("generator", pd.Series(dtype=object)).dropna()}),
            "suites": sorted({str(s) for s in members.get("suite", pd.Series(dtype=object)).dropna()}),
            "failure_ids": sorted(ids)}


def format_patterns(frame: pd.DataFrame, *, width: int = 100) -> str:
    """The ranked list as text, what to fix first: agent patterns with their share of all failed
    cases, then the causes outside the agent apart."""
    meta = frame.attrs.get("rca_patterns", {})
    how = (f"grouped offline ({meta.get('model')})" if meta.get("backend") == "heuristic" else
           f"synthesized by {meta.get('model')}" + (f", {meta['calls']} calls" if meta.get("calls") else ""))
    lines = [f"{meta.get('failed_cases', 0)} failed cases ({meta.get('attempts', 0)} attempts), "
             f"{int((~frame['other']).sum())} patterns, {how}" + (" (from the cache)" if meta.get("source") == "cache" else "")]
    for agent, title in ((True, "What to fix first: causes in the agent"), (False, "Outside the agent: infrastructure, harness")):
        side = frame[frame["agent_caused"] == agent]
        if side.empty:
            continue
        lines += ["", title, f"  {'#':>3}  {'cases':>5}  {'share':>5}  {'attempts':>8}  {'category':<18}  pattern"]
        for n, row in enumerate(side.itertuples(), 1):
            rank = "" if row.other else str(n)
            lines.append(f"  {rank:>3}  {row.failed_cases:>5}  {row.share:>5.0%}  {row.attempts:>8}  "
                         f"{row.category if isinstance(row.category, str) else '':<18}  {row.name}"[:width + 40])
            if row.fix:
                lines.append(f"{'':>47}fix: {row.fix}"[:width + 40])
    lines += [f"note: {note}" for note in meta.get("notes", [])]
    return "\n".join(lines)
