"""Values that travel between the core, the node and the engines. Immutable."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from hubbub.core.jsontext import dumps


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """Who a connection is: its client id, user id (``""`` when anonymous) and app info.

    ``conn_info`` (per connection) and ``chan_info`` (per subscription) are JSON text or None.
    """

    client: str
    user: str
    conn_info: str | None = None
    chan_info: str | None = None

    def to_json(self) -> str:
        parts = [f'"client":{dumps(self.client)}', f'"user":{dumps(self.user)}']
        if self.conn_info is not None:
            parts.append(f'"conn_info":{self.conn_info}')
        if self.chan_info is not None:
            parts.append(f'"chan_info":{self.chan_info}')
        return "{" + ",".join(parts) + "}"

    def to_dict(self) -> dict[str, Any]:
        import json

        out: dict[str, Any] = {"client": self.client, "user": self.user}
        if self.conn_info is not None:
            out["conn_info"] = json.loads(self.conn_info)
        if self.chan_info is not None:
            out["chan_info"] = json.loads(self.chan_info)
        return out


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """A place in a channel's stream: the last offset within an epoch."""

    offset: int
    epoch: str

    def to_json(self) -> str:
        return f'{{"offset":{self.offset},"epoch":{dumps(self.epoch)}}}'


#: ``Publication.frame``: a text frame holding ``data`` as it is (JSON text; also every
#: publication that does not come from a raw room).
FRAME_TEXT: Final = ""
#: A text frame holding the string ``data`` is (text that is not JSON, kept as a JSON string).
FRAME_STRING: Final = "s"
#: A binary frame of the bytes whose base64 ``data`` holds as ``{"base64": "..."}``.
FRAME_BINARY: Final = "b"
FRAME_KINDS: Final = frozenset({FRAME_TEXT, FRAME_STRING, FRAME_BINARY})


@dataclass(frozen=True, slots=True)
class Publication:
    """One message in a channel. ``data`` is JSON text, exactly as published (compact from
    JSON clients and the server API; verbatim from Protobuf clients, so it may hold
    whitespace, newlines included); ``offset`` is 0 outside history.

    ``frame`` says how a raw-room message's frame is rebuilt from ``data``, so that raw
    members on every node get the same frame type and bytes (:data:`FRAME_TEXT`,
    :data:`FRAME_STRING`, :data:`FRAME_BINARY`); engines carry it beside the payload, history
    does not keep it.

    ``delta`` marks a publication its publisher wants sent as a delta against the previous
    one to subscribers that negotiated delta compression (``delta_publish`` in its namespace,
    ``delta: true`` in the server API); the engines carry it between nodes, history does not
    keep it (recovery and history always give the full data).
    """

    data: str
    offset: int = 0
    info: ClientInfo | None = None
    tags: dict[str, str] | None = None
    time_ms: int = 0
    frame: str = field(default="", compare=False)
    delta: bool = field(default=False, compare=False)


@dataclass(frozen=True, slots=True)
class HistoryResult:
    """Publications read from a stream, and the stream's current top position."""

    publications: list[Publication]
    position: StreamPosition
