"""The JSON codec of the client protocol (frames to typed commands, typed replies and pushes
to text) and the strict JSON text it is built on."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hubbub.core import jsontext as p
from hubbub.core import messages as m
from hubbub.core.codes import ErrorCode
from hubbub.core.tagsfilter import Filter
from hubbub.core.types import ClientInfo, Publication
from hubbub.dialects.centrifuge.codec import ProtocolViolation
from hubbub.dialects.centrifuge.jsonwire import JSON
from hubbub.errors import ClientError


def test_several_commands_in_one_frame() -> None:
    frame = b'{"id":1,"connect":{}}\n{"id":2,"subscribe":{"channel":"a"}}\n'
    cmds = JSON.decode(frame)
    assert [(c.id, c.kind) for c in cmds] == [(1, "connect"), (2, "subscribe")]
    assert cmds[0].request == m.Connect()
    assert cmds[1].request == m.Subscribe(channel="a")


def test_empty_command_is_a_pong_and_unknown_method_is_flagged() -> None:
    pong, unknown = JSON.decode('{}\n{"id":3,"fly":{}}')
    assert (pong.kind, pong.id, pong.request) == ("pong", 0, None)
    assert (unknown.kind, unknown.id, unknown.request) == ("unknown", 3, None)


@pytest.mark.parametrize(
    "frame",
    [b"not json", b"[1,2]", b'{"id":-1,"ping":{}}', b'{"id":"7","ping":{}}', b"\xff\xfe", b"\n\n"],
)
def test_garbage_is_a_protocol_violation(frame: bytes) -> None:
    with pytest.raises(ProtocolViolation):
        JSON.decode(frame)


def test_params_that_are_not_an_object_are_a_bad_command() -> None:
    (cmd,) = JSON.decode('{"id":4,"subscribe":"chat"}')
    assert (cmd.kind, cmd.request, cmd.problem) == (
        "subscribe",
        None,
        "subscribe must be an object",
    )


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ('{"channel":5}', "channel must be a string"),
        ('{"channel":"a","recover":"yes"}', "recover must be a boolean"),
        ('{"channel":"a","offset":1.5}', "offset must be an integer"),
        ('{"channel":"a","offset":true}', "offset must be an integer"),
    ],
)
def test_fields_of_the_wrong_type_make_the_problem(params: str, problem: str) -> None:
    (cmd,) = JSON.decode(f'{{"id":4,"subscribe":{params}}}')
    assert (cmd.request, cmd.problem) == (None, problem)


def test_typed_requests_carry_every_field() -> None:
    (cmd,) = JSON.decode(
        '{"id":9,"subscribe":{"channel":"c","token":"t","recover":true,"epoch":"e",'
        '"offset":"12","positioned":true,"recoverable":true,"join_leave":true,"flag":2,'
        '"data":{"a":[1]},"tf":{"key":"k","cmp":"eq","val":"v"},"delta":"fossil"}}'
    )
    request = cmd.request
    assert isinstance(request, m.Subscribe)
    assert (request.channel, request.token, request.epoch, request.offset) == ("c", "t", "e", 12)
    assert request.recover and request.positioned and request.recoverable and request.join_leave
    assert request.flag == 2 and request.tags_filter == Filter(key="k", cmp="eq", val="v")
    assert request.delta == "fossil"
    assert request.data is not None and request.data.value() == {"a": [1]}
    (cmd,) = JSON.decode(
        '{"id":1,"connect":{"token":"x","subs":{"a":{"recover":true,"offset":3},"b":1},'
        '"name":"n","version":"v"}}'
    )
    assert cmd.request == m.Connect(
        token="x", subs={"a": m.Subscribe("a", recover=True, offset=3)}, name="n", version="v"
    )
    (cmd,) = JSON.decode('{"id":2,"history":{"channel":"h","limit":5,"since":{"offset":1}}}')
    assert cmd.request == m.History("h", 5, m.Since(1, ""), False)


def test_a_connects_emulated_headers_are_an_object_of_strings() -> None:
    (cmd,) = JSON.decode('{"id":1,"connect":{"headers":{"Authorization":"Bearer x","x-a":""}}}')
    assert cmd.request == m.Connect(headers={"Authorization": "Bearer x", "x-a": ""})
    for bad in ('"a: b"', '["a"]', '{"a":1}', '{"a":null}', '{"a":{"b":"c"}}'):
        (cmd,) = JSON.decode('{"id":1,"connect":{"headers":' + bad + "}}")
        assert (cmd.request, cmd.problem) == (None, "headers must be an object of strings")
    (cmd,) = JSON.decode('{"id":1,"connect":{"headers":null}}')
    assert cmd.request == m.Connect()


def test_data_is_compact_single_line_json() -> None:
    (cmd,) = JSON.decode('{"id":1,"publish":{"channel":"c","data":{"text":"a\\nb", "n": [1, 2]}}}')
    assert isinstance(cmd.request, m.Publish) and cmd.request.data is not None
    text = cmd.request.data.text
    assert text is not None and "\n" not in text and " " not in text
    assert json.loads(text) == {"text": "a\nb", "n": [1, 2]}


def test_replies_and_pushes_are_valid_json() -> None:
    assert json.loads(JSON.reply(m.Reply(7, m.PublishResult()))) == {"id": 7, "publish": {}}
    error = ClientError(ErrorCode.INTERNAL)
    text = JSON.reply(m.Reply(8, error=m.Error(error.code, error.message, error.temporary)))
    assert json.loads(text) == {
        "id": 8,
        "error": {"code": 100, "message": "internal server error", "temporary": True},
    }
    pub = Publication('{"x":1}', 3, ClientInfo("c1", "u", '{"n":1}'))
    assert json.loads(JSON.push(m.Pub("chat:a", pub))) == {
        "push": {
            "channel": "chat:a",
            "pub": {
                "data": {"x": 1},
                "offset": 3,
                "info": {"client": "c1", "user": "u", "conn_info": {"n": 1}},
            },
        }
    }
    assert JSON.publication("chat:a", pub) == JSON.push(m.Pub("chat:a", pub))
    assert json.loads(JSON.push(m.Unsubscribed("c", 2500, "x"))) == {
        "push": {"channel": "c", "unsubscribe": {"code": 2500, "reason": "x"}}
    }
    # The server API's refresh: Centrifugo's Refresh push, no channel, empty fields left out.
    assert JSON.push(m.Refreshed(True, 30)) == '{"push":{"refresh":{"expires":true,"ttl":30}}}'
    assert JSON.push(m.Refreshed(False)) == '{"push":{"refresh":{}}}'


def test_verbatim_json_with_newlines_is_put_on_one_line() -> None:
    """A Protobuf client's JSON keeps its bytes in history; JSON lines must not break."""
    pub = Publication('{\n  "a": 1\n}')
    text = JSON.publication("c", pub)
    assert "\n" not in text and json.loads(text)["push"]["pub"]["data"] == {"a": 1}
    assert json.loads(JSON.publication("c", Publication('{ "a" : 1 }')))["push"]["pub"] == {
        "data": {"a": 1}
    }


def test_binary_data_cannot_go_to_a_json_client() -> None:
    with pytest.raises(m.NotEncodable):
        JSON.reply(m.Reply(1, m.RPCResult(b"\x00\xff")))
    assert json.loads(JSON.reply(m.Reply(1, m.RPCResult(b'{"ok":true}')))) == {
        "id": 1,
        "rpc": {"data": {"ok": True}},
    }


@pytest.mark.parametrize(
    "data", ["NaN", "Infinity", "-Infinity", "1e999", "[-1e400]", '"\\ud800"', '{"\\udfff":1}']
)
def test_commands_holding_what_json_cannot_are_answered_with_107(data: str) -> None:
    """RFC 8259 only: the command is kept (so it can be answered), its request is not."""
    (cmd,) = JSON.decode(f'{{"id":7,"publish":{{"channel":"c","data":{data}}}}}')
    assert (cmd.id, cmd.kind, cmd.request) == (7, "publish", None)
    assert cmd.problem is not None and "RFC 8259" in cmd.problem


def test_field_readers_raise_bad_request() -> None:
    params = {"channel": 5, "offset": "12", "recover": "yes"}
    with pytest.raises(ClientError) as info:
        p.require_str(params, "channel")
    assert info.value.code == ErrorCode.BAD_REQUEST
    assert p.optional_int(params, "offset") == 12  # 64-bit ints may come as strings
    with pytest.raises(ClientError):
        p.optional_bool(params, "recover")
    with pytest.raises(ClientError, match="data is required"):
        p.data_text({}, required=True)


def test_strict_loads_and_dumps_refuse_what_json_cannot_hold() -> None:
    with pytest.raises(p.NotJSON, match="NaN"):
        p.loads(b'{"a": NaN}')
    with pytest.raises(ValueError):
        p.dumps(float("nan"))
    assert p.loads('{"big": 1e308, "n": 18446744073709551616}')["big"] == 1e308


# -- round trips (Hypothesis) -----------------------------------------------------------------

TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
U63 = st.integers(min_value=0, max_value=2**63 - 1)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
INFOS = st.builds(
    ClientInfo,
    TEXT,
    TEXT,
    st.none() | JSON_VALUES.map(p.dumps),
    st.none() | JSON_VALUES.map(p.dumps),
)
PUBS = st.builds(
    Publication,
    JSON_VALUES.map(p.dumps),
    U63,
    st.none() | INFOS,
    st.none() | st.dictionaries(TEXT, TEXT, min_size=1, max_size=3),
    st.integers(0, 2**53),
)


@given(
    channel=TEXT,
    token=TEXT,
    recover=st.booleans(),
    epoch=TEXT,
    offset=U63,
    data=JSON_VALUES,
    flags=st.tuples(st.booleans(), st.booleans(), st.booleans()),
    flag=st.integers(0, 2**31),
)
def test_subscribe_requests_round_trip(
    channel: str,
    token: str,
    recover: bool,
    epoch: str,
    offset: int,
    data: object,
    flags: tuple[bool, bool, bool],
    flag: int,
) -> None:
    """What an SDK writes (JSON of the request's fields) comes back as the typed request."""
    positioned, recoverable, join_leave = flags
    params = {
        "channel": channel,
        "token": token,
        "recover": recover,
        "epoch": epoch,
        "offset": offset,
        "data": data,
        "positioned": positioned,
        "recoverable": recoverable,
        "join_leave": join_leave,
        "flag": flag,
    }
    (cmd,) = JSON.decode(json.dumps({"id": 5, "subscribe": params}))
    request = cmd.request
    assert isinstance(request, m.Subscribe), cmd
    payload = request.data
    assert (payload.value() if payload is not None else None) == data
    assert (
        request.channel,
        request.token,
        request.recover,
        request.epoch,
        request.offset,
        request.positioned,
        request.recoverable,
        request.join_leave,
        request.flag,
    ) == (channel, token, recover, epoch, offset, positioned, recoverable, join_leave, flag)


@given(channel=TEXT, data=JSON_VALUES, method=TEXT)
def test_publish_and_rpc_requests_round_trip(channel: str, data: object, method: str) -> None:
    frame = json.dumps({"id": 1, "publish": {"channel": channel, "data": data}}) + "\n"
    frame += json.dumps({"id": 2, "rpc": {"method": method, "data": data}})
    publish, rpc = JSON.decode(frame)
    assert isinstance(publish.request, m.Publish) and isinstance(rpc.request, m.RPC)
    assert publish.request.channel == channel and rpc.request.method == method
    for request in (publish.request, rpc.request):
        if data is None:
            assert request.data is None
        else:
            assert request.data is not None and json.loads(request.data.text or "") == data
            assert request.data.text == p.dumps(data)  # compact ASCII, byte for byte
            assert request.data == m.Payload(p.dumps(data))


def test_an_rpcs_data_reaches_the_handler_as_parsed_and_is_written_only_when_asked() -> None:
    (cmd,) = JSON.decode('{"id":1,"rpc":{"method":"m","data":{"b": [1, 2.5], "a": "\u00e9"}}}')
    assert isinstance(cmd.request, m.RPC) and cmd.request.data is not None
    assert cmd.request.data.value() == {"b": [1, 2.5], "a": "\u00e9"}
    assert cmd.request.data.text == '{"b":[1,2.5],"a":"\\u00e9"}'
    assert cmd.request.data.data == cmd.request.data.text


@pytest.mark.parametrize("method", ["publish", "rpc", "send"])
def test_data_nested_deeper_than_dumps_follows_is_the_commands_problem(method: str) -> None:
    """orjson parses 1,000 levels, json's encoder does not write them: answered with 107."""
    deep = "[" * 1000 + "]" * 1000
    (cmd,) = JSON.decode(f'{{"id":1,"{method}":{{"channel":"c","data":{deep}}}}}')
    assert cmd.request is None and cmd.problem is not None
    assert "data is not usable JSON" in cmd.problem


@given(pubs=st.lists(PUBS, max_size=3), epoch=TEXT, offset=U63, cid=st.integers(1, 2**32 - 1))
def test_history_results_and_pushes_round_trip(
    pubs: list[Publication], epoch: str, offset: int, cid: int
) -> None:
    """Every publication field survives JSON as the SDKs read it (json.loads)."""

    def as_json(pub: Publication) -> dict[str, object]:
        out: dict[str, object] = {"data": json.loads(pub.data)}
        if pub.offset:
            out["offset"] = pub.offset
        if pub.info is not None:
            out["info"] = pub.info.to_dict()
        if pub.tags:
            out["tags"] = pub.tags
        if pub.time_ms:
            out["time"] = pub.time_ms
        return out

    text = JSON.reply(m.Reply(cid, m.HistoryResult(tuple(pubs), epoch, offset)))
    assert "\n" not in text
    assert json.loads(text) == {
        "id": cid,
        "history": {"publications": [as_json(x) for x in pubs], "epoch": epoch, "offset": offset},
    }
    for pub in pubs:
        assert json.loads(JSON.publication("ch", pub)) == {
            "push": {"channel": "ch", "pub": as_json(pub)}
        }


def test_raw_newlines_become_spaces_without_parsing() -> None:
    """Verbatim JSON (Protobuf, raw rooms) with raw newlines, however deep: one line, the same
    value, and no parser (or encoder) recursion on the way out."""
    from hubbub.dialects.centrifuge.jsonwire import value_text

    deep = "[" * 980 + "\n" + "]" * 980
    assert value_text(deep) == "[" * 980 + " " + "]" * 980
    text = JSON.publication("c", Publication(deep))
    assert "\n" not in text


@pytest.mark.parametrize("depth", [300, 900])
def test_json_nested_deeper_than_python_parses_is_not_json(depth: int) -> None:
    """What is accepted as JSON, every JSON client can read (centrifuge-python uses Python's
    json, whose recursion limit is about 1000 levels; orjson takes 1024)."""
    ok = "[" * depth + "]" * depth
    assert p.loads(ok) is not None
    assert p.loads(ok.encode()) is not None
    deep = "[" * 1010 + "]" * 1010
    with pytest.raises(p.NotJSON, match="nested too deeply"):
        p.loads(deep)
    with pytest.raises(p.NotJSON):
        p.loads(deep.encode())
    assert m.Payload.of_bytes(deep.encode()).text is None


@pytest.mark.parametrize(
    "raw",
    [b"1\x00", b'\xef\xbb\xbf{"a":1}', "1".encode("utf-16"), '{"a":1}'.encode("utf-32")],
    ids=["nul", "bom", "utf-16", "utf-32"],
)
def test_bytes_are_json_only_as_utf8_json_text(raw: bytes) -> None:
    """Bytes json would still read (a BOM skipped, UTF-16/32 guessed) are not JSON here: their
    text would be pasted into JSON pushes that no client parses."""
    with pytest.raises(p.NotJSON):
        p.loads(raw)
    assert m.Payload.of_bytes(raw).text is None


def test_delta_subscriptions_get_data_as_a_json_string() -> None:
    """With delta compression negotiated, data goes as a JSON string (Centrifugo's form, which
    the SDKs parse): the publication in full, or the delta with ``delta: true``; the JSON
    text keeps its newlines (escaped in the string), so the SDK's base is the data exactly."""
    pub = Publication('{"a":  1,\n"b": "é"}', 7, ClientInfo("c", "u"), {"k": "v"}, 5)
    full = json.loads(JSON.delta_publication("ch", pub, None))["push"]
    assert full["channel"] == "ch"
    assert full["pub"] == {
        "data": pub.data,
        "offset": 7,
        "info": {"client": "c", "user": "u"},
        "tags": {"k": "v"},
        "time": 5,
    }
    patch = "1M\n9@0,3:ü;3T;".encode()
    delta = json.loads(JSON.delta_publication("ch", pub, patch))["push"]["pub"]
    assert delta["data"].encode() == patch
    assert delta["delta"] is True and delta["offset"] == 7
    assert "delta" not in json.loads(JSON.publication("ch", pub))["push"]["pub"]


def test_a_delta_subscribe_result_says_so_and_carries_strings() -> None:
    pubs = (Publication('{"n":1}', 1), Publication("[2]", 2))
    result = m.SubscribeResult(recoverable=True, positioned=True, epoch="e", publications=pubs)
    plain = json.loads(JSON.reply(m.Reply(3, result)))["subscribe"]
    assert "delta" not in plain
    assert [p["data"] for p in plain["publications"]] == [{"n": 1}, [2]]
    delta = json.loads(JSON.reply(m.Reply(3, replace(result, delta=True))))["subscribe"]
    assert delta["delta"] is True
    assert [p["data"] for p in delta["publications"]] == ['{"n":1}', "[2]"]
    assert not any("delta" in p for p in delta["publications"])  # recovered: in full


@pytest.mark.parametrize(
    "number",
    [
        "123456789012345678901234567890",
        "-9999999999999999999",
        "18446744073709551616",
        "-123456789012345678901234567890",
    ],
)
def test_integers_past_64_bits_keep_every_digit(number: str) -> None:
    """orjson reads an integer past 64 bits as a float: such data goes through json, so a
    publication's data is the number that was sent, digit for digit, in a frame of several
    commands too; a usual number still reads as before."""
    frame = (
        f'{{"id":1,"publish":{{"channel":"a","data":{{"n":{number},"m":7}}}}}}\n'
        f'{{"id":2,"publish":{{"channel":"a","data":[{number}]}}}}'
    )
    first, second = JSON.decode(frame)
    assert isinstance(first.request, m.Publish) and first.request.data is not None
    assert first.request.data.text == f'{{"n":{number},"m":7}}'
    assert isinstance(second.request, m.Publish) and second.request.data is not None
    assert second.request.data.text == f"[{number}]"
    assert p.loads(number) == int(number)
    assert p.parse(f"[{number}, 1.5]") == ([int(number), 1.5], None)
    assert p.loads("[12345678901234567]") == [12345678901234567]
