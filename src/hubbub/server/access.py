"""The access log (``access_log = true``): one line per HTTP request, logger ``hubbub.access``.

aiohttp calls :class:`AccessLog` when a response is finished: for a plain request when its
answer is sent, for a WebSocket or an HTTP stream (SSE, HTTP-streaming, the emulation) when
the session ends, so the duration is the session's. Each line, at INFO::

    203.0.113.9 "GET /connection/uni_sse?cf_connect=REDACTED" 200 5120 B 12.345 s

The same values are in the record's ``extra`` fields, for a JSON formatter: ``client`` (the
address with ``trusted_proxies`` applied, :mod:`hubbub.server.remote`), ``peer`` (the TCP
peer), ``method``, ``path``, ``status``, ``bytes`` (what aiohttp wrote of the response:
headers and body; a WebSocket's frames are not counted) and ``duration`` (seconds).

Guarantee: the values of query parameters that can carry a secret (:data:`SECRET_PARAMS`:
the uni transports' ``cf_connect`` with its token, tokens, keys, passwords) never reach the
log; they read ``REDACTED``. Request headers (Authorization, cookies) are never logged.
"""

from __future__ import annotations

import logging
from typing import Final
from urllib.parse import unquote

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from hubbub.server.remote import client_of, peer_of

ACCESS_LOGGER: Final = "hubbub.access"
#: Query parameters whose values are left out of the log (names compared lowercased).
SECRET_PARAMS: Final = frozenset(
    {"cf_connect", "token", "access_token", "jwt", "api_key", "apikey", "key", "password",
     "secret", "auth", "authorization", "session"}
)  # fmt: skip
REDACTED: Final = "REDACTED"


def logged_path(path: str, query: str) -> str:
    """``path`` and ``query`` as logged: the values of :data:`SECRET_PARAMS` replaced."""
    if not query:
        return path
    parts = []
    for part in query.split("&"):
        name, eq, _ = part.partition("=")
        if eq and unquote(name).lower() in SECRET_PARAMS:
            part = f"{name}={REDACTED}"
        parts.append(part)
    return f"{path}?{'&'.join(parts)}"


class AccessLog(AbstractAccessLogger):
    """aiohttp's access-logger interface writing the lines of the module docstring."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        path = logged_path(*request.raw_path.partition("?")[::2])
        extra = {
            "client": client_of(request),
            "peer": peer_of(request),
            "method": request.method,
            "path": path,
            "status": response.status,
            "bytes": response.body_length,
            "duration": round(time, 6),
        }
        self.logger.info(
            '%s "%s %s" %d %d B %.3f s',
            extra["client"],
            request.method,
            path,
            response.status,
            response.body_length,
            time,
            extra=extra,
        )


def access_logger() -> logging.Logger:
    return logging.getLogger(ACCESS_LOGGER)
