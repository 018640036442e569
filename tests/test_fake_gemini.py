"""FakeGemini against the REAL google-genai client (sync and async), never patched."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from typing import Any, Literal, Optional

import pytest
from google import genai
from google.genai import errors, types
from pydantic import BaseModel, Field, ValidationError

from rca.testing import FakeGemini, Reply, enum_paths, synthesize, violate

MODEL = "gemini-3.5-flash-lite"


class Step(BaseModel):
    index: int = Field(ge=0)
    note: Optional[str] = None


class Diagnosis(BaseModel):
    category: Literal["tool_error", "timeout", "wrong_answer"]
    explanation: str
    confidence: float = Field(ge=0.0, le=1.0)
    steps: list[Step]
    parent: Optional["Diagnosis"] = None


SCHEMA = Diagnosis.model_json_schema()
CONFIG = types.GenerateContentConfig(response_mime_type="application/json", response_json_schema=SCHEMA,
                                     temperature=0)


@pytest.fixture
def server() -> Any:
    with FakeGemini() as fake:
        yield fake


def client_for(server: FakeGemini, key: str = "k1", **options: Any) -> genai.Client:
    """Built by hand the way users will, to prove the plain client works unmodified."""
    options.setdefault("retry_options", types.HttpRetryOptions(attempts=1))
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=server.url, **options))


def generate(client: genai.Client, model: str = MODEL, config: types.GenerateContentConfig = CONFIG,
             contents: str = "Why did run 7 fail?") -> types.GenerateContentResponse:
    return client.models.generate_content(model=model, contents=contents, config=config)


def error_details(exc: errors.APIError) -> dict[str, dict[str, Any]]:
    """``exc.details`` is the whole JSON body; index Google's typed details by their @type suffix."""
    return {d["@type"].rsplit(".", 1)[-1]: d for d in exc.details["error"].get("details", [])}


# -- default answers --------------------------------------------------------------------------


def test_async_client_gets_a_schema_valid_answer(server: FakeGemini) -> None:
    async def run() -> types.GenerateContentResponse:
        client = client_for(server)  # keep a reference: Client.__del__ closes its HTTP pool mid-call
        return await client.aio.models.generate_content(model=MODEL, contents="hi", config=CONFIG)

    response = asyncio.run(run())
    diagnosis = Diagnosis.model_validate_json(response.text)
    assert diagnosis.category == "tool_error" and diagnosis.explanation == "fake explanation"
    assert 0.0 <= diagnosis.confidence <= 1.0 and len(diagnosis.steps) == 1
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    assert response.model_version == MODEL and response.response_id

    (seen,) = server.requests
    assert (seen.method, seen.path, seen.key, seen.status) == (
        "POST", f"/v1/models/{MODEL}:generateContent", "k1", 200)
    config = seen.json["generationConfig"]
    assert config["responseJsonSchema"] == SCHEMA and config["temperature"] == 0
    assert config["responseMimeType"] == "application/json"
    assert seen.json["contents"] == [{"parts": [{"text": "hi"}], "role": "user"}]


def test_sync_client_answer_and_usage(server: FakeGemini) -> None:
    config = CONFIG.model_copy(update={"system_instruction": "You are terse.",
                                       "thinking_config": types.ThinkingConfig(thinking_budget=0)})
    response = generate(client_for(server), config=config, contents="x" * 400)
    Diagnosis.model_validate_json(response.text)
    usage = response.usage_metadata
    assert usage.prompt_token_count == (400 + len("You are terse.") + 3) // 4
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count
    assert usage.thoughts_token_count is None  # zero counts are omitted, as the real API does
    sent = server.requests[0].json
    assert sent["systemInstruction"]["parts"][0]["text"] == "You are terse."
    assert sent["generationConfig"]["thinkingConfig"] == {"thinking_budget": 0}  # the SDK sends snake_case here


def test_answer_callable_and_choose_hook() -> None:
    seen: list[tuple[str | None, str]] = []

    def answer(request: dict[str, Any], key: str | None) -> dict[str, Any]:
        seen.append((key, request["contents"][0]["parts"][0]["text"]))
        return {"category": "timeout", "explanation": "took too long", "confidence": 0.9, "steps": []}

    with FakeGemini(answer=answer) as fake:
        got = Diagnosis.model_validate_json(generate(client_for(fake, "k9"), contents="trace").text)
    assert got.category == "timeout" and seen == [("k9", "trace")]

    with FakeGemini(choose=lambda path, options: options[-1]) as fake:
        got = Diagnosis.model_validate_json(generate(client_for(fake)).text)
    assert got.category == "wrong_answer"


def test_plain_text_without_schema(server: FakeGemini) -> None:
    client = client_for(server)
    response = client.models.generate_content(model=MODEL, contents="hello")
    assert response.text == "This is a fake Gemini answer."


# -- scripted failures ------------------------------------------------------------------------


def test_rate_limited_per_minute_carries_retry_info(server: FakeGemini) -> None:
    server.script([Reply.rate_limited(retry_delay=12)], key="k1")
    with pytest.raises(errors.ClientError) as caught:
        generate(client_for(server))
    exc = caught.value
    assert (exc.code, exc.status) == (429, "RESOURCE_EXHAUSTED")
    details = error_details(exc)
    assert details["RetryInfo"]["retryDelay"] == "12s"
    violation = details["QuotaFailure"]["violations"][0]
    assert violation["quotaId"] == "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
    assert violation["quotaDimensions"]["model"] == MODEL
    assert "Help" in details
    assert Diagnosis.model_validate_json(generate(client_for(server)).text)  # the queue is used up


def test_rate_limited_per_day_is_named(server: FakeGemini) -> None:
    server.script([Reply.rate_limited(per_day=True, retry_delay=None)])
    with pytest.raises(errors.ClientError) as caught:
        generate(client_for(server))
    details = error_details(caught.value)
    assert "PerDay" in details["QuotaFailure"]["violations"][0]["quotaId"]
    assert "RetryInfo" not in details


@pytest.mark.parametrize("code, status", [(400, "INVALID_ARGUMENT"), (403, "PERMISSION_DENIED"),
                                          (401, "UNAUTHENTICATED")])
def test_invalid_key(server: FakeGemini, code: int, status: str) -> None:
    server.script([Reply.invalid_key(code)])
    with pytest.raises(errors.ClientError) as caught:
        generate(client_for(server))
    assert (caught.value.code, caught.value.status) == (code, status)
    assert caught.value.message == "API key not valid. Please pass a valid API key."
    assert error_details(caught.value)["ErrorInfo"]["reason"] == "API_KEY_INVALID"


def test_dead_keys_stay_dead_on_every_endpoint() -> None:
    with FakeGemini(keys={"good"}) as fake:
        generate(client_for(fake, "good"))
        for key in ("stranger", "good"):
            if key == "good":
                fake.revoke("good", code=403)
            for call in (lambda c: generate(c), lambda c: c.models.get(model=MODEL),
                         lambda c: c.models.count_tokens(model=MODEL, contents="x")):
                with pytest.raises(errors.ClientError) as caught:
                    call(client_for(fake, key))
                assert caught.value.code == (400 if key == "stranger" else 403)


def test_server_errors(server: FakeGemini) -> None:
    server.script([Reply.error(500), Reply.error(503)])
    with pytest.raises(errors.ServerError) as first:
        generate(client_for(server))
    with pytest.raises(errors.ServerError) as second:
        generate(client_for(server))
    assert (first.value.code, first.value.status) == (500, "INTERNAL")
    assert (second.value.code, second.value.status) == (503, "UNAVAILABLE")
    assert server.stats().errors == 2


def test_a_bare_429_names_no_quota_and_no_delay(server: FakeGemini) -> None:
    """Shared capacity short: 429 RESOURCE_EXHAUSTED with neither QuotaFailure nor RetryInfo."""
    server.script([Reply.resource_exhausted()])
    with pytest.raises(errors.ClientError) as caught:
        generate(client_for(server))
    assert (caught.value.code, caught.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert caught.value.message == "Resource has been exhausted (e.g. check quota)."
    assert "details" not in caught.value.details["error"]
    assert server.stats().rate_limited == 1


@pytest.mark.parametrize("stage", ["request", "body"])
def test_a_reset_connection_is_a_transport_error(server: FakeGemini, stage: str) -> None:
    server.script([Reply.reset(stage=stage)])
    with pytest.raises(Exception) as caught:
        generate(client_for(server))
    assert not isinstance(caught.value, errors.APIError) and type(caught.value).__module__.startswith("httpx")
    assert server.requests[-1].status == 0 and server.stats().errors == 1  # recorded as no answer
    Diagnosis.model_validate_json(generate(client_for(server)).text)  # the server itself is fine


def test_malformed_body_surfaces_as_a_json_error(server: FakeGemini) -> None:
    server.script([Reply.malformed()])
    with pytest.raises(json.JSONDecodeError):  # the SDK json.loads the 200 body itself, unwrapped
        generate(client_for(server))


def test_blocked_prompt_and_blocked_candidate(server: FakeGemini) -> None:
    server.script([Reply.blocked(), Reply.blocked("PROHIBITED_CONTENT", stage="candidate")])
    response = generate(client_for(server))
    assert not response.candidates and response.text is None
    assert response.prompt_feedback.block_reason == types.BlockedReason.SAFETY
    response = generate(client_for(server))
    assert response.candidates[0].finish_reason == types.FinishReason.PROHIBITED_CONTENT
    assert response.text is None


def test_max_tokens_truncates(server: FakeGemini) -> None:
    server.script([Reply.max_tokens(), Reply.max_tokens(keep=0)])
    response = generate(client_for(server))
    assert response.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert response.text.startswith('{"category"') and response.parsed is None
    with pytest.raises(ValidationError):
        Diagnosis.model_validate_json(response.text)
    response = generate(client_for(server))
    assert response.candidates[0].content.parts is None and response.text is None


def test_empty_answers(server: FakeGemini) -> None:
    server.script([Reply.empty(), Reply.empty(stage="parts")])
    response = generate(client_for(server))
    assert response.candidates is None and response.prompt_feedback is None
    response = generate(client_for(server))
    assert response.candidates[0].finish_reason == types.FinishReason.STOP and response.text is None


@pytest.mark.parametrize("how", ["enum", "missing", "type", "not_json"])
def test_off_schema_answers_fail_validation(server: FakeGemini, how: str) -> None:
    server.script([Reply.off_schema(how)])
    with pytest.raises(ValidationError):
        Diagnosis.model_validate_json(generate(client_for(server)).text)


def test_script_scopes_then_and_remaining(server: FakeGemini) -> None:
    server.script([Reply.error(503)], key="k1", model=MODEL)
    server.script([Reply.rate_limited()], key="k2", then=Reply.invalid_key())
    server.script([Reply.error(500)])
    assert server.remaining(key="k1", model=MODEL) == 1

    with pytest.raises(errors.ServerError):  # k2's queue is not k1's; global 500 waits
        generate(client_for(server, "k3"), model="gemini-2.5-pro")
    with pytest.raises(errors.ServerError) as caught:
        generate(client_for(server, "k1"))
    assert caught.value.code == 503
    generate(client_for(server, "k1"))
    with pytest.raises(errors.ClientError) as caught:
        generate(client_for(server, "k2"))
    assert caught.value.code == 429
    for _ in range(2):
        with pytest.raises(errors.ClientError) as caught:
            generate(client_for(server, "k2"))
        assert caught.value.code == 400
    assert server.remaining(key="k1", model=MODEL) == 0


def test_unknown_model_and_missing_contents(server: FakeGemini) -> None:
    with pytest.raises(errors.ClientError) as caught:
        generate(client_for(server), model="gemini-0.1-nope")
    assert caught.value.code == 404 and caught.value.status == "NOT_FOUND"
    with FakeGemini(models=None) as anything:
        generate(client_for(anything), model="gemini-0.1-nope")


def test_sdk_retries_consume_the_script_and_ignore_retry_info(server: FakeGemini) -> None:
    """With attempts > 1 the SDK retries 429/5xx on its own backoff: RetryInfo's 30 s is not waited for."""
    client = client_for(server, retry_options=types.HttpRetryOptions(attempts=3, initial_delay=0.01, max_delay=0.05))
    server.script([Reply.rate_limited(retry_delay=30), Reply.error(503)])
    start = time.monotonic()
    Diagnosis.model_validate_json(generate(client).text)
    assert time.monotonic() - start < 5 and [r.status for r in server.requests] == [429, 503, 200]


def test_client_timeout_is_a_transport_error_not_an_api_error(server: FakeGemini) -> None:
    server.script([Reply.latency(3.0)])
    client = genai.Client(api_key="k1", http_options=types.HttpOptions(base_url=server.url, timeout=200))
    with pytest.raises(Exception) as caught:
        generate(client)
    assert not isinstance(caught.value, errors.APIError)
    assert "Timeout" in type(caught.value).__name__  # httpx2.ReadTimeout in google-genai 3.6


# -- other endpoints ----------------------------------------------------------------------------


def test_count_tokens(server: FakeGemini) -> None:
    client = client_for(server)
    result = client.models.count_tokens(model=MODEL, contents="a" * 40)
    assert result.total_tokens == 10
    assert server.requests[-1].path == f"/v1/models/{MODEL}:countTokens"


def test_models_get_known_and_unknown(server: FakeGemini) -> None:
    client, beta = client_for(server), client_for(server, api_version="v1beta")
    model = client.models.get(model="gemini-2.5-flash")
    assert model.name == "models/gemini-2.5-flash" and model.display_name == "Gemini 2.5 Flash"
    assert model.input_token_limit and model.output_token_limit
    assert server.requests[-1].path == "/v1/models/gemini-2.5-flash"
    with pytest.raises(errors.ClientError) as caught:
        beta.models.get(model="gemini-9")
    assert caught.value.code == 404
    assert caught.value.message.startswith("models/gemini-9 is not found for API version v1beta")
    assert server.requests[-1].path == "/v1beta/models/gemini-9"


def test_streaming_and_query_key(server: FakeGemini) -> None:
    client = client_for(server)
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="hi", config=CONFIG))
    Diagnosis.model_validate_json("".join(c.text for c in chunks))
    assert server.requests[-1].path == f"/v1/models/{MODEL}:streamGenerateContent"

    body = json.dumps({"contents": [{"parts": [{"text": "hi"}]}]}).encode()
    raw = urllib.request.Request(f"{server.url}/v1beta/models/{MODEL}:generateContent?key=qk", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(raw, timeout=5) as reply:
        assert json.load(reply)["candidates"][0]["content"]["role"] == "model"
    assert server.requests[-1].key == "qk"
    no_key = urllib.request.Request(f"{server.url}/v1/models/{MODEL}:generateContent", data=body)
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(no_key, timeout=5)
    assert caught.value.code == 403


# -- state ---------------------------------------------------------------------------------------


def test_reset_and_client_helper(server: FakeGemini) -> None:
    server.script([Reply.error(500)])
    server.reset()
    Diagnosis.model_validate_json(generate(server.client("helper")).text)
    assert [r.key for r in server.requests] == ["helper"]


# -- schema synthesis ---------------------------------------------------------------------------


def test_synthesize_handles_refs_enums_bounds_and_arrays() -> None:
    schema = {
        "$defs": {"Kind": {"enum": ["a", "b"], "type": "string"}},
        "type": "object",
        "required": ["kind", "items", "ratio", "count", "when"],
        "properties": {
            "kind": {"$ref": "#/$defs/Kind"},
            "maybe": {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 5}]},
            "items": {"type": "array", "items": {"type": "string", "maxLength": 4}, "minItems": 2},
            "ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0.2},
            "count": {"type": "integer", "minimum": 10},
            "when": {"type": "string", "format": "date-time"},
            "tags": {"type": "object", "additionalProperties": {"type": "integer"}},
        },
    }
    value = synthesize(schema)
    assert value == {"kind": "a", "maybe": 5, "items": ["fake", "fake"], "ratio": pytest.approx(0.1),
                     "count": 10, "when": "2025-01-01T00:00:00Z", "tags": {}}
    assert synthesize(schema, choose=lambda path, options: "b" if path == ("kind",) else options[0])["kind"] == "b"
    assert enum_paths(schema) == [("kind",)]
    assert violate(schema, "enum")["kind"] == "NOT_A_VALID_ENUM_VALUE"
    assert "kind" not in violate(schema, "missing")


def test_synthesize_reads_gemini_openapi_schemas() -> None:
    schema = {"type": "OBJECT", "properties": {"label": {"type": "STRING", "enum": ["x", "y"]},
                                               "score": {"type": "NUMBER", "nullable": True}}}
    assert synthesize(schema) == {"label": "x", "score": 0.5}
