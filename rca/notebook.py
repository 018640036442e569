"""The report notebook: its cells, built from code, and running it in batch with papermill.

`rca report` executes the notebook built here (execute_report); `python write_notebook.py`
writes the same build to notebooks/root_cause_analysis.ipynb for Jupyter and papermill users
(a test keeps that file equal to it). Cells stay short calls into rca.report and rca.charts.
The build is byte-stable: no outputs, no execution counts, cell ids derived from the cells' names.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from rca.errors import ParameterError, ReportCellError
from rca.options import OPTIONS, Option
from rca.progress import ticking

INTRO = """\
# Root causes of failed benchmark runs

Each failed attempt was read by an analyzer (Gemini when an API key is set, else the offline rules),
which picked one root cause, explained it and quoted the trace; recurring causes are grouped into
patterns. Counts are failed cases (run x case x generator). Hover a chart for the benchmarks behind it."""

SETUP = """\
from rca import charts, findings, report

charts.use_offline_renderer()  # interactive charts that also work in the exported HTML, offline"""

_NOTEBOOK_OPTIONS = [option for option in OPTIONS if option.notebook]


def _literal(value: object) -> str:
    """A default as Python source, strings in double quotes."""
    return json.dumps(value) if isinstance(value, str) else repr(value)


def _option_line(option: Option) -> str:
    choices = f" ({', '.join(option.choices)})" if option.choices else ""
    return f"{option.name} = {_literal(option.default)}  # {option.help}{choices}"


PARAMETERS = """\
# Paths are relative to the working directory, else to the folder above it (Jupyter runs this in notebooks/).
db_path = "analysis_cache.db"  # the cache of failures and analyses
runs_dir = "benchmark_runs"  # ingest new runs from here first; None: use db_path as it is

# Filters: an empty list means all.
run_ids = []
suites = []
generators = []
limit = None  # at most this many failed attempts, e.g. 20 for a quick look

# Analysis of the rows not yet analyzed with this taxonomy.
analyze = True
""" + "\n".join(map(_option_line, _NOTEBOOK_OPTIONS))

PREPARE = f"""\
df = report.prepare(
    db_path, runs_dir, run_ids=run_ids, suites=suites, generators=generators, limit=limit, analyze=analyze,
    {", ".join(f"{option.name}={option.name}" for option in _NOTEBOOK_OPTIONS)},
)"""

CONTEXT = """\
df, taxonomy_note = findings.one_taxonomy(df, taxonomy)  # one taxonomy per report
cases, unanswered = report.cases_of(df), report.unanswered_of(df)
patterns = report.patterns_of(df, backend=backend)"""

# (cell id, markdown, [(cell id, code), ...], setup) in notebook order; the ids keep the file byte-stable.
# Setup sections run in the notebook but stay out of the HTML, which shows findings only.
SECTIONS: list[tuple[str, str, list[tuple[str, str]], bool]] = [
    ("load", "## 0. Load\n\nIngests new runs from `runs_dir`, loads the failed attempts that match the filters, "
             "analyzes those without a root cause yet and finds their patterns. A wrong parameter stops here, with a "
             "message saying what to set.",
     [("prepare", PREPARE), ("context", CONTEXT)], True),
    ("overview", "## 1. Overview\n\nThe cases of these runs, how many failed, and how many failed attempts have a "
                 "root cause (and why the others have none).",
     [("overview-table", "findings.overview(df, cases, unanswered, taxonomy_note)")], False),
    ("fix-first", "## 2. What to fix first\n\nThe recurring causes inside the agent, by the failed cases each "
                  "explains, with the change that would fix it; causes outside the agent apart.",
     [("fix-first-list", "findings.fix_first(patterns, df)")], False),
    ("patterns", "## 3. Patterns\n\nEach pattern is one specific recurring root cause. Click an example to open its "
                 "details at the bottom of the page.",
     [("patterns-table", "findings.patterns_table(patterns)"),
      ("patterns-chart", "charts.patterns_by_generator(patterns, df)")], False),
    ("overall", "## 4. Root causes overall\n\nHover a bar to see which benchmarks are behind it.",
     [("categories-text", "findings.categories_text(df)"), ("categories-bar", "charts.categories_bar(df)")], False),
    ("breakdown", "## 5. By suite and by generator\n\nA cause concentrated in one suite points at its tasks; one "
                  "concentrated in one generator points at that agent. The sunburst shows both: click a ring to zoom in.",
     [("by-suite", "charts.by_suite(df)"), ("by-generator", "charts.by_generator(df)"),
      ("sunburst", "charts.sunburst(df)")], False),
    ("regex", "## 6. Beyond the regex\n\nEach row is a tag the harness's regex gave the error, each column a root "
              "cause: a tag spread over many columns is one the regex cannot explain. The table lists the failures "
              "whose root cause is rarest for their tag.",
     [("regex-heatmap", "charts.baseline_heatmap(df)"),
      ("regex-disagreements", "report.table(charts.baseline_disagreements(df, n=10))")], False),
    ("trust", "## 7. Trust\n\nWhat the answers' confidence and evidence say, where they say something.",
     [("trust-figures", "report.trust(df)")], False),
    ("examples", "## 8. Per category\n\nThe most confident failures of each root cause. Does the explanation fit "
                 "the category's name, and is the expected behaviour what a correct agent would have done?",
     [("examples-tables", "report.category_examples(df, per_category=3)")], False),
    ("trace", "## 9. One failure up close\n\nThe trace as the analyzer read it: the step it blamed is highlighted, "
              "the steps it quoted are marked. Pass `failure_id=` (the `id` column) to look at another failure.",
     [("trace-view", "row = report.pick_failure(df)  # or report.pick_failure(df, failure_id=42)\n"
                     "report.show_trace(row, runs_dir=runs_dir)")], False),
    ("runs", "## 10. Run over run\n\nThe last two runs compared, then failed cases per run, oldest first: a band "
             "that grows from one run to the next is a regression worth bisecting.",
     [("runs-compare", "report.run_over_run(df, patterns)")], False),
    ("details", "## 11. Failure details\n\nEvery failure the sections above name: case, task, root cause, the blamed "
                "step among its neighbours, evidence and fix.",
     [("details-blocks", "findings.failure_details(df, findings.named_failures(patterns, df), runs_dir)")], False),
]


SETUP_TAG = "rca-setup"  # cells the HTML leaves out


def _code(cell_id: str, source: str, tags: list[str] | None = None) -> nbformat.NotebookNode:
    cell = new_code_cell(source, metadata={"tags": tags} if tags else {})
    cell.id = cell_id
    return cell


def _markdown(cell_id: str, source: str, tags: list[str] | None = None) -> nbformat.NotebookNode:
    cell = new_markdown_cell(source, metadata={"tags": tags} if tags else {})
    cell.id = cell_id
    return cell


def build_notebook() -> nbformat.NotebookNode:
    """The report notebook: intro, setup, a `parameters` cell for papermill, then the sections."""
    setup = [SETUP_TAG]
    cells = [
        _markdown("intro", INTRO),
        _code("setup", SETUP, tags=setup),
        _markdown("parameters-doc", "## Parameters\n\nPapermill replaces this cell's values (`-p NAME VALUE`); "
                                    "defaults report on the demo data that `rca demo` writes.", tags=setup),
        _code("parameters", PARAMETERS, tags=["parameters", SETUP_TAG]),
    ]
    for md_id, text, codes, hidden in SECTIONS:
        tags = setup if hidden else None
        cells.append(_markdown(md_id, text, tags))
        cells.extend(_code(cell_id, source, tags) for cell_id, source in codes)
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    })
    nbformat.validate(nb)
    return nb


def notebook_text() -> str:
    """The exact bytes written (as text), for the drift test."""
    return nbformat.writes(build_notebook()) + "\n"


# --- batch execution ---------------------------------------------------------------------

@dataclass(frozen=True)
class ReportFiles:
    notebook: Path
    html: Path


def notebook_parameters(notebook: str | Path | None = None) -> list[str]:
    """Names in the `parameters` cell of a notebook file, or of rca's report notebook."""
    import papermill

    return list(papermill.inspect_notebook(build_notebook() if notebook is None else str(notebook)))


def kernel_name() -> str:
    """A kernelspec that runs this interpreter, so the notebook sees the same rca and packages;
    one is installed into sys.prefix when none does (e.g. a user-wide python3 points elsewhere)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    manager = KernelSpecManager()
    shorthand = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}
    for name in ("python3", *sorted(manager.find_kernel_specs())):
        try:
            argv = manager.get_kernel_spec(name).argv
        except NoSuchKernel:
            continue
        if argv and (argv[0] in shorthand or os.path.abspath(argv[0]) == os.path.abspath(sys.executable)):
            return name
    name = "rca-" + hashlib.sha1(sys.executable.encode()).hexdigest()[:8]
    subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", name,
                    "--display-name", f"Python ({sys.prefix})"], check=True, capture_output=True)
    return name


PLOTLY_MIME = "application/vnd.plotly.v1+json"
_OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}<script>{{ resources.plotlyjs }}</script>{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
"""


def for_reading(nb: Any) -> Any:
    """The notebook as the HTML shows it: findings only. Code, its prompts and the stderr stream
    (progress and log lines) go; each chart stored as plotly JSON gets its HTML, drawn by the
    plotly.js the page embeds once."""
    from rca.charts import figure_html

    nb.cells = [cell for cell in nb.cells if SETUP_TAG not in cell.metadata.get("tags", [])
                and "injected-parameters" not in cell.metadata.get("tags", [])]
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs = [out for out in cell.outputs if not (out.output_type == "stream" and out.get("name") == "stderr")]
        for out in cell.outputs:
            data = out.get("data", {})
            if PLOTLY_MIME in data and "text/html" not in data:
                data["text/html"] = figure_html(data[PLOTLY_MIME])
    return nb


def export_html(notebook: str | Path, html_path: str | Path, title: str = "Root cause analysis") -> Path:
    """A standalone HTML file of the findings (code hidden; the notebook keeps it) that embeds
    plotly.js once and loads nothing from the network (no require.js, MathJax or Mermaid CDN)."""
    import nbformat
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter
    from plotly.offline import get_plotlyjs

    exporter = HTMLExporter(template_name="lab", extra_loaders=[DictLoader({"rca_offline.html.j2": _OFFLINE_TEMPLATE})],
                            template_file="rca_offline.html.j2", exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    nb = for_reading(nbformat.read(str(notebook), as_version=4))
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}, "plotlyjs": get_plotlyjs()})
    Path(html_path).write_text(body, encoding="utf-8")
    return Path(html_path)


def execute_report(
    db: str | Path | None,
    runs_dir: str | Path | None,
    params: Mapping[str, Any] | None,
    output_dir: str | Path,
    *,
    notebook: str | Path | None = None,
    name: str = "root_cause_analysis",
    kernel: str | None = None,
    progress: bool = False,
) -> ReportFiles:
    """Run the report notebook (or `notebook`, a file) with papermill into output_dir as
    <name>.ipynb and <name>.html.

    The report notebook is built from rca.notebook, so an installed rca needs no checkout.
    db and runs_dir become db_path and runs_dir (None: no ingest); params override any
    parameter. A failing cell raises ReportCellError after both files are written.
    """
    if notebook is not None and not Path(notebook).is_file():
        raise FileNotFoundError(f"notebook not found: {notebook}")
    values = {"db_path": str(db) if db is not None else None, "runs_dir": str(runs_dir) if runs_dir is not None else None,
              **(params or {})}
    known = notebook_parameters(notebook)
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ParameterError(f"unknown parameter {', '.join(unknown)}: the notebook takes {', '.join(known)}")
    import papermill
    from papermill.exceptions import PapermillExecutionError

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(out / f"{name}.ipynb", out / f"{name}.html")
    terminal = sys.stderr.isatty()
    try:
        source = build_notebook() if notebook is None else str(notebook)
        with ticking("rca report: executing the notebook", enabled=progress and not terminal):
            papermill.execute_notebook(source, str(files.notebook), parameters=values,
                                       kernel_name=kernel or kernel_name(), progress_bar=progress and terminal,
                                       log_output=False,  # the report's text is in the files, not the terminal
                                       extra_arguments=["--IPKernelApp.log_level=CRITICAL"])  # no TCP warning or noise
    except PapermillExecutionError as exc:
        export_html(files.notebook, files.html)
        raise ReportCellError(exc.cell_index, exc.exec_count, exc.source, exc.ename, exc.evalue, files) from None
    export_html(files.notebook, files.html)
    return files
