"""Secrets out of logged URLs: the values of query parameters that can carry one.

Pure. Guarantee: in what :func:`redact_query` and :func:`redact_text` return, the value of
every query parameter named in :data:`SECRET_PARAMS` (the uni transports' ``cf_connect``
with its token, tokens, keys, passwords; names compared percent-decoded and lowercased)
reads :data:`REDACTED`; everything else is left as it was.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote

#: Query parameters whose values are left out of logs (names compared lowercased).
SECRET_PARAMS: Final = frozenset(
    {"cf_connect", "token", "access_token", "jwt", "api_key", "apikey", "key", "password",
     "secret", "auth", "authorization", "session"}
)  # fmt: skip
REDACTED: Final = "REDACTED"

#: A ``name=value`` pair of a query inside free text (a log line, a request line): after ``?``
#: or ``&``, up to the next ``&``, ``#``, blank or double quote (what ends a quoted request line).
_PAIR: Final = re.compile(r'([?&])([^=&\s?#"]+)=([^&\s#"]*)')


def _secret(name: str) -> bool:
    return unquote(name).lower() in SECRET_PARAMS


def redact_query(path: str, query: str) -> str:
    """``path`` and ``query`` (without its ``?``) joined as logged, secrets redacted."""
    if not query:
        return path
    parts = []
    for part in query.split("&"):
        name, eq, _ = part.partition("=")
        if eq and _secret(name):
            part = f"{name}={REDACTED}"
        parts.append(part)
    return f"{path}?{'&'.join(parts)}"


def redact_text(text: str) -> str:
    """``text`` (any line holding URLs) with the secret query values redacted."""
    if "=" not in text:
        return text

    def pair(match: re.Match[str]) -> str:
        sep, name, _ = match.groups()
        return f"{sep}{name}={REDACTED}" if _secret(name) else match.group(0)

    return _PAIR.sub(pair, text)
