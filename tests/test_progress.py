"""Long work says how far it is: a bar on a terminal, a line every few seconds in a log."""

from __future__ import annotations

import io
import time

import pytest

from rca import progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_a_line_every_few_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "LINE_EVERY_S", 0.0)
    log = io.StringIO()
    bar = progress.Progress(4, "rca analyze", "rows", stream=log)
    for _ in range(4):
        bar.update(1, failed=0)
    bar.close()
    lines = log.getvalue().splitlines()
    assert len(lines) >= 4 and lines[-1].startswith("rca analyze: 4/4 rows (100%), failed 0, ")


def test_lines_are_not_sent_more_often_than_the_interval() -> None:
    log = io.StringIO()
    bar = progress.Progress(1000, "rca ingest", "rows", stream=log)
    for _ in range(1000):
        bar.update()
    bar.close()  # well under LINE_EVERY_S: no line at all
    assert log.getvalue() == ""


def test_a_terminal_gets_a_bar_and_off_means_silent() -> None:
    term = Terminal()
    bar = progress.Progress(2, "rca analyze", "rows", stream=term)
    bar.update(2)
    bar.close()
    assert "rca analyze" in term.getvalue() and "2/2" in term.getvalue()
    quiet = io.StringIO()
    silent = progress.Progress(2, "x", "rows", enabled=False, stream=quiet)
    silent.update(2)
    silent.close()
    assert quiet.getvalue() == ""


def test_ticking_reports_work_that_has_no_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "LINE_EVERY_S", 0.05)
    log = io.StringIO()
    with progress.ticking("rca report: executing the notebook", stream=log):
        time.sleep(0.3)
    assert log.getvalue().count("rca report: executing the notebook: ") >= 2


def test_ingest_reports_progress_in_a_log(tmp_path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import rca
    from rca.demo import make_demo

    monkeypatch.setattr(progress, "LINE_EVERY_S", 0.0)
    make_demo(tmp_path / "runs")
    summary = rca.ingest_runs(tmp_path / "runs", tmp_path / "c.db", progress=True)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("rca ingest: ")]
    assert lines and lines[-1].startswith(f"rca ingest: {summary.rows_added:,} failed attempts")
