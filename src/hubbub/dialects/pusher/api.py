"""The Pusher HTTP API's methods, independent of HTTP: a checked request in, the JSON text of
the reply body out (as :mod:`hubbub.api` is for the Centrifugo server API).

The edge (:mod:`hubbub.server.pusherapi`) verifies the signature, parses the body or query
with :mod:`.httpapi` and calls one of these with the app the request is for:

- :func:`trigger` (``POST /apps/{id}/events``): the event on each channel, the ``socket_id``
  excluded; ``{}``, or with ``info`` ``{"channels": {name: {"subscription_count": n,
  "user_count": n}}}`` (``user_count`` for presence channels only), as Pusher answers;
- :func:`batch` (``POST /apps/{id}/batch_events``): the events in order; ``{}``, or when an
  event asks ``info``, ``{"batch": [{attributes of event 1's channel}, ...]}``;
- :func:`channels` (``GET /apps/{id}/channels``): ``{"channels": {name: {attributes}}}`` of
  the app's occupied channels starting with the prefix;
- :func:`channel` (``GET /apps/{id}/channels/{name}``): ``{"occupied": bool, ...}``;
- :func:`users` (``GET /apps/{id}/channels/{name}/users``): ``{"users": [{"id": ...}]}``;
- :func:`terminate_connections`: closes every connection the user signed in with, on every
  node (4009), ``{}``.

Guarantees:

- Only the app's own channels are seen: a node channel is listed when
  :func:`~hubbub.pushersettings.pusher_channel` names it for the app and that name is a valid
  Pusher channel name, so another app's channels, a Centrifugo channel outside the app's
  namespace, and one inside it that no Pusher client could name (``ns:a b``) never appear.
- Occupancy and ``subscription_count`` are cluster-wide: the sum over every live node of its
  members of the channel (Pusher connections and, in a shared namespace, Centrifugo clients),
  read from the nodes' announcements (:meth:`hubbub.node.Node.cluster`, as the server API's
  ``channels``): this node's count is current, another node's as of its last announcement
  (at most about a second old). ``user_count`` and ``users`` are the distinct users of the
  channel's presence, which the engine keeps for the whole cluster.
- ``subscription_count`` and ``user_count`` are read after the event is published.

Raises what :meth:`hubbub.node.Node.publish` and :meth:`~hubbub.node.Node.control` raise
(StoreError when the engine fails); a batch stops at the first event that fails, the ones
before it published.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any, Final

from hubbub.control import Control
from hubbub.core.jsontext import dumps
from hubbub.dialects.pusher import events, wire
from hubbub.dialects.pusher.httpapi import ChannelQuery, ChannelsQuery, Trigger
from hubbub.dialects.pusher.protocol import channel_kind, channel_name_problem
from hubbub.dialects.pusher.session import TERMINATED as TERMINATED
from hubbub.node import Node
from hubbub.pushersettings import PusherApp, node_channel, pusher_channel, user_key

#: Presence reads in flight at once for one listing with ``user_count``.
PRESENCE_READS: Final = 32


async def occupancy(node: Node, app: PusherApp) -> dict[str, int]:
    """``{Pusher channel: subscriptions across the cluster}`` of ``app``'s occupied channels."""
    counts: dict[str, int] = {}
    for snapshot in await node.cluster():
        listed = snapshot.get("channels")
        if not isinstance(listed, dict):
            continue
        for channel, count in listed.items():
            name = pusher_channel(app, channel) if isinstance(channel, str) else None
            if name is None or not isinstance(count, int) or count <= 0:
                continue
            if channel_name_problem(name) is None:
                counts[name] = counts.get(name, 0) + count
    return counts


async def user_count(node: Node, app: PusherApp, name: str) -> int:
    """The distinct users in presence channel ``name``."""
    _, users_in = await node.presence.stats(node_channel(app, name))
    return users_in


async def _attributes(
    node: Node,
    app: PusherApp,
    names: Iterable[str],
    info: frozenset[str],
    counts: Mapping[str, int],
) -> dict[str, dict[str, int]]:
    """The ``info`` attributes of each channel of ``names`` (``user_count`` for presence
    channels only), ``counts`` the cluster's subscriptions."""
    out: dict[str, dict[str, int]] = {}
    presence: list[str] = []
    for name in names:
        attributes: dict[str, int] = {}
        if "subscription_count" in info:
            attributes["subscription_count"] = counts.get(name, 0)
        if "user_count" in info and channel_kind(name).is_presence:
            presence.append(name)
        out[name] = attributes
    for start in range(0, len(presence), PRESENCE_READS):
        chunk = presence[start : start + PRESENCE_READS]
        found = await asyncio.gather(*(user_count(node, app, name) for name in chunk))
        for name, users_in in zip(chunk, found, strict=True):
            out[name]["user_count"] = users_in
    return out


async def _publish(node: Node, app: PusherApp, event: Trigger) -> None:
    data = wire.api_data(event.data)
    for name in event.channels:
        await events.publish(node, app, name, event.name, data, socket_id=event.socket_id)


async def trigger(node: Node, app: PusherApp, event: Trigger) -> str:
    """``POST /apps/{id}/events``: publish, then the ``info`` asked of each channel."""
    await _publish(node, app, event)
    if not event.info:
        return "{}"
    counts = await occupancy(node, app) if "subscription_count" in event.info else {}
    return dumps({"channels": await _attributes(node, app, event.channels, event.info, counts)})


async def batch(node: Node, app: PusherApp, batch_events: Iterable[Trigger]) -> str:
    """``POST /apps/{id}/batch_events``: publish each event in order, then the ``info``
    each asked of its channel (``{}`` for one that asked none)."""
    listed = tuple(batch_events)
    for event in listed:
        await _publish(node, app, event)
    if not any(event.info for event in listed):
        return "{}"
    wanted = frozenset().union(*(event.info for event in listed))
    counts = await occupancy(node, app) if "subscription_count" in wanted else {}
    replies: list[dict[str, int]] = []
    for event in listed:
        found = await _attributes(node, app, event.channels, event.info, counts)
        replies.append(found[event.channels[0]])
    return dumps({"batch": replies})


async def channels(node: Node, app: PusherApp, query: ChannelsQuery) -> str:
    """``GET /apps/{id}/channels``: the occupied channels starting with the prefix."""
    counts = await occupancy(node, app)
    names = sorted(name for name in counts if name.startswith(query.prefix))
    return dumps({"channels": await _attributes(node, app, names, query.info, counts)})


async def channel(node: Node, app: PusherApp, query: ChannelQuery) -> str:
    """``GET /apps/{id}/channels/{name}``: ``occupied`` and the ``info`` asked."""
    counts = await occupancy(node, app)
    body: dict[str, Any] = {"occupied": counts.get(query.channel, 0) > 0}
    found = await _attributes(node, app, (query.channel,), query.info, counts)
    body.update(found[query.channel])
    return dumps(body)


async def users(node: Node, app: PusherApp, name: str) -> str:
    """``GET /apps/{id}/channels/{name}/users``: the distinct users of presence channel
    ``name``, sorted by id."""
    entries = await node.presence.presence(node_channel(app, name))
    ids = sorted({info.user for info in entries.values() if info.user})
    return dumps({"users": [{"id": user_id} for user_id in ids]})


async def terminate_connections(node: Node, app: PusherApp, user_id: str) -> str:
    """``POST /users/{id}/terminate_connections``: close the connections signed in as
    ``user_id`` to ``app`` on every node (:data:`TERMINATED`, the session's: 4009)."""
    code, reason = TERMINATED
    await node.control(
        Control(kind="disconnect", user=user_key(app, user_id), code=code, reason=reason)
    )
    return "{}"
