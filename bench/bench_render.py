"""Time render_trace on a realistic 4 MB single-attempt trace.

Why: a whole run holds hundreds of failed attempts, each rendered before its prompt is
built, so rendering must stay well under a second per attempt. The trace is built as raw
harness events (ADK events with the agent in `details.author`, as real runs write them) and
read into a Transcript by the harness adapter once; only render_trace is timed. Run:
`python bench/bench_render.py [--reps N] [--budget TOKENS]`.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import statistics
import time
from typing import Any

from rca.formats.harness import to_transcript
from rca.render import estimate_tokens, render_trace
from rca.transcript import Transcript

TARGET_BYTES = 4_000_000
FIELDS = ("type", "timestamp", "source", "role", "author", "tool_name", "tool_call_id",
          "tool_input", "tool_output", "content", "details")


def _event(**fields: Any) -> dict[str, Any]:
    return {key: fields.get(key) for key in FIELDS}


def _python_file(rng: random.Random, size: int) -> str:
    lines: list[str] = []
    total = 0
    while total < size:
        n = rng.randrange(10_000)
        line = rng.choice([
            f"def handler_{n}(ctx: CallbackContext) -> None:",
            f"    value_{n} = await tool.run_async(args={{'k': {n}}}, tool_context=ctx)",
            f"    # step {n}: delegate to the sub-agent when the request asks for retrieval",
            f"class Worker{n}(BaseAgent):",
            f"        raise ValueError(f'unexpected state {{state!r}} in worker {n}')",
            "",
        ])
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines)


def _signature(rng: random.Random) -> str:
    return repr(rng.randbytes(rng.randrange(300, 900)))


def _adk(rng: random.Random, author: str, i: int, role: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    """An ADK event as real runs write it: top-level author null, the raw event's author, ids and
    usage metadata in details."""
    details = {"author": author, "id": f"{rng.getrandbits(128):032x}", "invocation_id": f"e-{rng.getrandbits(64):016x}",
               "timestamp": float(i), "error_code": None, "error_message": None,
               "usage_metadata": {"prompt_token_count": rng.randrange(10**5), "total_token_count": rng.randrange(10**5)}}
    return _event(type="ADK_EVENT", source="adk", timestamp=None, content={"role": role, "parts": parts}, details=details)


def build_trace(seed: int = 7, target_bytes: int = TARGET_BYTES) -> list[dict[str, Any]]:
    """~300 events: ADK calls and responses, tool use/results, a few 200 KB file reads, errors."""
    rng = random.Random(seed)
    events = [_event(type="message", role="user", timestamp=0.0, source="harness",
                     content="Task: write create_agent() returning an LlmAgent that routes to two sub-agents.")]
    size = 0
    i = 0
    while size < target_bytes:
        i += 1
        kind = rng.random()
        call_id = f"adk-{rng.getrandbits(64):016x}"
        if i % 40 == 20:  # a few whole files read by the agent
            path = f"repos/adk-python/src/google/adk/agents/file_{i}.py"
            events.append(_event(type="tool_use", tool_name="read_file", tool_call_id=call_id,
                                 tool_input={"path": path}, timestamp=float(i)))
            events.append(_event(type="tool_result", tool_call_id=call_id, timestamp=float(i),
                                 tool_output=_python_file(rng, 200_000)))
        elif kind < 0.45:
            name = rng.choice(["list_directory", "search_files", "read_file"])
            parts = [{"function_call": {"id": call_id, "name": name, "args": {"path": f"repos/adk-python/x{i}"}},
                      "text": None, "thought": None, "thought_signature": _signature(rng), "function_response": None}]
            events.append(_adk(rng, "retrieval_worker", i, "model", parts))
            response = {"result": _python_file(rng, rng.randrange(2_000, 40_000))}
            parts = [{"function_response": {"id": call_id, "name": name, "response": response},
                      "text": None, "function_call": None, "thought_signature": None}]
            events.append(_adk(rng, "retrieval_worker", i, "user", parts))
        elif kind < 0.75:
            text = " ".join(rng.choice(["the", "agent", "tool", "calls", "LlmAgent", "sub_agents", "route"])
                            for _ in range(rng.randrange(20, 400)))
            events.append(_adk(rng, "planner", i, "model", [{"text": text, "thought": True,
                                                               "thought_signature": _signature(rng)}]))
        elif kind < 0.85:
            events.append(_event(type="GEMINI_API_RESPONSE", timestamp=float(i), source="gemini",
                                 content={"usage_metadata": {"total_tokens": rng.randrange(10**5)},
                                          "inline": base64.b64encode(rng.randbytes(2_000)).decode()}))
        elif kind < 0.9:
            events.append(_event(type="GEMINI_CLIENT_ERROR", timestamp=float(i), source="cli",
                                 content="429 RESOURCE_EXHAUSTED: quota exceeded, retry in 5s"))
        else:
            events.append(_event(type="CLI_STDOUT_RAW", timestamp=float(i), source="cli",
                                 content=json.dumps({"line": i, "text": "ok " * rng.randrange(5, 200)})))
        size = len(json.dumps(events[-1])) + size
    events.append(_event(type="message", role="model", timestamp=float(i + 1), source="harness",
                         content="```json\n{\"code\": \"def create_agent(): ...\"}\n```"))
    return events


def build_transcript(events: list[dict[str, Any]]) -> Transcript:
    """The events as the harness adapter reads them: one failed test_result's trace_logs."""
    data = {"benchmark_name": "bench: a 4 MB attempt", "result": "fail_validation", "trace_logs": events,
            "validation_error": "AssertionError: the router never reached the retrieval worker",
            "answer_data": {"code": "def create_agent(): ...", "benchmark_type": "fix_errors"}}
    row = {"run_id": "bench", "benchmark_name": data["benchmark_name"], "attempt_index": -1}
    return to_transcript({"event_type": "test_result", "data": data}, row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--budget", type=int, default=50_000)
    args = parser.parse_args()
    events = build_trace()
    input_bytes = sum(len(json.dumps(e)) for e in events)
    start = time.perf_counter()
    transcript = build_transcript(events)
    adapter_ms = (time.perf_counter() - start) * 1000
    times: list[float] = []
    result = None
    for _ in range(args.reps):
        start = time.perf_counter()
        result = render_trace(transcript, budget_tokens=args.budget)
        times.append((time.perf_counter() - start) * 1000)
    assert result is not None
    median = statistics.median(times)
    rows = [
        ("events / steps", f"{len(events):,} / {len(transcript.steps):,}"),
        ("input (JSON bytes)", f"{input_bytes:,}"),
        ("events -> Transcript (ms, once)", f"{adapter_ms:.1f}"),
        ("budget (tokens)", f"{args.budget:,}"),
        ("output tokens", f"{result.tokens:,} (estimate_tokens: {estimate_tokens(result.text):,})"),
        ("steps kept / elided", f"{result.steps_kept:,} / {result.steps_elided:,}"),
        ("repetitions", str(args.reps)),
        ("median (ms)", f"{median:.1f}"),
        ("min (ms)", f"{min(times):.1f}"),
        ("median per MB of trace (ms)", f"{median / (input_bytes / 1e6):.1f}"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
