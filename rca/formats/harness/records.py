"""Streaming reads of harness run files (trace.jsonl and trace.yaml).

A run file can be gigabytes, so nothing here holds more than one record (one JSON
line or one YAML document) in memory. Each record carries its byte offset and length,
which the cache stores so that one attempt's trace can be read back later with a
single seek instead of a rescan.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rca.errors import FormatError

TRACE_FILE_NAMES = ("trace.jsonl", "trace.yaml")
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class Record:
    """The raw bytes of one event, and where they sit in the file."""

    path: Path
    line: int  # 1-based line of the record's first line
    offset: int  # byte offset of the record's first byte
    raw: bytes
    truncated: bool = False  # last record of a file that does not end in a newline

    @property
    def length(self) -> int:
        return len(self.raw)


def find_trace_file(run_dir: Path) -> Path | None:
    """The run's trace file; trace.jsonl wins when a folder holds both."""
    for name in TRACE_FILE_NAMES:
        candidate = run_dir / name
        if candidate.is_file():
            return candidate
    return None


def is_yaml(path: Path) -> bool:
    return path.suffix in (".yaml", ".yml")


def iter_records(path: Path) -> Iterator[Record]:
    """Yield the records of a run file, one at a time."""
    yield from (_iter_yaml_documents(path) if is_yaml(path) else _iter_json_lines(path))


def _iter_json_lines(path: Path) -> Iterator[Record]:
    offset = 0
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            if raw.strip():
                yield Record(path, number, offset, raw, truncated=not raw.endswith(b"\n"))
            offset += len(raw)


def _iter_yaml_documents(path: Path) -> Iterator[Record]:
    """Split a multi-document YAML stream on its `---` markers without parsing it whole,
    so one broken document does not hide the others."""
    offset = start = 0
    first_line = 1
    chunk: list[bytes] = []
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            if raw.startswith(b"---") and raw[3:4] in (b"", b"\n", b"\r", b" "):
                if any(part.strip() for part in chunk):
                    yield Record(path, first_line, start, b"".join(chunk))
                chunk, start, first_line = [], offset + len(raw), number + 1
            elif raw.startswith(b"...") and raw[3:].strip() == b"":
                pass  # document end marker: the next `---` or EOF closes the document
            else:
                chunk.append(raw)
            offset += len(raw)
    if any(part.strip() for part in chunk):
        last = b"".join(chunk)
        yield Record(path, first_line, start, last, truncated=not last.endswith(b"\n"))


def decode(record: Record) -> tuple[str, bool]:
    """Text of a record; the flag says whether invalid UTF-8 had to be replaced."""
    try:
        return record.raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return record.raw.decode("utf-8", errors="replace"), True


def parse_record(record: Record) -> dict[str, Any]:
    """The event object of a record, or FormatError saying what is wrong with it."""
    return parse_text(record, decode(record)[0])


def parse_text(record: Record, text: str) -> dict[str, Any]:
    """parse_record for a record already decoded (ingest decodes once to see replaced bytes)."""
    try:
        if is_yaml(record.path):
            value = yaml.load(text, Loader=_YAML_LOADER)
        else:
            value = json.loads(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        if record.truncated:
            raise FormatError(record.path, "truncated last record (is the run still being written?)", line=record.line) from None
        kind = "YAML document" if is_yaml(record.path) else "JSON line"
        detail = str(exc).splitlines()[0]
        raise FormatError(record.path, f"malformed {kind}: {detail}", line=record.line) from None
    if not isinstance(value, dict) or not isinstance(value.get("data", {}), dict):
        raise FormatError(record.path, "not an event object with 'event_type' and 'data'", line=record.line)
    return value


def read_record_at(path: Path, offset: int, length: int, line: int = 0) -> Record:
    """The record stored at a known place, read with one seek."""
    with path.open("rb") as f:
        f.seek(offset)
        raw = f.read(length)
    return Record(path, line, offset, raw)
