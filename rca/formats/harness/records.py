"""Streaming reads of harness run files (trace.jsonl and trace.yaml).

A run file can be gigabytes, so nothing here holds more than one record (one JSON line
or one YAML document) in memory, and no record beyond MAX_RECORD_BYTES is held at all,
whatever the file holds. Each record carries its byte offset and length, which the cache
stores so that one attempt's trace can be read back later with a single seek, and where
to resume reading after it, so a run still being written is read on from where it stopped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from rca.errors import FormatError

TRACE_FILE_NAMES = ("trace.jsonl", "trace.yaml")
MAX_RECORD_BYTES = 64 << 20  # real records reach tens of MB (whole files read by an agent)
_PIECE = 1 << 20
MAX_ALIAS_EXPANSION = 10  # a YAML document may expand its aliases to 10x its own nodes
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_ALIAS = re.compile(r"(?:^|[\s\[{,:-])\*[^\s,\[\]{}]+", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Record:
    """The raw bytes of one event, where they sit in the file, and where to read on after it."""

    path: Path
    line: int  # 1-based line of the record's first line
    offset: int  # byte offset of the record's first byte
    raw: bytes
    truncated: bool = False  # last record of a file that does not end in a newline
    oversize: int = 0  # bytes of a record too large to hold (raw is then empty)
    next_offset: int = 0  # where the next read resumes: after this record, or at it when it may grow
    next_line: int = 1

    @property
    def length(self) -> int:
        return self.oversize or len(self.raw)

    @property
    def complete(self) -> bool:
        """Nothing more can be appended to this record: a later read resumes after it."""
        return self.next_offset > self.offset


def find_trace_file(run_dir: Path) -> Path | None:
    """The run's trace file; trace.jsonl wins when a folder holds both."""
    for name in TRACE_FILE_NAMES:
        candidate = run_dir / name
        if candidate.is_file():
            return candidate
    return None


def is_yaml(path: Path) -> bool:
    return path.suffix in (".yaml", ".yml")


def iter_records(path: Path, *, start: int = 0, line: int = 1) -> Iterator[Record]:
    """Yield the records of a run file one at a time, from byte `start` (at line `line`)."""
    with path.open("rb") as f:
        f.seek(start)
        yield from (_yaml_documents(path, f, start, line) if is_yaml(path) else _json_lines(path, f, start, line))


def _lines(f: IO[bytes]) -> Iterator[tuple[bytes, int]]:
    """(line, its length) per line, read in pieces of at most 1 MiB; a line over MAX_RECORD_BYTES
    comes as (b"", length) and is never held whole."""
    while piece := f.readline(_PIECE):
        if piece.endswith(b"\n") or len(piece) < _PIECE:
            yield piece, len(piece)  # the common case: a whole line in one read
            continue
        pieces, size = [piece], len(piece)
        while (piece := f.readline(_PIECE)):
            size += len(piece)
            if size <= MAX_RECORD_BYTES:
                pieces.append(piece)
            elif pieces:
                pieces.clear()  # too large to hold: from here on only its length is counted
            if piece.endswith(b"\n"):
                break
        yield (b"".join(pieces), size) if size <= MAX_RECORD_BYTES else (b"", size)


def _json_lines(path: Path, f: IO[bytes], offset: int, number: int) -> Iterator[Record]:
    for raw, size in _lines(f):
        oversize = size > len(raw)
        ends = oversize or raw.endswith(b"\n")
        if oversize or raw.strip():
            yield Record(path, number, offset, raw, truncated=not ends, oversize=size if oversize else 0,
                         next_offset=offset + size if ends else offset, next_line=number + 1 if ends else number)
        offset += size
        number += 1


def _yaml_documents(path: Path, f: IO[bytes], offset: int, number: int) -> Iterator[Record]:
    """Split a multi-document YAML stream on its `---` markers without parsing it whole, so one
    broken document does not hide the others. Content after `---` on the marker line (flow
    style: `--- {event_type: ...}`) belongs to the document. The last document of the file may
    still grow, so a later read resumes at its marker."""
    chunk: list[bytes] = []
    size = 0
    start, first_line, marker, marker_line = offset, number, offset, number

    def record(next_offset: int, next_line: int) -> Record | None:
        raw = b"".join(chunk)
        if size > MAX_RECORD_BYTES:
            return Record(path, first_line, start, b"", oversize=size, next_offset=next_offset, next_line=next_line)
        if not raw.strip():
            return None
        return Record(path, first_line, start, raw, truncated=not raw.endswith(b"\n"),
                      next_offset=next_offset, next_line=next_line)

    for raw, length in _lines(f):
        if raw.startswith(b"---") and raw[3:4] in (b"", b"\n", b"\r", b" ", b"\t"):
            if (done := record(offset, number)) is not None:
                yield done
            rest = raw[3:]
            chunk, size = ([rest], len(rest)) if rest.strip() else ([], 0)
            start = offset + 3 if rest.strip() else offset + length
            first_line = number if rest.strip() else number + 1
            marker, marker_line = offset, number
        elif raw.startswith(b"...") and raw[3:].strip() == b"":
            pass  # document end marker: the next `---` or EOF closes the document
        else:
            size += length
            if size <= MAX_RECORD_BYTES:
                chunk.append(raw)
            elif chunk:
                chunk = []
        offset += length
        number += 1
    if (last := record(marker, marker_line)) is not None:
        yield last


def decode(record: Record) -> tuple[str, bool]:
    """Text of a record; the flag says whether invalid UTF-8 had to be replaced."""
    try:
        return record.raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return record.raw.decode("utf-8", errors="replace"), True


def parse_record(record: Record) -> dict[str, Any]:
    """The event object of a record, or FormatError saying what is wrong with it."""
    return parse_text(record, decode(record)[0])[0]


def parse_text(record: Record, text: str) -> tuple[dict[str, Any], bool]:
    """The event object of a decoded record, and whether lone surrogates had to be replaced."""
    where = {"line": record.line}
    if record.oversize:
        raise FormatError(record.path, f"a record of {record.oversize:,} bytes is over the {MAX_RECORD_BYTES:,}-byte "
                          "limit of one record; skipped", **where)
    if "\0" in text:
        raise FormatError(record.path, "binary data (NUL bytes), not a trace event; skipped", **where)
    try:
        if is_yaml(record.path):
            _check_aliases(record, text)
            value = yaml.load(text, Loader=_YAML_LOADER)
        else:
            value = json.loads(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        if record.truncated:
            raise FormatError(record.path, "truncated last record (is the run still being written?)", **where) from None
        kind = "YAML document" if is_yaml(record.path) else "JSON line"
        raise FormatError(record.path, f"malformed {kind}: {str(exc).splitlines()[0]}", **where) from None
    except RecursionError:
        raise FormatError(record.path, "nested too deeply to read; skipped", **where) from None
    if not isinstance(value, dict) or not isinstance(value.get("data", {}), dict):
        raise FormatError(record.path, "not an event object with 'event_type' and 'data'", **where)
    # Decoded UTF-8 holds no surrogates: only a \\uDXXX escape can make one.
    replaced = _SURROGATE_ESCAPE.search(text) is not None and _has_surrogates(value)
    return (_without_surrogates(value) if replaced else value), replaced


def _check_aliases(record: Record, text: str) -> None:
    """Refuse a document whose aliases expand to far more nodes than it has (an alias bomb)."""
    if "*" not in text or not _ALIAS.search(text):
        return
    node = yaml.compose(text, Loader=_YAML_LOADER)
    own: set[int] = set()
    sizes: dict[int, int] = {}

    def expanded(n: yaml.Node) -> int:
        if id(n) in sizes:
            return sizes[id(n)]
        own.add(id(n))
        sizes[id(n)] = 1  # a recursive alias counts once
        children = n.value if isinstance(n, yaml.SequenceNode) else (
            [item for pair in n.value for item in pair] if isinstance(n, yaml.MappingNode) else [])
        sizes[id(n)] = 1 + sum(expanded(child) for child in children)
        return sizes[id(n)]

    total = expanded(node) if node is not None else 0
    if total > MAX_ALIAS_EXPANSION * len(own) + 10_000:
        raise FormatError(record.path, f"YAML aliases expand {len(own):,} nodes to {total:,}: refused as an alias bomb",
                          line=record.line)


def _has_surrogates(value: Any) -> bool:
    if isinstance(value, str):
        return _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_has_surrogates(k) or _has_surrogates(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_surrogates(v) for v in value)
    return False


def _without_surrogates(value: Any) -> Any:
    """A copy with every lone surrogate replaced by U+FFFD: SQLite, HTML and the model need valid text."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_surrogates(v) for v in value]
    return value


def read_record_at(path: Path, offset: int, length: int, line: int = 0) -> Record:
    """The record stored at a known place, read with one seek."""
    with path.open("rb") as f:
        f.seek(offset)
        raw = f.read(length)
    return Record(path, line, offset, raw)
