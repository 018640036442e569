"""The multiagent format: Who&When-style labelled logs read as Transcripts whose step indices are
the labels' turn indices, with the labels kept out of everything the model is shown."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest

from rca.errors import TraceNotFound
from rca.formats import FORMATS, IngestIssue, Progress, get_format
from rca.formats.multiagent import to_transcript
from rca.prompt import user_prompt
from rca.render import render_trace
from rca.store import FailureRow
from rca.traces import load_transcript

LOGS = Path(__file__).parent / "data" / "multiagent"


def _log(name: str) -> dict:
    return json.loads((LOGS / name).read_text(encoding="utf-8"))


def test_each_turn_is_the_step_its_label_names() -> None:
    obj = _log("algorithm-generated-1.json")
    t = to_transcript(obj, LOGS / "algorithm-generated-1.json")
    assert [s.index for s in t.steps] == list(range(len(obj["history"])))
    assert [s.text for s in t.steps] == [turn["content"] for turn in obj["history"]]
    assert t.steps[int(obj["mistake_step"])].agent == obj["mistake_agent"] == "Excel_Expert"
    assert t.task == obj["question"] and t.multi_agent and t.final_answer is None
    assert t.metadata["labels"]["mistake_step"] == 0 and t.outcome.result == "incorrect"


def test_roles_become_agents_and_the_human_is_the_task_giver() -> None:
    obj = _log("hand-crafted-24.json")
    t = to_transcript(obj, "hand-crafted-24.json")
    assert (t.steps[0].role, t.steps[0].agent) == ("user", None)
    assert t.steps[1].agent == obj["mistake_agent"] == "Orchestrator" and t.steps[1].role == "Orchestrator (thought)"
    assert t.agents == ["Orchestrator"] and not t.multi_agent
    assert t.steps[-1].kind == "final_answer" and t.final_answer == "Maktay Zapple Mato"


@pytest.mark.parametrize("name", ["algorithm-generated-1.json", "hand-crafted-24.json"])
def test_labels_are_never_shown_to_the_model(name: str) -> None:
    obj = _log(name)
    t = to_transcript(obj, name)
    prompt = user_prompt(t, render_trace(t))
    assert obj["mistake_reason"] not in prompt and "mistake" not in prompt.lower()
    assert set(t.metadata["labels"]) == {"mistake_agent", "mistake_step", "mistake_reason", "ground_truth"}


def test_a_folder_of_logs_is_one_failure_per_file_read_back_whole(tmp_path: Path) -> None:
    adapter = get_format("multiagent")
    assert FORMATS["multiagent"] == "rca.formats.multiagent" and adapter.name == "multiagent"
    folder = tmp_path / "logs"
    shutil.copytree(LOGS, folder)
    (folder / "notes.json").write_text('{"not": "a log"}', encoding="utf-8")
    assert adapter.detect(folder) and adapter.detect(folder / "hand-crafted-24.json")
    assert not adapter.detect(folder / "notes.json")
    items = list(adapter.failures(folder, "who-and-when"))
    rows = [i for i in items if isinstance(i, FailureRow)]
    assert [r.benchmark_name for r in rows] == ["algorithm-generated-1", "hand-crafted-24"]
    assert [i.path for i in items if isinstance(i, IngestIssue)] == [str(folder / "notes.json")]
    assert items[-1] == Progress(finished=True)
    assert list(adapter.failures(folder, "who-and-when", Progress(finished=True))) == [Progress(finished=True)]
    row = asdict(rows[1])
    assert row["format"] == "multiagent" and row["result"] == "incorrect"
    assert load_transcript(row) == to_transcript(_log("hand-crafted-24.json"), rows[1].trace_ref)
    assert adapter.locate(row) == rows[1]


def test_a_moved_log_is_found_through_runs_dir_else_not_found(tmp_path: Path) -> None:
    folder = tmp_path / "runs" / "who-and-when"
    folder.mkdir(parents=True)
    shutil.copy(LOGS / "hand-crafted-24.json", folder)
    row = asdict(next(r for r in get_format("multiagent").failures(folder, "who-and-when") if isinstance(r, FailureRow)))
    (folder / "hand-crafted-24.json").rename(tmp_path / "moved.json")
    with pytest.raises(TraceNotFound, match="hand-crafted-24"):
        load_transcript(row)
    moved = tmp_path / "elsewhere" / "who-and-when"
    moved.mkdir(parents=True)
    (tmp_path / "moved.json").rename(moved / "hand-crafted-24.json")
    assert load_transcript(row, runs_dir=tmp_path / "elsewhere").metadata["labels"]["mistake_step"] == 1
