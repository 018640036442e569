"""The benchmark harness's run folders: `<run_id>/trace.jsonl` or `trace.yaml`.

The contract is shared/docs/harness-format.md. A failure is a test_result whose result
is not "pass" (one row per failed attempt of it) or a generation_failure event. A row's
locator (path, byte offset and length, attempt index, file size and mtime) reads its
event back with one seek; when the file changed or moved, the file is scanned again and
the attempt found by what it is (kind, case, generator, attempt) rather than where it was.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rca.baseline import regex_tags_json
from rca.errors import FormatError, TraceNotFound
from rca.formats import IngestIssue, Progress, missing
from rca.formats._text import compact_json
from rca.formats.harness.events import first_user_message, mark_final_answer, trace_steps
from rca.formats.harness.records import Record, decode, find_trace_file, iter_records, parse_record, parse_text, read_record_at
from rca.store import CaseRow, FailureRow
from rca.transcript import Outcome, Transcript, number_steps

NAME = "harness"
GENERATOR_PREFIXES = ("Generator: ", "Agent: ")
EXPLANATION_CHARS = 300
TASK_FIELDS = ("prompt", "instructions", "task", "question", "description")


def _value(row: Mapping[str, Any], key: str) -> Any:
    value = row.get(key)
    return None if missing(value) else value


def _ref(run_id: str, record: Record, kind: str, attempt_index: int) -> str:
    return f"{run_id}/{record.path.name}:{record.line}:{kind}:{attempt_index}"


# -- listing failures -------------------------------------------------------------------


def failures(path: Path, run_id: str, resume: Progress | None = None) -> Iterator[FailureRow | IngestIssue | Progress]:
    """The failed attempts of one run file (or folder), in file order, with any issues met on the
    way, then the Progress to resume from. A run is finished once its run_end has been read."""
    if path.is_dir():
        found = find_trace_file(path)
        if found is None:
            yield IngestIssue(path=str(path), message="no trace.jsonl or trace.yaml in run folder")
            return
        path = found
    stat = path.stat()
    progress = resume or Progress()
    sections: list[str] = list(progress.state.get("sections", []))
    finished = False
    for record in iter_records(path, start=progress.offset, line=progress.line):
        before = list(sections)
        try:
            items, kind = _record_failures(record, run_id, sections, stat.st_size, stat.st_mtime)
            yield from items
            finished = finished or kind == "run_end"
        except Exception as exc:  # one odd record must not stop the run: say which and go on
            yield IngestIssue(path=str(path), line=record.line, message=f"record skipped: {type(exc).__name__}: {exc}")
        progress = Progress(offset=record.next_offset, line=record.next_line,
                            state={"sections": sections if record.complete else before})
        if not record.complete:
            sections = before
    yield progress.model_copy(update={"finished": finished})


def _record_failures(record: Record, run_id: str, sections: list[str], size: int, mtime: float
                     ) -> tuple[list[FailureRow | CaseRow | IngestIssue], str | None]:
    """The rows and issues of one record, and its event type; keeps `sections` up to date."""
    path = record.path
    text, replaced = decode(record)
    try:
        event, surrogates = parse_text(record, text)
    except FormatError as exc:
        return [IngestIssue(path=exc.path, line=exc.line, message=exc.reason)], None
    out: list[FailureRow | CaseRow | IngestIssue] = []
    if replaced:
        out.append(IngestIssue(path=str(path), line=record.line, message="invalid UTF-8 bytes replaced with U+FFFD"))
    if surrogates:
        out.append(IngestIssue(path=str(path), line=record.line, message="lone surrogates replaced with U+FFFD"))
    kind = event.get("event_type")
    data = event.get("data") or {}
    if kind == "section_start":
        sections.append(str(data.get("name") or ""))
    elif kind == "section_end" and sections:
        sections.pop()
    elif kind in ("test_result", "generation_failure"):
        if not data.get("benchmark_name"):
            out.append(IngestIssue(path=str(path), line=record.line, message=f"{kind} without benchmark_name; skipped"))
            return out, kind
        context = _Context(run_id, record, event, _generator(sections), size, mtime)
        if kind == "generation_failure":
            out.append(context.row(attempt_error(data, -1), attempt_index=-1, attempt_number=None))
        elif str(data.get("result", "")).lower() != "pass":
            out.extend(_test_result_failures(context, data))
        out.append(context.case())
        out.extend(IngestIssue(path=str(path), line=record.line, message=m) for m in dict.fromkeys(context.problems))
    return out, kind if isinstance(kind, str) else None


def _generator(sections: list[str]) -> str | None:
    for name in reversed(sections):
        for prefix in GENERATOR_PREFIXES:
            if name.startswith(prefix):
                return name[len(prefix):].strip() or None
    return None


def attempt_error(data: Mapping[str, Any], index: int) -> Any:
    """The error of one attempt: its own message, else the case's validation error.

    A final attempt that generated fine still failed the case: its answer did not validate.
    """
    if index < 0:
        return data.get("validation_error") or data.get("error_message")
    attempt = data["generation_attempts"][index]
    succeeded = str(attempt.get("status", "")).lower() == "success"
    return data.get("validation_error") if succeeded else (attempt.get("error_message") or data.get("validation_error"))


def _test_result_failures(context: _Context, data: dict[str, Any]) -> Iterator[FailureRow | IngestIssue]:
    """Each failed attempt of a failed case; older files without attempts give one row."""
    attempts = data.get("generation_attempts")
    if not isinstance(attempts, list) or not attempts:
        yield context.row(attempt_error(data, -1), attempt_index=-1, attempt_number=None)
        return
    last = len(attempts) - 1
    for index, attempt in enumerate(attempts):
        if not isinstance(attempt, dict):
            yield IngestIssue(path=str(context.record.path), line=context.record.line,
                              message=f"generation_attempts[{index}] is not an object; skipped")
            continue
        if str(attempt.get("status", "")).lower() == "success" and index != last:
            continue
        number = attempt.get("attempt_number")
        yield context.row(attempt_error(data, index), attempt_index=index,
                          attempt_number=number if isinstance(number, int) else index + 1)


class _Context:
    """What every row of one event shares; values it had to coerce are noted in `problems`."""

    def __init__(self, run_id: str, record: Record, event: dict[str, Any], generator: str | None,
                 size: int, mtime: float) -> None:
        self.run_id, self.record, self.event, self.generator = run_id, record, event, generator
        self.size, self.mtime = size, mtime
        self.problems: list[str] = []

    def row(self, error: object, *, attempt_index: int, attempt_number: int | None) -> FailureRow:
        data = self.event.get("data") or {}
        text = error if isinstance(error, str) or error is None else str(error)
        kind = str(self.event.get("event_type"))
        result = data.get("result") if kind == "test_result" else None
        if result is not None and not isinstance(result, str):
            self.problems.append(f"result is a {type(result).__name__}, not a string; stored as text")
            result = compact_json(result)
        if attempt_number is not None and not -(2**63) <= attempt_number < 2**63:
            self.problems.append(f"attempt_number {attempt_number} is out of range; stored as NULL")
            attempt_number = None
        return FailureRow(
            run_id=self.run_id, timestamp=self._iso(self.event.get("timestamp")),
            benchmark_name=str(data["benchmark_name"]), suite=_suite(data), generator=self.generator,
            attempt_number=attempt_number, error_type=regex_tags_json(text), raw_error=text,
            explanation=text[:EXPLANATION_CHARS] if text else text,
            trace_log_path=str(self.record.path.resolve()), trace_offset=self.record.offset,
            trace_length=self.record.length, trace_line=self.record.line, attempt_index=attempt_index,
            trace_file_size=self.size, trace_file_mtime=self.mtime, event_kind=kind,
            case_id=str(data["id"]) if data.get("id") is not None else None, result=result,
            format=NAME, trace_ref=_ref(self.run_id, self.record, kind, attempt_index),
        )

    def case(self) -> CaseRow:
        """The case this event reports, passed or failed: failure rates are counted from these."""
        data = self.event.get("data") or {}
        kind = str(self.event.get("event_type"))
        result = data.get("result") if kind == "test_result" else kind
        attempts = data.get("generation_attempts")
        return CaseRow(
            run_id=self.run_id, case_key=str(data["id"] if data.get("id") is not None else data["benchmark_name"]),
            generator=self.generator or "", benchmark_name=str(data["benchmark_name"]), suite=_suite(data),
            result=result if isinstance(result, str) or result is None else compact_json(result),
            passed=str(result).lower() == "pass", attempts=len(attempts) if isinstance(attempts, list) else None,
            format=NAME)

    def _iso(self, timestamp: object) -> str | None:
        if isinstance(timestamp, (int, float)) and not isinstance(timestamp, bool):
            try:
                return datetime.fromtimestamp(timestamp, tz=UTC).isoformat()
            except (OverflowError, OSError, ValueError):
                self.problems.append(f"timestamp {timestamp!r} is not a time; stored as NULL")
                return None
        return str(timestamp) if timestamp is not None else None


def _suite(data: Mapping[str, Any]) -> str | None:
    """The suite; older files only name it as answer_data.benchmark_type."""
    if data.get("suite"):
        return str(data["suite"])
    answer = data.get("answer_data")
    if isinstance(answer, dict) and answer.get("benchmark_type"):
        return str(answer["benchmark_type"])
    return None


# -- reading one failure back -----------------------------------------------------------


def read(row: Mapping[str, Any], *, runs_dir: str | Path | None = None) -> Transcript:
    """The transcript of exactly the attempt this failures row describes.

    `runs_dir` is where to look for `<run_id>/trace.*` when the stored path no longer exists,
    or when the row was written by the harness itself and has no locator.
    """
    path = _trace_path(row, runs_dir)
    event = _read_at(path, row) if _unchanged(path, row) else None
    if event is None:
        found = _rescan(path, row)
        event = parse_record(read_record_at(path, found.trace_offset, found.trace_length, found.trace_line))
    return to_transcript(event, row)


def locate(row: Mapping[str, Any], *, runs_dir: str | Path | None = None) -> FailureRow:
    """The row as rca would have ingested it, found in its run file: the locator a row written by
    the harness itself lacks. Raises TraceNotFound saying where it looked."""
    return _rescan(_trace_path(row, runs_dir), row)


def _trace_path(row: Mapping[str, Any], runs_dir: str | Path | None) -> Path:
    stored = _value(row, "trace_log_path")
    if stored and Path(stored).is_file():
        return Path(stored)
    folder = Path(runs_dir) / str(row["run_id"]) if runs_dir is not None else None
    if folder is not None and (found := find_trace_file(folder)) is not None:
        return found
    where = [f"{stored} (recorded path, missing)" if stored else "no trace path recorded"]
    where.append(f"{folder}/trace.jsonl or trace.yaml (missing)" if folder is not None else
                 "no runs folder given (runs_dir=, --runs-dir)")
    raise TraceNotFound(f"trace of failure {_value(row, 'id')} (run {row.get('run_id')}, "
                        f"{row.get('benchmark_name')!r}) not found: looked at {'; '.join(where)}")


def _unchanged(path: Path, row: Mapping[str, Any]) -> bool:
    if _value(row, "trace_offset") is None or str(path) != _value(row, "trace_log_path"):
        return False
    stat = path.stat()
    return stat.st_size == _value(row, "trace_file_size") and stat.st_mtime == _value(row, "trace_file_mtime")


def _read_at(path: Path, row: Mapping[str, Any]) -> dict[str, Any] | None:
    record = read_record_at(path, int(row["trace_offset"]), int(row["trace_length"]), int(row.get("trace_line") or 0))
    try:
        event = parse_record(record)
    except FormatError:
        return None
    same = (event.get("data") or {}).get("benchmark_name") == row.get("benchmark_name")
    return event if same and event.get("event_type") == row.get("event_kind") else None


_IDENTITY = ("event_kind", "benchmark_name", "case_id", "generator", "attempt_index")
_HARNESS_IDENTITY = ("benchmark_name", "attempt_number", "generator", "suite")  # what the harness's own rows have


def _matches(item: FailureRow, row: Mapping[str, Any]) -> bool:
    """The same attempt: by rca's identity when the row has it, else by what a harness row knows."""
    if _value(row, "event_kind") is not None:
        return all(getattr(item, k) == _value(row, k) for k in _IDENTITY)
    if item.attempt_number is None and _value(row, "attempt_number") not in (None, 0, 1):
        return False  # a case without attempts is its own first attempt, however the harness numbered it
    keys = [k for k in _HARNESS_IDENTITY if _value(row, k) is not None or k == "benchmark_name"]
    return all(getattr(item, k) == _value(row, k) for k in keys if item.attempt_number is not None or k != "attempt_number")


def _rescan(path: Path, row: Mapping[str, Any]) -> FailureRow:
    candidates = [item for item in failures(path, str(row["run_id"]))
                  if isinstance(item, FailureRow) and _matches(item, row)]
    if not candidates:
        raise TraceNotFound(f"{path}: no failed attempt {row.get('attempt_number')} of {row.get('benchmark_name')!r} "
                            f"matches failure {_value(row, 'id')}")
    same_error = [item for item in candidates if item.raw_error == _value(row, "raw_error")]
    return (same_error or candidates)[0]


def attempt_events(data: Mapping[str, Any], attempt_index: int) -> list[Any]:
    """The attempt's own trace_logs; the final attempt falls back to data.trace_logs."""
    attempts = data.get("generation_attempts")
    logs: Any = None
    if attempt_index >= 0 and isinstance(attempts, list) and attempt_index < len(attempts):
        attempt = attempts[attempt_index]
        logs = attempt.get("trace_logs") if isinstance(attempt, dict) else None
        if logs is None and attempt_index == len(attempts) - 1:
            logs = data.get("trace_logs")
    elif attempt_index < 0:
        logs = data.get("trace_logs")
    return list(logs) if isinstance(logs, list) else []


def _answer(data: Mapping[str, Any], attempt_index: int) -> Any:
    """The attempt's final answer: its own answer (and rationale), else the case's answer_data."""
    attempts = data.get("generation_attempts")
    if attempt_index >= 0 and isinstance(attempts, list) and attempt_index < len(attempts):
        attempt = attempts[attempt_index] if isinstance(attempts[attempt_index], dict) else {}
        answer, rationale = attempt.get("answer"), attempt.get("rationale")
        if isinstance(answer, dict):
            return answer if rationale is None or "rationale" in answer else {"rationale": rationale, **answer}
        if answer is not None or rationale is not None:
            return {k: v for k, v in (("rationale", rationale), ("answer", answer)) if v is not None}
        if attempt_index != len(attempts) - 1:
            return None
    return data.get("answer_data") or None


def _task(data: Mapping[str, Any], steps: list[dict[str, Any]]) -> str:
    """What the agent was asked: a field of the event, else the trace's first user message,
    else at least the case's name."""
    for key in TASK_FIELDS:
        if isinstance(data.get(key), str) and data[key].strip():
            return str(data[key])
    if (first := first_user_message(steps)) is not None:
        return first
    suite = _suite(data)
    return f"Benchmark case: {data.get('benchmark_name')}" + (f" (suite {suite})" if suite else "")


def to_transcript(event: Mapping[str, Any], row: Mapping[str, Any]) -> Transcript:
    """One attempt of a harness event (test_result or generation_failure) as a Transcript."""
    data = event.get("data") or {}
    stored = _value(row, "attempt_index")
    index = int(stored) if stored is not None else -1
    steps = trace_steps(attempt_events(data, index))
    final = mark_final_answer(steps, _answer(data, index))
    task = _task(data, steps)
    attempts = data.get("generation_attempts")
    error = attempt_error(data, index) if index < 0 or isinstance(attempts, list) else _value(row, "raw_error")
    metadata = {k: _value(row, k) for k in ("run_id", "benchmark_name", "case_id", "suite", "generator", "attempt_number")}
    return Transcript(
        format=NAME, ref=_value(row, "trace_ref") or f"{row.get('run_id')}:{row.get('benchmark_name')}:{index}",
        task=task, steps=number_steps(steps), final_answer=final,
        outcome=Outcome(error=None if error is None else str(error),
                        result=str(data["result"]) if data.get("result") is not None else None),
        metadata=metadata,
    )


def detect(path: Path) -> bool:
    """A run folder holding trace.jsonl / trace.yaml, or such a file itself."""
    return find_trace_file(path) is not None if path.is_dir() else path.name in ("trace.jsonl", "trace.yaml")


class _Harness:
    name = NAME
    detect = staticmethod(detect)
    failures = staticmethod(failures)
    read = staticmethod(read)
    locate = staticmethod(locate)


ADAPTER = _Harness()
