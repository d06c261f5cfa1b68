"""The bidirectional emulation's sessions and deliveries, whatever edge serves them: the
connect command a stream starts with, and where an ``/emulation`` request's commands go
(this node's session, or its node's through a survey). The aiohttp routes
(:mod:`hubbub.server.emulation`, which says what each endpoint answers) and the ASGI edge
(:mod:`hubbub.server.asgi_stream`) both use a :class:`Desk`; refusals are
:class:`EmulationRefused` with the HTTP status and text to answer with.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final, Protocol

from hubbub.core import messages as m
from hubbub.dialects.centrifuge.codec import Codec, ProtocolViolation
from hubbub.dialects.centrifuge.emulation import (
    OP,
    Delivery,
    EmulationRequest,
    Sessions,
    survey_params,
)
from hubbub.errors import ClientError, HubbubError, StoreError
from hubbub.node import Node
from hubbub.survey import SurveyTimeout


class EmulationRefused(HubbubError):
    """An emulation request or stream refused: ``status`` and ``text`` to answer with."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status, self.text = status, text


#: The request's ``Content-Type`` that means Protobuf (Centrifugo's test: the header as
#: sent, so that a body without one is JSON; aiohttp's ``content_type`` would say
#: ``application/octet-stream`` then).
PROTOBUF_TYPE: Final = "application/octet-stream"


def is_protobuf(content_type: str) -> bool:
    """Whether a request's ``Content-Type`` header (as sent) says Protobuf."""
    return content_type.split(";")[0].strip().lower() == PROTOBUF_TYPE


#: Seconds a list of the cluster's nodes is trusted before an unknown uid re-reads it.
NODES_TTL: Final = 1.0
#: HTTP status of each delivery.
STATUS: Final = {
    Delivery.DELIVERED: 204,
    Delivery.UNKNOWN: 404,
    Delivery.BUSY: 429,
    Delivery.BAD: 400,
}


def binary_framing(message: str | bytes) -> bytes:
    """Protobuf replies as they are: each one is length-delimited already."""
    return message if isinstance(message, bytes) else message.encode()


def connect_data(codec: Codec, data: str | bytes) -> str | bytes:
    """``data`` when it is a frame of ``codec`` starting with a connect command; else 400."""
    if not data:
        raise EmulationRefused(400, "no connect command\n")
    try:
        frames = codec.decode(data)
    except ProtocolViolation as exc:
        raise EmulationRefused(400, f"bad connect command: {exc}\n") from None
    if not frames or not isinstance(frames[0].request, m.Connect):
        raise EmulationRefused(400, "the first command must be a connect\n")
    return data


def connect_text(body: bytes) -> str:
    """A JSON connect command's body as text; 400 when it is not UTF-8."""
    try:
        return body.decode()
    except UnicodeDecodeError:
        raise EmulationRefused(400, "the connect command is not UTF-8\n") from None


class Cluster(Protocol):
    async def cluster(self) -> list[dict[str, Any]]: ...


class Nodes:
    """The uids of the cluster's live nodes, read again once :data:`NODES_TTL` has passed
    since the last read, by the first request that comes then: a request naming a made-up
    node costs no engine round trip more than once a second, a node that died (whose
    announcement expired) is unknown a second after it left the cluster's list, and requests
    arriving during a read wait for it (none is answered "unknown node" for a node that is
    known, e.g. the first ones a new node gets)."""

    __slots__ = ("_cluster", "_read_at", "_reading", "_uids")

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._uids: frozenset[str] = frozenset()
        self._read_at = -NODES_TTL
        self._reading: asyncio.Task[None] | None = None

    async def known(self, uid: str) -> bool:
        """Whether ``uid`` is a live node's. StoreError when the list cannot be read."""
        if self._reading is None and time.monotonic() - self._read_at >= NODES_TTL:
            self._read_at = time.monotonic()
            self._reading = asyncio.get_running_loop().create_task(self._read())
            self._reading.add_done_callback(_retrieved)
        if self._reading is not None:
            await asyncio.shield(self._reading)
        return uid in self._uids

    async def _read(self) -> None:
        try:
            self._uids = frozenset(str(n.get("uid")) for n in await self._cluster.cluster())
        finally:
            self._reading = None


def _retrieved(task: asyncio.Task[None]) -> None:
    """Its exception is seen (each waiter raised it), even when no one waited."""
    if not task.cancelled():
        task.exception()


class Desk:
    """The emulated sessions of one node (registered for the :data:`OP` survey, so that
    other nodes hand this one the requests for its sessions) and their deliveries."""

    __slots__ = ("_node", "_nodes", "sessions")

    def __init__(self, node: Node) -> None:
        self._node = node
        self.sessions = Sessions()
        node.surveys.register(OP, self.sessions.answer)
        self._nodes = Nodes(node)

    async def deliver(self, emulated: EmulationRequest) -> Delivery:
        """Hand the commands to their session, here or on its node; 404 for an unknown node,
        503 when it cannot be reached."""
        node = self._node
        if not emulated.node or emulated.node == node.uid:
            return self.sessions.deliver(emulated.session, emulated.data)
        try:
            if not await self._nodes.known(emulated.node):
                raise EmulationRefused(404, "unknown node\n")
            answer = await node.surveys.ask_node(OP, survey_params(emulated), emulated.node)
        except (SurveyTimeout, StoreError, ClientError) as exc:
            raise EmulationRefused(503, f"the session's node cannot be reached: {exc}\n") from None
        try:
            return Delivery(answer)
        except ValueError:
            raise EmulationRefused(503, "the session's node gave no answer\n") from None
