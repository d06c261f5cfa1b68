"""Surveys: a question to every node of the cluster, and their answers gathered.

The server API's ``connections`` needs what every node knows about its own clients. A survey
is a :class:`Question` with an id unique on the asking node, sent on the broker's control
channel (:meth:`hubbub.engines.base.Broker.control`), so that it reaches every node in order
with the control commands sent before it: a node answers once it has applied those (its
control queue), so an API ``subscribe`` followed by ``connections`` on the same node sees the
subscription everywhere. Each
node answers on the same channel with an :class:`Answer` addressed to the asker, which
gathers the answers in :meth:`Surveys.ask`.

Guarantees:

- :meth:`Surveys.ask` returns the answer of every node it was told about (the announced nodes;
  this node's own answer is computed here and never sent), or raises :class:`SurveyTimeout`
  when some did not answer within :data:`SURVEY_TIMEOUT` seconds: a partial answer is never
  passed off as the whole one (Centrifugo's surveys fail the same way). A node that died stays
  announced for up to 10 seconds, so surveys fail during that time (one that stops cleanly
  withdraws its announcement: :meth:`hubbub.node.Node.stop`).
- Bounded: at most :data:`MAX_SURVEYS` surveys in flight on a node (more: error 111), and
  apart from them at most :data:`MAX_PER_NODE` questions to each node (:meth:`Surveys.ask_node`;
  :data:`MAX_QUEUED` more wait for their turn, in order, beyond that error 111), so that a
  flood of questions to one node (what any client posts to ``/emulation`` is forwarded so),
  or to a dead node (each waits :data:`SURVEY_TIMEOUT`), starves neither the surveys nor the
  questions to other nodes, and delays those to the flooded node rather than refusing them;
  each keeps one answer per node asked; answers for no survey in flight, from nodes not asked, or
  repeated, are dropped. How large an answer is, is the responder's business (the
  ``connections`` answer is capped, see :mod:`hubbub.control`).
- Without other nodes (the memory engine, a single announced node) nothing is sent.

A question can also go to one node only (:meth:`Surveys.ask_node`: the emulation endpoint
hands a client's commands to the node holding its session): the others drop it unread.
Which ops a node answers is registered (:meth:`Surveys.register`) by the layers that know
them; ``connections`` is the node's own.

Wire form (the envelope of :mod:`hubbub.control`): a question is
``{"o": asker, "k": "survey", "id": <int>, "op": <str>, "p": {params}}`` (and ``"to": node``
when it is for one node), an answer
``{"o": answering node, "k": "answer", "id": <int>, "to": asker, "r": <JSON value>}``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from hubbub.core.codes import ErrorCode
from hubbub.core.jsontext import dumps
from hubbub.errors import ClientError, StoreError

#: Seconds an asker waits for the last answer.
SURVEY_TIMEOUT: Final = 2.0
#: Surveys a node may have in flight at once.
MAX_SURVEYS: Final = 64
#: Questions to one node (:meth:`Surveys.ask_node`) a node may have in flight to each node;
#: and how many more may wait for their turn.
MAX_PER_NODE: Final = 64
MAX_QUEUED: Final = 1024
#: The wire kinds of survey messages.
KINDS: Final = frozenset({"survey", "answer"})

#: What a node answers to ``(op, params)``: a JSON value (raises ValueError for an unknown op).
Responder = Callable[[str, Mapping[str, Any]], Any]


class SurveyTimeout(StoreError):
    """Some nodes did not answer in time; ``missing`` of ``asked`` nodes."""

    def __init__(self, op: str, missing: int, asked: int) -> None:
        self.missing = missing
        self.asked = asked
        super().__init__(f"survey {op}: {missing} of {asked} nodes did not answer in time")


@dataclass(frozen=True, slots=True)
class Question:
    """Survey ``id`` of node ``asker``: ``op`` with ``params`` (a JSON object)."""

    id: int
    asker: str
    op: str
    params: Mapping[str, Any] = field(default_factory=dict)
    #: The one node that answers ("": every node).
    to: str = ""

    def encode(self) -> str:
        body = {"o": self.asker, "k": "survey", "id": self.id, "op": self.op, "p": self.params}
        if self.to:
            body["to"] = self.to
        return dumps(body)


@dataclass(frozen=True, slots=True)
class Answer:
    """Node ``node``'s answer to survey ``id`` of ``asker``."""

    id: int
    asker: str
    node: str
    result: Any

    def encode(self) -> str:
        body = {"o": self.node, "k": "answer", "id": self.id, "to": self.asker, "r": self.result}
        return dumps(body)


def decode(origin: str, kind: str, obj: Mapping[str, Any]) -> Question | Answer:
    """The survey message of a decoded control envelope; ValueError when malformed."""
    sid = obj.get("id")
    if type(sid) is not int or sid < 0:
        raise ValueError("survey message without id")
    if kind == "survey":
        op, params, to = obj.get("op"), obj.get("p", {}), obj.get("to", "")
        if not isinstance(op, str) or not op or not isinstance(params, dict):
            raise ValueError("survey question without op or params")
        if not isinstance(to, str):
            raise ValueError("survey question with a bad addressee")
        return Question(sid, origin, op, params, to)
    asker = obj.get("to")
    if kind != "answer" or not isinstance(asker, str) or not asker or "r" not in obj:
        raise ValueError("survey answer without addressee or result")
    return Answer(sid, asker, origin, obj["r"])


class _Lane:
    """The questions to one node: ``turns`` lets :data:`MAX_PER_NODE` be in flight, ``users``
    counts those and the ones waiting."""

    __slots__ = ("turns", "users")

    def __init__(self) -> None:
        self.turns = asyncio.Semaphore(MAX_PER_NODE)
        self.users = 0


class Surveys:
    """The surveys of one node: asking (:meth:`ask`), answering (:meth:`respond`) and
    gathering (:meth:`answered`)."""

    def __init__(
        self, uid: str, send: Callable[[str], Awaitable[None]], respond: Responder
    ) -> None:
        self.uid = uid
        self._send = send
        self._respond = respond
        self._ops: dict[str, Responder] = {}
        self._ids = itertools.count(1)
        # Survey id -> (nodes still to answer, answers so far, done when all are in).
        self._open: dict[int, tuple[set[str], dict[str, Any], asyncio.Future[None]]] = {}
        self._surveys = 0  # of them sent to every node
        self._lanes: dict[str, _Lane] = {}  # questions to one node, by node

    @property
    def in_flight(self) -> int:
        return len(self._open)

    def register(self, op: str, responder: Responder) -> None:
        """Answer ``op`` with ``responder`` (instead of the default responder)."""
        self._ops[op] = responder

    def answer(self, op: str, params: Mapping[str, Any]) -> Any:
        """This node's answer to ``op`` (ValueError for an op it does not know)."""
        responder = self._ops.get(op, self._respond)
        return responder(op, params)

    async def ask_node(self, op: str, params: Mapping[str, Any], node: str) -> Any:
        """``node``'s answer to ``op`` (this node's own, computed here, when it is this
        node). At most :data:`MAX_PER_NODE` questions to ``node`` are in flight, the next ones
        wait for their turn in order (up to :data:`MAX_QUEUED` of them; more: ClientError
        111). SurveyTimeout when no answer came within :data:`SURVEY_TIMEOUT` of the call,
        StoreError when the question could not be sent."""
        if node == self.uid:
            return self.answer(op, params)
        lane = self._lanes.get(node)
        if lane is None:
            lane = self._lanes[node] = _Lane()
        elif lane.users >= MAX_PER_NODE + MAX_QUEUED:
            raise ClientError(
                ErrorCode.TOO_MANY_REQUESTS, "too many requests: questions to that node waiting"
            )
        lane.users += 1
        loop = asyncio.get_running_loop()
        deadline, turn, sid = loop.time() + SURVEY_TIMEOUT, False, next(self._ids)
        try:
            async with asyncio.timeout_at(deadline):
                turn = await lane.turns.acquire()
            answers: dict[str, Any] = {}
            done = loop.create_future()
            self._open[sid] = ({node}, answers, done)
            # Not under the deadline: a cancellation can be lost in the engine's client
            # (redis-py's wait_for, Python 3.11), the wait after it would then never end.
            await self._send(Question(sid, self.uid, op, dict(params), node).encode())
            async with asyncio.timeout_at(deadline):
                await done
            return answers[node]
        except TimeoutError:
            raise SurveyTimeout(op, 1, 1) from None
        finally:
            self._open.pop(sid, None)
            if turn:
                lane.turns.release()
            lane.users -= 1
            if not lane.users:
                del self._lanes[node]

    async def ask(
        self, op: str, params: Mapping[str, Any], nodes: Collection[str]
    ) -> dict[str, Any]:
        """Every node's answer to ``op`` by node uid (``nodes``: the other nodes to ask; this
        node answers too). SurveyTimeout when some stay silent, StoreError when the question
        could not be sent, ClientError 111 when :data:`MAX_SURVEYS` are in flight."""
        local = self.answer(op, params)
        waiting = {uid for uid in nodes if uid != self.uid}
        if not waiting:
            return {self.uid: local}
        if self._surveys >= MAX_SURVEYS:
            raise ClientError(ErrorCode.TOO_MANY_REQUESTS, "too many requests: surveys in flight")
        sid, asked = next(self._ids), len(waiting)
        answers: dict[str, Any] = {self.uid: local}
        done = asyncio.get_running_loop().create_future()
        self._open[sid] = (waiting, answers, done)
        self._surveys += 1
        try:
            await self._send(Question(sid, self.uid, op, dict(params)).encode())
            try:
                await asyncio.wait_for(done, SURVEY_TIMEOUT)
            except TimeoutError:
                raise SurveyTimeout(op, len(waiting), asked) from None
            return answers
        finally:
            del self._open[sid]
            self._surveys -= 1

    def answered(self, answer: Answer) -> None:
        """An answer from the control channel: kept when it is the first of its node for a
        survey of this node in flight, else dropped. Never awaits."""
        if answer.asker != self.uid:
            return
        underway = self._open.get(answer.id)
        if underway is None:
            return
        waiting, answers, done = underway
        if answer.node not in waiting:
            return
        waiting.discard(answer.node)
        answers[answer.node] = answer.result
        if not waiting and not done.done():
            done.set_result(None)

    async def respond(self, question: Question) -> None:
        """Answer ``question`` (from another node) on the control channel. ValueError for
        an op this node does not know (nothing is sent; the asker times out); StoreError
        when the answer could not be sent."""
        if question.to and question.to != self.uid:
            return
        result = self.answer(question.op, question.params)
        await self._send(Answer(question.id, question.asker, self.uid, result).encode())
