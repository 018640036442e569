"""The demo folder must look like real harness output, be big and varied enough to exercise
rca, carry the evidence for each root cause, and be byte-for-byte reproducible.

Failures are counted here by an independent walk over the files, per the harness contract,
never through rca's own readers, so a bug in either shows up as a disagreement."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from rca.demo import CATEGORIES, demo_ground_truth, make_demo

EVENT_TYPES = {"run_start", "section_start", "section_end", "message", "generation_failure", "test_result",
               "summary_table", "run_end"}
TRACE_TYPES = {"ADK_EVENT", "message", "tool_use", "tool_result", "GEMINI_API_RESPONSE", "init", "CLI_STDOUT_FULL",
               "CLI_STDOUT_RAW", "CLI_STDERR", "GEMINI_CLIENT_ERROR", "system_result", "run_start", "run_end"}
TRACE_KEYS = {"type", "timestamp", "source", "role", "author", "tool_name", "tool_call_id", "tool_input",
              "tool_output", "content", "details"}
ATTEMPT_KEYS = {"attempt_number", "status", "error_message", "duration", "api_key_id", "trace_logs", "answer",
                "rationale", "usage_metadata"}
USAGE_KEYS = {"total_tokens", "prompt_tokens", "completion_tokens", "cost", "total_time", "extra_tags"}
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("demo")
    return root, make_demo(root)


def events_of(path: Path) -> Iterator[dict[str, Any]]:
    """Every JSON line / YAML document, failing on the first that does not parse."""
    if path.suffix == ".yaml":
        with path.open(encoding="utf-8") as fh:
            yield from yaml.load_all(fh, Loader=Loader)
        return
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                pytest.fail(f"{path}:{n} is not JSON: {exc}")


def walk(files: list[Path]) -> Iterator[tuple[str, str | None, dict[str, Any], dict[str, Any]]]:
    """(run_id, generator, event, data) for every event, tracking the section stack."""
    for path in files:
        sections: list[str] = []
        for event in events_of(path):
            kind, data = event["event_type"], event["data"]
            if kind == "section_start":
                sections.append(data["name"])
            elif kind == "section_end":
                assert sections and sections.pop() == data["name"], f"unbalanced section {data['name']} in {path}"
            gens = [s.split(": ", 1)[1] for s in sections if s.startswith(("Generator: ", "Agent: "))]
            yield path.parent.name, (gens[-1] if gens else None), event, data
        assert not sections, f"unclosed sections {sections} in {path}"


def failed_attempts(files: list[Path]) -> dict[tuple[str, str, int | None], dict[str, Any]]:
    """The contract's failures: non-success attempts of failed cases, the final attempt if it
    'succeeded' but the case failed, and each generation_failure (attempt number None)."""
    found: dict[tuple[str, str, int | None], dict[str, Any]] = {}
    for run_id, _gen, event, data in walk(files):
        if event["event_type"] == "generation_failure":
            found[(run_id, data["benchmark_name"], None)] = {"data": data}
        elif event["event_type"] == "test_result" and data["result"] != "pass":
            attempts = data["generation_attempts"]
            for i, a in enumerate(attempts):
                if a["status"] != "success" or i == len(attempts) - 1:
                    key = (run_id, data["benchmark_name"], a["attempt_number"])
                    assert key not in found, f"duplicate failure key {key}"
                    found[key] = {"data": data, "attempt": a, "final": i == len(attempts) - 1}
    return found


def test_every_record_parses_and_follows_the_contract(demo: tuple[Path, list[Path]]) -> None:
    _root, files = demo
    kinds: Counter[str] = Counter()
    for _run, _gen, event, data in walk(files):
        assert set(event) == {"event_type", "timestamp", "data"} and isinstance(event["timestamp"], float)
        assert event["event_type"] in EVENT_TYPES and isinstance(data, dict)
        kinds[event["event_type"]] += 1
        if event["event_type"] != "test_result":
            continue
        assert {"id", "suite", "benchmark_name", "result", "validation_error", "temp_test_file", "answer_data",
                "trace_logs", "generation_attempts"} <= set(data)
        assert data["trace_logs"] == data["generation_attempts"][-1]["trace_logs"]
        for n, attempt in enumerate(data["generation_attempts"], 1):
            assert set(attempt) == ATTEMPT_KEYS and attempt["attempt_number"] == n
            assert set(attempt["usage_metadata"]) == USAGE_KEYS
            if n < len(data["generation_attempts"]):
                assert attempt["status"] != "success", "a retry follows only a failed attempt"
            for t in attempt["trace_logs"]:
                assert set(t) == TRACE_KEYS and t["type"] in TRACE_TYPES
                if t["type"] == "ADK_EVENT":
                    assert set(t["content"]) == {"parts", "role"} and t["author"]
                    for part in t["content"]["parts"]:
                        assert {"text", "function_call", "function_response", "thought", "thought_signature"} <= set(part)
                        sig = part["thought_signature"]
                        assert sig is None or (sig.startswith(("b'\\n\\xa5\\x06", 'b"\\n\\xa5\\x06')) and len(sig) > 300)
    assert all(kinds[k] for k in EVENT_TYPES), kinds


def test_sizes_and_variety(demo: tuple[Path, list[Path]]) -> None:
    root, files = demo
    assert len(files) >= 3 and {f.suffix for f in files} == {".jsonl", ".yaml"}
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d", f.parent.name) for f in files)
    assert sum(f.stat().st_size for f in files) < 5_000_000
    gens, suites, results = set(), set(), Counter()
    trace_types: Counter[str] = Counter()
    authors, tools, big_outputs = set(), set(), 0
    for _run, gen, event, data in walk(files):
        if event["event_type"] == "test_result":
            gens.add(gen)
            suites.add(data["suite"])
            results[data["result"] == "pass"] += 1
            for a in data["generation_attempts"]:
                for t in a["trace_logs"]:
                    trace_types[t["type"]] += 1
                    authors.add(t["author"])
                    tools.add(t["tool_name"])
                    big_outputs += len(t["tool_output"] or "") > 4000
    assert None not in gens and len(gens) >= 2
    assert len(suites) >= 3 and {"fix_errors", "api_understanding"} <= suites
    assert results[True] > results[False] > 0, "most cases pass, some fail"
    assert {"ADK_EVENT", "tool_use", "tool_result", "message", "CLI_STDERR", "GEMINI_CLIENT_ERROR"} <= set(trace_types)
    assert {"retrieval_worker", "code_writer"} <= authors
    assert {"read_file", "list_directory", "search_file_content"} <= tools
    assert big_outputs > 0, "some tool outputs are whole files of several KB"


def test_failed_attempts_are_counted_and_match_ground_truth(demo: tuple[Path, list[Path]]) -> None:
    root, files = demo
    found = failed_attempts(files)
    truth = demo_ground_truth(root)
    assert len(found) >= 60
    assert set(found) == set(truth), "ground truth must name exactly the failures in the files"
    assert sum(key[2] is None for key in found) >= 2, "a couple of generation_failure events"
    counts = Counter(truth.values())
    assert set(counts) == set(CATEGORIES) and len(CATEGORIES) == 6
    assert min(counts.values()) >= 8, counts


def test_categories_are_the_default_taxonomy() -> None:
    from rca.schema import DEFAULT_TAXONOMY

    assert set(CATEGORIES) == set(DEFAULT_TAXONOMY.names)


def _tool_outputs(trace: list[dict[str, Any]]) -> list[str]:
    outs = [t["tool_output"] for t in trace if t["type"] == "tool_result"]
    for t in trace:
        if t["type"] == "ADK_EVENT":
            outs += [p["function_response"]["response"]["result"] for p in t["content"]["parts"] if p["function_response"]]
    return outs


def _prompt(trace: list[dict[str, Any]]) -> str:
    first = next(t for t in trace if t["role"] == "user")
    return first["content"] if isinstance(first["content"], str) else first["content"]["parts"][0]["text"]


def _claims(data: dict[str, Any], prompt: str) -> set[str]:
    """Identifiers the answer relies on: keyword args, imports, attributes, the named field/class."""
    answer = data["answer_data"] or {}
    if "answer" in answer:  # multiple choice: what the chosen option names
        option = re.search(rf"^{answer['answer']}\. (.*)$", prompt, re.M)
        return set(re.findall(r"`(\w+)", option.group(1))) if option else set()
    names = set(re.findall(r"(\w+)=", answer.get("code", "")) + re.findall(r"import (\w+)", answer.get("code", ""))
                + re.findall(r"\.(\w+)", answer.get("code", "")))
    if "fully_qualified_class_name" in answer:
        names |= {answer["code"], answer["fully_qualified_class_name"].rsplit(".", 1)[-1]}
    return {n for n in names if n}


def simple_rules(failure: dict[str, Any]) -> str:
    """What a careful reader checks, as six rules in order: environment, output shape, how tools
    were called, whether they found anything, whether the answer uses what they showed."""
    data, attempt = failure["data"], failure.get("attempt")
    if attempt is None:
        return "Infrastructure"  # generation_failure: the harness could not run the agent
    trace = attempt["trace_logs"]
    last = [t for t in trace if t["type"] != "system_result"][-1]
    if last["type"] in ("GEMINI_CLIENT_ERROR", "CLI_STDERR"):
        return "Infrastructure"
    if attempt["status"] != "success" or (data["validation_error"] or "").startswith("Signature Verification Failed"):
        return "Schema Violation"
    outputs = _tool_outputs(trace)
    if any(o.startswith("Error") for o in outputs):
        return "Tool Misuse"
    if all(re.match(r"No matches found|No files found|Directory \S+ is empty", o) for o in outputs):
        return "Context Starvation"
    prompt = _prompt(trace)
    seen = "\n".join(outputs) + ("" if "answer" in (data["answer_data"] or {}) else prompt)
    if any(not re.search(rf"\b{re.escape(n)}\b", seen) for n in _claims(data, prompt)):
        return "Hallucination"
    return "Logic Error"


def naive_regex(text: str | None) -> str:
    """A category read off the error text alone, as the harness's regex pass would suggest it."""
    text = text or ""
    for pattern, cause in [(r"429|RESOURCE_EXHAUSTED|Deadline|code 125|NoneType|Empty response", "Infrastructure"),
                           (r"validation error for|Invalid JSON|JSONDecodeError", "Schema Violation"),
                           (r"ImportError|ModuleNotFoundError|AttributeError", "Hallucination"),
                           (r"AssertionError|Expected '", "Logic Error")]:
        if re.search(pattern, text):
            return cause
    return "Unknown"


def test_each_failure_carries_the_evidence_for_its_cause(demo: tuple[Path, list[Path]]) -> None:
    root, files = demo
    truth = demo_ground_truth(root)
    found = failed_attempts(files)
    wrong = {k: (truth[k], simple_rules(f)) for k, f in found.items() if simple_rules(f) != truth[k]}
    assert not wrong, wrong
    misled = Counter()
    for key, failure in found.items():
        attempt = failure.get("attempt") or {}
        text = failure["data"]["validation_error"] if failure.get("final") and attempt.get("status") == "success" \
            else attempt.get("error_message") or failure["data"].get("error_message")
        if naive_regex(text) != truth[key]:
            misled[truth[key]] += 1
    assert sum(misled.values()) >= 15 and len(misled) >= 4, f"the error text should often mislead: {misled}"


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    started = time.perf_counter()
    a = make_demo(tmp_path / "a", seed=11)
    assert time.perf_counter() - started < 2.0
    b = make_demo(tmp_path / "b", seed=11)
    c = make_demo(tmp_path / "c", seed=12)
    rel = [p.relative_to(tmp_path / "a") for p in a]
    assert rel == [p.relative_to(tmp_path / "b") for p in b]
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b))
    assert [p.parent.name for p in c] != [p.parent.name for p in a]
    assert all(x.read_bytes() != z.read_bytes() for x, z in zip(a, c))
    assert demo_ground_truth(tmp_path / "a", seed=11) == demo_ground_truth(tmp_path / "b", seed=11)


def test_ground_truth_refuses_a_folder_made_with_another_seed(demo: tuple[Path, list[Path]]) -> None:
    root, _files = demo
    with pytest.raises(FileNotFoundError):
        demo_ground_truth(root, seed=8)


def _shapes(files: list[Path]) -> dict[str, set[tuple[str, ...]]]:
    shapes: dict[str, set[tuple[str, ...]]] = {}
    for _run, _gen, event, data in walk(files):
        shapes.setdefault(event["event_type"], set()).add(tuple(data))
        for a in data.get("generation_attempts") or []:
            shapes.setdefault("attempt", set()).add(tuple(a))
            for t in a["trace_logs"]:
                shapes.setdefault(t["type"], set()).add(tuple(t))
                if t["type"] == "ADK_EVENT":
                    shapes.setdefault("part", set()).update(tuple(p) for p in t["content"]["parts"])
    return shapes


def test_yaml_run_has_the_same_shapes_as_the_json_runs(demo: tuple[Path, list[Path]]) -> None:
    _root, files = demo
    yaml_files = [f for f in files if f.suffix == ".yaml"]
    json_files = [f for f in files if f.suffix == ".jsonl"]
    assert yaml_files and json_files
    text = yaml_files[0].read_text(encoding="utf-8")
    assert text.startswith("---") and "!!python" not in text
    docs = list(events_of(yaml_files[0]))
    assert len(docs) > 100 and all(isinstance(d, dict) and "event_type" in d for d in docs), "one document per event"
    assert _shapes(yaml_files) == _shapes(json_files)
