"""The control channel's messages: refresh commands and survey questions and answers in their
wire form, malformed ones refused; the ``connections`` answer a node gives."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from hubbub import control
from hubbub.control import Control
from hubbub.core.jsontext import dumps
from hubbub.survey import Answer, Question


def test_a_refresh_round_trips() -> None:
    for cmd in (
        Control("refresh", "ada", expired=True),
        Control("refresh", "ada", "c1", expire_at=1_900_000_000, info={"name": "Ada"}),
        Control("refresh", "", expire_at=0),  # anonymous connections, no expiry
    ):
        origin, back = control.decode(cmd.encode("node-a"))
        assert origin == "node-a"
        assert back == cmd


def test_a_subscribe_carries_its_override_to_the_other_nodes() -> None:
    override = {"presence": {"value": False}}
    cmd = Control("subscribe", "ada", "", "news:o", {"seat": 1}, None, override=override)
    assert control.decode(cmd.encode("n")) == ("n", cmd)
    plain = Control("subscribe", "ada", "", "news:o")
    assert "override" not in json.loads(plain.encode("n"))
    assert control.decode(plain.encode("n")) == ("n", plain)
    for override in ([1], {"presence": {"value": 1}}):  # not an object; not a boolean
        bad = json.loads(cmd.encode("n")) | {"override": override}
        with pytest.raises(ValueError, match="override"):
            control.decode(json.dumps(bad))


def test_a_refresh_without_info_leaves_it_out_on_the_wire() -> None:
    wire = json.loads(Control("refresh", "ada", expire_at=5).encode("n"))
    assert wire == {"o": "n", "k": "refresh", "u": "ada", "expired": False, "expire_at": 5}


@pytest.mark.parametrize(
    "fields",
    [
        {},  # neither expired nor expire_at
        {"expired": False},
        {"expire_at": 5},
        {"expired": 1, "expire_at": 5},  # not a boolean
        {"expired": False, "expire_at": -1},
        {"expired": False, "expire_at": "5"},
        {"expired": False, "expire_at": 5.0},
        {"expired": False, "expire_at": True},
    ],
)
def test_a_malformed_refresh_is_refused(fields: dict[str, Any]) -> None:
    text = json.dumps({"o": "n", "k": "refresh", "u": "ada", **fields})
    with pytest.raises(ValueError):
        control.decode(text)


def test_survey_messages_round_trip() -> None:
    question = Question(7, "node-a", "connections", {"user": "ada"})
    origin, back = control.decode(question.encode())
    assert (origin, back) == ("node-a", question)
    answer = Answer(7, "node-a", "node-b", {"connections": {"c1": {"transport": "websocket"}}})
    origin, back = control.decode(answer.encode())
    assert (origin, back) == ("node-b", answer)


@pytest.mark.parametrize(
    "message",
    [
        {"o": "a", "k": "survey", "op": "connections", "p": {}},  # no id
        {"o": "a", "k": "survey", "id": -1, "op": "connections", "p": {}},
        {"o": "a", "k": "survey", "id": "7", "op": "connections", "p": {}},
        {"o": "a", "k": "survey", "id": True, "op": "connections", "p": {}},
        {"o": "a", "k": "survey", "id": 7, "p": {}},  # no op
        {"o": "a", "k": "survey", "id": 7, "op": "", "p": {}},
        {"o": "a", "k": "survey", "id": 7, "op": "connections", "p": []},
        {"o": "b", "k": "answer", "id": 7, "r": {}},  # no addressee
        {"o": "b", "k": "answer", "id": 7, "to": "", "r": {}},
        {"o": "b", "k": "answer", "id": 7, "to": "a"},  # no result
        {"o": 1, "k": "answer", "id": 7, "to": "a", "r": {}},  # no origin
    ],
)
def test_a_malformed_survey_message_is_refused(message: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        control.decode(json.dumps(message))


@dataclass
class Described:
    client_id: str
    user: str
    channels: list[str] = field(default_factory=list)

    def connection_info(self) -> dict[str, Any]:
        return {
            "transport": "websocket",
            "protocol": "json",
            "user": self.user,
            "state": {"channels": {c: {} for c in self.channels}},
        }


@dataclass
class Directory:
    clients: list[Described]

    def client(self, client_id: str) -> Any:
        return next((c for c in self.clients if c.client_id == client_id), None)

    def clients_of(self, user: str) -> list[Any]:
        return [c for c in self.clients if c.user == user]


def test_the_connections_answer_lists_the_users_local_connections() -> None:
    clients = Directory(
        [Described("c1", "ada", ["a"]), Described("c2", "bob"), Described("c3", "ada")]
    )
    got = control.answer(clients, "connections", {"user": "ada"})
    assert got == {
        "connections": {
            "c1": clients.clients[0].connection_info(),
            "c3": clients.clients[2].connection_info(),
        }
    }
    assert control.answer(clients, "connections", {"user": "eve"}) == {"connections": {}}


def test_the_connections_answer_is_capped() -> None:
    """A user with more connections than fit in ANSWER_LIMIT bytes gets the first ones and
    ``truncated``; the answer stays under the limit."""
    many = [
        Described(f"c{i}", "ada", [f"chan:{'x' * 200}{j}" for j in range(20)]) for i in range(200)
    ]
    got = control.answer(Directory(many), "connections", {"user": "ada"})
    assert got["truncated"] is True
    assert 0 < len(got["connections"]) < len(many)
    assert len(dumps(got)) <= control.ANSWER_LIMIT + 100


def test_an_unknown_survey_op_or_bad_params_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        control.answer(Directory([]), "everything", {})
    with pytest.raises(ValueError):
        control.answer(Directory([]), "connections", {"user": 42})
