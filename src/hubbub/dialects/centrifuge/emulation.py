"""Bidirectional emulation of the Centrifugo client protocol (``/connection/http_stream``,
``/connection/sse`` and ``/emulation``): a server-to-client HTTP stream carries replies and
pushes, and the client's commands come as separate ``/emulation`` requests naming the
stream's session.

An :class:`EmulatedConnection` is one such connection as
:func:`hubbub.dialects.centrifuge.connection.run_centrifuge` serves it: the frames it
receives are the stream's connect request, then what ``/emulation`` requests bring
(:meth:`EmulatedConnection.feed`); what is posted goes to the stream. :class:`Sessions` finds
a connection of this node by its session id (the connect result hands it out with this
node's uid), for requests made here and for those another node forwards (the survey op
:data:`OP`). Guarantees:

- Frames are received in the order they were fed; at most :data:`MAX_WAITING` wait for the
  connection to take them, more are refused (:attr:`Delivery.BUSY`), so a client that sends
  faster than its commands are handled cannot grow the node. Rate limits are the commands'
  own, as over a WebSocket (a flood is disconnected with 3013).
- Keepalive as over a WebSocket: the codec's ping is posted every ``ping_interval``; a
  client that makes no ``/emulation`` request (its pong) within ``pong_timeout`` of a ping is
  disconnected with 3012 "no pong".
- A session id is a random UUID, known only to the client it was handed to: it is what
  lets a request speak for that connection. Once the connection closes it is unknown
  (:attr:`Delivery.UNKNOWN`).
- A feed's data must suit the connection's codec: text for JSON, bytes for Protobuf (JSON
  text sent for a Protobuf session, or bytes that are not UTF-8 for a JSON one, are
  :attr:`Delivery.BAD`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import enum
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from google.protobuf.message import DecodeError  # type: ignore[import-untyped, unused-ignore]

from hubbub.core.jsontext import NotJSON, loads
from hubbub.dialects.centrifuge.codec import Codec
from hubbub.dialects.centrifuge.connection import NO_PONG
from hubbub.dialects.centrifuge.proto import client_pb2 as pb
from hubbub.transport import Transport

#: Frames fed to one connection and not taken yet; more are refused.
MAX_WAITING: Final = 32
#: The survey op by which a node hands an emulation request to the node of its session.
OP: Final = "emulation"
#: Longest session id or node uid a request may name (theirs are 36-character UUIDs).
MAX_ID: Final = 64


class Delivery(enum.Enum):
    """What became of an emulation request (the survey answer between nodes is its value)."""

    DELIVERED = "delivered"
    UNKNOWN = "unknown session"
    BUSY = "too many requests waiting for this session"
    BAD = "data does not suit the session's protocol"


class BadEmulation(ValueError):
    """An emulation request that is not one."""


@dataclass(frozen=True, slots=True)
class EmulationRequest:
    """Commands (``data``: one frame of the session's codec) for ``session`` on ``node``."""

    node: str
    session: str
    data: str | bytes


def decode_request(body: bytes, protobuf: bool) -> EmulationRequest:
    """The request in a POST body: Centrifugo's ``EmulationRequest`` as JSON (``data`` a
    JSON string holding the commands' text) or, for ``protobuf``, as Protobuf (``data``
    bytes). Raises :class:`BadEmulation`."""
    if protobuf:
        try:
            msg = pb.EmulationRequest.FromString(body)
        except DecodeError:
            raise BadEmulation("not a Protobuf EmulationRequest") from None
        node, session, data = msg.node, msg.session, msg.data
    else:
        try:
            obj: Any = loads(body)
        except NotJSON:
            raise BadEmulation("not JSON") from None
        if not isinstance(obj, dict):
            raise BadEmulation("not a JSON object")
        node, session, data = obj.get("node", ""), obj.get("session"), obj.get("data")
        if not isinstance(node, str) or not isinstance(session, str):
            raise BadEmulation("node and session must be strings")
        if not isinstance(data, str):
            raise BadEmulation("data must be a string holding the commands")
    if not session or len(session) > MAX_ID or len(node) > MAX_ID:
        raise BadEmulation("no session, or an id that cannot be one")
    if not data:
        raise BadEmulation("no commands")
    return EmulationRequest(node, session, data)


def survey_params(request: EmulationRequest) -> dict[str, str]:
    """The request as the params of the :data:`OP` survey (JSON: bytes in base64)."""
    if isinstance(request.data, bytes):
        return {"session": request.session, "b64": base64.b64encode(request.data).decode()}
    return {"session": request.session, "data": request.data}


class Stream(Transport, Protocol):
    """The server-to-client stream of an emulated connection."""

    @property
    def closed_with(self) -> tuple[int, str] | None: ...

    def release(self) -> None: ...


class EmulatedConnection:
    """One emulated connection: a :class:`Stream` out, fed frames in; see the module."""

    __slots__ = (
        "_beat",
        "_ended",
        "_frames",
        "_last_seen",
        "_loop",
        "_ping",
        "_ping_interval",
        "_ping_sent_at",
        "_pong_deadline",
        "_pong_timeout",
        "_stream",
        "_wake",
        "codec",
        "session",
    )

    def __init__(
        self, stream: Stream, codec: Codec, ping_interval: float, pong_timeout: float
    ) -> None:
        self.session = str(uuid.uuid4())
        self.codec = codec
        self._stream = stream
        self._frames: deque[str | bytes] = deque()
        self._wake = asyncio.Event()
        self._ended = False
        self._loop = asyncio.get_running_loop()
        self._ping = codec.ping
        self._ping_interval = ping_interval
        self._pong_timeout = pong_timeout
        self._last_seen = self._ping_sent_at = self._loop.time()
        self._beat: asyncio.TimerHandle | None = self._loop.call_later(
            ping_interval, self._beat_due
        )
        self._pong_deadline: asyncio.TimerHandle | None = None

    @property
    def id(self) -> str:
        return self._stream.id

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def closed_with(self) -> tuple[int, str] | None:
        return self._stream.closed_with

    def post(self, message: str | bytes) -> None:
        self._stream.post(message)

    def close(self, code: int, reason: str) -> None:
        """Close the stream with its farewell for ``code``; frames not taken are dropped."""
        self._stream.close(code, reason)
        self.end()

    def end(self) -> None:
        """The stream is over (closed, or its peer went away): :meth:`receive` returns None."""
        if self._ended:
            return
        self._ended = True
        self._frames.clear()
        self._wake.set()
        for timer in (self._beat, self._pong_deadline):
            if timer is not None:
                timer.cancel()
        self._beat = self._pong_deadline = None

    def release(self) -> None:
        self.end()
        self._stream.release()

    def feed(self, data: str | bytes) -> Delivery:
        """A frame of commands for the connection (counts as a sign of life)."""
        if self._ended:
            return Delivery.UNKNOWN
        if self.codec.binary:
            if isinstance(data, str):
                return Delivery.BAD
        elif isinstance(data, bytes):
            try:
                data = data.decode()
            except UnicodeDecodeError:
                return Delivery.BAD
        if len(self._frames) >= MAX_WAITING:
            return Delivery.BUSY
        self._frames.append(data)
        self._last_seen = self._loop.time()
        self._wake.set()
        return Delivery.DELIVERED

    async def receive(self) -> str | bytes | None:
        """The next frame fed, in order; None once the stream is over."""
        frames = self._frames
        while not frames:
            if self._ended:
                return None
            self._wake.clear()
            await self._wake.wait()
        return frames.popleft()

    def _beat_due(self) -> None:
        self._beat = self._loop.call_later(self._ping_interval, self._beat_due)
        self._stream.post(self._ping)
        if self._pong_deadline is None:
            self._ping_sent_at = self._loop.time()
            self._pong_deadline = self._loop.call_later(self._pong_timeout, self._pong_due)

    def _pong_due(self) -> None:
        self._pong_deadline = None
        if self._last_seen < self._ping_sent_at:
            self.close(*NO_PONG)


class Sessions:
    """This node's emulated connections by session id."""

    __slots__ = ("_by_id",)

    def __init__(self) -> None:
        self._by_id: dict[str, EmulatedConnection] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def add(self, conn: EmulatedConnection) -> None:
        self._by_id[conn.session] = conn

    def discard(self, conn: EmulatedConnection) -> None:
        if self._by_id.get(conn.session) is conn:
            del self._by_id[conn.session]

    def deliver(self, session: str, data: str | bytes) -> Delivery:
        """Feed ``data`` to the connection of ``session``, if it is here."""
        conn = self._by_id.get(session)
        if conn is None:
            return Delivery.UNKNOWN
        return conn.feed(data)

    def answer(self, op: str, params: Mapping[str, Any]) -> str:
        """The answer to the :data:`OP` survey (:data:`hubbub.survey.Responder`): the
        :class:`Delivery`'s value. ValueError for bad params."""
        session = params.get("session")
        if op != OP or not isinstance(session, str):
            raise ValueError("emulation survey without session")
        data: str | bytes | None = params.get("data")
        if data is None:
            try:
                data = base64.b64decode(str(params.get("b64", "")), validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("emulation survey with bad data") from None
        if not isinstance(data, str | bytes) or not data:
            raise ValueError("emulation survey without data")
        return self.deliver(session, data).value
