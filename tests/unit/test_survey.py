"""Surveys between nodes joined by an in-memory control channel."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

import pytest

from hubbub import control, survey
from hubbub.core.codes import ErrorCode
from hubbub.errors import ClientError, StoreError
from hubbub.survey import Answer, Question, Surveys, SurveyTimeout


class Bus:
    """A control channel: every message sent reaches every other node's surveys, decoded as
    the node would decode it. ``silent`` nodes never answer."""

    def __init__(self) -> None:
        self.nodes: dict[str, Surveys] = {}
        self.sent: list[str] = []
        self.silent: set[str] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    def join(self, uid: str, answer: Any = None) -> Surveys:
        def respond(op: str, params: Mapping[str, Any]) -> Any:
            if op != "count":
                raise ValueError(op)
            return answer if answer is not None else {"node": uid, "asked": dict(params)}

        async def send(text: str) -> None:
            self.sent.append(text)
            origin, msg = control.decode(text)
            for other, surveys in self.nodes.items():
                if other == origin:
                    continue
                if isinstance(msg, Answer):
                    surveys.answered(msg)
                elif isinstance(msg, Question) and other not in self.silent:
                    task = asyncio.get_running_loop().create_task(surveys.respond(msg))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)

        self.nodes[uid] = Surveys(uid, send, respond)
        return self.nodes[uid]


async def test_every_node_answers() -> None:
    bus = Bus()
    a = bus.join("a")
    bus.join("b")
    bus.join("c")
    got = await a.ask("count", {"x": 1}, ["a", "b", "c"])
    assert got == {uid: {"node": uid, "asked": {"x": 1}} for uid in "abc"}
    assert a.in_flight == 0


async def test_alone_nothing_is_sent() -> None:
    bus = Bus()
    a = bus.join("a")
    assert await a.ask("count", {}, ["a"]) == {"a": {"node": "a", "asked": {}}}
    assert await a.ask("count", {}, []) == {"a": {"node": "a", "asked": {}}}
    assert bus.sent == []


async def test_a_silent_node_fails_the_survey(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(survey, "SURVEY_TIMEOUT", 0.2)
    bus = Bus()
    a = bus.join("a")
    bus.join("b")
    bus.join("c")
    bus.silent.add("c")
    with pytest.raises(SurveyTimeout) as caught:
        await a.ask("count", {}, ["a", "b", "c"])
    assert (caught.value.missing, caught.value.asked) == (1, 2)
    assert isinstance(caught.value, StoreError)  # the API answers 100
    assert a.in_flight == 0


async def test_stray_answers_are_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Answers to another node, to no survey in flight, from a node not asked, or a second
    one from the same node change nothing."""
    monkeypatch.setattr(survey, "SURVEY_TIMEOUT", 0.3)
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    a = Surveys("a", send, lambda op, params: "mine")
    asking = asyncio.create_task(a.ask("count", {}, ["a", "b"]))
    await asyncio.sleep(0.01)
    _, question = control.decode(sent[0])
    assert isinstance(question, Question)
    sid = question.id
    a.answered(Answer(sid, "z", "b", "for z"))
    a.answered(Answer(sid + 1, "a", "b", "no such survey"))
    a.answered(Answer(sid, "a", "x", "not asked"))
    assert not asking.done()
    a.answered(Answer(sid, "a", "b", "first"))
    a.answered(Answer(sid, "a", "b", "second"))
    assert await asking == {"a": "mine", "b": "first"}


async def test_surveys_in_flight_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(survey, "SURVEY_TIMEOUT", 0.5)

    async def send(text: str) -> None:
        return None

    a = Surveys("a", send, lambda op, params: None)
    pending = [
        asyncio.create_task(a.ask("count", {}, ["a", "b"])) for _ in range(survey.MAX_SURVEYS)
    ]
    await asyncio.sleep(0.01)
    with pytest.raises(ClientError) as caught:
        await a.ask("count", {}, ["a", "b"])
    assert caught.value.code == ErrorCode.TOO_MANY_REQUESTS
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    assert a.in_flight == 0


async def test_questions_to_one_node_starve_neither_surveys_nor_other_nodes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A flood of questions to one node (forwarded emulation requests, a dead node's) fills
    only that node's budget: surveys and questions to other nodes still go out."""
    monkeypatch.setattr(survey, "SURVEY_TIMEOUT", 0.5)
    bus = Bus()
    a = bus.join("a")
    bus.join("b")
    bus.join("dead")
    bus.silent.add("dead")
    stuck = [
        asyncio.create_task(a.ask_node("count", {}, "dead"))
        for _ in range(survey.MAX_PER_NODE + survey.MAX_QUEUED)
    ]
    await asyncio.sleep(0.01)
    assert a.in_flight == survey.MAX_PER_NODE
    with pytest.raises(ClientError) as caught:
        await a.ask_node("count", {}, "dead")
    assert caught.value.code == ErrorCode.TOO_MANY_REQUESTS
    assert await a.ask("count", {}, ["a", "b"]) == {uid: {"node": uid, "asked": {}} for uid in "ab"}
    assert await a.ask_node("count", {"y": 2}, "b") == {"node": "b", "asked": {"y": 2}}
    outcomes = await asyncio.gather(*stuck, return_exceptions=True)
    assert all(isinstance(outcome, SurveyTimeout) for outcome in outcomes)
    assert a.in_flight == 0
    assert await a.ask_node("count", {}, "b") == {"node": "b", "asked": {}}


async def test_questions_to_one_node_beyond_its_budget_wait_for_their_turn() -> None:
    bus = Bus()
    a = bus.join("a")
    bus.join("b")
    many = survey.MAX_PER_NODE + 10
    answers = await asyncio.gather(*(a.ask_node("count", {"i": i}, "b") for i in range(many)))
    assert answers == [{"node": "b", "asked": {"i": i}} for i in range(many)]
    assert a.in_flight == 0


async def test_a_question_ends_at_its_deadline_even_when_sending_loses_a_cancellation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """redis-py's send uses asyncio.wait_for, which on Python 3.11 can swallow the caller's
    cancellation: a deadline must not depend on it reaching through the send."""
    monkeypatch.setattr(survey, "SURVEY_TIMEOUT", 0.2)

    async def send(text: str) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.4)

    a = Surveys("a", send, lambda op, params: None)
    with pytest.raises(SurveyTimeout):
        await asyncio.wait_for(a.ask_node("count", {}, "b"), 5)
    assert a.in_flight == 0


async def test_a_question_that_cannot_be_sent_fails_at_once() -> None:
    async def send(text: str) -> None:
        raise StoreError("engine down")

    a = Surveys("a", send, lambda op, params: None)
    with pytest.raises(StoreError, match="engine down"):
        await a.ask("count", {}, ["a", "b"])
    assert a.in_flight == 0


async def test_an_unknown_op_gets_no_answer() -> None:
    bus = Bus()
    bus.join("a")
    b = bus.join("b")
    with pytest.raises(ValueError):
        await b.respond(Question(1, "a", "nonsense", {}))
    assert bus.sent == []
