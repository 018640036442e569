"""Shared helpers: real run folders on disk, written in the harness's format."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "root_cause_analysis.ipynb"  # what write_notebook.py writes
FIXTURE = REPO / "tests" / "data" / "benchmark_output_test.jsonl"  # a copy of shared/fixtures/harness/'s


def event(event_type: str, data: dict[str, Any], ts: float = 1_767_000_000.0) -> dict[str, Any]:
    return {"event_type": event_type, "timestamp": ts, "data": data}


def attempt(number: int, status: str, error: str | None = None, trace: list[dict] | None = None,
            **fields: Any) -> dict[str, Any]:
    """One generation_attempts item; `fields` set others (answer, rationale, usage_metadata)."""
    return {"attempt_number": number, "status": status, "error_message": error, "duration": 1.0,
            "api_key_id": "k0", "trace_logs": trace, "answer": None, "rationale": None, "usage_metadata": None,
            **fields}


def result_event(name: str, result: str = "fail_validation", *, suite: str = "fix_errors",
                validation_error: str | None = "AssertionError: expected 2, got 3",
                attempts: list[dict] | None = None, trace: list[dict] | None = None, case_id: str | None = None,
                **data: Any) -> dict:
    """A test_result event; `data` sets other fields of its data (answer_data, prompt, ...)."""
    return event("test_result", {"id": case_id or name, "suite": suite, "benchmark_name": name, "result": result,
                                 "validation_error": validation_error, "temp_test_file": None, "answer_data": {},
                                 "trace_logs": trace, "generation_attempts": attempts, **data})


TRACE_FIELDS = ("type", "timestamp", "source", "role", "author", "tool_name", "tool_call_id",
                "tool_input", "tool_output", "content", "details")
PART_FIELDS = ("media_resolution", "code_execution_result", "executable_code", "file_data", "function_call",
               "function_response", "inline_data", "text", "thought", "thought_signature", "video_metadata")


def trace_event(type_: str, **fields: Any) -> dict[str, Any]:
    """A harness trace event (a trace_logs item): every field present, most of them null."""
    out: dict[str, Any] = dict.fromkeys(TRACE_FIELDS)
    out.update(type=type_, **fields)
    return out


def adk_event(author: str | None, *parts: dict[str, Any], role: str = "model", top_author: str | None = None,
              event_id: str = "ev-0", **details: Any) -> dict[str, Any]:
    """An ADK_EVENT as real runs write it: top-level author null (unless given), the raw event in
    `details` with its author, id, usage metadata and a copy of the content; every part key present."""
    full = [{**dict.fromkeys(PART_FIELDS), **part} for part in parts]
    content = {"parts": full, "role": role}
    raw = {"content": content, "author": author, "id": event_id, "invocation_id": f"inv-{event_id}",
           "error_code": None, "error_message": None, "timestamp": 1_767_000_000.0,
           "usage_metadata": {"prompt_token_count": 1234, "total_token_count": 1300}, **details}
    return trace_event("ADK_EVENT", source="adk", author=top_author, content=content, details=raw)


def write_run(runs_dir: Path, run_id: str, events: list[dict], fmt: str = "jsonl") -> Path:
    folder = runs_dir / run_id
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "yaml":
        path = folder / "trace.yaml"
        path.write_text(yaml.safe_dump_all(events, sort_keys=False), encoding="utf-8")
    else:
        path = folder / "trace.jsonl"
        path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return path


@pytest.fixture
def fixture_runs(tmp_path: Path) -> Path:
    """The real harness sample as one run folder."""
    if not FIXTURE.is_file():
        pytest.fail(f"real fixture missing: {FIXTURE}")
    runs = tmp_path / "runs"
    (runs / "2025-12-13_00-15-41").mkdir(parents=True)
    shutil.copy(FIXTURE, runs / "2025-12-13_00-15-41" / "trace.jsonl")
    return runs
