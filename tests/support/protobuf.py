"""Speaking the channel protocol's Protobuf format by hand in tests: the schema of
centrifuge-python's own generated code (not hubbub's codec), on an aiohttp WebSocket with the
``centrifuge-protobuf`` subprotocol.

Replies and pushes come back as dicts shaped like the JSON protocol's (field names as there),
except that payload fields (``data``, ``conn_info``, ``chan_info``) are ``bytes``, as a
Protobuf client sees them.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import aiohttp
from centrifuge.protocol import client_pb2 as pb
from google.protobuf.internal.decoder import _DecodeVarint  # type: ignore[attr-defined]
from google.protobuf.internal.encoder import _VarintBytes  # type: ignore[attr-defined]
from google.protobuf.json_format import MessageToDict

from tests.support.timing import eventually, scaled

WS = aiohttp.ClientWebSocketResponse
SUBPROTOCOL = "centrifuge-protobuf"
_PAYLOADS = frozenset({"data", "conn_info", "chan_info"})

_REQUESTS = {
    "connect": pb.ConnectRequest,
    "subscribe": pb.SubscribeRequest,
    "unsubscribe": pb.UnsubscribeRequest,
    "publish": pb.PublishRequest,
    "presence": pb.PresenceRequest,
    "presence_stats": pb.PresenceStatsRequest,
    "history": pb.HistoryRequest,
    "ping": pb.PingRequest,
    "send": pb.SendRequest,
    "rpc": pb.RPCRequest,
    "refresh": pb.RefreshRequest,
    "sub_refresh": pb.SubRefreshRequest,
}


def command(cid: int, method: str, params: dict[str, Any] | None = None) -> bytes:
    """One length-delimited Command; ``params`` as keyword arguments of the request (data as
    bytes)."""
    cmd = pb.Command(id=cid)
    getattr(cmd, method).CopyFrom(_REQUESTS[method](**(params or {})))
    body = cmd.SerializeToString()
    return _VarintBytes(len(body)) + body


def split(frame: bytes) -> list[pb.Reply]:
    """The length-delimited Replies of one binary frame."""
    replies, pos = [], 0
    while pos < len(frame):
        size, pos = _DecodeVarint(frame, pos)
        reply = pb.Reply()
        reply.ParseFromString(frame[pos : pos + size])
        replies.append(reply)
        pos += size
    return replies


def _payloads(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: base64.b64decode(v) if k in _PAYLOADS and isinstance(v, str) else _payloads(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_payloads(v) for v in value]
    return value


def as_dict(message: Any) -> dict[str, Any]:
    """A reply or push as a JSON-protocol-shaped dict (payloads as bytes)."""
    out = MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=False,
    )
    return _payloads(out)  # type: ignore[no-any-return]


async def call(ws: WS, *commands: tuple[int, str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Send commands in one frame; return their replies as dicts, in command order."""
    await ws.send_bytes(b"".join(command(cid, method, params) for cid, method, params in commands))
    want = {cid for cid, _, _ in commands}
    got: dict[int, dict[str, Any]] = {}
    while want - set(got):
        msg = await asyncio.wait_for(ws.receive(), scaled(10))
        assert msg.type == aiohttp.WSMsgType.BINARY, msg
        for reply in split(msg.data):
            if reply.id:
                got[reply.id] = as_dict(reply)
    return [got[cid] for cid, _, _ in commands]


class PbObserver:
    """A Protobuf client that records every push (as dicts) and answers pings."""

    def __init__(self, ws: WS) -> None:
        assert ws.protocol == SUBPROTOCOL, ws.protocol
        self.ws = ws
        self.pushes: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.replies: dict[int, dict[str, Any]] = {}
        self._task = asyncio.create_task(self._read())
        self._next_id = 100

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.BINARY:
                break
            for reply in split(msg.data):
                if reply.HasField("push"):
                    await self.pushes.put(as_dict(reply.push))
                elif reply.id:
                    self.replies[reply.id] = as_dict(reply)
                else:  # the server's ping: an empty reply; answer with an empty command
                    await self.ws.send_bytes(b"\x00")

    async def command(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._next_id += 1
        cid = self._next_id
        await self.ws.send_bytes(command(cid, method, params))
        await eventually(lambda: cid in self.replies, 5, interval=0.01, what="a reply")
        return self.replies.pop(cid)

    async def push(self, kind: str, channel: str | None = None) -> dict[str, Any]:
        """The next push of ``kind`` (for ``channel``), skipping others."""
        while True:
            push = await asyncio.wait_for(self.pushes.get(), scaled(10))
            if kind in push and (channel is None or push.get("channel") == channel):
                return push

    def stop(self) -> None:
        self._task.cancel()
