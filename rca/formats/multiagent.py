"""Multi-agent conversation logs labelled with the agent and step that caused the failure.

The Who&When format (one JSON file per failed task): `history` is the conversation, a list
of turns `{role, name?, content}`; `question` the task; `mistake_agent`, `mistake_step`
(an index into `history`), `mistake_reason` and `ground_truth` the labels. Each turn becomes
one message step whose index is its turn index, so `mistake_step` names a step as is.

The agent of a turn is its `name`, else its role without a qualifier such as "(thought)"
("Orchestrator (thought)" is the Orchestrator, as the labels name it). A turn by the human
asking the question is the task-giver's, not an agent's. The labels (and the correct answer)
go into `metadata["labels"]`, which nothing renders: they are for grading, never for the model.

Each log is one case, so its folder is its run (Who&When's Algorithm-Generated and Hand-Crafted
each number their logs from 1) and its row's trace_offset a digest of folder and file name: a
log's byte offset, 0, would make the logs of one run one row in the cache.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from rca.baseline import regex_tags_json
from rca.errors import FormatError
from rca.formats import IngestIssue, Progress, whole_file
from rca.formats.chat import json_keys, stable_key
from rca.store import FailureRow
from rca.transcript import Outcome, Transcript, number_steps

NAME = "multiagent"
LABELS = ("mistake_agent", "mistake_step", "mistake_reason", "ground_truth")
HUMAN_ROLES = frozenset({"human"})
_QUALIFIER = re.compile(r"\s*\([^)]*\)\s*\Z")
_FINAL = re.compile(r"^FINAL ANSWER:\s*(.+?)\s*$", re.MULTILINE)


def _labels(obj: Mapping[str, Any]) -> dict[str, Any]:
    labels = {key: obj.get(key) for key in LABELS if obj.get(key) is not None}
    step = labels.get("mistake_step")
    if isinstance(step, str) and step.strip().isdigit():
        labels["mistake_step"] = int(step)
    return labels


def _step(turn: Any) -> dict[str, Any]:
    turn = turn if isinstance(turn, Mapping) else {"content": turn}
    role = str(turn.get("role") or "") or None
    name = turn.get("name") if isinstance(turn.get("name"), str) and turn.get("name") else None
    human = name is None and role in HUMAN_ROLES
    agent = None if human else name or (_QUALIFIER.sub("", role) if role else None)
    content = turn.get("content")
    return {"kind": "message", "role": "user" if human else role, "agent": agent,
            "text": content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)}


def to_transcript(obj: Mapping[str, Any], path: str | Path) -> Transcript:
    """One log as a Transcript: a message step per history turn, the labels in metadata only."""
    history = obj.get("history")
    if not isinstance(history, list):
        raise FormatError(path, "no `history` list: not a multi-agent log")
    steps = [_step(turn) for turn in history]
    final = None
    if steps and (m := list(_FINAL.finditer(steps[-1]["text"]))):  # Magentic-One ends with "FINAL ANSWER: ..."
        steps[-1]["kind"], final = "final_answer", m[-1][1]
    return Transcript(
        format=NAME, ref=str(path), task=str(obj["question"]) if obj.get("question") else None,
        steps=number_steps(steps), final_answer=final, outcome=Outcome(result="incorrect"),
        metadata={"case_id": obj.get("question_ID"), "benchmark_name": Path(path).stem, "labels": _labels(obj)},
    )


def _load(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(path, f"not readable as JSON: {exc}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("history"), list):
        raise FormatError(path, "no `history` list: not a multi-agent log")
    return obj


def _logs(path: Path) -> list[Path]:
    return sorted(path.glob("*.json")) if path.is_dir() else [path]


def detect(path: Path) -> bool:
    """A .json file whose first 64 KiB show a JSON object with a top-level `history` (or a folder of
    them): a `history` deeper down (in another format's metadata) is not this format."""
    for file in _logs(path):
        if file.suffix == ".json":
            with file.open("rb") as f:
                head = f.read(64 << 10).lstrip()
            if head.startswith(b"{") and (1, b"history") in json_keys(head):
                return True
    return False


def _row(path: Path, obj: Mapping[str, Any]) -> FailureRow:
    stat = path.stat()
    return FailureRow(
        run_id=path.parent.name, timestamp=None, benchmark_name=path.stem, suite=None, generator=None,
        attempt_number=None, error_type=regex_tags_json(None), raw_error=None, explanation=None,
        trace_log_path=str(path.resolve()), trace_offset=stable_key(f"{path.parent.name}/{path.name}"),
        trace_length=stat.st_size, trace_line=1, attempt_index=-1, trace_file_size=stat.st_size,
        trace_file_mtime=stat.st_mtime, event_kind="history",
        case_id=str(obj["question_ID"]) if obj.get("question_ID") is not None else None,
        result="incorrect", format=NAME, trace_ref=str(path.resolve()),
    )


def failures(path: Path, run_id: str, resume: Progress | None = None) -> Iterator[FailureRow | IngestIssue | Progress]:
    """One row per log (every log records a failed task), then a finished Progress: logs are written
    whole. The run is the log's folder, not `run_id`."""
    if resume is not None and resume.finished:
        yield resume
        return
    for file in _logs(path):
        try:
            yield _row(file, _load(file))
        except FormatError as exc:
            yield IngestIssue(path=exc.path, message=exc.reason)
    yield Progress(finished=True)


def _path(row: Mapping[str, Any], runs_dir: str | Path | None) -> Path:
    return whole_file(row, runs_dir, "multi-agent log", in_run_folder=True)


def read(row: Mapping[str, Any], *, runs_dir: str | Path | None = None) -> Transcript:
    """The log a row names (its trace_ref), read back whole."""
    path = _path(row, runs_dir)
    return to_transcript(_load(path), path)


def locate(row: Mapping[str, Any], *, runs_dir: str | Path | None = None) -> FailureRow:
    """The row as ingest would write it for the log it names."""
    path = _path(row, runs_dir)
    return _row(path, _load(path))


class _MultiAgent:
    name = NAME
    detect = staticmethod(detect)
    failures = staticmethod(failures)
    read = staticmethod(read)
    locate = staticmethod(locate)


ADAPTER = _MultiAgent()
