"""The report notebook for real: `rca run --demo` end to end, papermill with real kernels, the
Gemini path against FakeGemini, bad parameters, and the exported HTML in headless Chromium.

One demo report is executed per module and shared, because each notebook execution starts a
kernel and takes seconds.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest
from papermill.exceptions import PapermillExecutionError

from rca.backends.gemini import DEFAULT_MODEL
from rca.notebook import kernel_name
from rca.testing import FakeGemini
from tests.conftest import NOTEBOOK, REPO

BIN = Path(sys.executable).parent
KEY_VARS = ("GEMINI_API_KEY", "GEMINI_API_KEYS", "GEMINI_API_KEYS_POOL", "GOOGLE_API_KEY", "RCA_MODEL",
            "GOOGLE_GEMINI_BASE_URL")
PLOTLY = "application/vnd.plotly.v1+json"
# Charts each section must show (sections 1, 6 and 7 are tables and a trace).
CHARTS_PER_SECTION = {"3": 1, "4": 1, "5": 3, "6": 1, "10": 1}  # offline: no trust charts (they carry nothing)
ARTIFACTS = REPO / "tests" / "artifacts"


def _offline_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in KEY_VARS}


def _rca() -> list[str]:
    script = BIN / "rca"
    return [str(script)] if script.exists() else [sys.executable, "-m", "rca"]


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`rca run --demo` in an empty folder with no API key: the README's quickstart."""
    work = tmp_path_factory.mktemp("quickstart")
    proc = subprocess.run([*_rca(), "run", "--demo"], cwd=work, env=_offline_env(), capture_output=True, text=True, timeout=300)
    return {"dir": work, "proc": proc, "ipynb": work / "reports" / "root_cause_analysis.ipynb",
            "html": work / "reports" / "root_cause_analysis.html"}


def _sections(nb: nbformat.NotebookNode) -> dict[str, list[nbformat.NotebookNode]]:
    """Code cells grouped under their "## N. Title" markdown heading."""
    groups: dict[str, list[nbformat.NotebookNode]] = {}
    current = "intro"
    for cell in nb.cells:
        match = re.match(r"## (\d+)\.", cell.source) if cell.cell_type == "markdown" else None
        if match:
            current = match.group(1)
        elif cell.cell_type == "code":
            groups.setdefault(current, []).append(cell)
    return groups


def _mimes(cells: list[nbformat.NotebookNode]) -> list[str]:
    return [mime for cell in cells for out in cell.outputs for mime in out.get("data", {})]


def test_rca_run_demo_writes_the_notebook_and_html(demo_report: dict) -> None:
    proc = demo_report["proc"]
    assert proc.returncode == 0, proc.stderr
    assert "wrote 3 demo runs" in proc.stdout
    assert proc.stdout.count("analyzer: offline rule-based") == 1  # said once, in the terminal too
    assert "reports/root_cause_analysis.html" in proc.stdout and "reports/root_cause_analysis.ipynb" in proc.stdout
    with sqlite3.connect(demo_report["dir"] / "analysis_cache.db") as conn:
        total, analyzed = conn.execute("SELECT COUNT(*), COUNT(llm_root_cause) FROM failures").fetchone()
    assert f"{total} failed attempts in the report: {analyzed} with a root cause" in proc.stdout and analyzed > 0
    assert demo_report["ipynb"].is_file() and demo_report["html"].is_file()
    assert (demo_report["dir"] / "analysis_cache.db").is_file() and (demo_report["dir"] / "benchmark_runs").is_dir()
    assert "Traceback" not in proc.stderr and "WARNING" not in proc.stderr


def test_executed_notebook_has_no_errors_and_every_section_its_chart(demo_report: dict) -> None:
    nb = nbformat.read(demo_report["ipynb"], as_version=4)
    errors = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs if out.output_type == "error"]
    assert errors == []
    assert all(cell.execution_count for cell in nb.cells if cell.cell_type == "code")
    sections = _sections(nb)
    assert sorted(sections, key=str) == sorted(["intro", *map(str, range(12))], key=str)
    for section, expected in CHARTS_PER_SECTION.items():
        assert _mimes(sections[section]).count(PLOTLY) == expected, f"section {section}"
    for section in ("1", "2", "8", "9", "11"):  # overview, fix first, examples, the trace, failure details
        assert "text/html" in _mimes(sections[section]), f"section {section}"
    load_text = "".join(out.get("text", "") for cell in sections["0"] for out in cell.outputs)
    assert "offline heuristic" in load_text and "ingest: 3 runs found" in load_text
    overview = "".join(out["data"]["text/html"] for cell in sections["1"] for out in cell.outputs if "data" in out)
    assert "Analyzed by</b> heuristic" in overview and "Pass rate" in overview
    trace = "".join(out["data"]["text/html"] for cell in sections["9"] for out in cell.outputs if "data" in out)
    assert "◀ root cause" in trace


def test_outputs_are_small_and_the_html_shows_findings_not_code(demo_report: dict) -> None:
    nb = nbformat.read(demo_report["ipynb"], as_version=4)
    charts = [out for cell in nb.cells for out in cell.get("outputs", []) if PLOTLY in out.get("data", {})]
    assert charts and all("text/html" not in out["data"] for out in charts)  # each chart stored once
    assert not any("plotly.js v" in out.get("data", {}).get("text/html", "") for cell in nb.cells
                   for out in cell.get("outputs", []))  # and no copy of plotly.js in the notebook
    assert demo_report["ipynb"].stat().st_size <= 1_500_000 and demo_report["html"].stat().st_size <= 6_000_000
    page = demo_report["html"].read_text(encoding="utf-8")
    assert "report.prepare(" not in page and "charts.categories_bar(" not in page  # code stays in the notebook
    assert "nbconvert-stderr" not in page and 'data-mime-type="application/vnd.jupyter.stderr"' not in page


def test_exported_html_loads_nothing_from_the_network(demo_report: dict) -> None:
    page = demo_report["html"].read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\bsrc\s*=\s*[\"']?(?:https?:)?//", page)
    assert "cdn.plot.ly/plotly" not in page and "cdnjs.cloudflare.com" not in page  # plotly.js, MathJax, require.js
    assert not re.search(r"import\s*\(?\s*[\"']https?://", page)
    assert page.count("Plotly.newPlot") >= sum(CHARTS_PER_SECTION.values())
    assert len(re.findall(r"\* plotly\.js v\d", page)) == 1  # plotly.js embedded, once


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def test_html_renders_the_charts_in_headless_chromium(demo_report: dict, tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("CI is set but no chromium is on PATH: .ci/run installs Debian's chromium")
        pytest.skip("no chromium on PATH (apt-get install chromium); this test must run in CI")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "root_cause_analysis.png"
    shot.unlink(missing_ok=True)
    url = demo_report["html"].resolve().as_uri()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--hide-scrollbars",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--virtual-time-budget=10000"]
    dom_run = subprocess.Popen([browser, *flags, f"--user-data-dir={tmp_path / 'a'}", "--dump-dom", url],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    shot_run = subprocess.Popen([browser, *flags, f"--user-data-dir={tmp_path / 'b'}", f"--screenshot={shot}",
                                 "--window-size=1400,4000", url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dom, _ = dom_run.communicate(timeout=120)
    shot_run.wait(timeout=120)
    figures = sum(CHARTS_PER_SECTION.values())
    assert dom.count('class="main-svg"') >= 2 * figures, "plotly did not draw its SVG"
    assert dom.count("plot-container plotly") == figures
    drawn = re.findall(r'class="gtitle"[^>]*>([^<]*)', dom)  # titles plotly drew into the SVG
    assert len(drawn) == figures
    for title in ("Failed cases per pattern, by generator", "Root causes of failed cases", "Root causes by suite",
                  "Root causes by generator", "Suite → generator → root cause", "Regex baseline tag vs. root cause",
                  "Root causes per run"):
        assert any(t.startswith(title) for t in drawn), title
    assert shot.is_file() and shot.stat().st_size > 50_000


def test_the_html_opens_on_findings_and_its_links_open_failure_details(demo_report: dict, tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("CI is set but no chromium is on PATH: .ci/run installs Debian's chromium")
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    page = demo_report["html"].read_text(encoding="utf-8")
    linked = re.findall(r'href="#(failure-\d+)"', page)
    assert linked and all(f'id="{target}"' in page for target in set(linked))  # every link has its block
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--virtual-time-budget=8000"]
    url = f"{demo_report['html'].resolve().as_uri()}#{linked[0]}"
    dom = subprocess.run([browser, *flags, f"--user-data-dir={tmp_path / 'c'}", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120).stdout
    opened = re.search(r'<details[^>]*\bopen\b[^>]*>\s*<summary>[^<]*</summary>\s*<div id="' + linked[0], dom)
    assert opened, "following a link to a failure did not open its details"
    headings = re.findall(r"<h2[^>]*>([^<]+)", dom)
    assert headings[:2] == ["1. Overview", "2. What to fix first"]  # the first screen: findings, no code or setup
    body = dom[dom.find("<body"):]  # plotly.js in the head holds the same class names
    assert body.find("What to fix first") < body.find('class="plot-container') and "report.prepare(" not in body


def test_gemini_path_runs_in_the_kernel_against_the_fake_server(demo_report: dict, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain `papermill` as a user would call it; the kernel inherits the key and the base URL."""
    for name in KEY_VARS:
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "gemini.ipynb"
    with FakeGemini() as fake:
        monkeypatch.setenv("GEMINI_API_KEY", "AIzaSyA-test-key-one-000000000000000000")
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.url)
        proc = subprocess.run(
            [str(BIN / "papermill"), str(NOTEBOOK), str(out), "--no-progress-bar",
             "-p", "db_path", str(tmp_path / "gemini.db"), "-p", "runs_dir", str(demo_report["dir"] / "benchmark_runs"),
             "-p", "limit", "4", "-p", "suites", "fix_errors,api_understanding"],
            capture_output=True, text=True, timeout=300)
        calls = [r for r in fake.requests if r.path.endswith(":generateContent")]
    assert proc.returncode == 0, proc.stderr[-3000:]
    analysis = [r for r in calls if r.model == DEFAULT_MODEL]
    assert len(analysis) == 4 and all(r.status == 200 for r in calls)
    assert len(calls) > len(analysis)  # and the patterns were synthesized by the stronger model
    nb = nbformat.read(out, as_version=4)
    sections = _sections(nb)
    load_text = "".join(o.get("text", "") for c in sections["0"] for o in c.outputs)
    assert f"analyzing with Gemini {DEFAULT_MODEL}" in load_text and "4 analyzed" in load_text
    overview = "".join(o["data"]["text/html"] for c in sections["1"] for o in c.outputs if "data" in o)
    assert f"Analyzed by</b> {DEFAULT_MODEL} (4," in overview
    assert _mimes(sections["4"]).count(PLOTLY) == 1


def _execute_expecting_error(tmp_path: Path, **parameters: object) -> tuple[PapermillExecutionError, nbformat.NotebookNode]:
    out = tmp_path / "bad.ipynb"
    with pytest.raises(PapermillExecutionError) as info:
        papermill.execute_notebook(str(NOTEBOOK), str(out), parameters=parameters, kernel_name=kernel_name(),
                                   progress_bar=False, cwd=str(tmp_path),
                                   extra_arguments=["--IPKernelApp.log_level=CRITICAL"])
    return info.value, nbformat.read(out, as_version=4)


def _assert_stopped_at_first_cell(error: PapermillExecutionError, nb: nbformat.NotebookNode) -> None:
    """The failing cell is the first code cell after the (injected) parameters; none after it ran."""
    assert error.ename == "ParameterError"
    code = [c for c in nb.cells if c.cell_type == "code"]
    injected = next(i for i, c in enumerate(code) if "injected-parameters" in c.metadata.get("tags", []))
    failing = code[injected + 1]
    assert failing.source.startswith("df = report.prepare(")
    assert [o.output_type for o in failing.outputs if o.output_type == "error"] == ["error"]
    assert all(c.execution_count is None and not c.outputs for c in code[injected + 2:])


def test_missing_db_stops_at_the_first_cell_saying_what_to_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KEY_VARS:
        monkeypatch.delenv(name, raising=False)
    error, nb = _execute_expecting_error(tmp_path, db_path=str(tmp_path / "nowhere.db"), runs_dir=None)
    _assert_stopped_at_first_cell(error, nb)
    assert f"no cache at {tmp_path / 'nowhere.db'}: set runs_dir to ingest runs first" in error.evalue
    assert "db_path to an existing analysis_cache.db" in error.evalue


def test_unknown_taxonomy_stops_at_the_first_cell(demo_report: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KEY_VARS:
        monkeypatch.delenv(name, raising=False)
    db = demo_report["dir"] / "analysis_cache.db"
    error, nb = _execute_expecting_error(tmp_path, db_path=str(db), runs_dir=None, taxonomy="finest")
    _assert_stopped_at_first_cell(error, nb)
    assert "unknown taxonomy 'finest'" in error.evalue and ".yaml/.json" in error.evalue
