"""Inspect AI eval logs (`.eval`, a zip of JSON, and `.json`): one transcript per sample and epoch.

Logs are read with inspect_ai's own reader (`read_eval_log`, `read_eval_log_sample`), so every
log version Inspect writes reads as Inspect reads it. It is an optional extra
(`pip install 'rca[inspect]'`): this module imports it only when a log is read, so
`import rca` and auto-detection never do, and without it a log is an issue that says how to
install it. The module is not named `inspect` so that it cannot shadow the standard library's.

Mapping: suite = the eval's task, generator = its model (its solver when it ran without one),
run_id = its run id, case_id = the sample id, attempt = the epoch. The steps are the sample's
messages (system, user, assistant with its reasoning and tool calls, tool results); its events
say who acted: an assistant message's agent is the agent, else the solver, whose span made the
model call that wrote it (else the message's model). The sample's error or limit ends the
steps; its scores and target go into metadata, and the scores' verdict is the outcome's error.

A sample fails when it ended in an error, or when any scorer gives it less than
`score_threshold` (default 1.0: anything below full marks) by Inspect's own value_to_float:
"C" 1, "P" 0.5, "I" and "N" 0, booleans, numbers, "yes"/"no"; a dict or list score is judged
value by value, as Inspect's reducers do. `all_failed=True` takes every sample as failed.

Rows: trace_ref names the log, the sample id and the epoch; read back with read_eval_log_sample,
which reads only that sample's member of a .eval. One run id covers every task and model of an
`inspect eval` call, so trace_offset is a digest of the eval id and the sample id: stable over
re-ingests and unique across the logs of a run, where a position inside a zip would be neither.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from rca.baseline import regex_tags_json
from rca.errors import FormatError, InputError, TraceNotFound
from rca.formats import IngestIssue, Progress
from rca.formats._text import output_failed, text_of
from rca.formats.chat import json_keys, stable_key
from rca.store import CaseRow, FailureRow
from rca.transcript import Outcome, Transcript, number_steps

if TYPE_CHECKING:
    from inspect_ai.log import EvalLog, EvalSample, EvalSampleSummary, EvalSpec

NAME = "inspect"
INSTALL = "reading Inspect AI logs needs the inspect_ai package: pip install 'rca[inspect]'"
EXPLANATION_CHARS = 300
_EVAL_MEMBERS = (b"_journal/", b"samples/", b"header.json", b"summaries.json", b"reductions.json")
_JSON_KEYS = frozenset({(1, b"status"), (1, b"eval"), (2, b"run_id")})  # an EvalLog's header, as depth and key
_GRADING_SPANS = frozenset({"scorers", "scorer"})  # a grader's model calls are not the agent's


def _reader() -> ModuleType:
    """inspect_ai.log, or an InputError that says how to install it."""
    try:
        import inspect_ai.log as log
    except ImportError:
        raise InputError(INSTALL) from None
    return log


def detect(path: Path) -> bool:
    """A zip whose first member is one Inspect writes (read from the local header), or a .json
    whose first 64 KiB show an eval log's header (status, eval, run id)."""
    if not path.is_file():
        return False
    with path.open("rb") as f:
        head = f.read(64 << 10)
    if head.startswith(b"PK\x03\x04") and len(head) >= 30:
        name_length = int.from_bytes(head[26:28], "little")
        return head[30:30 + name_length].startswith(_EVAL_MEMBERS)
    return path.suffix == ".json" and head.lstrip().startswith(b"{") and _JSON_KEYS <= set(json_keys(head))


def _values(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        return list(value.values())
    return list(value) if isinstance(value, (list, tuple)) else [value]


def sample_failed(scores: Mapping[str, Any] | None, error: object, threshold: float = 1.0) -> bool:
    """Ended in an error, or a scorer gave less than `threshold` (Inspect's value_to_float)."""
    if error:
        return True
    from inspect_ai.scorer import value_to_float

    to_float = value_to_float()
    return any(to_float(v) < threshold for score in (scores or {}).values() for v in _values(score.value))


def _result(sample: EvalSample | EvalSampleSummary) -> str | None:
    """The sample's own status word: "error", or its score values ("I"; "a=I, b=0.5" for several)."""
    if sample.error:
        return "error"
    scores = sample.scores or {}
    values = {name: score.value if isinstance(score.value, str) else text_of(score.value)
              for name, score in scores.items()}
    if len(values) == 1:
        return str(next(iter(values.values())))
    return ", ".join(f"{name}={value}" for name, value in values.items()) or None


def _verdict(sample: EvalSample) -> str | None:
    """What ended the sample or what its scorers said, as the error text the analyst reads."""
    parts = []
    if sample.error:
        parts.append(f"{sample.error.message}\n{sample.error.traceback}".strip())
    if sample.limit:
        parts.append(_limit_text(sample))
    for name, score in (sample.scores or {}).items():
        lines = [f"{name}: {text_of(score.value)}"]
        lines += [f"answer: {score.answer}"] if score.answer else []
        lines += [f"explanation: {score.explanation}"] if score.explanation else []
        parts.append("\n".join(lines))
    if sample.scores and sample.target:
        parts.append(f"target: {text_of(sample.target)}")
    return "\n\n".join(parts) or None


def _limit_text(sample: EvalSample) -> str:
    limit = sample.limit
    assert limit is not None
    reason = getattr(limit, "reason", None)  # inspect_ai 0.3.26x and later say why
    return f"{limit.type} limit of {limit.limit:g} reached" + (f": {reason}" if reason else "")


def _authors(sample: EvalSample) -> dict[str, str]:
    """Assistant message id -> the agent (else the solver) whose span made the model call that wrote it."""
    spans: dict[str, Any] = {}
    authors: dict[str, str] = {}
    for event in sample.events:
        if event.event == "span_begin":
            spans[event.id] = event
        elif event.event == "model" and event.output.choices:
            chain, span_id = [], event.span_id
            while span_id in spans and len(chain) < len(spans):  # parents, innermost first
                chain.append(spans[span_id])
                span_id = spans[span_id].parent_id
            if any(span.type in _GRADING_SPANS for span in chain):
                continue
            name = next((s.name for s in chain if s.type == "agent"), None) or \
                next((s.name for s in chain if s.type == "solver"), None)
            message_id = event.output.choices[0].message.id
            if name and message_id:
                authors[message_id] = name
    return authors


def _assistant_steps(message: Any, agent: str) -> list[dict[str, Any]]:
    parts = [message.content] if isinstance(message.content, str) else message.content
    steps: list[dict[str, Any]] = []
    base = {"agent": agent, "role": "assistant", "source_id": message.id}
    for part in parts:
        kind = "text" if isinstance(part, str) else part.type
        if kind == "text" and (text := part if isinstance(part, str) else part.text):
            steps.append({**base, "kind": "message", "text": text})
        elif kind == "reasoning" and (thought := part.summary or ("" if part.redacted else part.reasoning)):
            steps.append({**base, "kind": "thought", "text": thought})
        elif kind == "tool_use":  # a tool the provider ran itself (web search, code execution)
            steps.append({**base, "kind": "tool_call", "tool_name": part.name, "tool_args": part.arguments,
                          "call_id": part.id})
            steps.append({**base, "kind": "tool_result", "role": "tool", "tool_name": part.name, "call_id": part.id,
                          "text": part.error or text_of(part.result), "is_error": bool(part.error)})
    for call in message.tool_calls or []:
        steps.append({**base, "kind": "tool_call", "tool_name": call.function, "tool_args": call.arguments,
                      "call_id": call.id})
    return steps


def _steps(sample: EvalSample, model: str) -> list[dict[str, Any]]:
    authors = _authors(sample)
    caller: dict[str, str] = {}  # tool call id -> the agent that made the call
    steps: list[dict[str, Any]] = []
    for message in sample.messages:
        if message.role == "assistant":
            agent = authors.get(message.id or "") or message.model or model
            made = _assistant_steps(message, agent)
            caller.update((s["call_id"], agent) for s in made if s["kind"] == "tool_call")
            steps += made
        elif message.role == "tool":
            text = message.error.message if message.error else message.text
            steps.append({"kind": "tool_result", "role": "tool", "agent": caller.get(message.tool_call_id or ""),
                          "tool_name": message.function, "call_id": message.tool_call_id, "text": text,
                          "is_error": message.error is not None or output_failed(text, text), "source_id": message.id})
        else:
            steps.append({"kind": "system" if message.role == "system" else "message", "role": message.role,
                          "text": message.text, "source_id": message.id})
    last = sample.messages[-1] if sample.messages else None
    if last is not None and last.role == "assistant" and not last.tool_calls and steps and steps[-1]["kind"] == "message":
        steps[-1]["kind"] = "final_answer"  # the conversation ends in the agent's answer
    if sample.error:
        steps.append({"kind": "error", "text": f"{sample.error.message}\n{sample.error.traceback}".strip(),
                      "is_error": True})
    if sample.limit:
        steps.append({"kind": "error", "text": _limit_text(sample), "is_error": True})
    return steps


def _task(sample: EvalSample) -> str | None:
    if isinstance(sample.input, str):
        return sample.input or None
    return "\n\n".join(m.text for m in sample.input if m.role == "user" and m.text) or None


def _generator(spec: EvalSpec) -> str | None:
    return spec.model if spec.model and spec.model != "none/none" else spec.solver


def to_transcript(sample: EvalSample, header: EvalLog, ref: str) -> Transcript:
    """One sample (one epoch) as a Transcript."""
    spec = header.eval
    steps = _steps(sample, spec.model)
    final = sample.output.completion if sample.output and sample.output.completion else None
    if final is None and steps and steps[-1]["kind"] == "final_answer":
        final = steps[-1]["text"]
    return Transcript(
        format=NAME, ref=ref, task=_task(sample), steps=number_steps(steps), final_answer=final,
        outcome=Outcome(error=_verdict(sample), result=_result(sample)),
        metadata={"run_id": spec.run_id, "eval_id": spec.eval_id, "case_id": str(sample.id),
                  "benchmark_name": _case_name(spec, sample.id), "suite": spec.task, "generator": _generator(spec),
                  "attempt": sample.epoch, "model": spec.model, "target": sample.target,
                  "scores": {name: score.model_dump(include={"value", "answer", "explanation"}, exclude_none=True)
                             for name, score in (sample.scores or {}).items()}},
    )


def _case_name(spec: EvalSpec, sample_id: int | str) -> str:
    return f"{spec.task}/{sample_id}"


def _offset(spec: EvalSpec, sample_id: int | str) -> int:
    """The sample's key within its run (see the module docstring)."""
    return stable_key(json.dumps([spec.eval_id or f"{spec.task}\0{spec.model}", sample_id]))


def _ref(path: Path, sample_id: int | str, epoch: int) -> str:
    return json.dumps({"path": str(path.resolve()), "id": sample_id, "epoch": epoch})


def _row(path: Path, header: EvalLog, transcript: Transcript, sample: EvalSample) -> FailureRow:
    spec, stat = header.eval, path.stat()
    text = transcript.outcome.error
    started = getattr(sample, "started_at", None)  # inspect_ai < 0.3.1xx has no per-sample start
    return FailureRow(
        run_id=spec.run_id, timestamp=started or spec.created, benchmark_name=_case_name(spec, sample.id),
        suite=spec.task, generator=_generator(spec), attempt_number=sample.epoch, error_type=regex_tags_json(text),
        raw_error=text, explanation=text[:EXPLANATION_CHARS] if text else None, trace_log_path=str(path.resolve()),
        trace_offset=_offset(spec, sample.id), trace_length=stat.st_size, trace_line=0, attempt_index=sample.epoch - 1,
        trace_file_size=stat.st_size, trace_file_mtime=stat.st_mtime, event_kind="sample", case_id=str(sample.id),
        result=transcript.outcome.result, format=NAME, trace_ref=transcript.ref,
    )


def failures(path: Path, run_id: str, resume: Progress | None = None, *, all_failed: bool = False,
             score_threshold: float = 1.0) -> Iterator[FailureRow | CaseRow | IngestIssue | Progress]:
    """A row per failed sample and epoch, a case per sample, then a Progress: finished unless the
    eval is still running (read again whole next time: rows are unique on their keys).
    `run_id` is unused: the log names its own run."""
    if resume is not None and resume.finished:
        yield resume
        return
    try:
        log = _reader()
    except InputError as exc:
        yield IngestIssue(path=str(path), message=str(exc))
        yield Progress()  # not finished: read once inspect_ai is installed
        return
    try:
        header = log.read_eval_log(str(path), header_only=True)
        summaries = log.read_eval_log_sample_summaries(str(path))
    except Exception as exc:  # the reader's own errors (zip, JSON, schema) all mean one thing: a broken log
        yield IngestIssue(path=str(path), message=f"not readable as an Inspect AI log: {exc}")
        yield Progress(finished=True)
        return
    spec = header.eval
    outcomes: dict[int | str, list[tuple[bool, str | None]]] = {}
    for summary in summaries:
        failed = all_failed or sample_failed(summary.scores, summary.error, score_threshold)
        outcomes.setdefault(summary.id, []).append((failed, _result(summary)))
        if not failed:
            continue
        try:
            sample = log.read_eval_log_sample(str(path), id=summary.id, epoch=summary.epoch, resolve_attachments=True)
            transcript = to_transcript(sample, header, _ref(path, sample.id, sample.epoch))
        except Exception as exc:  # one broken sample: the others are still read
            yield IngestIssue(path=str(path), message=f"sample {summary.id} (epoch {summary.epoch}) "
                                                      f"cannot be read: {exc}")
            continue
        yield _row(path, header, transcript, sample)
    for sample_id, epochs in outcomes.items():
        failing = [result for failed, result in epochs if failed]
        yield CaseRow(run_id=spec.run_id, case_key=_case_name(spec, sample_id), generator=_generator(spec) or "",
                      benchmark_name=_case_name(spec, sample_id), suite=spec.task,
                      result=(failing or [result for _, result in epochs])[0], passed=not failing,
                      attempts=len(epochs), format=NAME)
    yield Progress(finished=header.status != "started")


def _locate(row: Mapping[str, Any], runs_dir: str | Path | None) -> tuple[Path, int | str, int]:
    try:
        ref = json.loads(str(row.get("trace_ref")))
        recorded, sample_id, epoch = Path(ref["path"]), ref["id"], int(ref["epoch"])
    except (ValueError, TypeError, KeyError):
        raise TraceNotFound(f"row of {row.get('benchmark_name')!r} has no Inspect sample reference "
                            f"(trace_ref {row.get('trace_ref')!r})") from None
    candidates = [recorded] + ([Path(runs_dir) / recorded.name] if runs_dir else [])
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise TraceNotFound(f"Inspect log of {row.get('benchmark_name')!r} not found: looked at "
                            f"{', '.join(map(str, candidates))}")
    return found, sample_id, epoch


def _read(path: Path, sample_id: int | str, epoch: int) -> tuple[EvalLog, EvalSample]:
    log = _reader()
    try:
        header = log.read_eval_log(str(path), header_only=True)
        sample = log.read_eval_log_sample(str(path), id=sample_id, epoch=epoch, resolve_attachments=True)
    except IndexError:
        raise TraceNotFound(f"{path}: no sample {sample_id!r} (epoch {epoch}) in this log") from None
    except Exception as exc:  # the reader's errors: the log or the sample is broken
        raise FormatError(path, f"not readable as an Inspect AI log: {exc}", record=f"sample {sample_id}") from None
    return header, sample


def read(row: Mapping[str, Any], *, runs_dir: str | Path | None = None) -> Transcript:
    """The sample and epoch a row names, read alone (with its header) from its log."""
    path, sample_id, epoch = _locate(row, runs_dir)
    header, sample = _read(path, sample_id, epoch)
    return to_transcript(sample, header, _ref(path, sample_id, epoch))


def locate(row: Mapping[str, Any], *, runs_dir: str | Path | None = None) -> FailureRow:
    """The row as ingest would write it for the sample it names."""
    path, sample_id, epoch = _locate(row, runs_dir)
    header, sample = _read(path, sample_id, epoch)
    return _row(path, header, to_transcript(sample, header, _ref(path, sample_id, epoch)), sample)


class _Inspect:
    name = NAME
    detect = staticmethod(detect)
    failures = staticmethod(failures)
    read = staticmethod(read)
    locate = staticmethod(locate)


ADAPTER = _Inspect()
