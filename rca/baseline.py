"""The harness's regex baseline: the tags its regex pass gives an error text.

Kept exactly as the contract (docs/harness-format.md) lists it, because existing
caches hold these tags and rca compares its root causes against them.
"""

from __future__ import annotations

import json
import re

_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"JSONDecodeError|Invalid JSON|Unexpected token", "Malformed JSON"),
    (r"Field required|Extra inputs are not permitted|validation error for", "Schema Violation"),
    (r"AttributeError: module .* has no attribute 'create_agent'", "Interface Violation: Missing create_agent"),
    (r"AttributeError", "Code Logic Error"),
    (r"ImportError|ModuleNotFoundError", "Import Error"),
    (r"SyntaxError|IndentationError", "Syntax Error"),
    (r"TypeError|NameError", "Runtime Error"),
    (r"TimeoutError|DeadlineExceeded", "Timeout"),
    (r"ResourceExhausted|429", "Quota Limit"),
    (r"Empty response|NoneType", "Empty Response"),
)
_COMPILED = tuple((re.compile(pattern, re.IGNORECASE), tag) for pattern, tag in _PATTERNS)

NO_MATCH = "Unknown Logic Error"
NO_TEXT = "Unknown"


def regex_tags(error_text: str | None) -> list[str]:
    """Every matching tag once, in the contract's order."""
    if not error_text or not error_text.strip():
        return [NO_TEXT]
    tags = [tag for pattern, tag in _COMPILED if pattern.search(error_text)]
    return tags or [NO_MATCH]


def regex_tags_json(error_text: str | None) -> str:
    """The tags as the JSON list the cache's error_type column holds."""
    return json.dumps(regex_tags(error_text))
