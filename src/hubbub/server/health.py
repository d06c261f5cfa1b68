"""``GET /health``, whatever edge serves it: a small JSON body, 200 while the server accepts
work; 503 while shutting down or while the engine (Redis) is unreachable.

The counters are this process's, read without I/O: ``connections`` (WebSockets and HTTP
streams attached), ``channels`` (channels with at least one subscriber here, raw room
members included: the server API's ``num_channels``) and ``subscriptions`` (channel
memberships here). A channel that only has history, or only subscribers on other nodes,
is not counted: the store is not asked (``hubbub history``, the admin's channel browser).
"""

from __future__ import annotations

import time
from typing import Any

from hubbub import __version__
from hubbub.engines.base import Monitored
from hubbub.node import Node


def report(node: Node) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON body of ``/health`` for ``node``."""
    engine_ok = not isinstance(node.broker, Monitored) or node.broker.connected
    status = "shutting_down" if node.closing else ("ok" if engine_ok else "engine_unavailable")
    body = {
        "status": status,
        "version": __version__,
        "uptime_seconds": round(time.time() - node.started_at, 3),
        "connections": node.connection_count,
        "channels": len(node.channels()),
        "subscriptions": node.subscription_count(),
        "engine": {"kind": node.settings.engine.split(":", 1)[0], "connected": engine_ok},
    }
    return (200 if status == "ok" else 503), body
