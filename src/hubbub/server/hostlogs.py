"""Secrets out of the ASGI server's access log when hubbub is mounted in it.

uvicorn's access log is on by default and writes every request's path with its query, and
hypercorn's (when on) the request line and the Referer: a ``uni_sse`` or ``sse`` client's
``cf_connect`` (with its connection token) or a ``?token=`` would land in the host's log files
in full.
:func:`redact_host_access_logs` (called by ``hub.asgi()``) puts a filter on the loggers
``uvicorn.access`` and ``hypercorn.access`` that rewrites each record's arguments with
:func:`hubbub.core.redact.redact_text` before any handler formats it.

Guarantees: the filter never drops a record and never raises; it changes only the string
arguments of the records (the values of secret query parameters read ``REDACTED``); installing
it again is a no-op. It stays when the host reconfigures logging later with
``logging.config.dictConfig`` (which keeps a configured logger's filters).
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Final

from hubbub.core.redact import redact_text

#: The access loggers of the ASGI servers hubbub is tested under.
HOST_ACCESS_LOGGERS: Final = ("uvicorn.access", "hypercorn.access")
#: hypercorn's access-log atoms that hold a URL: request line, path, the Referer header.
_HYPERCORN_URL_ATOMS: Final = ("r", "R", "U", "Uq", "f")


class RedactQuerySecrets(logging.Filter):
    """Rewrites a record's string arguments with secret query values redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(redact_text(a) if isinstance(a, str) else a for a in args)
        elif isinstance(args, MutableMapping):  # hypercorn's atoms (a dict)
            for name in _HYPERCORN_URL_ATOMS:
                value = args.get(name)
                if isinstance(value, str):
                    args[name] = redact_text(value)
            query = args.get("q")
            if isinstance(query, str) and query:
                args["q"] = redact_text("?" + query)[1:]
        if isinstance(record.msg, str) and not args:
            record.msg = redact_text(record.msg)
        return True


def redact_host_access_logs() -> None:
    """Install :class:`RedactQuerySecrets` on :data:`HOST_ACCESS_LOGGERS` (once)."""
    for name in HOST_ACCESS_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactQuerySecrets) for f in logger.filters):
            logger.addFilter(RedactQuerySecrets())
