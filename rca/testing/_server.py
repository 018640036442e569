"""The fake Gemini server: Gemini's REST protocol on 127.0.0.1, stdlib only.

The transport (rca.testing._http) runs in a daemon thread, one thread per connection; all
mutable state here sits behind one lock, and sleeping happens outside it.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rca.testing._http import JSON, Out, Server, json_out
from rca.testing._quota import Limits, Window
from rca.testing._replies import (
    AnswerFn, Delay, Reply, _get, bad_key_body, error_body, rate_limit_body, render, seconds, text_chars, tokens_of,
)
from rca.testing._schema import Chooser

if TYPE_CHECKING:
    from google import genai

DEFAULT_MODELS: tuple[str, ...] = (
    "gemini-3.8-flash", "gemini-3.5-flash-lite", "gemini-3.5-flash",
    "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.5-pro", "gemini-3.1-pro-preview",
)
_ROUTE = re.compile(r"^/(?P<version>v1(?:alpha|beta)?)/models(?:/(?P<model>[^/:]+)(?::(?P<method>[A-Za-z]+))?)?/?$")
_GENERATE = ("generateContent", "streamGenerateContent")
_NO_KEY = ("Method doesn't allow unregistered callers (callers without established identity). Please use API "
           "Key or other form of API consumer identity to call this API.")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it. ``time`` is ``time.monotonic()`` at arrival; ``status`` 0: the
    connection was reset instead of answered."""

    method: str
    path: str
    key: str | None
    json: Any
    time: float
    model: str | None = None
    status: int = 0


@dataclass(frozen=True)
class Stats:
    """Counts over generation calls (generateContent/streamGenerateContent): the throughput a benchmark reads.

    ``ok`` counts HTTP 200s (blocked, empty and truncated answers included), ``rate_limited`` 429s,
    ``errors`` every other status; ``input_tokens`` is the chars/4 estimate of all calls' text.
    """

    requests: int = 0
    ok: int = 0
    rate_limited: int = 0
    errors: int = 0
    input_tokens: int = 0

    def __add__(self, other: Stats) -> Stats:
        return Stats(*(a + b for a, b in zip(self._tuple(), other._tuple())))

    def _tuple(self) -> tuple[int, ...]:
        return (self.requests, self.ok, self.rate_limited, self.errors, self.input_tokens)


def _model_resource(model: str) -> dict[str, Any]:
    words = model.split("-")
    display = " ".join(["Gemini", *words[1:2], "-".join(w.capitalize() for w in words[2:])]).strip()
    return {
        "name": f"models/{model}", "version": "001", "displayName": display,
        "description": f"Fake {display} served by rca.testing.FakeGemini.",
        "inputTokenLimit": 1_048_576, "outputTokenLimit": 65_536,
        "supportedGenerationMethods": ["generateContent", "countTokens", "createCachedContent",
                                       "batchGenerateContent"],
        "temperature": 1, "topP": 0.95, "topK": 64, "maxTemperature": 2, "thinking": True,
    }


class FakeGemini:
    """A local stand-in for generativelanguage.googleapis.com that the real google-genai client talks to.

    Usage::

        with FakeGemini(limits={"k1": Limits(rpm=3)}, window_s=1.0) as server:
            server.script([Reply.rate_limited(retry_delay=1.0)], key="k1")
            client = server.client("k1")  # = genai.Client(api_key="k1", http_options=HttpOptions(base_url=server.url))

    Per generation request the server answers, in order: a revoked/unknown key -> 400
    API_KEY_INVALID; the next scripted step for (key, model), (key, any), (any, model), (any,
    any); then that scope's ``then`` reply; an unknown model -> 404; one of ``faults``, drawn
    at its share of calls; a key over its limits -> 429; else an answer (``answer`` callable, or
    synthesized from ``responseJsonSchema``) after ``latency``. Scripted steps and faults bypass
    limits and are not counted in the windows.
    """

    def __init__(self, *, models: Iterable[str] | None = DEFAULT_MODELS, keys: Iterable[str] | None = None,
                 limits: Mapping[str, Limits] | None = None, default_limits: Limits | None = None,
                 window_s: float = 60.0, day_s: float = 86_400.0, latency: Delay = None,
                 answer: AnswerFn | None = None, choose: Chooser | None = None, thoughts_tokens: int = 0,
                 faults: Sequence[tuple[float, Reply]] = (), seed: int = 0,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        """``models=None`` accepts any model; ``keys`` (if given) is the only set of valid keys;
        ``latency`` is seconds or a callable (see ``Latency``) applied to generated answers;
        ``faults``: (share, reply) pairs, e.g. ``[(0.03, Reply.resource_exhausted())]``, each answering
        that share of the calls no script answers, drawn from a generator seeded with ``seed``."""
        self.models: frozenset[str] | None = None if models is None else frozenset(models)
        self.keys: frozenset[str] | None = None if keys is None else frozenset(keys)
        self.limits = dict(limits or {})
        self.default_limits = default_limits
        self.window_s, self.day_s = window_s, day_s
        self.latency, self.answer, self.choose = latency, answer, choose
        self.thoughts_tokens = thoughts_tokens
        self.faults, self.seed = tuple(faults), seed
        if sum(share for share, _ in self.faults) > 1:
            raise ValueError("faults: the shares add up to more than 1")
        self._addr = (host, port)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ids = itertools.count(1)
        self._httpd: Server | None = None
        self._thread: threading.Thread | None = None
        self._init_state()

    def _init_state(self) -> None:
        self._steps: dict[tuple[str | None, str | None], deque[Reply]] = {}
        self._then: dict[tuple[str | None, str | None], Reply] = {}
        self._revoked: dict[str, int] = {}
        self._log: list[RecordedRequest] = []
        self._stats: dict[str | None, Stats] = {}
        self._windows: dict[str, Window] = {}
        self._rng = random.Random(self.seed)
        self._in_flight = 0
        self._max_in_flight = 0

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeGemini:
        if self._httpd is None:
            self._stop.clear()
            self._httpd = Server(self._addr, self._handle, self._stop)
            self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="FakeGemini", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; requests still sleeping wake up and their connections are dropped."""
        if self._httpd is not None:
            self._stop.set()
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd.drop_connections()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._httpd = self._thread = None

    def __enter__(self) -> FakeGemini:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL for ``HttpOptions(base_url=...)``, e.g. ``http://127.0.0.1:54321``."""
        if self._httpd is None:
            raise RuntimeError("FakeGemini is not running; use it as a context manager or call start()")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def client(self, api_key: str = "fake-key", *, api_version: str | None = None, timeout_ms: int | None = None,
               attempts: int = 1) -> genai.Client:
        """A real ``genai.Client`` pointed here, with the SDK's retries off (``attempts=1``) unless asked for.

        Keep the returned client in a variable: ``genai.Client.__del__`` closes its HTTP pool, so
        ``server.client().models.generate_content(...)`` fails with "client has been closed".
        """
        from google import genai
        from google.genai import types

        return genai.Client(api_key=api_key, http_options=types.HttpOptions(
            base_url=self.url, api_version=api_version, timeout=timeout_ms,
            retry_options=types.HttpRetryOptions(attempts=attempts)))

    # -- scripting ---------------------------------------------------------------------------

    def script(self, steps: Iterable[Reply] = (), *, key: str | None = None, model: str | None = None,
               then: Reply | None = None) -> None:
        """Queue ``steps`` for generation calls by ``key`` (None: any key) to ``model`` (None: any).

        Each call consumes one step; more calls to ``script`` append. Once a scope's queue is
        empty its ``then`` reply (if set) answers every further call, e.g. a key that stays
        rate-limited; otherwise the server's default behaviour resumes.
        """
        scope = (key, model)
        with self._lock:
            self._steps.setdefault(scope, deque()).extend(steps)
            if then is not None:
                self._then[scope] = then

    def revoke(self, key: str, code: int = 400) -> None:
        """Make ``key`` dead on every endpoint from now on (400 API_KEY_INVALID, or 401/403)."""
        with self._lock:
            self._revoked[key] = code

    def remaining(self, key: str | None = None, model: str | None = None) -> int:
        """Steps not yet consumed in one scope, to assert a script ran to its end."""
        with self._lock:
            return len(self._steps.get((key, model), ()))

    def reset(self) -> None:
        """Forget scripts, revocations, recorded requests, counters and rate windows."""
        with self._lock:
            self._init_state()

    # -- observation ----------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far (all endpoints), oldest first; a copy."""
        with self._lock:
            return list(self._log)

    def stats(self, key: str | None = None) -> Stats:
        """Generation-call counters for one key, or summed over all keys when ``key`` is None."""
        with self._lock:
            if key is not None:
                return self._stats.get(key, Stats())
            return sum(self._stats.values(), Stats())

    def stats_by_key(self) -> dict[str | None, Stats]:
        with self._lock:
            return dict(self._stats)

    @property
    def in_flight(self) -> int:
        """Generation calls being answered right now."""
        with self._lock:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        """Most generation calls in flight at once: shows how much concurrency a client really used."""
        with self._lock:
            return self._max_in_flight

    # -- request handling -------------------------------------------------------------------

    def _handle(self, method: str, path: str, key: str | None, raw: bytes) -> Out:
        arrived = time.monotonic()
        payload: Any = None
        route = _ROUTE.match(path)
        model = route["model"] if route else None
        if model and model.startswith("models/"):
            model = model[len("models/"):]
        generating = bool(route and method == "POST" and route["method"] in _GENERATE)
        if generating:
            with self._lock:
                self._in_flight += 1
                self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            if raw:
                try:
                    payload = json.loads(raw)
                except ValueError:
                    out = json_out(400, error_body(400, "Invalid JSON payload received. Unexpected token."))
                    return self._finish(method, path, key, raw.decode("utf-8", "replace"), arrived, model, out,
                                        0 if generating else None)
            try:
                out = self._route(method, route, model, key, payload)
            except Exception as exc:  # a user's answer callable failed: say so instead of hanging the client
                out = json_out(500, error_body(500, f"FakeGemini: {type(exc).__name__}: {exc}"))
            tokens = tokens_of(text_chars(payload)) if generating else None
            return self._finish(method, path, key, payload, arrived, model, out, tokens)
        finally:
            if generating:
                with self._lock:
                    self._in_flight -= 1

    def _finish(self, method: str, path: str, key: str | None, payload: Any, arrived: float, model: str | None,
                out: Out, tokens: int | None) -> Out:
        """Record before the bytes go out, so a test reading ``requests`` after a call always sees it."""
        status = 0 if out.cut is not None else out.status  # a reset connection: no answer
        with self._lock:
            self._log.append(RecordedRequest(method, path, key, payload, arrived, model, status))
            if tokens is not None:
                done = Stats(1, int(status == 200), int(status == 429), int(status not in (200, 429)), tokens)
                self._stats[key] = self._stats.get(key, Stats()) + done
        return out

    def _route(self, method: str, route: re.Match[str] | None, model: str | None, key: str | None,
               payload: Any) -> Out:
        if route is None:
            return json_out(404, error_body(404, "Requested entity was not found."))
        if not key:
            return json_out(403, error_body(403, _NO_KEY))
        with self._lock:
            dead = self._revoked.get(key)
        if dead is None and self.keys is not None and key not in self.keys:
            dead = 400
        if dead is not None:
            return json_out(dead, bad_key_body(dead))
        version, call = route["version"], route["method"]
        if method == "GET" and model is None:
            names = sorted(self.models or ())
            return json_out(200, {"models": [_model_resource(m) for m in names]})
        if method == "GET" and call is None:
            assert model is not None
            return json_out(200, _model_resource(model)) if self._known(model) else self._not_found(
                model, version, "generateContent")
        if method != "POST" or model is None or call not in (*_GENERATE, "countTokens"):
            return json_out(404, error_body(404, "Requested entity was not found."))
        request = payload if isinstance(payload, dict) else {}
        if call == "countTokens":
            if not self._known(model):
                return self._not_found(model, version, call)
            total = tokens_of(text_chars(request))
            return json_out(200, {"totalTokens": total, "promptTokensDetails": [{"modality": "TEXT",
                                                                                  "tokenCount": total}]})
        out = self._generate(version, model, key, request)
        if call == "streamGenerateContent" and out.status == 200 and out.content_type == JSON:
            chunk = json.dumps(json.loads(out.body))
            return Out(200, f"data: {chunk}\r\n\r\n".encode(), "text/event-stream")
        return out

    def _known(self, model: str) -> bool:
        return self.models is None or model in self.models

    @staticmethod
    def _not_found(model: str, version: str, call: str) -> Out:
        return json_out(404, error_body(404, (
            f"models/{model} is not found for API version {version}, or is not supported for {call}. "
            "Call ListModels to see the list of available models and their supported methods.")))

    def _next_step(self, key: str, model: str) -> Reply | None:
        scopes = ((key, model), (key, None), (None, model), (None, None))
        with self._lock:
            for scope in scopes:
                queue = self._steps.get(scope)
                if queue:
                    return queue.popleft()
            for scope in scopes:
                if scope in self._then:
                    return self._then[scope]
        return None

    def _draw_fault(self) -> Reply | None:
        if not self.faults:
            return None
        with self._lock:
            draw = self._rng.random()
        for share, reply in self.faults:
            if draw < share:
                return reply
            draw -= share
        return None

    def _generate(self, version: str, model: str, key: str, request: dict[str, Any]) -> Out:
        step = self._next_step(key, model)
        if step is None:
            if not self._known(model):
                return self._not_found(model, version, "generateContent")
            if not _get(request, "contents"):
                return json_out(400, error_body(400, "* GenerateContentRequest.contents: contents is not "
                                                      "specified\n"))
            step = self._draw_fault()
            limits = self.limits.get(key, self.default_limits)
            if step is None and limits is not None:
                tokens = tokens_of(text_chars(request))
                with self._lock:
                    verdict = self._windows.setdefault(key, Window()).admit(
                        limits, tokens, time.monotonic(), self.window_s, self.day_s)
                if verdict is not None:
                    quota, limit, wait = verdict
                    return json_out(429, rate_limit_body(quota, limit, model, max(wait, 0.001)))
        step = step or Reply.ok()
        delay = step.delay if step.delay is not None else (self.latency if step.generates else None)
        wait = seconds(delay)
        if wait:
            self._stop.wait(wait)
        return render(step, model, key, request, answer=self.answer, choose=self.choose,
                      thoughts_tokens=self.thoughts_tokens, response_id=f"fake-{next(self._ids):06d}")


__all__ = ["DEFAULT_MODELS", "FakeGemini", "RecordedRequest", "Stats"]
