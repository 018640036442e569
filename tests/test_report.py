"""rca.charts and rca.report in-process, on demo data analyzed offline; and the committed
notebook against what write_notebook.py writes now."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import plotly.graph_objects as go
import pytest

from rca import charts, report
from rca.demo import make_demo
from rca.notebook import notebook_parameters
from rca.report import ParameterError, prepare
from tests.conftest import NOTEBOOK, REPO
from tests.test_notebook import KEY_VARS

FIGURES = (charts.categories_bar, charts.by_suite, charts.by_generator, charts.sunburst, charts.baseline_heatmap,
           charts.confidence_by_category, charts.evidence_verified, charts.runs_over_time)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Demo runs ingested and analyzed offline by prepare(), as the notebook's first cell does."""
    work = tmp_path_factory.mktemp("report")
    make_demo(work / "runs")
    with pytest.MonkeyPatch.context() as mp:
        for name in KEY_VARS:
            mp.delenv(name, raising=False)
        df = prepare(work / "cache.db", work / "runs", analyze=True)
    return {"dir": work, "db": work / "cache.db", "runs": work / "runs", "df": df}


@pytest.fixture
def df(demo: dict) -> pd.DataFrame:
    return demo["df"].copy()


# --- prepare --------------------------------------------------------------------------

def test_prepare_ingests_analyzes_and_reads_back(demo: dict, capsys: pytest.CaptureFixture[str]) -> None:
    df = demo["df"]
    assert len(df) > 50 and df.category.notna().all() and (df.model == "heuristic").all()
    assert df.attrs["rca_session"]["rows"] == len(df) and df.attrs["rca_ingest"].startswith("ingest: 3 runs found")
    again = prepare(demo["db"], None, suites="fix_errors", analyze=True, backend="heuristic")
    assert set(again.suite) == {"fix_errors"} and again.attrs["rca_session"] == {}
    assert "already analyzed" in capsys.readouterr().out


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"db_path": "nowhere.db"}, "no cache at nowhere.db: set runs_dir to ingest runs first, or db_path to an existing"),
    ({"runs_dir": "no_runs"}, "no runs folder at no_runs"),
    ({"suites": ["fix_errors", "nosuch"]}, "unknown suite 'nosuch' in"),
    ({"generators": "gpt"}, "known generators are 'adk_workflow_agent', 'gemini_cli_agent'"),
    ({"run_ids": ["2020-01-01"]}, "unknown run_id '2020-01-01'"),
    ({"taxonomy": "finest"}, "unknown taxonomy 'finest': use one of ['default'] or a .yaml/.json file"),
    ({"taxonomy": "mine.yaml"}, "taxonomy file not found: mine.yaml"),
    ({"backend": "cloud"}, "unknown backend 'cloud'"),
    ({"limit": -1}, "limit must be a number >= 0, got -1"),
    ({"concurrency": 0}, "concurrency must be a number >= 1"),
    ({"budget_usd": "lots"}, "budget_usd must be a number"),
    ({"suites": 3}, "suites must be a list of names"),
    ({"analyze": True, "backend": "gemini"}, "needs an API key"),
])
def test_prepare_names_what_to_fix(demo: dict, monkeypatch: pytest.MonkeyPatch, kwargs: dict, message: str) -> None:
    for name in KEY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(demo["dir"])
    params = {"db_path": "cache.db", "runs_dir": None} | kwargs
    with pytest.raises(ParameterError) as info:
        prepare(params.pop("db_path"), params.pop("runs_dir"), **params)
    assert message in str(info.value)


@pytest.mark.parametrize("suites", ['["fix_errors"]', "fix_errors", "fix_errors, api_understanding", ["fix_errors"]])
def test_list_parameters_take_json_commas_or_one_name(demo: dict, suites: object) -> None:
    frame = prepare(demo["db"], None, suites=suites)  # papermill -p passes '["fix_errors"]' as text
    assert set(frame.suite) <= {"fix_errors", "api_understanding"} and "fix_errors" in set(frame.suite)


def test_paths_work_from_the_repo_root_and_from_notebooks(demo: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    (demo["dir"] / "notebooks").mkdir(exist_ok=True)
    monkeypatch.chdir(demo["dir"] / "notebooks")  # where Jupyter runs the notebook
    frame = prepare("cache.db", "runs")
    assert len(frame) == len(demo["df"])


# --- charts ---------------------------------------------------------------------------

def test_every_chart_is_titled_labelled_and_names_benchmarks_on_hover(df: pd.DataFrame) -> None:
    for make in FIGURES:
        fig = make(df)
        assert isinstance(fig, go.Figure) and fig.layout.title.text, make.__name__
        assert not fig.layout.annotations, make.__name__
        hover = " ".join(str(t.hovertemplate) for t in fig.data)
        names = " ".join(str(getattr(t, attr)) for t in fig.data for attr in ("customdata", "text"))
        assert "benchmarks" in hover or "%{text}" in hover, make.__name__
        assert any(str(b) in names for b in df.benchmark_name.unique()), make.__name__
        if make is not charts.sunburst:
            assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text, make.__name__


def test_counts_and_shares_add_up(df: pd.DataFrame) -> None:
    # failed cases: a case whose attempts failed for one cause counts once for it
    cases = df.groupby(["run_id", "case_id", "generator", "category"], dropna=False).ngroups
    assert cases < len(df)  # the demo has retried cases
    bar = charts.categories_bar(df).data[0]
    assert sum(bar.y) == cases and list(bar.x) == charts.category_order(charts.failed_cases(df))
    assert bar.text[0] == f"{bar.y[0]} ({bar.y[0] / cases:.0%})"
    assert sum(sum(t.x) for t in charts.by_suite(df).data) == cases
    assert sum(sum(t.y) for t in charts.runs_over_time(df).data) == cases
    assert list(charts.runs_over_time(df).data[0].x) == sorted(df.run_id.unique())  # demo ids sort by time
    heat = charts.baseline_heatmap(df).data[0]
    assert int(pd.DataFrame(heat.z).to_numpy().sum()) == len(charts._tags(df))


def test_a_category_keeps_its_color_in_every_chart(df: pd.DataFrame) -> None:
    bar = charts.categories_bar(df).data[0]
    colors = dict(zip(bar.x, bar.marker.color))
    for make in (charts.by_suite, charts.by_generator, charts.runs_over_time, charts.confidence_by_category):
        assert {t.name: t.marker.color for t in make(df).data} == colors
    assert charts.category_colors(["Zeta", "Alpha"]) == charts.category_colors(["Alpha", "Zeta", "Alpha"])


def test_any_taxonomy_works(df: pd.DataFrame) -> None:
    """Categories come from the data: a user's own labels flow through every chart."""
    mine = df.assign(category=df.category.map(lambda c: "Env" if c == "Infrastructure" else f"Agent: {c[:4]}"))
    for make in FIGURES:
        traces = make(mine).data
        labels = {str(v) for t in traces for attr in ("x", "labels") for v in (getattr(t, attr, None) or [])}
        labels |= {t.name for t in traces if t.name}
        assert "Env" in labels and "Infrastructure" not in labels, make.__name__
    assert len(set(charts.category_colors(mine.category.unique()).values())) == mine.category.nunique()


@pytest.mark.parametrize("frame", ["empty", "unanalyzed", "one row", "no suite"])
def test_charts_degrade_to_a_note_not_an_exception(df: pd.DataFrame, frame: str) -> None:
    data = {"empty": df.iloc[0:0], "unanalyzed": df.assign(category=None), "one row": df.iloc[:1],
            "no suite": df.assign(suite=None, generator=None, error_type=[[] for _ in range(len(df))])}[frame]
    for make in FIGURES:
        fig = make(data)
        if frame in ("empty", "unanalyzed"):
            assert fig.layout.annotations[0].text == charts.EMPTY_MESSAGE, make.__name__
    assert list(charts.baseline_disagreements(data).columns)[:3] == ["id", "run_id", "benchmark_name"]


def test_disagreements_rank_rare_pairs_first(df: pd.DataFrame) -> None:
    top = charts.baseline_disagreements(df, n=len(df))
    assert len(top) == len(df) and top.disagreement.is_monotonic_decreasing
    first = top.iloc[0]
    tagged = charts._tags(df)
    share = (tagged[tagged.tag.isin(first.regex_tags.split(", "))].category == first.category).mean()
    assert first.disagreement >= 1 - share - 1e-9


# --- tables and the trace -------------------------------------------------------------

def test_overview_names_models_tokens_and_cost(df: pd.DataFrame) -> None:
    table = report.overview(df).data["value"]
    assert table["Failed attempts loaded"] == f"{len(df):,}" and table["Analyzed"] == f"{len(df):,} (100%)"
    assert table["Model heuristic"].startswith(f"{len(df):,} rows; 0 in / 0 out tokens; $0.0000")
    assert "This run" in table and "Ingest" in table


def test_category_examples_show_explanation_expected_actual_step(df: pd.DataFrame) -> None:
    page = report.category_examples(df, per_category=2).data
    for cat in df.category.unique():
        assert f"<h4>{cat}: " in page
    for column in ("explanation", "expected", "actual", "failing step"):
        assert f"<th>{column}</th>" in page
    assert "no analyzed failures yet" in report.category_examples(df.iloc[0:0]).data


def test_show_trace_highlights_the_root_cause_step(demo: dict, df: pd.DataFrame) -> None:
    row = report.pick_failure(df)
    assert row is not None and row.root_cause_step == row.root_cause_step
    page = report.show_trace(row, runs_dir=demo["runs"]).data
    step = int(row.root_cause_step)
    assert page.count("◀ root cause") == 1 and 'class="rca-root" style="background:#fff1a8;' in page
    assert f"[{step}] " in page.split("◀ root cause")[0].rsplit('class="rca-root"', 1)[1]
    assert page.count("<script>") == 1  # our scroll-to-step script; trace text is escaped
    chosen = report.pick_failure(df, failure_id=int(df.id.iloc[3]))
    assert chosen.id == df.id.iloc[3]
    with pytest.raises(ParameterError, match="no failure with id 999999"):
        report.pick_failure(df, failure_id=999999)
    gone = row.copy()
    gone["trace_log_path"] = "/nowhere/trace.jsonl"
    assert "trace not readable" in report.show_trace(gone).data
    assert "no failure to show" in report.show_trace(None).data


def test_trace_blocks_split_on_steps_and_collapsed_runs() -> None:
    text = "[0] message user: hi\nmore\n[1] (×3, steps 1–3) tool_use ls()\n[… steps 4–9 elided: 6 steps, ~9 tokens …]\n[10] end"
    assert [(a, b) for a, b, _ in report._blocks(text)] == [(0, 0), (1, 3), (None, None), (10, 10)]
    assert report._blocks(text)[0][2] == "[0] message user: hi\nmore"


# --- the committed notebook -----------------------------------------------------------

def test_committed_notebook_is_what_write_notebook_writes(tmp_path: Path) -> None:
    out = tmp_path / "nb.ipynb"
    proc = subprocess.run([sys.executable, str(REPO / "write_notebook.py"), "--output", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert NOTEBOOK.read_bytes() == out.read_bytes(), "run `python write_notebook.py` and commit the notebook"


def test_notebook_has_parameters_and_no_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is None and c.outputs == [] for c in code)
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and code.index(params[0]) == 1
    assert notebook_parameters() == ["db_path", "runs_dir", "run_ids", "suites", "generators", "limit", "analyze",
                                            "backend", "model", "concurrency", "force", "budget_usd", "taxonomy",
                                            "timeout", "price"]
    assert code[2].source.startswith("df = report.prepare(")
    assert all(len(c.source.splitlines()) <= 20 for c in code)


def test_trust_shows_agreement_when_labels_exist(demo: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython.display

    import rca

    df = report.prepare(demo["db"], None)
    shown: list[object] = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    report.trust(df)
    assert not any("Agreement with" in getattr(o, "data", "") for o in shown if isinstance(getattr(o, "data", ""), str))
    for _, row in df.head(4).iterrows():
        rca.label(demo["db"], int(row["id"]), category="Logic Error", step=0, labeller="me")
    shown.clear()
    report.trust(df)
    texts = [o.data for o in shown if isinstance(getattr(o, "data", None), str)]
    assert any("Agreement with 1 labeller(s) on 4 labelled failures" in t for t in texts)
    assert any(isinstance(o, go.Figure) and "Labelled vs. answered" in o.layout.title.text for o in shown)
