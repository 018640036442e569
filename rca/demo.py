"""A realistic demo benchmark_runs folder, so rca can be tried (and tested) without real runs.

`make_demo` writes three runs of two generators over five suites in the harness's format
(see shared/docs/harness-format.md), one of them as a YAML stream. Every failure is scripted
from one of the six root causes (rca._demo_scenarios) with the evidence a careful reader
needs, and often with an error text that points a regex elsewhere. The intended causes are
never written to disk: `demo_ground_truth` re-derives them from the seed, so an analyzer
cannot peek but a test can grade it.
"""

from __future__ import annotations

import json
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rca._demo_scenarios import (
    CATEGORIES, CONTAINER_SCENARIO, INFRA, QUOTA, QUOTA_SCENARIO, SCENARIOS, SCHEMA, SUITES, Case, Outcome, Step,
    build_cases, prompt_for,
)
from rca.transcript import Step as TranscriptStep
from rca.transcript import Transcript

__all__ = ["CATEGORIES", "demo_decisive_steps", "demo_ground_truth", "demo_scenarios", "make_demo"]

GENERATORS = (("Generator: adk_workflow_agent", False, "gemini-2.5-flash"),
              ("Agent: gemini_cli_agent", True, "gemini-2.5-pro"))
BASE_EPOCH = 1768606775  # 2026-01-16 23:39:35 UTC: the first run id for the default seed
RUNS = 3
YAML_RUN = 2  # this run is written as trace.yaml, the others as trace.jsonl
TRACE_KEYS = ("type", "timestamp", "source", "role", "author", "tool_name", "tool_call_id",
              "tool_input", "tool_output", "content", "details")
PART_KEYS = ("media_resolution", "code_execution_result", "executable_code", "file_data", "function_call",
             "function_response", "inline_data", "text", "thought", "thought_signature", "video_metadata")
GroundTruth = dict[tuple[str, str, int | None], str]


def _rng(*parts: object) -> random.Random:
    """An independent stream per (seed, run, case, ...): changing one case never shifts another."""
    return random.Random(":".join(map(str, parts)))


# --- the plan: which case fails how, decided before anything is rendered ------------------

@dataclass(frozen=True)
class CasePlan:
    case: Case
    attempts: tuple[str | None, ...]  # root cause of each attempt; (None,) is a clean pass

    @property
    def failed(self) -> bool:
        return self.attempts[-1] is not None


@dataclass(frozen=True)
class RunPlan:
    run_id: str
    start: float
    sections: tuple[tuple[int, tuple[CasePlan, ...]], ...]  # (generator index, cases in file order)
    generation_failure: tuple[int, Case]  # (generator index, case): no test_result, only that event


def _attempt_causes(cause: str | None, rng: random.Random) -> tuple[str | None, ...]:
    """Retries happen only after failed attempts, so only the last attempt may be a 'success'."""
    if cause is None:
        return (INFRA, None) if rng.random() < 0.08 else (None,)
    if cause in (INFRA, SCHEMA):
        return (cause,) * rng.randint(1, 2)
    return ((INFRA,) if rng.random() < 0.2 else ()) + (cause,)


def _plan(seed: int) -> list[RunPlan]:
    """Per run: ~11 failing cases per generator, disjoint between generators so a case name
    identifies its failure within a run; causes dealt round-robin so all six stay balanced."""
    cases = sorted(build_cases(), key=lambda c: (SUITES.index(c.suite), c.number))
    plans, start = [], float(BASE_EPOCH + (seed - 7) * 3 * 86_400)
    for r in range(RUNS):
        rng = _rng(seed, "run", r)
        start += rng.randrange(20 * 3600, 40 * 3600) + rng.random() if r else rng.random()
        order = rng.sample(cases, len(cases))
        sizes = rng.randint(10, 12), rng.randint(10, 12)
        failing = order[: sizes[0]], order[sizes[0]: sum(sizes)]
        gen_fail = (r % 2, order[sum(sizes)])
        sections = []
        for g in range(len(GENERATORS)):
            offset = rng.randrange(len(CATEGORIES))
            cause = {c.id: CATEGORIES[(offset + j) % len(CATEGORIES)] for j, c in enumerate(failing[g])}
            sections.append((g, tuple(CasePlan(c, _attempt_causes(cause.get(c.id), rng))
                                      for c in cases if (g, c) != gen_fail)))
        run_id = time.strftime("%Y-%m-%d_%H-%M-%S", time.gmtime(start))
        plans.append(RunPlan(run_id, start, tuple(sections), gen_fail))
    return plans


def _ground_truth(plans: list[RunPlan]) -> GroundTruth:
    truth: GroundTruth = {}
    for run in plans:
        for _g, cases in run.sections:
            for p in cases:
                if p.failed:  # every attempt of a failed case failed: retries follow failures only
                    truth.update({(run.run_id, p.case.name, n): cause for n, cause in enumerate(p.attempts, 1)})
        truth[(run.run_id, run.generation_failure[1].name, None)] = INFRA
    return truth


def demo_ground_truth(directory: str | Path, *, seed: int = 7) -> GroundTruth:
    """The intended root cause of each failure make_demo(directory, seed=seed) wrote, keyed by
    (run_id, benchmark_name, attempt_number); generation_failure events have attempt_number None
    (as rca.ingest records them). Raises if the folder was not made with this seed."""
    plans = _plan(seed)
    missing = [p.run_id for p in plans if not any((Path(directory) / p.run_id).glob("trace.*"))]
    if missing:
        raise FileNotFoundError(f"{directory} has no demo runs {missing} for seed {seed}")
    return _ground_truth(plans)


def demo_decisive_steps(directory: str | Path, *, seed: int = 7) -> dict[tuple[str, str, int | None], int | None]:
    """The transcript step where each failure make_demo(directory, seed=seed) wrote was decided
    (keyed as demo_ground_truth; None for a failure without steps).

    Each scenario marks its decisive scripted step; that step is found in the transcript rca
    reads back from the written files, so the index is the one an analyzer sees and cites.
    """
    from dataclasses import asdict  # rca's readers load pandas: only this grader needs them

    from rca.formats import get_format
    from rca.store import FailureRow
    from rca.traces import load_transcript

    truth = demo_ground_truth(directory, seed=seed)
    scripted = _outcomes(seed)
    steps: dict[tuple[str, str, int | None], int | None] = {}
    adapter = get_format("harness")
    for folder in sorted({run_id for run_id, _name, _n in truth}):
        for row in adapter.failures(Path(directory) / folder, folder):
            if isinstance(row, FailureRow):
                key = (row.run_id, row.benchmark_name, row.attempt_number)
                outcome = scripted.get(key)
                steps[key] = None if outcome is None else _find_step(load_transcript(asdict(row)), outcome)
    return steps


def demo_scenarios(directory: str | Path, *, seed: int = 7) -> dict[tuple[str, str, int | None], str]:
    """The specific cause each failure make_demo(directory, seed=seed) wrote was scripted from, as
    "<category>: <cause>" (e.g. "Tool Misuse: reads a directory as a file"), keyed as demo_ground_truth.

    A category has several causes, so a grouping of failures into patterns can be graded
    against these; like the categories, they are re-derived from the seed, never written.
    """
    truth = demo_ground_truth(directory, seed=seed)
    scenarios = {key: f"{truth[key]}: {outcome.scenario}" for key, outcome in _outcomes(seed).items()}
    for run in _plan(seed):
        g, case = run.generation_failure
        scenarios[(run.run_id, case.name, None)] = f"{INFRA}: {CONTAINER_SCENARIO if GENERATORS[g][1] else QUOTA_SCENARIO}"
    return scenarios


def _outcomes(seed: int) -> dict[tuple[str, str, int], Outcome]:
    """Every failed attempt's scripted outcome, keyed as demo_ground_truth."""
    return {(run.run_id, p.case.name, n): _scripted(p, g, n, _rng(seed, run.run_id, g, p.case.id, n))
            for run in _plan(seed) for g, cases in run.sections for p in cases if p.failed
            for n in range(1, len(p.attempts) + 1)}


def _find_step(transcript: Transcript, outcome: Outcome) -> int | None:
    """The transcript index of outcome.steps[outcome.decisive]: each scripted step matched in order."""
    if outcome.decisive is None:
        return None
    at = -1
    for scripted in outcome.steps[: outcome.decisive + 1]:
        at = next(s.index for s in transcript.steps[at + 1:] if _same_step(s, scripted))
    return at


def _same_step(step: TranscriptStep, scripted: Step) -> bool:
    if scripted.kind == "call":
        return step.kind == "tool_call" and step.tool_name == scripted.tool and step.tool_args == scripted.args
    if scripted.kind == "error":
        return step.kind == "error" and scripted.text in step.text
    # the answer's text may be the harness's structured answer rather than what the model wrote
    return step.kind == "final_answer" if scripted.kind == "say" else step.text == scripted.text


# --- rendering: steps -> one generator's trace events ------------------------------------

class _Clock:
    def __init__(self, t: float, rng: random.Random) -> None:
        self.t, self.rng = t, rng

    def tick(self, lo: float = 0.2, hi: float = 3.0) -> float:
        self.t += self.rng.uniform(lo, hi)
        return round(self.t, 6)


def _event(type_: str, ts: float, **fields: Any) -> dict[str, Any]:
    return {k: ts if k == "timestamp" else type_ if k == "type" else fields.get(k) for k in TRACE_KEYS}


def _part(rng: random.Random | None = None, **fields: Any) -> dict[str, Any]:
    """A genai Part as ADK logs it: every key present. A signature is an opaque byte repr."""
    part = {k: fields.get(k) for k in PART_KEYS}
    if rng is not None:
        part["thought_signature"] = repr(b"\n\xa5\x06" + rng.randbytes(rng.randrange(180, 420)))
    return part


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _adk_trace(steps: tuple[Step, ...], prompt: str, clock: _Clock, rng: random.Random) -> list[dict[str, Any]]:
    """ADK workflow: a retrieval_worker sub-agent researches, a code_writer sub-agent answers."""
    inv = f"e-{_uuid(rng)}"

    def adk(author: str, role: str, *parts: dict[str, Any]) -> dict[str, Any]:
        return _event("ADK_EVENT", clock.tick(), source="adk", role=role, author=author,
                      content={"parts": list(parts), "role": role},
                      details={"invocation_id": inv, "event_id": _uuid(rng)[:8], "branch": None})

    out = [adk("user", "user", _part(text=prompt))]
    for s in steps:
        who = "code_writer" if s.writer else "retrieval_worker"
        if s.kind == "think":
            out.append(adk(who, "model", _part(rng, text=s.text, thought=True)))
        elif s.kind == "call":
            cid = f"adk-{_uuid(rng)}"
            sig = rng if rng.random() < 0.5 else None
            out.append(adk(who, "model", _part(sig, function_call={"id": cid, "args": s.args, "name": s.tool,
                                                                   "partial_args": None, "will_continue": None})))
            out.append(adk(who, "user", _part(function_response={"will_continue": None, "scheduling": None, "parts": None,
                                                                 "id": cid, "name": s.tool, "response": {"result": s.text}})))
        elif s.kind == "say":
            out.append(adk(who, "model", _part(rng, text=s.text)))
        else:
            out.append(_event("GEMINI_CLIENT_ERROR", clock.tick(), source="google.genai", content=s.text))
    return out


def _cli_trace(steps: tuple[Step, ...], prompt: str, clock: _Clock, rng: random.Random, model: str) -> list[dict[str, Any]]:
    """Gemini CLI: stream-json events, tool_use/tool_result pairs, errors on stderr."""
    out = [_event("init", clock.tick(), source="gemini_cli", details={"session_id": _uuid(rng), "model": model}),
           _event("message", clock.tick(), source="gemini_cli", role="user", content=prompt)]
    for s in steps:
        if s.kind in ("think", "say"):
            out.append(_event("message", clock.tick(), source="gemini_cli", role="model", content=s.text))
        elif s.kind == "call":
            cid = f"{s.tool}-{int(clock.t * 1000)}-{rng.getrandbits(48):012x}"
            out.append(_event("tool_use", clock.tick(), source="gemini_cli", tool_name=s.tool, tool_call_id=cid, tool_input=s.args))
            out.append(_event("tool_result", clock.tick(0.05, 0.5), source="gemini_cli", tool_call_id=cid, tool_output=s.text,
                              details={"status": "error" if s.text.startswith("Error") else "success"}))
        else:
            out.append(_event("CLI_STDERR", clock.tick(), source="gemini_cli", content=s.text))
    calls = sum(s.kind == "call" for s in steps)
    ok = bool(steps) and steps[-1].kind == "say"
    out.append(_event("system_result", clock.tick(0.05, 0.3), source="gemini_cli",
                      details={"status": "success" if ok else "error", "stats": {"tool_calls": calls}}))
    return out


# --- assembling events -------------------------------------------------------------------

def _attempt(n: int, outcome: Outcome, trace: list[dict[str, Any]], duration: float, rng: random.Random,
             generator: str, model: str) -> dict[str, Any]:
    read = sum(len(s.text) for s in outcome.steps if s.kind == "call")
    written = sum(len(s.text) for s in outcome.steps if s.kind in ("think", "say"))
    prompt_tokens = 900 + read // 4 + rng.randrange(200)
    completion = written // 4 + rng.randrange(40, 400)
    return {
        "attempt_number": n, "status": outcome.status, "error_message": outcome.error_message,
        "duration": round(duration, 3), "api_key_id": f"key-{rng.randrange(4)}", "trace_logs": trace,
        "answer": outcome.answer, "rationale": (outcome.answer or {}).get("rationale"),
        "usage_metadata": {"total_tokens": prompt_tokens + completion, "prompt_tokens": prompt_tokens,
                           "completion_tokens": completion,
                           "cost": round(prompt_tokens * 1.25e-6 + completion * 1e-5, 6), "total_time": round(duration, 3),
                           "extra_tags": {"model": model, "generator": generator,
                                          "tool_calls": sum(s.kind == "call" for s in outcome.steps)}},
    }


def _scripted(p: CasePlan, g: int, n: int, rng: random.Random) -> Outcome:
    """Attempt n's scripted outcome; `rng` goes on to render its trace."""
    cause, cli = p.attempts[n - 1], GENERATORS[g][1]
    last = SCENARIOS[cause](p.case, rng, cli)
    while n < len(p.attempts) and last.status == "success":  # a retried attempt must have failed
        last = SCENARIOS[cause](p.case, rng, cli)
    return last


def _test_result(p: CasePlan, g: int, clock: _Clock, seed: int, run_id: str) -> dict[str, Any]:
    title, cli, model = GENERATORS[g]
    generator, prompt = title.split(": ", 1)[1], prompt_for(p.case)
    attempts, last = [], None
    for n in range(1, len(p.attempts) + 1):
        rng = _rng(seed, run_id, g, p.case.id, n)
        last = _scripted(p, g, n, rng)
        begin = clock.t
        trace = _cli_trace(last.steps, prompt, clock, rng, model) if cli else _adk_trace(last.steps, prompt, clock, rng)
        attempts.append(_attempt(n, last, trace, clock.tick(0.5, 2.0) - begin, rng, generator, model))
    assert last is not None
    result = "pass" if not p.failed else "fail_validation" if last.status == "success" else "fail_generation"
    root = re.search(r"rootdir: (\S+)", last.verdict or "")
    return {"id": p.case.id, "suite": p.case.suite, "benchmark_name": p.case.name, "result": result,
            "validation_error": last.verdict if last.status == "success" else last.error_message,
            "temp_test_file": root.group(1) if root else None, "answer_data": last.answer,
            "trace_logs": attempts[-1]["trace_logs"], "generation_attempts": attempts}


def _run_events(run: RunPlan, seed: int) -> list[dict[str, Any]]:
    clock = _Clock(run.start, _rng(seed, run.run_id, "clock"))
    events: list[dict[str, Any]] = []

    def emit(kind: str, data: dict[str, Any]) -> None:
        events.append({"event_type": kind, "timestamp": clock.tick(0.001, 0.05), "data": data})

    emit("run_start", {"timestamp": run.start})
    emit("message", {"message": f"Benchmark run {run.run_id}: {len(GENERATORS)} generators, suites {', '.join(SUITES)}"})
    summary = []
    for g, cases in run.sections:
        title = GENERATORS[g][0]
        emit("section_start", {"name": title})
        emit("message", {"message": f"Running {len(cases)} benchmarks with {title.split(': ', 1)[1]}"})
        for suite in SUITES:
            emit("section_start", {"name": f"Suite: {suite}"})
            if run.generation_failure[0] == g and run.generation_failure[1].suite == suite:
                emit("generation_failure", _generation_failure(run.generation_failure[1], g, _rng(seed, run.run_id, "gf")))
            for p in (p for p in cases if p.case.suite == suite):
                data = _test_result(p, g, clock, seed, run.run_id)
                emit("test_result", data)
                summary.append({"benchmark_name": p.case.name, "status": data["result"],
                                "latency": round(sum(a["duration"] for a in data["generation_attempts"]), 3),
                                "attempts_count": len(p.attempts)})
            emit("section_end", {"name": f"Suite: {suite}"})
        emit("section_end", {"name": title})
    passed = sum(r["status"] == "pass" for r in summary)
    emit("message", {"message": f"Completed: {passed} passed, {len(summary) - passed} failed, 1 generation failure"})
    emit("summary_table", {"results": summary})
    emit("run_end", {"duration": round(clock.tick() - run.start, 3)})
    return events


def _generation_failure(case: Case, g: int, rng: random.Random) -> dict[str, Any]:
    """The agent produced nothing usable after the harness's own retries."""
    why = (f'Gemini CLI failed with code 125: Error: Post "http://d/v5.7.0/libpod/containers/gemini-cli-runner-'
           f'{rng.getrandbits(32):08x}/exec": http: ContentLength={rng.randrange(1800, 2400)} with Body length 0'
           if GENERATORS[g][1] else QUOTA)
    return {"benchmark_name": case.name, "error_message": f"Generation failed after 3 retries: {why}", "prompt": prompt_for(case)}


def make_demo(directory: str | Path, *, seed: int = 7) -> list[Path]:
    """Write the demo runs under directory (created if needed); returns the trace files written.

    Same seed, same bytes: timestamps and ids come from the seed, never from the clock."""
    directory = Path(directory)
    written = []
    for r, run in enumerate(_plan(seed)):
        events = _run_events(run, seed)
        folder = directory / run.run_id
        folder.mkdir(parents=True, exist_ok=True)
        if r == YAML_RUN:
            path = folder / "trace.yaml"
            with path.open("w", encoding="utf-8") as fh:
                # The pure-Python dumper on purpose: libyaml's output differs, and bytes must not
                # depend on how PyYAML was built.
                yaml.safe_dump_all(events, fh, explicit_start=True, sort_keys=False, allow_unicode=True, width=100)
        else:
            path = folder / "trace.jsonl"
            with path.open("w", encoding="utf-8") as fh:
                fh.writelines(json.dumps(e) + "\n" for e in events)
        written.append(path)
    return written
