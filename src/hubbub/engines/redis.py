"""The Redis engine: fan-out between nodes, history in Redis streams, presence with expiry.

Keys (``P`` is the prefix, so several clusters can share one Redis):

- ``P:meta:{ch}`` hash ``e`` (epoch), ``s`` (top offset); expires ``meta_ttl`` after the last
  publish. ``P:stream:{ch}`` the stream, entry IDs ``0-<offset>``, capped at the history size,
  expiring ``history_ttl`` after the last publish. ``P:idem:{ch}:{key}`` idempotency keys.
- ``P:ch:{ch}`` the pub/sub channel every node subscribed to ``ch`` listens on.
- ``P:control`` the pub/sub channel of control messages (server API control), every node.
- ``P:presence:{ch}`` hash client -> info, ``P:presence-exp:{ch}`` sorted set client -> expiry.
- ``P:node:{uid}`` each node's snapshot (counts, channels), refreshed every second, expiring
  after :data:`NODE_TTL`.

Publishing to a history channel is one Lua script: idempotency check, offset increment, XADD,
PUBLISH, atomically, so every node sees one order per channel and nothing is delivered that is
not in the stream. A node's pub/sub connection is re-established after a failure; the channels
are then resubscribed and the handler's ``handle_resync`` makes local subscribers recover
(publications may have been missed while the connection was down).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from dataclasses import dataclass, replace
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from hubbub.bounded import bounded, stop_tasks
from hubbub.core.jsontext import dumps
from hubbub.core.types import ClientInfo, HistoryResult, Publication, StreamPosition
from hubbub.engines.base import BrokerHandler, HistoryOptions
from hubbub.engines.durable import MAX_BATCH
from hubbub.engines.envelope import frame_from_text, frame_text, pub_from_payload, pub_payload
from hubbub.engines.groupcommit import GroupCommit
from hubbub.engines.memory import Clock, new_epoch
from hubbub.engines.sqlite import info_from_text
from hubbub.errors import StoreError

log = logging.getLogger(__name__)

NODE_TTL: Final = 10
#: Connections of a node's command pool (beside its pub/sub connection), and the seconds a
#: command waits for one of them before it fails.
POOL_SIZE: Final = 64
POOL_TIMEOUT: Final = 5.0
#: Seconds a subscribe waits for Redis to confirm before it fails.
SUBSCRIBE_TIMEOUT: Final = 5.0

_PUBLISH = """
local idem = KEYS[4]
if idem ~= '' then
  local seen = redis.call('GET', idem)
  if seen then
    return {tonumber(seen), redis.call('HGET', KEYS[2], 'e') or '', 1}
  end
end
local epoch = redis.call('HGET', KEYS[2], 'e')
if not epoch then
  epoch = ARGV[5]
  redis.call('HSET', KEYS[2], 'e', epoch)
end
local top = redis.call('HINCRBY', KEYS[2], 's', 1)
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], '0-' .. top, 'p', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', KEYS[3], '{"t":"p","o":' .. top .. ARGV[7] .. ',"p":' .. ARGV[1] .. '}')
if idem ~= '' then
  redis.call('SET', idem, top, 'EX', ARGV[6])
end
return {top, epoch, 0}
"""

_POSITION = """
redis.call('HSETNX', KEYS[1], 'e', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {tonumber(redis.call('HGET', KEYS[1], 's') or '0'), redis.call('HGET', KEYS[1], 'e')}
"""

_PRESENCE = """
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
for _, client in ipairs(gone) do
  redis.call('HDEL', KEYS[1], client)
  redis.call('ZREM', KEYS[2], client)
end
return redis.call('HGETALL', KEYS[1])
"""

#: A publication on a node's pub/sub channel: offset, the raw frame's kind (a JSON string, see
#: :mod:`hubbub.engines.envelope`) when it has one, then the payload.
_ENVELOPE = re.compile(r'^\{"t":"p","o":(\d+)(?:,"x":("(?:[^"\\]|\\.)*"))?,"p":(.*)\}$', re.S)


def _store_error(exc: Exception) -> StoreError:
    return StoreError(f"redis: {exc}")


@dataclass(frozen=True, slots=True)
class _Send:
    """One publish for the batcher: the history script (``keys``, ``args``), else a plain
    PUBLISH of ``message`` on ``key``."""

    key: str
    message: str = ""
    keys: list[str] | None = None
    args: list[str | int | float] | None = None


class RedisBroker:
    """A :class:`hubbub.engines.base.Broker` on Redis (see the module docstring).

    Publishes go through a batcher (:class:`hubbub.engines.groupcommit.GroupCommit`): those
    submitted while a batch is on its way travel together in the next pipeline, on one
    connection, in submission order. So publishes started one after another (a connection's
    pipelined publishes) keep their order, which separate pooled connections would not.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "hubbub",
        clock: Clock = time.time,
        meta_ttl: float = 30 * 24 * 3600,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self._clock = clock
        self._meta_ttl = int(meta_ttl)
        self._redis: aioredis.Redis | None = None
        self._handler: BrokerHandler | None = None
        self._wanted: set[str] = set()
        self._active: set[str] = set()  # pub/sub channels subscribed on the current connection
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._sends: GroupCommit[_Send, Any] = GroupCommit(self._send_batch, MAX_BATCH)
        self.connected = False
        self._closing = False
        self.errors = 0
        self.reconnects = 0

    # -- keys ----------------------------------------------------------------------------

    def _k(self, kind: str, channel: str) -> str:
        return f"{self.prefix}:{kind}:{channel}"

    @property
    def _control_key(self) -> str:
        return f"{self.prefix}:control"

    def _channel_of(self, key: str) -> str:
        return key[len(self.prefix) + len(":ch:") :]

    # -- lifecycle -----------------------------------------------------------------------

    def register(self, handler: BrokerHandler) -> None:
        self._handler = handler

    async def open(self) -> None:
        # A blocking pool: a burst of commands (hundreds of clients resubscribing at once)
        # waits for a connection instead of failing with "Too many connections".
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url,
            max_connections=POOL_SIZE,
            timeout=POOL_TIMEOUT,
            decode_responses=True,
            socket_timeout=5,
            socket_connect_timeout=5,
        )
        self._redis = aioredis.Redis.from_pool(pool)
        self._publish = self._redis.register_script(_PUBLISH)
        self._position = self._redis.register_script(_POSITION)
        self._presence = self._redis.register_script(_PRESENCE)
        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            raise _store_error(exc) from None
        self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def close(self) -> None:
        self._closing = True
        if self._listener is not None:
            # The listener polls every 50 ms and leaves by itself (closing its connection);
            # cancelling a read inside redis-py can leave the connection dangling.
            await asyncio.wait({self._listener}, timeout=2.0)
            await stop_tasks([self._listener], 1.0, "redis: pub/sub listener")
            self._listener = None
        if self._redis is not None:
            # Not wait_for: on Python 3.11 it waits without limit for a cancelled aclose.
            with contextlib.suppress(Exception):
                await bounded(self._redis.aclose(), 1.0, "redis: closing the connections")
            self._redis = None

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            raise StoreError("redis: engine is not open")
        return self._redis

    # -- subscriptions (pub/sub) ---------------------------------------------------------

    async def subscribe(self, channel: str) -> None:
        """Returns once Redis confirmed the subscription (publications from then on reach
        this node)."""
        key = self._k("ch", channel)
        self._wanted.add(channel)
        if self.connected and key in self._active:
            return  # still subscribed at Redis (an unsubscribe had not been sent yet)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, []).append(future)
        try:
            await asyncio.wait_for(future, SUBSCRIBE_TIMEOUT)
        except TimeoutError:
            raise StoreError("redis: subscribe was not confirmed in time") from None

    async def unsubscribe(self, channel: str) -> None:
        self._wanted.discard(channel)

    async def _listen(self) -> None:
        first = True
        delay = 0.1
        while not self._closing:
            pubsub = self.redis.pubsub()
            active = self._active = set()
            try:
                await pubsub.subscribe(self._control_key)
                if not first:
                    self.reconnects += 1
                    log.warning("redis: pub/sub connection restored")
                while not self._closing:
                    wanted = {self._k("ch", c) for c in self._wanted}
                    if wanted - active:
                        await pubsub.subscribe(*(wanted - active))
                        active |= wanted - active
                    if active - wanted:
                        # Out of ``active`` first: a subscribe meanwhile must wait for its
                        # confirmation, not take the channel for still subscribed.
                        gone = active - wanted
                        active -= gone
                        await pubsub.unsubscribe(*gone)
                    message = await pubsub.get_message(timeout=0.05)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        if not self.connected and message["channel"] == self._control_key:
                            self.connected = True
                            delay = 0.1
                            if not first and self._handler is not None:
                                self._handler.handle_resync()
                            first = False
                        for future in self._waiters.pop(message["channel"], []):
                            if not future.done():
                                future.set_result(None)
                    elif message["type"] == "message":
                        self._dispatch(message["channel"], message["data"])
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                return
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                raise
            except (RedisError, OSError) as exc:
                if self._closing:  # redis-py may turn our cancellation into an error
                    return
                if self.connected:
                    log.warning("redis: pub/sub connection lost: %s", exc)
                self.connected = False
                self.errors += 1
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _dispatch(self, key: str, data: str) -> None:
        """Hand one pub/sub message to the node; a message that cannot be handled is logged
        and dropped (it must not end the listener, which carries every channel)."""
        try:
            self._dispatch_one(key, data)
        except Exception:
            log.exception("redis: a message on %s could not be handled", key)

    def _dispatch_one(self, key: str, data: str) -> None:
        handler = self._handler
        if handler is None:
            return
        if key == self._control_key:
            handler.handle_control(data)
            return
        channel = self._channel_of(key)
        if channel not in self._wanted:  # unsubscribed; Redis may not know yet
            return
        match = _ENVELOPE.match(data)
        if match is not None:
            frame = frame_from_text(json.loads(match.group(2))) if match.group(2) else ""
            pub = pub_from_payload(match.group(3), int(match.group(1)), frame)
            handler.handle_publication(channel, pub)
            return
        try:
            msg = json.loads(data)
        except ValueError:
            return
        if msg.get("t") in ("j", "l"):
            info = info_from_text(dumps(msg["i"]))
            assert info is not None
            if msg["t"] == "j":
                handler.handle_join(channel, info)
            else:
                handler.handle_leave(channel, info)

    # -- publishing and history ----------------------------------------------------------

    async def publish(
        self,
        channel: str,
        pub: Publication,
        history: HistoryOptions | None,
        idempotency_key: str | None = None,
    ) -> Publication:
        payload = pub_payload(pub)
        frame = frame_text(pub.frame)
        frame_part = "" if frame is None else f',"x":{frame}'
        if history is None or not history.enabled:
            message = f'{{"t":"p","o":0{frame_part},"p":{payload}}}'
            await self._sent(_Send(self._k("ch", channel), message=message))
            return pub
        keys = [
            self._k("stream", channel),
            self._k("meta", channel),
            self._k("ch", channel),
            self._k("idem", f"{channel}:{idempotency_key}") if idempotency_key else "",
        ]
        args: list[str | int | float] = [
            payload,
            history.size,
            max(1, int(history.ttl)),
            self._meta_ttl,
            new_epoch(),
            max(1, int(history.idempotency_ttl)),
            frame_part,
        ]
        top, _, _ = await self._sent(_Send(keys[2], keys=keys, args=args))
        return replace(pub, offset=int(top))

    async def _sent(self, item: _Send) -> Any:
        """Send through the batcher; the command's result (StoreError when it failed)."""
        try:
            result = await self._sends.submit(item)
        except (RedisError, OSError) as exc:
            self.errors += 1
            raise _store_error(exc) from None
        if isinstance(result, Exception):
            self.errors += 1
            raise _store_error(result)
        return result

    async def _send_batch(self, items: list[_Send]) -> list[Any]:
        """One pipeline (no transaction) on one connection: Redis runs the commands in the
        order they were submitted. Per-command errors come back as exceptions."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for item in items:
                if item.keys is None:
                    pipe.publish(item.key, item.message)
                else:
                    await self._publish(keys=item.keys, args=item.args, client=pipe)
            return list(await pipe.execute(raise_on_error=False))

    async def _publish_presence_event(self, channel: str, kind: str, info: ClientInfo) -> None:
        try:
            await self.redis.publish(
                self._k("ch", channel), f'{{"t":"{kind}","i":{info.to_json()}}}'
            )
        except (RedisError, OSError) as exc:
            self.errors += 1
            raise _store_error(exc) from None

    async def control(self, message: str) -> None:
        """PUBLISH on the control channel every node's listener subscribes to."""
        try:
            await self.redis.publish(self._control_key, message)
        except (RedisError, OSError) as exc:
            self.errors += 1
            raise _store_error(exc) from None

    async def publish_join(self, channel: str, info: ClientInfo) -> None:
        await self._publish_presence_event(channel, "j", info)

    async def publish_leave(self, channel: str, info: ClientInfo) -> None:
        await self._publish_presence_event(channel, "l", info)

    async def position(self, channel: str) -> StreamPosition:
        try:
            top, epoch = await self._position(
                keys=[self._k("meta", channel)], args=[new_epoch(), self._meta_ttl]
            )
        except (RedisError, OSError) as exc:
            self.errors += 1
            raise _store_error(exc) from None
        return StreamPosition(int(top), str(epoch))

    async def history(
        self, channel: str, *, since_offset: int | None, limit: int, reverse: bool
    ) -> HistoryResult:
        """The position and the entries are read in one MULTI/EXEC, so they agree (a publish
        between two separate reads would make a continuous stream look broken)."""
        if limit == 0 or (reverse and since_offset is not None and since_offset <= 1):
            return HistoryResult([], await self.position(channel))
        count = None if limit < 0 else limit
        key = self._k("stream", channel)
        entries: Any
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                await self._position(
                    keys=[self._k("meta", channel)], args=[new_epoch(), self._meta_ttl], client=pipe
                )
                if reverse:
                    top = f"0-{since_offset - 1}" if since_offset is not None else "+"
                    pipe.xrevrange(key, max=top, min="-", count=count)
                else:
                    low = f"0-{since_offset + 1}" if since_offset is not None else "-"
                    pipe.xrange(key, min=low, max="+", count=count)
                (offset, epoch), entries = await pipe.execute()
        except (RedisError, OSError) as exc:
            self.errors += 1
            raise _store_error(exc) from None
        pubs = [
            pub_from_payload(fields["p"], int(eid.split("-")[1]), history=True)
            for eid, fields in entries
        ]
        return HistoryResult(pubs, StreamPosition(int(offset), str(epoch)))

    async def remove_history(self, channel: str) -> None:
        try:
            await self.redis.delete(self._k("stream", channel), self._k("meta", channel))
        except (RedisError, OSError) as exc:
            raise _store_error(exc) from None

    # -- cluster view --------------------------------------------------------------------

    async def announce(self, uid: str, snapshot: dict[str, Any]) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self.redis.set(self._k("node", uid), json.dumps(snapshot), ex=NODE_TTL)

    async def withdraw(self, uid: str) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self.redis.delete(self._k("node", uid))

    async def nodes(self) -> list[dict[str, Any]]:
        try:
            keys = [k async for k in self.redis.scan_iter(match=self._k("node", "*"), count=100)]
            values = await self.redis.mget(keys) if keys else []
        except (RedisError, OSError) as exc:
            raise _store_error(exc) from None
        return [json.loads(v) for v in values if v]


class RedisPresence:
    """A :class:`hubbub.engines.base.PresenceManager` on Redis, entries with expiry."""

    def __init__(self, broker: RedisBroker, *, clock: Clock = time.time) -> None:
        self._broker = broker
        self._clock = clock

    async def add(self, channel: str, info: ClientInfo, ttl: float) -> None:
        b = self._broker
        try:
            async with b.redis.pipeline(transaction=True) as pipe:
                pipe.hset(b._k("presence", channel), info.client, info.to_json())
                pipe.zadd(b._k("presence-exp", channel), {info.client: self._clock() + ttl})
                pipe.expire(b._k("presence", channel), int(ttl) + 1)
                pipe.expire(b._k("presence-exp", channel), int(ttl) + 1)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise _store_error(exc) from None

    async def remove(self, channel: str, client_id: str) -> None:
        b = self._broker
        try:
            async with b.redis.pipeline(transaction=True) as pipe:
                pipe.hdel(b._k("presence", channel), client_id)
                pipe.zrem(b._k("presence-exp", channel), client_id)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise _store_error(exc) from None

    async def presence(self, channel: str) -> dict[str, ClientInfo]:
        b = self._broker
        try:
            flat = await b._presence(
                keys=[b._k("presence", channel), b._k("presence-exp", channel)],
                args=[self._clock()],
            )
        except (RedisError, OSError) as exc:
            raise _store_error(exc) from None
        out = {}
        for client, text in zip(flat[::2], flat[1::2], strict=True):
            info = info_from_text(text)
            if info is not None:
                out[client] = info
        return out

    async def stats(self, channel: str) -> tuple[int, int]:
        entries = await self.presence(channel)
        return len(entries), len({i.user for i in entries.values() if i.user})
