"""The PostgreSQL engine (``--engine postgresql://...``): fan-out between nodes with
LISTEN/NOTIFY, history in the PostgreSQL store, presence and the node list in tables.

Guarantees beyond :mod:`hubbub.engines.base`:

- **Commit order is delivery order.** A history publication's ``pg_notify`` is sent inside the
  transaction that appends it (the group commit's), and PostgreSQL delivers notifications in
  commit order. Offsets of one channel are taken under that channel's row lock, so a later
  commit always carries a higher offset: every node sees one order per channel, and nothing is
  delivered that is not stored.
- **Large payloads travel by reference.** NOTIFY takes less than 8000 bytes; a longer
  notification is stored in ``hubbub_notify_refs`` (same transaction) and the notification
  carries its id. Receivers fetch it before delivering anything that arrived after it, so the
  order holds.
- **Upstream only for local subscribers.** Each hubbub channel maps to one notification channel
  (``<prefix>_<hash>``; identifiers are limited to 63 bytes, and the payload names the channel,
  so a hash collision only costs a filtered message). A dedicated connection LISTENs to those
  with local subscribers. It is checked every second; when it is lost it is re-established with
  backoff, everything is LISTENed again and the handler's ``handle_resync`` makes local
  subscribers recover.
- Presence entries and node announcements are rows with an expiry: readers ignore expired rows,
  the retention loop deletes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections import Counter, deque
from dataclasses import replace
from typing import Any, Final

import asyncpg

from hubbub.bounded import stop_tasks
from hubbub.core.jsontext import dumps
from hubbub.core.types import ClientInfo, HistoryResult, Publication, StreamPosition
from hubbub.engines.base import BrokerHandler, HistoryOptions
from hubbub.engines.durable import MAX_BATCH
from hubbub.engines.envelope import frame_from_text, frame_text, pub_from_obj, pub_payload
from hubbub.engines.groupcommit import GroupCommit
from hubbub.engines.memory import Clock
from hubbub.engines.postgres import TIMEOUT, PostgresHistory
from hubbub.engines.sqlite import info_from_text
from hubbub.errors import StoreError

log = logging.getLogger(__name__)

#: Longest notification sent inline (NOTIFY refuses 8000 bytes and more; payloads are ASCII).
NOTIFY_LIMIT: Final = 7999
#: Seconds a by-reference payload is kept for the nodes to fetch.
REF_TTL: Final = 300.0
#: Seconds a node announcement stays listed without a refresh.
NODE_TTL: Final = 10.0
#: Seconds between two checks of the listening connection.
HEALTH_INTERVAL: Final = 1.0

#: How a control message's notification starts (the message follows, then ``}``).
_CONTROL_HEAD: Final = '{"ctl":'

_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


def control_channel(prefix: str) -> str:
    """The PostgreSQL notification channel of control messages (every node LISTENs); the
    whole prefix is in its hash, so clusters whose prefixes share 30 characters differ."""
    digest = hashlib.blake2b(prefix.encode(), digest_size=8).hexdigest()
    return f"{prefix[:30]}_c{digest}"


def notify_channel(prefix: str, channel: str) -> str:
    """The PostgreSQL notification channel carrying ``channel`` (at most 47 bytes); the hash
    covers the whole prefix and the channel."""
    digest = hashlib.blake2b(f"{prefix}\0{channel}".encode(), digest_size=8).hexdigest()
    return f"{prefix[:30]}_{digest}"


class _NotifyingHistory(PostgresHistory):
    """The PostgreSQL history store, sending each new publication's notification in the
    transaction that appends it."""

    def __init__(self, broker: PostgresBroker, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        self._broker = broker

    async def _after_append(
        self, conn: asyncpg.Connection, fresh: list[tuple[str, Publication]]
    ) -> None:
        b = self._broker
        await b.send_notifications(
            conn, [b.publication_notification(channel, pub) for channel, pub in fresh]
        )

    async def _expire_more(self, conn: asyncpg.Connection, now: float) -> int:
        total = 0
        for table in ("hubbub_presence", "hubbub_nodes", "hubbub_notify_refs"):
            status = await conn.execute(f"DELETE FROM {table} WHERE expires_at <= $1", now)
            total += int(status.split()[-1])
        return total


class PostgresBroker:
    """A :class:`hubbub.engines.base.Broker` on PostgreSQL (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "hubbub",
        clock: Clock = time.time,
        meta_ttl: float = 30 * 24 * 3600,
        group_commit: bool = True,
        retention_interval: float = 10.0,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self._clock = clock
        self.store = _NotifyingHistory(
            self,
            url,
            clock=clock,
            meta_ttl=meta_ttl,
            group_commit=group_commit,
            retention_interval=retention_interval,
        )
        self._notifies: GroupCommit[tuple[str, str], None] = GroupCommit(
            self._notify_batch, MAX_BATCH if group_commit else 1
        )
        self._nonce = 0
        self._handler: BrokerHandler | None = None
        self._wanted: set[str] = set()
        self._wanted_names: Counter[str] = Counter()
        self._listening: set[str] = set()  # notification channels LISTENed on self._conn
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()  # one statement at a time on the listening connection
        self._lost = asyncio.Event()
        self._pending: deque[str] = deque()  # notifications waiting behind a by-reference one
        self._drainer: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._closing = False
        self.connected = False
        self.errors = 0
        self.reconnects = 0

    @property
    def _where(self) -> str:
        return self.url.split("@")[-1]

    def _error(self, exc: BaseException) -> StoreError:
        self.errors += 1
        return StoreError(f"postgresql {self._where}: {exc}")

    # -- lifecycle -----------------------------------------------------------------------

    def register(self, handler: BrokerHandler) -> None:
        self._handler = handler

    async def open(self) -> None:
        await self.store.open()
        try:
            await self._connect()
        except _ERRORS as exc:
            await self.store.close()
            raise self._error(exc) from None
        self.connected = True
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def close(self) -> None:
        self._closing = True
        tasks = [task for task in (self._watcher, self._drainer) if task is not None]
        await stop_tasks(tasks, 2.0, "postgresql: listener task")
        self._watcher = self._drainer = None
        await self._drop_connection()
        self.connected = False
        await self.store.close()

    async def _connect(self) -> None:
        """A new listening connection, LISTENing to every wanted channel."""
        async with self._lock:
            conn = await asyncpg.connect(self.url, timeout=TIMEOUT, command_timeout=TIMEOUT)
            try:
                self._lost.clear()
                conn.add_termination_listener(lambda _conn: self._lost.set())
                await conn.add_listener(control_channel(self.prefix), self._on_notify)
                names = set(self._wanted_names)
                for name in names:
                    await conn.add_listener(name, self._on_notify)
            except BaseException:
                conn.terminate()
                raise
            self._conn, self._listening = conn, names

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        self._listening = set()
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), 1.0)
            except (Exception, asyncio.CancelledError):
                conn.terminate()

    async def _watch(self) -> None:
        """Check the listening connection every second; re-establish it when lost."""
        delay = 0.1
        while not self._closing:
            try:
                if self._conn is None:
                    await self._connect()
                    self.connected = True
                    self.reconnects += 1
                    delay = 0.1
                    log.warning("postgresql %s: listening connection restored", self._where)
                    if self._handler is not None:
                        self._handler.handle_resync()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._lost.wait(), HEALTH_INTERVAL)
                if self._lost.is_set():
                    raise ConnectionError("the listening connection was closed")
                async with self._lock:
                    if self._conn is not None:
                        await self._conn.fetchval("SELECT 1", timeout=TIMEOUT)
            except (*_ERRORS, ConnectionError) as exc:
                if self._closing:
                    return
                if self.connected:
                    log.warning("postgresql %s: listening connection lost: %s", self._where, exc)
                self.connected = False
                self.errors += 1
                await self._drop_connection()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    # -- subscriptions -------------------------------------------------------------------

    async def subscribe(self, channel: str) -> None:
        """Returns once the LISTEN is in place: publications committed from then on reach
        this node. Raises StoreError while the engine is unreachable."""
        if channel in self._wanted:
            return
        name = notify_channel(self.prefix, channel)
        self._wanted.add(channel)
        self._wanted_names[name] += 1
        try:
            async with self._lock:
                if self._conn is None or not self.connected:
                    raise StoreError(f"postgresql {self._where}: not connected")
                if name not in self._listening:
                    await self._conn.add_listener(name, self._on_notify)
                    self._listening.add(name)
        except BaseException as exc:
            self._forget(channel, name)
            if isinstance(exc, _ERRORS):
                self._lost.set()  # let the watcher check and re-establish the connection
                raise self._error(exc) from None
            raise

    async def unsubscribe(self, channel: str) -> None:
        if channel not in self._wanted:
            return
        name = notify_channel(self.prefix, channel)
        self._forget(channel, name)
        async with self._lock:
            if name in self._listening and not self._wanted_names[name] and self._conn:
                self._listening.discard(name)
                try:
                    await self._conn.remove_listener(name, self._on_notify)
                except _ERRORS:
                    self._lost.set()  # a stray notification is filtered out meanwhile

    def _forget(self, channel: str, name: str) -> None:
        self._wanted.discard(channel)
        self._wanted_names[name] -= 1
        if self._wanted_names[name] <= 0:
            del self._wanted_names[name]

    # -- receiving -----------------------------------------------------------------------

    def _on_notify(self, conn: object, pid: int, name: str, payload: str) -> None:
        """asyncpg calls this for each notification, in the order they arrived."""
        if self._pending or payload.startswith('{"r":'):
            self._pending.append(payload)
            if self._drainer is None:
                self._drainer = asyncio.get_running_loop().create_task(self._drain())
        else:
            self._deliver(payload)

    async def _drain(self) -> None:
        """Deliver the pending notifications in order, fetching by-reference ones."""
        try:
            while self._pending:
                head = self._pending[0]
                if head.startswith('{"r":'):
                    try:
                        ref = int(json.loads(head)["r"])
                    except (ValueError, KeyError, TypeError):  # not ours: someone NOTIFYed
                        log.warning("postgresql: ignoring a malformed notification")
                        self._pending.popleft()
                        continue
                    text = await self._fetch_ref(ref)
                    if text is None:
                        # The publication is lost for this node: make its subscribers recover.
                        self._pending.popleft()
                        if self._handler is not None:
                            self._handler.handle_resync()
                        continue
                    head = text
                self._pending.popleft()
                self._deliver(head)
        finally:
            self._drainer = None

    async def _fetch_ref(self, ref: int) -> str | None:
        for attempt in range(3):
            try:
                text: str | None = await self.store.run(
                    lambda conn: conn.fetchval(
                        "SELECT payload FROM hubbub_notify_refs WHERE id = $1", ref
                    )
                )
                return text
            except StoreError as exc:
                log.warning("postgresql: fetching notification %d failed: %s", ref, exc)
                await asyncio.sleep(0.1 * (attempt + 1))
        return None

    def _deliver(self, text: str) -> None:
        """Hand one notification to the node; one that cannot be handled is logged and
        dropped (anyone who can connect may NOTIFY)."""
        try:
            self._deliver_one(text)
        except Exception:
            log.exception("postgresql: a notification could not be handled")

    def _deliver_one(self, text: str) -> None:
        handler = self._handler
        if text.startswith(_CONTROL_HEAD):
            if handler is not None:
                handler.handle_control(text[len(_CONTROL_HEAD) : -1])
            return
        try:
            obj = json.loads(text)
            channel = obj["c"]
        except (ValueError, KeyError, TypeError):
            log.warning("postgresql: ignoring a malformed notification")
            return
        if handler is None or channel not in self._wanted:
            return
        if "p" in obj:
            frame = frame_from_text(obj.get("x"))
            handler.handle_publication(channel, pub_from_obj(obj["p"], int(obj.get("o", 0)), frame))
        elif "j" in obj or "l" in obj:
            info = info_from_text(dumps(obj.get("j", obj.get("l"))))
            if info is None:
                return
            if "j" in obj:
                handler.handle_join(channel, info)
            else:
                handler.handle_leave(channel, info)

    # -- sending -------------------------------------------------------------------------

    def publication_notification(self, channel: str, pub: Publication) -> tuple[str, str]:
        """(notification channel, payload) for ``pub``; publications without an offset carry
        a nonce, so that two equal ones in one transaction are not merged by PostgreSQL."""
        head = f'{{"c":{dumps(channel)},"o":{pub.offset}'
        if not pub.offset:
            head += f',"n":{self._next_nonce()}'
        frame = frame_text(pub.frame)
        if frame is not None:
            head += f',"x":{frame}'
        return notify_channel(self.prefix, channel), f'{head},"p":{pub_payload(pub)}}}'

    def _next_nonce(self) -> int:
        self._nonce += 1
        return self._nonce

    async def send_notifications(
        self, conn: asyncpg.Connection, items: list[tuple[str, str]]
    ) -> None:
        """``pg_notify`` each item in order, on ``conn`` (inside the caller's transaction);
        payloads too long for NOTIFY are stored and sent by reference."""
        rows = []
        for name, text in items:
            if len(text) > NOTIFY_LIMIT:
                ref = await conn.fetchval(
                    "INSERT INTO hubbub_notify_refs (payload, expires_at) VALUES ($1, $2) "
                    "RETURNING id",
                    text,
                    self._clock() + REF_TTL,
                )
                text = f'{{"r":{ref}}}'
            rows.append((name, text))
        if rows:
            await conn.executemany("SELECT pg_notify($1, $2)", rows)

    async def _notify_batch(self, items: list[tuple[str, str]]) -> list[None]:
        async def work(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                await self.send_notifications(conn, items)

        await self.store.run(work)
        return [None] * len(items)

    async def _notify(self, item: tuple[str, str]) -> None:
        try:
            await self._notifies.submit(item)
        except StoreError:
            self.errors += 1
            raise

    # -- publishing and history ----------------------------------------------------------

    async def publish(
        self,
        channel: str,
        pub: Publication,
        history: HistoryOptions | None,
        idempotency_key: str | None = None,
    ) -> Publication:
        if history is not None and history.enabled:
            try:
                stored, _new = await self.store.append(channel, pub, history, idempotency_key)
            except StoreError:
                self.errors += 1
                raise
            return stored
        plain = replace(pub, offset=0)
        await self._notify(self.publication_notification(channel, plain))
        return pub

    async def control(self, message: str) -> None:
        """NOTIFY on the control channel (group-committed like the other notifications)."""
        await self._notify((control_channel(self.prefix), f"{_CONTROL_HEAD}{message}}}"))

    async def _presence_event(self, channel: str, kind: str, info: ClientInfo) -> None:
        text = f'{{"c":{dumps(channel)},"n":{self._next_nonce()},"{kind}":{info.to_json()}}}'
        await self._notify((notify_channel(self.prefix, channel), text))

    async def publish_join(self, channel: str, info: ClientInfo) -> None:
        await self._presence_event(channel, "j", info)

    async def publish_leave(self, channel: str, info: ClientInfo) -> None:
        await self._presence_event(channel, "l", info)

    async def history(
        self, channel: str, *, since_offset: int | None, limit: int, reverse: bool
    ) -> HistoryResult:
        return await self.store.read(
            channel, since_offset=since_offset, limit=limit, reverse=reverse
        )

    async def position(self, channel: str) -> StreamPosition:
        return await self.store.position(channel)

    async def remove_history(self, channel: str) -> None:
        await self.store.remove(channel)

    # -- cluster view --------------------------------------------------------------------

    async def announce(self, uid: str, snapshot: dict[str, Any]) -> None:
        """Publish this node's snapshot; failures are left to the next announcement."""
        with contextlib.suppress(StoreError):
            await self.store.run(
                lambda conn: conn.execute(
                    "INSERT INTO hubbub_nodes VALUES ($1, $2, $3) ON CONFLICT (uid) DO UPDATE "
                    "SET snapshot = excluded.snapshot, expires_at = excluded.expires_at",
                    uid,
                    json.dumps(snapshot),
                    self._clock() + NODE_TTL,
                )
            )

    async def withdraw(self, uid: str) -> None:
        """Remove this node's snapshot (it stops); a failure leaves it to expire."""
        with contextlib.suppress(StoreError):
            await self.store.run(
                lambda conn: conn.execute("DELETE FROM hubbub_nodes WHERE uid = $1", uid)
            )

    async def nodes(self) -> list[dict[str, Any]]:
        rows = await self.store.run(
            lambda conn: conn.fetch(
                "SELECT snapshot FROM hubbub_nodes WHERE expires_at > $1", self._clock()
            )
        )
        return [json.loads(row["snapshot"]) for row in rows]


class PostgresPresence:
    """A :class:`hubbub.engines.base.PresenceManager` in the ``hubbub_presence`` table."""

    def __init__(self, broker: PostgresBroker, *, clock: Clock = time.time) -> None:
        self._store = broker.store
        self._clock = clock

    async def add(self, channel: str, info: ClientInfo, ttl: float) -> None:
        await self._store.run(
            lambda conn: conn.execute(
                "INSERT INTO hubbub_presence VALUES ($1, $2, $3, $4) ON CONFLICT "
                "(channel, client) DO UPDATE SET info = excluded.info, "
                "expires_at = excluded.expires_at",
                channel,
                info.client,
                info.to_json(),
                self._clock() + ttl,
            )
        )

    async def remove(self, channel: str, client_id: str) -> None:
        await self._store.run(
            lambda conn: conn.execute(
                "DELETE FROM hubbub_presence WHERE channel = $1 AND client = $2",
                channel,
                client_id,
            )
        )

    async def presence(self, channel: str) -> dict[str, ClientInfo]:
        rows = await self._store.run(
            lambda conn: conn.fetch(
                "SELECT client, info FROM hubbub_presence WHERE channel = $1 AND expires_at > $2",
                channel,
                self._clock(),
            )
        )
        out = {}
        for row in rows:
            info = info_from_text(row["info"])
            if info is not None:
                out[row["client"]] = info
        return out

    async def stats(self, channel: str) -> tuple[int, int]:
        entries = await self.presence(channel)
        return len(entries), len({i.user for i in entries.values() if i.user})
