"""Property-based fuzzing (Hypothesis) of the codecs and the session machine.

``make test`` runs each property with a modest number of examples; ``make fuzz`` runs them
again and again with fresh seeds for 10 minutes (``scripts/fuzz.py``).

Properties:
- the JSON codec: any text or bytes either decodes into commands or is a ProtocolViolation,
  never another exception; RFC 8259 values survive ``dumps`` and ``loads``; what ``dumps``
  writes is always something a strict parser (JavaScript's JSON.parse) takes;
- the wire forms between nodes (raw frames, control commands) round-trip, and garbage is
  refused with ValueError only;
- the client's session machine: any sequence of commands, well-formed or not, gets exactly one
  answer per command with an id, in command order, or ends the connection with a
  disconnect code; the server never raises anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubbub import control
from hubbub.config import Settings
from hubbub.core import jsontext as protocol
from hubbub.core import messages as m
from hubbub.core.types import Publication
from hubbub.dialects.centrifuge.client import Client
from hubbub.dialects.centrifuge.codec import Codec, ProtocolViolation
from hubbub.dialects.centrifuge.jsonwire import JSON, MAX_COMMAND_ID
from hubbub.dialects.centrifuge.protowire import PROTOBUF
from hubbub.dialects.raw import RAW, room_publication
from hubbub.engines.envelope import frame_from_text, frame_text, pub_from_payload, pub_payload
from hubbub.errors import DisconnectError
from hubbub.hooks import Hooks, RPCContext
from hubbub.node import Node

#: The protocol's methods, as JSON commands name them.
METHODS = tuple(m.METHOD_OF.values())

#: Examples per property: a modest number in make test, more per round in make fuzz.
EXAMPLES = int(os.environ.get("HUBBUB_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: JSON values as RFC 8259 has them (finite numbers, any text that is valid Unicode).
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",))),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(st.characters(exclude_categories=("Cs",)), max_size=8), inner, max_size=4
        )
    ),
    max_leaves=12,
)


def strict_parse(text: str) -> Any:
    def refuse(name: str) -> None:
        raise AssertionError(f"{name} written")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("codec", [JSON, PROTOBUF], ids=["json", "protobuf"])
@FUZZ
@given(frame=st.one_of(st.text(), st.binary()))
def test_any_frame_decodes_or_is_a_protocol_violation(codec: Codec, frame: str | bytes) -> None:
    try:
        commands = codec.decode(frame)
    except ProtocolViolation:
        return
    for cmd in commands:
        assert isinstance(cmd.id, int) and 0 <= cmd.id <= MAX_COMMAND_ID
        assert cmd.kind in ("pong", "unknown", *METHODS)
        if cmd.request is not None:
            assert m.METHOD_OF[type(cmd.request)] == cmd.kind and cmd.problem is None


@FUZZ
@given(
    st.lists(
        st.fixed_dictionaries(
            {"id": st.integers(min_value=-5, max_value=2**33)},
            optional={method: json_values for method in (*METHODS, "nope")},
        ),
        min_size=1,
        max_size=4,
    )
)
def test_command_shaped_frames_decode_or_are_a_protocol_violation(objs: list[Any]) -> None:
    frame = "\n".join(json.dumps(o) for o in objs)
    try:
        commands = JSON.decode(frame)
    except ProtocolViolation:
        return
    assert len(commands) == len(objs)


@FUZZ
@given(json_values)
def test_rfc8259_values_survive_dumps_and_loads(value: Any) -> None:
    text = protocol.dumps(value)
    assert "\n" not in text and text.isascii()
    strict_parse(text)
    back = protocol.loads(text)
    if isinstance(value, float) or (isinstance(value, int) and abs(value) >= 2**63):
        return  # orjson reads integers past 64 bits as floats: equal as numbers, not types
    assert back == value


@FUZZ
@given(st.text())
def test_loads_refuses_only_with_not_json(text: str) -> None:
    try:
        value = protocol.loads(text)
    except protocol.NotJSON:
        return
    strict_parse(protocol.dumps(value))  # whatever it accepted can be written as JSON


@FUZZ
@given(st.one_of(st.text(st.characters(exclude_categories=("Cs",))), st.binary()))
def test_raw_frames_round_trip_between_nodes(raw: str | bytes) -> None:
    """A raw member's frame -> publication data and frame kind -> the cluster envelope ->
    the same frame (type and bytes) for raw members of every node; JSON subscribers get data
    that is RFC 8259 JSON."""
    data, kind = room_publication(raw)
    protocol.loads(data)
    pub = pub_from_payload(
        pub_payload(Publication(data, frame=kind)),
        1,
        frame_from_text(json.loads(frame_text(kind) or '""')),
    )
    assert (pub.data, pub.frame) == (data, kind)
    back = RAW.publication("rooms:r", pub)
    assert back == raw and type(back) is type(raw)


@FUZZ
@given(st.sampled_from(["s", "b", "t", ""]) | st.text(), st.text() | json_values.map(json.dumps))
def test_raw_frame_garbage_is_not_a_frame(kind: str, data: str) -> None:
    """A foreign frame kind is a text frame; a kind that does not match its data gives the
    data as it is, never bytes made up."""
    frame = frame_from_text(kind)
    back = RAW.publication("rooms:r", Publication(data, frame=frame))
    assert isinstance(back, str | bytes)


text_field = st.text(st.characters(exclude_categories=("Cs",)), max_size=10)
controls = st.one_of(
    st.builds(
        control.Control,
        kind=st.just("subscribe"),
        user=text_field,
        client=text_field,
        channel=text_field.filter(bool),
        info=json_values,
        data=json_values,
    ),
    st.builds(
        control.Control, kind=st.just("unsubscribe"), user=text_field, client=text_field,
        channel=text_field.filter(bool),
    ),
    st.builds(
        control.Control, kind=st.just("disconnect"), user=text_field, client=text_field,
        code=st.integers(3000, 4999), reason=text_field, keep=st.lists(text_field).map(tuple),
    ),
    st.builds(
        control.Control, kind=st.just("refresh"), user=text_field, client=text_field,
        expired=st.booleans(), expire_at=st.integers(0, 2**63 - 1), info=json_values,
    ),
)  # fmt: skip


def same_json(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b)) or a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    return bool(a == b)


@FUZZ
@given(controls, text_field)
def test_control_commands_round_trip(cmd: control.Control, origin: str) -> None:
    got_origin, back = control.decode(cmd.encode(origin))
    assert got_origin == origin
    assert isinstance(back, control.Control)
    assert (back.kind, back.user, back.client, back.channel) == (
        cmd.kind, cmd.user, cmd.client, cmd.channel,
    )  # fmt: skip
    assert (back.code, back.reason, back.keep) == (cmd.code, cmd.reason, cmd.keep)
    assert (back.expired, back.expire_at) == (cmd.expired, cmd.expire_at)
    assert same_json(back.info, cmd.info) and same_json(back.data, cmd.data)


@FUZZ
@given(st.one_of(st.text(), json_values.map(json.dumps)))
def test_control_garbage_is_refused_with_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        control.decode(text)


# -- the session machine -------------------------------------------------------------------


@dataclass(eq=False)
class Recorder:
    """A transport that keeps what was posted."""

    id: str = "fuzz"
    posted: list[str | bytes] = field(default_factory=list)
    closed: tuple[int, str] | None = None

    def post(self, message: str | bytes) -> None:
        if self.closed is None:
            self.posted.append(message)

    def close(self, code: int, reason: str) -> None:
        self.closed = self.closed or (code, reason)


async def echo(ctx: RPCContext) -> Any:
    return ctx.data


channels = st.sampled_from(["a", "b", "h:c", "rooms:r", "no:such", "", "x" * 300])
params = st.fixed_dictionaries(
    {},
    optional={
        "channel": st.one_of(channels, json_values),
        "data": json_values,
        "token": st.one_of(st.just("not.a.token"), json_values),
        "recover": st.booleans(),
        "recoverable": st.one_of(st.booleans(), json_values),
        "positioned": st.booleans(),
        "offset": st.one_of(st.integers(-5, 2**64), json_values),
        "epoch": st.one_of(text_field, json_values),
        "limit": st.one_of(st.integers(-5, 2000), json_values),
        "since": st.one_of(
            st.fixed_dictionaries({"offset": st.integers(-1, 2**64), "epoch": text_field}),
            json_values,
        ),
        "method": st.sampled_from(["echo", "missing"]),
        "join_leave": st.booleans(),
        "tf": json_values,
    },
)
good_channels = st.sampled_from(["a", "b", "h:c", "rooms:r"])
#: Commands as an SDK sends them (most of them succeed), so that sequences reach deep states.
well_formed = st.one_of(
    st.tuples(
        st.just("publish"), st.fixed_dictionaries({"channel": good_channels, "data": json_values})
    ),
    st.tuples(st.just("subscribe"), st.fixed_dictionaries({"channel": good_channels})),
    st.tuples(st.just("unsubscribe"), st.fixed_dictionaries({"channel": good_channels})),
    st.tuples(
        st.just("history"),
        st.fixed_dictionaries({"channel": st.just("h:c"), "limit": st.integers(-1, 5)}),
    ),
    st.tuples(st.just("presence"), st.fixed_dictionaries({"channel": st.just("h:c")})),
    st.tuples(
        st.just("rpc"), st.fixed_dictionaries({"method": st.just("echo"), "data": json_values})
    ),
)
commands = st.lists(
    st.one_of(
        well_formed,
        well_formed,
        st.tuples(st.sampled_from([*METHODS, "nope", ""]), st.one_of(params, json_values)),
    ),
    max_size=16,
)


async def run_session(script: list[tuple[str, Any]]) -> tuple[Recorder, list[int], bool]:
    settings_ = Settings(
        history="memory",
        demos=False,
        namespaces=[{"name": "h", "history_size": 10, "history_ttl": 60, "presence": True}],
    )
    node = Node(settings_)
    await node.start()
    transport = Recorder()
    client = Client(node, Hooks(rpc={"echo": echo}), transport, {}, JSON)
    ids: list[int] = []
    disconnected = False
    try:
        for n, (method, body) in enumerate([("connect", {}), *script], start=1):
            frame = json.dumps({"id": n, method: body} if method else {"id": n})
            try:
                for cmd in JSON.decode(frame):
                    if cmd.kind != "pong":
                        ids.append(cmd.id)
                    await client.handle(cmd, len(frame))
            except ProtocolViolation:
                disconnected = True
                break
            except DisconnectError as exc:
                assert 3000 <= exc.code <= 4999
                disconnected = True
                break
        if client._replies is not None:
            await client._replies.drain()
    finally:
        await client.close(3000, "fuzz")
        await node.stop()
    return transport, ids, disconnected


@settings(
    max_examples=max(200, EXAMPLES // 2),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(commands)
def test_every_command_gets_one_answer_in_order(script: list[tuple[str, Any]]) -> None:
    transport, ids, disconnected = asyncio.run(run_session(script))
    answered = []
    for message in transport.posted:
        assert isinstance(message, str)
        for line in message.split("\n"):
            obj = strict_parse(line)
            if "id" in obj:
                answered.append(obj["id"])
    if disconnected:
        ids = ids[:-1]  # the command that ended the connection has no reply
        answered = [i for i in answered if i in ids]
    assert answered == ids, "one answer per command, in command order"
