"""The webhook events as JSON text, one object per event (the stable interface).

Every event has ``id`` (32 hex digits, the same on every retry), ``type``, ``time``
(milliseconds since 1970, when the node made the event) and ``node`` (the uid of the node that
made it); then, where they apply: ``client``, ``user``, ``channel``, ``info`` (the
connection's info, JSON as the token or hook gave it), ``code`` and ``reason`` (disconnect),
``data`` and ``offset`` (publish). No I/O here: the caller passes the id and the time.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from hubbub.core.jsontext import dumps
from hubbub.core.types import ClientInfo, Publication

CONNECT: Final = "connect"
DISCONNECT: Final = "disconnect"
SUBSCRIBE: Final = "subscribe"
UNSUBSCRIBE: Final = "unsubscribe"
CHANNEL_OCCUPIED: Final = "channel_occupied"
CHANNEL_VACATED: Final = "channel_vacated"
PUBLISH: Final = "publish"
#: Every event type, in the documentation's order.
TYPES: Final = (
    CONNECT,
    DISCONNECT,
    SUBSCRIBE,
    UNSUBSCRIBE,
    CHANNEL_OCCUPIED,
    CHANNEL_VACATED,
    PUBLISH,
)
_PUBLICATIONS: Final = uuid.UUID("7b0f5a5e-2f4e-4d3c-9a57-0d1f5c1f0b17")


def publication_id(channel: str, pub: Publication) -> str | None:
    """A publish event's id derived from its publication, so that an idempotent repeat of a
    publish (which returns the original) makes the same event; None without an offset."""
    if not pub.offset:
        return None
    return uuid.uuid5(_PUBLICATIONS, f"{channel}\0{pub.offset}\0{pub.time_ms}").hex


def event_json(
    kind: str,
    event_id: str,
    time_ms: int,
    node: str,
    *,
    client: ClientInfo | None = None,
    channel: str | None = None,
    code: int | None = None,
    reason: str | None = None,
    pub: Publication | None = None,
) -> str:
    """One event's JSON object (see the module docstring); JSON text given by clients (their
    info, a publication's data) is put in as it is."""
    fields: dict[str, Any] = {"id": event_id, "type": kind, "time": time_ms, "node": node}
    if channel is not None:
        fields["channel"] = channel
    if client is not None:
        fields["client"] = client.client
        fields["user"] = client.user
    if code is not None:
        fields["code"] = code
    if reason is not None:
        fields["reason"] = reason
    raw: list[tuple[str, str]] = []
    if client is not None and client.conn_info is not None:
        raw.append(("info", client.conn_info))
    if pub is not None:
        fields["offset"] = pub.offset
        raw.append(("data", pub.data))
    text = dumps(fields)
    if raw:
        text = text[:-1] + "".join(f",{dumps(k)}:{v}" for k, v in raw) + "}"
    return text


def body(payloads: list[str]) -> bytes:
    """A webhook request's body: the events' JSON objects as one array."""
    return ("[" + ",".join(payloads) + "]").encode()
