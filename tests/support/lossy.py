"""Losing a publication on its way between the engine and the nodes, on purpose.

Redis pub/sub and PostgreSQL NOTIFY deliver at most once (a Redis ``client-output-buffer-limit``
cut, a listener's queue overflow). :func:`store_unannounced` makes the same thing happen on
demand: it appends a publication to a channel's stream as hubbub's engine would, with the next
offset, but sends no pub/sub message or notification, so no node hears of it. The next
publication then reaches the nodes with an offset one further than they expect.
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from hubbub.core.types import Publication
from hubbub.engines.base import HistoryOptions
from hubbub.engines.envelope import pub_payload
from hubbub.engines.postgres import PostgresHistory

#: The Redis engine's key prefix (hubbub's default).
PREFIX = "hubbub"

#: The Redis engine's publish script without its PUBLISH (and without idempotency).
_APPEND = """
local top = redis.call('HINCRBY', KEYS[2], 's', 1)
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], '0-' .. top, 'p', ARGV[1])
return top
"""


async def store_unannounced(
    engine_url: str,
    channel: str,
    data: str,
    size: int = 1000,
    ttl: float = 86400,
    prefix: str = PREFIX,
) -> int:
    """Append JSON text ``data`` to ``channel``'s stream in the engine at ``engine_url``
    (redis:// with key ``prefix``, or postgresql://) without telling any node; returns its
    offset. The stream must exist already (publish once first): its epoch is kept."""
    pub = Publication(data, time_ms=int(time.time() * 1000))
    if engine_url.startswith("redis"):
        client = aioredis.from_url(engine_url)
        try:
            keys = [f"{prefix}:stream:{channel}", f"{prefix}:meta:{channel}"]
            top = await client.eval(_APPEND, 2, *keys, pub_payload(pub), size)
        finally:
            await client.aclose()
        return int(top)
    store = PostgresHistory(engine_url)
    await store.open()
    try:
        stored, _ = await store.append(channel, pub, HistoryOptions(size, ttl, 60.0))
    finally:
        await store.close()
    return stored.offset
