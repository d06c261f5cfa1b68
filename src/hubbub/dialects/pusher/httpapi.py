"""The Pusher HTTP API's requests, parsed and checked (pure: no I/O, no signature check).

The edge verifies the signature first (:func:`.signing.verify_api_request`), then hands the
body or the verified query here and gets a typed request or an :class:`~.errors.ApiError`
carrying the HTTP status to answer (400 malformed, 413 data too large).

- ``POST /apps/{id}/events``: :func:`parse_trigger` -> :class:`Trigger`
- ``POST /apps/{id}/batch_events``: :func:`parse_batch` -> a tuple of :class:`Trigger`
- ``GET /apps/{id}/channels``: :func:`parse_channels_query` -> :class:`ChannelsQuery`
- ``GET /apps/{id}/channels/{name}``: :func:`parse_channel_query` -> :class:`ChannelQuery`
- ``GET /apps/{id}/channels/{name}/users``: :func:`check_users_channel`
- ``POST [/apps/{id}]/users/{id}/terminate_connections``: :func:`check_user_id`
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from hubbub.dialects.pusher.errors import ApiError
from hubbub.dialects.pusher.protocol import (
    MAX_EVENT_DATA,
    MAX_EVENT_NAME,
    ChannelKind,
    channel_kind,
    channel_name_problem,
    is_valid_socket_id,
)

#: The most channels one ``POST /events`` may name.
MAX_TRIGGER_CHANNELS: Final = 100
#: The most events one ``POST /batch_events`` may carry.
MAX_BATCH_EVENTS: Final = 10
#: The ``info`` attributes a trigger or a channel query may ask for.
INFO_ATTRIBUTES: Final = frozenset({"user_count", "subscription_count"})


@dataclass(frozen=True, slots=True)
class Trigger:
    """One event to publish: ``name`` and ``data`` (the string clients get as ``data``) on
    each of ``channels`` (1-100, valid, no duplicates, in the order given), not to the
    connection ``socket_id`` if set; ``info`` the attributes to answer per channel."""

    name: str
    data: str
    channels: tuple[str, ...]
    socket_id: str | None = None
    info: frozenset[str] = frozenset()


def _bad(message: str) -> ApiError:
    return ApiError(400, message)


def _load_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _bad("Request body is not valid JSON (UTF-8)") from None
    if not isinstance(value, dict):
        raise _bad("Request body must be a JSON object")
    return value


def _info(value: object) -> frozenset[str]:
    """A comma-separated ``info`` list as a set; unknown attributes are refused (400)."""
    if value is None or value == "":
        return frozenset()
    if not isinstance(value, str):
        raise _bad("info must be a comma-separated string")
    attributes = frozenset(part.strip() for part in value.split(",") if part.strip())
    unknown = attributes - INFO_ATTRIBUTES
    if unknown:
        raise _bad(f"Unknown info attributes: {', '.join(sorted(unknown))}")
    return attributes


def _channel(value: object) -> str:
    problem = channel_name_problem(value)
    if problem is not None:
        raise _bad(f"Invalid channel name {value!r}: {problem}")
    assert isinstance(value, str)
    return value


def _event(item: Mapping[str, Any], *, batch: bool) -> Trigger:
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise _bad("Event name is required")
    if len(name) > MAX_EVENT_NAME:
        raise _bad(f"Event name longer than {MAX_EVENT_NAME} characters")
    data = item.get("data")
    if not isinstance(data, str):
        raise _bad("Event data is required and must be a string")
    if len(data.encode()) > MAX_EVENT_DATA:
        raise ApiError(413, f"Event data over {MAX_EVENT_DATA} bytes")
    single, many = item.get("channel"), item.get("channels")
    if batch:
        if many is not None:
            raise _bad("A batch event names one channel (channel), not channels")
        channels: tuple[str, ...] = (_channel(single),)
    else:
        if (single is None) == (many is None):
            raise _bad("Give either channel or channels")
        if many is None:
            channels = (_channel(single),)
        else:
            if not isinstance(many, list) or not many:
                raise _bad("channels must be a non-empty array")
            if len(many) > MAX_TRIGGER_CHANNELS:
                raise _bad(f"At most {MAX_TRIGGER_CHANNELS} channels per event")
            channels = tuple(dict.fromkeys(_channel(c) for c in many))
    socket_id = item.get("socket_id")
    if socket_id is not None and not is_valid_socket_id(socket_id):
        raise _bad(f"Invalid socket_id {socket_id!r}")
    return Trigger(name, data, channels, socket_id, _info(item.get("info")))


def parse_trigger(body: bytes) -> Trigger:
    """The body of ``POST /apps/{id}/events``.

    ``{"name", "data", "channels": [...] | "channel", "socket_id"?, "info"?}``. Refused: not
    a JSON object, no name or a name over 200 characters, ``data`` not a string (400) or over
    10 KiB of UTF-8 (413), both or neither of channel/channels, over 100 channels, an invalid
    channel name or socket id, an unknown info attribute (400).
    """
    return _event(_load_object(body), batch=False)


def parse_batch(body: bytes) -> tuple[Trigger, ...]:
    """The body of ``POST /apps/{id}/batch_events``: ``{"batch": [event, ...]}``.

    Each event as in :func:`parse_trigger` but with exactly one ``channel``; 1 to 10 events.
    The whole batch is refused if one event is.
    """
    batch = _load_object(body).get("batch")
    if not isinstance(batch, list) or not batch:
        raise _bad("batch must be a non-empty array of events")
    if len(batch) > MAX_BATCH_EVENTS:
        raise _bad(f"At most {MAX_BATCH_EVENTS} events per batch")
    events = []
    for item in batch:
        if not isinstance(item, dict):
            raise _bad("Each batch entry must be an object")
        events.append(_event(item, batch=True))
    return tuple(events)


@dataclass(frozen=True, slots=True)
class ChannelsQuery:
    """``GET /apps/{id}/channels``: occupied channels whose name starts with ``prefix``
    (every channel when empty), with the ``info`` attributes for each."""

    prefix: str = ""
    info: frozenset[str] = frozenset()


def parse_channels_query(params: Mapping[str, str]) -> ChannelsQuery:
    """The verified query of ``GET /apps/{id}/channels`` (``filter_by_prefix``, ``info``).

    ``user_count`` counts presence members, so it is refused (400) unless
    ``filter_by_prefix`` limits the answer to presence channels (starts with ``presence-``).
    """
    prefix = params.get("filter_by_prefix", "")
    info = _info(params.get("info"))
    if "user_count" in info and not prefix.startswith("presence-"):
        raise _bad(
            "user_count may only be requested for presence channels (filter_by_prefix=presence-)"
        )
    return ChannelsQuery(prefix, info)


@dataclass(frozen=True, slots=True)
class ChannelQuery:
    """``GET /apps/{id}/channels/{name}``: one channel and the ``info`` attributes asked."""

    channel: str
    info: frozenset[str] = frozenset()


def parse_channel_query(channel: str, params: Mapping[str, str]) -> ChannelQuery:
    """The channel of the path and the verified query of ``GET /apps/{id}/channels/{name}``.

    Refused (400): an invalid channel name, an unknown info attribute, ``user_count`` on a
    channel that is not a presence channel.
    """
    name = _channel(channel)
    info = _info(params.get("info"))
    if "user_count" in info and not channel_kind(name).is_presence:
        raise _bad("user_count may only be requested for presence channels")
    return ChannelQuery(name, info)


def check_users_channel(channel: str) -> str:
    """The channel of ``GET /apps/{id}/channels/{name}/users``: a valid presence channel
    name, else 400."""
    name = _channel(channel)
    if not channel_kind(name).is_presence:
        raise _bad("Users can only be listed for presence channels")
    return name


def check_user_id(user_id: str) -> str:
    """The user of ``POST /users/{id}/terminate_connections``: the characters and length a
    channel name may have (what the server libraries check), else 400."""
    problem = channel_name_problem(user_id)
    if problem is not None or channel_kind(user_id) is ChannelKind.SERVER_TO_USER:
        raise _bad(f"Invalid user id {user_id!r}")
    return user_id
