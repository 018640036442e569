"""analyze_failures: a DataFrame of failed attempts in, one root cause per attempt out.

Each row's trace is read through its locator, rendered to the token budget and sent to
the backend; every answer is written to the cache as it arrives, so an interrupted
batch loses nothing already answered, and a re-run asks the model again only when the
model, taxonomy, prompt or trace changed (or force=True).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from rca.backends import AnalysisOutcome, AnalysisRequest, Backend
from rca.backends.registry import choose_backend, planned_model
from rca.claims import claim, new_owner, release
from rca.estimate import estimate
from rca.errors import AllKeysDead, ParameterError
from rca.keys import KeyPool, format_summary
from rca.pricing import Price, estimate_cost, price_known
from rca.progress import Progress
from rca.prompt import PROMPT_VERSION, system_instruction
from rca.render import estimate_tokens, render_trace
from rca.results import answer_columns, verify_evidence
from rca.schema import Taxonomy, answer_to_json, category_of, resolve_taxonomy
from rca.store import (DEFAULT_DB, LOCATOR_COLUMNS, AnalysisRecord, FailureRow, cached_analysis, connect,
                       ensure_writable, import_unsaved, is_locked, keep_unsaved, record_analysis, record_locator,
                       unsaved_path)
from rca.sync import run_sync
from rca.traces import TraceNotFound, load_transcript, locate_untracked

TRACE_BUDGET_TOKENS = 50_000
RESULT_COLUMNS = [
    "category", "root_cause_explanation", "expected_behavior", "actual_behavior", "root_cause_step",
    "candidate_steps", "root_cause_agent", "fix", "confidence", "evidence", "evidence_total", "evidence_verified",
    "used_tools", "tools_called",
    "received_useful_output", "hallucinated_symbols", "schema_validation_failed", "model",
    "input_tokens", "output_tokens", "cost_usd", "latency_s", "analysis_error", "from_cache",
]


@dataclass
class _Job:
    """One row of the batch; its trace is read and rendered only when its turn comes."""

    index: Any
    row: dict[str, Any]
    result: dict[str, Any]


@dataclass
class _Prepared:
    request: AnalysisRequest
    est_tokens: int
    est_cost: float | None  # None: the model's price is unknown
    located: FailureRow | None = None  # the locator found for a row the harness wrote, to record


def analyze_failures(
    df: pd.DataFrame,
    *,
    db: str | Path | None = None,
    model: str | None = None,
    backend: str | Backend = "auto",
    taxonomy: Taxonomy | str | Path | None = "default",
    concurrency: int = 8,
    force: bool = False,
    dry_run: bool = False,
    budget_usd: float | None = None,
    progress: bool = True,
    runs_dir: str | Path | None = None,
    timeout: float = 120.0,
    price: str | Price | None = None,
) -> pd.DataFrame:
    """Analyze each failed attempt in `df` (rows of load_failures) and return them with result columns.

    Works from a script, from papermill and from a Jupyter cell: where an event loop is
    already running, the batch runs on its own loop in a worker thread.
    """
    coro = analyze_failures_async(
        df, db=db, model=model, backend=backend, taxonomy=taxonomy, concurrency=concurrency,
        force=force, dry_run=dry_run, budget_usd=budget_usd, progress=progress, runs_dir=runs_dir,
        timeout=timeout, price=price,
    )
    return run_sync(coro, thread_name="rca-analyze")


async def analyze_failures_async(
    df: pd.DataFrame,
    *,
    db: str | Path | None = None,
    model: str | None = None,
    backend: str | Backend = "auto",
    taxonomy: Taxonomy | str | Path | None = "default",
    concurrency: int = 8,
    force: bool = False,
    dry_run: bool = False,
    budget_usd: float | None = None,
    progress: bool = True,
    runs_dir: str | Path | None = None,
    timeout: float = 120.0,
    price: str | Price | None = None,
) -> pd.DataFrame:
    """analyze_failures for `await`."""
    if concurrency < 1:
        raise ParameterError(f"concurrency must be >= 1, got {concurrency}")
    missing = {"id", "benchmark_name", "run_id"} - set(df.columns)
    if missing:
        raise ValueError(f"df lacks columns {sorted(missing)}: pass rows of rca.load_failures(...)")
    tax = resolve_taxonomy(taxonomy)
    user_price = Price.parse(price) if isinstance(price, str) else price
    db_path = Path(db or df.attrs.get("rca_db") or DEFAULT_DB)
    if not db_path.is_file():
        raise FileNotFoundError(f"no cache at {db_path}: pass db= the analysis_cache.db these rows came from")
    if dry_run:  # needs no key, and any taxonomy: nothing is sent
        planned = backend.model if not isinstance(backend, str) else planned_model(backend, model)
        return estimate(df, db_path, planned, tax, runs_dir=runs_dir, price=user_price)
    engine = (choose_backend(backend, model, announce=progress, timeout_s=timeout, price=user_price)
              if isinstance(backend, str) else backend)
    if budget_usd is not None and user_price is None and not price_known(engine.model):
        raise ParameterError(f"budget_usd needs the price of {engine.model}, which the price data (genai-prices) does "
                             "not know: give price='INPUT,OUTPUT' in USD per 1M tokens (--price on the command line)")
    check_taxonomy = getattr(engine, "check_taxonomy", None)  # optional Backend hook
    if check_taxonomy is not None:
        check_taxonomy(tax)  # a setup error: say so before any row, not once per row
    jobs = [_Job(index, row, {"model": engine.model}) for index, row in zip(df.index, df.to_dict("records"))]
    conn = connect(db_path)
    try:
        ensure_writable(conn, db_path)  # before any call is paid for
        if imported := import_unsaved(conn, db_path):
            print(f"rca: wrote {imported} answers kept aside by an earlier run ({unsaved_path(db_path)})", file=sys.stderr)
        runner = _Runner(conn, engine, tax, runs_dir=runs_dir, force=force, concurrency=concurrency,
                         budget_usd=budget_usd, progress=progress, price=user_price)
        await runner.run(jobs)
        runner.save_unsaved(db_path)
        if runner.setup_error is not None:
            raise runner.setup_error
        print(runner.summary(len(jobs)), file=sys.stderr)
        if runner.fatal:
            raise AllKeysDead(f"{runner.fatal}; {runner.done} rows were analyzed and saved before it stopped")
    finally:
        conn.close()
    out = _with_results(df, jobs)
    if runner.key_summary():
        out.attrs["rca_keys"] = runner.key_summary()  # each key's pace and 429s, by fingerprint
    return out


def prepare(row: dict[str, Any], model: str, tax: Taxonomy, runs_dir: str | Path | None,
            price: Price | None = None) -> _Prepared:
    """Read one row's transcript, render it and estimate its input; raises TraceNotFound/OSError."""
    located = locate_untracked(row, runs_dir=runs_dir)
    if located is not None:
        row = {**row, **{k: v for k, v in asdict(located).items() if k in LOCATOR_COLUMNS}}
    transcript = load_transcript(row, runs_dir=runs_dir)
    rendered = render_trace(transcript, budget_tokens=TRACE_BUDGET_TOKENS)
    request = AnalysisRequest(failure_id=int(row["id"]), transcript=transcript, rendered=rendered, taxonomy=tax)
    tokens = estimate_tokens(system_instruction(tax)) + estimate_tokens(request.prompt)
    return _Prepared(request, tokens, estimate_cost(model, tokens, price), located)


def _result_from_record(record: dict[str, Any]) -> dict[str, Any]:
    answer = json.loads(record["analysis"]) if record.get("analysis") else None
    return answer_columns(answer) | {
        "confidence": record.get("confidence"), "evidence_total": record.get("evidence_total"),
        "evidence_verified": record.get("evidence_verified"), "model": record["model"],
        "input_tokens": record.get("input_tokens"), "output_tokens": record.get("output_tokens"),
        "cost_usd": record.get("cost_usd"), "latency_s": record.get("latency_s"),
        "analysis_error": record.get("error"), "from_cache": False,
    }


class _Runner:
    """Runs the jobs under a concurrency bound and a budget, writing each result as it lands.

    `concurrency` is a ceiling on rows in progress, not the pace: a Gemini backend's KeyPool
    sends each call only when its key's budgets allow, so the calls in flight follow the
    rate limits (rate x latency) and a slow call holds nothing but its own row. A row's
    trace is read and rendered inside its slot and dropped once its result is stored, so
    memory follows `concurrency`, not the number of rows.
    """

    def __init__(self, conn: sqlite3.Connection, engine: Backend, tax: Taxonomy, *, runs_dir: str | Path | None,
                 force: bool, concurrency: int, budget_usd: float | None, progress: bool,
                 price: Price | None = None) -> None:
        self.conn, self.engine, self.tax, self.budget = conn, engine, tax, budget_usd
        self.runs_dir, self.force, self.progress, self.price = runs_dir, force, progress, price
        self.slots = asyncio.Semaphore(concurrency)
        self.spent = self.in_flight = 0.0
        self.done = self.failed = self.skipped = self.cached = 0
        self.fatal: str | None = None
        self.setup_error: Exception | None = None
        self._check_lock, self._model_checked = asyncio.Lock(), False
        self.owner = new_owner()
        self.unsaved: list[AnalysisRecord] = []

    async def run(self, jobs: list[_Job]) -> None:
        if not jobs:
            return
        self.bar = Progress(len(jobs), f"rca analyze ({self.engine.model})", "rows", enabled=self.progress)
        try:
            await asyncio.gather(*(self._one(job) for job in jobs))
        finally:
            self.bar.close()

    async def _one(self, job: _Job) -> None:
        try:
            await self._analyze(job)
        except Exception as exc:  # one row's unforeseen failure is that row's error, never the batch's
            job.result["analysis_error"] = f"internal error: {type(exc).__name__}: {exc}"
            self.failed += 1
            self._tick()

    async def _analyze(self, job: _Job) -> None:
        async with self.slots:
            try:  # off the loop: a multi-MB trace takes tens of ms to render, and calls are in flight
                prepared = await asyncio.to_thread(prepare, job.row, self.engine.model, self.tax, self.runs_dir, self.price)
            except (TraceNotFound, OSError) as exc:
                job.result["analysis_error"] = self._record_error(int(job.row["id"]), f"trace not readable: {exc}")
                self.failed += 1
                return self._tick()
            request = prepared.request
            if prepared.located is not None:
                record_locator(self.conn, request.failure_id, prepared.located)
            hit = None if self.force else cached_analysis(
                self.conn, request.failure_id, model=self.engine.model, taxonomy=self.tax.key,
                prompt_version=PROMPT_VERSION, trace_hash=request.prompt_hash)
            if hit is not None:
                job.result = _result_from_record(dict(hit)) | {"from_cache": True}
                self.cached += 1
                return self._tick()
            if self.fatal is None:
                await self._check_model()
            if self.fatal is not None:
                return self._skip(job, self.fatal)
            cost = prepared.est_cost or 0.0  # unknown only without a budget (refused at the start)
            if self.budget is not None and self.spent + self.in_flight + cost > self.budget:
                return self._skip(job, f"budget ${self.budget:.4f} reached")
            if (holder := claim(self.conn, request.failure_id, self.owner)) is not None:
                return self._skip(job, f"being analyzed by another process ({holder})")
            try:  # released however the call ends, an interrupt included
                self.in_flight += cost
                try:
                    outcome = await self.engine.analyze(request)
                except AllKeysDead as exc:
                    self.fatal = str(exc)
                    return self._skip(job, str(exc))
                finally:
                    self.in_flight -= cost
                self.spent += outcome.cost_usd or 0.0
                job.result = self._store(request, outcome)
            finally:
                release(self.conn, request.failure_id, self.owner)
            if outcome.error:
                self.failed += 1
            else:
                self.done += 1
            self._tick()

    async def _check_model(self) -> None:
        """Before the first call (never when every row is cached): the backend's optional check_model hook."""
        check_model = getattr(self.engine, "check_model", None)
        if self._model_checked or check_model is None:
            return
        async with self._check_lock:
            if self._model_checked:
                return
            try:
                await check_model()
            except Exception as exc:  # an unknown model or no live key: the batch's error, raised after
                self.setup_error, self.fatal = exc, str(exc)
            self._model_checked = True

    def _skip(self, job: _Job, reason: str) -> None:
        job.result["analysis_error"] = f"not analyzed: {reason}"
        self.skipped += 1
        self._tick()

    def _store(self, request: AnalysisRequest, outcome: AnalysisOutcome) -> dict[str, Any]:
        answer = outcome.answer.model_dump(mode="json") if outcome.answer is not None else None
        evidence = answer["evidence"] if answer else []
        record = AnalysisRecord(
            failure_id=request.failure_id, model=self.engine.model, taxonomy=self.tax.key,
            prompt_version=PROMPT_VERSION, trace_hash=request.prompt_hash,
            category=category_of(outcome.answer) if outcome.answer is not None else None,
            analysis=answer_to_json(outcome.answer) if outcome.answer is not None else None,
            confidence=answer["confidence"] if answer else None,
            evidence_total=len(evidence),
            evidence_verified=verify_evidence(evidence, request.prompt),
            root_cause_step=answer.get("root_cause_step") if answer else None,
            root_cause_agent=answer.get("root_cause_agent") if answer else None,
            fix=answer.get("fix") if answer else None,
            input_tokens=outcome.input_tokens, output_tokens=outcome.output_tokens,
            thinking_tokens=outcome.thinking_tokens, cached_tokens=outcome.cached_tokens,
            cost_usd=outcome.cost_usd, latency_s=outcome.latency_s, error=outcome.error,
            raw_response=outcome.raw_text, created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        try:
            record_analysis(self.conn, record)
        except sqlite3.OperationalError as exc:
            if not is_locked(exc):
                raise
            self.unsaved.append(record)  # paid for: never dropped (save_unsaved)
        return _result_from_record(asdict(record))

    def _record_error(self, failure_id: int, error: str) -> str:
        """A row that failed before any call still leaves its reason in the history, for reports and `rca run`."""
        record = AnalysisRecord(
            failure_id=failure_id, model=self.engine.model, taxonomy=self.tax.key, prompt_version=PROMPT_VERSION,
            trace_hash="", category=None, analysis=None, confidence=None, evidence_total=0, evidence_verified=0,
            input_tokens=0, output_tokens=0, thinking_tokens=0, cached_tokens=0, cost_usd=0.0, latency_s=0.0,
            error=error, raw_response=None, created_at=datetime.now(UTC).isoformat(timespec="seconds"))
        try:
            record_analysis(self.conn, record)
        except sqlite3.OperationalError as exc:
            if not is_locked(exc):
                raise
        return error

    def save_unsaved(self, db: Path) -> None:
        """Write the answers the locked cache refused; what still cannot be written is kept beside it."""
        while self.unsaved:
            try:
                record_analysis(self.conn, self.unsaved[0])
            except sqlite3.OperationalError as exc:
                if not is_locked(exc):
                    raise
                path = keep_unsaved(db, self.unsaved)
                print(f"rca: the cache stayed locked by another process; {len(self.unsaved)} answers are kept in "
                      f"{path} and written by the next analysis of this cache", file=sys.stderr)
                return
            self.unsaved.pop(0)

    def _tick(self) -> None:
        self.bar.update(1, done=self.done, failed=self.failed, cost=f"${self.spent:.4f}")

    def summary(self, total: int) -> str:
        text = (f"rca: {total} rows: {self.done} analyzed, {self.cached} from cache, {self.failed} failed, "
                f"{self.skipped} not analyzed; ${self.spent:.4f} spent with {self.engine.model}")
        if self.fatal:
            text += f"\nrca: stopped early: {self.fatal}"
        elif self.skipped and self.budget is not None:
            text += f" (budget ${self.budget:.4f} reached)"
        keys = self.key_summary()
        if keys:
            window = getattr(getattr(self.engine, "keys", None), "window_s", 60.0)
            text += "\n" + format_summary(keys, window)
        return text

    def key_summary(self) -> list[dict[str, Any]]:
        """Each key's state after the batch (fingerprints only), when the backend paces keys."""
        keys = getattr(self.engine, "keys", None)
        return keys.summary() if isinstance(keys, KeyPool) and (self.done or self.failed or self.fatal) else []


def _with_results(df: pd.DataFrame, jobs: list[_Job]) -> pd.DataFrame:
    results = pd.DataFrame([j.result for j in jobs], index=[j.index for j in jobs]).reindex(columns=RESULT_COLUMNS)
    out = pd.concat([df.drop(columns=[c for c in RESULT_COLUMNS if c in df]), results], axis=1)
    out.attrs = dict(df.attrs)
    return out
