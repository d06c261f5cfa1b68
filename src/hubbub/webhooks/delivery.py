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
- **A body per attempt.** Each POST asks the target for its body and headers anew
  (``Target.body``, then ``Target.headers`` of that body): a target that stamps its body
  with the time (Pusher's ``time_ms``) sends a retried batch with a current time and a
  signature of what is sent.
- **The status decides.** After a 2xx the events are settled as delivered once at most
  :data:`ANSWER_LIMIT` bytes of the body were read (and dropped) for at most
  :data:`ANSWER_SECONDS`: a receiver that never ends its body (or trickles it) does not hold
  the batch until the timeout and have it sent again. (A body not read to its end closes
  the connection instead of reusing it.)
- **The outbox failing does not stop it.** A claim, the removal of expired events or a
  settle that raises (a StoreError, or anything unexpected) is logged; the loop goes on after
  a back-off of the store's failures in a row (at most ``max_backoff``, at least
  :data:`STORE_PAUSE_MIN`: never a busy loop).
  :meth:`Deliverer.stop` ends it at any point.
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
#: Fewest seconds the loop waits after the outbox failed (never a busy loop).
STORE_PAUSE_MIN: Final = 0.05
#: Seconds between two reads of the outbox depth (``hubbub_webhook_outbox_depth``).
DEPTH_INTERVAL: Final = 5.0
#: Bytes of an answer's body read at most (the body means nothing; the status does).
ANSWER_LIMIT: Final = 64 * 1024
#: Seconds an answer's body is read at most (then the events are settled all the same).
ANSWER_SECONDS: Final = 1.0
#: Seconds :meth:`Deliverer.stop` waits for its requests once they are cancelled.
STOP_TIMEOUT: Final = 1.0


def _everything(kind: str, channel: str | None) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class Target:
    """Where a target's events go: ``name`` (their target in the outbox), ``url``, and how a
    batch becomes a request: ``body`` (the events' JSON objects as stored -> bytes: a target
    with another format reshapes them here; called on every attempt) and ``headers`` (the
    body -> the headers that sign it); ``accepts`` (an event's type and channel -> whether
    the target gets it)."""

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
    """An event's type, read from its JSON text without parsing all of it (for logs): the
    ``type`` of hubbub's events, the ``name`` a Pusher event starts with."""
    field = '"name":"' if payload.startswith('{"name":"') else '"type":"'
    start = payload.find(field)
    if start < 0:
        return "?"
    start += len(field)
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
        #: Failures of the outbox in a row (claims, removals, settles).
        self.store_failing = 0
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
                self.store_failing = 0
            except Exception as exc:  # (StoreError, or a bug: the loop goes on either way)
                slots.release()
                await asyncio.sleep(self._store_failed("claiming from the outbox", exc))
                continue
            claimed = len(batch)
            batch, pause = await self._drop_expired(batch, now)
            if batch:
                task = asyncio.get_running_loop().create_task(self._send(batch))
                self._sends.add(task)
                task.add_done_callback(self._sends.discard)
                task.add_done_callback(lambda _: slots.release())
            else:
                slots.release()
            if pause:  # (the expired events stay claimed until their lease ends)
                await asyncio.sleep(pause)
            elif not claimed:  # (nothing due; when all were expired there may be more, at once)
                await self._idle()

    def _store_failed(self, what: str, exc: Exception) -> float:
        """Count and log (the first and every 100th in a row) a failure of the outbox; the
        seconds to wait before the next claim (doubling, at most ``max_backoff``)."""
        self.store_failing += 1
        if self.store_failing == 1 or self.store_failing % 100 == 0:
            log.warning(
                "webhooks: %s failed (%d in a row): %s",
                what,
                self.store_failing,
                exc,
                exc_info=not isinstance(exc, StoreError),
            )
        bound = min(self.max_backoff, BACKOFF_BASE * 2 ** min(self.store_failing, 6))
        return float(max(STORE_PAUSE_MIN, bound))

    async def _idle(self) -> None:
        """Wait for :meth:`wake` or the poll interval, whichever comes first."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._poll)

    async def _drop_expired(
        self, batch: list[OutboxEvent], now: float
    ) -> tuple[list[OutboxEvent], float]:
        """Remove the events older than ``max_age``; the others, and the seconds to pause
        before the next claim (0, or a back-off when the outbox failed to remove them: they
        stay claimed and come back after their lease)."""
        kept = [e for e in batch if now - e.created <= self.max_age]
        expired = [e for e in batch if now - e.created > self.max_age]
        if not expired:
            return batch, 0.0
        try:
            await self.outbox.ack(self.target.name, [e.id for e in expired])
        except Exception as exc:  # (StoreError, or a bug: the loop goes on either way)
            return kept, self._store_failed("removing expired events", exc)
        self.store_failing = 0
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
        return kept, 0.0

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
        ids = [e.id for e in batch]
        problem = ""
        status = 0
        try:
            # (In the try: a target's body or headers that raise are a failed POST, retried,
            # not a send task that dies and leaves its events to their lease.)
            body = target.body([e.payload for e in batch])
            async with self._session().post(
                target.url, data=body, headers=target.headers(body), allow_redirects=False
            ) as resp:
                status = resp.status
                await _discard(resp)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            problem = str(exc) or type(exc).__name__
        except Exception as exc:  # (a bad URL, a bug): a failure like any other, logged
            log.exception("webhooks: POST %s failed", target.name)
            problem = repr(exc)
        if 200 <= status < 300:  # (the status decides, whatever became of the body after it)
            self.failing = 0
            await self._settle(ids, None)
            self.delivered += len(batch)
            self.depth = max(0, self.depth - len(batch))
            return
        problem = problem or f"status {status}"
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
        except Exception as exc:  # (StoreError, or a bug: the events wait for their lease)
            self._store_failed(f"settling {len(ids)} events", exc)
        else:
            self.store_failing = 0


async def _discard(resp: aiohttp.ClientResponse) -> None:
    """Read and drop at most :data:`ANSWER_LIMIT` bytes of the answer's body, for at most
    :data:`ANSWER_SECONDS`; a body cut short or failing is no error (the status decides)."""
    import aiohttp

    left = ANSWER_LIMIT
    with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
        async with asyncio.timeout(ANSWER_SECONDS):
            while left > 0:
                chunk = await resp.content.read(left)
                if not chunk:
                    break
                left -= len(chunk)
