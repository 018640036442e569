"""Labels: written from code, imported from CSV and JSONL (every bad line named, every good one kept),
replaced per labeller, and taken from a labelled data set at ingest."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

import rca
from rca.cli import main
from rca.errors import ParameterError
from rca.labels import load_labels

LOGS = Path(__file__).parent / "data" / "multiagent"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """The two multi-agent logs: failure 1 is algorithm-generated-1, failure 2 hand-crafted-24."""
    logs = tmp_path / "multiagent"
    shutil.copytree(LOGS, logs)
    path = tmp_path / "cache.db"
    rca.ingest_runs(logs, path)
    return path


def _labels(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT failure_id, labeller, category, step, agent, note FROM labels "
                            "ORDER BY failure_id, labeller").fetchall()


def test_ingest_keeps_the_data_sets_own_labels_as_labeller_dataset(db: Path) -> None:
    rows = _labels(db)
    assert [r[:5] for r in rows] == [(1, "dataset", None, 0, "Excel_Expert"), (2, "dataset", None, 1, "Orchestrator")]
    assert rows[1][5] == "The Orchestrator made an error when performing the translation."


def test_label_from_code_replaces_the_same_labellers_earlier_label_only(db: Path) -> None:
    rca.label(db, 2, category="logic error", step=3, agent="Orchestrator", labeller="ann", note="first try")
    rca.label(db, 2, category="Hallucination", step=1, labeller="ann")
    rca.label(db, 2, category="Tool Misuse", labeller="bob")
    rows = [r for r in _labels(db) if r[0] == 2]
    assert rows == [(2, "ann", "Hallucination", 1, None, None), (2, "bob", "Tool Misuse", None, None, None),
                    (2, "dataset", None, 1, "Orchestrator", "The Orchestrator made an error when performing the translation.")]
    frame = load_labels(db)
    assert len(frame) == 4 and str(frame["step"].dtype) == "Int64"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"failure_id": 99, "category": "Logic Error"}, "no failure 99"),
    ({"failure_id": 1, "category": "Bad Luck"}, "not in the taxonomy"),
    ({"failure_id": 1}, "nothing to label"),
    ({"failure_id": 1, "step": -2}, "step"),
])
def test_label_refuses_what_is_not_a_label(db: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        rca.label(db, **kwargs)
    assert len(_labels(db)) == 2


def test_csv_import_names_each_bad_line_and_imports_every_good_one(db: Path, tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(
        "failure_id,run_id,benchmark_name,attempt_number,category,step,agent,labeller,note\n"
        "1,,,,Logic Error,0,Excel_Expert,ann,counts wrong\n"           # 2: good
        ",multiagent,hand-crafted-24,,tool misuse,2,,ann,\n"            # 3: good, by run and name
        "7,,,,Logic Error,0,,ann,\n"                                    # 4: unknown failure
        "1,,,,Bad Luck,0,,ann,\n"                                       # 5: category outside the taxonomy
        "1,,,,,x,,ann,\n"                                               # 6: a step that is no number
        ",multiagent,no-such-log,,Logic Error,,,ann,\n"                 # 7: no such failure
        "2,,,,Logic Error,,,,\n"                                        # 8: no labeller
        "2,,,,,,,ann,just a note\n"                                     # 9: nothing labelled
        '2,,,,"Logic Error",1,,bob,"a note, with a comma"\n'            # 10: good
        "2,,,,Logic Error,1,,bob,x,extra\n",                            # 11: a cell too many
        encoding="utf-8")
    result = rca.import_labels(path, db)
    assert result.imported == 3
    lines = [e.split(": ", 1) for e in result.errors]
    assert [where for where, _ in lines] == [f"{path}:{n}" for n in (4, 5, 6, 7, 8, 9, 11)]
    why = dict((int(w.rsplit(":", 1)[1]), m) for w, m in lines)
    assert "no failure 7" in why[4] and "'Bad Luck' is not in the taxonomy" in why[5] and why[6].startswith("step:")
    assert "no failure of run 'multiagent', benchmark 'no-such-log'" in why[7] and "no labeller" in why[8]
    assert "nothing to label" in why[9] and "more cells" in why[11]
    rows = {(r[0], r[1]): r[2:] for r in _labels(db)}
    assert rows[(1, "ann")] == ("Logic Error", 0, "Excel_Expert", "counts wrong")
    assert rows[(2, "ann")] == ("Tool Misuse", 2, None, None)
    assert rows[(2, "bob")] == ("Logic Error", 1, None, "a note, with a comma")


def test_jsonl_import_with_a_default_labeller_and_reimport_replaces(db: Path, tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    good = {"failure_id": 2, "category": "Logic Error", "step": 1, "agent": "Orchestrator"}
    path.write_text("\n".join([json.dumps(good), "{not json", "[1, 2]", "",
                               json.dumps({"run_id": "multiagent", "benchmark_name": "algorithm-generated-1",
                                           "attempt_number": 3, "step": 0})]) + "\n", encoding="utf-8")
    result = rca.import_labels(path, db, labeller="carol")
    assert result.imported == 1 and len(result.errors) == 3
    assert result.errors[0].startswith(f"{path}:2: not JSON") and result.errors[1].startswith(f"{path}:3: a JSON list")
    assert result.errors[2].startswith(f"{path}:5: no failure of run 'multiagent', benchmark 'algorithm-generated-1', "
                                       "attempt 3")
    path.write_text(json.dumps({**good, "category": "Hallucination"}) + "\n", encoding="utf-8")
    assert rca.import_labels(path, db, labeller="carol").imported == 1
    assert [r[:3] for r in _labels(db) if r[1] == "carol"] == [(2, "carol", "Hallucination")]


def test_a_csv_without_a_failure_column_is_one_clear_error_and_a_byte_order_mark_is_no_column(db: Path, tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("id,category\n1,Logic Error\n", encoding="utf-8")
    result = rca.import_labels(path, db, labeller="ann")
    assert result.imported == 0 and len(result.errors) == 1 and "no failure_id column" in result.errors[0]
    path.write_text("\ufefffailure_id,category\n1,Logic Error\n", encoding="utf-8")  # saved by a spreadsheet
    assert rca.import_labels(path, db, labeller="ann").imported == 1


def test_rca_labels_import_prints_the_errors_and_exits_2_after_importing_the_good_lines(
        db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("failure_id,category,labeller\n1,Logic Error,ann\n5,Logic Error,ann\n", encoding="utf-8")
    assert main(["labels", "import", str(path), "--db", str(db)]) == 2
    out, err = capsys.readouterr()
    assert "1 imported" in out and f"{path}:3: no failure 5 in the cache" in err
    assert main(["labels", "import", str(path.with_name("missing.csv")), "--db", str(db)]) == 2
