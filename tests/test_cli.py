"""The rca command: each subcommand's happy path on temporary folders, and the exit codes
scripts rely on (0 ok, 1 a step failed, 2 bad usage or input). `rca run --demo` end to end
is in test_notebook.py, sharing its executed report."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from rca import ingest_runs, load_failures
from rca.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, _value, main
from rca.demo import make_demo
from tests.test_notebook import KEY_VARS, _assert_stopped_at_first_cell


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Demo runs ingested once; tests copy the cache before changing it."""
    work = tmp_path_factory.mktemp("cli")
    make_demo(work / "benchmark_runs")
    ingest_runs(work / "benchmark_runs", work / "analysis_cache.db")
    return work / "analysis_cache.db"


@pytest.fixture
def work(tmp_path: Path, demo_db: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in KEY_VARS:
        monkeypatch.delenv(name, raising=False)
    shutil.copytree(demo_db.parent / "benchmark_runs", tmp_path / "benchmark_runs")
    shutil.copy(demo_db, tmp_path / "analysis_cache.db")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_help_lists_commands_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert all(cmd in text for cmd in ("demo", "ingest", "analyze", "report", "run"))
    assert "exit codes: 0 ok, 1" in text and "rca run --demo" in text


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["analyze", "--bogus"], ["analyze", "--backend", "cloud"], ["nonsense"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == EXIT_USAGE, argv


def test_demo_writes_runs_and_refuses_a_full_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", str(tmp_path / "runs")]) == EXIT_OK
    assert len(list((tmp_path / "runs").glob("*/trace.*"))) == 3
    assert "next: rca run --runs-dir" in capsys.readouterr().out
    assert main(["demo", str(tmp_path / "runs")]) == EXIT_USAGE
    assert "is not empty" in capsys.readouterr().err
    assert main(["demo", str(tmp_path / "runs"), "--force"]) == EXIT_OK


def test_ingest_then_again_skips_done_runs(tmp_path: Path, demo_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs, db = demo_db.parent / "benchmark_runs", tmp_path / "c.db"
    assert main(["ingest", str(runs), "--db", str(db)]) == EXIT_OK
    assert "3 runs found, 3 ingested" in capsys.readouterr().out
    assert main(["ingest", str(runs), "--db", str(db)]) == EXIT_OK
    assert "3 already done" in capsys.readouterr().out
    assert main(["ingest", str(tmp_path / "missing"), "--db", str(db)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("rca ingest: error: no runs folder or trace file at") and "Traceback" not in err


def test_analyze_offline_with_filters_and_dry_run(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "--dry-run", "--limit", "5"]) == EXIT_OK
    assert "no calls made" in capsys.readouterr().err
    assert load_failures("analysis_cache.db").category.isna().all()
    assert main(["analyze", "--suite", "fix_errors", "--generator", "adk_workflow_agent", "--limit", "6"]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith("6 failed attempts: 6 with a root cause")
    stored = load_failures("analysis_cache.db")
    assert stored.category.notna().sum() == 6 and set(stored[stored.category.notna()].suite) == {"fix_errors"}
    assert main(["analyze", "--only-unanalyzed", "--run-id", stored.run_id[0], "--limit", "3"]) == EXIT_OK
    assert load_failures("analysis_cache.db").category.notna().sum() == 9


@pytest.mark.parametrize(("argv", "message"), [
    (["analyze", "--suite", "nosuch"], "unknown suite 'nosuch' in analysis_cache.db: known suites are 'api_understanding'"),
    (["analyze", "--run-id", "2020"], "unknown run_id '2020'"),
    (["analyze", "--taxonomy", "finest"], "unknown taxonomy 'finest'"),
    (["analyze", "--taxonomy", "mine.yaml"], "taxonomy file not found: mine.yaml"),
    (["analyze", "--db", "other.db"], "no cache at other.db: run `rca ingest"),
    (["analyze", "--limit", "-1"], "--limit must be >= 0"),
    (["analyze", "--backend", "gemini"], "needs an API key: set GEMINI_API_KEY"),
    (["report", "--db", "other.db"], "no cache at other.db: pass --runs-dir"),
    (["report", "-p", "colour", "blue"], "unknown parameter colour: the notebook takes db_path, runs_dir"),
    (["report", "-p", "suites", "[a,"], "is not valid JSON"),
    (["run", "--runs-dir", "nowhere"], "no runs folder at nowhere: pass --demo"),
])
def test_bad_input_exits_2_with_one_line(work: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_param_values_read_like_papermill_plus_json() -> None:
    assert [_value(v) for v in ("3", "0.5", "True", "false", "None", "fix_errors", '["a", "b"]')] == \
        [3, 0.5, True, False, None, "fix_errors", ["a", "b"]]


def test_report_writes_notebook_and_html(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "-p", "limit", "12", "-p", "backend", "heuristic", "--output-dir", "out"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "report:   out/root_cause_analysis.html" in out and "notebook: out/root_cause_analysis.ipynb" in out
    nb = nbformat.read(work / "out" / "root_cause_analysis.ipynb", as_version=4)
    injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert f"db_path = \"{work / 'analysis_cache.db'}\"" in injected.source and "runs_dir = None" in injected.source
    assert not [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert load_failures("analysis_cache.db").category.notna().sum() == 12  # the notebook analyzed what it loaded
    assert (work / "out" / "root_cause_analysis.html").stat().st_size > 1_000_000  # plotly.js inside


def test_report_with_an_unknown_suite_stops_at_the_first_cell_and_exits_2(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "-p", "suites", "fix_errors,nosuch"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "cell 6 (In [4]: 'df = report.prepare(') failed: ParameterError: unknown suite 'nosuch'" in err
    assert "known suites are 'api_understanding'" in err
    assert "partly executed notebook is in reports/root_cause_analysis.ipynb" in err
    nb = nbformat.read(work / "reports" / "root_cause_analysis.ipynb", as_version=4)
    error = next(o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error")
    assert error.ename == "ParameterError"
    _assert_stopped_at_first_cell(error, nb)
    assert (work / "reports" / "root_cause_analysis.html").is_file()


def test_a_failing_cell_exits_1_naming_the_cell(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Any failing cell, not only a parameter check: exit 1, its index and first line, partial notebook kept."""
    nb = new_notebook(cells=[new_code_cell("db_path = None\nruns_dir = None", metadata={"tags": ["parameters"]}),
                             new_code_cell("ok = 1"), new_code_cell("# divide\n1 / 0"), new_code_cell("never = 1")],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, work / "broken.ipynb")
    assert main(["report", "--notebook", "broken.ipynb", "--output-dir", "out"]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "cell 3 (In [4]: '# divide') failed: ZeroDivisionError: division by zero" in err
    written = nbformat.read(work / "out" / "root_cause_analysis.ipynb", as_version=4)
    assert written.cells[-1].source == "never = 1" and written.cells[-1].execution_count is None


def test_python_dash_m_rca_is_the_same_command(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "rca", "ingest", str(tmp_path / "none")], capture_output=True, text=True)
    assert proc.returncode == EXIT_USAGE and proc.stderr.startswith("rca ingest: error: no runs folder")
    proc = subprocess.run([sys.executable, "-m", "rca", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("rca ")


def test_a_missing_notebook_file_is_a_usage_error(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--notebook", "nope.ipynb", "--output-dir", "out"]) == EXIT_USAGE
    assert "notebook not found: nope.ipynb" in capsys.readouterr().err
    assert not (work / "out").exists()


def test_rows_left_without_an_answer_fail_the_command_with_reasons(tmp_path: Path, capsys) -> None:
    from rca.cli import main
    from tests.conftest import result_event, write_run

    runs = tmp_path / "runs"
    write_run(runs, "r1", [result_event(f"{i}: case") for i in range(3)])
    db = tmp_path / "c.db"
    assert main(["ingest", str(runs), "--db", str(db)]) == 0
    (runs / "r1" / "trace.jsonl").unlink()  # the traces are gone: no row can be analyzed
    capsys.readouterr()
    assert main(["analyze", "--db", str(db), "--backend", "heuristic"]) == 1
    err = capsys.readouterr().err
    assert "3 rows without an answer:" in err and "3  trace not readable" in err


def test_unanswered_rows_keep_their_reason_in_the_cache(tmp_path: Path) -> None:
    from rca.cli import main
    from rca.store import unanswered_errors
    from tests.conftest import result_event, write_run

    runs = tmp_path / "runs"
    write_run(runs, "r1", [result_event("0: case"), result_event("1: case")])
    db = tmp_path / "c.db"
    main(["ingest", str(runs), "--db", str(db)])
    (runs / "r1" / "trace.jsonl").unlink()
    main(["analyze", "--db", str(db), "--backend", "heuristic"])
    errors = unanswered_errors(db)
    assert sorted(errors.index) == [1, 2] and all(e.startswith("trace not readable") for e in errors)


def test_show_prints_the_failure_with_its_blamed_step(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rca.store import load_failures

    assert main(["analyze", "--limit", "5"]) == EXIT_OK
    row = load_failures("analysis_cache.db").dropna(subset=["category"]).iloc[0]
    capsys.readouterr()
    assert main(["show", str(row["id"])]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith(f"failure {row['id']}: {row['benchmark_name']}") and f"root cause: {row['category']}" in out
    assert f">> [{row['root_cause_step']}]" in out and "fix:" in out and "task:" in out
    assert main(["show", "99999"]) == EXIT_USAGE


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_writes_stable_columns_with_filters(work: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    import pandas as pd

    from rca.export import COLUMNS

    assert main(["analyze", "--suite", "fix_errors"]) == EXIT_OK
    out = Path(f"out.{fmt}")
    assert main(["export", "--format", fmt, "--output", str(out), "--suite", "fix_errors", "--limit", "7"]) == EXIT_OK
    frame = pd.read_csv(out) if fmt == "csv" else pd.read_json(out, lines=True)
    assert list(frame.columns) == list(COLUMNS) and len(frame) == 7 and set(frame["suite"]) == {"fix_errors"}
    assert frame["category"].notna().all() and frame["pattern"].isna().all()  # not grouped yet
    assert main(["patterns", "--backend", "heuristic"]) == EXIT_OK
    assert main(["export", "--format", fmt, "--output", str(out), "--suite", "fix_errors", "--limit", "7"]) == EXIT_OK
    grouped = pd.read_csv(out) if fmt == "csv" else pd.read_json(out, lines=True)
    assert grouped["pattern"].notna().all()
    assert main(["export", "--output", "x.csv", "--suite", "nosuch"]) == EXIT_USAGE


def test_parquet_without_pyarrow_says_how_to_get_it(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pandas")
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        assert main(["export", "--format", "parquet", "--output", "x.parquet"]) == EXIT_USAGE
        assert "pip install 'rca[parquet]'" in capsys.readouterr().err
    else:
        assert main(["export", "--format", "parquet", "--output", "x.parquet"]) == EXIT_OK


def test_rca_run_counts_what_the_report_covered(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "-p", "suites", "fix_errors", "--output-dir", "out"]) == EXIT_OK
    out = capsys.readouterr().out
    from rca.store import load_failures

    n = len(load_failures("analysis_cache.db", suites=["fix_errors"]))
    assert f"{n} failed attempts in the report: {n} with a root cause" in out
    assert n < len(load_failures("analysis_cache.db"))
