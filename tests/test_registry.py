"""Backends by name (rca.backends.registry), and the optional Backend hooks analyze_failures calls."""

from __future__ import annotations

from pathlib import Path

import pytest

from rca import analyze_failures, ingest_runs, load_failures
from rca.backends import AnalysisOutcome, AnalysisRequest
from rca.backends.heuristic import HeuristicBackend
from rca.backends.registry import FACTORIES, backend_names, choose_backend, create_backend
from rca.cli import build_parser
from rca.demo import make_demo
from rca.errors import InputError, ParameterError
from rca.options import OPTION
from rca.schema import Category, Taxonomy
from tests.test_notebook import KEY_VARS


class Recorder:
    """A backend registered by one line in a test: it records what analyze_failures asked of it."""

    name = model = "recorder"
    calls: list[str] = []

    def __init__(self, model: str | None = None, **settings: object) -> None:
        self.calls.append(f"create {model}")

    def check_taxonomy(self, taxonomy: Taxonomy) -> None:
        self.calls.append(f"taxonomy {taxonomy.name}")

    async def check_model(self) -> None:
        self.calls.append("model")

    async def analyze(self, request: AnalysisRequest) -> AnalysisOutcome:
        self.calls.append(f"row {request.failure_id}")
        return AnalysisOutcome(error="recorded")


@pytest.fixture(autouse=True)
def no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KEY_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> type[Recorder]:
    monkeypatch.setitem(FACTORIES, "recorder", f"{__name__}:Recorder")
    monkeypatch.setattr(Recorder, "calls", [])
    return Recorder


def test_names_come_from_the_registry_and_the_cli_offers_them() -> None:
    assert backend_names() == ("auto", *FACTORIES) == ("auto", "gemini", "heuristic")
    assert OPTION["backend"].choices == backend_names()
    assert [build_parser().parse_args(["analyze", "--backend", name]).backend for name in backend_names()] == \
        list(backend_names())
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["analyze", "--backend", "cloud"])
    assert info.value.code == 2


def test_auto_is_the_heuristic_without_a_key_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert isinstance(choose_backend("auto", None), HeuristicBackend)
    assert "no Gemini API key set" in capsys.readouterr().err
    assert isinstance(choose_backend("auto", None, announce=False), HeuristicBackend)
    assert capsys.readouterr().err == ""


def test_auto_is_gemini_with_a_key(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GEMINI_API_KEYS", "k1,k2")
    engine = choose_backend("auto", "gemini-x")
    assert (engine.name, engine.model) == ("gemini", "gemini-x")
    assert "rca: analyzing with Gemini gemini-x (2 keys)" in capsys.readouterr().err


def test_wrong_names_and_missing_keys_are_input_errors() -> None:
    with pytest.raises(ParameterError, match="unknown backend 'cloud': use one of 'auto', 'gemini', 'heuristic'"):
        create_backend("cloud")
    with pytest.raises(InputError, match="needs an API key"):
        choose_backend("gemini", None)


def test_analyze_failures_calls_a_registered_backend_and_its_hooks(tmp_path: Path, recorder: type[Recorder]) -> None:
    make_demo(tmp_path / "runs")
    db = tmp_path / "cache.db"
    ingest_runs(tmp_path / "runs", db)
    rows = load_failures(db, limit=3)
    assert "recorder" in backend_names()
    out = analyze_failures(rows, db=db, backend="recorder", model="m1", progress=False)
    assert recorder.calls[:3] == ["create m1", "taxonomy default", "model"]
    assert sorted(recorder.calls[3:]) == sorted(f"row {i}" for i in rows["id"])
    assert (out["analysis_error"] == "recorded").all()


def test_the_heuristic_refuses_a_custom_taxonomy_before_any_row() -> None:
    custom = Taxonomy(name="mine", categories=(Category(name="A", definition="d"), Category(name="B", definition="d")))
    with pytest.raises(ParameterError, match="custom taxonomy with the gemini backend"):
        HeuristicBackend().check_taxonomy(custom)
