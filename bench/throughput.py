"""Throughput at the rate limit: rca's scheduler against a fixed semaphore, on the same 1,000 failures.

    python bench/throughput.py            # every group, one after the other: about nine minutes on two cores
    python bench/throughput.py --quick    # a smoke run: 150 failures, shorter windows

Every call goes through the real google-genai client to rca.testing.FakeGemini, whose
per-key limits use a shrunk window (``--window`` seconds instead of a minute, the limits
scaled with it), so a run takes seconds, not hours. Per scenario (1 or 3 keys; 0.2 s
latency, or 2 s with a long tail) it runs, each against a fresh server:

- ``rca``: analyze_failures_async with a GeminiBackend whose KeyPool is told the limits;
- ``rca-learned``: the same, but the pool learns the limits from the server's 429s;
- ``baseline``: asyncio.Semaphore(10), a new genai client per call with keys taken round
  robin, three attempts with ``2**attempt`` seconds of sleep between them.

Figures: wall time of the API phase (first request to last answer; rca's own preparation
is measured by bench/overhead.py), answered calls per second as a share of the ceiling
(the sum of the keys' request limits), the share of calls answered 429, and rows left
without a result. Runs are spread over a few processes, one server each, so the slow
baseline runs (bounded by 10 calls in flight) overlap the others.

These are the ``limits`` group; two more (``--scenarios``) run rca with learned limits only:

- ``bare429``: 400 failures, one key far under its quota (the server sets none), 0.2 s
  latency, once clean and once with 3% of calls answered by a bare 429 (no QuotaFailure, no
  RetryInfo: shared capacity short); the pool's window is ``--window``. Target: the second
  at least 0.8 of the first's rows/s.
- ``minute``: real one-minute windows, 3 keys of 30 calls and 360k tokens a minute, 270
  failures (three minutes at the ceiling), limits learned from the 429s that name them.
  Target: at most 3% of calls answered 429, at the same wall time.

    python bench/throughput.py --scenarios bare429,minute    # about four minutes
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import multiprocessing
import random
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MODEL = "gemini-3.5-flash-lite"
KEYS = tuple(f"AIzaSyBench-{i}-{'0' * 26}" for i in range(3))
CONCURRENCY = 256  # rca's ceiling on rows in progress; the pace comes from the limits
WORDS = ("agent", "tool_context", "session", "state", "callback", "LlmAgent", "runner", "event", "artifact",
         "invocation", "FunctionTool", "await", "return", "None", "self", "config", "model", "response")


# -- the workload: a runs folder of failed attempts with realistic trace sizes --------------------


def _text(rng: random.Random, chars: int) -> str:
    lines, total = [], 0
    while total < chars:
        line = "    " * rng.randrange(4) + " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines)


def _trace(rng: random.Random, chars: int, case: int) -> list[dict[str, Any]]:
    """A failed attempt: the task, then tool calls with outputs, then the model's last answer."""
    events: list[dict[str, Any]] = [{"type": "message", "role": "user", "content": f"Task {case}: build the agent"}]
    while chars > 0:
        size = min(chars, rng.randint(500, 12_000))
        call = f"call-{case}-{len(events)}"
        events.append({"type": "tool_use", "tool_name": rng.choice(["read_file", "run_tests", "search"]),
                       "tool_call_id": call, "tool_input": {"path": f"src/module_{rng.randrange(40)}.py"}})
        events.append({"type": "tool_result", "tool_call_id": call, "tool_output": _text(rng, size)})
        chars -= size
    events.append({"type": "message", "role": "model", "content": f"agent.system_prompt = 'x'  # case {case}"})
    return events


def trace_chars(rng: random.Random, median: int = 28_000) -> int:
    """Long-tailed like real traces: by default a median of ~7k tokens, a few past the 50k-token render budget."""
    return int(min(rng.lognormvariate(math.log(median), 1.0), 400_000))


def write_failures(root: Path, n: int, *, seed: int = 5, runs: int = 4, median_chars: int = 28_000) -> Path:
    """`n` failed attempts in the harness's JSONL format, spread over `runs` run folders."""
    rng = random.Random(seed)
    for r in range(runs):
        folder = root / f"2026-02-{r + 1:02d}_09-00-00"
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "trace.jsonl").open("w", encoding="utf-8") as f:
            f.write(json.dumps({"event_type": "section_start", "timestamp": 1.7e9, "data": {"name": "Generator: bench"}}) + "\n")
            for case in range(r, n, runs):
                attempt = {"attempt_number": 1, "status": "success", "error_message": None, "duration": 9.0,
                           "api_key_id": "k0", "trace_logs": _trace(rng, trace_chars(rng, median_chars), case), "answer": None,
                           "rationale": None, "usage_metadata": None}
                data = {"id": f"case-{case}", "suite": "fix_errors", "benchmark_name": f"{case:05d}: bench case",
                        "result": "fail_validation", "validation_error": f"AttributeError: no system_prompt ({case})",
                        "temp_test_file": None, "answer_data": {}, "trace_logs": None, "generation_attempts": [attempt]}
                f.write(json.dumps({"event_type": "test_result", "timestamp": 1.7e9 + case, "data": data}) + "\n")
    return root


def build_db(root: Path, n: int) -> Path:
    from rca import ingest_runs

    runs = write_failures(root / "runs", n)
    db = root / "analysis_cache.db"
    ingest_runs(runs, db)
    return db


# -- one run: a fresh server, one approach ----------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    keys: int
    latency: str  # "0.2s" or "2s-tail"
    window_s: float  # the server's rate window, and the pool's
    rpm: int | None  # per key, per window; None: the server sets no limit
    tpm: int | None
    group: str = "limits"  # limits | bare429 | minute
    rows: int | None = None  # None: the run's --rows
    bare429: float = 0.0  # share of calls the server answers with a bare 429


@dataclass
class Result:
    approach: str
    scenario: Scenario
    rows: int
    wall_s: float  # first request to last answer
    send_s: float  # first request to last request
    ok: int
    calls: int
    rate_limited: int
    without_result: int
    ceiling_rps: float
    max_in_flight: int
    full_windows: int  # whole windows between the first and the last request
    full_windows_ok: int  # answered calls sent in them
    notes: str = ""

    @property
    def rate(self) -> float:
        """Answered calls per second over the run's whole windows: those sent in the first k windows / k windows.

        A perfect client fills every window, so it scores 100% however short the run; the last,
        partly filled window and the last answers' latency are left to ``ratio_with_tail``.
        """
        return self.full_windows_ok / (self.full_windows * self.scenario.window_s) if self.full_windows else 0.0

    @property
    def ratio(self) -> float:
        return self.rate / self.ceiling_rps

    @property
    def ratio_with_tail(self) -> float:
        """The same over the whole wall time: also counts the wait for the last answers' latency."""
        return self.ok / self.wall_s / self.ceiling_rps if self.wall_s else 0.0


def _latency(label: str) -> Any:
    from rca.testing import Latency

    return 0.2 if label == "0.2s" else Latency.lognormal(2.0, 0.5, seed=11)


def _ceiling(s: Scenario, mean_tokens: float) -> float:
    """Calls per second the keys' limits allow for this workload: requests, or tokens if they bind first."""
    if s.rpm is None or s.tpm is None:
        return math.inf
    return s.keys * min(s.rpm, s.tpm / mean_tokens) / s.window_s


def _serve(conn: Any, scenario: Scenario) -> None:
    """The fake server's process: serve until told to stop, then send back what it counted."""
    from rca.testing import FakeGemini, Limits, Reply

    limits = None if scenario.rpm is None else Limits(rpm=scenario.rpm, tpm=scenario.tpm)
    faults = [(scenario.bare429, Reply.resource_exhausted())] if scenario.bare429 else []
    with FakeGemini(default_limits=limits, window_s=scenario.window_s, latency=_latency(scenario.latency),
                    faults=faults, seed=3) as server:
        conn.send(server.url)
        conn.recv()
        calls = [(r.time, r.status) for r in server.requests if r.path.endswith(":generateContent")]
        conn.send((server.stats(), calls, server.max_in_flight))


def run_one(approach: str, scenario: Scenario, db: str) -> Result:
    """Runs in a worker process: its own copy of the cache, and its own fake server in a process of its own
    (in-process, the server's threads would share the client's GIL and slow the loop being measured)."""
    work = Path(tempfile.mkdtemp(prefix="rca-bench-"))
    context = multiprocessing.get_context("spawn")
    conn, child = context.Pipe()
    server = context.Process(target=_serve, args=(child, scenario))
    server.start()
    try:
        local = work / "analysis_cache.db"
        shutil.copy(db, local)
        keys = list(KEYS[: scenario.keys])
        url = conn.recv()
        runner = _baseline if approach == "baseline" else _rca
        rows, without, done_at, notes = asyncio.run(runner(approach, scenario, keys, local, url))
        conn.send("stop")
        stats, calls, max_in_flight = conn.recv()
        first, last = min((t for t, _ in calls), default=done_at), max((t for t, _ in calls), default=done_at)
        windows = int((last - first) // scenario.window_s)
        in_windows = sum(1 for t, status in calls if status == 200 and t < first + windows * scenario.window_s)
        mean_tokens = stats.input_tokens / max(stats.requests, 1)
        return Result(approach, scenario, rows, done_at - first, last - first, stats.ok, stats.requests,
                      stats.rate_limited, without, _ceiling(scenario, mean_tokens), max_in_flight, windows,
                      in_windows, notes)
    finally:
        server.join(10)
        if server.is_alive():
            server.kill()
        shutil.rmtree(work, ignore_errors=True)


async def _rca(approach: str, s: Scenario, keys: list[str], db: Path, url: str) -> tuple[int, int, float, str]:
    import contextlib
    import io

    from rca import analyze_failures_async, load_failures
    from rca.backends.gemini import GeminiBackend
    from rca.keys import KeyPool, format_summary
    from rca.limits import KeyLimits

    limits = KeyLimits(rpm=s.rpm, tpm=s.tpm) if approach == "rca" else None
    pool = KeyPool(keys, limits=limits, window_s=s.window_s)
    backend = GeminiBackend(MODEL, pool, base_url=url)
    df = load_failures(db)
    with contextlib.redirect_stderr(io.StringIO()):
        out = await analyze_failures_async(df, db=db, backend=backend, concurrency=CONCURRENCY, progress=False)
    done_at = time.monotonic()
    without = int(out.category.isna().sum())
    return len(df), without, done_at, format_summary(pool.summary(), s.window_s)


async def _baseline(approach: str, s: Scenario, keys: list[str], db: Path, url: str) -> tuple[int, int, float, str]:
    """The simple approach, as users write it: a fixed semaphore, a client per call, 2**attempt sleeps."""
    from google import genai
    from google.genai import errors, types

    from rca.schema import answer_model

    requests, config = _prepared(db)
    model = answer_model(requests[0][1])
    slots = asyncio.Semaphore(10)
    turn = itertools.count()

    async def one(prompt: str) -> bool:
        async with slots:
            for attempt in range(3):
                key = keys[next(turn) % len(keys)]
                client = genai.Client(api_key=key, http_options=types.HttpOptions(
                    base_url=url, retry_options=types.HttpRetryOptions(attempts=1)))
                try:
                    response = await client.aio.models.generate_content(model=MODEL, contents=prompt, config=config)
                    model.model_validate_json(response.text or "")
                    return True
                except (errors.APIError, ValueError):
                    if attempt < 2:
                        await asyncio.sleep(2**attempt)
                finally:
                    await client.aio.aclose()
            return False

    answered = await asyncio.gather(*(one(prompt) for prompt, _ in requests))
    done_at = time.monotonic()
    return len(requests), answered.count(False), done_at, ""


def _prepared(db: Path) -> tuple[list[tuple[str, Any]], Any]:
    """The same prompts rca sends (system instruction, rendered trace, schema), built before the clock starts."""
    from rca import load_failures
    from rca.analyze import TRACE_BUDGET_TOKENS
    from rca.backends.gemini import generation_config
    from rca.prompt import user_prompt
    from rca.render import render_trace
    from rca.schema import resolve_taxonomy
    from rca.traces import load_transcript

    tax = resolve_taxonomy(None)
    config = generation_config(MODEL, tax)
    out = []
    for _, row in load_failures(db).iterrows():
        transcript = load_transcript(row.to_dict())
        prompt = user_prompt(transcript, render_trace(transcript, budget_tokens=TRACE_BUDGET_TOKENS))
        out.append((prompt, tax))
    return out, config


# -- the whole benchmark --------------------------------------------------------------------------


GROUPS = ("limits", "bare429", "minute")


def scenarios(quick: bool, window_s: float, groups: list[str], approaches: list[str]) -> list[tuple[str, Scenario]]:
    """(approach, scenario) pairs to run: the approaches on each limits scenario, rca-learned on the others."""
    # Per key and window: 40 calls and 480k input tokens (~48 calls of this workload's mean size), so
    # requests bind on average and tokens in bursts of large traces; a 3 s window stands for a minute.
    rpm, tpm = (20, 240_000) if quick else (40, 480_000)
    plan = [(a, Scenario(k, lat, window_s, rpm, tpm)) for lat in ("0.2s", "2s-tail") for k in (1, 3)
            for a in approaches] if "limits" in groups else []
    if "bare429" in groups:  # the server sets no limit: the window is the pool's (cooldowns, pace), a minute scaled
        plan += [("rca-learned", Scenario(1, "0.2s", window_s, None, None, "bare429", 150 if quick else 400, share))
                 for share in (0.0, 0.03)]
    if "minute" in groups:
        plan.append(("rca-learned", Scenario(3, "0.2s", 60.0, 30, 360_000, "minute", 270)))
    return plan


def _bare_table(results: list[Result]) -> str:
    """Rows answered per second, with bare 429s and without, and the ratio the target is set on."""
    clean = next(r for r in results if not r.scenario.bare429)
    lines = [f"{'bare 429s':>9} {'rows':>5} {'wall s':>7} {'rows/s':>7} {'vs clean':>8} {'429s':>6} {'no result':>9}"]
    for r in sorted(results, key=lambda r: r.scenario.bare429):
        rate = (r.rows - r.without_result) / r.wall_s
        lines.append(f"{r.scenario.bare429:>9.0%} {r.rows:>5d} {r.wall_s:>7.1f} {rate:>7.1f} "
                     f"{rate / ((clean.rows - clean.without_result) / clean.wall_s):>8.2f} "
                     f"{r.rate_limited / max(r.calls, 1):>6.1%} {r.without_result:>9d}")
    return "\n".join(lines)


def _table(results: list[Result]) -> str:
    head = (f"{'keys':>4} {'latency':>8} {'approach':<12} {'wall s':>7} {'calls/s':>8} {'ceiling':>8} "
            f"{'ratio':>6} {'w/ tail':>7} {'429s':>6} {'no result':>9} {'in flight':>9}")
    lines = [head, "-" * len(head)]
    order = {"rca": 0, "rca-learned": 1, "baseline": 2}
    for r in sorted(results, key=lambda r: (r.scenario.latency, r.scenario.keys, order[r.approach])):
        s = r.scenario
        lines.append(f"{s.keys:>4} {s.latency:>8} {r.approach:<12} {r.wall_s:>7.1f} {r.rate:>8.2f} "
                     f"{r.ceiling_rps:>8.2f} {r.ratio:>6.0%} {r.ratio_with_tail:>7.0%} "
                     f"{r.rate_limited / max(r.calls, 1):>6.1%} {r.without_result:>9d} {r.max_in_flight:>9d}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 150 failures, 1 s windows")
    parser.add_argument("--rows", type=int, help="failures per run (default 1000, --quick 150)")
    parser.add_argument("--window", type=float, help="the fake server's rate window in seconds (default 3, --quick 1)")
    parser.add_argument("--jobs", type=int, default=4, help="worker processes (each runs one server at a time)")
    parser.add_argument("--approaches", default="rca,rca-learned,baseline", help="for the limits scenarios")
    parser.add_argument("--scenarios", help=f"groups to run, of {','.join(GROUPS)} (default all; --quick: "
                                            "all but minute, whose windows are a real minute)")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    rows = args.rows or (150 if args.quick else 1000)
    window = args.window or (1.0 if args.quick else 3.0)
    groups = args.scenarios.split(",") if args.scenarios else [g for g in GROUPS if not (args.quick and g == "minute")]
    if unknown := set(groups) - set(GROUPS):
        parser.error(f"unknown scenario groups {sorted(unknown)}: choose among {', '.join(GROUPS)}")
    root = Path(tempfile.mkdtemp(prefix="rca-throughput-"))
    try:
        started = time.perf_counter()
        plan = scenarios(args.quick, window, groups, args.approaches.split(","))
        dbs = {n: str(build_db(root / f"rows-{n}", n)) for n in {s.rows or rows for _, s in plan}}
        # Longest first: the baseline at 2 s latency is bound by its 10 slots, not by the limits.
        plan.sort(key=lambda p: (p[0] == "baseline" and p[1].latency != "0.2s", 1 / p[1].keys), reverse=True)
        print(f"rca throughput: {', '.join(groups)}: {len(plan)} runs on {args.jobs} processes; limits scenarios: "
              f"{rows} failures per run, window {window:g}s", file=sys.stderr)
        by_group: dict[str, list[Result]] = {}
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            for group in groups:  # one group at a time: a group's runs share the cores only with each other
                futures = [pool.submit(run_one, a, s, dbs[s.rows or rows]) for a, s in plan if s.group == group]
                for future in futures:
                    result = future.result()
                    by_group.setdefault(group, []).append(result)
                    print(f"  done: {group} {result.approach} {result.scenario.keys} key(s) "
                          f"{result.scenario.latency} in {result.wall_s:.1f}s", file=sys.stderr)
        results = [r for g in groups for r in by_group.get(g, [])]
        if by_group.get("limits"):
            print(_table(by_group["limits"]))
        if by_group.get("bare429"):
            print(f"\nbare 429s, 1 key, no limits, 0.2 s:\n{_bare_table(by_group['bare429'])}")
        if by_group.get("minute"):
            print(f"\n60 s windows, 3 keys of 30 calls, limits learned:\n{_table(by_group['minute'])}")
        for r in results:
            if r.notes:
                print(f"\n{r.scenario.group} {r.approach}, {r.scenario.keys} key(s), {r.scenario.latency}"
                      f"{f', {r.scenario.bare429:.0%} bare 429s' if r.scenario.bare429 else ''}:\n{r.notes}")
        print(f"\ntotal {time.perf_counter() - started:.0f}s. wall: first request to last answer. calls/s: calls "
              "answered / second over the whole windows from the first request (the last, partial one left out). ceiling: keys x min(calls, tokens / mean tokens per call) per "
              "second. ratio: calls/s / ceiling; w/ tail: answered / wall / ceiling. in flight: most calls the "
              "server was answering at once.")
        if args.json:
            args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
