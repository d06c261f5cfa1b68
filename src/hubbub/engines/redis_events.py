"""The event outbox (:mod:`hubbub.engines.eventoutbox`) in the Redis engine.

Keys (``P`` the engine's prefix):

- ``P:wh:ev:{target}`` hash id -> ``created`` and the payload (``created\\npayload``);
  ``P:wh:due:{target}`` sorted set id -> due time; ``P:wh:att:{target}`` hash id -> attempts.
- ``P:wh:members:{channel}`` set of the nodes holding a membership of the channel;
  ``P:wh:chans:{node}`` set of a node's channels; ``P:wh:alive`` sorted set node -> the time
  it lives until.

Every operation is one Lua script, so it is atomic: a claim moves what it returns out of the
due range at once (two nodes never claim the same event), and an occupancy transition checks
and writes the event in one step. Durable as Redis is configured to be (AOF with
``appendfsync always`` or ``everysec``; without persistence a Redis restart loses the outbox).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from hubbub.engines.eventoutbox import OutboxEvent, TransitionEvents, made
from hubbub.engines.redis import RedisBroker
from hubbub.errors import StoreError

#: ``put(start)`` writes the events of ARGV from ``start`` on: their due time, then (target,
#: id, blob) triples; an event already there is left as it is. ARGV[1] is the prefix.
_PUT: Final = """
local function put(start)
  local due = ARGV[start]
  local i = start + 1
  while i + 2 <= #ARGV do
    local target, id, blob = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    if redis.call('HSETNX', ARGV[1] .. ':wh:ev:' .. target, id, blob) == 1 then
      redis.call('ZADD', ARGV[1] .. ':wh:due:' .. target, due, id)
    end
    i = i + 3
  end
end
"""
_ADD: Final = _PUT + "put(2)\nreturn 1\n"
_OCCUPY: Final = (
    _PUT
    + """
local members = ARGV[1] .. ':wh:members:' .. ARGV[2]
local had = redis.call('SCARD', members)
local added = redis.call('SADD', members, ARGV[3])
redis.call('SADD', ARGV[1] .. ':wh:chans:' .. ARGV[3], ARGV[2])
if added == 1 and had == 0 then
  put(4)
  return 1
end
return 0
"""
)
_VACATE: Final = (
    _PUT
    + """
local members = ARGV[1] .. ':wh:members:' .. ARGV[2]
local removed = redis.call('SREM', members, ARGV[3])
redis.call('SREM', ARGV[1] .. ':wh:chans:' .. ARGV[3], ARGV[2])
if removed == 1 and redis.call('SCARD', members) == 0 then
  put(4)
  return 1
end
return 0
"""
)
_CLAIM: Final = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  local blob = redis.call('HGET', KEYS[2], id)
  if blob then
    redis.call('ZADD', KEYS[1], ARGV[3], id)
    out[#out + 1] = id
    out[#out + 1] = blob
    out[#out + 1] = redis.call('HGET', KEYS[3], id) or '0'
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
"""
_RETRY: Final = """
for i = 2, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
    redis.call('HINCRBY', KEYS[2], ARGV[i], 1)
  end
end
return 1
"""
_FORGET: Final = """
if redis.call('SCARD', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
end
return 1
"""


def _blob(event: OutboxEvent) -> str:
    return f"{event.created!r}\n{event.payload}"


class RedisEventOutbox:
    """An :class:`hubbub.engines.eventoutbox.EventOutbox` in the Redis of ``broker``."""

    durable = True

    def __init__(self, broker: RedisBroker) -> None:
        self._broker = broker
        self._prefix = broker.prefix
        self._scripts: dict[str, AsyncScript] = {}

    def _k(self, *parts: str) -> str:
        return ":".join((self._prefix, "wh", *parts))

    async def _eval(self, script: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run ``script`` (by its SHA once Redis has it: redis-py's Script)."""
        try:
            registered = self._scripts.get(script)
            if registered is None:
                registered = self._scripts[script] = self._broker.redis.register_script(script)
            return await registered(keys=list(keys), args=list(args))
        except (RedisError, OSError) as exc:
            raise StoreError(f"redis: {exc}") from None

    def _event_args(self, events: Sequence[OutboxEvent], due: float) -> list[Any]:
        args: list[Any] = [repr(due)]
        for e in events:
            args += [e.target, e.id, _blob(e)]
        return args

    async def open(self) -> None:
        return None

    async def add(self, events: Sequence[OutboxEvent], due: float) -> None:
        if events:
            await self._eval(_ADD, [], [self._prefix, *self._event_args(events, due)])

    async def claim(self, target: str, limit: int, now: float, lease: float) -> list[OutboxEvent]:
        keys = [self._k("due", target), self._k("ev", target), self._k("att", target)]
        flat = await self._eval(_CLAIM, keys, [repr(now), limit, repr(now + lease)])
        out = []
        for i in range(0, len(flat), 3):
            created, _, payload = flat[i + 1].partition("\n")
            out.append(OutboxEvent(target, flat[i], payload, float(created), int(flat[i + 2])))
        return out

    async def ack(self, target: str, ids: Sequence[str]) -> None:
        if not ids:
            return
        try:
            async with self._broker.redis.pipeline(transaction=True) as pipe:
                pipe.zrem(self._k("due", target), *ids)
                pipe.hdel(self._k("ev", target), *ids)
                pipe.hdel(self._k("att", target), *ids)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreError(f"redis: {exc}") from None

    async def retry(self, target: str, ids: Sequence[str], due: float) -> None:
        if ids:
            keys = [self._k("due", target), self._k("att", target)]
            await self._eval(_RETRY, keys, [repr(due), *ids])

    async def depth(self, target: str) -> int:
        try:
            return int(await self._broker.redis.zcard(self._k("due", target)))
        except (RedisError, OSError) as exc:
            raise StoreError(f"redis: {exc}") from None

    async def occupy(self, channel: str, node: str, events: TransitionEvents, due: float) -> bool:
        args = [self._prefix, channel, node, *self._event_args(made(events), due)]
        return bool(await self._eval(_OCCUPY, [], args))

    async def vacate(self, channel: str, node: str, events: TransitionEvents, due: float) -> bool:
        args = [self._prefix, channel, node, *self._event_args(made(events), due)]
        return bool(await self._eval(_VACATE, [], args))

    async def alive(self, node: str, until: float) -> None:
        try:
            await self._broker.redis.zadd(self._k("alive"), {node: until})
        except (RedisError, OSError) as exc:
            raise StoreError(f"redis: {exc}") from None

    async def dead_nodes(self, now: float) -> list[str]:
        try:
            nodes = await self._broker.redis.zrangebyscore(self._k("alive"), "-inf", now)
        except (RedisError, OSError) as exc:
            raise StoreError(f"redis: {exc}") from None
        return sorted(str(n) for n in nodes)

    async def channels_of(self, node: str) -> list[str]:
        try:
            members = await self._broker.redis.smembers(self._k("chans", node))
            return sorted(str(m) for m in members)
        except (RedisError, OSError) as exc:
            raise StoreError(f"redis: {exc}") from None

    async def forget_node(self, node: str) -> None:
        await self._eval(_FORGET, [self._k("alive"), self._k("chans", node)], [node])
