"""rca's own cost per row, with the API out of the way: does it stay flat from 1,000 to 10,000 rows?

    python bench/overhead.py                      # 1,000 and 10,000 rows
    python bench/overhead.py --rows 1000 --rows 3000

A runs folder of failed attempts (bench/throughput.py's generator: harness JSONL, long-tailed
trace sizes) is ingested into a fresh cache; then analyze_failures runs against
rca.testing.FakeGemini at zero latency and without limits, the server in a process of its own
so its work is not counted. Per row it reports wall time and this process's CPU time for
preparing (read the trace, render it, estimate tokens: a dry run) and for the rest (build the
request, the google-genai client, parse and validate the answer, write it to SQLite), and
the peak memory. Each size runs in a fresh process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import multiprocessing
import resource
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import KEYS, MODEL, write_failures  # noqa: E402

CONCURRENCY = 32


def _serve(conn: Any) -> None:
    from rca.testing import FakeGemini

    with FakeGemini() as server:
        conn.send(server.url)
        conn.recv()
        stats = server.stats()
        conn.send((stats.requests, stats.ok))


def _timed(fn: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def measure(rows: int, median_chars: int) -> dict[str, Any]:
    """One size, in this (fresh) process: ingest, dry run, full run."""
    from rca import analyze_failures_async, ingest_runs, load_failures
    from rca.backends.gemini import GeminiBackend
    from rca.keys import KeyPool

    root = Path(tempfile.mkdtemp(prefix="rca-overhead-"))
    context = multiprocessing.get_context("spawn")
    conn, child = context.Pipe()
    server = context.Process(target=_serve, args=(child,))
    server.start()
    try:
        write_failures(root / "runs", rows, median_chars=median_chars)
        db = root / "analysis_cache.db"
        _, ingest_wall, _ = _timed(lambda: ingest_runs(root / "runs", db))
        df = load_failures(db)
        url = conn.recv()
        backend = GeminiBackend(MODEL, KeyPool(list(KEYS)), base_url=url)

        def run(dry: bool) -> Any:
            with contextlib.redirect_stderr(io.StringIO()):
                return asyncio.run(analyze_failures_async(df, db=db, backend=backend, dry_run=dry,
                                                          concurrency=CONCURRENCY, progress=False))

        dry, prep_wall, prep_cpu = _timed(lambda: run(True))
        out, full_wall, full_cpu = _timed(lambda: run(False))
        conn.send("stop")
        requests, ok = conn.recv()
        return {"rows": rows, "ingest_s": ingest_wall, "prep_wall": prep_wall, "prep_cpu": prep_cpu,
                "full_wall": full_wall, "full_cpu": full_cpu, "calls": requests, "ok": ok,
                "answered": int(out.category.notna().sum()), "mean_tokens": float(dry.est_input_tokens.mean()),
                "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    finally:
        server.join(10)
        if server.is_alive():
            server.kill()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, action="append", help="sizes to measure (default 1000 and 10000)")
    parser.add_argument("--median-chars", type=int, default=28_000, help="median trace size in characters")
    args = parser.parse_args()
    sizes = args.rows or [1_000, 10_000]
    results = []
    for rows in sizes:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            results.append(pool.submit(measure, rows, args.median_chars).result())
        print(f"  done: {rows} rows", file=sys.stderr)
    head = (f"{'rows':>6} {'answered':>8} {'tokens/row':>10} {'prepare ms/row':>14} {'cpu':>5} "
            f"{'call+parse+store ms/row':>23} {'cpu':>5} {'total ms/row':>12} {'cpu':>5} {'peak MB':>8}")
    print(head)
    print("-" * len(head))
    for r in results:
        n = r["rows"]
        rest_wall, rest_cpu = r["full_wall"] - r["prep_wall"], r["full_cpu"] - r["prep_cpu"]
        print(f"{n:>6} {r['answered']:>8} {r['mean_tokens']:>10,.0f} {1e3 * r['prep_wall'] / n:>14.2f} "
              f"{1e3 * r['prep_cpu'] / n:>5.2f} {1e3 * rest_wall / n:>23.2f} {1e3 * rest_cpu / n:>5.2f} "
              f"{1e3 * r['full_wall'] / n:>12.2f} {1e3 * r['full_cpu'] / n:>5.2f} {r['peak_mb']:>8.0f}")
    if len(results) > 1:
        first, last = results[0], results[-1]
        growth = (last["full_wall"] / last["rows"]) / (first["full_wall"] / first["rows"])
        print(f"\nper-row wall time at {last['rows']:,} rows is {growth:.2f}x that at {first['rows']:,} "
              "(1.0 = flat; a quadratic step would show as ~{:.0f}x)".format(last["rows"] / first["rows"]))
    print("full run = prepare (a dry run repeats it) + calls through google-genai + parse/validate + SQLite; "
          f"FakeGemini at zero latency, no limits, in its own process; concurrency {CONCURRENCY}, 3 keys")


if __name__ == "__main__":
    main()
