"""The secrets rca.redact removes: what each kind looks like and how it is replaced.

Rules run in table order, so a specific kind is named before a generic rule can claim it
(`"token": "ghp_..."` is marked `github_token`), and a rule keeps a value that is already a
marker, which also makes redact() idempotent.

Speed, on multi-MB traces: a rule runs only when one of its trigger literals occurs in the
lowercased text, and all triggers are found in one Aho-Corasick pass (ahocorasick-rs: one scan
for the ~40 literals, not ~40 scans); every pattern starts with a literal, so the engine skips to its candidates
(a case-insensitive rule matches lowercase literals in the lowercased text instead of using
re.IGNORECASE, which would try every position); what lies left of a match (is the token
inside a longer word? what is the whole name?) is looked at only for a match; and character
classes do not overlap, so each match is linear.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from dataclasses import dataclass

from ahocorasick_rs import AhoCorasick

MARKER_PREFIX = "[REDACTED:"

Replacer = Callable[[str, re.Match[str]], str | None]  # the new text for a match, None to keep it


def marker(kind: str) -> str:
    """The text that replaces a secret of this kind."""
    return f"{MARKER_PREFIX}{kind}]"


def fold(text: str) -> str:
    """`text` lowercased character for character, so positions in it are positions in `text`
    (str.lower() turns only U+0130, `İ`, into two characters)."""
    return text.replace("\u0130", "i").lower()


@dataclass(frozen=True)
class Rule:
    """How one kind of secret (or one family, such as named values) is found and replaced."""

    triggers: tuple[str, ...]  # lowercase; the rule runs only when one is in the folded text
    regex: re.Pattern[str]
    replace: Replacer  # reads what it keeps from `text` by position: the match may be in the folded copy
    folded: bool = False  # case-insensitive: `regex` is lowercase and runs on the folded text

    def wanted(self, present: set[str]) -> bool:
        """Whether one of the triggers is among those found in the text (present_triggers)."""
        return not present.isdisjoint(self.triggers)

    def sub(self, text: str, folded: str) -> str:
        """`text` with each match replaced; `folded` is fold(text)."""
        pieces, last = [], 0
        for m in self.regex.finditer(folded if self.folded else text):
            new = self.replace(text, m)
            if new is not None:
                pieces += (text[last:m.start()], new)
                last = m.end()
        return "".join(pieces) + text[last:] if pieces else text


def _chars(extra: str) -> frozenset[str]:
    return frozenset(string.ascii_letters + string.digits + extra)


def _escaped_break(text: str, i: int) -> bool:
    """Whether text[i] is the letter of an escaped newline or tab (`\\n`, `\\r`, `\\t` in a JSON string)."""
    return i >= 1 and text[i - 1] == "\\" and text[i] in "nrt"


def _inside_word(text: str, start: int, word: frozenset[str]) -> bool:
    """Whether a match at `start` continues a longer run of `word` characters (`foo-sk-...`)."""
    return start > 0 and text[start - 1] in word and not _escaped_break(text, start - 1)


def _token(kind: str, triggers: tuple[str, ...], pattern: str, word: frozenset[str] | None = None) -> Rule:
    """A secret recognisable on its own, by prefix and length: the whole match becomes the marker,
    unless it continues a longer run of `word` characters."""
    return Rule(triggers, re.compile(pattern),
                lambda text, m: None if word and _inside_word(text, m.start(), word) else marker(kind))


# --- named values: `name: value`, `name=value`, `"name": "value"`, `'name': 'value'` ------------

_NAME = _chars("_-")
NAME_CHARS = 64
_QUOTED = (r"\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'"  # a JSON / repr string
           r"|\\\"[^\"\n]*?\\\"|\\'[^'\n]*?\\'")  # the same, escaped inside another JSON string
_WORD = r"[^\s\"'\\,;}]+"
_REST_OF_LINE = r"[^\r\n\\\"']+"  # a cookie header's `a=1; b=2`, up to the line's end, real or escaped


def _name_start(text: str, key_start: int) -> int:
    """Where the name that ends in the key at `key_start` starts (`x-goog-` of `x-goog-api-key`),
    looking back at most NAME_CHARS: a longer run is no name anyone reads."""
    start, stop = key_start, max(0, key_start - NAME_CHARS)
    while start > stop and text[start - 1] in _NAME:
        start -= 1
    return start + 1 if start < key_start and _escaped_break(text, start) else start


def _named(triggers: tuple[str, ...], keys: str, kind: Callable[[str], str], *, value: str = _WORD,
           sep: str = "[:=]", name_ok: Callable[[str, str], bool] = lambda name, key: True,
           env_style_bare: bool = False) -> Rule:
    """A value named by a name ending in one of `keys` (lowercase), bare or quoted (JSON, repr,
    escaped JSON), then `sep`, then a quoted value or `value`. The value becomes the marker of
    `kind(key)`; the name and the value's quotes stay. Kept: an empty value, one already redacted,
    a name that `name_ok(name, key)` refuses and, with `env_style_bare`, an unquoted value unless
    it is assigned env style: `DB_PASSWORD=x` or `DB_PASSWORD: x` (env, shell, .env, YAML), not
    `password = get()` or `"token": null` (code, data)."""
    regex = re.compile(rf"(?P<key>{keys})(?P<q>\\?[\"']?)(?P<sep>[ \t]*{sep}(?!=)[ \t]*)(?P<value>{_QUOTED}|{value})")

    def replace(text: str, m: re.Match[str]) -> str | None:
        begin, end = m.span("value")
        quote = text[begin:begin + (2 if text[begin] == "\\" else 1)] if text[begin] in "\"'\\" else ""
        if end - begin <= 2 * len(quote) or text.startswith(MARKER_PREFIX, begin + len(quote)):
            return None  # empty, or redacted already
        env_only = env_style_bare and not quote
        if env_only and (m.group("q") or not (m.group("sep") == "=" or m.group("sep").startswith(":"))):
            return None
        name = text[_name_start(text, m.start()):m.end("key")]
        if not name_ok(name.lower(), m.group("key")) or (env_only and not name.isupper()):
            return None
        return f"{text[m.start():begin]}{quote}{marker(kind(m.group('key')))}{quote}"

    return Rule(triggers, regex, replace, folded=True)


_SECRET_KIND = {"password": "password", "passwd": "password", "token": "token", "secret": "secret",
                "secret_key": "secret", "api_key": "api_key", "apikey": "api_key"}


# --- the rest ---------------------------------------------------------------------------------

def _bearer(text: str, m: re.Match[str]) -> str | None:
    token = text[m.start("token"):m.end("token")]
    if _inside_word(text, m.start(), _chars("_")) or len(token) < 8 or not any(c.isdigit() for c in token):
        return None  # prose such as "Bearer of bad news": nothing secret here
    return f"{text[m.start():m.start('token')]}{marker('bearer_token')}"


def _url_password(text: str, m: re.Match[str]) -> str | None:
    if m.group("pw").startswith(MARKER_PREFIX):
        return None  # a more specific rule has named it
    return f"://{m.group('user')}:{marker('url_password')}@"


RULES: tuple[Rule, ...] = (
    # private_key: a whole PEM block; one cut off before its END line up to the first line that is
    # not base64 or a header
    Rule(("private key-----",), re.compile(
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"
        r"(?:[\s\S]{0,16384}?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----"  # keys are < 16 KB
        r"|(?:(?:\r?\n|\\r?\\n)(?:[A-Za-z-]+: [^\r\n\\]*|[A-Za-z0-9+/=]*))*)"), lambda text, m: marker("private_key")),
    # authorization: Authorization, Proxy-Authorization, X-...-Authorization, (X-...-)Api-Key; an
    # unquoted value is one word, or two when the first is an auth scheme
    _named(("authorization", "api-key"), "authorization|api-key", lambda key: "authorization",
           value=r"(?:(?:bearer|basic|digest|token|apikey|negotiate)[ \t]+)?" + _WORD,
           name_ok=lambda name, key: name == key or name.endswith("-" + key)),
    _named(("cookie",), "set-cookie|cookie", lambda key: "cookie", value=_REST_OF_LINE, sep=":",
           name_ok=lambda name, key: name in ("cookie", "set-cookie")),
    _token("google_api_key", ("aiza",), r"AIza[0-9A-Za-z_\-]{35}"),
    # secret_key: OpenAI / Anthropic sk-...: >= 20 key characters with a digit, so `sk-learn` stays
    _token("secret_key", ("sk-",), r"sk-(?=[A-Za-z0-9_\-]*?\d)[A-Za-z0-9_\-]{20,}", _chars("_-")),
    # bearer_token: >= 8 token characters with a digit, so "Bearer of bad news" stays
    Rule(("bearer",), re.compile(r"bearer\s+(?P<token>[a-z0-9\-._~+/]+=*)"), _bearer, folded=True),
    _token("aws_access_key_id", ("akia", "asia"), r"(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])", _chars("")),
    _token("github_token", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
           r"gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,}", _chars("_")),
    _token("slack_token", ("xox",), r"xox[abprs]-(?=[A-Za-z0-9-]*?\d)[A-Za-z0-9-]{10,}", _chars("-")),
    Rule(("hooks.slack.com",), re.compile(r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<path>[A-Za-z0-9/_-]+)"),
         lambda text, m: f"{text[m.start():m.start('path')]}{marker('slack_webhook')}"),
    _token("stripe_key", ("sk_live_", "sk_test_", "rk_live_", "rk_test_", "pk_live_"),
           r"(?:[sr]k_(?:live|test)|pk_live)_[A-Za-z0-9]{16,}", _chars("_")),
    _token("huggingface_token", ("hf_",), r"hf_[A-Za-z0-9]{30,}", _chars("_")),
    _token("npm_token", ("npm_",), r"npm_[A-Za-z0-9]{36}(?![A-Za-z0-9])", _chars("_")),
    _token("google_oauth_client_secret", ("gocspx-",), r"GOCSPX-[A-Za-z0-9_-]{20,}", _chars("_-")),
    _token("google_oauth_token", ("ya29.",), r"ya29\.[A-Za-z0-9_-]{20,}", _chars("_.-")),
    # jwt: three base64url parts, the first a JSON header (`{"` encodes to `eyJ`); the last may be empty
    _token("jwt", ("eyj",), r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*", _chars("_-")),
    # url_password: scheme://user:password@host, the user kept; the password runs to the LAST @
    # before the host, so it may hold @
    Rule(("://",), re.compile(r"://(?P<user>[^:/?#@\s'\"\\\[]*):(?P<pw>[^/?#\s'\"\\]+)@"), _url_password),
    _named(("secret_access_key", "secretaccesskey", "aws_secret_key"),
           "aws_secret_access_key|aws_secret_key|secretaccesskey", lambda key: "aws_secret_access_key"),
    # password / token / secret / api_key: names ending so (DB_PASSWORD, "client_secret", "accessToken");
    # a quoted value always, an unquoted one only in env style
    _named(("password", "passwd", "secret", "token", "api_key", "apikey"),
           "password|passwd|secret_key|secret|token|api_key|apikey", _SECRET_KIND.__getitem__, env_style_bare=True),
)


_TRIGGERS = AhoCorasick(sorted({trigger for rule in RULES for trigger in rule.triggers}))


def present_triggers(folded: str) -> set[str]:
    """Every trigger literal that occurs in `folded`, overlapping ones included, in one pass."""
    return set(_TRIGGERS.find_matches_as_strings(folded, overlapping=True))
