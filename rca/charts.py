"""Plotly charts of root causes, one function per report section: DataFrame in, Figure out.

Pure functions over rows of `load_failures` / `analyze_failures`. Categories are read from
the data, so any taxonomy works; each category keeps one color in every chart. A frame
with no analyzed rows gives a figure that says so instead of raising, so a report on a
fresh cache still renders. Hover text names the benchmarks behind each mark.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from rca.schema import DEFAULT_TAXONOMY

__all__ = [
    "EMPTY_MESSAGE", "baseline_disagreements", "baseline_heatmap", "by_generator", "by_suite", "categories_bar",
    "category_colors", "category_order", "confidence_by_category", "evidence_verified", "failed_cases", "figure_html",
    "patterns_by_generator", "runs_over_time",
    "sunburst", "use_offline_renderer",
]

EMPTY_MESSAGE = "no analyzed failures yet"
NO_TAG = "(no tag)"
TEMPLATE = "plotly_white"
# Fixed colors for the built-in taxonomy; Infrastructure is grey because it is not the agent's fault.
_FIXED = dict(zip(DEFAULT_TAXONOMY.names, ("#4C78A8", "#E45756", "#F58518", "#B279A2", "#54A24B", "#9D9D9D")))
_PALETTE = ("#72B7B2", "#EECA3B", "#FF9DA6", "#9D755D", "#2E91E5", "#E15F99", "#1CA71C", "#FB0D0D",
            "#DA16FF", "#222A2A", "#B68100", "#750D86", "#EB663B", "#511CFB", "#00A08B", "#FB00D1")



def use_offline_renderer() -> None:
    """Store each figure once, as plotly JSON (JupyterLab, Notebook 7 and VS Code draw it), with no
    copy of plotly.js in the notebook; rca.notebook.export_html draws them in the HTML, offline."""
    pio.renderers.default = "plotly_mimetype"


def figure_html(fig_json: dict) -> str:
    """A figure stored as plotly JSON as a div and a script; plotly.js must be on the page once."""
    return pio.to_html(fig_json, include_plotlyjs=False, include_mathjax=False, full_html=False, validate=False)


# --- shared helpers ------------------------------------------------------------------------

def analyzed(df: pd.DataFrame) -> pd.DataFrame:
    """The rows that carry a category."""
    if "category" not in df:
        return df.iloc[0:0].assign(category=pd.Series(dtype=object))
    return df[df["category"].notna()]


def failed_cases(df: pd.DataFrame) -> pd.DataFrame:
    """One row per failed case and root cause (run x case x generator): a case that failed three
    attempts for one cause counts once for it. What the charts count."""
    rows = analyzed(df)
    case = "case_id" if "case_id" in rows and rows["case_id"].notna().any() else "benchmark_name"
    key = [c for c in ("run_id", case, "generator", "category") if c in rows]
    return rows.drop_duplicates(subset=key)


def category_order(df: pd.DataFrame) -> list[str]:
    """Categories by count, most frequent first (ties by name): one order for every chart."""
    counts = analyzed(df)["category"].astype(str).value_counts()
    return sorted(counts.index, key=lambda c: (-counts[c], c))


def category_colors(categories: Iterable[str]) -> dict[str, str]:
    """One color per category: fixed for the built-in taxonomy, else by sorted name, so the same
    set of categories always gets the same colors."""
    colors: dict[str, str] = {}
    free = [c for c in _PALETTE if c not in _FIXED.values()]
    for i, name in enumerate(sorted(c for c in set(categories) if c not in _FIXED)):
        colors[name] = free[i % len(free)]
    return {name: _FIXED.get(name) or colors[name] for name in categories}


def _names(values: Iterable[object], k: int = 4) -> str:
    """A short list of distinct benchmark names for hover text."""
    unique = list(dict.fromkeys(str(v) for v in values if v is not None and v == v))
    more = f" (+{len(unique) - k} more)" if len(unique) > k else ""
    return "<br>  ".join(unique[:k]) + more


def _by(frame: pd.DataFrame, column: str) -> dict[str, tuple[int, str]]:
    """Row count and benchmark names for hover, per value of `column`."""
    return {str(key): (len(group), _names(group["benchmark_name"])) for key, group in frame.groupby(column, sort=False)}


def _layout(fig: go.Figure, title: str, x: str, y: str, *, height: int = 450, legend: bool = True) -> go.Figure:
    fig.update_layout(title={"text": title, "x": 0.01}, template=TEMPLATE, height=height,
                      xaxis_title=x, yaxis_title=y, legend_title_text="Root cause" if legend else None,
                      showlegend=legend, margin={"l": 60, "r": 30, "t": 70, "b": 60})
    return fig


def empty_figure(title: str, message: str = EMPTY_MESSAGE) -> go.Figure:
    """A titled figure with one centered note instead of data."""
    fig = go.Figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font={"size": 16})
    fig.update_layout(title={"text": title, "x": 0.01}, template=TEMPLATE, height=300,
                      xaxis={"visible": False}, yaxis={"visible": False})
    return fig


# --- 2. root causes overall --------------------------------------------------------------

def categories_bar(df: pd.DataFrame) -> go.Figure:
    """Failed cases and share of each root cause: the headline of the report."""
    rows = failed_cases(df)
    title = "Root causes of failed cases"
    if rows.empty:
        return empty_figure(title)
    order = category_order(rows)
    colors = category_colors(order)
    groups = _by(rows, "category")
    counts = [groups[c][0] for c in order]
    shares = [n / len(rows) for n in counts]
    fig = go.Figure(go.Bar(
        x=order, y=counts, marker_color=[colors[c] for c in order],
        text=[f"{n} ({s:.0%})" for n, s in zip(counts, shares)], textposition="outside",
        customdata=[[s, groups[c][1]] for c, s in zip(order, shares)],
        hovertemplate="<b>%{x}</b><br>%{y} failed cases (%{customdata[0]:.0%})"
                      "<br>benchmarks:<br>  %{customdata[1]}<extra></extra>",
    ))
    fig.update_yaxes(range=[0, max(counts) * 1.18])
    return _layout(fig, f"{title}: {len(rows)} analyzed", "Root cause category", "Failed cases", legend=False)


# --- 3. by suite and by generator --------------------------------------------------------

def stacked_by(df: pd.DataFrame, by: str, label: str) -> go.Figure:
    """Horizontal stacked bars of categories per value of `by` (long names stay readable), in failed cases."""
    rows = failed_cases(df)
    title = f"Root causes by {label}"
    if rows.empty or by not in rows:
        return empty_figure(title)
    rows = rows.assign(**{by: rows[by].fillna("(none)").astype(str)})
    totals = rows[by].value_counts()
    groups = sorted(totals.index, key=lambda g: (totals[g], g))  # largest at the top
    fig = _stack(rows, by, groups, label, horizontal=True)
    fig.update_layout(yaxis={"automargin": True})
    return _layout(fig, title, "Failed cases", label.capitalize(), height=max(320, 90 + 55 * len(groups)))


def _stack(rows: pd.DataFrame, by: str, groups: list[str], label: str, *, horizontal: bool) -> go.Figure:
    """Failed cases per value of `by`, in `groups` order, stacked by category; hover shows each
    cell's share of its group and the benchmarks behind it."""
    totals = rows[by].value_counts()
    order = category_order(rows)
    colors = category_colors(order)
    along, count = ("y", "x") if horizontal else ("x", "y")
    named = "" if horizontal else f"{label} "  # a run id alone does not say what it is
    fig = go.Figure()
    for cat in order:
        cells = _by(rows[rows["category"] == cat], by)
        counts = [cells.get(g, (0, ""))[0] for g in groups]
        fig.add_bar(
            **{along: groups, count: counts}, **({"orientation": "h"} if horizontal else {}), name=cat, marker_color=colors[cat],
            customdata=[[n / totals[g], cells.get(g, (0, ""))[1]] for g, n in zip(groups, counts)],
            hovertemplate=f"{named}<b>%{{{along}}}</b> · {cat}<br>%{{{count}}} failed cases "
                          f"(%{{customdata[0]:.0%}} of the {label})<br>benchmarks:<br>  %{{customdata[1]}}<extra></extra>",
        )
    fig.update_layout(barmode="stack")
    return fig


def by_suite(df: pd.DataFrame) -> go.Figure:
    return stacked_by(df, "suite", "suite")


def by_generator(df: pd.DataFrame) -> go.Figure:
    return stacked_by(df, "generator", "generator")


def sunburst(df: pd.DataFrame) -> go.Figure:
    """Suite -> generator -> root cause, sized by failed cases: where a cause concentrates."""
    rows = failed_cases(df)
    title = "Suite → generator → root cause"
    if rows.empty:
        return empty_figure(title)
    rows = rows.assign(suite=rows["suite"].fillna("(none)").astype(str),
                       generator=rows["generator"].fillna("(none)").astype(str))
    colors = category_colors(category_order(rows))
    ids: list[str] = []
    labels: list[str] = []
    parents: list[str] = []
    values: list[int] = []
    marker: list[str] = []
    hover: list[str] = []
    for level, shade in ((["suite"], "#C9D3E0"), (["suite", "generator"], "#E3E8EF"), (["suite", "generator", "category"], None)):
        for key, part in rows.groupby(level, sort=True):
            key = key if isinstance(key, tuple) else (key,)
            ids.append("/".join(map(str, key)))
            labels.append(str(key[-1]))
            parents.append("/".join(map(str, key[:-1])))
            values.append(len(part))
            marker.append(shade or colors[str(key[-1])])
            hover.append(_names(part["benchmark_name"]))
    fig = go.Figure(go.Sunburst(
        ids=ids, labels=labels, parents=parents, values=values, branchvalues="total",
        marker={"colors": marker}, customdata=hover, textinfo="label+percent parent", insidetextorientation="auto",
        hovertemplate="<b>%{label}</b><br>%{value} failed cases (%{percentParent:.0%} of %{parent})"
                      "<br>benchmarks:<br>  %{customdata}<extra></extra>",
    ))
    fig.update_layout(title={"text": title, "x": 0.01}, template=TEMPLATE, height=760, margin={"t": 70, "l": 10, "r": 10, "b": 10},
                      uniformtext={"minsize": 9, "mode": "hide"})  # slices too small to label stay hoverable
    return fig


# --- 4. beyond the regex -----------------------------------------------------------------

def _tags(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (failure, regex tag); a failure with no tag keeps one row tagged NO_TAG."""
    def as_list(value: object) -> list[str]:
        if isinstance(value, str):
            return [value] if value else [NO_TAG]
        if hasattr(value, "__iter__"):
            return [str(v) for v in value] or [NO_TAG]  # type: ignore[union-attr]
        return [NO_TAG]
    column = df["error_type"] if "error_type" in df else pd.Series([None] * len(df), index=df.index)
    return df.assign(tag=column.map(as_list)).explode("tag")


def baseline_heatmap(df: pd.DataFrame) -> go.Figure:
    """How the regex baseline's tags spread over the model's categories: off-diagonal mass is
    what the regex cannot see."""
    rows = analyzed(df)
    title = "Regex baseline tag vs. root cause"
    if rows.empty:
        return empty_figure(title)
    tagged = _tags(rows)
    table = pd.crosstab(tagged["tag"], tagged["category"])
    cols = [c for c in category_order(rows) if c in table.columns]
    tag_order = list(table.sum(axis=1).sort_values(ascending=True).index)  # largest at the top
    table = table.loc[tag_order, cols]
    names = tagged.groupby(["tag", "category"])["benchmark_name"].agg(_names)
    hover = [[names.get((t, c), "") for c in cols] for t in tag_order]
    fig = go.Figure(go.Heatmap(
        z=table.values, x=cols, y=tag_order, colorscale="Blues", texttemplate="%{text}",
        text=[[str(v) if v else "" for v in row] for row in table.values],
        customdata=hover, colorbar={"title": "Failed<br>attempts"},
        hovertemplate="regex tag: <b>%{y}</b><br>root cause: <b>%{x}</b><br>%{z} failed attempts"
                      "<br>benchmarks:<br>  %{customdata}<extra></extra>",
    ))
    fig.update_yaxes(automargin=True)
    return _layout(fig, title, "Root cause category (model)", "Regex baseline tag", height=max(380, 120 + 45 * len(tag_order)), legend=False)


def baseline_disagreements(df: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The failures whose category is rarest for their regex tag, most confident first.

    Disagreement = 1 - max over the row's tags of P(category | tag), estimated from the frame
    itself, so it needs no mapping between tags and a taxonomy.
    """
    rows = analyzed(df)
    columns = ["id", "run_id", "benchmark_name", "regex_tags", "category", "confidence", "disagreement", "root_cause_explanation"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    tagged = _tags(rows)
    share = pd.crosstab(tagged["tag"], tagged["category"], normalize="index")
    tagged["agreement"] = [float(share.at[t, c]) for t, c in zip(tagged["tag"], tagged["category"])]
    best = tagged.groupby(level=0).agg(agreement=("agreement", "max"), regex_tags=("tag", lambda s: ", ".join(s)))
    out = rows.join(best)
    out["disagreement"] = (1 - out["agreement"]).round(2)
    confidence = out["confidence"] if "confidence" in out else pd.Series(0.0, index=out.index)
    out = out.assign(confidence=confidence).sort_values(["disagreement", "confidence"], ascending=False)
    out = out.reindex(columns=columns).head(n)
    return out.reset_index(drop=True)


# --- 5. trust ----------------------------------------------------------------------------

def confidence_by_category(df: pd.DataFrame) -> go.Figure:
    """The model's stated confidence per category; every failure is a point you can hover."""
    rows = analyzed(df)
    title = "Confidence per root cause"
    if rows.empty or "confidence" not in rows or rows["confidence"].isna().all():
        return empty_figure(title)
    order = category_order(rows)
    colors = category_colors(order)
    fig = go.Figure()
    for cat in order:
        part = rows[(rows["category"] == cat) & rows["confidence"].notna()]
        fig.add_box(
            x=[cat] * len(part), y=part["confidence"], name=cat, marker_color=colors[cat], boxpoints="all",
            jitter=0.5, pointpos=0, text=part["benchmark_name"].astype(str), customdata=part["run_id"].astype(str),
            hovertemplate="<b>%{text}</b><br>run %{customdata}<br>confidence %{y:.2f}<extra>" + cat + "</extra>",
        )
    fig.update_yaxes(range=[0, 1.05])
    return _layout(fig, title, "Root cause category", "Confidence (0–1)", legend=False)


def evidence_verified(df: pd.DataFrame) -> go.Figure:
    """Share of evidence quotes found verbatim in the trace: low bars mean quotes to check by hand."""
    rows = analyzed(df)
    title = "Evidence quotes found verbatim in the trace"
    if rows.empty or "evidence_total" not in rows or rows["evidence_total"].fillna(0).sum() == 0:
        return empty_figure(title, EMPTY_MESSAGE if rows.empty else "no evidence quotes recorded")
    order = category_order(rows)
    colors = category_colors(order)
    total = rows.groupby("category")["evidence_total"].sum()
    verified = rows.groupby("category")["evidence_verified"].sum()
    cats = [c for c in order if total.get(c, 0) > 0]
    shares = [verified[c] / total[c] for c in cats]
    unverified = rows[rows["evidence_verified"].fillna(0) < rows["evidence_total"].fillna(0)]
    doubt = unverified.groupby("category")["benchmark_name"].agg(_names)
    groups = _by(rows, "category")
    fig = go.Figure(go.Bar(
        x=cats, y=shares, marker_color=[colors[c] for c in cats],
        text=[f"{int(verified[c])}/{int(total[c])} ({s:.0%})" for c, s in zip(cats, shares)], textposition="outside",
        customdata=[[doubt.get(c, "none"), groups[c][1]] for c in cats],
        hovertemplate="<b>%{x}</b><br>%{text} quotes verified<br>with unverified quotes:<br>  %{customdata[0]}"
                      "<br>benchmarks:<br>  %{customdata[1]}<extra></extra>",
    ))
    fig.update_yaxes(range=[0, 1.15], tickformat=".0%")
    return _layout(fig, title, "Root cause category", "Share of quotes verified", legend=False)


# --- 8. run over run ---------------------------------------------------------------------

def run_order(df: pd.DataFrame) -> list[str]:
    """Run ids by their first timestamp (then by id): the order the runs happened in."""
    if df.empty:
        return []
    first = df.groupby("run_id")["timestamp"].min() if "timestamp" in df else pd.Series(dtype=object)
    return sorted(df["run_id"].astype(str).unique(), key=lambda r: (str(first.get(r, "")), r))


def runs_over_time(df: pd.DataFrame) -> go.Figure:
    """Failed cases per run, stacked by category, in run order: a growing band is a regression."""
    rows = failed_cases(df)
    title = "Root causes per run, in run order"
    if rows.empty:
        return empty_figure(title)
    rows = rows.assign(run_id=rows["run_id"].astype(str))
    runs = run_order(rows)
    fig = _stack(rows, "run_id", runs, "run", horizontal=False)
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=runs)
    return _layout(fig, title, "Run (oldest first)", "Failed cases")


# --- patterns ------------------------------------------------------------------------------

def patterns_by_generator(patterns: pd.DataFrame, df: pd.DataFrame, top: int = 12) -> go.Figure:
    """Failed cases per pattern (the `top` largest, agent's and outside alike), split by generator."""
    title = "Failed cases per pattern, by generator"
    if patterns is None or patterns.empty:
        return empty_figure(title, "no patterns yet")
    shown = patterns[~patterns["other"]].head(top)
    by_id = df.set_index("id")
    rows = []
    for p in shown.itertuples():
        members = failed_cases(by_id.loc[[i for i in p.failure_ids if i in by_id.index]].reset_index())
        for generator, n in members["generator"].fillna("(none)").astype(str).value_counts().items():
            rows.append({"pattern": p.name, "generator": generator, "cases": int(n)})
    if not rows:
        return empty_figure(title, "no patterns yet")
    frame = pd.DataFrame(rows)
    order = list(dict.fromkeys(shown["name"]))[::-1]  # the largest at the top
    fig = go.Figure()
    for i, (generator, part) in enumerate(frame.groupby("generator", sort=True)):
        cells = dict(zip(part["pattern"], part["cases"]))
        fig.add_bar(y=order, x=[cells.get(name, 0) for name in order], orientation="h", name=generator,
                    marker_color=_PALETTE[i % len(_PALETTE)],
                    hovertemplate=f"<b>%{{y}}</b><br>{generator}: %{{x}} failed cases<extra></extra>")
    fig.update_layout(barmode="stack", yaxis={"automargin": True})
    return _layout(fig, title, "Failed cases", "Pattern", height=max(320, 90 + 40 * len(order)))
