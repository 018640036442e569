"""ATIF trajectories (Agent Trajectory Interchange Format, Harbor's; v1.x): one transcript per file.

A trajectory is `{schema_version: "ATIF-v1.N", session_id, agent: {name, version, model_name?},
steps: [{step_id, source: system|user|agent, message, reasoning_content?, tool_calls?,
observation?: {results: [{source_call_id?, content?, subagent_trajectory_ref?}]}}], ...}`.
An agent step becomes its reasoning (a thought), its message, its tool calls and their results
(matched on `source_call_id`); a result of no call (an action without tool calling, a system
operation such as a hand-off to sub-agents) is an observation step. The agent is `agent.name`;
the task is the first user step's message; a trajectory that ends in an agent's message has
that message as its final answer.

ATIF itself records no outcome, so a trajectory is a failure only when it says so, in a
`status` or `result` word (failed, error, ...) or a `reward` below `score_threshold` (default
1.0), at its root, in its `extra` or in `final_metrics` (or its `extra`); or when the user says
every input failed (`all_failed=True`). A trajectory that says nothing is no case at all: it is
neither counted as passed nor as failed.

Rows: run_id is the session id (the spec's id of the whole agent run); trace_offset is a digest
of the file's path, since session ids are not unique in practice (normalized test trajectories
share one) and every trajectory is its own file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rca.baseline import regex_tags_json
from rca.errors import FormatError
from rca.formats import IngestIssue, Progress, whole_file
from rca.formats._text import output_failed, text_of
from rca.formats.chat import stable_key
from rca.store import CaseRow, FailureRow
from rca.transcript import Outcome, Transcript, number_steps

NAME = "atif"
_SIGNATURE = re.compile(rb'"schema_version"\s*:\s*"ATIF-v')
_FAILED_WORDS = frozenset({"fail", "failed", "failure", "error", "errored", "incorrect", "timeout", "timed_out",
                           "unresolved", "cancelled", "aborted"})


def detect(path: Path) -> bool:
    """A .json file whose first 64 KiB name an ATIF schema version."""
    if not (path.is_file() and path.suffix == ".json"):
        return False
    with path.open("rb") as f:
        head = f.read(64 << 10)
    return head.lstrip().startswith(b"{") and _SIGNATURE.search(head) is not None


def verdict(trajectory: Mapping[str, Any], threshold: float = 1.0) -> tuple[bool, str] | None:
    """(failed, what says so) from the trajectory's own status, result or reward; None when it has none."""
    metrics = trajectory.get("final_metrics")
    places = [trajectory, trajectory.get("extra"), metrics, metrics.get("extra") if isinstance(metrics, Mapping) else None]
    for place in places:
        if not isinstance(place, Mapping):
            continue
        for key in ("status", "result"):
            value = place.get(key)
            if isinstance(value, bool):
                return not value, f"{key}: {value}"
            if isinstance(value, str) and value:
                return value.strip().lower() in _FAILED_WORDS, f"{key}: {value}"
        reward = place.get("reward")
        if isinstance(reward, (int, float)) and not isinstance(reward, bool):
            return reward < threshold, f"reward: {reward:g}"
    return None


def _timestamp(value: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() if value else None
    except ValueError:
        return None


def _observation(result: Mapping[str, Any]) -> str:
    text = text_of(result.get("content"))
    refs = result.get("subagent_trajectory_ref")
    for ref in _list(refs):
        ref = ref if isinstance(ref, Mapping) else {}
        extra = ref.get("extra") if isinstance(ref.get("extra"), Mapping) else {}
        where = f" ({ref['trajectory_path']})" if ref.get("trajectory_path") else ""
        summary = f": {extra['summary']}" if extra.get("summary") else ""
        text += f"\nsub-agent {ref.get('session_id')}{where}{summary}"
    return text.strip()


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _agent(trajectory: Mapping[str, Any]) -> Mapping[str, Any]:
    agent = trajectory.get("agent")
    return agent if isinstance(agent, Mapping) else {}


def _steps(trajectory: Mapping[str, Any], path: Path) -> list[dict[str, Any]]:
    agent_name = text_of(_agent(trajectory).get("name")) or None
    steps: list[dict[str, Any]] = []
    for position, raw in enumerate(trajectory["steps"]):
        if not isinstance(raw, Mapping):
            raise FormatError(path, f"is a {type(raw).__name__}, not a step object", record=f"step {position + 1}")
        source = str(raw.get("source") or "")
        agent = agent_name if source == "agent" else None
        base = {"role": source or None, "source_id": str(raw.get("step_id", position + 1)),
                "timestamp": _timestamp(raw.get("timestamp"))}
        message = text_of(raw.get("message"))
        if source == "agent":
            if reasoning := text_of(raw.get("reasoning_content")):
                steps.append({**base, "kind": "thought", "agent": agent, "text": reasoning})
            if message:
                steps.append({**base, "kind": "message", "agent": agent, "text": message})
        elif message:
            steps.append({**base, "kind": "system" if source == "system" else "message", "text": message})
        calls = {}
        for call in _list(raw.get("tool_calls")):
            call = call if isinstance(call, Mapping) else {}
            calls[call.get("tool_call_id")] = call.get("function_name")
            steps.append({**base, "kind": "tool_call", "agent": agent, "tool_name": call.get("function_name"),
                          "tool_args": call.get("arguments"), "call_id": call.get("tool_call_id")})
        observation = raw.get("observation") if isinstance(raw.get("observation"), Mapping) else {}
        for result in _list(observation.get("results")):
            result = result if isinstance(result, Mapping) else {"content": result}
            text, call_id = _observation(result), result.get("source_call_id")
            if call_id is not None:
                steps.append({**base, "kind": "tool_result", "role": "tool", "agent": agent, "call_id": call_id,
                              "tool_name": calls.get(call_id), "text": text, "is_error": output_failed(result, text)})
            else:  # the result of an action without a tool call, or of a system operation
                steps.append({**base, "kind": "system", "role": "observation", "agent": agent, "text": text,
                              "is_error": output_failed(result, text)})
    last = trajectory["steps"][-1] if trajectory["steps"] else {}
    if last.get("source") == "agent" and text_of(last.get("message")):
        final = next(s for s in reversed(steps) if s["kind"] == "message")
        final["kind"] = "final_answer"
    if continued := trajectory.get("continued_trajectory_ref"):  # the rest of the run is in another file
        steps.append({"kind": "system", "role": "system", "text": f"continued in {text_of(continued)}"})
    return steps


def _generator(trajectory: Mapping[str, Any]) -> str | None:
    agent = _agent(trajectory)
    name = " ".join(text_of(agent.get(k)) for k in ("name", "version") if agent.get(k))
    model = agent.get("model_name")
    return f"{name} ({model})" if name and model else name or (str(model) if model else None)


def case_name(path: Path) -> str:
    """The file's name without `.trajectory.json`; Harbor's `<trial>/agent/trajectory.json` is its trial's."""
    name = path.name.removesuffix(".json").removesuffix(".trajectory")
    if name == "trajectory":
        return next((p.name for p in path.resolve().parents if p.name and p.name != "agent"), name)
    return name


def to_transcript(trajectory: Mapping[str, Any], path: Path) -> Transcript:
    """One trajectory as a Transcript; its outcome is the field that gives its verdict, if any."""
    steps = _steps(trajectory, path)
    task = next((s["text"] for s in steps if s.get("role") == "user"), None)
    final = next((s["text"] for s in steps if s["kind"] == "final_answer"), None)
    said = verdict(trajectory)
    agent = _agent(trajectory)
    return Transcript(
        format=NAME, ref=str(path.resolve()), task=task, steps=number_steps(steps), final_answer=final,
        outcome=Outcome(result=said[1] if said else None),
        metadata={"run_id": trajectory.get("session_id"), "benchmark_name": case_name(path),
                  "generator": _generator(trajectory), "agent": agent.get("name"), "agent_version": agent.get("version"),
                  "model": agent.get("model_name"), "schema_version": trajectory.get("schema_version")},
    )


def _load(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(path, f"not readable as JSON: {exc}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("steps"), list):
        raise FormatError(path, "no `steps` list: not an ATIF trajectory")
    return obj


def _row(path: Path, run_id: str, transcript: Transcript) -> FailureRow:
    stat, resolved = path.stat(), str(path.resolve())
    first = next((s.timestamp for s in transcript.steps if s.timestamp is not None), None)
    return FailureRow(
        run_id=str(transcript.metadata["run_id"] or run_id),
        timestamp=datetime.fromtimestamp(first, tz=UTC).isoformat() if first is not None else None,
        benchmark_name=transcript.metadata["benchmark_name"], suite=None, generator=transcript.metadata["generator"],
        attempt_number=None, error_type=regex_tags_json(None), raw_error=None, explanation=None, trace_log_path=resolved,
        trace_offset=stable_key(resolved),
        trace_length=stat.st_size, trace_line=0, attempt_index=-1, trace_file_size=stat.st_size,
        trace_file_mtime=stat.st_mtime, event_kind="trajectory", case_id=None,
        result=transcript.outcome.result or "failed", format=NAME, trace_ref=resolved,
    )


def failures(path: Path, run_id: str, resume: Progress | None = None, *, all_failed: bool = False,
             score_threshold: float = 1.0) -> Iterator[FailureRow | CaseRow | IngestIssue | Progress]:
    """A row for the trajectory when it failed (by its own verdict, or `all_failed`), its case when
    the outcome is known, then a finished Progress: trajectories are written whole."""
    if resume is not None and resume.finished:
        yield resume
        return
    try:
        trajectory = _load(path)
        transcript = to_transcript(trajectory, path)
    except FormatError as exc:
        yield IngestIssue(path=exc.path, message=f"{exc.record}: {exc.reason}" if exc.record else exc.reason)
        yield Progress(finished=True)
        return
    said = verdict(trajectory, score_threshold)
    failed = all_failed or bool(said and said[0])
    if failed:
        yield _row(path, run_id, transcript)
    if said is not None or all_failed:
        meta = transcript.metadata
        yield CaseRow(run_id=str(meta["run_id"] or run_id), case_key=meta["benchmark_name"],
                      generator=meta["generator"] or "", benchmark_name=meta["benchmark_name"], suite=None,
                      result=said[1] if said else "failed", passed=not failed, attempts=None, format=NAME)
    yield Progress(finished=True)


def _path(row: Mapping[str, Any], runs_dir: str | Path | None) -> Path:
    return whole_file(row, runs_dir, "ATIF trajectory")


def read(row: Mapping[str, Any], *, runs_dir: str | Path | None = None) -> Transcript:
    """The trajectory a row names (its trace_ref), read back whole."""
    path = _path(row, runs_dir)
    return to_transcript(_load(path), path)


def locate(row: Mapping[str, Any], *, runs_dir: str | Path | None = None) -> FailureRow:
    """The row as ingest would write it for the trajectory it names."""
    path = _path(row, runs_dir)
    return _row(path, str(row.get("run_id")), to_transcript(_load(path), path))


class _Atif:
    name = NAME
    detect = staticmethod(detect)
    failures = staticmethod(failures)
    read = staticmethod(read)
    locate = staticmethod(locate)


ADAPTER = _Atif()
