"""Delivering a target's events from the outbox: claim a batch, POST it, acknowledge or retry.

A :class:`Target` is where events go and how a request is made of them (its body format and
its signing): the webhook target (``webhook_url``, a JSON array signed with
``webhook_secret``) is one; others (a Pusher app's webhooks) add their own, with their own
events in the outbox under their name.

Guarantees of :class:`Deliverer` (one per target and node; every node of a cluster runs one):

- **At least once.** An event leaves the outbox only when a POST that carried it got a 2xx
  answer, or when it is older than ``max_age`` (then it is counted in ``dropped`` and logged
  with its id and type). Anything else (another status, a timeout, a refused connection)
  makes the batch's events due again after a full-jitter exponential back-off: a random delay
  in ``[0, min(max_backoff, BACKOFF_BASE * 2 ** attempts)]``.
- **One node at a time per event.** Events are claimed with a lease (:mod:`.outbox
  <hubbub.engines.eventoutbox>`) of ``timeout + LEASE_MARGIN`` seconds: another node takes them
  only when the lease ran out (this one died, or its request outlived the timeout).
- **Bounded.** At most ``concurrency`` requests at once, each of at most ``batch_size``
  events; no request outlives ``timeout``. While the target fails, each claim waits a
  back-off of the failures in a row first, so a backlog is not replayed at full speed
  against a backend that is down or just came back.
- **Prompt.** :meth:`wake` (an event was just added here) starts a claim at once; otherwise
  the outbox is polled every :data:`POLL_INTERVAL` seconds at most (events of other nodes,
  retries coming due).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from hubbub import __version__, webhooks
from hubbub.bounded import stop_tasks
from hubbub.engines.eventoutbox import EventOutbox, OutboxEvent
from hubbub.errors import StoreError
from hubbub.webhooks import events

if TYPE_CHECKING:  # imported when the first request is made: the ASGI edge runs without it
    import aiohttp

log = logging.getLogger(__name__)

#: Seconds of the first retry's back-off bound (doubled per attempt, up to max_backoff).
BACKOFF_BASE: Final = 0.5
#: Seconds a claim's lease lasts beyond the request timeout.
LEASE_MARGIN: Final = 5.0
#: Longest wait between two claims when nothing woke the deliverer.
POLL_INTERVAL: Final = 1.0
#: Seconds between two reads of the outbox depth (``hubbub_webhook_outbox_depth``).
DEPTH_INTERVAL: Final = 5.0
#: Bytes of an answer's body read at most (the body means nothing; the status does).
ANSWER_LIMIT: Final = 64 * 1024
#: Seconds :meth:`Deliverer.stop` waits for its requests once they are cancelled.
STOP_TIMEOUT: Final = 1.0


def _everything(kind: str, channel: str | None) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class Target:
    """Where a target's events go: ``name`` (their target in the outbox), ``url``, and how a
    batch becomes a request: ``body`` (the events' JSON objects as stored -> bytes: a target
    with another format reshapes them here) and ``headers`` (the body -> the headers that
    sign it); ``accepts`` (an event's type and channel -> whether the target gets it)."""

    name: str
    url: str
    body: Callable[[list[str]], bytes]
    headers: Callable[[bytes], Mapping[str, str]]
    accepts: Callable[[str, str | None], bool] = _everything


def webhook_target(url: str, secret: str) -> Target:
    """The ``webhook_url`` target: a JSON array, signed with ``X-Hubbub-Signature``."""

    def headers(body: bytes) -> Mapping[str, str]:
        return {
            "Content-Type": "application/json",
            "User-Agent": f"hubbub/{__version__}",
            webhooks.SIGNATURE_HEADER: webhooks.sign(body, secret),
        }

    return Target("webhook", url, events.body, headers)


def backoff(attempts: int, max_backoff: float, rand: Callable[[], float] = random.random) -> float:
    """Seconds until the next try after ``attempts`` failed ones (full jitter)."""
    bound = min(max_backoff, BACKOFF_BASE * 2 ** min(attempts - 1, 30))
    return float(bound * rand())


def event_type(payload: str) -> str:
    """An event's type, read from its JSON text without parsing all of it (for logs)."""
    start = payload.find('"type":"')
    if start < 0:
        return "?"
    start += len('"type":"')
    return payload[start : payload.find('"', start)]


class Deliverer:
    """See the module docstring."""

    def __init__(
        self,
        outbox: EventOutbox,
        target: Target,
        *,
        timeout: float,
        batch_size: int,
        max_backoff: float,
        max_age: float,
        concurrency: int,
        dropped: Counter[str] | None = None,
    ) -> None:
        self.outbox = outbox
        self.target = target
        self.timeout = timeout
        self.batch_size = batch_size
        self.max_backoff = max_backoff
        self.max_age = max_age
        self.concurrency = concurrency
        self._poll = min(POLL_INTERVAL, max(0.05, max_backoff / 2))
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None
        #: Events delivered (acknowledged with 2xx).
        self.delivered = 0
        #: Events whose request failed, made due again.
        self.retried = 0
        #: Events dropped, by reason (``max_age``).
        self.dropped: Counter[str] = Counter() if dropped is None else dropped
        #: Requests that failed (any reason), in all and in a row.
        self.failures = 0
        self.failing = 0
        #: Events in the outbox of this target (read every DEPTH_INTERVAL seconds).
        self.depth = 0
        self._depth_read = 0.0

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop claiming and cancel the requests under way (their events stay in the outbox
        and come due again after their lease)."""
        tasks = [t for t in (self._task, *self._sends) if t is not None]
        await stop_tasks(tasks, STOP_TIMEOUT, "webhook delivery")
        self._task = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _run(self) -> None:
        slots = asyncio.Semaphore(self.concurrency)
        store_failing = 0
        while True:
            await slots.acquire()
            if self.failing:  # the target fails: pace the next claim (not a flood when it
                # comes back), on top of each event's own back-off
                await asyncio.sleep(backoff(self.failing, self.max_backoff))
            try:
                now = time.time()
                if now - self._depth_read >= DEPTH_INTERVAL:
                    self._depth_read = now
                    self.depth = await self.outbox.depth(self.target.name)
                self._wake.clear()
                lease = self.timeout + LEASE_MARGIN
                batch = await self.outbox.claim(self.target.name, self.batch_size, now, lease)
                store_failing = 0
            except Exception as exc:  # (StoreError, or a bug: the loop goes on either way)
                slots.release()
                store_failing += 1
                if store_failing == 1 or store_failing % 100 == 0:
                    log.warning(
                        "webhooks: claiming from the outbox failed (%d in a row): %s",
                        store_failing,
                        exc,
                        exc_info=not isinstance(exc, StoreError),
                    )
                await asyncio.sleep(
                    min(self.max_backoff, BACKOFF_BASE * 2 ** min(store_failing, 6))
                )
                continue
            claimed = len(batch)
            batch = await self._drop_expired(batch, now)
            if not batch:
                slots.release()
                if not claimed:  # (all expired: there may be more, claim again at once)
                    await self._idle()
                continue
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)
            task.add_done_callback(lambda _: slots.release())

    async def _idle(self) -> None:
        """Wait for :meth:`wake` or the poll interval, whichever comes first."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._poll)

    async def _drop_expired(self, batch: list[OutboxEvent], now: float) -> list[OutboxEvent]:
        expired = [e for e in batch if now - e.created > self.max_age]
        if not expired:
            return batch
        try:
            await self.outbox.ack(self.target.name, [e.id for e in expired])
        except StoreError as exc:
            log.warning("webhooks: expired events could not be removed: %s", exc)
            return [e for e in batch if now - e.created <= self.max_age]
        self.depth = max(0, self.depth - len(expired))
        for event in expired:
            self.dropped["max_age"] += 1
            log.error(
                "webhooks: event %s (%s) dropped: not delivered within webhook_max_age "
                "(%.0f s, %d attempts)",
                event.id,
                event_type(event.payload),
                self.max_age,
                event.attempts,
            )
        return [e for e in batch if now - e.created <= self.max_age]

    def _session(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._http is None:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.concurrency),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            )
        return self._http

    async def _send(self, batch: list[OutboxEvent]) -> None:
        import aiohttp

        target = self.target
        body = target.body([e.payload for e in batch])
        ids = [e.id for e in batch]
        problem = ""
        try:
            async with self._session().post(
                target.url, data=body, headers=target.headers(body), allow_redirects=False
            ) as resp:
                await resp.content.read(ANSWER_LIMIT)  # (ignored; read so the connection is reused)
                if 200 <= resp.status < 300:
                    self.failing = 0
                    await self._settle(ids, None)
                    self.delivered += len(batch)
                    self.depth = max(0, self.depth - len(batch))
                    return
                problem = f"status {resp.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            problem = str(exc) or type(exc).__name__
        except Exception as exc:  # (a bad URL, a bug): a failure like any other, logged
            log.exception("webhooks: POST %s failed", target.name)
            problem = repr(exc)
        self.failures += 1
        self.failing += 1
        attempts = max(e.attempts for e in batch) + 1
        delay = backoff(attempts, self.max_backoff)
        if self.failures == 1 or self.failures % 100 == 0:
            log.warning(
                "webhooks: POST %s failed (%s; %d failures so far); %d events retried",
                target.name,
                problem,
                self.failures,
                len(batch),
            )
        await self._settle(ids, time.time() + delay)
        self.retried += len(batch)

    async def _settle(self, ids: list[str], due: float | None) -> None:
        """Acknowledge (``due`` None) or retry; a failing outbox leaves the events to their
        lease (delivered again: at least once)."""
        try:
            if due is None:
                await self.outbox.ack(self.target.name, ids)
            else:
                await self.outbox.retry(self.target.name, ids, due)
        except StoreError as exc:
            log.warning("webhooks: the outbox failed to settle %d events: %s", len(ids), exc)
