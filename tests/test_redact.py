"""Secrets never survive redact(); ordinary text is left as it was."""

from __future__ import annotations

import json

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
    "aws_access_key_id": ["AKIAIOSFODNN7EXAMPLE", "ASIAY34FZKBOKMUTVV7A"],
    "github_token": [
        "ghp_T3stT0kenF0rRcaRedact1onOnly0123abcd",
        "gho_3stT0kenF0rRcaRedact1onOnly0123abcde",
        "ghu_stT0kenF0rRcaRedact1onOnly0123abcdef",
        "ghs_tT0kenF0rRcaRedact1onOnly0123abcdefg",
        "ghr_T0kenF0rRcaRedact1onOnly0123abcdefgh",
        "github_pat_11ABCDEFGH0123456789ab_T3stT0kenF0rRcaRedact1onOnly0123abcdefghijklmnopqrstuvwxyz9",
    ],
    "slack_token": [
        "xoxb-1234567890-1234567890123-T3stT0kenF0rRcaOnly01",
        "xoxp-1234567890-1234567890-1234567890123-0123456789abcdef0123456789abcdef",
        "xoxa-2-1234567890-T3stT0kenF0rRca",
        "xoxr-1234567890-T3stT0kenF0rRca",
        "xoxs-1234567890-1234567890-T3stT0ken",
    ],
    "jwt": ["eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"],
    "stripe_key": [
        "sk_live_T3stT0kenF0rRcaRedact1on",
        "sk_test_0kenF0rRcaRedact1onOnly0",
        "rk_live_kenF0rRcaRedact1onOnly01",
        "pk_live_enF0rRcaRedact1onOnly012",
    ],
    "huggingface_token": ["hf_T3stT0kenF0rRcaRedact1onOnly0123ab"],
    "npm_token": ["npm_T3stT0kenF0rRcaRedact1onOnly0123abcd"],
    "google_oauth_client_secret": ["GOCSPX-T3stT0kenF0rRcaRedact1onOnly"],
    "google_oauth_token": ["ya29.a0AfH6SMBxT3stT0kenF0rRcaRedact1onOnly-_0123"],
}


@pytest.mark.parametrize(
    ("kind", "secret"), [(kind, s) for kind, values in SECRETS.items() for s in values]
)
def test_key_is_replaced_by_its_marker_and_context_is_kept(kind: str, secret: str) -> None:
    out = redact(f"export KEY={secret}\nnext line")
    assert secret not in out
    assert out == f"export KEY={marker(kind)}\nnext line"


@pytest.mark.parametrize(
    ("kind", "secret"), [(kind, s) for kind, values in SECRETS.items() for s in values]
)
def test_key_at_the_start_of_a_line_inside_a_json_string(kind: str, secret: str) -> None:
    text = json.dumps({"output": f"first line\n{secret}\n\tGITHUB_TOKEN={secret}"})
    assert redact(text) == json.dumps({"output": f"first line\n{marker(kind)}\n\tGITHUB_TOKEN={marker(kind)}"})


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
        ("api-key: 0123abcdef\nHost: x", "api-key: [REDACTED:authorization]\nHost: x"),
        ("X-Forwarded-Authorization: opaque", "X-Forwarded-Authorization: [REDACTED:authorization]"),
    ],
)
def test_auth_header_values_in_header_json_and_repr_form(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Cookie: sid=abc123; theme=dark\r\nHost: x", "Cookie: [REDACTED:cookie]\r\nHost: x"),
        ("Set-Cookie: sid=abc; Path=/; HttpOnly\nnext", "Set-Cookie: [REDACTED:cookie]\nnext"),
        ('{"Cookie": "sid=abc; b=2", "x": 1}', '{"Cookie": "[REDACTED:cookie]", "x": 1}'),
        ("{'set-cookie': 'sid=abc'}", "{'set-cookie': '[REDACTED:cookie]'}"),
        ("GET / HTTP/1.1\\r\\nCookie: sid=abc\\r\\nHost: x", "GET / HTTP/1.1\\r\\nCookie: [REDACTED:cookie]\\r\\nHost: x"),
    ],
)
def test_cookie_headers(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # AWS: the secret access key beside its id, in a credentials file, an env dump and `aws sts` JSON
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
         "aws_secret_access_key = [REDACTED:aws_secret_access_key]\n"),
        ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY rest",
         "AWS_SECRET_ACCESS_KEY=[REDACTED:aws_secret_access_key] rest"),
        ('{"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}',
         '{"SecretAccessKey": "[REDACTED:aws_secret_access_key]"}'),
        # env-style assignments: any *_PASSWORD / *_SECRET / *_TOKEN / *_API_KEY
        ("DB_PASSWORD=hunter2! next", "DB_PASSWORD=[REDACTED:password] next"),
        ("export GITHUB_TOKEN=opaque123\n", "export GITHUB_TOKEN=[REDACTED:token]\n"),
        ("WEBHOOK_SECRET=whsec_abc", "WEBHOOK_SECRET=[REDACTED:secret]"),
        ("OPENWEATHER_API_KEY=0123abcd", "OPENWEATHER_API_KEY=[REDACTED:api_key]"),
        ("DJANGO_SECRET_KEY='django-insecure-x'", "DJANGO_SECRET_KEY='[REDACTED:secret]'"),
        ("  REDIS_PASSWORD: s3cret\n", "  REDIS_PASSWORD: [REDACTED:password]\n"),
        ('db_password = "hunter2"', 'db_password = "[REDACTED:password]"'),
        # JSON and dict forms
        ('{"password": "hunter2", "user": "bob"}', '{"password": "[REDACTED:password]", "user": "bob"}'),
        ('{"api_key": "abc123"}', '{"api_key": "[REDACTED:api_key]"}'),
        ("{'secret': 's3cr3t'}", "{'secret': '[REDACTED:secret]'}"),
        ('{"token": "abc.def"}', '{"token": "[REDACTED:token]"}'),
        ('{"client_secret": "opaque", "accessToken": "t0k"}',
         '{"client_secret": "[REDACTED:secret]", "accessToken": "[REDACTED:token]"}'),
        ('"{\\"password\\": \\"hunter2\\"}"', '"{\\"password\\": \\"[REDACTED:password]\\"}"'),
        # İ lowercases to two characters: the names are still found and the text around kept
        ("İ İ DB_PASSWORD=hunter2 İ", "İ İ DB_PASSWORD=[REDACTED:password] İ"),
        # a known kind inside a named value keeps its own, more telling marker
        ('{"token": "ghp_T3stT0kenF0rRcaRedact1onOnly0123abcd"}', '{"token": "[REDACTED:github_token]"}'),
    ],
)
def test_named_secret_values(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_slack_webhook_keeps_its_host() -> None:
    text = "POST https://hooks.slack.com/services/T0000FAKE/B0000FAKE/XXXXfakeXXXXfakeXXXXfake done"
    assert redact(text) == f"POST https://hooks.slack.com/services/{marker('slack_webhook')} done"


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
        ("postgres://user:p@ss@host/db", "postgres://user:[REDACTED:url_password]@host/db"),
        ("mysql://root:a@b:c@@db:3306 and mail@x.org", "mysql://root:[REDACTED:url_password]@db:3306 and mail@x.org"),
        ('{"url": "amqp://u:p@w@mq/"}', '{"url": "amqp://u:[REDACTED:url_password]@mq/"}'),
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
        "password_field = forms.CharField()",
        '{"token_count": 123, "tokens": 50, "token": null, "token_type": "bearer", "secret_name": "prod"}',
        "tokens: 50\nmax_tokens=1024\nMAX_TOKENS=4096\nmax_token=5",
        "password = request.form['password']; token = get_token(); api_key=api_key",
        "API_TOKEN = os.environ['API_TOKEN']\nif DB_PASSWORD == other: pass\nif API_TOKEN:\n    go()",
        "{'password': ''} and DB_PASSWORD= and password: str",
        "def test_sk_test_mode(): hf_hub_download(npm_config_cache, ghp_short)",
        "Asia and AKIA alone; xoxo hugs; the set_cookie helper; Cookies: none; eyJ alone",
        "https://hooks.slack.com/ is Slack's webhook host",
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
                             "https://me:p4ssw0rd@host/x", "-----BEGIN PRIVATE KEY-----\nMIIEow3nT35t\n-----END PRIVATE KEY-----",
                             "Cookie: sid=c00k1eVal", "DB_PASSWORD=pa55Word", '{"client_secret": "cl1entS3cret"}',
                             "postgres://u:p@ss@h0st/db"])
_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=200)


@settings(max_examples=100, deadline=None)
@given(before=_TEXT, secret=_SECRET, after=_TEXT)
def test_property_secret_never_survives(before: str, secret: str, after: str) -> None:
    out = redact(f"{before} {secret} {after}")
    for piece in ("3xampleKeyForTestsOnly", "AbC123_def", "Zyx9876", "mPl3K3yF0", "ya29.a0AfH6SMBx", "dXNlcjpwYXNz",
                  "p4ssw0rd", "MIIEow3nT35t", "c00k1eVal", "pa55Word", "cl1entS3cret", "p@ss@"):
        if piece in secret:
            assert piece not in out


@settings(max_examples=200, deadline=None)
@given(before=_TEXT, secret=st.sampled_from([v for values in SECRETS.values() for v in values]), after=_TEXT)
def test_property_every_token_kind_is_removed_from_any_surroundings(before: str, secret: str, after: str) -> None:
    assert secret not in redact(f"{before} {secret} {after}")


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=300) | st.builds(lambda a, s, b: a + s + b, _TEXT, _SECRET, _TEXT))
def test_property_idempotent(text: str) -> None:
    once = redact(text)
    assert redact(once) == once


@settings(max_examples=100, deadline=None)
@given(text=st.text(alphabet="abcdefgij XYZ0123456789.,;:-_/\n'\"{}", max_size=400))
def test_property_text_without_triggers_is_unchanged(text: str) -> None:
    # no prefix of a known kind ("AIza", "sk-", "hf_", ...), "bearer", "://", header or secret names or PEM
    # headers can be formed from this alphabet
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


def test_every_line_of_the_prompt_is_redacted() -> None:
    from rca.prompt import repair_prompt, user_prompt
    from rca.render import render_trace
    from rca.transcript import Transcript

    secret = "sk-proj-" + "a1" * 12
    transcript = Transcript(format="t", ref="r", metadata={"benchmark_name": f"case with {secret}", "suite": secret})
    prompt = user_prompt(transcript, render_trace(transcript))
    assert secret not in prompt and "[REDACTED:secret_key]" in prompt
    assert secret not in repair_prompt(f"field 'x' got {secret}")
