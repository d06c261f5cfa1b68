"""Server-side control of connected clients, on every node of the cluster.

The server API's ``subscribe``, ``unsubscribe``, ``disconnect`` and ``refresh`` name a user (and
maybe one of its clients); that user's connections may be on any node. A :class:`Control` is
the command as it travels: the node that got the API call applies it to its own clients and
sends it through the engine's control channel (Redis pub/sub, PostgreSQL NOTIFY) to every
other node, which applies it to theirs. Delivery to other nodes is at most once, like
publications: a node that is cut off from the engine misses it (its clients are asked to
reconnect and recover when the engine comes back). The same channel carries the questions and
answers of :mod:`hubbub.survey`; :func:`answer` is what this node answers (``connections``).

Wire form: compact JSON, ``{"o": <origin node uid>, "k": <kind>, ...fields}``;
:func:`decode` refuses anything else with ValueError, so a foreign message on the channel is
dropped, never half-applied.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from hubbub import claims, survey
from hubbub.bounded import stop_tasks
from hubbub.core.codes import ErrorCode
from hubbub.core.jsontext import dumps
from hubbub.errors import ClientError, StoreError

log = logging.getLogger(__name__)

Kind = Literal["subscribe", "unsubscribe", "disconnect", "refresh"]
KINDS: Final[frozenset[str]] = frozenset({"subscribe", "unsubscribe", "disconnect", "refresh"})
#: Control commands from other nodes waiting to be applied; more are dropped (at most once
#: delivery, as publications), so a flood of API calls elsewhere cannot grow this node.
INBOX_LIMIT: Final = 10_000
#: Seconds the inbox waits for its worker to end once cancelled, at shutdown.
STOP_TIMEOUT: Final = 1.0
#: Bytes of connection descriptions one node puts in its ``connections`` answer; the
#: connections past it are left out and the answer says ``truncated``.
ANSWER_LIMIT: Final = 256 * 1024


class ControlledClient(Protocol):
    """A channel-protocol client as the server API reaches it."""

    @property
    def client_id(self) -> str: ...

    @property
    def user(self) -> str: ...

    async def server_subscribe(
        self, channel: str, info: Any = None, data: Any = None, override: Any = None
    ) -> None: ...

    async def server_unsubscribe(
        self, channel: str, code: int = 2000, reason: str = "server unsubscribe"
    ) -> None: ...

    async def insufficient_state(self, channel: str) -> None:
        """Publications of ``channel`` were lost on their way to this node: the client is
        made to recover them (resubscribe or reconnect)."""
        ...

    def disconnect(self, code: int, reason: str) -> None: ...

    async def server_refresh(self, expired: bool, expire_at: int, info: Any = None) -> None:
        """Expire the connection now (``expired``), at Unix time ``expire_at``, or never
        (``expire_at`` 0); ``info`` (a JSON value, None: unchanged) replaces its conn info."""
        ...

    def connection_info(self) -> dict[str, Any]:
        """The connection as the server API's ``connections`` describes it (a JSON object:
        Centrifugo's ``ConnectionInfo``)."""
        ...


class ClientDirectory(Protocol):
    """This node's connected clients (the node)."""

    def client(self, client_id: str) -> ControlledClient | None: ...

    def clients_of(self, user: str) -> list[ControlledClient]: ...


@dataclass(frozen=True, slots=True)
class Control:
    """One control command for the connections of ``user`` (only ``client`` when set).

    ``subscribe``: ``channel``, ``info`` and ``data`` (JSON values or None) and ``override``
    (Centrifugo's override object, checked by :func:`hubbub.claims.override`, or None);
    ``unsubscribe``: ``channel``; ``disconnect``: ``code``, ``reason`` and ``keep`` (client ids
    spared); ``refresh``: ``expired``, ``expire_at`` (Unix seconds, 0: never) and ``info`` (the
    new conn info, None: unchanged).
    """

    kind: Kind
    user: str
    client: str = ""
    channel: str = ""
    info: Any = None
    data: Any = None
    code: int = 0
    reason: str = ""
    keep: tuple[str, ...] = field(default=())
    expired: bool = False
    expire_at: int = 0
    override: dict[str, Any] | None = None

    def encode(self, origin: str) -> str:
        """The wire form, sent by node ``origin``."""
        body: dict[str, Any] = {"o": origin, "k": self.kind, "u": self.user}
        if self.client:
            body["c"] = self.client
        if self.kind == "disconnect":
            body.update(code=self.code, reason=self.reason, keep=list(self.keep))
        elif self.kind == "refresh":
            body.update(expired=self.expired, expire_at=self.expire_at)
            if self.info is not None:
                body["info"] = self.info
        else:
            body["ch"] = self.channel
            if self.kind == "subscribe":
                body.update(info=self.info, data=self.data)
                if self.override is not None:
                    body["override"] = self.override
        return dumps(body)


def decode(text: str) -> tuple[str, Control | survey.Question | survey.Answer]:
    """``(origin node uid, message)`` from :meth:`Control.encode`'s text (or a survey
    message's); ValueError for anything else."""
    try:
        obj = json.loads(text)
    except RecursionError:
        raise ValueError("control message nested too deeply") from None
    if not isinstance(obj, dict):
        raise ValueError("control message is not an object")
    origin, kind, user = obj.get("o"), obj.get("k"), obj.get("u")
    if isinstance(origin, str) and kind in survey.KINDS:
        return origin, survey.decode(origin, kind, obj)
    client = obj.get("c", "")
    if not (isinstance(origin, str) and kind in KINDS and isinstance(user, str)):
        raise ValueError("control message without origin, kind or user")
    if not isinstance(client, str):
        raise ValueError("control message with a bad client id")
    if kind == "disconnect":
        code, reason, keep = obj.get("code"), obj.get("reason"), obj.get("keep", [])
        if type(code) is not int or not isinstance(reason, str) or not isinstance(keep, list):
            raise ValueError("disconnect without code or reason")
        spared = tuple(str(k) for k in keep)
        return origin, Control("disconnect", user, client, code=code, reason=reason, keep=spared)
    if kind == "refresh":
        expired, expire_at = obj.get("expired"), obj.get("expire_at")
        if not isinstance(expired, bool) or type(expire_at) is not int or expire_at < 0:
            raise ValueError("refresh without expired or expire_at")
        info = obj.get("info")
        return origin, Control(
            "refresh", user, client, info=info, expired=expired, expire_at=expire_at
        )
    channel = obj.get("ch")
    if not isinstance(channel, str) or not channel:
        raise ValueError("control message without channel")
    info, data, override = obj.get("info"), obj.get("data"), obj.get("override")
    if override is not None:
        try:
            claims.override(override)  # (checked at the API node; not from a hubbub node)
        except claims.ClaimError as exc:
            raise ValueError(f"control message with a bad override: {exc}") from None
    return origin, Control(kind, user, client, channel, info, data, override=override)


def targets(clients: ClientDirectory, cmd: Control) -> list[ControlledClient]:
    """The local clients ``cmd`` is for."""
    if cmd.client:
        found = clients.client(cmd.client)
        return [found] if found is not None and found.user == cmd.user else []
    return clients.clients_of(cmd.user)


async def apply(clients: ClientDirectory, cmd: Control) -> None:
    """Carry ``cmd`` out on the local clients it is for. Raises ClientError for a subscribe
    this node's clients cannot take (other than being subscribed already)."""
    for client in targets(clients, cmd):
        if cmd.kind == "subscribe":
            try:
                await client.server_subscribe(cmd.channel, cmd.info, cmd.data, cmd.override)
            except ClientError as exc:
                if exc.code != ErrorCode.ALREADY_SUBSCRIBED:
                    raise
        elif cmd.kind == "unsubscribe":
            await client.server_unsubscribe(cmd.channel)
        elif cmd.kind == "refresh":
            await client.server_refresh(cmd.expired, cmd.expire_at, cmd.info)
        elif client.client_id not in cmd.keep:
            client.disconnect(cmd.code, cmd.reason)


def answer(clients: ClientDirectory, op: str, params: Mapping[str, Any]) -> Any:
    """This node's answer to a survey (:data:`hubbub.survey.Responder`): for
    ``connections``, ``{"connections": {client id: info}}`` of the local connections of
    ``params["user"]``, at most :data:`ANSWER_LIMIT` bytes of them (then also
    ``"truncated": true``). ValueError for another op or bad params."""
    if op != "connections":
        raise ValueError(f"unknown survey op {op!r}")
    user = params.get("user")
    if not isinstance(user, str):
        raise ValueError("connections survey without user")
    found: dict[str, Any] = {}
    budget = ANSWER_LIMIT
    for client in clients.clients_of(user):
        info = client.connection_info()
        budget -= len(client.client_id) + len(dumps(info)) + 4
        if budget < 0:
            return {"connections": found, "truncated": True}
        found[client.client_id] = info
    return {"connections": found}


#: What the inbox holds: commands, and the survey questions queued behind them.
Inbound = Control | survey.Question


class Inbox:
    """This node's end of the control channel (:meth:`take`): survey answers go to
    ``surveys`` at once; control commands and survey questions from other nodes are handled
    one after another in arrival order (a subscribe then an unsubscribe must not overtake
    each other; a question after a command sees its effect), at most :data:`INBOX_LIMIT`
    waiting: more are dropped and counted in ``dropped``. Failures are logged, never raised."""

    def __init__(self, clients: ClientDirectory, surveys: survey.Surveys) -> None:
        self._clients = clients
        self._surveys = surveys
        self._queue: asyncio.Queue[Inbound] | None = None
        self._worker: asyncio.Task[None] | None = None
        self.dropped = 0

    def take(self, message: str, own_uid: str) -> None:
        """A message from the control channel; malformed ones are dropped (logged), this
        node's own ones skipped (applied when they were sent)."""
        try:
            origin, item = decode(message)
        except (ValueError, RecursionError) as exc:
            log.warning("ignoring a malformed control message: %s", exc)
            return
        if origin == own_uid:
            return
        if isinstance(item, survey.Answer):
            self._surveys.answered(item)
            return
        if isinstance(item, survey.Question) and item.to and item.to != own_uid:
            return  # a question for another node
        if self._queue is None:
            self._queue = asyncio.Queue(INBOX_LIMIT)
            self._worker = asyncio.get_running_loop().create_task(self._handle_all(self._queue))
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped % 1000 == 1:  # one log line per thousand, not a flood
                log.warning("control queue full: %d commands dropped", self.dropped)

    async def stop(self) -> None:
        """Cancel the worker (again while it runs on: an engine command can swallow a
        cancellation), at most :data:`STOP_TIMEOUT` seconds."""
        if self._worker is not None:
            await stop_tasks([self._worker], STOP_TIMEOUT, "control inbox")
        self._queue = self._worker = None

    async def _handle_all(self, queue: asyncio.Queue[Inbound]) -> None:
        while True:
            await self._handle(await queue.get())

    async def _handle(self, item: Inbound) -> None:
        if isinstance(item, survey.Question):
            what = f"survey {item.op!r} of {item.asker}"
        else:
            what = f"control {item.kind} for user {item.user!r}"
        try:
            if isinstance(item, survey.Question):
                await self._surveys.respond(item)
            else:
                await apply(self._clients, item)
        except (ClientError, StoreError, ValueError) as exc:
            log.info("%s: %s", what, exc)
        except Exception:
            log.exception("%s failed", what)
