"""Remove secrets from text before it leaves the machine (in a prompt to Gemini, on a report page).

Traces hold whatever the agent saw: environment dumps, HTTP headers, config files.
Every secret found is replaced by a marker naming its kind, `[REDACTED:<kind>]`, so
the reader still sees that a credential was there without seeing the credential.

Two sources:

- `api_key`: the keys rca itself is configured with. rca.keys registers them with
  add_secrets() as it reads them, and each is removed in every spelling it may take in a
  trace: raw, JSON-escaped (once or twice), repr'd or URL-encoded.
- the patterns of rca.secret_patterns, for secrets rca was never told about:
  `private_key` (PEM blocks), `authorization` (Authorization / Api-Key header values),
  `cookie` (Cookie / Set-Cookie headers), `google_api_key` (`AIza...`), `secret_key` (`sk-...`),
  `bearer_token`, `aws_access_key_id` (`AKIA`/`ASIA`), `github_token` (`ghp_`, `github_pat_`, ...),
  `slack_token` (`xoxb-`, ...), `slack_webhook`, `stripe_key` (`sk_live_`, ...), `huggingface_token`
  (`hf_`), `npm_token` (`npm_`), `google_oauth_client_secret` (`GOCSPX-`), `google_oauth_token`
  (`ya29.`), `jwt`, `url_password` (`scheme://user:password@host`), `aws_secret_access_key`, and
  `password` / `token` / `secret` / `api_key` for values named so (`DB_PASSWORD=...`,
  `"client_secret": "..."`). Ordinary prose and code are kept: `sk-learn`, "Bearer of bad news",
  `max_tokens=1024`, `"token_count": 123`, `password = request.form[...]`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

from rca.secret_patterns import RULES, fold, marker, present_triggers

__all__ = ["add_secrets", "marker", "redact"]

MIN_SECRET_CHARS = 8  # shorter "keys" are placeholders ("x", "test"); removing them would shred prose

_configured: tuple[str, ...] = ()  # every spelling of every registered secret, longest first


def _spellings(secret: str) -> set[str]:
    """The forms `secret` takes once written into JSON, a repr or a URL."""
    in_json = json.dumps(secret)[1:-1]
    forms = {secret, in_json, json.dumps(in_json)[1:-1], in_json.replace("/", "\\/"), repr(secret)[1:-1],
             quote(secret, safe=""), quote(secret), quote_plus(secret)}
    return forms | {re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), form) for form in forms}


def add_secrets(secrets: Iterable[str]) -> None:
    """Have redact() replace these exact strings (the configured API keys) by `[REDACTED:api_key]`,
    in any of their spellings, from now on in this process."""
    global _configured
    new = {form for s in secrets if len(s) >= MIN_SECRET_CHARS for form in _spellings(s)}
    if not new.issubset(_configured):
        _configured = tuple(sorted(new.union(_configured), key=lambda form: (-len(form), form)))


def redact(text: str) -> str:
    """`text` with every registered secret and every secret of a known kind replaced by `[REDACTED:<kind>]`.

    Each pattern runs only when its trigger literals occur, all found in one pass, so
    secret-free text (the common case) costs that one scan, and nothing more when no key is registered.
    """
    if not text:
        return text
    for form in _configured:
        if form in text:
            text = text.replace(form, marker("api_key"))
    folded = fold(text)
    present = present_triggers(folded)
    if not present:
        return text
    for rule in RULES:
        if rule.wanted(present):
            redacted = rule.sub(text, folded)
            if redacted is not text:
                text, folded = redacted, fold(redacted)
    return text
