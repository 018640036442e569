"""The Gemini backend: one structured-output call per failed attempt, through google-genai.

Retries are ours, not the SDK's (it gets `attempts=1`), because what to do depends on
why a call failed: a 429 that names a per-minute quota cools that key and the call moves
to another; a per-day 429 retires the key for the run; 401/403 kill it; 5xx, a 429 that
names no quota (the service short of capacity), timeouts, dropped connections and bodies
that are not JSON back off exponentially with jitter. An answer that fails validation gets
one repair turn; a blocked, empty or truncated answer is recorded with its reason. However
a call ends, its key's lease goes back to the pool (GeminiBackend._use).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx2
from google import genai
from google.genai import errors, types
from pydantic import ValidationError

from rca.backends import AnalysisOutcome, AnalysisRequest
from rca.errors import AllKeysDead, ParameterError, UnknownModel
from rca.keys import KeyPool, KeySource, Lease, Outcome
from rca.pricing import Price, call_cost
from rca.prompt import repair_prompt, system_instruction
from rca.render import estimate_tokens
from rca.limits import QuotaHint
from rca.schema import Taxonomy, answer_json_schema, answer_model

DEFAULT_MODEL = "gemini-3.8-flash"  # the latest Flash tier
TIMEOUT_S = 120.0
MAX_TRANSIENT_RETRIES = 4
MAX_KEY_SWITCHES = 32
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 30.0
MAX_OUTPUT_TOKENS = 4_096


_sending: ContextVar[Lease | None] = ContextVar("rca_gemini_sending", default=None)
T = TypeVar("T")


@dataclass
class _Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    cached_tokens: int = 0

    def add(self, metadata: types.GenerateContentResponseUsageMetadata | None) -> None:
        if metadata is None:
            return
        self.input_tokens += metadata.prompt_token_count or 0
        self.output_tokens += metadata.candidates_token_count or 0
        self.thinking_tokens += metadata.thoughts_token_count or 0
        self.cached_tokens += metadata.cached_content_token_count or 0


class _Recalled(Exception):
    """A granted call held back as it was about to leave: its key turned out to be over its quota."""


class _Failed(Exception):
    """Why a row has no answer (blocked, truncated, an API error, retries run out), to record as is;
    ``raw_text``: what the model did answer, if anything."""

    def __init__(self, reason: str, raw_text: str | None = None) -> None:
        super().__init__(reason)
        self.raw_text = raw_text


def generation_settings(model: str) -> dict[str, Any]:
    """Low-cost, repeatable settings per model family.

    Gemini 3 models are tuned for their default temperature (Google advises against
    lowering it) and take a thinking level; 2.x models take temperature 0 and a
    thinking budget (Pro cannot turn thinking off, so it gets its minimum).
    """
    name = model.removeprefix("models/")
    if re.match(r"gemini-[3-9]", name):
        return {"thinking_config": types.ThinkingConfig(thinking_level=types.ThinkingLevel.LOW)}
    budget = 128 if "pro" in name else 0
    return {"temperature": 0.0, "thinking_config": types.ThinkingConfig(thinking_budget=budget)}


def generation_config(model: str, taxonomy: Taxonomy) -> types.GenerateContentConfig:
    """Every call's settings: the taxonomy's instructions, its answer schema, and the model's settings."""
    return types.GenerateContentConfig(
        system_instruction=system_instruction(taxonomy),
        response_mime_type="application/json",
        response_json_schema=answer_json_schema(taxonomy),
        max_output_tokens=MAX_OUTPUT_TOKENS,
        **generation_settings(model),
    )


def from_env(model: str | None = None, *, timeout_s: float = TIMEOUT_S, price: Price | None = None) -> GeminiBackend:
    """The registry's factory: keys from the environment; the model given, else $RCA_MODEL, else DEFAULT_MODEL."""
    keys = KeyPool.from_env()
    if keys is None:
        raise ParameterError("backend='gemini' needs an API key: set GEMINI_API_KEY (or GEMINI_API_KEYS for several)")
    return GeminiBackend(model or os.environ.get("RCA_MODEL") or DEFAULT_MODEL, keys, timeout_s=timeout_s, price=price)


class GeminiBackend:
    """Analyzes with a Gemini model, rotating the keys of a KeySource."""

    name = "gemini"

    def __init__(self, model: str, keys: KeySource, *, base_url: str | None = None, timeout_s: float = TIMEOUT_S,
                 price: Price | None = None) -> None:
        self.model = model
        self.price = price  # the user's price, for a model the price data does not know
        self.keys = keys
        self._base_url = base_url
        self._timeout_ms = int(timeout_s * 1000)
        self._clients: dict[str, genai.Client] = {}
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop the clients' connections belong to
        self._configs: dict[str, types.GenerateContentConfig] = {}

    def _client(self, lease: Lease) -> genai.Client:
        """The key's client on the running event loop, sending through an httpx2 client of ours.

        Left to choose, google-genai sends through aiohttp whenever it is installed: no request
        hook runs there (_on_send), so calls would be dated from their grant, and its errors are
        not httpx2's. A new loop (each batch runs on its own) gets new clients.
        """
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._clients, self._loop = {}, loop
        client = self._clients.get(lease.fingerprint)
        if client is None:
            http = httpx2.AsyncClient(event_hooks={"request": [self._on_send]}, follow_redirects=True,
                                      limits=httpx2.Limits())  # no cap of its own: the pool and `concurrency` pace calls
            options = types.HttpOptions(base_url=self._base_url, timeout=self._timeout_ms, httpx_async_client=http,
                                        retry_options=types.HttpRetryOptions(attempts=1))
            client = self._clients[lease.fingerprint] = genai.Client(api_key=lease.key, http_options=options)
        return client

    def _config(self, taxonomy: Taxonomy) -> types.GenerateContentConfig:
        """generation_config, built once per taxonomy: its JSON schema alone costs a millisecond or two."""
        config = self._configs.get(taxonomy.key)
        if config is None:
            config = self._configs[taxonomy.key] = generation_config(self.model, taxonomy)
        return config

    async def _on_send(self, request: Any) -> None:
        """httpx's request hook: have the pool told when the call's body is on the wire, and asked,
        just before its first byte leaves, whether it should stay home after all (KeySource.recalled).

        The server counts a call from its arrival; a burst granted at once leaves over tens
        of milliseconds (new connections, serialization), and dating it from the grant
        would free its window slot too early.
        """
        lease, keys = _sending.get(), self.keys
        if lease is None:
            return

        async def trace(name: str, info: dict[str, Any]) -> None:
            if name.endswith("send_request_headers.started") and keys.recalled(lease):
                raise _Recalled  # the last moment before a byte leaves (a connection may have taken a while)
            if name.endswith("send_request_body.complete"):
                keys.sent(lease)

        request.extensions["trace"] = trace

    async def check_model(self) -> None:
        """Ask the API about the model once, so a typo fails fast instead of once per row."""
        for _ in range(MAX_KEY_SWITCHES):
            lease = await self.keys.acquire(counted=False)
            try:
                await self._use(lease, lambda client: client.aio.models.get(model=self.model))
            except errors.APIError as exc:
                if exc.code == 404:
                    raise UnknownModel(f"the Gemini API does not know model {self.model!r}: {self.keys.scrub(exc.message or '')}") from None
                if classify(exc)[0] in (Outcome.RATE_LIMITED, Outcome.EXHAUSTED, Outcome.INVALID):
                    continue  # that key's problem: ask with another
            except Exception:  # noqa: BLE001 - unreachable, unwell or not JSON: the rows' own retries deal with it
                pass
            return

    async def analyze(self, request: AnalysisRequest) -> AnalysisOutcome:
        started = time.perf_counter()
        usage = _Usage()
        config = self._config(request.taxonomy)
        contents: list[types.Content] = [types.Content(role="user", parts=[types.Part(text=request.prompt)])]
        outcome = AnalysisOutcome()
        try:
            for turn in range(2):
                text = await self._generate(contents, config, usage)
                try:
                    outcome.answer = answer_model(request.taxonomy).model_validate_json(text)
                    outcome.raw_text = None
                    break
                except ValidationError as exc:
                    outcome.raw_text = text
                    problem = _validation_summary(exc)
                    if turn == 1:
                        outcome.error = f"parse error: answer does not match the schema after one repair: {problem}"
                        break
                    contents += [
                        types.Content(role="model", parts=[types.Part(text=text)]),
                        types.Content(role="user", parts=[types.Part(text=repair_prompt(problem))]),
                    ]
        except _Failed as exc:
            outcome.error, outcome.raw_text = str(exc), exc.raw_text
        except AllKeysDead:
            raise
        except Exception as exc:  # noqa: BLE001 - one row's failure must not end the batch
            outcome.error = self.keys.scrub(f"{type(exc).__name__}: {exc}")
        outcome.input_tokens, outcome.output_tokens = usage.input_tokens, usage.output_tokens
        outcome.thinking_tokens, outcome.cached_tokens = usage.thinking_tokens, usage.cached_tokens
        outcome.cost_usd = call_cost(self.model, **vars(usage), price=self.price)
        outcome.latency_s = round(time.perf_counter() - started, 3)
        return outcome

    async def _generate(self, contents: list[types.Content], config: types.GenerateContentConfig, usage: _Usage) -> str:
        """One answer's text, retrying by the kind of failure."""
        transient = 0
        tokens, since = prompt_tokens(contents, config), time.monotonic()
        for _ in range(MAX_KEY_SWITCHES + MAX_TRANSIENT_RETRIES):
            lease = await self.keys.acquire(tokens, since=since)
            try:
                response = await self._use(lease, lambda client: client.aio.models.generate_content(
                    model=self.model, contents=contents, config=config))
            except errors.APIError as exc:
                problem = self.keys.scrub(f"API error {exc.code} {exc.status}: {exc.message}")
                outcome, _ = classify(exc)
                if outcome in (Outcome.RATE_LIMITED, Outcome.EXHAUSTED, Outcome.INVALID):
                    continue  # the pool rested, retired or dropped that key: go again on the next one
                if outcome is Outcome.ERROR and not _transient(exc.code):
                    raise _Failed(problem) from None
            except (httpx2.TransportError, asyncio.TimeoutError) as exc:
                problem = "network error: " + _describe(exc)
            except json.JSONDecodeError as exc:  # a proxy's error page, half an answer: the SDK parses the body as is
                problem = f"malformed answer: the body is not JSON ({exc})"
            except _Recalled:
                continue  # back in line, keeping its place (since)
            else:
                usage.add(response.usage_metadata)
                return answer_text(response)
            if transient >= MAX_TRANSIENT_RETRIES:
                raise _Failed(f"{problem} (gave up after {transient} retries)")
            transient += 1
            await asyncio.sleep(backoff_delay(transient))
        raise _Failed("gave up after too many retries")

    async def _use(self, lease: Lease, call: Callable[[genai.Client], Awaitable[T]]) -> T:
        """One call on ``lease``, which goes back to the pool however the call ends (an exception nobody
        foresaw, a cancellation): a lease kept would hold its key's slot for good, and with limits still
        unknown a key lets only a few calls be in flight. The lease is where the request hook
        (_on_send) finds it."""
        sending = _sending.set(lease)
        outcome: Outcome = Outcome.ERROR  # an ending that says nothing about the key, unless told otherwise
        details: dict[str, Any] = {}
        try:
            result = await call(self._client(lease))
            metadata = getattr(result, "usage_metadata", None)
            outcome, details = Outcome.OK, {"used_tokens": metadata.prompt_token_count if metadata else None}
            return result
        except errors.APIError as exc:
            outcome, delay = classify(exc)
            details = {"retry_after": delay, "message": f"{exc.code} {exc.status}: {exc.message}", "quota": quota_hint(exc)}
            raise
        except _Recalled:
            outcome = Outcome.UNSENT
            raise
        finally:
            _sending.reset(sending)
            self.keys.release(lease, outcome, **details)


def classify(exc: errors.APIError) -> tuple[Outcome, float | None]:
    """What an API error says about the key that made the call, and any retry delay.

    A 429 with neither QuotaFailure nor RetryInfo names no quota: the API sends it when its shared
    capacity runs short, however far the key is under its own quota, so it is BUSY, not RATE_LIMITED.
    """
    details = _error_details(exc)
    if exc.code == 429:
        violations = [v for d in details for v in d.get("violations", []) or [] if isinstance(v, dict)]
        delay = _retry_delay(details)
        if not violations and delay is None:
            return Outcome.BUSY, None
        per_day = any("perday" in str(v.get("quotaId", "")).lower() for v in violations)
        return (Outcome.EXHAUSTED if per_day else Outcome.RATE_LIMITED), delay
    invalid_key = any(d.get("reason") == "API_KEY_INVALID" for d in details)
    if exc.code in (401, 403) or invalid_key:
        return Outcome.INVALID, None
    return Outcome.ERROR, None


def quota_hint(exc: errors.APIError) -> QuotaHint | None:
    """Which per-window quota a 429 hit (requests or input tokens) and its value, from its QuotaFailure."""
    if exc.code != 429:
        return None
    for detail in _error_details(exc):
        for violation in detail.get("violations", []) or []:
            if not isinstance(violation, dict):
                continue
            name = f"{violation.get('quotaId', '')} {violation.get('quotaMetric', '')}".lower()
            metric = "tokens" if "token" in name else "requests" if "request" in name else None
            try:
                value = float(violation["quotaValue"])
            except (KeyError, TypeError, ValueError):
                value = None
            return QuotaHint(metric, value if value is not None and value >= 0 else None)  # 0: no quota at all
    return QuotaHint()


def prompt_tokens(contents: list[types.Content], config: types.GenerateContentConfig) -> int:
    """Estimated input tokens of one call: the text the quota counts (system instruction and turns)."""
    texts = [p.text for c in contents for p in c.parts or () if p.text]
    system = config.system_instruction
    if isinstance(system, str):
        texts.append(system)
    elif isinstance(system, types.Content):
        texts += [p.text for p in system.parts or () if p.text]
    return sum(estimate_tokens(t) for t in texts)


def _error_details(exc: errors.APIError) -> list[dict[str, Any]]:
    body = exc.details if isinstance(exc.details, dict) else {}
    error = body.get("error", body)
    details = error.get("details") if isinstance(error, dict) else None
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def _retry_delay(details: list[dict[str, Any]]) -> float | None:
    for detail in details:
        delay = detail.get("retryDelay")
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return float(delay[:-1])
            except ValueError:
                return None
    return None


def _transient(code: int | None) -> bool:
    return code in (408, 500, 502, 503, 504)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def backoff_delay(attempt: int) -> float:
    """Exponential backoff with full jitter, capped."""
    return random.uniform(0, min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (attempt - 1)))


def answer_text(response: types.GenerateContentResponse) -> str:
    """The answer's text, or _Failed saying why there is none."""
    if not response.candidates:
        feedback = response.prompt_feedback
        reason = feedback.block_reason if feedback and feedback.block_reason else None
        raise _Failed(f"blocked: {reason.value if hasattr(reason, 'value') else reason}" if reason else "empty answer: no candidates")
    candidate = response.candidates[0]
    parts = candidate.content.parts if candidate.content and candidate.content.parts else []
    text = "".join(p.text for p in parts if p.text and not p.thought)
    finish = candidate.finish_reason
    finish_name = finish.value if hasattr(finish, "value") else str(finish) if finish else "STOP"
    if finish_name not in ("STOP", "FINISH_REASON_UNSPECIFIED"):
        raise _Failed(f"answer cut short: finish reason {finish_name}", text or None)
    if not text.strip():
        raise _Failed("empty answer: no text in the candidate")
    return text


def _validation_summary(exc: ValidationError) -> str:
    problems = [f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()[:5]]
    return "; ".join(problems)
