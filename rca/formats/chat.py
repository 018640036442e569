"""Chat logs: OpenAI-style `messages` lists, one case per JSONL line, per element of a JSON list, or per file.

A case is an object with a `messages` list (roles system/user/assistant/tool; an assistant's
`tool_calls` with `function.name` and JSON-string `function.arguments`; a tool message's
`tool_call_id`; content a string or a list of `{type: text, text}` parts) and optionally `id`,
`task`, `error`, `result`, `status` and `metadata` (suite, generator or model, run_id, ...). A
field is read from the case, else from its metadata.

Steps: each message is one, except that each tool call of an assistant message is its own
tool_call step (after the message's text, if any) and a tool message is a tool_result step named
after the call it answers. The agent is a message's `name`, else its role; a user or system
message without a name is the task-giver's, not an agent's (a plain chat is one agent, not three).

A case is a failure when its data says so (an `error`, a `result`/`status` saying fail, error
or incorrect, `passed: false`), or with `all_failed` when the source holds failures only. A
case whose data says nothing of how it ended is not counted at all, as passed or as failed.

JSONL is streamed line by line, so memory stays flat in the file's size; a JSON list or a
one-case file is read whole. A row's trace_ref is the file, byte offset and length of its case,
read back with one seek; when the bytes there no longer hold the same case, the file is read
again for it by case id.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from rca.baseline import regex_tags_json
from rca.errors import TraceNotFound
from rca.formats import IngestIssue, Progress
from rca.formats._text import output_failed, text_of
from rca.formats.harness.records import MAX_RECORD_BYTES, decode, iter_records, read_record_at
from rca.store import CaseRow, FailureRow
from rca.transcript import Outcome, Transcript, number_steps

NAME = "chat"
HEAD_BYTES = 64 << 10
JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson"})
SUFFIXES = JSONL_SUFFIXES | {".json"}  # what a folder handed to the adapter is read for
TASK_GIVERS = frozenset({"user", "system", "developer"})
SYSTEM_ROLES = frozenset({"system", "developer"})
# Where each row field is found, first match wins (in the case, then in its metadata).
KEYS: dict[str, tuple[str, ...]] = {
    "run_id": ("run_id", "run"), "case_id": ("id", "case_id"), "benchmark_name": ("benchmark_name", "name"),
    "suite": ("suite",), "generator": ("generator", "model"), "timestamp": ("timestamp", "created_at"),
}
_FAILED = re.compile(r"\s*(?:fail(?:ed|ure|s)?|error(?:ed|s)?|incorrect|wrong)(?![a-z])", re.IGNORECASE)
_PASSED = re.compile(r"\s*(?:pass(?:ed|es)?|succe(?:ss|ssful|eded)|correct)(?![a-z])", re.IGNORECASE)
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"(\s*:)?|[\[\]{}]')
_WS = re.compile(r"[ \t\r\n]*")
_SURROGATES = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}|[\ud800-\udfff]")
_REF = re.compile(r"(?P<path>.+)#(?P<offset>\d+)\+(?P<length>\d+)")

Layout = Literal["lines", "list", "one"]


@dataclass(frozen=True, slots=True)
class _Case:
    """One case's object and where its bytes are."""

    path: Path
    line: int
    offset: int
    length: int
    data: dict[str, Any]
    one: bool  # the file holds this case only: the file is the case, its folder the run


# -- sniffing ----------------------------------------------------------------------------


def json_keys(head: bytes) -> Iterator[tuple[int, bytes]]:
    """(depth, name) of each object key in the first bytes of a JSON text, without parsing it:
    the text may be cut anywhere. Depth counts the open brackets, `{` and `[` alike."""
    depth = 0
    for m in _TOKEN.finditer(head):
        token = m.group()
        if token in (b"{", b"["):
            depth += 1
        elif token in (b"}", b"]"):
            depth -= 1
        elif m.group(1):
            yield depth, token[1:token.rindex(b'"')]


def stable_key(text: str) -> int:
    """A 56-bit number for a case's place, for the cache's unique (run, offset, attempt) key where
    a run spans files: a byte offset alone would collide across them."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=7).digest(), "big")


def _head(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(HEAD_BYTES).lstrip(b"\xef\xbb\xbf \t\r\n")


def detect(path: Path) -> bool:
    """A file whose first 64 KiB show a case (a JSONL line, the object, or a list's first element)
    with a `messages` list of messages with a `role`; a folder holding such a file."""
    if path.is_dir():
        return any(detect(file) for file in _files(path))
    head = _head(path)
    if head[:1] not in (b"{", b"[") or b'"messages"' not in head:
        return False
    case = 2 if head[:1] == b"[" else 1
    in_messages = False
    for depth, key in json_keys(head):
        if depth == case:
            in_messages = key == b"messages"
        elif in_messages and depth == case + 2 and key == b"role":
            return True
    return False


# -- reading cases -----------------------------------------------------------------------


def _files(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_file() and p.suffix in SUFFIXES) if path.is_dir() else [path]


def _layout(path: Path) -> Layout:
    """A list by its first byte; JSONL by name, or when the first of several lines is a whole
    object; else one case (pretty-printed, or on one line)."""
    head = _head(path)
    if head[:1] == b"[":
        return "list"
    if path.suffix in JSONL_SUFFIXES or not head:
        return "lines"
    records = list(itertools.islice(iter_records(path), 2))
    if len(records) < 2:
        return "one"
    try:
        return "lines" if isinstance(json.loads(decode(records[0])[0]), dict) else "one"
    except (json.JSONDecodeError, RecursionError):
        return "one"


def _valid(value: Any, text: str) -> Any:
    """The value with lone surrogates (from a `\\ud800` escape or an undecodable byte) replaced:
    SQLite and the model need valid text."""
    if not _SURROGATES.search(text):
        return value
    return json.loads(json.dumps(value, ensure_ascii=False).encode("utf-8", "replace"))


def _case(path: Path, line: int, offset: int, length: int, value: Any, text: str, *, one: bool
          ) -> _Case | IngestIssue:
    if not isinstance(value, dict) or not isinstance(value.get("messages"), list):
        return IngestIssue(path=str(path), line=line, message="not a chat case (an object with a `messages` list); "
                                                               "skipped")
    return _Case(path, line, offset, length, _valid(value, text), one)


def _cases(path: Path) -> Iterator[_Case | IngestIssue]:
    """The cases of one file, in order, with an issue for each that cannot be read."""
    if _layout(path) == "lines":
        yield from _lines(path)
    else:
        yield from _document(path)


def _lines(path: Path) -> Iterator[_Case | IngestIssue]:
    for record in iter_records(path):
        if record.oversize:
            yield IngestIssue(path=str(path), line=record.line, message=f"a line of {record.oversize:,} bytes is over "
                              f"the {MAX_RECORD_BYTES:,}-byte limit of one case; skipped")
            continue
        text = decode(record)[0]
        try:
            value = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            why = "truncated last line" if record.truncated else f"malformed JSON line: {str(exc).splitlines()[0]}"
            yield IngestIssue(path=str(path), line=record.line, message=f"{why}; skipped")
            continue
        yield _case(path, record.line, record.offset, record.length, value, text, one=False)


def _nbytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))


def _document(path: Path) -> Iterator[_Case | IngestIssue]:
    """A JSON list of cases, element by element (a broken one ends the list: JSON cannot resume
    after it), or a file that is one case. Decoded so that every character maps back to its bytes."""
    text = path.read_bytes().decode("utf-8", "surrogateescape")
    start = _WS.match(text, 1 if text.startswith("\ufeff") else 0).end()
    listed = text.startswith("[", start)
    pos = _WS.match(text, start + 1).end() if listed else start
    offset, line, seen = 0, 1, 0  # the byte offset and line of text[seen]
    decoder = json.JSONDecoder()
    rest = "; the cases after it are not read" if listed else ""
    while pos < len(text) and not (listed and text.startswith("]", pos)):
        offset, line, seen = offset + _nbytes(text[seen:pos]), line + text.count("\n", seen, pos), pos
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            yield IngestIssue(path=str(path), line=exc.lineno, message=f"malformed JSON: {exc.msg}{rest}")
            return
        except RecursionError:
            yield IngestIssue(path=str(path), line=line, message=f"nested too deeply to read{rest}")
            return
        yield _case(path, line, offset, _nbytes(text[pos:end]), value, text[pos:end], one=not listed)
        pos = _WS.match(text, end).end()
        if listed and text.startswith(",", pos):
            pos = _WS.match(text, pos + 1).end()
        elif pos < len(text) and not (listed and text.startswith("]", pos)):
            yield IngestIssue(path=str(path), line=line + text.count("\n", seen, pos),
                              message="content after a case that is not JSON of cases; not read")
            return


# -- rows --------------------------------------------------------------------------------


def _get(case: Mapping[str, Any], field: str) -> Any:
    """A field of the case, else of its metadata: the first of its KEYS present."""
    meta = case.get("metadata")
    for source in (case, meta if isinstance(meta, Mapping) else {}):
        for key in KEYS.get(field, (field,)):
            if source.get(key) is not None:
                return source[key]
    return None


def _scalar(value: Any) -> str | None:
    return str(value) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None


def _timestamp(value: Any) -> str | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, tz=UTC).isoformat()
        except (OverflowError, OSError, ValueError):
            return None
    return value if isinstance(value, str) else None


def verdict(case: Mapping[str, Any]) -> bool | None:
    """Whether the case's data says it failed (an error, a result or status word of failure,
    passed: false) or passed (a word of success, passed: true); None when it says neither."""
    if _get(case, "error"):
        return True
    for key in ("result", "status"):
        if isinstance(word := _get(case, key), str) and (_FAILED.match(word) or _PASSED.match(word)):
            return bool(_FAILED.match(word))
    passed = _get(case, "passed")
    return not passed if isinstance(passed, bool) else None


def _result(case: Mapping[str, Any]) -> str | None:
    """The source's own status word; else the field that says how the case ended."""
    for key in ("result", "status"):
        if isinstance(value := _get(case, key), str):
            return value
    if _get(case, "error"):
        return "error"
    passed = _get(case, "passed")
    return ("passed" if passed else "failed") if isinstance(passed, bool) else None


def _row(case: _Case, run_id: str) -> FailureRow:
    """The case as a failures row; `run_id` is the run when the data names none."""
    data, stat = case.data, case.path.stat()
    case_id = _scalar(_get(data, "case_id")) or (case.path.stem if case.one else f"{case.path.stem}:{case.line}")
    error = _get(data, "error")
    raw_error = text_of(error) if error else None
    return FailureRow(
        run_id=_scalar(_get(data, "run_id")) or run_id, timestamp=_timestamp(_get(data, "timestamp")),
        benchmark_name=_scalar(_get(data, "benchmark_name")) or case_id, suite=_scalar(_get(data, "suite")),
        generator=_scalar(_get(data, "generator")), attempt_number=None, error_type=regex_tags_json(raw_error),
        raw_error=raw_error, explanation=None, trace_log_path=str(case.path.resolve()),
        trace_offset=stable_key(f"{case.path.parent.name}/{case.path.name}#{case.offset}"),
        trace_length=case.length, trace_line=case.line, attempt_index=-1, trace_file_size=stat.st_size,
        trace_file_mtime=stat.st_mtime, event_kind="chat", case_id=case_id, result=_result(data), format=NAME,
        trace_ref=f"{case.path.resolve()}#{case.offset}+{case.length}",
    )


def failures(path: Path, run_id: str, resume: Progress | None = None, *, all_failed: bool = False
             ) -> Iterator[FailureRow | CaseRow | IngestIssue | Progress]:
    """A row per failed case (every case with `all_failed`) and a CaseRow per case whose outcome is
    known, then a finished Progress: a file that changes is read again whole (the cache skips the
    rows it has).

    A file that is one case belongs to its folder's run (its name), any other file to `run_id`
    (ingest gives the file's name), unless the data names the run."""
    if resume is not None and resume.finished:
        yield resume
        return
    for file in _files(path):
        for item in _cases(file):
            if isinstance(item, IngestIssue):
                yield item
                continue
            said = verdict(item.data)
            if said is None and not all_failed:
                continue  # nothing says how it ended: neither a failure nor a case to count
            row = _row(item, file.parent.name if item.one else run_id)
            if all_failed or said:
                yield row
            yield CaseRow(run_id=row.run_id, case_key=str(row.case_id), generator=row.generator or "",
                          benchmark_name=row.benchmark_name, suite=row.suite, result=row.result,
                          passed=not (all_failed or said), attempts=None, format=NAME)
    yield Progress(finished=True)


# -- reading one back --------------------------------------------------------------------


def _part(part: Any) -> str:
    """One content part as text; a non-text part (image, audio, file) as `<its type>`."""
    if not isinstance(part, Mapping):
        return text_of(part)
    if part.get("type") in ("text", "refusal"):
        return text_of(part.get("text") or part.get("refusal"))
    return f"<{part.get('type')}>"


def _content(value: Any) -> str:
    """Message content as text: a string, or its parts' texts one per line."""
    return "\n".join(_part(part) for part in value) if isinstance(value, list) else text_of(value)


def _arguments(value: Any) -> Any:
    """A call's arguments: the JSON string decoded, else as given."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            return value
    return value


def _message_steps(message: Any, calls: dict[str, tuple[str, str | None]]) -> list[dict[str, Any]]:
    """The steps of one message; `calls` maps call ids to (tool, agent) across the conversation."""
    message = message if isinstance(message, Mapping) else {"content": message}
    role = _scalar(message.get("role"))
    name = message.get("name") if isinstance(message.get("name"), str) and message.get("name") else None
    content = message.get("content")
    text = _content(content)
    if role == "tool":
        call_id = _scalar(message.get("tool_call_id"))
        tool, agent = calls.get(call_id or "", (name or "?", None))
        return [{"kind": "tool_result", "role": role, "agent": agent, "tool_name": tool, "call_id": call_id,
                 "text": text, "is_error": output_failed(content, text)}]
    agent = name or (role if role not in TASK_GIVERS else None)
    kind = "system" if role in SYSTEM_ROLES else "message"
    tool_calls = [c for c in message.get("tool_calls") or () if isinstance(c, Mapping)]
    steps = [{"kind": kind, "role": role, "agent": agent, "text": text}] if text or not tool_calls else []
    for call in tool_calls:
        function = call.get("function") if isinstance(call.get("function"), Mapping) else {}
        tool, call_id = _scalar(function.get("name")) or "?", _scalar(call.get("id"))
        steps.append({"kind": "tool_call", "role": role, "agent": agent, "tool_name": tool,
                      "tool_args": _arguments(function.get("arguments")), "call_id": call_id})
        if call_id:
            calls[call_id] = (tool, agent)
    return steps


def to_transcript(case: Mapping[str, Any], row: FailureRow) -> Transcript:
    """One case as a Transcript: its messages as steps, the last assistant message (when it calls
    no tool) as the final answer, the task as given or the first user message."""
    steps: list[dict[str, Any]] = []
    calls: dict[str, tuple[str, str | None]] = {}
    final: int | None = None  # the step of the last assistant message, when it calls no tool
    for message in case["messages"]:
        own = _message_steps(message, calls)
        if isinstance(message, Mapping) and message.get("role") == "assistant":
            final = len(steps) if own and own[-1]["kind"] == "message" and own[-1]["text"] else None
        steps.extend(own)
    if final is not None:
        steps[final]["kind"] = "final_answer"
    task = _get(case, "task")
    first_user = next((s["text"] for s in steps if s["role"] == "user" and s["kind"] == "message" and s["text"]), None)
    return Transcript(
        format=NAME, ref=row.trace_ref, task=text_of(task) if task else first_user, steps=number_steps(steps),
        final_answer=steps[final]["text"] if final is not None else None,
        outcome=Outcome(error=row.raw_error, result=row.result),
        metadata={"run_id": row.run_id, "case_id": row.case_id, "benchmark_name": row.benchmark_name,
                  "suite": row.suite, "generator": row.generator},
    )


def _where(row: Mapping[str, Any], runs_dir: str | Path | None) -> tuple[Path, int | None, int]:
    """The file a row names (or its namesake under runs_dir), and the case's byte offset and length there."""
    m = _REF.fullmatch(str(row.get("trace_ref") or ""))
    recorded = Path(m["path"] if m else str(row.get("trace_log_path") or ""))
    candidates = [recorded] + ([Path(runs_dir) / str(row.get("run_id")) / recorded.name, Path(runs_dir) / recorded.name]
                               if runs_dir is not None else [])
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise TraceNotFound(f"chat log of {row.get('benchmark_name')!r} not found: looked at "
                            f"{', '.join(map(str, candidates))}")
    return found, int(m["offset"]) if m else None, int(m["length"]) if m else 0


def _case_at(path: Path, offset: int, length: int, line: int) -> _Case | IngestIssue:
    text = decode(read_record_at(path, offset, length))[0]
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        value = None
    return _case(path, line, offset, length, value, text, one=_layout(path) == "one")


def _find(row: Mapping[str, Any], runs_dir: str | Path | None) -> tuple[_Case, FailureRow]:
    """The case a row names: at its recorded bytes when they still hold it, else by case id in its file."""
    path, offset, length = _where(row, runs_dir)
    at = [_case_at(path, offset, length, int(row.get("trace_line") or 1))] if offset is not None else []
    for case in itertools.chain(at, _cases(path)):
        if isinstance(case, _Case):
            found = _row(case, str(row.get("run_id")))
            if (found.case_id, found.benchmark_name) == (row.get("case_id"), row.get("benchmark_name")):
                return case, found
    raise TraceNotFound(f"{path}: no case {row.get('case_id')!r} ({row.get('benchmark_name')!r}) in it any more")


def read(row: Mapping[str, Any], *, runs_dir: str | Path | None = None) -> Transcript:
    """The case a row names (its trace_ref: file, byte offset and length), read back."""
    case, found = _find(row, runs_dir)
    return to_transcript(case.data, found)


def locate(row: Mapping[str, Any], *, runs_dir: str | Path | None = None) -> FailureRow:
    """The row as ingest would write it for the case it names."""
    return _find(row, runs_dir)[1]


class _Chat:
    name = NAME
    detect = staticmethod(detect)
    failures = staticmethod(failures)
    read = staticmethod(read)
    locate = staticmethod(locate)


ADAPTER = _Chat()
