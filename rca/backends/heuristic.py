"""Rule-based root-cause analysis: the offline fallback when Gemini is not available.

It reads only the Transcript: the error text (`outcome.error`), the task, the final answer
and the steps' structure (rca.backends.trace_facts), the way a careful human skims them, and
fills the same answer schema the model fills, so everything downstream (cache, charts,
comparisons) works unchanged. Each rule names a category; where the failure was decided
(root_cause_step and its candidates, as transcript step indices) is rca.backends.step_choice's
call, and the fix follows from what the rule found. Confidence stays in 0.3–0.6: a rule sees
symptoms, not intent.

Rule precedence (the first rule that fires wins; an earlier cause explains later symptoms):

1. Infrastructure: 429 / quota / deadline / timeout / 5xx / container or connection
   faults in the error text; or such faults in error steps (CLI stderr, client errors)
   with no agent output after them (a 429 that was retried before the agent answered is
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
from collections.abc import Iterator
from dataclasses import dataclass, field

from pydantic import BaseModel

from rca.backends import AnalysisOutcome, AnalysisRequest
from rca.backends.fixes import (assertion_fix, choice_fix, for_agent, infra_fix, invented_fix, loop_fix, misuse_fix,
                                schema_fix, starved_fix)
from rca.backends.quotes import Needle, evidence, quote_at
from rca.backends.step_choice import (agent_of, answer_origin, candidates, decision_behind, fatal_fault, first_use,
                                      guess_step, plan_of, reasoning_before, rejected)
from rca.backends.trace_facts import HEAD, ToolResult, TraceFacts, has_identifier, read_facts
from rca.errors import ParameterError
from rca.schema import DEFAULT_TAXONOMY, Taxonomy, answer_model
from rca.transcript import Transcript

__all__ = ["CATEGORIES", "HeuristicBackend", "diagnose", "from_env", "require_default_categories"]

INFRA, SCHEMA, HALLU, STARVE, MISUSE, LOGIC = (
    "Infrastructure", "Schema Violation", "Hallucination", "Context Starvation", "Tool Misuse", "Logic Error")
CATEGORIES = (STARVE, HALLU, MISUSE, SCHEMA, LOGIC, INFRA)
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
    (re.compile(r"'([\w.]+\.\w+)' does not exist"), lambda m: (m[1].rpartition(".")[2], m[1].rpartition(".")[0])),
)
_EXTRA = re.compile(r"^(?:E[ \t]+)?(\w+)\n(?:E)?[ \t]+Extra inputs are not permitted", re.MULTILINE)
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
_LISTING = re.compile(r"(?i:list|glob|find|tree|\bls\b|search|grep)")


@dataclass
class _Finding:
    category: str
    step: int | None
    confidence: float
    explanation: str
    expected: str
    actual: str
    needles: list[Needle]
    fix: str
    others: list[int | None] = field(default_factory=list)  # further candidate steps, most likely first
    symbols: list[str] = field(default_factory=list)


def _extra_inputs(error: str) -> Iterator[tuple[str, str, int]]:
    """(Class.field, Class, where its error starts) for every field a pydantic error calls an extra input."""
    headers = list(_PYDANTIC.finditer(error))
    for header, after in zip(headers, [*headers[1:], None]):
        for m in _EXTRA.finditer(error, header.end(), after.start() if after else len(error)):
            yield f"{header[1]}.{m[1]}", header[1], header.start()


def _symbols(error: str) -> list[tuple[str, str, str]]:
    """(symbol, owner, error line) per import/attribute/keyword error in the error text, builtins left out."""
    found: dict[str, tuple[str, str, str]] = {}
    named = [(*name(m), m.start()) for pattern, name in _SYMBOL for m in pattern.finditer(error)]
    for symbol, owner, at in [*named, *_extra_inputs(error)]:
        if symbol.rpartition(".")[2] not in _BUILTINS and owner not in _BUILTINS and symbol not in found:
            line = re.sub(r"^E\s+", "", quote_at(error, at, at + 1) or symbol)
            found[symbol] = (symbol, owner, line[:160])
    return list(found.values())


def _unverified(trace: TraceFacts, error: str, seen: str) -> list[str]:
    """Names the agent committed to that no useful tool output showed.

    A class the task itself names counts as shown (the agent did not invent it); a
    parameter or attribute must be backed by a tool, even if the task mentions it.
    """
    names = dict.fromkeys([*_ANSWERED.findall(error), *_BACKTICK.findall(trace.writer_text())])
    leaves = (name.rstrip(".").rpartition(".")[2] for name in names)
    return [leaf for leaf in leaves if len(leaf) >= 3 and not has_identifier(leaf, seen)
            and not (leaf[0].isupper() and has_identifier(leaf, trace.prompt))]


# -- rules ------------------------------------------------------------------------------


def _infra(trace: TraceFacts, error: str) -> _Finding | None:
    text, where = error, "the harness error"
    if not (m := _INFRA.search(error)):
        if _JUDGED.search(error):
            return None
        last_answer = max((s for s, _ in trace.answers), default=-1)
        hits = [(s, t, m) for s, t in trace.errors if s > last_answer and (m := _INFRA.search(t))]
        if not hits:
            return None
        _s, text, m = hits[0]
        where = "the client's error output, after which the model produced nothing"
    sign = (quote_at(text, *m.span()) or m.group(0))[:160]
    step = fatal_fault(trace, _INFRA)
    last_fault = max((s for s, t in trace.errors if _INFRA.search(t)), default=None)
    return _Finding(
        INFRA, step, 0.6,
        f"The attempt died on an environment fault in {where}, not on anything the agent decided: {sign}",
        "The model call and sandbox complete, so the agent's answer can be judged.",
        f"The run stopped on {m.group(0)!r} before a judgeable answer existed.",
        [(_INFRA, step), (_INFRA, None)], infra_fix(sign), [last_fault, trace.final_answer()],
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
        schema_fix(model[1] if model else "the answer format", bad[2] if bad else None, bad[3] if bad else None, error),
        [reasoning_before(trace, step)],
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
    step = decision_behind(trace, first)
    args = trace.transcript.steps[first.call].tool_args if first.call is not None else None
    return _Finding(
        MISUSE, step, 0.5,
        f"The agent {why} ({tools}); no tool call succeeded, so it never saw the source it needed and guessed.",
        f"Call {tools} with valid arguments (list a directory before reading from it) and answer from the output.",
        f"It {why} ({first.name} {first.args[:80]}), got only errors from {len(trace.results)} tool calls, "
        "and answered anyway.",
        [(None, first.step), *((None, r.step) for r in (bad or missing)[1:2]), (None, trace.final_answer())],
        misuse_fix(first.name, first.misuse, args, first.text[:HEAD]),
        [first.call, *(decision_behind(trace, r) for r in (bad or missing)[1:2])],
    )


def _starved(trace: TraceFacts, error: str) -> _Finding | None:
    if trace.useful or not trace.answers:
        return None
    symbols = [s for s, *_ in _symbols(error)]
    guess = f" and guessed {', '.join(symbols)}" if symbols else ""
    tools = list(dict.fromkeys(r.name for r in trace.results))
    step = guess_step(trace)
    return _Finding(
        STARVE, step, 0.5 if trace.results else 0.4,
        f"The agent never got useful context from its tools, so its answer was a guess{guess}.",
        "Search and read the framework's source until the needed API is found, then answer from it.",
        f"Its {', '.join(tools)} calls returned only empty, no-match or error results; it answered anyway{guess}."
        if trace.results else f"It answered from memory without calling any tool{guess}.",
        [*((None, r.step) for r in trace.results[:2]), (None, step), *((s.rpartition(".")[2], None) for s in symbols[:1]),
         (None, trace.final_answer())],
        starved_fix(tools, symbols),
        [*(first_use(trace, s.rpartition(".")[2]) for s in symbols[:1]), trace.final_answer()], symbols,
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
    if has_identifier(leaf, seen):
        how, confidence = f"the tool output does show {leaf!r}, elsewhere than the agent used it", 0.4
    elif owner_leaf and has_identifier(owner_leaf, seen):
        how, confidence = f"the tool output shows {owner!r} but never {leaf!r}", 0.6
    else:
        how, confidence = f"no tool output ever showed {leaf!r}", 0.55 if named else 0.45
    tools = ", ".join(dict.fromkeys(name for _, name in trace.calls)) or "its tools"
    final = trace.final_answer()
    step = first_use(trace, leaf)
    step = final if step is None else step
    sign = f" ({named[0][2]})" if named else ""
    return _Finding(
        HALLU, step, confidence,
        f"The agent relied on {', '.join(symbols)}, which does not exist{sign}; {how}.",
        f"Use only names that {tools} showed to exist{f' in {owner}' if owner else ''}.",
        f"After reading real source with {tools}, it wrote {leaf!r} into its answer anyway.",
        [(leaf, step), (f"class {owner_leaf}" if owner_leaf else "", None), (None, step)],
        invented_fix(leaf, owner, seen, tools), [final, reasoning_before(trace, final)], symbols,
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
        MISUSE, decision_behind(trace, rs[0]), 0.4,
        f"The agent repeated the same failing {rs[0].name} call {len(rs)} times instead of changing its arguments.",
        f"After a failed {rs[0].name} call, change the arguments or use another tool.",
        f"It called {rs[0].name} {rs[0].args[:80]} {len(rs)} times, failing each time.",
        [(None, rs[0].step), (None, rs[-1].step)], loop_fix(rs[0].name, rs[0].args),
        [decision_behind(trace, rs[1]), rs[0].call],
    )


def _sign(error: str) -> str | None:
    """The line of the error text that best says what was judged wrong, most specific pattern first."""
    for pattern in _LOGIC:
        if m := pattern.search(error):
            line = quote_at(error, *m.span())
            return re.sub(r"^E\s+", "", line)[:160] if line else m.group(0)
    return None


def _logic(trace: TraceFacts, error: str) -> _Finding:
    sign, final = _sign(error), trace.final_answer()
    step = answer_origin(trace, error)
    before = [s for s, _ in trace.answers if final is not None and s < final]
    needles: list[Needle] = [(None, final), *((None, s) for s in before[-1:])]
    answered = _ANSWERED.search(error)
    if choice := re.search(r"Expected '([^']*)', but got '([^']*)'", error):
        actual, fix = f"It chose {choice[2]!r}; the correct choice was {choice[1]!r}.", choice_fix(choice[1], choice[2])
        needles.insert(0, (f'"answer": "{choice[2]}"', final))
    else:
        actual = (f"It answered {answered[1]!r}, a real name but not the one the task asks for." if answered
                  else f"Its final answer (step {final}) was accepted as well-formed, then failed the harness's check.")
        fix = assertion_fix(sign, rejected(error))
    needles += [(name, final) for name in _ANSWERED.findall(error)[:1]]
    basis = ("The answer was well-formed and built on what the tools showed, but wrong" if trace.useful else
             "The answer was well-formed but wrong" if trace.answers else
             "No trace was recorded; the error text shows a well-formed answer judged wrong")
    last_call = plan_of(trace, trace.calls[-1][0]) if trace.calls else None
    return _Finding(
        LOGIC, step, (0.45 if trace.answers else 0.4) if sign else 0.3,
        basis + (f"; the harness reports: {sign}" if sign else "; no clearer sign was found."),
        "Produce an answer whose behaviour matches the task and passes its checks.",
        actual, needles if trace.answers else [], fix, [final, last_call],
    )


_RULES = (_infra, _schema, _misuse_starved, _starved, _hallucination, _looping)


# -- public API -------------------------------------------------------------------------


def require_default_categories(taxonomy: Taxonomy) -> None:
    """Raise ParameterError unless the taxonomy holds the six default categories the rules map to."""
    if missing := [name for name in CATEGORIES if name not in taxonomy.names]:
        raise ParameterError(
            f"the heuristic backend maps to the default categories {list(CATEGORIES)}, but taxonomy "
            f"{taxonomy.name!r} lacks {missing}; analyze a custom taxonomy with the gemini backend (--backend gemini)"
        )


def diagnose(transcript: Transcript, *, taxonomy: Taxonomy = DEFAULT_TAXONOMY) -> BaseModel:
    """The rule-based answer for one failed attempt: an instance of answer_model(taxonomy).

    Reads only the transcript; its step indices are the ones the answer cites.
    """
    require_default_categories(taxonomy)
    error = transcript.outcome.error or ""
    if len(error) > 2 * _ERROR_CHARS:  # pieces joined at a line break, so every quote stays verbatim
        error = error[:_ERROR_CHARS] + "\n" + error[-_ERROR_CHARS:]
    trace = read_facts(transcript)
    finding = next((f for rule in _RULES if (f := rule(trace, error)) is not None), None) or _logic(trace, error)
    if not finding.symbols and finding.category not in (INFRA, SCHEMA):
        finding.symbols = [s for s, *_ in _symbols(error)]
    tools = [name for _, name in trace.calls] or [r.name for r in trace.results]
    agent = agent_of(trace, finding.step)
    return answer_model(taxonomy)(
        root_cause_category=finding.category,
        explanation=finding.explanation,
        expected_behavior=finding.expected,
        actual_behavior=finding.actual,
        root_cause_step=finding.step,
        candidate_steps=candidates(finding.step, *finding.others),
        root_cause_agent=agent,
        evidence=evidence(trace, finding.needles, error, _LOGIC),
        fix=for_agent(finding.fix, agent),
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
            answer = diagnose(request.transcript, taxonomy=request.taxonomy)
        except Exception as exc:
            return AnalysisOutcome(error=f"heuristic failed: {type(exc).__name__}: {exc}",
                                   latency_s=time.perf_counter() - started)
        return AnalysisOutcome(answer=answer, latency_s=time.perf_counter() - started)


def from_env(model: str | None = None, **settings: object) -> HeuristicBackend:
    """The registry's factory. The rules need no key, model, timeout or price: all are ignored."""
    return HeuristicBackend()
