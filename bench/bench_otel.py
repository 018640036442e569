"""OpenTelemetry ingest: throughput and peak memory on a generated OTLP JSON-lines file, at two sizes.

    python bench/bench_otel.py [--mb 1024] [--keep DIR]

Writes an OTLP JSON-lines file of about `--mb` MB as a collector's file exporter would (hex ids,
each line an export batch of spans from four agent runs in flight, each trace's root span last;
OpenInference and GenAI attributes, tool outputs of 2-40 KB, one trace in four failing with an
ERROR status and an exception event), and a file of a quarter of it. Each is ingested in a fresh
process, which reports MB/s and its peak RSS (VmHWM); beside them, the peak of Python with rca
imported. Memory flat in file size shows as a ratio near 1 between the two sizes. Then one
failure is read back from the large file. The files are deleted unless --keep is given.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_WORDS = [f"w{i:x}" for i in range(4096)]
_CONCURRENT = 4
_BATCH = 32


def _attr(key: str, value: Any) -> dict[str, Any]:
    kind = "intValue" if isinstance(value, int) else "stringValue"
    return {"key": key, "value": {kind: str(value) if kind == "intValue" else value}}


class _Runs:
    """Agent runs as spans, in the order they end."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.pool = " ".join(self.rng.choice(_WORDS) for _ in range(800_000))
        self.clock = 1_760_000_000_000_000_000

    def text(self, n: int) -> str:
        start = self.rng.randrange(len(self.pool) - n)
        return self.pool[start:start + n]

    def span(self, trace: str, parent: str | None, name: str, attrs: dict[str, Any], error: str | None = None
             ) -> dict[str, Any]:
        self.clock += self.rng.randrange(1_000_000, 900_000_000)
        span: dict[str, Any] = {
            "traceId": trace, "spanId": f"{self.rng.getrandbits(64):016x}", "name": name, "kind": 1,
            "startTimeUnixNano": str(self.clock), "endTimeUnixNano": str(self.clock + 50_000_000),
            "attributes": [_attr(k, v) for k, v in attrs.items()], "status": {}}
        if parent:
            span["parentSpanId"] = parent
        if error:
            span["status"] = {"code": 2, "message": error}
            span["events"] = [{"name": "exception", "timeUnixNano": str(self.clock), "attributes": [
                _attr("exception.type", "RuntimeError"), _attr("exception.message", error),
                _attr("exception.stacktrace", f"Traceback (most recent call last):\n  ...\nRuntimeError: {error}")]}]
        return span

    def run(self, n: int) -> Iterator[dict[str, Any]]:
        """One agent run: model calls and tool calls under an invoke_agent root that ends last."""
        trace, root = f"{self.rng.getrandbits(128):032x}", f"{self.rng.getrandbits(64):016x}"
        failing = self.rng.random() < 0.25
        for turn in range(self.rng.randint(3, 8)):
            call = f"call_{n}_{turn}"
            yield self.span(trace, root, "chat model-x", {
                "openinference.span.kind": "LLM", "gen_ai.operation.name": "chat", "llm.model_name": "model-x",
                "llm.input_messages.0.message.role": "user", "llm.input_messages.0.message.content": self.text(2_000),
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.content": self.text(self.rng.randint(200, 3_000)),
                "llm.output_messages.0.message.tool_calls.0.tool_call.id": call,
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "read_file",
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": json.dumps({"path": f"src/m{turn}.py"}),
                "llm.token_count.prompt": 900, "llm.token_count.completion": 300})
            error = "tool crashed: exit status 1" if failing and turn == 2 else None
            yield self.span(trace, root, "execute_tool read_file", {
                "openinference.span.kind": "TOOL", "tool.name": "read_file", "gen_ai.tool.call.id": call,
                "input.value": json.dumps({"path": f"src/m{turn}.py"}),
                "output.value": self.text(self.rng.randint(2_000, 40_000))}, error)
        span = self.span(trace, None, "invoke_agent solver", {
            "openinference.span.kind": "AGENT", "gen_ai.agent.name": "solver", "input.value": self.text(500),
            "output.value": self.text(300)}, "the agent gave up" if failing else None)
        span["spanId"] = root
        yield span


def write_otlp(path: Path, total_mb: int, seed: int = 1) -> int:
    """An OTLP JSON-lines file of about `total_mb` MB; returns its size."""
    gen = _Runs(seed)
    resource = {"attributes": [_attr("service.name", "bench-agents"), _attr("telemetry.sdk.name", "opentelemetry")]}
    runs = [gen.run(n) for n in range(_CONCURRENT)]
    started = _CONCURRENT
    size = 0
    with path.open("w", encoding="utf-8") as f:
        while size < total_mb * 1_000_000:
            batch = []
            for i in range(_BATCH):
                span = next(runs[i % _CONCURRENT], None)
                if span is None:  # that run ended: the next one takes its place
                    runs[i % _CONCURRENT] = gen.run(started)
                    started += 1
                    span = next(runs[i % _CONCURRENT])
                batch.append(span)
            line = json.dumps({"resourceSpans": [{"resource": resource, "scopeSpans": [
                {"scope": {"name": "bench"}, "spans": batch}]}]}, separators=(",", ":")) + "\n"
            f.write(line)
            size += len(line)
    return size


_PEAK = "int(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))"
_INGEST = f"""
import json, sys, time
from rca import ingest_runs
t = time.perf_counter()
s = ingest_runs(sys.argv[1], sys.argv[2])
print(json.dumps({{"seconds": time.perf_counter() - t, "rows": s.rows_added, "bytes": s.bytes_read,
                  "issues": len(s.issues), "peak_kb": {_PEAK}}}))
"""
_READ = """
import sys, time, rca
row = rca.load_failures(sys.argv[1]).iloc[-1]
t = time.perf_counter()
steps = len(rca.load_transcript(row).steps)
print(f"{(time.perf_counter() - t) * 1000:.0f} ms, {steps} steps")
"""


def _python(code: str, *args: str) -> str:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=1024)
    parser.add_argument("--keep", type=Path, help="write the files here and keep them")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="rca-bench-otel-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        baseline = int(_python(f"import rca.ingest, rca.formats.otel; print({_PEAK})")) / 1024
        results = []
        for mb in (args.mb // 4, args.mb):
            path = root / f"otel-{mb}mb.jsonl"
            started = time.perf_counter()
            size = write_otlp(path, mb)
            print(f"generated {size / 1e6:,.0f} MB in {time.perf_counter() - started:.1f} s")
            db = root / f"otel-{mb}mb.db"
            result = json.loads(_python(_INGEST, str(path), str(db)))
            results.append((size, result))
            print(f"  ingest: {result['rows']:,} failed traces, {result['issues']} issues, "
                  f"{result['bytes'] / 1e6 / result['seconds']:.0f} MB/s, peak RSS {result['peak_kb'] / 1024:.0f} MB")
        print(f"\npython with rca imported: {baseline:.0f} MB peak RSS")
        print(f"{'file':>10} {'MB/s':>6} {'peak RSS':>9} {'above python':>13}")
        for size, result in results:
            peak = result["peak_kb"] / 1024
            print(f"{size / 1e6:>7,.0f} MB {result['bytes'] / 1e6 / result['seconds']:>6.0f} {peak:>6.0f} MB "
                  f"{peak - baseline:>10.0f} MB")
        (_, small), (_, large) = results
        print(f"peak RSS, large over small file: {large['peak_kb'] / small['peak_kb']:.2f}x for 4x the bytes")
        print(f"read back one failure from the large file: {_python(_READ, str(root / f'otel-{args.mb}mb.db')).strip()}")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
