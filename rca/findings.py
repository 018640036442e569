"""The report's findings as HTML: the overview, what to fix first, the patterns, each named
failure's details, run over run. Runs in the notebook kernel beside rca.report and rca.charts.

Everything counts failed cases (run x case x generator), with attempts as a detail, and keeps
causes outside the agent (Infrastructure and the harness) apart from the agent's own. Every
failure a table names links to a collapsed block with its details, in the page itself.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
from IPython.display import HTML, Markdown

from rca.charts import analyzed, failed_cases
from rca.formats import missing
from rca.pattern_types import outside_agent
from rca.redact import redact
from rca.results import reason_of

DETAILS_PER_PATTERN = 3


def _e(value: object) -> str:
    return html.escape(redact(str(value)))


def anchor(failure_id: object) -> str:
    return f"failure-{int(failure_id)}"  # type: ignore[call-overload]


def link(failure_id: object, text: str | None = None) -> str:
    return f'<a href="#{anchor(failure_id)}">{_e(text if text is not None else f"#{failure_id}")}</a>'


def shown_path(path: object) -> str:
    """A path as the report shows it: relative to the working folder, never the machine's layout."""
    p = Path(str(path))
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return p.name


def one_taxonomy(df: pd.DataFrame, wanted: str | None = None) -> tuple[pd.DataFrame, str | None]:
    """The rows answered under one taxonomy (the one asked for, else the most recent), plus the
    unanswered rows; and a note when answers under other taxonomies were left out."""
    done = analyzed(df)
    used = done["taxonomy"].dropna().astype(str)
    if used.nunique() <= 1:
        return df, None
    key = next((t for t in used.unique() if wanted and (t == wanted or t.split("@")[0] == wanted)), None)
    if key is None:
        key = str(done.sort_values("analysis_id")["taxonomy"].dropna().iloc[-1])
    others = sorted(set(used) - {key})
    keep = df["category"].isna() | (df["taxonomy"].astype(str) == key)
    note = (f"Answers under taxonomy {key} are shown; {int((~keep).sum())} answers under {', '.join(others)} are left "
            "out (set the taxonomy parameter to see them).")
    return df[keep], note


def overview(df: pd.DataFrame, cases: pd.DataFrame, unanswered: pd.Series, note: str | None = None) -> HTML:
    """Pass rate, failed cases, what share has a root cause, and why the rest has none."""
    done = analyzed(df)
    runs = sorted(df["run_id"].dropna().astype(str).unique())
    mine = cases[cases["run_id"].isin(runs)] if len(cases) else cases
    items = []
    if len(mine):
        items.append(f"<b>Pass rate</b> {mine['passed'].mean():.0%} of {len(mine):,} cases in {len(runs)} run"
                     f"{'s' * (len(runs) != 1)}")
    n_cases = df.groupby(_case_columns(df), dropna=False).ngroups if len(df) else 0
    items.append(f"<b>Failed cases</b> {n_cases:,} ({len(df):,} failed attempts)")
    share = f" ({len(done) / len(df):.0%})" if len(df) else ""
    items.append(f"<b>With a root cause</b> {len(done):,} of {len(df):,} failed attempts{share}")
    lacking = unanswered[unanswered.index.isin(df["id"])] if len(unanswered) else unanswered
    missing_rows = len(df) - len(done)
    if missing_rows:
        reasons = lacking.map(reason_of).value_counts() if len(lacking) else pd.Series(dtype=int)
        listed = "; ".join(f"{n} {html.escape(r)}" for r, n in reasons.items())
        not_tried = missing_rows - int(reasons.sum())
        listed += ("; " if listed else "") + (f"{not_tried} not analyzed yet" if not_tried > 0 else "")
        items.append(f'<b style="color:#b00">This report is incomplete:</b> {missing_rows:,} failed attempts have no '
                     f"root cause ({listed}).")
    models = ", ".join(f"{m} ({len(p):,}, ${p['cost_usd'].fillna(0).sum():.4f})"
                       for m, p in done.groupby(done["model"].fillna("?").astype(str))) if len(done) else "none yet"
    items.append(f"<b>Analyzed by</b> {html.escape(models)}")
    if note:
        items.append(html.escape(note))
    return HTML("<ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>")


def _case_columns(df: pd.DataFrame) -> list[str]:
    return ["run_id", "case_id" if "case_id" in df and df["case_id"].notna().any() else "benchmark_name", "generator"]


def fix_first(patterns: pd.DataFrame, df: pd.DataFrame) -> HTML:
    """One ranked list: the agent's patterns by failed cases explained, each with its fix and its
    share of all failed cases; causes outside the agent listed apart."""
    if patterns is None or patterns.empty:
        return HTML("<p><i>no patterns yet: analyze the failures first</i></p>")
    agent = patterns[patterns["agent_caused"] & ~patterns["other"]]
    outside = patterns[~patterns["agent_caused"] & ~patterns["other"]]
    parts = ["<ol>"]
    for p in agent.itertuples():
        examples = ", ".join(link(i) for i in list(p.failure_ids)[:DETAILS_PER_PATTERN])
        parts.append(f"<li><b>{_e(p.name)}</b>: {p.failed_cases} failed cases ({p.share:.0%} of all), "
                     f"{_e(p.category)}.<br><i>Fix:</i> {_e(p.fix)}<br><small>e.g. {examples}</small></li>")
    parts.append("</ol>")
    if agent.empty:
        parts = ["<p>No recurring cause inside the agent was found.</p>"]
    if len(outside):
        rows = "".join(f"<li>{_e(p.name)}: {p.failed_cases} failed cases ({p.share:.0%}), {_e(p.category)}</li>"
                       for p in outside.itertuples())
        parts.append(f"<p><b>Outside the agent</b> (infrastructure, the harness): not the agent's to fix.</p><ul>{rows}</ul>")
    return HTML("".join(parts))


def patterns_table(patterns: pd.DataFrame) -> HTML:
    """Every pattern with its description, fix, counts and links to its failures' details."""
    if patterns is None or patterns.empty:
        return HTML("<p><i>no patterns yet</i></p>")
    rows = []
    for p in patterns.itertuples():
        ids = list(p.failure_ids)
        rows.append(
            f"<tr><td><b>{_e(p.name)}</b><br><small>{_e(p.description)}</small></td><td>{_e(p.category)}</td>"
            f"<td>{p.failed_cases}</td><td>{p.attempts}</td><td>{_e(p.fix)}</td>"
            f"<td>{', '.join(link(i) for i in ids[:DETAILS_PER_PATTERN])}{' …' if len(ids) > DETAILS_PER_PATTERN else ''}"
            "</td></tr>")
    from rca.report import TABLE_CSS

    head = "<tr><th>pattern</th><th>category</th><th>failed cases</th><th>attempts</th><th>fix</th><th>examples</th></tr>"
    return HTML(f'{TABLE_CSS}<div class="rca-table"><table>{head}{"".join(rows)}</table></div>')


def named_failures(patterns: pd.DataFrame | None, df: pd.DataFrame, per_category: int = 3) -> list[int]:
    """The failures the report links to: pattern examples and each category's most confident ones."""
    ids: list[int] = []
    if patterns is not None:
        for p in patterns.itertuples():
            ids.extend(int(i) for i in list(p.failure_ids)[:DETAILS_PER_PATTERN])
    done = analyzed(df)
    for _, rows in done.sort_values(["confidence", "id"], ascending=[False, True]).groupby("category", sort=False):
        ids.extend(int(i) for i in rows["id"].head(per_category))
    return list(dict.fromkeys(ids))


def failure_details(df: pd.DataFrame, ids: Iterable[int], runs_dir: str | Path | None = None) -> HTML:
    """A collapsed block per failure, with an anchor the tables link to: case, task, answer, the
    blamed step among its neighbours, evidence, fix."""
    from rca.show import failure_text
    from rca.traces import TraceNotFound, load_transcript

    by_id = df.set_index("id")
    blocks = []
    for failure_id in ids:
        if failure_id not in by_id.index:
            continue
        row = {"id": failure_id, **by_id.loc[failure_id].to_dict()}
        try:
            transcript = load_transcript(row, runs_dir=runs_dir)
        except (TraceNotFound, OSError):
            transcript = None
        summary = f"#{failure_id} {row.get('benchmark_name')} — {row.get('category') or 'no root cause'}"
        body = html.escape(failure_text(row, transcript))
        blocks.append(f'<details><summary>{_e(summary)}</summary><div id="{anchor(failure_id)}">'
                      f'<pre style="white-space:pre-wrap;font-size:12px">{body}</pre></div></details>')
    return HTML("".join(blocks) or "<p><i>no failures to show</i></p>")


def categories_text(df: pd.DataFrame) -> Markdown:
    """What the category chart shows, in words that follow the data."""
    cases = failed_cases(df)
    if cases.empty:
        return Markdown("No failure has a root cause yet.")
    counts = cases["category"].value_counts()
    top, n = str(counts.index[0]), int(counts.iloc[0])
    agent = counts[[not outside_agent(c) for c in counts.index]]
    text = f"The most frequent root cause is **{top}**: {n} of {len(cases)} failed cases ({n / len(cases):.0%})."
    if outside_agent(top):
        if len(agent):
            text += (f" It is outside the agent (no change to the agent fixes it); among the agent's own causes "
                     f"**{agent.index[0]}** leads with {int(agent.iloc[0])} failed cases.")
        else:
            text += " It is outside the agent: no change to the agent fixes it."
    else:
        text += " Fixing it in the agent pays off most."
    return Markdown(text)


def offline_confidence_note(df: pd.DataFrame) -> Markdown | None:
    """Said once where the trust section would otherwise chart numbers that carry no information."""
    done = analyzed(df)
    if len(done) and (done["model"].astype(str) == "heuristic").all():
        return Markdown("These answers come from the offline rule-based analyzer. Its confidence is fixed per rule "
                        "(0.3 to 0.6): it says which rule fired and how specific its sign was, not how likely the "
                        "answer is to be right; its evidence quotes are copied from the trace, so they are always found. "
                        "Set an API key to analyze with Gemini, or label some failures to measure agreement.")
    return None


def informative(values: Any) -> bool:
    """Whether a column varies enough to chart: a constant says nothing."""
    series = pd.Series(values).dropna()
    return series.nunique() > 1 and not all(missing(v) for v in series)
