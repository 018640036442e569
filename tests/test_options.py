"""The analysis options are declared once (rca.options); every place that takes them agrees with it."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable
from typing import Any

import papermill
import pytest

from rca.analyze import analyze_failures, analyze_failures_async
from rca.cli import build_parser
from rca.notebook import build_notebook
from rca.options import OPTION, OPTIONS
from rca.report import prepare

DECLARED = {option.name: option.default for option in OPTIONS}
IN_NOTEBOOK = {option.name: option.default for option in OPTIONS if option.notebook}


def _defaults(func: Callable[..., Any], names: dict[str, Any]) -> dict[str, Any]:
    parameters = inspect.signature(func).parameters
    return {name: parameters[name].default for name in names}


def test_the_python_functions_default_to_the_declared_values() -> None:
    assert _defaults(analyze_failures, DECLARED) == DECLARED
    assert _defaults(analyze_failures_async, DECLARED) == DECLARED
    assert _defaults(prepare, IN_NOTEBOOK) == IN_NOTEBOOK


def test_rca_analyze_has_a_flag_per_option_with_its_default() -> None:
    args = build_parser().parse_args(["analyze"])
    assert {name: getattr(args, name) for name in DECLARED} == DECLARED
    args = build_parser().parse_args([
        "analyze", "--backend", "heuristic", "--model", "m", "--concurrency", "3", "--force", "--dry-run",
        "--budget-usd", "0.5", "--taxonomy", "t.yaml", "--runs-dir", "runs", "--timeout", "30", "--price", "0.5,3"])
    assert {name: getattr(args, name) for name in DECLARED} == {
        "backend": "heuristic", "model": "m", "concurrency": 3, "force": True, "dry_run": True, "budget_usd": 0.5,
        "taxonomy": "t.yaml", "runs_dir": "runs", "timeout": 30.0, "price": "0.5,3"}


@pytest.mark.parametrize(("argv", "message"), [
    (["--concurrency", "0"], "argument --concurrency: concurrency must be a number >= 1, got '0'"),
    (["--budget-usd", "lots"], "argument --budget-usd: budget_usd must be a number >= 0, got 'lots'"),
    (["--backend", "cloud"], "argument --backend: invalid choice: 'cloud'"),
])
def test_a_bad_value_is_a_usage_error_naming_the_flag(argv: list[str], message: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["analyze", *argv])
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_the_notebook_parameters_cell_declares_the_same_defaults_and_help() -> None:
    cell = papermill.inspect_notebook(build_notebook())
    assert {name: ast.literal_eval(cell[name]["default"]) for name in IN_NOTEBOOK} == IN_NOTEBOOK
    assert all(OPTION[name].help in cell[name]["help"] for name in IN_NOTEBOOK)
    assert "dry_run" not in cell and cell["runs_dir"]["default"] == '"benchmark_runs"'  # the notebook's own runs_dir
