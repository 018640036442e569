"""The report notebook's logic, so its cells stay one-line calls: check the parameters, ingest,
load, analyze; tables of the results; one trace up close. Running it in batch is rca.notebook's job.

    df = prepare(runs_dir="benchmark_runs", analyze=True)      # the notebook's first cell
    overview(df); category_examples(df); show_trace(pick_failure(df))
"""

from __future__ import annotations

import html
import json
import re
import sqlite3
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from IPython.display import HTML
from pandas.io.formats.style import Styler

from rca.analyze import TRACE_BUDGET_TOKENS, analyze_failures
from rca import charts
from rca.backends.registry import choose_backend
from rca.charts import analyzed, baseline_disagreements, category_order
from rca.errors import ParameterError
from rca.formats import missing
from rca.ingest import ingest_runs
from rca.options import OPTION, number
from rca.pricing import Price
from rca.redact import redact
from rca.render import render_trace
from rca.schema import resolve_taxonomy
from rca.store import load_failures
from rca.traces import TraceNotFound, load_transcript

# --- 0. parameters, ingest, load, analyze -----------------------------------------------

def as_list(value: Any, name: str) -> list[str]:
    """A filter from papermill or a person: None, "", one name, "a,b", a JSON list as text
    (papermill's `-p suites '["a"]'` passes it so) or a list; empty means all."""
    if value is None or value == "":
        return []
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ParameterError(f"{name} {value!r} is not a JSON list: {exc}") from None
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, Sequence):
        return [str(v) for v in value]
    raise ParameterError(f"{name} must be a list of names (or one comma-separated string), got {value!r}")


def _found(path: Path) -> Path:
    """A relative path as given, else from the folder above: Jupyter runs the notebook in
    notebooks/, the command line and papermill in the repo root, and both name the same files."""
    if path.is_absolute() or path.exists():
        return path
    above = Path("..") / path
    return above if above.exists() else path


def _known(db: Path, column: str) -> list[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return [r[0] for r in conn.execute(f"SELECT DISTINCT {column} FROM failures WHERE {column} IS NOT NULL ORDER BY 1")]


def check_filters(db: str | Path, *, run_ids: Sequence[str] = (), suites: Sequence[str] = (),
                  generators: Sequence[str] = ()) -> None:
    """Raise ParameterError naming any filter value the cache does not hold, with the known ones:
    an empty result from a typo would look like good news."""
    for column, wanted in (("run_id", run_ids), ("suite", suites), ("generator", generators)):
        known = _known(Path(db), column)
        unknown = [v for v in wanted if v not in known]
        if unknown:
            listed = ", ".join(map(repr, known)) if known else "none (the cache holds no failures)"
            raise ParameterError(f"unknown {column} {', '.join(map(repr, unknown))} in {db}: known {column}s are {listed}")


def _say(text: str) -> None:
    """Print in order with the analyzer's stderr lines (a kernel buffers the two streams apart)."""
    sys.stderr.flush()
    print(text, flush=True)


def prepare(
    db_path: str | Path = "analysis_cache.db",
    runs_dir: str | Path | None = None,
    *,
    run_ids: Any = None,
    suites: Any = None,
    generators: Any = None,
    limit: int | None = None,
    analyze: bool = False,
    backend: str = "auto",
    model: str | None = None,
    concurrency: int = 8,
    force: bool = False,
    budget_usd: float | None = None,
    taxonomy: Any = "default",
    timeout: float = 120.0,
    price: str | None = None,
) -> pd.DataFrame:
    """The failures the report is about, analyzed when asked.

    Every parameter is checked before anything is written or any model is called, and a
    wrong one raises ParameterError saying what to fix. With runs_dir, new runs are ingested
    into db_path first. With analyze, rows without an answer under this taxonomy (all rows
    with force) go to the analyzer. The frame is read back from the cache afterwards, so it
    shows each failure's latest good answer; attrs keep the ingest and analysis summaries.
    """
    filters = {"run_ids": as_list(run_ids, "run_ids"), "suites": as_list(suites, "suites"),
               "generators": as_list(generators, "generators")}
    limit = number(limit, "limit", int, 0)
    concurrency = OPTION["concurrency"].check(concurrency)
    budget_usd = OPTION["budget_usd"].check(budget_usd)
    OPTION["backend"].check(backend)
    try:
        tax = resolve_taxonomy(taxonomy or None)
    except (ValueError, FileNotFoundError) as exc:
        raise ParameterError(str(exc)) from None
    db = _found(Path(db_path))
    if runs_dir in (None, ""):
        runs = None
        if not db.is_file():
            raise ParameterError(f"no cache at {db}: set runs_dir to ingest runs first, "
                                 "or db_path to an existing analysis_cache.db")
    else:
        runs = _found(Path(runs_dir))
        if not runs.is_dir():
            raise ParameterError(f"no runs folder at {runs} (working directory {Path.cwd()}): set runs_dir to the "
                                 f"folder holding <run_id>/trace.jsonl, write demo runs there with `rca demo {runs}`, "
                                 "or set runs_dir=None to report on db_path as it is")
        if not db.parent.is_dir():
            raise ParameterError(f"cannot create {db}: folder {db.parent} does not exist; set db_path")
    engine = None
    if analyze:
        try:
            engine = choose_backend(backend, model, announce=True, timeout_s=OPTION["timeout"].check(timeout),
                                    price=Price.parse(price) if price else None)
        except ValueError as exc:
            raise ParameterError(str(exc)) from None

    ingest_text = None
    if runs is not None:
        ingest_text = str(ingest_runs(runs, db))
        _say(ingest_text)
    check_filters(db, **filters)

    df = load_failures(db, **filters, limit=limit)
    session: dict[str, Any] = {}
    if engine is not None and len(df):
        todo = df if force else df[df["category"].isna() | (df["taxonomy"] != tax.key)]
        if len(todo):
            done = analyze_failures(todo, db=db, backend=engine, taxonomy=tax, concurrency=concurrency, force=force,
                                    budget_usd=budget_usd, progress=False, runs_dir=runs, price=price)
            errors = done["analysis_error"].dropna()
            session = {"model": engine.model, "rows": len(done), "from_cache": int(done["from_cache"].fillna(False).sum()),
                       "errors": len(errors), "first_error": errors.iloc[0] if len(errors) else None}
            df = load_failures(db, **filters, limit=limit)
        else:
            _say(f"rca: all {len(df)} rows already analyzed with taxonomy {tax.name!r}; set force=True to analyze again")
    df.attrs.update(rca_runs_dir=str(runs) if runs else None, rca_ingest=ingest_text, rca_session=session,
                    rca_taxonomy=tax.key)
    _say(f"rca: {len(df)} failed attempts loaded from {db}, {len(analyzed(df))} analyzed")
    return df


# --- 1. overview -------------------------------------------------------------------------

def overview(df: pd.DataFrame) -> Styler:
    """Failures loaded and analyzed, by which models, at what token cost: is the report complete?

    A Styler, so long values are shown whole; `.data` is the plain frame."""
    done = analyzed(df)
    rows: dict[str, str] = {"Cache": str(df.attrs.get("rca_db", "?"))}
    if len(df):
        rows["Runs"] = f"{df['run_id'].nunique()} ({df['run_id'].min()} … {df['run_id'].max()})"
        rows["Suites · generators"] = f"{df['suite'].nunique()} · {df['generator'].nunique()}"
    rows["Failed attempts loaded"] = f"{len(df):,}"
    share = f" ({len(done) / len(df):.0%})" if len(df) else ""
    rows["Analyzed"] = f"{len(done):,}{share}"
    for name, part in done.groupby(done["model"].fillna("?").astype(str)):
        tokens = f"{int(part['input_tokens'].fillna(0).sum()):,} in / {int(part['output_tokens'].fillna(0).sum()):,} out tokens"
        rows[f"Model {name}"] = f"{len(part):,} rows; {tokens}; ${part['cost_usd'].fillna(0).sum():.4f}"
    if len(done):
        rows["Taxonomy"] = ", ".join(sorted(done["taxonomy"].dropna().astype(str).unique())) or "?"
        rows["Total cost"] = f"${done['cost_usd'].fillna(0).sum():.4f}"
    session = df.attrs.get("rca_session") or {}
    if session:
        text = (f"{session['rows']} rows sent to {session['model']}: {session['from_cache']} from cache, "
                f"{session['errors']} errors")
        rows["This run"] = text + (f" (first: {redact(str(session['first_error']))})" if session.get("first_error") else "")
    if df.attrs.get("rca_ingest"):
        rows["Ingest"] = redact(str(df.attrs["rca_ingest"]).splitlines()[0])
    frame = pd.DataFrame({"value": rows})
    return frame.style.set_properties(**{"text-align": "left", "white-space": "normal"})


# --- tables ------------------------------------------------------------------------------

TABLE_CSS = """<style>
.rca-table table { border-collapse: collapse; font-size: 12.5px; }
.rca-table th, .rca-table td { text-align: left !important; vertical-align: top !important;
  white-space: normal !important; max-width: 34em; padding: 4px 8px; border-bottom: 1px solid #ddd; }
.rca-table h4 { margin: 18px 0 6px 0; }
</style>"""


_LINK = re.compile(r"\u27e6(\d+)\u27e7")  # ⟦id⟧: a failure id that becomes a link to its details


def table(frame: pd.DataFrame, *, title: str | None = None, link: str | None = None) -> HTML:
    """A frame as a wrapped, left-aligned HTML table (long explanations stay readable); the
    `link` column's failure ids link to their details further down the page.

    Every text in it is redacted: its cells hold benchmark names, errors and answers quoting traces."""
    head = f"<h4>{html.escape(redact(title))}</h4>" if title else ""
    frame = frame.map(lambda v: redact(v) if isinstance(v, str) else v)
    if link is not None and link in frame:
        frame = frame.assign(**{link: frame[link].map(lambda v: f"\u27e6{int(v)}\u27e7")})
    body = frame.to_html(index=False, escape=True, na_rep="—", float_format=lambda x: f"{x:.2f}") if len(frame) else "<p><i>none</i></p>"
    body = _LINK.sub(lambda m: f'<a href="#failure-{m[1]}">#{m[1]}</a>', body)
    return HTML(f'{TABLE_CSS}<div class="rca-table">{head}{body}</div>')


def _step(value: Any) -> str:
    return "—" if missing(value) else f"[{int(value)}]"


def category_examples(df: pd.DataFrame, per_category: int = 3) -> HTML:
    """The most confident failures of each category, with the model's reasoning, so a reader can
    check whether a category means what its name says."""
    done = analyzed(df)
    if done.empty:
        return HTML("<p><i>no analyzed failures yet</i></p>")
    parts = []
    for cat in category_order(done):
        rows = done[done["category"] == cat].sort_values(["confidence", "id"], ascending=[False, True]).head(per_category)
        shown = pd.DataFrame({
            "id": rows["id"], "benchmark": rows["benchmark_name"], "run · suite · generator":
                rows["run_id"].astype(str) + " · " + rows["suite"].astype(str) + " · " + rows["generator"].astype(str),
            "confidence": rows["confidence"], "explanation": rows["root_cause_explanation"],
            "expected": rows["expected_behavior"], "actual": rows["actual_behavior"],
            "failing step": rows["root_cause_step"].map(_step),
            "agent": rows.get("root_cause_agent"), "fix": rows.get("fix"),
        })
        shown = shown.dropna(axis=1, how="all")  # answers from before agents and fixes existed
        n = int((done["category"] == cat).sum())
        parts.append(table(shown, title=f"{cat}: {n} failed attempt{'s' * (n != 1)}", link="id").data)
    return HTML("".join(parts))


# --- 7. one failure up close -------------------------------------------------------------

def pick_failure(df: pd.DataFrame, failure_id: int | None = None) -> pd.Series | None:
    """The failure to look at: `failure_id`, else the one whose root cause the regex baseline
    most disagrees with (and that names a failing step): where reading the trace teaches most."""
    if failure_id is not None:
        match = df[df["id"] == int(failure_id)]
        if match.empty:
            raise ParameterError(f"no failure with id {failure_id} in this frame (ids {df['id'].min()}–{df['id'].max()})")
        return match.iloc[0]
    done = analyzed(df)
    if done.empty:
        return df.iloc[0] if len(df) else None
    ranked = baseline_disagreements(done, n=len(done))["id"].tolist()
    stepped = done[done["root_cause_step"].notna()] if "root_cause_step" in done else done
    pool = stepped if len(stepped) else done
    ids = set(pool["id"])
    best = next(i for i in ranked if i in ids)
    return pool[pool["id"] == best].iloc[0]


_STEP = re.compile(r"^\[(\d+)\] (?:\(×\d+, steps (\d+)–(\d+)\) )?")


def _blocks(text: str) -> list[tuple[int | None, int | None, str]]:
    """The rendered trace split into its `[i] ...` steps as (first, last, text)."""
    blocks: list[tuple[int | None, int | None, str]] = []
    for line in text.splitlines():
        m = _STEP.match(line)
        if m or line.startswith("[… ") or not blocks:
            first = int(m.group(2) or m.group(1)) if m else None
            last = int(m.group(3) or m.group(1)) if m else None
            blocks.append((first, last, line))
        else:
            blocks[-1] = (blocks[-1][0], blocks[-1][1], blocks[-1][2] + "\n" + line)
    return blocks


def show_trace(row: pd.Series | Mapping[str, Any] | None, runs_dir: str | Path | None = None,
               budget_tokens: int = TRACE_BUDGET_TOKENS) -> HTML:
    """The trace as the model read it, with the root-cause step highlighted and the steps its
    evidence quotes marked, under the failure's diagnosis."""
    if row is None:
        return HTML("<p><i>no failure to show</i></p>")
    row = dict(row)
    try:
        rendered = render_trace(load_transcript(row, runs_dir=runs_dir), budget_tokens=budget_tokens)
    except (TraceNotFound, OSError) as exc:
        return HTML(f"<p><b>trace not readable:</b> {html.escape(redact(str(exc)))}</p>")
    step = row.get("root_cause_step")
    step = None if step is None or step != step else int(step)
    evidence = row.get("evidence") if isinstance(row.get("evidence"), list) else []
    quoted = {int(e["step"]) for e in evidence if isinstance(e, dict) and isinstance(e.get("step"), (int, float))}
    out = []
    anchor = f"rca-trace-{row.get('id')}-{rendered.sha256[:8]}"
    for first, last, text in _blocks(rendered.text):
        inside = lambda s: first is not None and last is not None and first <= s <= last  # noqa: E731
        extra = ""
        if step is not None and inside(step):
            style, tag, extra = "background:#fff1a8;border-left:4px solid #e0a800;", "  ◀ root cause", ' class="rca-root"'
        elif any(inside(s) for s in quoted):
            style, tag = "background:#e8f1fb;border-left:4px solid #7fa7d9;", "  ◀ evidence"
        else:
            style, tag = "border-left:4px solid transparent;", ""
        out.append(f'<div{extra} style="{style}padding:2px 6px;">{html.escape(redact(text))}<b>{tag}</b></div>')
    facts = {"Run": row.get("run_id"), "Suite · generator": f"{row.get('suite')} · {row.get('generator')}",
             "Attempt": _step(row.get("attempt_number")).strip("[]"), "Root cause": row.get("category"),
             "Confidence": row.get("confidence"), "Explanation": row.get("root_cause_explanation"),
             "Expected": row.get("expected_behavior"), "Actual": row.get("actual_behavior"),
             "Responsible agent": row.get("root_cause_agent"), "Fix": row.get("fix"),
             "Harness error": row.get("harness_explanation"),
             "Trace": f"{rendered.steps_total} steps, ~{rendered.tokens:,} tokens as sent to the model; "
                      f"root-cause step {_step(step)}"}
    facts = {k: v for k, v in facts.items() if v is not None and v == v}  # absent from older answers
    facts_html = table(pd.DataFrame({"": list(facts), "value": list(facts.values())}),
                       title=f"{row.get('benchmark_name')} (failure {row.get('id')})").data
    # The box scrolls on its own; start it at the blamed step so a static export shows it too.
    scroll = (f"<script>(function(){{var box=document.getElementById('{anchor}');var hit=box&&box.querySelector('.rca-root');"
              "if(hit){box.scrollTop=Math.max(0,hit.offsetTop-80);}})();</script>")
    pre = (f'<div id="{anchor}" style="font-family:monospace;font-size:12px;white-space:pre-wrap;max-height:600px;'
           f'overflow:auto;border:1px solid #ddd;margin-top:8px;position:relative;">{"".join(out)}</div>')
    return HTML(facts_html + pre + scroll)


# --- context for the findings -------------------------------------------------------------

def patterns_of(df: pd.DataFrame, backend: str = "auto") -> pd.DataFrame:
    """The patterns among the report's failures (stored ones are reused; offline without a key)."""
    from rca.errors import AnalysisError
    from rca.patterns import find_patterns

    if analyzed(df).empty:
        return pd.DataFrame()
    try:
        return find_patterns(df, db=df.attrs.get("rca_db"), backend=backend, progress=False)
    except AnalysisError as exc:  # the report still stands on the offline grouping, and says why
        _say(f"rca: pattern synthesis with Gemini failed ({exc}); the patterns below are the offline grouping")
        return find_patterns(df, db=df.attrs.get("rca_db"), backend="heuristic", progress=False)


def cases_of(df: pd.DataFrame) -> pd.DataFrame:
    """Every recorded case (passed or failed) of the report's runs, for pass rates."""
    from rca.store import load_cases

    runs = sorted(df["run_id"].dropna().astype(str).unique())
    return load_cases(df.attrs["rca_db"], run_ids=runs) if runs else load_cases(df.attrs["rca_db"]).iloc[0:0]


def unanswered_of(df: pd.DataFrame) -> pd.Series:
    from rca.store import unanswered_errors

    return unanswered_errors(df.attrs["rca_db"])


def trust(df: pd.DataFrame) -> None:
    """How far to trust the answers: agreement with labels where there are labels, then confidence
    and verified evidence where they carry information."""
    from IPython.display import display

    from rca import findings

    labelled(df)
    note = findings.offline_confidence_note(df)
    if note is not None:
        display(note)
        return
    done = analyzed(df)
    if findings.informative(done["confidence"]):
        display(charts.confidence_by_category(df))
    if findings.informative(done["evidence_verified"] / done["evidence_total"].where(done["evidence_total"] > 0)):
        display(charts.evidence_verified(df))


def labelled(df: pd.DataFrame) -> None:
    """Agreement of the answers with the labels of these failures (rca.agreement), if any exist:
    the figures, the confusion matrix and the worst disagreements."""
    from importlib import import_module

    from IPython.display import HTML, display

    trust_figures = import_module("rca.agreement")  # the module: rca.agreement is also a function
    runs = sorted(df["run_id"].dropna().astype(str).unique())
    result = trust_figures.agreement(df.attrs["rca_db"], run_ids=runs or None)
    pairs = result.pairs[result.pairs["failure_id"].isin(df["id"])] if len(result.pairs) else result.pairs
    if pairs.empty:
        return
    display(HTML(f"<h4>Agreement with {pairs['labeller'].nunique()} labeller(s) on {pairs['failure_id'].nunique()} "
                 "labelled failures</h4>"))
    display(table(trust_figures.figures(pairs)))
    display(trust_figures.confusion_figure(trust_figures.confusion_frame(pairs)))
    display(table(trust_figures.worst_disagreements(pairs, n=5), title="Worst disagreements"))


def run_over_run(df: pd.DataFrame, patterns: pd.DataFrame) -> None:
    """The last two runs compared (pass rates, cases, patterns), then failed cases per run."""
    from IPython.display import HTML, display

    from rca.compare import compare_runs

    runs = charts.run_order(df)
    if len(runs) < 2:
        display(HTML("<p><i>one run in this report: nothing to compare</i></p>"))
        return
    try:
        result = compare_runs(df.attrs["rca_db"], runs[-2], runs[-1], patterns=patterns if len(patterns) else None)
    except ParameterError as exc:  # runs ingested before cases were recorded
        display(HTML(f"<p><i>{html.escape(str(exc))}</i></p>"))
    else:
        display(HTML(f"<pre>{html.escape(redact(str(result)))}</pre>"))
    display(charts.runs_over_time(df))
