"""Remove secrets from text before it leaves the machine (e.g. in a prompt to Gemini).

Traces hold whatever the agent saw: environment dumps, HTTP headers, config files.
Every secret found is replaced by a marker naming its kind, `[REDACTED:<kind>]`, so
the reader still sees that a credential was there without seeing the credential.

Kinds and policy:

- `google_api_key`: `AIza` + 35 key characters.
- `secret_key`: `sk-...` keys (OpenAI `sk-`/`sk-proj-`, Anthropic `sk-ant-`); the part after
  `sk-` must be >= 20 key characters and contain a digit, so `sk-learn`, `skip` and
  hyphenated identifiers are kept.
- `bearer_token`: the token after `Bearer ` when it is >= 8 token characters and contains a
  digit. Prose is kept on purpose: "Bearer of bad news", "Bearer authentication".
- `authorization`: the value of an `Authorization`, `Proxy-Authorization`, `X-Goog-Api-Key` or
  `X-Api-Key` header, in header (`Name: value`), JSON (`"Name": "value"`), dict-repr
  (`'Name': 'value'`) or assignment (`name=value`) form; the name is kept. An unquoted
  value is one word, or two when the first is an auth scheme (`Bearer`, `Basic`, ...).
- `private_key`: a whole PEM `-----BEGIN ... PRIVATE KEY-----` block; a block cut off
  before its END line is redacted up to the first line that is not base64 or a header.
- `url_password`: the password in `scheme://user:password@host`; the user is kept.

Every pattern is compiled once, anchored on a literal so the engine rejects most
positions at once, and uses non-overlapping character classes: linear on multi-MB text.
"""

from __future__ import annotations

import re

__all__ = ["redact", "marker"]


def marker(kind: str) -> str:
    """The text that replaces a secret of this kind."""
    return f"[REDACTED:{kind}]"


_PEM = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"
    r"(?:[\s\S]{0,16384}?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----"  # a whole block (keys are < 16 KB)
    r"|(?:(?:\r?\n|\\r?\\n)(?:[A-Za-z-]+: [^\r\n\\]*|[A-Za-z0-9+/=]*))*)"  # cut off: its base64/header lines
)
_HEADER = re.compile(
    r"(?i)(?P<name>(?P<q>\\?[\"']?)\b(?:proxy-authorization|authorization|x-goog-api-key|x-api-key)(?P=q)\s*[:=]\s*)"
    r"(?P<value>\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'"  # JSON / repr string
    r"|\\\"[^\"\n]*?\\\"|\\'[^'\n]*?\\'"  # the same, escaped inside another JSON string
    r"|(?:(?:bearer|basic|digest|token|apikey|negotiate)[ \t]+)?[^\s\"'\\,;}]+)"  # header line: [scheme] credentials
)
_GOOGLE = re.compile(r"AIza[0-9A-Za-z_\-]{35}")
_SK = re.compile(r"(?<![A-Za-z0-9_\-])sk-(?=[A-Za-z0-9_\-]*?\d)[A-Za-z0-9_\-]{20,}")
_BEARER = re.compile(r"(?i)\b(?P<scheme>bearer)(?P<sp>\s+)(?P<token>[A-Za-z0-9\-._~+/]+=*)")
_URL_PASSWORD = re.compile(r"(?<=://)(?P<user>[^:/?#@\s'\"\\]*):(?P<pw>[^@/?#\s'\"\\]+)@")


def _header(m: re.Match[str]) -> str:
    value = m.group("value")
    quote = value[: 2 if value[0] == "\\" else 1] if value[0] in "\"'\\" else ""
    return f"{m.group('name')}{quote}{marker('authorization')}{quote}"


def _bearer(m: re.Match[str]) -> str:
    token = m.group("token")
    if len(token) < 8 or not any(c.isdigit() for c in token):
        return m.group(0)  # prose such as "Bearer of bad news": nothing secret here
    return f"{m.group('scheme')}{m.group('sp')}{marker('bearer_token')}"


def redact(text: str) -> str:
    """`text` with every secret of a known kind replaced by `[REDACTED:<kind>]`.

    Each pass runs only when a cheap substring test says it can match, so secret-free
    text (the common case) costs a few `in` scans.
    """
    if not text:
        return text
    if "PRIVATE KEY-----" in text:
        text = _PEM.sub(marker("private_key"), text)
    lower = text.lower()
    if "authorization" in lower or "api-key" in lower:
        text = _HEADER.sub(_header, text)
    if "AIza" in text:
        text = _GOOGLE.sub(marker("google_api_key"), text)
    if "sk-" in text:
        text = _SK.sub(marker("secret_key"), text)
    if "bearer" in lower:
        text = _BEARER.sub(_bearer, text)
    if "://" in text:
        text = _URL_PASSWORD.sub(lambda m: f"{m.group('user')}:{marker('url_password')}@", text)
    return text
