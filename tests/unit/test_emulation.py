"""The emulation's pure parts: requests decoded, frames fed in order and bounded, sessions
found, and the survey addressed to one node."""

from __future__ import annotations

import asyncio
import json

import pytest

from hubbub import survey
from hubbub.control import decode
from hubbub.dialects.centrifuge.emulation import (
    MAX_WAITING,
    BadEmulation,
    Delivery,
    EmulatedConnection,
    EmulationRequest,
    Sessions,
    decode_request,
    survey_params,
)
from hubbub.dialects.centrifuge.jsonwire import JSON
from hubbub.dialects.centrifuge.proto import client_pb2 as pb
from hubbub.dialects.centrifuge.protowire import PROTOBUF
from hubbub.server import emulationdesk
from hubbub.server.emulationdesk import Nodes


class Stream:
    def __init__(self) -> None:
        self.id = "s-1"
        self.posted: list[str | bytes] = []
        self.closed: tuple[int, str] | None = None
        self.released = False

    def post(self, message: str | bytes) -> None:
        self.posted.append(message)

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def release(self) -> None:
        self.released = True


def test_json_and_protobuf_requests_decode() -> None:
    body = json.dumps({"node": "n", "session": "s", "data": '{"id":2,"ping":{}}'}).encode()
    assert decode_request(body, False) == EmulationRequest("n", "s", '{"id":2,"ping":{}}')
    msg = pb.EmulationRequest(node="n", session="s", data=b"\x01\x02")
    assert decode_request(msg.SerializeToString(), True) == EmulationRequest("n", "s", b"\x01\x02")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b'{"session": "s"}',
        b'{"session": "s", "data": {"id": 1}}',
        b'{"session": "s", "data": ""}',
        b'{"session": 5, "data": "{}"}',
        b'{"session": "", "data": "{}"}',
        b'{"session": "s", "node": 1, "data": "{}"}',
        json.dumps({"session": "s" * 65, "data": "{}"}).encode(),
        b'{"session": "s", "data": "{}", "x": NaN}',
    ],
)
def test_bad_json_requests_are_refused(body: bytes) -> None:
    with pytest.raises(BadEmulation):
        decode_request(body, False)


def test_bad_protobuf_requests_are_refused() -> None:
    with pytest.raises(BadEmulation):
        decode_request(b"\xff\xff\xff", True)
    with pytest.raises(BadEmulation):
        decode_request(pb.EmulationRequest(session="s").SerializeToString(), True)


def test_survey_params_carry_bytes_in_base64() -> None:
    sessions = Sessions()
    assert sessions.answer("emulation", survey_params(EmulationRequest("n", "s", b"\x00"))) == (
        Delivery.UNKNOWN.value
    )
    with pytest.raises(ValueError):
        sessions.answer("emulation", {"session": "s", "b64": "%%%"})
    with pytest.raises(ValueError):
        sessions.answer("emulation", {"data": "{}"})


async def test_frames_are_received_in_order_and_bounded() -> None:
    stream = Stream()
    conn = EmulatedConnection(stream, JSON, ping_interval=60, pong_timeout=10)
    sessions = Sessions()
    sessions.add(conn)
    for n in range(MAX_WAITING):
        assert sessions.deliver(conn.session, f'{{"id":{n + 1},"ping":{{}}}}') is Delivery.DELIVERED
    assert sessions.deliver(conn.session, "{}") is Delivery.BUSY
    assert sessions.deliver(conn.session, b"\xff") is Delivery.BAD
    assert await conn.receive() == '{"id":1,"ping":{}}'
    assert sessions.deliver(conn.session, b"{}") is Delivery.DELIVERED  # UTF-8 bytes: text
    conn.close(3000, "bye")
    assert stream.closed == (3000, "bye")
    assert await conn.receive() is None  # what waited is dropped
    assert sessions.deliver(conn.session, "{}") is Delivery.UNKNOWN
    sessions.discard(conn)
    assert len(sessions) == 0
    conn.release()
    assert stream.released


async def test_a_protobuf_session_takes_bytes_only() -> None:
    conn = EmulatedConnection(Stream(), PROTOBUF, ping_interval=60, pong_timeout=10)
    assert conn.feed("{}") is Delivery.BAD
    assert conn.feed(b"\x00") is Delivery.DELIVERED
    conn.end()


async def test_receive_waits_for_a_feed_or_the_end() -> None:
    conn = EmulatedConnection(Stream(), JSON, ping_interval=60, pong_timeout=10)
    waiting = asyncio.create_task(conn.receive())
    await asyncio.sleep(0)
    conn.feed("{}")
    assert await waiting == "{}"
    waiting = asyncio.create_task(conn.receive())
    await asyncio.sleep(0)
    conn.end()
    assert await waiting is None


async def test_pings_and_the_pong_deadline() -> None:
    stream = Stream()
    conn = EmulatedConnection(stream, JSON, ping_interval=0.05, pong_timeout=0.05)
    await asyncio.sleep(0.07)
    assert stream.posted == ["{}"]
    conn.feed("{}")  # the pong
    await asyncio.sleep(0.05)
    assert stream.closed is None
    await asyncio.sleep(0.15)  # the next pings go unanswered
    assert stream.closed == (3012, "no pong")


def test_a_question_for_one_node() -> None:
    question = survey.Question(7, "asker", "emulation", {"session": "s"}, to="target")
    origin, decoded = decode(question.encode())
    assert origin == "asker" and decoded == question
    with pytest.raises(ValueError):
        decode(json.dumps({"o": "a", "k": "survey", "id": 1, "op": "x", "to": 5}))


async def test_ask_node_answers_from_the_addressee_only() -> None:
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    def default(op: str, params: object) -> object:
        raise ValueError(op)

    asker = survey.Surveys("a", send, default)
    target = survey.Surveys("b", send, default)
    bystander = survey.Surveys("c", send, default)
    for node in (asker, target, bystander):
        node.register("echo", lambda op, params: {"got": dict(params)})
    assert await asker.ask_node("echo", {"x": 1}, "a") == {"got": {"x": 1}}  # itself: no send
    assert not sent
    asking = asyncio.create_task(asker.ask_node("echo", {"x": 2}, "b"))
    await asyncio.sleep(0)
    (text,) = sent
    _, question = decode(text)
    assert isinstance(question, survey.Question)
    await bystander.respond(question)
    assert len(sent) == 1  # not for it: no answer
    await target.respond(question)
    _, answer = decode(sent[-1])
    assert isinstance(answer, survey.Answer)
    asker.answered(answer)
    assert await asking == {"got": {"x": 2}}


def test_the_disconnect_push_and_the_session_in_each_codec() -> None:
    from hubbub.core import messages as m
    from hubbub.dialects.centrifuge.uniwire import UNI_JSON

    push = m.Disconnected(3012, "no pong")
    assert JSON.push(push) == '{"push":{"disconnect":{"code":3012,"reason":"no pong"}}}'
    assert UNI_JSON.push(push) == '{"disconnect":{"code":3012,"reason":"no pong"}}'
    data = PROTOBUF.push(push)
    reply = pb.Reply.FromString(data[1:])
    assert (reply.push.disconnect.code, reply.push.disconnect.reason) == (3012, "no pong")
    result = m.ConnectResult("c", "1", session="s", node="n")
    text = JSON.reply(m.Reply(1, result))
    assert json.loads(text)["connect"] | {} == {
        "client": "c",
        "version": "1",
        "session": "s",
        "node": "n",
    }
    assert "session" not in JSON.reply(m.Reply(1, m.ConnectResult("c", "1")))
    proto = pb.Reply.FromString(PROTOBUF.reply(m.Reply(1, result))[1:])
    assert (proto.connect.session, proto.connect.node) == ("s", "n")


class Cluster:
    """A cluster's list of nodes, read slowly, the reads counted."""

    def __init__(self, *uids: str) -> None:
        self.uids = list(uids)
        self.reads = 0

    async def cluster(self) -> list[dict[str, object]]:
        self.reads += 1
        await asyncio.sleep(0.02)
        return [{"uid": uid} for uid in self.uids]


async def test_requests_during_the_first_read_of_the_nodes_wait_for_it() -> None:
    """The first requests a node gets for another node are not 404 while the list is read."""
    cluster = Cluster("a", "b")
    nodes = Nodes(cluster)
    assert await asyncio.gather(*(nodes.known("b") for _ in range(20))) == [True] * 20
    assert not await nodes.known("made-up")  # read a moment ago: no second read
    assert cluster.reads == 1


async def test_a_node_gone_from_the_cluster_is_unknown_a_ttl_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(emulationdesk, "NODES_TTL", 0.05)
    cluster = Cluster("a", "b")
    nodes = Nodes(cluster)
    assert await nodes.known("b")
    cluster.uids.remove("b")  # killed: its announcement expired
    await asyncio.sleep(0.06)
    assert not await nodes.known("b")
    assert not await nodes.known("made-up") and cluster.reads == 2
