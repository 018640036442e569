"""Ingest throughput and peak memory on a large generated runs folder.

    python bench/bench_ingest.py [--mb 600] [--runs 4] [--keep DIR]

Writes `--runs` run files in the harness's JSONL format totalling about `--mb` MB
(one test_result line 20-200 KB with traces, about one case in three failed with
several attempts), then ingests them in a fresh Python process and reports MB/s and
that process's peak RSS. Nothing here is timed inside the test suite.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _trace(rng: random.Random, size: int) -> list[dict]:
    events: list[dict] = [{"type": "message", "role": "user", "content": "Write an agent that ..."}]
    while size > 0:
        chunk = rng.randint(2_000, 40_000)
        call = f"c{rng.randrange(10**6)}"
        events.append({"type": "tool_use", "tool_name": "read_file", "tool_call_id": call,
                       "tool_input": {"path": f"src/m{rng.randrange(99)}.py"}})
        events.append({"type": "tool_result", "tool_call_id": call, "tool_output": "x = 1\n" * (chunk // 6)})
        size -= chunk
    events.append({"type": "message", "role": "model", "content": "```python\nagent = LlmAgent(...)\n```"})
    return events


def write_runs(root: Path, total_mb: int, runs: int, seed: int = 1) -> int:
    rng = random.Random(seed)
    per_run = total_mb * 1_000_000 // runs
    written = 0
    for r in range(runs):
        folder = root / f"2026-01-{r + 1:02d}_12-00-00"
        folder.mkdir(parents=True)
        size = 0
        with (folder / "trace.jsonl").open("w", encoding="utf-8") as f:
            f.write(json.dumps({"event_type": "run_start", "timestamp": 1.7e9, "data": {}}) + "\n")
            f.write(json.dumps({"event_type": "section_start", "timestamp": 1.7e9, "data": {"name": "Generator: bench"}}) + "\n")
            case = 0
            while size < per_run:
                case += 1
                failed = rng.random() < 0.35
                attempts = [{"attempt_number": a + 1, "status": "failed" if failed and a < 2 else "success",
                             "error_message": "429 RESOURCE_EXHAUSTED" if failed and a < 2 else None,
                             "trace_logs": _trace(rng, rng.randint(10_000, 60_000))} for a in range(3 if failed else 1)]
                line = json.dumps({"event_type": "test_result", "timestamp": 1.7e9 + case, "data": {
                    "id": f"case-{case}", "suite": rng.choice(["fix_errors", "api_understanding"]),
                    "benchmark_name": f"{case:04d}: bench case", "result": "fail_validation" if failed else "pass",
                    "validation_error": "AssertionError: expected 2\n" * rng.randint(1, 400) if failed else None,
                    "generation_attempts": attempts, "trace_logs": None}}) + "\n"
                f.write(line)
                size += len(line)
        written += size
    return written


_INGEST = """
import json, resource, sys, time
from rca import ingest_runs
t = time.perf_counter()
s = ingest_runs(sys.argv[1], sys.argv[2])
print(json.dumps({"seconds": time.perf_counter() - t, "rows": s.rows_added, "bytes": s.bytes_read,
                  "issues": len(s.issues), "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=600)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--keep", type=Path, help="write the runs folder here and keep it")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="rca-bench-"))
    runs = root / "runs"
    try:
        started = time.perf_counter()
        size = write_runs(runs, args.mb, args.runs)
        print(f"generated {size / 1e6:,.0f} MB in {args.runs} run files in {time.perf_counter() - started:.1f} s")
        baseline = subprocess.run([sys.executable, "-c", "import resource, rca; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"],
                                  capture_output=True, text=True, check=True)
        out = subprocess.run([sys.executable, "-c", _INGEST, str(runs), str(root / "bench.db")],
                             capture_output=True, text=True, check=True)
        result = json.loads(out.stdout)
        mb = result["bytes"] / 1e6
        print(f"ingest: {mb:,.0f} MB, {result['rows']:,} failed attempts, {result['issues']} issues")
        print(f"  time       {result['seconds']:.1f} s  ->  {mb / result['seconds']:.0f} MB/s")
        print(f"  peak RSS   {result['peak_rss_kb'] / 1024:.0f} MB  (python + rca imported: {int(baseline.stdout) / 1024:.0f} MB)")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
