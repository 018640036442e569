"""How far to trust the answers: the model's category, step and agent against people's labels.

For each taxonomy, model and labeller: category accuracy and Cohen's kappa, the confusion matrix,
per-category precision and recall, step accuracy (exact, within 1, within 3, the labelled step
among the candidate steps), agent accuracy, each with a bootstrap 95% interval (fixed seed), and
accuracy by confidence band (is a high confidence worth more?). The same figures between
labellers show how far people agree, the ceiling a judge can be held to. The metrics are
scikit-learn's; the functions below are pure over a "pairs" frame (true_* from the reference,
pred_* from the judge), so the report notebook draws them as they are.
"""

from __future__ import annotations

import itertools
import sys
import types
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, cohen_kappa_score, confusion_matrix, precision_recall_fscore_support

from rca.graded import labelled_answers, labelled_failures
from rca.schema import TAXONOMIES

if TYPE_CHECKING:
    import plotly.graph_objects as go

N_BOOT = 1000
BANDS = (0.0, 0.5, 0.7, 0.9, 1.0)  # confidence bands: [0, .5], (.5, .7], (.7, .9], (.9, 1]
GROUP = ["taxonomy", "model", "labeller"]
FIGURE_COLUMNS = ["figure", "value", "low", "high", "n"]


@dataclass(frozen=True)
class Agreement:
    """`judge`: the figures per taxonomy, model and labeller; `labellers`: labeller against labeller;
    `pairs`: one row per labelled answer (the input of confusion_frame, per_category, by_confidence)."""

    judge: pd.DataFrame
    labellers: pd.DataFrame
    pairs: pd.DataFrame


def agreement(db: str | Path, *, run_ids: Sequence[str] | None = None, suites: Sequence[str] | None = None,
              generators: Sequence[str] | None = None, limit: int | None = None, seed: int = 0,
              n_boot: int = N_BOOT) -> Agreement:
    """Agreement of the analyzed failures that have labels (filtered as load_failures filters)."""
    pairs = labelled_answers(db, run_ids=run_ids, suites=suites, generators=generators, limit=limit)
    judge = [figures(group, seed=seed, n_boot=n_boot).assign(**dict(zip(GROUP, key)))
             for key, group in pairs.groupby(GROUP, sort=True)]
    labels = labelled_failures(db, run_ids=run_ids, suites=suites, generators=generators, limit=limit)
    return Agreement(judge=_concat(judge, GROUP), labellers=between_labellers(labels, seed=seed, n_boot=n_boot),
                     pairs=pairs)


def figures(pairs: pd.DataFrame, *, seed: int = 0, n_boot: int = N_BOOT, judged: bool = True) -> pd.DataFrame:
    """Each figure with its bootstrap 95% interval, over the pairs whose reference gives that field.

    `judged`: the pred side is a model's answer, so a field it left empty counts as a miss; between
    labellers (`judged=False`) a field only one of them gave is not compared.
    """
    rng = np.random.default_rng(seed)
    truth, pred = _compared(pairs, "category", judged)
    rows = [_rate("category accuracy", truth == pred, accuracy_score(truth, pred) if len(truth) else np.nan, rng, n_boot),
            _kappa_figure(truth, pred, rng, n_boot)]
    truth, pred = _compared(pairs, "step", judged)
    for within in (0, 1, 3):
        rows.append(_rate("step exact" if within == 0 else f"step within {within}", np.abs(truth - pred) <= within,
                          None, rng, n_boot))  # a missing step (NaN) is never within
    if "candidates" in pairs and judged:
        among = pairs[pairs["true_step"].notna()]
        hits = [int(t) in (c if isinstance(c, list) else []) for t, c in zip(among["true_step"], among["candidates"])]
        rows.append(_rate("step among candidates", np.array(hits, dtype=bool), None, rng, n_boot))
    truth, pred = _compared(pairs, "agent", judged)
    rows.append(_rate("agent accuracy", truth == pred, accuracy_score(truth, pred) if len(truth) else np.nan, rng, n_boot))
    return pd.DataFrame(rows, columns=FIGURE_COLUMNS)


def between_labellers(labels: pd.DataFrame, *, seed: int = 0, n_boot: int = N_BOOT) -> pd.DataFrame:
    """The figures for each pair of labellers on the failures both labelled (the first as reference)."""
    out = []
    for a, b in itertools.combinations(sorted(labels["labeller"].unique()), 2):
        both = labels[labels["labeller"] == a].merge(labels[labels["labeller"] == b], on="failure_id",
                                                     suffixes=("_a", "_b"))
        if both.empty:
            continue
        pairs = pd.DataFrame({f"{side}_{field}": both[f"{field}_{suffix}"]
                              for side, suffix in (("true", "a"), ("pred", "b")) for field in ("category", "step", "agent")})
        out.append(figures(pairs, seed=seed, n_boot=n_boot, judged=False).assign(labeller_a=a, labeller_b=b))
    return _concat(out, ["labeller_a", "labeller_b"])


def categories_of(pairs: pd.DataFrame) -> list[str]:
    """The taxonomy's categories in its order when the pairs' taxonomy is a built-in one, then any other seen."""
    keys = set(pairs["taxonomy"]) if "taxonomy" in pairs else set()
    known = next((t.names for t in TAXONOMIES.values() if {t.key} == keys), [])
    seen = pd.concat([pairs["true_category"], pairs["pred_category"]]).dropna().unique()
    return [*known, *sorted(set(map(str, seen)) - set(known))]


def confusion_frame(pairs: pd.DataFrame, categories: Sequence[str] | None = None) -> pd.DataFrame:
    """Counts of labelled category (rows) against the judge's (columns)."""
    rows = pairs.dropna(subset=["true_category", "pred_category"])
    names = list(categories or categories_of(pairs))
    matrix = confusion_matrix(rows["true_category"], rows["pred_category"], labels=names) if len(rows) else \
        np.zeros((len(names), len(names)), dtype=int)
    return pd.DataFrame(matrix, index=pd.Index(names, name="labelled"), columns=pd.Index(names, name="answered"))


def per_category(pairs: pd.DataFrame, categories: Sequence[str] | None = None) -> pd.DataFrame:
    """Precision (of the judge's answers of a category, how many the labels share) and recall (of the
    failures labelled with it, how many the judge found); NaN where nothing was answered or labelled."""
    rows = pairs.dropna(subset=["true_category", "pred_category"])
    names = list(categories or categories_of(pairs))
    if rows.empty:
        return pd.DataFrame({"category": names, "precision": np.nan, "recall": np.nan, "labelled": 0, "answered": 0})
    precision, recall, _, support = precision_recall_fscore_support(
        rows["true_category"], rows["pred_category"], labels=names, zero_division=np.nan)
    answered = rows["pred_category"].value_counts()
    return pd.DataFrame({"category": names, "precision": precision, "recall": recall, "labelled": support,
                         "answered": [int(answered.get(n, 0)) for n in names]})


def by_confidence(pairs: pd.DataFrame, bands: Sequence[float] = BANDS) -> pd.DataFrame:
    """Category and step accuracy per confidence band: worth something when they rise with it."""
    rows = pairs[pairs["confidence"].notna()]
    names = [f"{low:g}–{high:g}" for low, high in itertools.pairwise(bands)]
    band = pd.cut(rows["confidence"], list(bands), labels=names, include_lowest=True)
    out = []
    for name, group in rows.groupby(band, observed=False):
        category = group.dropna(subset=["true_category"])
        steps = group[group["true_step"].notna()]
        out.append({"confidence": name, "n": len(group),
                    "category accuracy": _share(category["true_category"] == category["pred_category"]),
                    "step exact": _share(steps["true_step"] == steps["pred_step"])})
    return pd.DataFrame(out, columns=["confidence", "n", "category accuracy", "step exact"])


def worst_disagreements(pairs: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The answers that contradict a label (category, or step by more than one), most confident first."""
    wrong_category = pairs["true_category"].notna() & (pairs["true_category"] != pairs["pred_category"])
    far = (pairs["true_step"] - pairs["pred_step"]).abs()
    wrong_step = pairs["true_step"].notna() & ~(far <= 1).fillna(False).astype(bool)
    columns = ["failure_id", "benchmark_name", "labeller", "true_category", "pred_category", "true_step", "pred_step",
               "true_agent", "pred_agent", "confidence", "note"]
    rows = pairs[wrong_category | wrong_step]
    return rows.sort_values(["confidence", "failure_id"], ascending=[False, True]).head(n)[
        [c for c in columns if c in rows]].reset_index(drop=True)


def confusion_figure(confusion: pd.DataFrame, title: str = "Labelled vs. answered root cause") -> go.Figure:
    """The confusion matrix as a heatmap: the diagonal is agreement, a bright cell off it a systematic mix-up."""
    import plotly.graph_objects as go

    from rca.charts import TEMPLATE, empty_figure

    if int(confusion.values.sum()) == 0:
        return empty_figure(title, "no labelled category to compare")
    fig = go.Figure(go.Heatmap(
        z=confusion.values, x=list(confusion.columns), y=list(confusion.index), colorscale="Blues",
        text=[[str(v) if v else "" for v in row] for row in confusion.values], texttemplate="%{text}",
        colorbar={"title": "Failures"},
        hovertemplate="labelled: <b>%{y}</b><br>answered: <b>%{x}</b><br>%{z} failures<extra></extra>"))
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig.update_layout(title={"text": title, "x": 0.01}, template=TEMPLATE, xaxis_title="Answered (model)",
                      yaxis_title="Labelled", height=max(380, 140 + 45 * len(confusion)),
                      margin={"l": 60, "r": 30, "t": 70, "b": 60})
    return fig


def format_agreement(result: Agreement, *, worst: int = 5) -> str:
    """What `rca validate` prints: per taxonomy, model and labeller the figures, the confusion matrix
    (categories that occur), precision and recall, accuracy by confidence, the worst disagreements;
    then labeller against labeller."""
    if result.pairs.empty:
        return "no analyzed failure has a label: label some (rca labels import, rca.label) and analyze them"
    lines = []
    for key, group in result.pairs.groupby(GROUP, sort=True):
        taxonomy, model, labeller = key
        shown = result.judge[(result.judge[GROUP] == list(key)).all(axis=1)]
        lines += ["", f"{model} ({taxonomy}) against {labeller}: {group['failure_id'].nunique()} labelled failures",
                  *figure_lines(shown)]
        if group["true_category"].notna().any():
            matrix = confusion_frame(group)
            used = (matrix.sum(axis=0) + matrix.sum(axis=1)) > 0
            per = per_category(group)
            lines += ["  confusion (rows: labelled, columns: answered):", *_indented(matrix.loc[used, used].to_string()),
                      "  per category:", *_indented(per[per["labelled"] + per["answered"] > 0].to_string(
                          index=False, float_format=lambda v: f"{v:.0%}", na_rep="–"))]
        bands = by_confidence(group)
        lines += ["  by confidence:", *_indented(bands[bands["n"] > 0].to_string(
            index=False, float_format=lambda v: f"{v:.0%}", na_rep="–"))]
        if not (wrong := worst_disagreements(group, worst)).empty:
            lines += ["  worst disagreements (most confident first):", *_indented(
                wrong.drop(columns=["labeller", "note"]).to_string(index=False, max_colwidth=40))]
    for (a, b), shown in result.labellers.groupby(["labeller_a", "labeller_b"], sort=True):
        lines += ["", f"{b} against {a} (labellers):", *figure_lines(shown)]
    return "\n".join(lines).lstrip("\n")


def figure_lines(shown: pd.DataFrame) -> list[str]:
    """The figures with their intervals, one a line; a figure no pair could be compared on is left out."""
    lines = [f"  {'figure':<22} {'value':>7}   {'95% interval':<16} {'n':>5}"]
    for row in shown[shown["n"] > 0].itertuples():
        fmt = (lambda v: f"{v:.2f}") if row.figure.endswith("kappa") else (lambda v: f"{v:.0%}")
        show = lambda v: "–" if pd.isna(v) else fmt(v)  # noqa: E731
        interval = f"[{show(row.low)}, {show(row.high)}]"
        lines.append(f"  {row.figure:<22} {show(row.value):>7}   {interval:<16} {row.n:>5}")
    return lines


def _indented(text: str) -> list[str]:
    return ["    " + line for line in text.splitlines()]

# --- helpers -------------------------------------------------------------------------------

def _compared(pairs: pd.DataFrame, field: str, judged: bool) -> tuple[np.ndarray, np.ndarray]:
    """(reference, answer) of one field as arrays; a missing answer is a value no reference has."""
    rows = pairs[pairs[f"true_{field}"].notna() & (judged or pairs[f"pred_{field}"].notna())]
    truth, pred = rows[f"true_{field}"], rows[f"pred_{field}"]
    if field == "step":
        return truth.astype(float).to_numpy(), pred.astype(float).to_numpy()
    norm = lambda s: s.map(lambda v: str(v).strip().casefold() if v is not None and v == v else "\0none")  # noqa: E731
    return norm(truth).to_numpy(), norm(pred).to_numpy()


def _rate(name: str, hits: np.ndarray, value: float | None, rng: np.random.Generator, n_boot: int) -> list[Any]:
    """[name, value, low, high, n] for a share of hits: the 2.5th and 97.5th percentiles over resamples."""
    n = len(hits)
    if n == 0:
        return [name, np.nan, np.nan, np.nan, 0]
    hits = hits.astype(float)
    low, high = np.percentile(hits[rng.integers(0, n, size=(n_boot, n))].mean(axis=1), [2.5, 97.5])
    return [name, float(hits.mean() if value is None else value), float(low), float(high), n]


def _kappa_figure(truth: np.ndarray, pred: np.ndarray, rng: np.random.Generator, n_boot: int) -> list[Any]:
    """Cohen's kappa (scikit-learn's) and its interval; NaN where undefined (one category throughout)."""
    n = len(truth)
    if n == 0:
        return ["category kappa", np.nan, np.nan, np.nan, 0]
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore")
        value = float(cohen_kappa_score(truth, pred))
        stats = _kappas(truth, pred, rng.integers(0, n, size=(n_boot, n)))
    finite = stats[np.isfinite(stats)]
    low, high = np.percentile(finite, [2.5, 97.5]) if len(finite) else (np.nan, np.nan)
    return ["category kappa", value, float(low), float(high), n]


def _kappas(truth: np.ndarray, pred: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Kappa of every resample at once, (p_o - p_e) / (1 - p_e) from its confusion counts: the same
    figure as cohen_kappa_score, which takes a millisecond a call, a second per interval."""
    names, codes = np.unique(np.concatenate([truth, pred]), return_inverse=True)
    k, n = len(names), len(truth)
    cells = codes[:n][draws] * k + codes[n:][draws]  # (resample, case) -> cell of the k x k matrix
    counts = np.zeros((len(draws), k * k))
    np.add.at(counts, (np.arange(len(draws))[:, None], cells), 1)
    matrix = counts.reshape(-1, k, k) / n
    observed = np.trace(matrix, axis1=1, axis2=2)
    expected = (matrix.sum(axis=2) * matrix.sum(axis=1)).sum(axis=1)
    return (observed - expected) / (1 - expected)


def _share(hits: pd.Series) -> float:
    return float(hits.mean()) if len(hits) else np.nan


def _concat(frames: list[pd.DataFrame], keys: list[str]) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame(columns=[*keys, *FIGURE_COLUMNS])
    out = pd.concat(frames, ignore_index=True)
    return out[[*keys, *FIGURE_COLUMNS]]


class _Callable(types.ModuleType):
    """`rca.agreement(db)` is the function whichever came first: `import rca.agreement` makes the
    package attribute this module, so the module answers a call as the function does."""

    def __call__(self, db: str | Path, **kwargs: Any) -> Agreement:
        return agreement(db, **kwargs)


sys.modules[__name__].__class__ = _Callable
