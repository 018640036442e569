"""`rca eval`: an analyzer graded on a labelled data set, beside the trivial guesses, and kept.

Published failure-attribution results (Who&When) are given as agent accuracy (the responsible
agent named) and step accuracy (the decisive step named exactly), so the eval speaks in those
terms, and beside them in the same terms: always the first step, always the last, and a random
step (fixed seed), on the same cases. An analyzer that does not beat them has found nothing.

The data set goes into a cache of its own (by default `rca-eval-<name>.db` in the working
folder), so evals never mix with a project's failures, and each eval is recorded in its `evals`
table with its settings (backend, model, taxonomy, prompt version, budget) and figures:
`eval_history` puts two settings side by side.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rca.agreement import figures
from rca.backends.registry import choose_backend
from rca.errors import InputError, TraceNotFound
from rca.labels import DATASET, load_labels
from rca.prompt import PROMPT_VERSION
from rca.schema import Taxonomy, resolve_taxonomy
from rca.store import connect, load_failures, transaction
from rca.traces import load_transcript
from rca.transcript import Transcript

SHOWN = ("agent accuracy", "step exact", "step within 1", "step within 3", "step among candidates", "category accuracy")
HEADINGS = {"step exact": "step accuracy"}  # the published name of exact step accuracy
ANALYZER = "analyzer"  # the guesser under test, named by its model when shown


@dataclass(frozen=True)
class EvalResult:
    """One eval: its settings, the cases, and per guesser (the analyzer first) its figures."""

    id: int
    db: Path
    settings: dict[str, Any]
    cases: int
    figures: dict[str, pd.DataFrame]  # guesser (ANALYZER first) -> figures() frame
    unanswered: pd.Series = field(default_factory=lambda: pd.Series(dtype=object))  # analysis errors by failure id

    def table(self) -> pd.DataFrame:
        """Guesser by figure: the values."""
        return pd.DataFrame({who: frame.set_index("figure")["value"] for who, frame in self.figures.items()}).T


def default_eval_db(path: str | Path) -> Path:
    """The eval's own cache in the working folder, named after the data set."""
    return Path(f"rca-eval-{Path(path).resolve().stem or 'data'}.db")


def evaluate(path: str | Path, *, db: str | Path | None = None, format: str = "auto", backend: str = "auto",
             model: str | None = None, taxonomy: Taxonomy | str | Path | None = "default",
             budget_usd: float | None = None, concurrency: int = 8, labeller: str = DATASET, seed: int = 0,
             all_failed: bool = False, timeout: float = 120.0, progress: bool = False) -> EvalResult:
    """Ingest the labelled set at `path`, analyze its labelled failures, grade them against `labeller`'s
    labels beside the trivial guesses, and record the eval."""
    from rca.analyze import analyze_failures
    from rca.ingest import ingest_runs

    db = Path(db) if db is not None else default_eval_db(path)
    tax = resolve_taxonomy(taxonomy)
    summary = ingest_runs(path, db, format=format, all_failed=all_failed)
    for issue in summary.issues:
        print(f"rca eval: {issue}", file=sys.stderr)
    labels = load_labels(db)
    truth = labels[labels["labeller"] == labeller].set_index("failure_id")
    if truth.empty:
        known = sorted(labels["labeller"].unique())
        raise InputError(f"no labels by {labeller!r} in {path}: rca eval needs a labelled data set (such as "
                         "multi-agent logs with mistake_step) or labels imported into "
                         f"{db} (rca labels import FILE --db {db})" + (f"; labellers there: {known}" if known else ""))
    engine = choose_backend(backend, model, announce=progress, timeout_s=timeout)
    failures = load_failures(db)
    out = analyze_failures(failures[failures["id"].isin(truth.index)], db=db, backend=engine, taxonomy=tax,
                           budget_usd=budget_usd, concurrency=concurrency, progress=progress)
    cases = _cases(out, truth)
    rng = np.random.default_rng(seed)
    guesses = {ANALYZER: _answered(cases),
               "always first step": _guessed(cases, lambda n: 0),
               "always last step": _guessed(cases, lambda n: n - 1),
               f"random step (seed {seed})": _guessed(cases, lambda n: int(rng.integers(0, n)))}
    result = {who: figures(pairs, seed=seed) for who, pairs in guesses.items()}
    settings = {"data": str(path), "backend": engine.name, "model": engine.model,
                "taxonomy": tax.key, "prompt_version": PROMPT_VERSION, "budget_usd": budget_usd, "labeller": labeller}
    eval_id = _record(db, settings, len(cases), result)
    return EvalResult(eval_id, db, settings, len(cases), result, out.set_index("id")["analysis_error"].dropna())


def _cases(out: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Each labelled failure with its label, the answer, and its transcript (None when unreadable)."""
    rows = []
    for row in out.to_dict("records"):
        label = truth.loc[row["id"]]
        try:
            transcript: Transcript | None = load_transcript(row)
        except (TraceNotFound, OSError):
            transcript = None
        rows.append({"failure_id": row["id"], "transcript": transcript, "true_category": label["category"],
                     "true_step": label["step"], "true_agent": label["agent"], "pred_category": row["category"],
                     "pred_step": row["root_cause_step"], "candidates": row["candidate_steps"],
                     "pred_agent": row["root_cause_agent"], "confidence": row["confidence"]})
    return pd.DataFrame(rows)


def _agent_at(transcript: Transcript | None, step: Any) -> str | None:
    if transcript is None or pd.isna(step) or not 0 <= int(step) < len(transcript.steps):
        return None
    return transcript.steps[int(step)].agent


def _answered(cases: pd.DataFrame) -> pd.DataFrame:
    """The analyzer's answers; where it names no agent (one agent acts), the agent of its step."""
    agents = [a if isinstance(a, str) and a else _agent_at(t, s)
              for a, t, s in zip(cases["pred_agent"], cases["transcript"], cases["pred_step"])]
    return cases.assign(pred_agent=agents).drop(columns="transcript")


def _guessed(cases: pd.DataFrame, pick: Any) -> pd.DataFrame:
    """A trivial guesser: the step `pick(number of steps)` and its agent; no category, no candidates."""
    steps = [pick(len(t.steps)) if t is not None and t.steps else None for t in cases["transcript"]]
    return cases.assign(pred_step=pd.array(steps, dtype="Int64"),
                        pred_agent=[_agent_at(t, s) for t, s in zip(cases["transcript"], steps)],
                        pred_category=None, confidence=np.nan).drop(columns=["transcript", "candidates"])


def _record(db: Path, settings: dict[str, Any], cases: int, result: dict[str, pd.DataFrame]) -> int:
    stored = {who: frame.set_index("figure").to_dict("index") for who, frame in result.items()}
    conn = connect(db)
    try:
        with transaction(conn):
            cursor = conn.execute(
                "INSERT INTO evals (data, backend, model, taxonomy, prompt_version, budget_usd, labeller, cases, "
                "figures, created_at) VALUES (:data, :backend, :model, :taxonomy, :prompt_version, :budget_usd, "
                ":labeller, :cases, :figures, :created_at)",
                {**settings, "cases": cases, "figures": json.dumps(stored, allow_nan=True),
                 "created_at": datetime.now(UTC).isoformat(timespec="seconds")})
        return int(cursor.lastrowid or 0)
    finally:
        conn.close()


def eval_history(db: str | Path) -> pd.DataFrame:
    """Every recorded eval, oldest first: its settings and the analyzer's figures, side by side."""
    conn = connect(db)
    try:
        frame = pd.read_sql_query("SELECT * FROM evals ORDER BY id", conn)
    finally:
        conn.close()
    stored = [json.loads(text) for text in frame.pop("figures")]
    for name in SHOWN:
        frame[name] = [figs.get(ANALYZER, {}).get(name, {}).get("value") for figs in stored]
    return frame


def format_eval(result: EvalResult) -> str:
    """The eval as a Markdown table: a row per guesser, the analyzer's figures with their 95% intervals."""
    s = result.settings
    shown = [f for f in SHOWN if any(_n(frame, f) for frame in result.figures.values())]
    lines = [f"rca eval {s['data']}: {result.cases} labelled failures (labeller {s['labeller']}); "
             f"{analyzer_name(s)}, taxonomy {s['taxonomy']}, prompt {s['prompt_version']}",
             "", "| guesser | cases | " + " | ".join(HEADINGS.get(f, f) for f in shown) + " |",
             "| --- | --- |" + " --- |" * len(shown)]
    for who, frame in result.figures.items():
        figs = frame.set_index("figure")
        cells = [_cell(figs.loc[f], interval=who == ANALYZER) if _n(frame, f) else "–" for f in shown]
        name = analyzer_name(s) if who == ANALYZER else who
        lines.append(f"| {name} | {result.cases} | " + " | ".join(cells) + " |")
    if len(result.unanswered):
        lines += ["", f"{len(result.unanswered)} cases without an answer count as misses "
                      f"(e.g. {result.unanswered.iloc[0][:160]})"]
    lines += ["", f"recorded as eval {result.id} in {result.db} (rca eval --history --db {result.db})"]
    return "\n".join(lines)


def format_history(history: pd.DataFrame) -> str:
    """The recorded evals as a Markdown table, oldest first."""
    if history.empty:
        return "no evals recorded yet: rca eval PATH"
    shown = [f for f in SHOWN if history[f].notna().any()]
    lines = ["| eval | when | backend | model | taxonomy | prompt | budget | labeller | cases | "
             + " | ".join(HEADINGS.get(f, f) for f in shown) + " |", "|" + " --- |" * (9 + len(shown))]
    for row in history.to_dict("records"):
        budget = f"${row['budget_usd']:g}" if pd.notna(row["budget_usd"]) else "–"
        cells = ["–" if pd.isna(row[f]) else f"{row[f]:.0%}" for f in shown]
        lines.append(f"| {row['id']} | {row['created_at']} | {row['backend']} | {row['model']} | {row['taxonomy']} | "
                     f"{row['prompt_version']} | {budget} | {row['labeller']} | {row['cases']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def analyzer_name(settings: dict[str, Any]) -> str:
    return "offline analyzer" if settings["backend"] == "heuristic" else f"{settings['backend']} {settings['model']}"


def _n(frame: pd.DataFrame, figure: str) -> int:
    rows = frame[frame["figure"] == figure]
    return int(rows["n"].iloc[0]) if len(rows) else 0


def _cell(row: pd.Series, *, interval: bool) -> str:
    text = f"{row['value']:.0%}"
    return f"{text} [{row['low']:.0%}, {row['high']:.0%}]" if interval else text
