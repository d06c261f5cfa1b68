"""Clients for the reliability scenarios, behaving as the SDKs do.

- :class:`Subscriber` speaks JSON or (``protobuf=True``) Protobuf, reconnects after a cut
  (short backoff, next URL of its list), answers pings, resubscribes with recovery from the
  last offset it saw (after a reconnect, and after an unsubscribe push of code 2500 and up,
  as the SDKs do), and records every publication it gets, live or recovered, in a
  :class:`DeliveryChecker`.
- :class:`Publisher` publishes ``{"p": name, "s": seq}`` over one channel-protocol connection
  without waiting for each reply (the server pipelines them), at a given rate, and records
  each as acknowledged or not when its reply (or the connection's end) comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import aiohttp

from tests.reliability.checker import DeliveryChecker
from tests.support import protobuf
from tests.support.timing import scaled


class Subscriber:
    def __init__(
        self,
        name: str,
        urls: list[str],
        channel: str,
        checker: DeliveryChecker,
        *,
        compress: bool = False,
        protobuf: bool = False,
    ) -> None:
        self.name = name
        self.protobuf = protobuf
        self.urls = urls
        self.channel = channel
        self.checker = checker
        self.compress = compress
        self.epoch = ""
        self.offset = 0
        self.first_offset: int | None = None  # the position of the first subscribe reply
        self.count = 0
        self.connects = 0
        self.recoveries = 0
        self.unrecovered = 0
        self.errors: list[str] = []
        self._subscribed = asyncio.Event()
        self._stop = False
        self._task: asyncio.Task[None] | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._next_id = 1

    async def start(self) -> Subscriber:
        """Returns once the first subscribe was answered."""
        self.checker.subscriber(self.name)
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._subscribed.wait(), scaled(20))
        return self

    async def stop(self) -> None:
        self._stop = True
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait_for_offset(self, offset: int, within: float = 30.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + scaled(within)
        while self.offset < offset:
            if loop.time() > deadline:
                raise AssertionError(f"{self.name} reached offset {self.offset} of {offset}")
            await asyncio.sleep(0.02)

    async def wait_for_count(self, count: int, within: float = 30.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + scaled(within)
        while self.count < count:
            if loop.time() > deadline:
                raise AssertionError(f"{self.name} received {self.count} of {count}")
            await asyncio.sleep(0.02)

    def _subscribe_command(self) -> str | bytes:
        self._next_id += 1
        params: dict[str, Any] = {"channel": self.channel, "recoverable": True}
        if self.epoch:
            params.update(recover=True, offset=self.offset, epoch=self.epoch)
        if self.protobuf:
            return protobuf.command(self._next_id, "subscribe", params)
        return json.dumps({"id": self._next_id, "subscribe": params})

    async def _send(self, ws: aiohttp.ClientWebSocketResponse, frame: str | bytes) -> None:
        if isinstance(frame, bytes):
            await ws.send_bytes(frame)
        else:
            await ws.send_str(frame)

    def _replies(self, msg: aiohttp.WSMessage) -> list[dict[str, Any]] | None:
        """The replies and pushes of a message as JSON-shaped dicts ({} for a ping); None
        when the connection ended."""
        if self.protobuf:
            if msg.type is not aiohttp.WSMsgType.BINARY:
                return None
            return [protobuf.as_dict(reply) for reply in protobuf.split(msg.data)]
        if msg.type is not aiohttp.WSMsgType.TEXT:
            return None
        return [json.loads(line) for line in msg.data.split("\n")]

    async def _run(self) -> None:
        attempt = 0
        async with aiohttp.ClientSession() as http:
            while not self._stop:
                url = self.urls[attempt % len(self.urls)]
                attempt += 1
                try:
                    protocols = (protobuf.SUBPROTOCOL,) if self.protobuf else ()
                    async with http.ws_connect(
                        url, compress=15 if self.compress else 0, protocols=protocols
                    ) as ws:
                        self._ws = ws
                        self.connects += 1
                        subscribe = self._subscribe_command()
                        if isinstance(subscribe, bytes):
                            await ws.send_bytes(protobuf.command(1, "connect", {}) + subscribe)
                        else:
                            await ws.send_str('{"id":1,"connect":{}}\n' + subscribe)
                        await self._read(ws)
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    if not self._stop:
                        self.errors.append(repr(exc))
                if not self._stop:
                    await asyncio.sleep(0.05)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            objs = self._replies(msg)
            if objs is None:
                return
            for obj in objs:
                if not obj:  # the server's ping
                    await self._send(ws, b"\x00" if self.protobuf else "{}")
                    continue
                if "subscribe" in obj and "id" in obj:
                    self._subscribed_reply(obj["subscribe"])
                elif "error" in obj:
                    self.errors.append(json.dumps(obj))
                    if obj.get("id", 0) > 1:  # the subscribe failed: try again
                        await asyncio.sleep(0.05)
                        await self._send(ws, self._subscribe_command())
                elif "push" in obj:
                    push = obj["push"]
                    if "pub" in push:
                        self._record(push["pub"])
                    elif "unsubscribe" in push and push["unsubscribe"].get("code", 0) >= 2500:
                        await self._send(ws, self._subscribe_command())

    def _subscribed_reply(self, result: dict[str, Any]) -> None:
        if result.get("was_recovering"):
            self.recoveries += 1
            if not result.get("recovered"):
                self.unrecovered += 1
        if result.get("epoch"):
            self.epoch = result["epoch"]
        for pub in result.get("publications", []):
            self._record(pub)
        self.offset = max(self.offset, int(result.get("offset", 0)))
        if self.first_offset is None:
            self.first_offset = self.offset
        self._subscribed.set()

    def _record(self, pub: dict[str, Any]) -> None:
        data = pub["data"]
        if isinstance(data, bytes):  # a Protobuf client gets the JSON text's bytes
            data = json.loads(data)
        offset = int(pub.get("offset", 0))
        self.checker.received(self.name, data["p"], data["s"], offset)
        self.count += 1
        self.offset = max(self.offset, offset)


class Publisher:
    def __init__(self, name: str, url: str, channel: str, checker: DeliveryChecker) -> None:
        self.name = name
        self.url = url
        self.channel = channel
        self.checker = checker
        self.sent = 0
        self.acked = 0
        self.failed = 0
        self.errors: list[dict[str, Any]] = []  # the first few error replies
        self._pending: dict[int, int] = {}  # command id -> seq
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> Publisher:
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(self.url)
        await self._ws.send_str('{"id":1,"connect":{}}')
        msg = await asyncio.wait_for(self._ws.receive(), scaled(10))
        assert "connect" in json.loads(msg.data), msg
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            for line in msg.data.split("\n"):
                if line == "{}":
                    await self._ws.send_str("{}")
                    continue
                obj = json.loads(line)
                seq = self._pending.pop(obj.get("id", 0), None)
                if seq is None:
                    continue
                ok = "error" not in obj
                self.checker.published(self.name, seq, acked=ok)
                if ok:
                    self.acked += 1
                else:
                    self.failed += 1
                    if len(self.errors) < 5:
                        self.errors.append(obj["error"])
        for seq in self._pending.values():  # never answered: not acknowledged
            self.checker.published(self.name, seq, acked=False)
        self._pending.clear()

    async def publish(self, count: int, rate: float) -> None:
        """Publish ``count`` more at about ``rate`` per second (in 10 ms ticks)."""
        assert self._ws is not None
        loop = asyncio.get_running_loop()
        start, per_tick = loop.time(), max(1, round(rate / 100))
        end = self.sent + count
        while self.sent < end:
            frame = []
            for _ in range(min(per_tick, end - self.sent)):
                cid = 10 + self.sent
                self._pending[cid] = self.sent
                data = {"p": self.name, "s": self.sent}
                frame.append(
                    json.dumps({"id": cid, "publish": {"channel": self.channel, "data": data}})
                )
                self.sent += 1
            await self._ws.send_str("\n".join(frame))
            due = start + self.sent / rate
            await asyncio.sleep(max(0.0, due - loop.time()))

    async def wait_answered(self, within: float = 30.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + scaled(within)
        while self._pending:
            if loop.time() > deadline:
                raise AssertionError(f"{self.name}: {len(self._pending)} publishes unanswered")
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._http is not None:
            await self._http.close()


async def api(base_url: str, method: str, params: dict[str, Any], key: str) -> Any:
    """One server API call (``base_url``: the server's http URL); its result."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{base_url}/api/{method}", json=params, headers={"X-API-Key": key}) as resp,
    ):
        body = await resp.json()
    assert "error" not in body, body
    return body["result"]
