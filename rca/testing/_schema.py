"""Deterministic instances of a JSON Schema, so a fake model can answer any structured request.

Handles what pydantic's ``model_json_schema()`` and Gemini's OpenAPI-style ``responseSchema``
emit: ``$defs``/``$ref``, ``enum``/``const``, ``anyOf``/``oneOf``/``allOf``, nullable types,
arrays with ``minItems``/``maxItems``, nested objects, string formats and length bounds, and
numeric bounds (inclusive or exclusive). ``pattern`` is not honoured.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

Path = tuple[str | int, ...]
Chooser = Callable[[Path, Sequence[Any]], Any]
"""``choose(path, options) -> value``: picks among an ``enum`` (or ``[False, True]``) at ``path``."""

Violation = Literal["enum", "missing", "type", "not_json"]

_MAX_DEPTH = 8
_FORMATS = {
    "date-time": "2025-01-01T00:00:00Z",
    "date": "2025-01-01",
    "time": "00:00:00",
    "duration": "P1D",
    "email": "fake@example.com",
    "uri": "https://example.com/fake",
    "url": "https://example.com/fake",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "127.0.0.1",
}


def synthesize(schema: Mapping[str, Any], *, choose: Chooser | None = None) -> Any:
    """A valid, deterministic instance of ``schema``.

    Every property is filled (optional ones too, with their non-null branch), so the answer
    exercises the caller's whole model; enums take their first value unless ``choose`` says
    otherwise; strings read ``"fake <property name>"``.
    """
    return _Synth(schema, choose).value(schema, (), 0)


def enum_paths(schema: Mapping[str, Any]) -> list[Path]:
    """Paths, in the instance ``synthesize`` builds, that hold an enum (or const) value."""
    synth = _Synth(schema, None)
    synth.value(schema, (), 0)
    return synth.enum_paths


def violate(schema: Mapping[str, Any], how: Violation = "enum", *, choose: Chooser | None = None) -> Any:
    """An answer that breaks ``schema`` in one named way, to test the caller's validation.

    ``enum``: the first enum field gets a value outside its enum; ``missing``: the first
    required top-level property is dropped; ``type``: the first top-level property gets the
    wrong JSON type; ``not_json``: prose with a cut-off JSON fragment (returned as ``str``).
    Falls back ``enum`` -> ``missing`` -> ``type`` when the schema has nothing to break that way.
    """
    synth = _Synth(schema, choose)
    instance = synth.value(schema, (), 0)
    if how == "not_json":
        return "Sure! Here is the JSON you asked for:\n{\"" + "fake"
    if how == "enum" and synth.enum_paths:
        *parents, last = synth.enum_paths[0]
        target = instance
        for step in parents:
            target = target[step]
        target[last] = "NOT_A_VALID_ENUM_VALUE"
        return instance
    root = synth.resolve(schema)
    if not isinstance(instance, dict) or not instance:
        return "NOT_A_VALID_VALUE" if not isinstance(instance, str) else 12345
    required = [name for name in root.get("required", []) if name in instance]
    if how in ("enum", "missing") and required:
        del instance[required[0]]
        return instance
    first = next(iter(instance))
    instance[first] = 12345 if isinstance(instance[first], str) else "wrong type"
    return instance


class _Synth:
    def __init__(self, root: Mapping[str, Any], choose: Chooser | None) -> None:
        self.root = root
        self.choose = choose
        self.enum_paths: list[Path] = []
        self._active: list[str] = []

    def resolve(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        """Follow ``$ref`` and merge ``allOf`` so the caller sees one plain schema."""
        schema = dict(schema)
        seen = 0
        while "$ref" in schema and seen < 32:
            target = self._lookup(schema.pop("$ref"))
            schema = {**target, **schema}
            seen += 1
        for part in schema.pop("allOf", []) or []:
            merged = self.resolve(part)
            props = {**merged.get("properties", {}), **schema.get("properties", {})}
            required = list(dict.fromkeys([*merged.get("required", []), *schema.get("required", [])]))
            schema = {**merged, **schema}
            if props:
                schema["properties"] = props
            if required:
                schema["required"] = required
        return schema

    def _lookup(self, ref: str) -> Mapping[str, Any]:
        if not ref.startswith("#"):
            raise ValueError(f"only local $ref is supported, got {ref!r}")
        node: Any = self.root
        for token in ref.lstrip("#").strip("/").split("/"):
            if token:
                node = node[token.replace("~1", "/").replace("~0", "~")]
        return node

    def _pick(self, path: Path, options: Sequence[Any]) -> Any:
        return self.choose(path, options) if self.choose else options[0]

    def value(self, schema: Mapping[str, Any] | bool, path: Path, depth: int) -> Any:
        if schema is True or schema == {}:
            return "fake value"
        if schema is False:
            return None
        ref = schema.get("$ref")
        if ref is None:
            return self._value(self.resolve(schema), path, depth)
        self._active.append(ref)
        try:
            return self._value(self.resolve(schema), path, depth)
        finally:
            self._active.pop()

    def _recursing(self, schema: Any) -> bool:
        """True when ``schema`` refers back to a definition being built: stop there if optional."""
        return isinstance(schema, Mapping) and schema.get("$ref") in self._active

    def _value(self, s: dict[str, Any], path: Path, depth: int) -> Any:
        if "const" in s:
            self.enum_paths.append(path)  # a one-value enum: breakable the same way
            return copy.deepcopy(s["const"])
        if "enum" in s and s["enum"]:
            self.enum_paths.append(path)
            return copy.deepcopy(self._pick(path, list(s["enum"])))
        branches = s.get("anyOf") or s.get("oneOf")
        if branches:
            return self._branch(s, branches, path, depth)
        kind = self._type(s)
        if kind == "null" or (depth > _MAX_DEPTH and s.get("nullable")):
            return None
        if kind == "object":
            return self._object(s, path, depth)
        if kind == "array":
            return self._array(s, path, depth)
        if kind == "string":
            return self._string(s, path)
        if kind == "integer":
            return self._integer(s)
        if kind == "number":
            return self._number(s)
        if kind == "boolean":
            return self._pick(path, [False, True])
        return "fake value"

    def _branch(self, s: dict[str, Any], branches: Sequence[Any], path: Path, depth: int) -> Any:
        def is_null(b: Any) -> bool:
            return isinstance(b, Mapping) and self._type(self.resolve(b)) == "null"

        non_null = [b for b in branches if not is_null(b)]
        nullable = len(non_null) < len(branches)
        if not non_null or (nullable and (depth > _MAX_DEPTH or self._recursing(non_null[0]))):
            return None
        base = {k: v for k, v in s.items() if k not in ("anyOf", "oneOf", "default")}
        return self.value({**base, **non_null[0]}, path, depth)

    @staticmethod
    def _type(s: Mapping[str, Any]) -> str | None:
        kind = s.get("type")
        if isinstance(kind, list):
            non_null = [k for k in kind if str(k).lower() != "null"]
            kind = non_null[0] if non_null else "null"
        if isinstance(kind, str):
            return kind.lower()  # Gemini's OpenAPI schema spells types "OBJECT", "STRING", ...
        if "properties" in s or "additionalProperties" in s:
            return "object"
        if "items" in s or "prefixItems" in s:
            return "array"
        return None

    def _object(self, s: dict[str, Any], path: Path, depth: int) -> dict[str, Any]:
        props: Mapping[str, Any] = s.get("properties", {}) or {}
        required = set(s.get("required", []) or [])
        out: dict[str, Any] = {}
        for name, sub in props.items():
            if depth > _MAX_DEPTH and name not in required:
                continue
            out[name] = self.value(sub, (*path, name), depth + 1)
        return out

    def _array(self, s: dict[str, Any], path: Path, depth: int) -> list[Any]:
        prefix = s.get("prefixItems") or []
        out = [self.value(sub, (*path, i), depth + 1) for i, sub in enumerate(prefix)]
        lo = int(s.get("minItems", 0) or 0)
        hi = s.get("maxItems")
        items = s.get("items")
        want = max(lo, 0 if depth > _MAX_DEPTH or self._recursing(items) else 1)
        if hi is not None:
            want = min(want, int(hi))
        if items is False or (items is None and prefix):
            return out
        while len(out) < want:
            out.append(self.value(items if items is not None else {}, (*path, len(out)), depth + 1))
        return out

    @staticmethod
    def _string(s: Mapping[str, Any], path: Path) -> str:
        name = next((p for p in reversed(path) if isinstance(p, str)), None)
        text = _FORMATS.get(str(s.get("format", "")), f"fake {name}" if name else "fake text")
        lo, hi = int(s.get("minLength", 0) or 0), s.get("maxLength")
        if len(text) < lo:
            text = text + "x" * (lo - len(text))
        if hi is not None:
            text = text[: int(hi)]
        return text

    @staticmethod
    def _bounds(s: Mapping[str, Any]) -> tuple[float | None, bool, float | None, bool]:
        lo, lo_ex, hi, hi_ex = s.get("minimum"), False, s.get("maximum"), False
        ex_lo, ex_hi = s.get("exclusiveMinimum"), s.get("exclusiveMaximum")
        if isinstance(ex_lo, bool):  # draft-4 style: a flag on minimum
            lo_ex = ex_lo and lo is not None
        elif ex_lo is not None and (lo is None or ex_lo >= lo):
            lo, lo_ex = ex_lo, True
        if isinstance(ex_hi, bool):
            hi_ex = ex_hi and hi is not None
        elif ex_hi is not None and (hi is None or ex_hi <= hi):
            hi, hi_ex = ex_hi, True
        return lo, lo_ex, hi, hi_ex

    def _integer(self, s: Mapping[str, Any]) -> int:
        lo, lo_ex, hi, hi_ex = self._bounds(s)
        low = None if lo is None else (math.floor(lo) + 1 if lo_ex else math.ceil(lo))
        high = None if hi is None else (math.ceil(hi) - 1 if hi_ex else math.floor(hi))
        if low is not None and high is not None:
            value = low + (high - low) // 2
        elif low is not None:
            value = max(low, 1)
        elif high is not None:
            value = min(high, 1)
        else:
            value = 1
        step = s.get("multipleOf")
        if isinstance(step, int) and step > 0 and value % step:
            value = math.ceil(value / step) * step
        return value

    def _number(self, s: Mapping[str, Any]) -> float:
        lo, lo_ex, hi, hi_ex = self._bounds(s)
        if lo is not None and hi is not None:
            return (lo + hi) / 2
        if lo is not None:
            return float(lo) + (1.0 if lo_ex else 0.0) if lo > 0.5 or lo_ex else max(float(lo), 0.5)
        if hi is not None:
            return float(hi) - 1.0 if hi_ex and hi <= 0.5 else min(float(hi), 0.5)
        return 0.5
