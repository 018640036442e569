"""Configured API keys: parsed one per key from the environment, and scrubbed from all rca shows.

Also: the report puts no secret from a trace, an error or a benchmark name on the page.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import quote, quote_plus

import pandas as pd
import pytest

from rca import redact as redact_module
from rca import report
from rca.ingest import ingest_runs
from rca.keys import KeyPool, fingerprint
from rca.redact import add_secrets, marker, redact
from rca.store import load_failures
from tests.conftest import attempt, event, result_event, write_run

K1 = "AIzaSyA-secrets-key-one-000000000000000"
K2 = "AIzaSyB-secrets-key-two-000000000000000"
OPAQUE = "opaque/Key+with=odd\"chars\\and-0123456789"  # matches no built-in pattern: only the registry finds it


@pytest.fixture(autouse=True)
def no_registered_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with an empty registry and leaves none of its keys behind for other tests."""
    monkeypatch.setattr(redact_module, "_configured", ())


# -- parsing GEMINI_API_KEYS ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        f"{K1},{K2}",
        f"{K1}\n{K2}\n",  # export GEMINI_API_KEYS="$(cat keys.txt)"
        f"{K1}\r\n{K2}\r\n",
        f"{K1} {K2}",
        f"{K1}, {K2}",
        f"\n\t{K1} ,, {K2},\n{K1}\n",  # empties dropped, duplicates once
    ],
)
@pytest.mark.parametrize("name", ["GEMINI_API_KEYS", "GEMINI_API_KEYS_POOL"])
def test_key_list_splits_on_commas_whitespace_and_newlines(name: str, value: str) -> None:
    pool = KeyPool.from_env({name: value})
    assert pool is not None
    assert [row["key"] for row in pool.summary()] == [fingerprint(K1), fingerprint(K2)]


def test_single_key_variable_and_none_set() -> None:
    pool = KeyPool.from_env({"GEMINI_API_KEY": f"  {K1}\n"})
    assert pool is not None and [row["key"] for row in pool.summary()] == [fingerprint(K1)]
    assert KeyPool.from_env({"GEMINI_API_KEYS": " \n , "}) is None


# -- configured keys are redacted ----------------------------------------------------------------


def test_every_configured_key_is_registered_even_the_unused_ones() -> None:
    KeyPool.from_env({"GEMINI_API_KEYS": f"{K1}\n{OPAQUE}", "GOOGLE_API_KEY": K2})
    out = redact(f"401 for {K1}; env dump: GOOGLE_API_KEY={K2}; raw {OPAQUE}")
    assert K1 not in out and K2 not in out and OPAQUE not in out
    assert out.count(marker("api_key")) == 3


@pytest.mark.parametrize(
    "spelling",
    [
        OPAQUE,
        json.dumps(OPAQUE)[1:-1],  # inside a JSON string
        json.dumps(json.dumps(OPAQUE)[1:-1])[1:-1],  # JSON inside a JSON string
        json.dumps(OPAQUE)[1:-1].replace("/", "\\/"),  # JSON with escaped slashes
        repr(OPAQUE)[1:-1],
        quote(OPAQUE, safe=""),
        quote(OPAQUE),
        quote_plus(OPAQUE),
        re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(OPAQUE, safe="")),  # lower-case %xx escapes
    ],
)
def test_a_registered_key_is_removed_in_any_quoting(spelling: str) -> None:
    add_secrets([OPAQUE])
    assert redact(f"url?key={spelling}&x=1") == f"url?key={marker('api_key')}&x=1"


def test_registered_key_wins_over_the_pattern_that_would_also_match() -> None:
    add_secrets([K1])
    assert redact(f"key={K1}") == f"key={marker('api_key')}"


def test_placeholder_keys_are_not_registered() -> None:
    add_secrets(["x", "test", ""])  # a one-letter "key" would shred every word holding that letter
    assert redact("the test text") == "the test text"


def test_no_registered_key_leaves_text_alone() -> None:
    assert redact(f"AIza but no key; {OPAQUE}") == f"AIza but no key; {OPAQUE}"


# -- the report ----------------------------------------------------------------------------------

BEARER = "Bearer eyFakeT0ken.abc123def456"
SK = "sk-3xampleKeyForReportsOnly0123456789"


def _leaks(page: str) -> list[str]:
    return [s for s in ("eyFakeT0ken", "3xampleKeyForReportsOnly", OPAQUE, quote(OPAQUE, safe="")) if s in page]


@pytest.fixture
def leaky(tmp_path: Path) -> tuple[pd.DataFrame, Path]:
    """A failure whose trace, error and benchmark name hold secrets, ingested, with an answer that quotes them."""
    error = f"HTTP 401: sent Authorization: {BEARER} with key {SK}"
    trace = [event("model_response", {"content": f"calling the API with {SK} and {BEARER}"})]
    name = f"call_api[{SK}]"  # a parametrized case named after its argument
    write_run(tmp_path / "runs", "2026-01-01_00-00-00",
              [result_event(name, validation_error=error, attempts=[attempt(1, "failed", error, trace)], trace=trace)])
    ingest_runs(tmp_path / "runs", tmp_path / "cache.db")
    df = load_failures(tmp_path / "cache.db")
    assert len(df) and SK in df["raw_error"].iloc[0]  # the cache keeps the original; the page must not
    df = df.assign(category="wrong_api_usage", confidence=0.9, root_cause_step=0,
                   root_cause_explanation=f"the agent pasted {BEARER} and {OPAQUE}",
                   expected_behavior=f"keep {SK} out", actual_behavior=f"printed {SK}", fix=f"rotate {SK}")
    return df, tmp_path / "runs"


def test_report_pages_show_no_secret(leaky: tuple[pd.DataFrame, Path]) -> None:
    df, runs = leaky
    add_secrets([OPAQUE])
    df.attrs["rca_session"] = {"model": "m", "rows": 1, "from_cache": 0, "errors": 1, "first_error": f"401 {BEARER}"}
    pages = {
        "show_trace": report.show_trace(df.iloc[0], runs_dir=runs).data,
        "category_examples": report.category_examples(df).data,
        "table": report.table(df[["benchmark_name", "raw_error", "harness_explanation", "root_cause_explanation"]],
                              title=df["benchmark_name"].iloc[0]).data,
        "overview": report.overview(df).to_html(),
    }
    assert {where: _leaks(page) for where, page in pages.items()} == {where: [] for where in pages}
    assert marker("secret_key") in pages["show_trace"] and marker("api_key") in pages["category_examples"]
    assert "Harness error" in pages["show_trace"]  # the error row is there, redacted, not dropped


def test_an_unreadable_trace_error_is_redacted(leaky: tuple[pd.DataFrame, Path]) -> None:
    df, _ = leaky
    row = df.iloc[0].copy()
    row["trace_log_path"] = f"/nowhere/{SK}/trace.jsonl"
    row["run_id"] = f"gone {SK}"
    page = report.show_trace(row, runs_dir=f"/nowhere/{SK}").data
    assert "trace not readable" in page and _leaks(page) == []
