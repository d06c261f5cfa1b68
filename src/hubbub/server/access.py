"""The access log (``access_log = true``): one line per HTTP request, logger ``hubbub.access``.

aiohttp calls :class:`AccessLog` when a response is finished: for a plain request when its
answer is sent, for a WebSocket or an HTTP stream (SSE, HTTP-streaming, the emulation) when
the session ends, so the duration is the session's. Each line, at INFO::

    203.0.113.9 "GET /connection/uni_sse?cf_connect=REDACTED" 200 5120 B 12.345 s

The same values are in the record's ``extra`` fields, for a JSON formatter: ``client`` (the
address with ``trusted_proxies`` applied, :mod:`hubbub.server.remote`), ``peer`` (the TCP
peer), ``method``, ``path``, ``status``, ``bytes`` (what aiohttp wrote of the response:
headers and body; a WebSocket's frames are not counted) and ``duration`` (seconds).

Guarantee: the values of query parameters that can carry a secret (the uni transports'
``cf_connect`` with its token, tokens, keys, passwords: :mod:`hubbub.core.redact`) never
reach the log; they read ``REDACTED``. Request headers (Authorization, cookies) are never logged.
"""

from __future__ import annotations

import logging
from typing import Final

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from hubbub.core.redact import redact_query
from hubbub.server.remote import client_of, peer_of

ACCESS_LOGGER: Final = "hubbub.access"


class AccessLog(AbstractAccessLogger):
    """aiohttp's access-logger interface writing the lines of the module docstring."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        path = redact_query(*request.raw_path.partition("?")[::2])
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
