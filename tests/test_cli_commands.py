"""Every subcommand explains itself and runs on the demo."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pytest

from rca.cli import EXIT_OK, build_parser, main
from tests.test_cli import demo_db, work  # noqa: F401  (fixtures)


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_every_subcommand_help_gives_each_option_a_meaning(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([name, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: rca {name}")
    sub = _subcommands()[name]
    late = getattr(sub, "_late", None)  # options a command declares late load when it is used
    if late is not None:
        late(sub)
    for action in sub._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, f"rca {name} {action.option_strings[0]} has no help text"


def test_each_subcommand_runs_on_the_demo(work: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    from rca.store import load_failures

    runs = sorted(p.name for p in (work / "benchmark_runs").iterdir())
    labels = work / "labels.csv"
    assert main(["demo", str(work / "more"), "--seed", "3"]) == EXIT_OK
    assert main(["ingest", str(work / "more")]) == EXIT_OK
    assert main(["analyze", "--suite", "fix_errors"]) == EXIT_OK
    first = int(load_failures("analysis_cache.db", suites=["fix_errors"]).iloc[0]["id"])
    labels.write_text(f"failure_id,category,step,labeller\n{first},Logic Error,1,me\n")
    for argv in (["patterns", "--backend", "heuristic"], ["compare", runs[0], runs[1], "--backend", "heuristic"],
                 ["show", str(first)], ["export", "--output", "out.jsonl", "--format", "jsonl"],
                 ["labels", "import", str(labels)], ["validate"]):
        assert main(argv) == EXIT_OK, argv
    out = capsys.readouterr().out
    assert "What to fix first" in out and f"failure {first}:" in out and Path("out.jsonl").is_file()
    shutil.rmtree(work / "more")
