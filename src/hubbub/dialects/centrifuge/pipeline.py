"""Replies of one channel-protocol connection in command order, while its publishes are
stored concurrently (pipelined into the store's group commit).

Guarantees:

- **Order.** Every answer is posted in the order of the commands: a publish's reply when its
  publication is stored (or failed), any other answer (:meth:`Replies.answer`) after the
  replies of the publishes before it.
- **Publications in order.** :meth:`Replies.start` starts each publish as a task in command
  order; the stores queue appends in the order they are called, so a connection's
  publications get increasing offsets in command order.
- **Bounded.** At most :data:`PUBLISH_WINDOW` publishes of a connection are pending. A publish
  that finds the window full waits up to :data:`PUBLISH_WAIT` for the oldest (the connection
  is not read meanwhile, so TCP slows its client down), then is refused with 111; after
  :data:`WINDOW_STRIKES` such refusals in a row the connection is cut with 3013.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Final

from hubbub.core.codes import Disconnects, ErrorCode
from hubbub.errors import ClientError, DisconnectError, StoreError

log = logging.getLogger(__name__)

#: Publishes of one connection waiting for their store at once (a group commit takes up to
#: 1000 per transaction).
PUBLISH_WINDOW: Final = 1000
#: Seconds a publish waits for room in a full window before it is refused with 111: a store
#: that keeps up absorbs bursts, an overloaded one shows as errors, not as a queue whose
#: latency grows without bound.
PUBLISH_WAIT: Final = 1.0
#: Publishes refused in a row because the window stayed full; then the client is cut (3013).
WINDOW_STRIKES: Final = 100

#: A reply as the connection's codec wrote it (text or binary).
Message = str | bytes
#: How a failed command is answered: (command id, method, error) -> the reply.
ErrorText = Callable[[int, str | None, "ClientError | StoreError"], Message]
#: How a stored publish is answered: command id -> the reply.
PublishedText = Callable[[int], Message]


class Replies:
    """The answers of one connection; see the module docstring. Made at its first publish."""

    __slots__ = (
        "_error_text",
        "_line",
        "_name",
        "_post",
        "_published",
        "_unacked",
        "window_strikes",
    )

    def __init__(
        self,
        post: Callable[[Message], None],
        published: PublishedText,
        error_text: ErrorText,
        name: str,
    ) -> None:
        self._post = post
        self._published = published
        self._error_text = error_text
        self._name = name
        #: Answers not posted yet, in command order: (id, "publish" or "" for a ready text,
        #: the publish task or a future holding the text).
        self._line: deque[tuple[int, str, asyncio.Future[Any]]] = deque()
        self._unacked = 0  # publishes started and not yet completed
        self.window_strikes = 0

    @property
    def waiting(self) -> bool:
        """Whether answers are waiting behind a pending publish."""
        return bool(self._line)

    def answer(self, cid: int, text: Message) -> None:
        """Post ``text`` now, or after the publishes still pending before it."""
        if not self._line:
            self._post(text)
            return
        done: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        done.set_result(text)
        self._line.append((cid, "", done))

    async def start(self, cid: int, publishing: Coroutine[Any, Any, Any]) -> None:
        """Answer ``cid`` once ``publishing`` is done, without waiting for it (the window
        rule of the module docstring applies; a refused ``publishing`` is closed unrun)."""
        if self._unacked >= PUBLISH_WINDOW:
            oldest = next((done for _, _, done in self._line if not done.done()), None)
            if oldest is not None:
                try:
                    await asyncio.wait({oldest}, timeout=PUBLISH_WAIT)
                except BaseException:  # cancelled while waiting: never to run
                    publishing.close()
                    raise
        if self._unacked >= PUBLISH_WINDOW:
            publishing.close()
            self.window_strikes += 1
            if self.window_strikes > WINDOW_STRIKES:
                d = Disconnects.TOO_MANY_REQUESTS
                raise DisconnectError(d.code, d.reason)
            raise ClientError(ErrorCode.TOO_MANY_REQUESTS, "too many requests: publishes pending")
        self.window_strikes = 0
        task = asyncio.get_running_loop().create_task(publishing)
        self._unacked += 1
        self._line.append((cid, "publish", task))
        task.add_done_callback(self._acked)

    def _acked(self, task: asyncio.Future[Any]) -> None:
        """A publish completed: post every answer at the head of the line that is ready."""
        self._unacked -= 1
        line = self._line
        while line and line[0][2].done():
            cid, method, done = line.popleft()
            if done.cancelled():
                continue
            try:
                self._post(self._text(cid, method, done))
            except Exception:  # one bad answer must not hold up the line
                log.exception("%s: answering %d failed", self._name, cid)

    def _text(self, cid: int, method: str, done: asyncio.Future[Any]) -> Message:
        exc = done.exception()
        if exc is None:
            return done.result() if not method else self._published(cid)
        if isinstance(exc, ClientError | StoreError):
            return self._error_text(cid, method, exc)
        log.error("%s: publish failed", self._name, exc_info=exc)
        return self._error_text(cid, method, ClientError(ErrorCode.INTERNAL))

    async def drain(self) -> None:
        """Wait until every publish started so far is answered."""
        while self._line:
            pending = {done for _, _, done in self._line if not done.done()}
            if pending:
                await asyncio.wait(pending)
            await asyncio.sleep(0)  # let the done callbacks post the answers
