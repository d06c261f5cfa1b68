"""Logging of the processes hubbub owns: ``hubbub serve``, each of its ``--workers``, ``Hub.run``.

:func:`configure` is the one place they set logging up, from the ``log_level`` and
``log_format`` settings: records go to stderr (the ready line stays alone on stdout), as

- ``text`` (the default): ``2026-12-01 23:53:14,714 INFO hubbub.server.runner: stopped``;
- ``json``: one JSON object per line (a record's newlines are escaped inside its strings)
  with ``time`` (ISO 8601 in UTC, milliseconds, ``Z``), ``level``, ``logger``, ``message``
  (the formatted message), ``exception`` (the traceback text, only when the record has
  one), ``stack`` (only with ``stack_info``), then every field the call passed with
  ``extra=``. An extra field named like one of those is written as ``extra_<name>``; a
  value JSON cannot hold (an object, NaN) is written as its ``str()``.

Like :func:`logging.basicConfig`, :func:`configure` changes nothing when the root logger has
handlers already: an application that configured logging first keeps its own.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from datetime import UTC, datetime
from typing import Any, Final, TextIO

#: The line format of ``log_format = "text"``.
LOG_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: The attributes every LogRecord has: what is left in a record's ``__dict__`` came as extra.
_RECORD_FIELDS: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)
_OWN_KEYS: Final = frozenset({"time", "level", "logger", "message", "exception", "stack"})


def _plain(value: Any) -> Any:
    """``value`` if JSON holds it as it is, else its ``str()``."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON (see the module docstring for its fields)."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, tz=UTC)
        out: dict[str, Any] = {
            "time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS:
                out[f"extra_{key}" if key in _OWN_KEYS else key] = _plain(value)
        return json.dumps(out, allow_nan=False)


def formatter(log_format: str) -> logging.Formatter:
    """The formatter of a ``log_format`` setting: ``text`` or ``json``."""
    if log_format == "json":
        return JsonFormatter()
    if log_format == "text":
        return logging.Formatter(LOG_FORMAT)
    raise ValueError(f"unknown log format {log_format!r} (text or json)")


def configure(level: str, log_format: str = "text", stream: TextIO | None = None) -> None:
    """Log at ``level`` (``info``...) to ``stream`` (stderr) as ``log_format`` says, unless
    the root logger has handlers already."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter(log_format))
    root.addHandler(handler)
    root.setLevel(level.upper())
