"""The presence entries of this node's clients, kept alive in the presence engine.

Entries expire in the engine after ``presence_ttl`` unless refreshed, so that a node that
dies without cleaning up vanishes from presence by itself. The keeper remembers the entries
this node added and refreshes each one every third of the TTL until it is removed.
Guarantees: an entry removed while its refresh is on its way is taken out again (a refresh
never brings back a client that left), one updated meanwhile is written again (a refresh never
brings back old info); an engine outage is logged and the refreshing goes on.
"""

from __future__ import annotations

import asyncio
import logging

from hubbub.core.types import ClientInfo
from hubbub.engines.base import PresenceManager

log = logging.getLogger(__name__)


class PresenceKeeper:
    """Adds, removes and refreshes this node's presence entries (see the module docstring)."""

    def __init__(self, presence: PresenceManager, ttl: float) -> None:
        self._presence = presence
        self._ttl = ttl
        self._entries: dict[tuple[str, str], ClientInfo] = {}

    async def add(self, channel: str, info: ClientInfo) -> None:
        self._entries[(channel, info.client)] = info
        await self._presence.add(channel, info, self._ttl)

    async def remove(self, channel: str, client_id: str) -> None:
        self._entries.pop((channel, client_id), None)
        await self._presence.remove(channel, client_id)

    async def refresh_forever(self) -> None:
        ttl = self._ttl
        while True:
            await asyncio.sleep(ttl / 3)
            for key, info in tuple(self._entries.items()):
                channel = key[0]
                try:
                    if self._entries.get(key) is not info:
                        continue  # left since the snapshot
                    await self._presence.add(channel, info, ttl)
                    now = self._entries.get(key)
                    if now is None:
                        # It left while the refresh was on its way: take it out again.
                        await self._presence.remove(channel, info.client)
                    elif now is not info:
                        # Updated meanwhile (new info): the update must win over the refresh.
                        await self._presence.add(channel, now, ttl)
                except Exception:  # an engine outage must not end the refresh loop
                    log.exception("presence refresh failed for %s", channel)
