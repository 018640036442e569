"""Secrets never survive redact(); ordinary text is left as it was."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rca.redact import marker, redact

GOOGLE = "AIzaSyD3x4mPl3K3yF0rT3st1ngOnly-_abcdEF"
SECRETS = {
    "google_api_key": [GOOGLE],
    "secret_key": [
        "sk-3xampleKeyForTestsOnly0123456789abcd",
        "sk-proj-AbC123_def-456GhiJklMnoPqrStuVwxYz0987",
        "sk-ant-api03-Zyx9876_wvu-5432TsrQpo1nmLkJiH-gfeDCBA",
    ],
}


@pytest.mark.parametrize(
    ("kind", "secret"), [(kind, s) for kind, values in SECRETS.items() for s in values]
)
def test_key_is_replaced_by_its_marker_and_context_is_kept(kind: str, secret: str) -> None:
    out = redact(f"export KEY={secret}\nnext line")
    assert secret not in out
    assert out == f"export KEY={marker(kind)}\nnext line"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.DEF-123\nHost: x", "Authorization: [REDACTED:authorization]\nHost: x"),
        ("authorization: basic dXNlcjpwYXNz more", "authorization: [REDACTED:authorization] more"),
        ('{"Authorization": "Bearer t0ken", "x": 1}', '{"Authorization": "[REDACTED:authorization]", "x": 1}'),
        ("{'Authorization': 'Token s3cr3t'}", "{'Authorization': '[REDACTED:authorization]'}"),
        ('{"x-goog-api-key": "opaque-value"}', '{"x-goog-api-key": "[REDACTED:authorization]"}'),
        ('"{\\"X-Api-Key\\": \\"v a l\\"}"', '"{\\"X-Api-Key\\": \\"[REDACTED:authorization]\\"}"'),
        ("Proxy-Authorization=abc123 rest", "Proxy-Authorization=[REDACTED:authorization] rest"),
    ],
)
def test_auth_header_values_in_header_json_and_repr_form(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_bearer_token_outside_a_header() -> None:
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig-123"
    out = redact(f"curl -H 'X: y' --oauth2-bearer x; sent Bearer {token} to the API")
    assert token not in out
    assert out.endswith(f"sent Bearer {marker('bearer_token')} to the API")


@pytest.mark.parametrize(
    "text",
    [
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEow3nT35t\nabc+/=\n-----END RSA PRIVATE KEY-----",
        "-----BEGIN PRIVATE KEY-----\\nMIIEow3nT35t\\nabc+/=\\n-----END PRIVATE KEY-----",  # JSON-escaped
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: DES-EDE3-CBC,AB\n\nMIIEow3nT35t\n"
        "-----END ENCRYPTED PRIVATE KEY-----",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nMIIEow3nT35t\nabc",  # cut off before its END line
    ],
)
def test_pem_private_key_block(text: str) -> None:
    out = redact(f"before\n{text}\n after")
    assert "MIIEow3nT35t" not in out
    assert out.startswith(f"before\n{marker('private_key')}")
    assert out.endswith("after")


def test_public_key_and_certificate_are_kept() -> None:
    text = "-----BEGIN PUBLIC KEY-----\nMIIBIjAN\n-----END PUBLIC KEY-----"
    assert redact(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgres://bob:hunter2@db:5432/app", "postgres://bob:[REDACTED:url_password]@db:5432/app"),
        ("git clone https://tok:x-oauth-7@github.com/a/b", "git clone https://tok:[REDACTED:url_password]@github.com/a/b"),
        ("redis://:s3cret@cache:6379", "redis://:[REDACTED:url_password]@cache:6379"),
    ],
)
def test_password_in_url_keeps_user_and_host(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "skip the task-1 test; use sk-learn and risk-free-rate-model-parameters",
        "Bearer of bad news. Bearer authentication is described in RFC 6750.",
        "Authorization failed for this request",
        "see http://example.com:8080/a@b and https://user@example.com/x",
        "AIza is a prefix; AIzaShort",
        "def f(api_key=None): return 'sk-' + api_key",
        "",
    ],
)
def test_ordinary_text_is_not_mangled(text: str) -> None:
    assert redact(text) == text


def test_secrets_inside_large_text() -> None:
    filler = "lorem ipsum dolor sit amet\n" * 40_000
    out = redact(f"{filler}key={GOOGLE}\n{filler}Authorization: Bearer abc123def\n{filler}")
    assert GOOGLE not in out and "abc123def" not in out
    assert out.count("lorem ipsum") == 120_000


_SECRET = st.sampled_from([v for values in SECRETS.values() for v in values]
                          + ["Bearer ya29.a0AfH6SMBx-T0k3n", "Authorization: Basic dXNlcjpwYXNz",
                             "https://me:p4ssw0rd@host/x", "-----BEGIN PRIVATE KEY-----\nMIIEow3nT35t\n-----END PRIVATE KEY-----"])
_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=200)


@settings(max_examples=100, deadline=None)
@given(before=_TEXT, secret=_SECRET, after=_TEXT)
def test_property_secret_never_survives(before: str, secret: str, after: str) -> None:
    out = redact(f"{before} {secret} {after}")
    for piece in ("3xampleKeyForTestsOnly", "AbC123_def", "Zyx9876", "mPl3K3yF0", "ya29.a0AfH6SMBx", "dXNlcjpwYXNz",
                  "p4ssw0rd", "MIIEow3nT35t"):
        if piece in secret:
            assert piece not in out


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=300) | st.builds(lambda a, s, b: a + s + b, _TEXT, _SECRET, _TEXT))
def test_property_idempotent(text: str) -> None:
    once = redact(text)
    assert redact(once) == once


@settings(max_examples=100, deadline=None)
@given(text=st.text(alphabet="abcdefghij XYZ0123456789.,;:-_/\n'\"{}", max_size=400))
def test_property_text_without_triggers_is_unchanged(text: str) -> None:
    # no "AIza", "sk-", "bearer", "://", header names or PEM headers can be formed from this alphabet
    assert redact(text) == text


@pytest.mark.parametrize("section", ["error", "task", "final_answer"])
def test_a_key_where_the_prompt_cuts_a_long_section_is_redacted_whole(section: str) -> None:
    """The error, task and final answer are cut to a limit; a key across the cut must not leave a piece behind."""
    from rca.prompt import ERROR_TEXT_CHARS, FINAL_ANSWER_CHARS, TASK_CHARS, user_prompt
    from rca.render import render_trace
    from rca.transcript import Outcome, Transcript

    limit = {"error": ERROR_TEXT_CHARS, "task": TASK_CHARS, "final_answer": FINAL_ANSWER_CHARS}[section]
    text = ("z" * 20 + GOOGLE) * (limit // 15)  # no line breaks: the cut falls inside one of the keys
    assert len(text) > 3 * limit
    transcript = Transcript(format="test", ref="t", metadata={"benchmark_name": "b"},
                            task=text if section == "task" else "t",
                            final_answer=text if section == "final_answer" else None,
                            outcome=Outcome(error=text if section == "error" else None))
    prompt = user_prompt(transcript, render_trace(transcript))
    body = prompt.split(f"<{section}>\n")[1].split(f"\n</{section}>")[0]
    assert "[cut " in body and len(body) <= limit
    assert "AIza" not in prompt and marker("google_api_key") in body
