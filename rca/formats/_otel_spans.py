"""Spans out of OpenTelemetry files, streamed: OTLP JSON and nested span-tree exports.

Two shapes reach rca:
- OTLP JSON, an ExportTraceServiceRequest as the exporters encode it: `{"resourceSpans": [{"resource":
  {"attributes": [...]}, "scopeSpans": [{"scope": ..., "spans": [...]}]}]}`. Ids come hex (the OTLP
  spec, the collector's file exporter) or base64 (protobuf's JSON mapping, MessageToJson); enums as
  names or numbers; 64-bit integers as strings.
- span trees, as trace stores export one trace: `{"trace_id", "spans": [{span_id, parent_span_id,
  span_name, timestamp, duration, span_attributes, status_code, events, child_spans: [...]}]}`.

A file is one such object (pretty-printed or not) or one per line (JSON lines). A line is parsed
whole up to MAX_RECORD_BYTES; a longer line, or a file that is one object, is streamed with ijson,
so no file is held whole whatever its size. Every span comes out flat as a Span, or as a
SpanProblem saying what is wrong with it: one broken span never hides the others.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

import ijson

from rca.formats.harness.records import Record, iter_records

HEAD_BYTES = 64 << 10
Kind = Literal["otlp", "span_tree"]
_SPANS_AT = "resourceSpans.item.scopeSpans.item.spans.item"
_RESOURCE_AT = "resourceSpans.item.resource"
_HEX_ID = re.compile(r"[0-9a-fA-F]{16}(?:[0-9a-fA-F]{16})?")
_DURATION = re.compile(r"P(?:(\d+)D)?T?(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?")
_STATUS = {"2": "ERROR", "STATUS_CODE_ERROR": "ERROR", "ERROR": "ERROR",
           "1": "OK", "STATUS_CODE_OK": "OK", "OK": "OK"}


@dataclass(slots=True)
class Event:
    name: str
    time: int  # ns since the epoch, 0 when unknown
    attrs: dict[str, Any]


@dataclass(slots=True)
class Span:
    """One span, whichever shape it came in; times in ns since the epoch (0 when unknown)."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    start: int
    end: int
    attrs: dict[str, Any]
    status: str  # ERROR, OK or UNSET
    message: str  # the status message
    events: list[Event]
    service: str | None


@dataclass(slots=True)
class SpanProblem:
    """A span (or a stretch of a file) that cannot be read: which span, when it has an id, and why."""

    span_id: str | None
    message: str


def head(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(HEAD_BYTES).lstrip(b"\xef\xbb\xbf \t\r\n")


def kind_of(start: bytes) -> Kind | None:
    """What a file (its first bytes) or a line holds: OTLP JSON, a span tree, or neither."""
    if not start.startswith(b"{"):
        return None
    if b'"resourceSpans"' in start:
        return "otlp"
    if b'"trace_id"' in start and b'"span_id"' in start and (b'"span_attributes"' in start or b'"child_spans"' in start):
        return "span_tree"
    return None


def one_object(start: bytes) -> bool:
    """A pretty-printed object (a first line that is no JSON value of its own), not JSON lines."""
    lines = [line for line in start.split(b"\n")[:3] if line.strip()]
    if len(lines) < 2 or not start.count(b"\n"):
        return False  # one line (perhaps longer than the head): JSON lines of one line
    return not any(_parses(line) for line in lines[:2])


def _parses(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def records(path: Path, whole: bool) -> Iterator[Record]:
    """The file's records: each line, or the whole file as one record to stream (`raw` empty)."""
    if whole:
        size = path.stat().st_size
        yield Record(path, 1, 0, b"", oversize=size, next_offset=size)
    else:
        yield from iter_records(path)


def spans(record: Record, kind: Kind) -> Iterator[Span | SpanProblem]:
    """The spans of one record: parsed whole when it was read, streamed from the file when it was too large."""
    if not record.raw:
        with record.path.open("rb") as f:
            f.seek(record.offset)
            yield from _stream(_Slice(f, record.length), kind)
        return
    try:
        obj = json.loads(record.raw)
    except ValueError as exc:
        why = "truncated last line" if record.truncated else f"malformed JSON line: {exc}"
        yield SpanProblem(None, why)
        return
    except RecursionError:
        yield SpanProblem(None, "nested too deeply to read")
        return
    if not isinstance(obj, dict):
        yield SpanProblem(None, "not a JSON object")
    elif "resourceSpans" in obj:
        yield from _otlp_request(obj)
    elif isinstance(obj.get("spans"), list):
        yield from _tree(obj["spans"], obj.get("trace_id"))
    else:
        yield SpanProblem(None, "neither OTLP JSON (resourceSpans) nor a span tree (trace_id, spans)")


class _Slice:
    """`length` bytes of a file from where it stands: what ijson reads of one record."""

    def __init__(self, f: IO[bytes], length: int) -> None:
        self.f, self.left = f, length

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(self.left if n < 0 else min(n, self.left))
        self.left -= len(data)
        return data


def _stream(f: _Slice, kind: Kind) -> Iterator[Span | SpanProblem]:
    """The spans of a record too large to parse whole, one span object (or span tree) built at a time."""
    target = "spans.item" if kind == "span_tree" else _SPANS_AT
    service: str | None = None  # OTLP: the service of the resourceSpans item being read
    trace_id: str | None = None  # span tree: the top-level trace_id
    builder: ijson.ObjectBuilder | None = None
    building = ""
    try:
        for prefix, event, value in ijson.parse(f, use_float=True):
            if builder is not None:
                builder.event(event, value)
                if event == "end_map" and prefix == building:
                    if building == _RESOURCE_AT:
                        service = _service(builder.value)
                    elif kind == "span_tree":
                        yield from _tree([builder.value], trace_id)
                    else:
                        yield _otlp_span(builder.value, service)
                    builder = None
            elif event == "start_map" and (prefix == target or (prefix == _RESOURCE_AT and kind == "otlp")):
                builder, building = ijson.ObjectBuilder(), prefix
                builder.event(event, value)
            elif prefix == "resourceSpans.item" and event == "start_map":
                service = None
            elif prefix == "trace_id" and event == "string":
                trace_id = value
    except ijson.JSONError as exc:
        yield SpanProblem(None, f"malformed JSON, read up to here: {str(exc)[:200]}")


def _service(resource: Any) -> str | None:
    attrs = resource.get("attributes") if isinstance(resource, dict) else None
    found = _attrs(attrs).get("service.name") if isinstance(attrs, list) else None
    return str(found) if found is not None else None


def _otlp_request(obj: Mapping[str, Any]) -> Iterator[Span | SpanProblem]:
    for rs in obj.get("resourceSpans") or ():
        if not isinstance(rs, dict):
            yield SpanProblem(None, "a resourceSpans item that is not an object")
            continue
        service = _service(rs.get("resource"))
        for ss in rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or ():
            for raw in (ss.get("spans") or ()) if isinstance(ss, dict) else ():
                yield _otlp_span(raw, service)


def _otlp_span(raw: Any, service: str | None) -> Span | SpanProblem:
    sid = raw.get("spanId") if isinstance(raw, dict) else None
    try:
        status = raw.get("status") or {}
        return Span(
            trace_id=_id(raw.get("traceId")) or _missing("traceId"), span_id=_id(sid) or _missing("spanId"), parent_id=_id(raw.get("parentSpanId")) or None,
            name=str(raw.get("name") or ""), start=int(raw.get("startTimeUnixNano") or 0),
            end=int(raw.get("endTimeUnixNano") or 0), attrs=_attrs(raw.get("attributes")),
            status=_STATUS.get(str(status.get("code", "")), "UNSET"), message=str(status.get("message") or ""),
            events=[Event(str(e.get("name") or ""), int(e.get("timeUnixNano") or 0), _attrs(e.get("attributes")))
                    for e in raw.get("events") or ()],
            service=service)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return SpanProblem(_id(sid) if isinstance(sid, str) else None, _why(exc))


def _id(value: Any) -> str:
    """A trace or span id as lowercase hex, whether it came hex or base64 (empty for none or all zeros)."""
    if not value:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"id {value!r} is not a string")
    if _HEX_ID.fullmatch(value):
        return "" if not value.strip("0") else value.lower()
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return value  # another tool's own ids (a UUID, say): kept as they are
    return raw.hex() if len(raw) in (8, 16) else value


def _attrs(items: Any) -> dict[str, Any]:
    """OTLP's `[{key, value: {stringValue: ...}}]` as a plain dict."""
    return {a["key"]: _any(a.get("value")) for a in items} if items else {}


def _any(value: Any) -> Any:
    """One OTLP AnyValue as the Python value it holds."""
    if not isinstance(value, dict):
        return value
    for key, item in value.items():
        if key == "stringValue" or key == "boolValue":
            return item
        if key == "intValue":
            return int(item)
        if key == "doubleValue":
            return float(item)
        if key == "arrayValue":
            return [_any(v) for v in item.get("values") or ()]
        if key == "kvlistValue":
            return _attrs(item.get("values"))
        if key == "bytesValue":
            return base64.b64decode(item)
    return None


def _tree(tops: list[Any], trace_id: Any) -> Iterator[Span | SpanProblem]:
    """The spans of a span tree, each before its children."""
    stack = list(reversed(tops))
    while stack:
        raw = stack.pop()
        if not isinstance(raw, dict):
            yield SpanProblem(None, "a span that is not an object")
            continue
        yield _tree_span(raw, trace_id)
        children = raw.get("child_spans")
        stack.extend(reversed(children) if isinstance(children, list) else ())


def _tree_span(raw: dict[str, Any], trace_id: Any) -> Span | SpanProblem:
    sid = raw.get("span_id")
    try:
        start = _iso_ns(raw.get("timestamp"))
        resource = raw.get("resource_attributes") or {}
        attrs = raw.get("span_attributes") or {}
        return Span(
            trace_id=_id(raw.get("trace_id") or trace_id) or _missing("trace_id"), span_id=_id(sid) or _missing("span_id"),
            parent_id=_id(raw.get("parent_span_id")) or None, name=str(raw.get("span_name") or ""),
            start=start, end=start + _duration_ns(raw.get("duration")), attrs=dict(attrs),
            status=_STATUS.get(str(raw.get("status_code") or "").upper(), "UNSET"),
            message=str(raw.get("status_message") or ""),
            events=[_tree_event(e) for e in raw.get("events") or ()],
            service=raw.get("service_name") or resource.get("service.name"))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return SpanProblem(sid if isinstance(sid, str) else None, _why(exc))


def _missing(field: str) -> str:
    raise KeyError(field)


def _why(exc: Exception) -> str:
    return f"malformed span: no {exc.args[0]}" if isinstance(exc, KeyError) else f"malformed span: {exc}"


def _tree_event(raw: Mapping[str, Any]) -> Event:
    attrs = raw.get("attributes") or raw.get("Attributes") or {}
    return Event(str(raw.get("name") or raw.get("Name") or ""), _iso_ns(raw.get("timestamp") or raw.get("Timestamp")),
                 _attrs(attrs) if isinstance(attrs, list) else dict(attrs))


def _iso_ns(value: Any) -> int:
    if isinstance(value, (int, float)):
        return int(value)
    if not value:
        return 0
    when = datetime.fromisoformat(str(value))
    return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() * 1e9)


def _duration_ns(value: Any) -> int:
    """An ISO 8601 duration (`PT24.688187S`), or a number of ns."""
    if isinstance(value, (int, float)):
        return int(value)
    m = _DURATION.fullmatch(str(value or ""))
    if not m:
        return 0
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in m.groups())
    return int((((days * 24 + hours) * 60 + minutes) * 60 + seconds) * 1e9)
