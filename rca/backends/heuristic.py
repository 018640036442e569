"""Rule-based root-cause analysis: the offline fallback when Gemini is not available.

It reads the harness's error text and the trace's structure (rca.backends.trace_facts)
the way a careful human skims them, and fills the same answer schema the model fills, so
everything downstream (cache, charts, comparisons) works unchanged. Confidence stays in 0.3–0.6: a rule sees
symptoms, not intent.

Rule precedence (the first rule that fires wins; an earlier cause explains later symptoms):

1. Infrastructure: 429 / quota / deadline / timeout / 5xx / container or connection
   faults in the error text; or such faults in CLI_STDERR / GEMINI_CLIENT_ERROR events
   with no model output after them (a 429 that was retried before the agent answered is
   noise, not the cause).
2. Schema Violation: the final answer could not be parsed or validated (JSON errors, a
   pydantic error on the answer model, the `create_agent` entry point missing). A
   pydantic error raised while the tests *ran* the agent's code is not one: it is the
   agent's code misusing a framework class, judged by the rules below.
3. Tool Misuse (starving): no tool call returned anything useful, and the failures were
   caused by the agent's arguments (directory read as a file, bad regex, unknown tool or
   argument, missing paths probed repeatedly without listing first).
4. Context Starvation: the agent answered although no tool returned anything useful (or
   it called none). An ImportError then is a guess, not an invention.
5. Hallucination: tools did return useful output, and the agent still used a symbol they
   never showed or that contradicts them: from the error text (ImportError,
   AttributeError, unknown keyword, "does not exist") or a name it wrote in backticks.
6. Tool Misuse (looping): the same failing call repeated.
7. Logic Error: everything else (assertions, "expected X but got Y", a wrong choice).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Union

from pydantic import BaseModel

from rca.backends import AnalysisOutcome, AnalysisRequest
from rca.backends.trace_facts import HEAD, ToolResult, TraceFacts, read_facts
from rca.errors import ParameterError
from rca.redact import redact
from rca.schema import DEFAULT_TAXONOMY, Taxonomy, answer_model

__all__ = ["CATEGORIES", "HeuristicBackend", "diagnose", "from_env", "require_default_categories"]

INFRA, SCHEMA, HALLU, STARVE, MISUSE, LOGIC = (
    "Infrastructure", "Schema Violation", "Hallucination", "Context Starvation", "Tool Misuse", "Logic Error")
CATEGORIES = (STARVE, HALLU, MISUSE, SCHEMA, LOGIC, INFRA)
MAX_QUOTE = 200
_SCAN = 20_000  # error signs sit at the start or end of a long text
_SHOWN = 3_000  # the rendered trace keeps about this much of each end of a long step
_ERROR_CHARS = 50_000  # of a huge error text (a whole pytest log) its head and tail are read

_INFRA = re.compile(
    r"(?<!line )(?<![\w:.])429(?![\w:.])|RESOURCE_EXHAUSTED|ResourceExhausted|DEADLINE_EXCEEDED|DeadlineExceeded"
    r"|TimeoutError|\b50[0234] (?:INTERNAL|UNAVAILABLE|Deadline|Service Unavailable|Bad Gateway|Gateway Timeout"
    r"|Internal Server Error)"
    r"|ServerError|ServiceUnavailable|libpod|/containers/[^\s\"]*/exec|failed with code 12[56]|OCI runtime"
    r"|ConnectionError|ConnectError|RemoteDisconnected|Connection (?:refused|reset|aborted)"
    r"|(?i:quota exceeded|check quota|rate.?limit|timed out|model is overloaded|broken pipe)"
)
_PARSE_FAIL = re.compile(
    r"(?i:failed to parse|could not parse|unable to parse|no JSON object|not valid JSON|invalid JSON|malformed)"
    r"|JSONDecodeError|Expecting (?:value|property name|',' delimiter)|Unterminated string|Unexpected token"
    r"|does not define '?create_agent|has no attribute 'create_agent'|Signature Verification Failed"
)
_PYDANTIC = re.compile(r"validation errors? for (\w+)")
_FIELD = r"validation errors? for (\w+)\n(?:E[ \t]+)?(\w+)\n(?:E)?\s+"  # pytest prefixes its lines with "E"
_BAD_FIELD = re.compile(_FIELD + "(Field required|Extra inputs are not permitted)")
_CODE_RAN = re.compile(r"test session starts|Traceback \(most recent call last\)|^E\s{2,}\S", re.MULTILINE)
_DOTTED = lambda m: (f"{m[1]}.{m[2]}", m[1])  # noqa: E731  (Class.attribute, Class)
_SYMBOL = (  # an error naming a symbol -> (symbol, where it was looked up)
    (re.compile(r"cannot import name '([\w.]+)' from '([\w.]+)'"), lambda m: (m[1], m[2])),
    (re.compile(r"No module named '([\w.]+)'"), lambda m: (m[1], m[1].rpartition(".")[0])),
    (re.compile(r"module '([\w.]+)' has no attribute '(\w+)'"), lambda m: (m[2], m[1])),
    (re.compile(r"type object '(\w+)' has no attribute '(\w+)'"), _DOTTED),
    (re.compile(r"'(\w+)' object has no attribute '(\w+)'"), _DOTTED),
    (re.compile(r"\b(\w+)(?:\.__init__)?\(\) got an unexpected keyword argument '(\w+)'"), _DOTTED),
    (re.compile(_FIELD + "Extra inputs are not permitted"), _DOTTED),
    (re.compile(r"'([\w.]+\.\w+)' does not exist"), lambda m: (m[1].rpartition(".")[2], m[1].rpartition(".")[0])),
)
_BUILTINS = frozenset({"NoneType", "str", "int", "float", "bool", "bytes", "dict", "list", "tuple", "set",
                       "function", "method", "coroutine", "generator", "object", "type", "BaseModel", "create_agent"})
_ANSWERED = re.compile(r"Answer '([\w.]+)' does not match")
_BACKTICK = re.compile(r"(?<!`)`(?!`)([A-Za-z_][\w.]{2,})")  # `name`, not a ``` fence
_LOGIC = tuple(re.compile(p, re.MULTILINE) for p in (  # what was judged wrong, most specific first
    r"AssertionError\b", r"Expected '[^'\n]*', but got '[^'\n]*'", r"Answer '[^'\n]*' does not match",
    r"^E?\s*assert\b", r"(?i:\bexpected\b[^\n]{0,80}\bgot\b)", r"\b\w+Error\b", r"does not (?:match|exist)",
    r"(?i:wrong answer)", r"(?i:\bfailed\b)",
))
_JUDGED = re.compile(r"AssertionError|Expected '[^'\n]*', but got|does not match|validation error|ImportError|"
                     r"ModuleNotFoundError|has no attribute")
_PATH_MISSING = re.compile(r"(?i:no such file or directory|FileNotFoundError|(?:file|directory|path) not found"
                           r"|does not exist|ENOENT)")
_SUBSTANCE = re.compile(r"^[ \t]*(?!```)[^\s{}\[\]()][^\n]{2,}", re.MULTILINE)
_LISTING = re.compile(r"(?i:list|glob|find|tree|\bls\b|search|grep)")

Needle = tuple[Union["re.Pattern[str]", str, None], Union[int, None]]  # what to quote (None: a line), at which step


@dataclass
class _Finding:
    category: str
    step: int | None
    confidence: float
    explanation: str
    expected: str
    actual: str
    needles: list[Needle]
    symbols: list[str] = field(default_factory=list)


def _symbols(error: str) -> list[tuple[str, str, str]]:
    """(symbol, owner, error line) per import/attribute/keyword error in the error text, builtins left out."""
    found: dict[str, tuple[str, str, str]] = {}
    for pattern, name in _SYMBOL:
        for m in pattern.finditer(error):
            symbol, owner = name(m)
            if symbol.rpartition(".")[2] not in _BUILTINS and owner not in _BUILTINS and symbol not in found:
                line = re.sub(r"^E\s+", "", _quote(error, m.start(), m.start() + 1) or m.group(0))
                found[symbol] = (symbol, owner, line[:160])
    return list(found.values())


def _shown(name: str, text: str) -> bool:
    """`name` occurs in `text` as a whole identifier (str.find: megabytes of tool output are common)."""
    at = text.find(name)
    while at >= 0:
        end = at + len(name)
        if not (at and (text[at - 1].isalnum() or text[at - 1] == "_")) and not (
                end < len(text) and (text[end].isalnum() or text[end] == "_")):
            return True
        at = text.find(name, at + 1)
    return False


def _unverified(trace: TraceFacts, error: str, seen: str) -> list[str]:
    """Names the agent committed to that no useful tool output showed.

    A class the task itself names counts as shown (the agent did not invent it); a
    parameter or attribute must be backed by a tool, even if the task mentions it.
    """
    names = dict.fromkeys([*_ANSWERED.findall(error), *_BACKTICK.findall(trace.writer_text())])
    leaves = (name.rstrip(".").rpartition(".")[2] for name in names)
    return [leaf for leaf in leaves if len(leaf) >= 3 and not _shown(leaf, seen)
            and not (leaf[0].isupper() and _shown(leaf, trace.prompt))]


# -- quoting ----------------------------------------------------------------------------


def _quote(text: str, start: int, end: int) -> str | None:
    """The line around text[start:end], cut to MAX_QUOTE chars, if it is safe to show."""
    lo, hi = text.rfind("\n", 0, start) + 1, text.find("\n", end)
    hi = len(text) if hi < 0 else hi
    if hi - lo > MAX_QUOTE:  # a window around the match, cut at spaces where one is near
        line_lo, line_hi = lo, hi
        lo = max(lo, start - (MAX_QUOTE - min(end - start, MAX_QUOTE)) // 2)
        hi = min(hi, lo + MAX_QUOTE)
        if lo > line_lo and 0 <= (gap := text.find(" ", lo, min(start, lo + 30))):
            lo = gap + 1
        if hi < line_hi and (gap := text.rfind(" ", max(end, hi - 30), hi)) >= 0:
            hi = gap
    quote = text[lo:hi].strip()
    return quote if len(quote) >= 3 and redact(quote) == quote else None


def _span(text: str, needle: re.Pattern[str] | str | None) -> tuple[int, int] | None:
    """Where `needle` occurs, preferring the ends of a long text: the rendered trace keeps those."""
    if needle is None:  # the first line with some substance
        m = _SUBSTANCE.search(text, 0, _SCAN)
        return m.span() if m else None
    n = len(text)
    for lo, hi in ((0, _SHOWN), (n - _SHOWN, n), (0, _SCAN), (n - _SCAN, n)):
        lo = max(lo, 0)
        if isinstance(needle, str):
            if needle and (at := text.find(needle, lo, hi)) >= 0:
                return at, at + len(needle)
        elif m := needle.search(text, lo, hi):
            return m.span()
    return None


def _find(trace: TraceFacts, needle: re.Pattern[str] | str | None, step: int | None) -> tuple[int, str] | None:
    """A one-line quote of `needle` at `step` (anywhere but the task prompt if None), latest first."""
    for s, text, raw in reversed(trace.texts):
        if (s != step) if step is not None else (s in trace.prompt_steps):
            continue
        if (span := _span(text, needle)) and (quote := _quote(text, *span)):
            if raw or not ('"' in quote or "\\" in quote):  # nested values are rendered as JSON, escaped
                return s, quote
    return None


def _evidence(trace: TraceFacts, finding: _Finding, error_text: str | None) -> list[dict[str, Any]]:
    quotes: list[dict[str, Any]] = []
    for needle, step in finding.needles:
        hit = _find(trace, needle, step) if needle != "" else None
        if hit and all(q["quote"] != hit[1] for q in quotes):
            quotes.append({"step": hit[0], "quote": hit[1]})
    if not quotes and error_text:  # nothing in the trace to quote: the harness's message, which is no step
        patterns = [*(n for n, _ in finding.needles if isinstance(n, re.Pattern)), *_LOGIC]
        pattern = next((p for p in patterns if p.search(error_text)), None)
        if (span := _span(error_text, pattern)) and (quote := _quote(error_text, *span)):
            quotes.append({"step": None, "quote": quote})
    return quotes[:3]


# -- rules ------------------------------------------------------------------------------


def _infra(trace: TraceFacts, error: str) -> _Finding | None:
    step, where = None, "the harness error"
    if not (m := _INFRA.search(error)):
        if _JUDGED.search(error):
            return None
        last_answer = trace.answers[-1][0] if trace.answers else -1
        hits = [(s, m) for s, text in trace.errors if s > last_answer and (m := _INFRA.search(text))]
        if not hits:
            return None
        (step, m), where = hits[-1], "the client's error output, after which the model produced nothing"
    text = error if step is None else dict(trace.errors)[step]
    sign = (_quote(text, *m.span()) or m.group(0))[:160]
    return _Finding(
        INFRA, step if step is not None else next((s for s, t in reversed(trace.errors) if _INFRA.search(t)),
                                                  trace.final_answer()), 0.6,
        f"The attempt died on an environment fault in {where}, not on anything the agent decided: {sign}",
        "The model call and sandbox complete, so the agent's answer can be judged.",
        f"The run stopped on {m.group(0)!r} before a judgeable answer existed.",
        [(_INFRA, step), (_INFRA, None)],
    )


def _schema(trace: TraceFacts, error: str) -> _Finding | None:
    m, model = _PARSE_FAIL.search(error), _PYDANTIC.search(error)
    if not m and not (model and not _CODE_RAN.search(error)):
        return None
    sign = (m or model).group(0)  # type: ignore[union-attr]
    step = trace.final_answer()
    what = f"the {model[1]} schema" if model else "the required answer format"
    bad = _BAD_FIELD.search(error)
    detail = f" (field {bad[2]!r}: {bad[3]})" if bad else ""
    return _Finding(
        SCHEMA, step, 0.55,
        f"The final answer does not satisfy {what}{detail}; the harness reports {sign!r}.",
        f"Return one JSON object that parses and validates against {what}.",
        f"It returned an answer the harness rejected with {sign!r}{detail}.",
        [(f"\"{bad[2]}\"" if bad and bad[3].startswith("Extra") else "", step), (None, step)],
    )


def _misuse_starved(trace: TraceFacts, error: str) -> _Finding | None:
    if trace.useful or not trace.results:
        return None
    bad = [r for r in trace.results if r.misuse]
    missing = [r for r in trace.results if _PATH_MISSING.search(r.text[:HEAD])]
    listed = bool(missing) and any(_LISTING.search(name) for s, name in trace.calls if s < missing[0].step)
    if not bad and (len(missing) < 2 or listed):
        return None
    first = (bad or missing)[0]
    why = first.misuse or "guessed file paths that do not exist without listing the directory first"
    tools = ", ".join(dict.fromkeys(r.name for r in (bad or missing)))
    return _Finding(
        MISUSE, first.step, 0.5,
        f"The agent {why} ({tools}); no tool call succeeded, so it never saw the source it needed and guessed.",
        f"Call {tools} with valid arguments (list a directory before reading from it) and answer from the output.",
        f"It {why} ({first.name} {first.args[:80]}), got only errors from {len(trace.results)} tool calls, "
        "and answered anyway.",
        [(None, first.step), *((None, r.step) for r in (bad or missing)[1:2]), (None, trace.final_answer())],
    )


def _starved(trace: TraceFacts, error: str) -> _Finding | None:
    if trace.useful or not trace.answers:
        return None
    symbols = [s for s, *_ in _symbols(error)]
    guess = f" and guessed {', '.join(symbols)}" if symbols else ""
    tools = ", ".join(dict.fromkeys(r.name for r in trace.results))
    return _Finding(
        STARVE, trace.final_answer(), 0.5 if trace.results else 0.4,
        f"The agent never got useful context from its tools, so its answer was a guess{guess}.",
        "Search and read the framework's source until the needed API is found, then answer from it.",
        f"Its {tools} calls returned only empty, no-match or error results; it answered anyway{guess}."
        if trace.results else f"It answered from memory without calling any tool{guess}.",
        [*((None, r.step) for r in trace.results[:2]), *((s.rpartition(".")[2], None) for s in symbols[:1]),
         (None, trace.final_answer())], symbols,
    )


def _hallucination(trace: TraceFacts, error: str) -> _Finding | None:
    if not trace.useful:
        return None
    seen = "\n".join(r.text for r in trace.useful)
    named = _symbols(error)
    symbols = [s for s, *_ in named] or _unverified(trace, error, seen)
    if not symbols:
        return None
    leaf, owner = symbols[0].rpartition(".")[2], named[0][1] if named else ""
    owner_leaf = owner.rpartition(".")[2]
    if _shown(leaf, seen):
        how, confidence = f"the tool output does show {leaf!r}, elsewhere than the agent used it", 0.4
    elif owner_leaf and _shown(owner_leaf, seen):
        how, confidence = f"the tool output shows {owner!r} but never {leaf!r}", 0.6
    else:
        how, confidence = f"no tool output ever showed {leaf!r}", 0.55 if named else 0.45
    tools = ", ".join(dict.fromkeys(name for _, name in trace.calls)) or "its tools"
    step = next((s for s, t in reversed(trace.answers) if leaf in t), trace.final_answer())
    sign = f" ({named[0][2]})" if named else ""
    return _Finding(
        HALLU, step, confidence,
        f"The agent relied on {', '.join(symbols)}, which does not exist{sign}; {how}.",
        f"Use only names that {tools} showed to exist{f' in {owner}' if owner else ''}.",
        f"After reading real source with {tools}, it wrote {leaf!r} into its answer anyway.",
        [(leaf, step), (f"class {owner_leaf}" if owner_leaf else "", None), (None, step)], symbols,
    )


def _looping(trace: TraceFacts, error: str) -> _Finding | None:
    failing: dict[tuple[str, str], list[ToolResult]] = {}
    for r in trace.results:
        if r.status != "useful":
            failing.setdefault((r.name, r.args), []).append(r)
    repeated = [rs for rs in failing.values() if len(rs) >= 3 or (len(rs) == 2 and rs[0].misuse)]
    if not repeated:
        return None
    rs = max(repeated, key=len)
    return _Finding(
        MISUSE, rs[0].step, 0.4,
        f"The agent repeated the same failing {rs[0].name} call {len(rs)} times instead of changing its arguments.",
        f"After a failed {rs[0].name} call, change the arguments or use another tool.",
        f"It called {rs[0].name} {rs[0].args[:80]} {len(rs)} times, failing each time.",
        [(None, rs[0].step), (None, rs[-1].step)],
    )


def _sign(error: str) -> str | None:
    """The line of the error text that best says what was judged wrong, most specific pattern first."""
    for pattern in _LOGIC:
        if m := pattern.search(error):
            line = _quote(error, *m.span())
            return re.sub(r"^E\s+", "", line)[:160] if line else m.group(0)
    return None


def _logic(trace: TraceFacts, error: str) -> _Finding:
    sign, final = _sign(error), trace.final_answer()
    before = [s for s, _ in trace.answers if final is not None and s < final]
    needles: list[Needle] = [(None, final), *((None, s) for s in before[-1:])]
    if choice := re.search(r"Expected '([^']*)', but got '([^']*)'", error):
        actual = f"It chose {choice[2]!r}; the correct choice was {choice[1]!r}."
        needles.insert(0, (f'"answer": "{choice[2]}"', final))
    else:
        answered = _ANSWERED.search(error)
        actual = (f"It answered {answered[1]!r}, a real name but not the one the task asks for." if answered
                  else f"Its final answer (step {final}) was accepted as well-formed, then failed the harness's check.")
    needles += [(name, final) for name in _ANSWERED.findall(error)[:1]]
    basis = ("The answer was well-formed and built on what the tools showed, but wrong" if trace.useful else
             "The answer was well-formed but wrong" if trace.answers else
             "No trace was recorded; the error text shows a well-formed answer judged wrong")
    return _Finding(
        LOGIC, final, (0.45 if trace.texts else 0.4) if sign else 0.3,
        basis + (f"; the harness reports: {sign}" if sign else "; no clearer sign was found."),
        "Produce an answer whose behaviour matches the task and passes its checks.",
        actual, needles if trace.answers else [],
    )


_RULES = (_infra, _schema, _misuse_starved, _starved, _hallucination, _looping)


# -- public API -------------------------------------------------------------------------


def require_default_categories(taxonomy: Taxonomy) -> None:
    """Raise ParameterError unless the taxonomy holds the six default categories the rules map to."""
    if missing := [name for name in CATEGORIES if name not in taxonomy.names]:
        raise ParameterError(
            f"the heuristic backend maps to the default categories {list(CATEGORIES)}, but taxonomy "
            f"{taxonomy.name!r} lacks {missing}; pass backend='gemini' for a custom taxonomy"
        )


def diagnose(events: list[dict[str, Any]], error_text: str | None, taxonomy: Taxonomy = DEFAULT_TAXONOMY) -> BaseModel:
    """The rule-based answer for one failed attempt: an instance of answer_model(taxonomy)."""
    require_default_categories(taxonomy)
    error = error_text or ""
    if len(error) > 2 * _ERROR_CHARS:  # pieces joined at a line break, so every quote stays verbatim
        error = error[:_ERROR_CHARS] + "\n" + error[-_ERROR_CHARS:]
    trace = read_facts(events or [])
    finding = next((f for rule in _RULES if (f := rule(trace, error)) is not None), None) or _logic(trace, error)
    if not finding.symbols and finding.category not in (INFRA, SCHEMA):
        finding.symbols = [s for s, *_ in _symbols(error)]
    tools = [name for _, name in trace.calls] or [r.name for r in trace.results]
    return answer_model(taxonomy)(
        root_cause_category=finding.category,
        explanation=finding.explanation,
        expected_behavior=finding.expected,
        actual_behavior=finding.actual,
        root_cause_step=finding.step,
        evidence=_evidence(trace, finding, error),
        confidence=finding.confidence,
        used_tools=bool(tools),
        tools_called=list(dict.fromkeys(tools)),
        received_useful_output=bool(trace.useful),
        hallucinated_symbols=finding.symbols,
        schema_validation_failed=finding.category == SCHEMA or _schema(trace, error) is not None,
    )


class HeuristicBackend:
    """The Backend protocol over `diagnose`: no network, no tokens, no cost."""

    name = "heuristic"
    model = "heuristic"
    check_taxonomy = staticmethod(require_default_categories)  # Backend hook, before any row

    async def analyze(self, request: AnalysisRequest) -> AnalysisOutcome:
        """One answer. A custom taxonomy raises (a setup error for every row); any other failure
        becomes this row's error, so one odd trace cannot stop a batch."""
        require_default_categories(request.taxonomy)
        started = time.perf_counter()
        try:
            answer = diagnose(request.events, request.error_text, request.taxonomy)
        except Exception as exc:
            return AnalysisOutcome(error=f"heuristic failed: {type(exc).__name__}: {exc}",
                                   latency_s=time.perf_counter() - started)
        return AnalysisOutcome(answer=answer, latency_s=time.perf_counter() - started)


def from_env(model: str | None = None) -> HeuristicBackend:
    """The registry's factory. The rules need no key and read no model, so `model` is not used."""
    return HeuristicBackend()
