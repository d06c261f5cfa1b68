"""Pusher events as publications, and publications as Pusher frames (one app's wire).

A Pusher event travels through the node as a :class:`~hubbub.core.types.Publication` of the
app's node channel (:mod:`hubbub.pushersettings`), so that it is fanned out, stored (cache
channels, or a mapped namespace with history) and carried between nodes like any other:

- the event name is the tag :data:`EVENT_TAG`; a publication without it (one a Centrifugo
  client or the server API made) reaches Pusher clients as :data:`DEFAULT_EVENT`;
- the data: the HTTP API gives a string. A string holding a JSON object or array (what every
  server library sends for a dict or list) is kept as that JSON text, verbatim, so a
  Centrifugo client gets the object; any other string is kept as a JSON string. A client
  event's data (a JSON value) is kept as its JSON text (:func:`client_data`). Pusher clients
  get the data back as a string (:func:`event_data`): the string itself, or the JSON text of
  anything else, so a Pusher client gets exactly the string the HTTP API was given;
- the sender: ``info.client`` is its socket id (members never get what their own socket sent,
  the HTTP API's ``socket_id`` exclusion) and, for a client event on a presence channel,
  ``info.user`` its user id (``user_id`` in the frame).

Presence joins and leaves are ``pusher_internal:member_added``/``member_removed``: the
member's ``user_info`` travels as ``chan_info``. Whether a join is sent at all (once per user)
is the session's decision (:mod:`.session`), not the wire's.

Guarantee: every method is pure and returns the same text for the same arguments (the node
encodes a publication once per wire and posts that text to every member of the app).
"""

from __future__ import annotations

from typing import Any, Final

from hubbub.core.jsontext import NotJSON, dumps, loads
from hubbub.core.types import ClientInfo, Publication
from hubbub.dialects.pusher import protocol
from hubbub.pushersettings import PusherApp, pusher_channel

#: The publication tag holding the Pusher event name.
EVENT_TAG: Final = "pusher_event"
#: The event name of a publication without :data:`EVENT_TAG`.
DEFAULT_EVENT: Final = "message"


def api_data(data: str) -> str:
    """The publication data (JSON text) of an HTTP API event's ``data`` string."""
    head = data.lstrip()[:1]
    if head in ("{", "["):
        try:
            loads(data)
        except NotJSON:
            pass
        else:
            return data
    return dumps(data)


def client_data(value: Any) -> str:
    """The publication data of a client event's ``data`` (a parsed JSON value)."""
    return dumps(value)


def event_data(data: str) -> str:
    """What a Pusher client gets as ``data`` for publication data ``data`` (JSON text)."""
    if data.lstrip()[:1] == '"':
        try:
            value = loads(data)
        except NotJSON:
            return data
        if isinstance(value, str):
            return value
    return data


def event_name(pub: Publication) -> str:
    """The Pusher event name of ``pub``."""
    tags = pub.tags
    if tags:
        name = tags.get(EVENT_TAG)
        if name:
            return name
    return DEFAULT_EVENT


def member_of(info: ClientInfo) -> protocol.Member | None:
    """The presence member a presence entry (or join/leave) names; None for an anonymous
    one (a Centrifugo client without a user in a shared channel)."""
    if not info.user:
        return None
    user_info = None
    if info.chan_info is not None:
        try:
            user_info = loads(info.chan_info)
        except NotJSON:
            user_info = None
    return protocol.Member(info.user, user_info)


class PusherWire:
    """One app's Pusher frames as a wire (:class:`hubbub.wire.Wire`)."""

    __slots__ = ("app",)

    own_messages: Final = False

    def __init__(self, app: PusherApp) -> None:
        self.app = app

    def _name(self, channel: str) -> str:
        return pusher_channel(self.app, channel) or channel

    def publication(self, channel: str, pub: Publication) -> str:
        name = self._name(channel)
        event = event_name(pub)
        user_id = None
        info = pub.info
        if (
            info is not None
            and info.user
            and event.startswith(protocol.CLIENT_EVENT_PREFIX)
            and protocol.channel_kind(name).is_presence
        ):
            user_id = info.user
        return protocol.encode_event(event, name, event_data(pub.data), user_id)

    def join(self, channel: str, info: ClientInfo) -> str | None:
        name = self._name(channel)
        member = member_of(info)
        if member is None or not protocol.channel_kind(name).is_presence:
            return None
        return protocol.encode_member_added(name, member)

    def leave(self, channel: str, info: ClientInfo) -> str | None:
        name = self._name(channel)
        if not info.user or not protocol.channel_kind(name).is_presence:
            return None
        return protocol.encode_member_removed(name, info.user)
