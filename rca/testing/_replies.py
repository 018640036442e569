"""What the fake server can answer: scripted steps, rate limits, latency, and Google's JSON bodies.

Bodies copy the shapes the Gemini API really sends (checked against error reports in public
issue trackers), so code under test meets the same fields it will meet in production.
"""

from __future__ import annotations

import json
import math
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from rca.testing._http import Out, json_out
from rca.testing._quota import Quota
from rca.testing._schema import Chooser, Violation, synthesize, violate

AnswerFn = Callable[[dict[str, Any], "str | None"], Any]
"""``answer(request_json, key) -> dict | list | str``: the model's answer (str is sent verbatim)."""
Answer = Union[dict[str, Any], list[Any], str, AnswerFn, None]
Delay = Union[float, Callable[[], float], None]

_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_MESSAGES = {
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "The request timed out. Please try again.",
}
_BAD_KEY = "API key not valid. Please pass a valid API key."
_CAPACITY = "Resource has been exhausted (e.g. check quota)."  # a 429 that names no quota
RATE_LIMIT_DOCS = "https://ai.google.dev/gemini-api/docs/rate-limits"

_QUOTAS: dict[str, tuple[str, str]] = {
    "rpm": ("generativelanguage.googleapis.com/generate_content_free_tier_requests",
            "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"),
    "rpd": ("generativelanguage.googleapis.com/generate_content_free_tier_requests",
            "GenerateRequestsPerDayPerProjectPerModel-FreeTier"),
    "tpm": ("generativelanguage.googleapis.com/generate_content_free_tier_input_token_count",
            "GenerateContentInputTokensPerModelPerMinute-FreeTier"),
}


class Latency:
    """Latency distributions for ``FakeGemini(latency=...)``: callables returning seconds."""

    def __init__(self, draw: Callable[[random.Random], float], seed: int) -> None:
        self._draw, self._rng, self._lock = draw, random.Random(seed), threading.Lock()

    def __call__(self) -> float:
        with self._lock:  # handler threads share one generator; keep the sequence reproducible
            return max(0.0, self._draw(self._rng))

    @classmethod
    def lognormal(cls, median: float, sigma: float = 0.5, *, seed: int = 0, cap: float | None = None) -> Latency:
        """Long-tailed, like real model latency: half the calls under ``median``, a few far over."""
        mu = math.log(median)
        return cls(lambda rng: min(rng.lognormvariate(mu, sigma), cap if cap is not None else math.inf), seed)

    @classmethod
    def uniform(cls, low: float, high: float, *, seed: int = 0) -> Latency:
        return cls(lambda rng: rng.uniform(low, high), seed)


def seconds(delay: Delay) -> float:
    """Resolve a fixed or drawn delay."""
    if delay is None:
        return 0.0
    return max(0.0, float(delay() if callable(delay) else delay))


def duration(secs: float) -> str:
    """Protobuf Duration JSON as Google writes it ("12s"); sub-second precision kept for short test windows."""
    if secs <= 0:
        return "0s"
    whole = math.ceil(secs * 1000) / 1000
    return f"{int(whole)}s" if whole == int(whole) else f"{whole:.3f}s"


def error_body(code: int, message: str, details: list[dict[str, Any]] | None = None,
               status: str | None = None) -> dict[str, Any]:
    """Google's error envelope: ``{"error": {code, message, status, details?}}``."""
    err: dict[str, Any] = {"code": code, "message": message, "status": status or _STATUS.get(code, "UNKNOWN")}
    if details:
        err["details"] = details
    return {"error": err}


def bad_key_body(code: int = 400, message: str = _BAD_KEY) -> dict[str, Any]:
    """A rejected key; the real API answers 400 INVALID_ARGUMENT with reason API_KEY_INVALID."""
    return error_body(code, message, [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
         "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}},
        {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": message},
    ])


def rate_limit_body(quota: Quota, limit: int | str, model: str, retry_delay: float | None) -> dict[str, Any]:
    """429 RESOURCE_EXHAUSTED with Help, QuotaFailure and (optionally) RetryInfo, in that order."""
    metric, quota_id = _QUOTAS[quota]
    message = (f"You exceeded your current quota, please check your plan and billing details. For more "
               f"information on this error, head to: {RATE_LIMIT_DOCS}. To monitor your current usage, head "
               f"to: https://ai.dev/rate-limit. \n* Quota exceeded for metric: {metric}, limit: {limit}, "
               f"model: {model}")
    details: list[dict[str, Any]] = [
        {"@type": "type.googleapis.com/google.rpc.Help",
         "links": [{"description": "Learn more about Gemini API quotas", "url": RATE_LIMIT_DOCS}]},
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
            {"quotaMetric": metric, "quotaId": quota_id,
             "quotaDimensions": {"location": "global", "model": model}, "quotaValue": str(limit)}]},
    ]
    if retry_delay is not None:
        message += f"\nPlease retry in {max(retry_delay, 0.0):.6f}s."
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": duration(retry_delay)})
    return error_body(429, message, details)


Kind = Literal["ok", "error", "rate_limited", "exhausted", "invalid_key", "malformed", "blocked", "max_tokens",
               "empty", "off_schema", "reset"]


@dataclass(frozen=True)
class Reply:
    """One scripted answer to one generateContent call. Build it with the class methods.

    ``delay`` (seconds, or a callable drawing them) is how long the server waits before
    answering; ``None`` means the server's own latency for answers the model "generates"
    (ok, max_tokens, blocked, empty, off_schema) and no wait for errors, which come back fast
    in the real API too.
    """

    kind: Kind
    status: int = 200
    answer: Answer = None
    delay: Delay = None
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def generates(self) -> bool:
        """True when the model 'ran', so the server's generation latency applies."""
        return self.kind in ("ok", "max_tokens", "blocked", "empty", "off_schema") or (
            self.kind == "reset" and self.options["stage"] == "body")

    @classmethod
    def ok(cls, answer: Answer = None, *, delay: Delay = None) -> Reply:
        """A normal answer: ``answer`` (dict/list/str, or ``fn(request_json, key)``), else one synthesized from the request's schema."""
        return cls("ok", answer=answer, delay=delay)

    @classmethod
    def latency(cls, seconds: float, answer: Answer = None) -> Reply:
        """A slow normal answer; the same as ``ok(answer, delay=seconds)``."""
        return cls("ok", answer=answer, delay=seconds)

    @classmethod
    def rate_limited(cls, retry_delay: float | None = 2.0, *, per_day: bool = False, tokens: bool = False,
                     limit: int = 15, delay: Delay = None) -> Reply:
        """429 RESOURCE_EXHAUSTED. ``per_day`` names the daily quota (quotaId ...PerDay...), ``tokens`` the
        input-token one; ``retry_delay=None`` leaves RetryInfo out, as some real 429s do."""
        quota = "rpd" if per_day else "tpm" if tokens else "rpm"
        return cls("rate_limited", 429, delay=delay,
                   options={"quota": quota, "retry_delay": retry_delay, "limit": limit})

    @classmethod
    def resource_exhausted(cls, message: str = _CAPACITY, *, delay: Delay = None) -> Reply:
        """A bare 429 RESOURCE_EXHAUSTED, with neither QuotaFailure nor RetryInfo: what the API answers when
        its shared capacity runs short, however far the key is under its own quota."""
        return cls("exhausted", 429, delay=delay, options={"message": message})

    @classmethod
    def error(cls, code: int = 500, message: str | None = None, *, delay: Delay = None) -> Reply:
        """Any Google error status (500 INTERNAL, 503 UNAVAILABLE, 404, 400, ...) with its canonical message."""
        return cls("error", code, delay=delay, options={"message": message or _MESSAGES.get(code, "Error.")})

    @classmethod
    def invalid_key(cls, code: int = 400, message: str = _BAD_KEY, *, delay: Delay = None) -> Reply:
        """A rejected API key: 400 INVALID_ARGUMENT (what Google sends), or 401/403, reason API_KEY_INVALID."""
        return cls("invalid_key", code, delay=delay, options={"message": message})

    @classmethod
    def malformed(cls, body: str = "<html><body>502 Bad Gateway</body></html>", *, status: int = 200,
                  content_type: str = "text/html", delay: Delay = None) -> Reply:
        """A body that is not JSON (a proxy's HTML page, a cut connection's half JSON)."""
        return cls("malformed", status, delay=delay, options={"body": body, "content_type": content_type})

    @classmethod
    def reset(cls, *, stage: Literal["request", "body"] = "request", delay: Delay = None) -> Reply:
        """The connection reset (TCP RST) instead of an answer: ``request`` -> before any byte of it;
        ``body`` -> after a 200's headers and half its body, as when a proxy drops a connection mid-answer."""
        return cls("reset", delay=delay, options={"stage": stage})

    @classmethod
    def blocked(cls, reason: str = "SAFETY", *, stage: Literal["prompt", "candidate"] = "prompt",
                delay: Delay = None) -> Reply:
        """A safety block: ``prompt`` -> ``promptFeedback.blockReason`` and no candidates; ``candidate`` ->
        one candidate with ``finishReason=reason`` and no content."""
        return cls("blocked", delay=delay, options={"reason": reason, "stage": stage})

    @classmethod
    def max_tokens(cls, answer: Answer = None, *, keep: float = 0.5, delay: Delay = None) -> Reply:
        """``finishReason: MAX_TOKENS`` with the answer's text cut to the first ``keep`` fraction
        (``keep=0``: content without parts, as when thinking eats the whole budget)."""
        return cls("max_tokens", answer=answer, delay=delay, options={"keep": keep})

    @classmethod
    def empty(cls, *, stage: Literal["candidates", "parts"] = "candidates", delay: Delay = None) -> Reply:
        """No answer: ``candidates`` -> no candidates field at all; ``parts`` -> a STOP candidate without parts."""
        return cls("empty", delay=delay, options={"stage": stage})

    @classmethod
    def off_schema(cls, how: Violation = "enum", *, delay: Delay = None) -> Reply:
        """An answer that breaks the request's schema: a bad enum value, a missing required field,
        a wrong type, or prose that is not JSON."""
        return cls("off_schema", delay=delay, options={"how": how})


# ---------------------------------------------------------------------------------------------
# Building successful bodies


def tokens_of(text_len: int) -> int:
    """The fake's token estimate: four characters a token, like Google's rule of thumb."""
    return math.ceil(text_len / 4)


def text_chars(node: Any) -> int:
    """Characters of every ``text`` value in a request (contents, systemInstruction, ...)."""
    if isinstance(node, dict):
        return sum(len(v) if k == "text" and isinstance(v, str) else text_chars(v) for k, v in node.items())
    if isinstance(node, list):
        return sum(text_chars(v) for v in node)
    return 0


def _get(mapping: Mapping[str, Any] | None, camel: str) -> Any:
    """A field under its camelCase or snake_case name: the SDK sends nested config models in snake_case."""
    if not isinstance(mapping, Mapping):
        return None
    if camel in mapping:
        return mapping[camel]
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)
    return mapping.get(snake)


def response_schema(request: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The schema the caller asked for: ``responseJsonSchema``, else the OpenAPI-style ``responseSchema``."""
    config = _get(request, "generationConfig") or {}
    return _get(config, "responseJsonSchema") or _get(config, "responseSchema")


def answer_text(answer: Answer, request: dict[str, Any], key: str | None, choose: Chooser | None) -> str:
    """The answer's text part: a given value, a callable's result, or a schema-valid synthesis."""
    if callable(answer):
        answer = answer(request, key)
    if answer is None:
        schema = response_schema(request)
        if schema is not None:
            answer = synthesize(schema, choose=choose)
        elif "json" in str(_get(_get(request, "generationConfig"), "responseMimeType") or ""):
            answer = {}
        else:
            return "This is a fake Gemini answer."
    return answer if isinstance(answer, str) else json.dumps(answer)


def violating_text(how: Violation, request: dict[str, Any], choose: Chooser | None) -> str:
    schema = response_schema(request)
    if schema is None:
        return violate({"type": "object"}, "not_json")
    bad = violate(schema, how, choose=choose)
    return bad if isinstance(bad, str) else json.dumps(bad)


def usage(prompt: int, output: int, thoughts: int = 0) -> dict[str, Any]:
    """usageMetadata; zero counts are left out, as proto3 JSON does (so thoughtsTokenCount may be absent)."""
    meta: dict[str, Any] = {"promptTokenCount": prompt}
    if output:
        meta["candidatesTokenCount"] = output
    meta["totalTokenCount"] = prompt + output + thoughts
    meta["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
    if thoughts:
        meta["thoughtsTokenCount"] = thoughts
    return meta


def candidate(text: str | None, finish: str = "STOP") -> dict[str, Any]:
    content: dict[str, Any] = {"role": "model"}
    if text:
        content["parts"] = [{"text": text}]
    return {"content": content, "finishReason": finish, "index": 0}


SAFETY_RATINGS = [
    {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
]


def render(step: Reply, model: str, key: str, request: dict[str, Any], *, answer: Answer, choose: Chooser | None,
           thoughts_tokens: int, response_id: str) -> Out:
    """The HTTP answer to one generation call; ``answer`` is the server's own, for a step that names none."""
    opts = step.options
    if step.kind == "error":
        return json_out(step.status, error_body(step.status, opts["message"]))
    if step.kind == "invalid_key":
        return json_out(step.status, bad_key_body(step.status, opts["message"]))
    if step.kind == "rate_limited":
        return json_out(429, rate_limit_body(opts["quota"], opts["limit"], model, opts["retry_delay"]))
    if step.kind == "exhausted":
        return json_out(429, error_body(429, opts["message"]))
    if step.kind == "malformed":
        return Out(step.status, opts["body"].encode(), opts["content_type"])
    if step.kind == "reset" and opts["stage"] == "request":
        return Out(200, b"", cut=0)
    prompt = tokens_of(text_chars(request))
    body: dict[str, Any] = {}
    text: str | None = None
    answer = step.answer if step.answer is not None else answer
    if step.kind in ("ok", "reset"):
        text = answer_text(answer, request, key, choose)
        body["candidates"] = [candidate(text)]
    elif step.kind == "off_schema":
        text = violating_text(opts["how"], request, choose)
        body["candidates"] = [candidate(text)]
    elif step.kind == "max_tokens":
        full = answer_text(answer, request, key, choose)
        text = full[: int(len(full) * opts["keep"])]
        body["candidates"] = [candidate(text, "MAX_TOKENS")]
    elif step.kind == "blocked" and opts["stage"] == "prompt":
        body["promptFeedback"] = {"blockReason": opts["reason"], "safetyRatings": SAFETY_RATINGS}
    elif step.kind == "blocked":
        body["candidates"] = [{"finishReason": opts["reason"], "index": 0, "safetyRatings": SAFETY_RATINGS}]
    elif step.kind == "empty" and opts["stage"] == "parts":
        body["candidates"] = [candidate(None)]
    budget = _get(_get(_get(request, "generationConfig"), "thinkingConfig"), "thinkingBudget")
    thoughts = 0 if budget == 0 or not text else thoughts_tokens
    body["usageMetadata"] = usage(prompt, tokens_of(len(text or "")), thoughts)
    body["modelVersion"] = model
    body["responseId"] = response_id
    out = json_out(200, body)
    return Out(200, out.body, cut=len(out.body) // 2) if step.kind == "reset" else out
