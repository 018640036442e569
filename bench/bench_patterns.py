"""Offline pattern finding at scale: time and peak memory at 2,500, 5,000 and 10,000 analyzed failures.

    python bench/bench_patterns.py                   # 2,500 / 5,000 / 10,000
    python bench/bench_patterns.py --rows 20000

Each size is a fresh cache of synthetic analyzed failures (written straight into the cache, as
the analyzer would leave them: 23 causes over six categories, each cause's explanations worded
one to three ways and naming symbols, paths and numbers drawn from pools that grow with the run,
so about two answers in three are unique). A fresh process loads the failures and runs
find_patterns(backend="heuristic") five times; it reports the best wall and
CPU time of the five, the process's peak memory (VmHWM) beside its memory once the failures were
loaded (and how the difference grows), and, since the generator knows each failure's cause, the
adjusted Rand index of the grouping against the causes. Growth is compared with n log n.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# (category, explanation wordings, fix, error, tools): {sym} {n} {file} are filled per failure
CAUSES: list[tuple[str, tuple[str, ...], str, str, tuple[str, ...]]] = [
    ("Hallucination", ("The agent passed `{sym}=` to LlmAgent, which has no such field; the source it read shows `model`.",
                       "It configured LlmAgent with a `{sym}` keyword that does not exist, although read_file showed the real fields."),
     "Add to the instructions that LlmAgent's model field is `model`, not `{sym}`",
     "pydantic_core._pydantic_core.ValidationError: 1 validation error for LlmAgent\n{sym}\n  Extra inputs are not permitted",
     ("read_file",)),
    ("Hallucination", ("The agent imported `{sym}` from google.adk.agents, a class that does not exist.",
                       "It relied on an invented class `{sym}`; the package's __init__ it listed has no such export."),
     "Add to the instructions that google.adk.agents has no `{sym}`; use only classes the listing shows",
     "ImportError: cannot import name '{sym}' from 'google.adk.agents'", ("list_directory", "read_file")),
    ("Hallucination", ("The agent called `session.{sym}()`, a method the Session class never had.",),
     "Add to the instructions that Session has no `{sym}` method; read session.py before calling it",
     "AttributeError: 'Session' object has no attribute '{sym}'", ("read_file",)),
    ("Context Starvation", ("search_file_content found nothing for the module path {file}, so the agent guessed the API.",
                            "Every search for {file} came back empty and the agent answered from memory anyway."),
     "Instruct the agent, when search_file_content finds nothing, to list the source tree before answering",
     "AssertionError: expected {n} got {n}", ("search_file_content",)),
    ("Context Starvation", ("The agent answered without calling any tool, guessing how {sym} behaves.",),
     "Instruct the agent to read the relevant source with its tools before answering, not from memory",
     "Expected 'B', but got 'D'.", ()),
    ("Context Starvation", ("The docs folder it listed was empty; with no source read, the answer about {sym} was a guess.",),
     "Point the agent at src/ rather than docs/ in its instructions", "Answer '{sym}' does not match the expected parameter.",
     ("list_directory", "glob")),
    ("Tool Misuse", ("The agent read the directory {file} as a file with read_file and got EISDIR errors.",
                     "read_file was given the folder {file} instead of a file path, twice."),
     "Instruct the agent to list a directory before reading files in it", "Error: EISDIR: illegal operation on a directory",
     ("read_file",)),
    ("Tool Misuse", ("The agent passed an unescaped regex `{sym}(` to search_file_content, which rejected it.",),
     "Add to search_file_content's description that its pattern is a regular expression: escape `(`",
     "Error: Invalid regular expression: /{sym}(/: missing )", ("search_file_content",)),
    ("Tool Misuse", ("The agent called read_file with `path=` instead of `file_path=` and never saw the file {file}.",),
     "Add to read_file's description that it takes `file_path`, not `path`",
     "Error: params must have required property 'file_path'", ("read_file",)),
    ("Tool Misuse", ("The agent called grep_code, a tool that does not exist, {n} times.",),
     "List the agent's tools in its instructions: `grep_code` is not one of them",
     "Error: Tool \"grep_code\" not found in registry", ("grep_code",)),
    ("Tool Misuse", ("The agent guessed the file path {file} without listing the directory and read nothing.",),
     "Instruct the agent to list a directory before reading files in it, instead of guessing paths",
     "Error: File not found: {file}", ("read_file",)),
    ("Schema Violation", ("The final answer adds a `{sym}` field the answer schema forbids.",
                          "Its JSON carried an extra `{sym}` key, so the answer failed validation."),
     "Add to the instructions that the answer has only the schema's fields: no `{sym}`",
     "Failed to parse MultipleChoiceAnswer: {sym}\n  Extra inputs are not permitted", ()),
    ("Schema Violation", ("The final answer leaves out the required field `answer`.",),
     "Add to the instructions that the answer requires the field `answer`",
     "Failed to parse MultipleChoiceAnswer: answer\n  Field required", ()),
    ("Schema Violation", ("The agent wrote single-quoted JSON keys, which do not parse.",),
     "Instruct the agent to emit strict JSON: double-quoted keys and strings", "JSONDecodeError: Expecting property name", ()),
    ("Schema Violation", ("The agent answered in prose with no JSON object at all.",),
     "Instruct the agent to end with exactly one JSON object, not prose", "ValueError: No JSON object found in model response.", ()),
    ("Logic Error", ("The code sets max_iterations={n} where the task asks for 3, so the loop runs too long.",),
     "Instruct the agent to check the loop bound against the task's test before answering",
     "AssertionError: Expected the loop to stop after 3 iterations, got {n}", ("read_file",)),
    ("Logic Error", ("create_agent builds the agent but never returns it, so the test gets None.",),
     "Instruct the agent to return the agent from create_agent", "AttributeError: 'NoneType' object has no attribute 'name'",
     ("read_file",)),
    ("Logic Error", ("The agent picked option {sym} after misreading when the callback runs.",),
     "Instruct the agent to test each option against the source it read before choosing", "Expected 'A', but got 'C'.",
     ("read_file",)),
    ("Logic Error", ("The agent credited the field to BaseAgent instead of {sym}, the class the task asks about.",),
     "Instruct the agent to name the class the task asks about, not its base class",
     "fully_qualified_class_name 'google.adk.agents.base_agent.BaseAgent' does not match.", ("read_file",)),
    ("Infrastructure", ("The attempt died on 429 RESOURCE_EXHAUSTED after {n} retries; the model never answered.",
                        "Quota ran out (429) mid-run and the harness got an empty response."),
     "Give the run more model quota, or retry 429s with backoff for longer", "429 RESOURCE_EXHAUSTED. check quota", ()),
    ("Infrastructure", ("The model call exceeded its deadline (504) after {n}s.",),
     "Raise the agent run's time limit and the model call's deadline", "DeadlineExceeded: 504 Deadline Exceeded", ()),
    ("Infrastructure", ("The sandbox's container exec call failed with code 125 before the agent ran.",),
     "Repair the sandbox's container runtime before re-running",
     "Gemini CLI failed with code 125: Error: Post \"http://d/v5/containers/{sym}/exec\"", ()),
    ("Infrastructure", ("The model was overloaded (503 UNAVAILABLE) and the call was not retried.",),
     "Retry 5xx and 'overloaded' answers with backoff, or fall back to a second model",
     "google.genai.errors.ServerError: 503 UNAVAILABLE", ()),
]
GENERATORS = ("adk_workflow_agent", "gemini_cli_agent")
SUITES = ("fix_errors", "api_understanding", "configure_adk_features_mc", "diagnose_setup_errors_mc")


def synthetic_failures(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """n analyzed failed attempts: a row's failure fields, its answer, and the cause it was drawn from."""
    rng = random.Random(seed)
    weights = [1 / (k + 1) ** 0.7 for k in range(len(CAUSES))]  # a few causes dominate, as in real runs
    pool = max(8, n // 40)  # distinct symbols and paths grow with the run
    rows = []
    for i in range(n):
        cause = rng.choices(range(len(CAUSES)), weights)[0]
        category, wordings, fix, error, tools = CAUSES[cause]
        fill = {"sym": f"{rng.choice(('model_name', 'system_prompt', 'SuperAgent', 'run_tool', 'max_steps'))}"
                       f"_{rng.randrange(pool)}", "n": rng.randrange(2, 60), "file": f"src/google/adk/m{rng.randrange(pool)}.py"}
        case = rng.randrange(max(1, n // 3))  # about three attempts per failed case
        answer = {
            "root_cause_category": category, "explanation": rng.choice(wordings).format(**fill),
            "expected_behavior": "", "actual_behavior": "", "root_cause_step": 1, "candidate_steps": [1],
            "root_cause_agent": None, "evidence": [], "fix": fix.format(**fill), "confidence": 0.8,
            "used_tools": bool(tools), "tools_called": list(tools), "received_useful_output": cause % 3 != 0,
            "hallucinated_symbols": [fill["sym"]] if category == "Hallucination" else [],
            "schema_validation_failed": category == "Schema Violation",
        }
        rows.append({"run_id": f"run-{case % 4}", "benchmark_name": f"case {case:05d}", "suite": SUITES[case % len(SUITES)],
                     "generator": GENERATORS[case % 2], "attempt_number": i % 3 + 1,
                     "raw_error": error.format(**fill), "answer": answer, "cause": cause})
    return rows


def insert_analyzed(db: str | Path, rows: list[dict[str, Any]], *, model: str = "heuristic") -> list[int]:
    """Write failures with their answers straight into a cache, as analysis leaves them; returns their ids."""
    from rca.store import connect, transaction

    now = datetime.now(UTC).isoformat(timespec="seconds")
    conn = connect(db)
    try:
        with transaction(conn):
            ids = []
            for r in rows:
                failure = conn.execute(
                    "INSERT INTO failures (run_id, benchmark_name, suite, generator, attempt_number, error_type, "
                    "raw_error) VALUES (?, ?, ?, ?, ?, '[]', ?)",
                    (r["run_id"], r["benchmark_name"], r["suite"], r["generator"], r["attempt_number"], r["raw_error"]))
                text = json.dumps(r["answer"])
                analysis = conn.execute(
                    "INSERT INTO analyses (failure_id, model, taxonomy, prompt_version, trace_hash, category, analysis, "
                    "created_at) VALUES (?, ?, 'default', 'bench', '', ?, ?, ?)",
                    (failure.lastrowid, model, r["answer"]["root_cause_category"], text, now))
                conn.execute("UPDATE failures SET llm_root_cause = ?, llm_analysis = ?, analysis_id = ? WHERE id = ?",
                             (r["answer"]["root_cause_category"], text, analysis.lastrowid, failure.lastrowid))
                ids.append(int(failure.lastrowid or 0))
    finally:
        conn.close()
    return ids


_CHILD = """
import json, sys, time
import rca, sklearn.cluster  # imported before the clock starts, as in a notebook that used them already
from rca.patterns import find_patterns
from sklearn.metrics import adjusted_rand_score
db, causes = sys.argv[1], json.load(open(sys.argv[2]))
def hwm():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
df = rca.load_failures(db)
before = hwm()
took, cpu = [], []
for n in range(5):  # the best of five (the first stores the grouping; force=True groups again)
    start, start_cpu = time.perf_counter(), time.process_time()
    out = find_patterns(df, backend="heuristic", progress=False, force=n > 0)
    took.append(time.perf_counter() - start)
    cpu.append(time.process_time() - start_cpu)
label = {i: f"p{n}" for n, ids in enumerate(out[~out["other"]]["failure_ids"]) for i in ids}
ids = sorted(causes)
ari = adjusted_rand_score([causes[i] for i in ids], [label.get(int(i), "o" + i) for i in ids])
print(json.dumps({"seconds": min(took), "cpu": min(cpu), "hwm_kb": hwm(), "loaded_kb": before, "patterns": int((~out["other"]).sum()), "ari": ari}))
"""


def measure(n: int, workdir: Path) -> dict[str, Any]:
    rows = synthetic_failures(n)
    db = workdir / f"bench_{n}.db"
    ids = insert_analyzed(db, rows)
    causes = workdir / f"causes_{n}.json"
    causes.write_text(json.dumps({str(i): r["cause"] for i, r in zip(ids, rows)}))
    out = subprocess.run([sys.executable, "-c", _CHILD, str(db), str(causes)], capture_output=True, text=True, check=True)
    return {"rows": n, **json.loads(out.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, action="append", help="sizes to measure (repeatable)")
    sizes = parser.parse_args().rows or [2_500, 5_000, 10_000]
    with tempfile.TemporaryDirectory() as tmp:
        results = [measure(n, Path(tmp)) for n in sizes]
    print(f"{'rows':>7} {'wall s':>7} {'cpu s':>6} {'x cpu':>6} {'x n log n':>9} {'peak MB':>8} {'loaded MB':>9} "
          f"{'x added':>7} {'patterns':>8} {'ARI':>5}")
    first = results[0]
    for r in results:
        nlogn = r["rows"] * math.log(r["rows"]) / (first["rows"] * math.log(first["rows"]))
        added = (r["hwm_kb"] - r["loaded_kb"]) / (first["hwm_kb"] - first["loaded_kb"])
        print(f"{r['rows']:>7,} {r['seconds']:>7.2f} {r['cpu']:>6.2f} {r['cpu'] / first['cpu']:>6.2f} {nlogn:>9.2f} "
              f"{r['hwm_kb'] / 1024:>8.0f} {r['loaded_kb'] / 1024:>9.0f} {added:>7.2f} {r['patterns']:>8} {r['ari']:>5.2f}")


if __name__ == "__main__":
    main()
