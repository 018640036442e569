"""Raw values as step text, and whether a tool's output reports failure: shared by the adapters.

Sources hand over tool outputs and arguments as strings, dicts, lists, even bytes. A step's
text is what a reader should see: strings as they are, a one-key wrapper such as
`{"result": "..."}` unwrapped, small objects as `key: value` lines, anything else as compact
JSON without nulls; raw bytes as `<binary N bytes>`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

_UNWRAP = frozenset({"result", "output", "content", "text"})
_DROP = frozenset({"thought_signature"})
_STRONG_ERROR = re.compile(
    r"Traceback \(most recent call last\)|^(?:E[ \t]+)?[A-Za-z_][\w.]*(?:Error|Exception)(?::|$)"
    r"|^(?:ERROR|FAILED|FAILURE)\b|RESOURCE_EXHAUSTED|\A\s*[{\[]?\s*[\"']?(?i:error|exception)[\"']?\s*:",
    re.MULTILINE,
)
_HTTP_429 = re.compile(r"(?i)\b429\b[ \w:,-]{0,20}(?:too many|resource|quota|rate)|(?:status|code|error)[\"' :=]{1,4}429\b")
_ERROR_KEYS = frozenset({"error", "exception", "stderr", "traceback", "error_message"})
_ERROR_STATUS = frozenset({"error", "failed", "failure", "fail"})
_WINDOW = 3_000  # an error in a tool's output shows at its start or end, not in the files it prints


def binary(n: int) -> str:
    return f"<binary {n:,} bytes>"


def clean(value: Any) -> Any:
    """A JSON-able copy without nulls, thought signatures or raw bytes."""
    if isinstance(value, Mapping):
        return {str(k): clean(v) for k, v in value.items() if v is not None and k not in _DROP}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return binary(len(value))
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return safe_repr(value)


def compact_json(value: Any) -> str:
    try:
        return json.dumps(clean(value), ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return safe_repr(value)


def safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:  # a broken __repr__ or endless nesting: say what it was
        return f"<unrenderable {type(value).__name__}>"


def text_of(value: Any) -> str:
    """A raw value as readable text: strings raw, one-key wrappers unwrapped, small dicts as lines."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return binary(len(value))
    if isinstance(value, Mapping):
        tidy = clean(value)
        if len(tidy) == 1:
            key, only = next(iter(tidy.items()))
            if isinstance(only, str):
                return only if key in _UNWRAP else f"{key}: {only}"
        if any(isinstance(v, str) and "\n" in v for v in tidy.values()):
            return "\n".join(f"{k}: {v if isinstance(v, str) else compact_json(v)}" for k, v in tidy.items())
    return compact_json(value)


def answer_text(answer: Any, *, skip: frozenset[str] = frozenset()) -> str:
    """A structured answer as text: `key: value` per field, multi-line values on their own lines."""
    if not isinstance(answer, Mapping):
        return text_of(answer)
    lines = []
    for key, value in answer.items():
        if value is None or key in skip:
            continue
        if isinstance(value, str) and "\n" in value:
            lines.append(f"{key}:\n{value.rstrip()}")
        else:
            lines.append(f"{key}: {value if isinstance(value, str) else compact_json(value)}")
    return "\n".join(lines)


def output_failed(value: Any, text: str) -> bool:
    """A tool's output reports failure: an error field or status, or an error at its start or end."""
    for key, v in value.items() if isinstance(value, Mapping) else ():
        k = str(key).lower()
        if (k in _ERROR_KEYS and v) or (k in ("is_error", "iserror") and v is True) or (
                k in ("status", "state") and isinstance(v, str) and v.lower() in _ERROR_STATUS):
            return True
    windows = (text,) if len(text) <= 2 * _WINDOW else (text[:_WINDOW], text[-_WINDOW:])
    return any(_STRONG_ERROR.search(w) or ("429" in w and _HTTP_429.search(w)) for w in windows)
