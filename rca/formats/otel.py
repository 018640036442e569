"""OpenTelemetry traces of agents: OTLP JSON files and span-tree exports, OpenInference or GenAI attributes.

One trace id is one transcript and one failure row. Files: OTLP JSON as the exporters write it
(one `{"resourceSpans": ...}` per file, or one per line), or span trees (`trace_id`, `spans[]`
with `child_spans`), read by rca.formats._otel_spans; spans become steps in rca.formats._otel_steps.

A trace is a failure when it says so: a span with status ERROR (the root or any other), an
`exception` event, or an eval/score attribute (or `gen_ai.evaluation.result` event) whose value
is false, 0 or a word such as "incorrect" / "fail". Other traces are not ingested unless
`all_failed=True` (`rca ingest --all-failed`): for traces of runs known to have failed.

Row mapping:
- case_id: the trace id (hex); benchmark_name: `<root span name>:<first 8 hex of the trace id>`;
- suite: the service (`service.name`); generator: the topmost agent (`gen_ai.agent.name`,
  `agent.name`, or the AGENT span's name), else the first model (`llm.model_name`,
  `gen_ai.request.model`); timestamp: the trace's first span start; run_id: what ingest gives;
- result: ERROR (a span's status), else exception, else incorrect, else the root span's status;
  raw_error: the failure texts (status messages, `exception.type: exception.message`, evals);
- trace_offset: a digest of the file's folder and name and the trace id (attempt_index -1), so
  re-ingest finds the same key, and files of the same name in two folders (both ingested under
  that name as run) do not collide; trace_line: the line of its first span; trace_ref: JSON of
  the file path, the trace id and the byte ranges of the lines that hold its spans (none for a
  one-object file, read back by streaming it again).

Memory grows with the traces open at once, not with the file: a trace is kept as the compact
row data above (service, names, up to five error texts, its line ranges), never its spans, and
is closed once its root span has been read and GRACE_SPANS spans of other traces have passed
(ORPHAN_GRACE spans for a trace whose root never comes: its root lives in a service that
exports elsewhere); the ids of the last REMEMBERED closed traces are kept to report a span that
comes after that. A file that is one object is streamed the same way.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rca.baseline import regex_tags_json
from rca.errors import TraceNotFound
from rca.formats import IngestIssue, Progress
from rca.formats._otel_spans import Kind, Record, Span, SpanProblem, head, kind_of, one_object, records, spans
from rca.formats.chat import stable_key
from rca.formats._otel_steps import agent_name, failures_of, model_name, passed_eval, span_kind, walk, worst
from rca.formats.harness.records import iter_records
from rca.store import CaseRow, FailureRow
from rca.transcript import Outcome, Transcript, number_steps

NAME = "otel"
GRACE_SPANS = 10_000
ORPHAN_GRACE = 10 * GRACE_SPANS
REMEMBERED = 100_000
MAX_ERRORS = 5
MAX_ERROR_CHARS = 2_000
_SWEEP_EVERY = 1_000  # spans between looks for traces to close


@dataclass(slots=True)
class _Trace:
    """What a failure row needs of one trace, gathered while its spans stream past."""

    trace_id: str
    offset: int
    line: int
    ranges: list[list[int]] = field(default_factory=list)
    seen: int = 0  # spans read (of any trace) when it was last met
    rooted: bool = False
    name: str = ""
    status: str = "UNSET"
    service: str | None = None
    agent: str | None = None
    agent_start: int = 0
    model: str | None = None
    start: int = 0
    result: str | None = None
    passed: bool = False  # an eval says the answer was right
    errors: list[str] = field(default_factory=list)

    def idle(self, seen: int) -> bool:
        """Done, as far as can be told: no span of it for a while after its root (or for much longer)."""
        return seen - self.seen >= (GRACE_SPANS if self.rooted else ORPHAN_GRACE)

    def add(self, span: Span, record: Record, whole: bool, seen: int) -> None:
        self.seen = seen
        if not whole:
            last = self.ranges[-1] if self.ranges else None
            if last is not None and last[0] + last[1] == record.offset:
                last[1] += record.length
            elif last is None or last[0] != record.offset:
                self.ranges.append([record.offset, record.length])
        if span.parent_id is None:
            self.rooted, self.name, self.status = True, span.name, span.status
        if span.start and (not self.start or span.start < self.start):
            self.start = span.start
        self.service = self.service or span.service
        self.model = self.model or model_name(span)
        if span_kind(span) == "AGENT" and (self.agent is None or span.start < self.agent_start):
            self.agent, self.agent_start = agent_name(span), span.start
        self.passed = self.passed or passed_eval(span)
        for result, text in failures_of(span):
            self.result = worst([result, self.result] if self.result else [result])
            if len(self.errors) < MAX_ERRORS and (text := text[:MAX_ERROR_CHARS]) not in self.errors:
                self.errors.append(text)


def _files(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")) if path.is_dir() else [path]


def detect(path: Path) -> bool:
    """OTLP JSON (`resourceSpans`) or a span tree (`trace_id`, `span_id`, `span_attributes`/`child_spans`) in the first 64 KiB."""
    return any(kind_of(head(file)) is not None for file in _files(path))


def failures(path: Path, run_id: str, resume: Progress | None = None, *, all_failed: bool = False
             ) -> Iterator[FailureRow | CaseRow | IngestIssue | Progress]:
    """A row per failed trace (per trace with `all_failed`), with an issue per unreadable line or span, and a
    CaseRow per trace whose outcome is known (failed, or an eval says it passed)."""
    if resume is not None and resume.finished:
        yield resume
        return
    for file in _files(path):
        yield from _file_failures(file, run_id, all_failed)
    yield Progress(finished=True)


def _file_failures(path: Path, run_id: str, all_failed: bool) -> Iterator[FailureRow | CaseRow | IngestIssue]:
    start = head(path)
    kind = kind_of(start)
    if kind is None:
        yield IngestIssue(path=str(path), message="neither OTLP JSON (resourceSpans) nor a span tree (trace_id, spans)")
        return
    whole = one_object(start)
    stat = path.stat()
    traces: dict[str, _Trace] = {}
    closed: OrderedDict[str, None] = OrderedDict()
    seen = swept = 0

    def close(done: list[_Trace]) -> Iterator[FailureRow | CaseRow]:
        for t in sorted(done, key=lambda t: t.offset):
            del traces[t.trace_id]
            closed[t.trace_id] = None
            if len(closed) > REMEMBERED:
                closed.popitem(last=False)
            if t.result or all_failed or t.passed:
                row = _row(t, path, run_id, kind, whole, stat.st_size, stat.st_mtime)
                failed = bool(t.result) or all_failed
                if failed:
                    yield row
                yield CaseRow(run_id=run_id, case_key=t.trace_id, generator=row.generator or "",
                              benchmark_name=row.benchmark_name, suite=row.suite, result=row.result, passed=not failed,
                              attempts=None, format=NAME)

    for record in records(path, whole):
        for item in spans(record, kind):
            if isinstance(item, SpanProblem):
                where = f"span {item.span_id}: " if item.span_id else ""
                yield IngestIssue(path=str(path), line=record.line, message=f"{where}{item.message}")
                continue
            seen += 1
            trace = traces.get(item.trace_id)
            if trace is None and item.trace_id in closed:
                yield IngestIssue(path=str(path), line=record.line, message=(
                    f"span {item.span_id} of trace {item.trace_id} comes after its trace was closed "
                    "(too many spans of others since its last one); not part of its row"))
                continue
            if trace is None:
                trace = traces[item.trace_id] = _Trace(item.trace_id, record.offset, record.line)
            trace.add(item, record, whole, seen)
            if whole and seen - swept >= _SWEEP_EVERY:
                swept = seen
                yield from close([t for t in traces.values() if t.idle(seen)])
        if not whole and seen - swept >= _SWEEP_EVERY:
            swept = seen
            yield from close([t for t in traces.values() if t.idle(seen)])
    yield from close(list(traces.values()))


def _row(t: _Trace, path: Path, run_id: str, kind: Kind, whole: bool, size: int, mtime: float) -> FailureRow:
    raw_error = "\n".join(t.errors) or None
    ref = {"path": str(path.resolve()), "trace_id": t.trace_id, "kind": kind, "ranges": None if whole else t.ranges}
    return FailureRow(
        run_id=run_id, timestamp=datetime.fromtimestamp(t.start / 1e9, tz=UTC).isoformat() if t.start else None,
        benchmark_name=f"{t.name or 'trace'}:{t.trace_id[:8]}", suite=t.service, generator=t.agent or t.model,
        attempt_number=None, error_type=regex_tags_json(raw_error), raw_error=raw_error, explanation=None,
        trace_log_path=str(path.resolve()), trace_offset=stable_key(f"{path.parent.name}/{path.name}#{t.trace_id}"),
        trace_length=size if whole else sum(length for _, length in t.ranges), trace_line=t.line,
        attempt_index=-1, trace_file_size=size, trace_file_mtime=mtime, event_kind=kind, case_id=t.trace_id,
        result=t.result or t.status, format=NAME, trace_ref=json.dumps(ref, separators=(",", ":")))


def _ref(row: Mapping[str, Any]) -> dict[str, Any]:
    try:
        ref = json.loads(str(row.get("trace_ref") or ""))
        return ref if isinstance(ref, dict) and ref.get("trace_id") else {}
    except ValueError:
        return {}


def _path(row: Mapping[str, Any], recorded: str, runs_dir: str | Path | None) -> Path:
    candidates = [Path(recorded)]
    if runs_dir is not None:
        candidates += [Path(runs_dir) / Path(recorded).name, Path(runs_dir) / str(row.get("run_id")) / Path(recorded).name]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise TraceNotFound(f"trace file of {row.get('benchmark_name')!r} not found: looked at "
                            f"{', '.join(map(str, candidates))}")
    return found


def _trace_spans(path: Path, ref: Mapping[str, Any]) -> list[Span]:
    """The spans of one trace: from the recorded line ranges, else by streaming the whole file again."""
    kind = ref.get("kind") if ref.get("kind") in ("otlp", "span_tree") else kind_of(head(path)) or "otlp"
    if ref.get("ranges"):
        found = (record for offset, length in ref["ranges"]
                 for record in _until(iter_records(path, start=offset), offset + length))
    else:
        found = records(path, one_object(head(path)))
    return [s for record in found for s in spans(record, kind)
            if isinstance(s, Span) and s.trace_id == ref["trace_id"]]


def _until(items: Iterator[Record], end: int) -> Iterator[Record]:
    for record in items:
        if record.offset >= end:
            return
        yield record


def read(row: Mapping[str, Any], *, runs_dir: str | Path | None = None) -> Transcript:
    """The trace a row names (file and trace id in its trace_ref), read back from its lines."""
    ref = _ref(row)
    if not ref:
        raise TraceNotFound(f"row of {row.get('benchmark_name')!r} has no OpenTelemetry trace reference")
    path = _path(row, str(ref.get("path") or row.get("trace_log_path") or ""), runs_dir)
    found = _trace_spans(path, ref)
    if not found:
        raise TraceNotFound(f"trace {ref['trace_id']} is no longer in {path} (the file changed since ingest)")
    task, steps, final = walk(found)
    signals = [signal for span in found for signal in failures_of(span)]
    errors = list(dict.fromkeys(text[:MAX_ERROR_CHARS] for _, text in signals))[:MAX_ERRORS]
    roots = [s for s in found if s.parent_id is None]
    return Transcript(
        format=NAME, ref=str(row.get("trace_ref")), task=task, steps=number_steps(steps), final_answer=final,
        outcome=Outcome(error="\n".join(errors) or None,
                        result=worst([result for result, _ in signals]) or (roots[0].status if roots else None)),
        metadata={**{k: row.get(k) for k in ("run_id", "case_id", "benchmark_name", "suite", "generator")},
                  "trace_id": ref["trace_id"]},
    )


def locate(row: Mapping[str, Any], *, runs_dir: str | Path | None = None) -> FailureRow:
    """The row as ingest would write it for the trace it names (its case_id) in its file."""
    path = _path(row, str(row.get("trace_log_path") or ""), runs_dir)
    for item in failures(path, str(row.get("run_id")), all_failed=True):
        if isinstance(item, FailureRow) and item.case_id == row.get("case_id"):
            return item
    raise TraceNotFound(f"trace {row.get('case_id')} not found in {path}")


class _Otel:
    name = NAME
    detect = staticmethod(detect)
    failures = staticmethod(failures)
    read = staticmethod(read)
    locate = staticmethod(locate)


ADAPTER = _Otel()
