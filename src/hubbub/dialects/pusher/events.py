"""Publishing a Pusher event through the node: the one way the dialect's WebSocket sessions
(client events) and its HTTP API (``/events``, ``/batch_events``) put events on a channel.

- The event becomes a publication of the app's node channel (:mod:`hubbub.pushersettings`)
  as :mod:`.wire` describes: data as JSON text, the event name in its tags, the sender's
  socket id (and user, for client events) as its info.
- Options are the node channel's (``node.options``): a cache channel (``cache-``,
  ``private-cache-``, ...) keeps at least its last event, whoever publishes to it
  (:func:`hubbub.pushersettings.cache_options`).
- :func:`last_event` reads that kept event back for a subscriber (None: a cache miss).

Raises what :meth:`hubbub.node.Node.publish` raises (StoreError when it could not be stored).
"""

from __future__ import annotations

from hubbub.core.publishlatency import Source
from hubbub.core.types import ClientInfo, Publication
from hubbub.dialects.pusher.wire import EVENT_TAG
from hubbub.node import Node
from hubbub.pushersettings import PusherApp, node_channel


async def publish(
    node: Node,
    app: PusherApp,
    name: str,
    event: str,
    data: str,
    *,
    socket_id: str | None = None,
    user_id: str = "",
    source: Source = Source.API,
    keep: bool = True,
) -> Publication:
    """Publish ``event`` with ``data`` (publication data: JSON text, see :mod:`.wire`) on
    ``app``'s channel ``name``; ``socket_id``: the sender, who does not get it; ``keep``
    False: never stored (client events), whatever the channel's history."""
    channel = node_channel(app, name)
    info = ClientInfo(client=socket_id, user=user_id) if socket_id else None
    return await node.publish(
        channel,
        data,
        info=info,
        tags={EVENT_TAG: event},
        skip_history=not keep,
        source=source,
    )


async def last_event(node: Node, channel: str) -> Publication | None:
    """The event a cache channel keeps (its newest publication), or None."""
    result = await node.broker.history(channel, since_offset=None, limit=1, reverse=True)
    return result.publications[0] if result.publications else None
