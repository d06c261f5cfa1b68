"""The proxy's pure part (hubbub.proxy.bodies): request bodies as Centrifugo writes them,
responses parsed into answers, the backend's errors and disconnects passed through, anything
malformed a BadResponse and nothing else."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubbub.claims import Override, SubscribeOptions
from hubbub.core import messages as m
from hubbub.errors import ClientError, DisconnectError
from hubbub.proxy import bodies
from hubbub.proxy.bodies import BadResponse, Caller
from hubbub.proxy.caller import shown

WHO = Caller("c1", "websocket", "json", "ann", {"plan": "pro"})


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def enc(value: Any) -> bytes:
    return json.dumps(value).encode()


# -- requests --------------------------------------------------------------------------------


def test_the_client_json_text_goes_as_sent() -> None:
    body = bodies.publish_request(WHO, "ch", m.Payload('{ "a" : [1, 2] }'))
    assert body.endswith(b',"data":{ "a" : [1, 2] }}')
    assert json.loads(body) == {
        "client": "c1",
        "transport": "websocket",
        "protocol": "json",
        "encoding": "json",
        "user": "ann",
        "channel": "ch",
        "meta": {"plan": "pro"},
        "data": {"a": [1, 2]},
    }


def test_binary_data_goes_as_b64data() -> None:
    who = Caller("c1", "websocket", "protobuf")
    body = json.loads(bodies.rpc_request(who, "m", m.Payload(None, b"\x00\xff")))
    assert body["encoding"] == "binary"
    assert body["b64data"] == b64(b"\x00\xff") and "data" not in body
    assert body["user"] == "" and "meta" not in body


def test_empty_fields_are_left_out_but_user_is_always_there() -> None:
    who = Caller("c1", "sse", "json")
    assert json.loads(bodies.connect_request(who, None)) == {
        "client": "c1",
        "transport": "sse",
        "protocol": "json",
        "encoding": "json",
    }
    sub = json.loads(bodies.subscribe_request(who, "ch"))
    assert sub == {**json.loads(bodies.connect_request(who, None)), "user": "", "channel": "ch"}
    connect = json.loads(bodies.connect_request(who, None, "app", "1", ["a", "b"]))
    assert connect["name"] == "app" and connect["channels"] == ["a", "b"]
    assert json.loads(bodies.refresh_request(WHO))["user"] == "ann"
    assert json.loads(bodies.sub_refresh_request(WHO, "x"))["channel"] == "x"


# -- responses -------------------------------------------------------------------------------


def test_a_connect_answer_in_full() -> None:
    answer = bodies.connect_answer(
        enc(
            {
                "result": {
                    "user": "ann",
                    "expire_at": 1_900_000_000,
                    "b64info": b64(b'{"n":1}'),
                    "info": {"ignored": True},
                    "data": {"hello": 1},
                    "channels": ["a", "b"],
                    "subs": {"b": {}, "c": {"info": 2, "override": {"presence": {"value": False}}}},
                    "meta": {"m": 1},
                    "caps": [],
                }
            }
        )
    )
    assert answer == bodies.ConnectAnswer(
        user="ann",
        expire_at=1_900_000_000,
        info='{"n":1}',
        data='{"hello":1}',
        channels=["a", "b", "c"],
        subs={"c": SubscribeOptions("2", None, Override(presence=False))},
        meta={"m": 1},
    )


def test_no_result_and_empty_results() -> None:
    assert bodies.connect_answer(b"{}") is None
    assert bodies.connect_answer(b'{"result": {}}') == bodies.ConnectAnswer()
    assert bodies.refresh_answer(b"{}").expired
    assert bodies.sub_refresh_answer(b'{"result": null}').expired
    assert bodies.subscribe_answer(b"{}") == bodies.SubscribeAnswer()
    assert bodies.publish_answer(b"{}") == bodies.PublishAnswer()
    assert bodies.rpc_answer(b"{}") is None


def test_an_expire_at_of_zero_or_below_is_no_expiry_as_in_centrifugo() -> None:
    """Centrifugo acts on an ``expire_at`` above 0 only; below is no expiry, not an error."""
    for value in (0, -1, -(2**40)):
        result = enc({"result": {"user": "u", "expire_at": value}})
        answer = bodies.connect_answer(result)
        assert answer is not None and answer.expire_at is None
        assert bodies.subscribe_answer(result).expire_at is None
        assert bodies.sub_refresh_answer(result).expire_at is None
        assert bodies.refresh_answer(result).expire_at is None


def test_b64data_wins_and_may_be_binary_where_protobuf_clients_take_it() -> None:
    assert bodies.rpc_answer(enc({"result": {"b64data": b64(b"\x01\x02"), "data": 1}})) == (
        b"\x01\x02"
    )
    assert bodies.rpc_answer(enc({"result": {"b64data": b64(b"[1]")}})) == "[1]"
    answer = bodies.subscribe_answer(enc({"result": {"b64data": b64(b"\xfe"), "expire_at": 5}}))
    assert answer.data == b"\xfe" and answer.expire_at == 5
    with pytest.raises(BadResponse, match="publications are JSON"):
        bodies.publish_answer(enc({"result": {"b64data": b64(b"\xfe")}}))


def test_field_names_match_case_insensitively_as_go_decodes_them() -> None:
    """A Go backend whose structs have no JSON tags writes ``User``, ``Result``...;
    Centrifugo's decoder takes them, and so does hubbub. Channel names, tags and what info,
    data and meta hold keep their case; an exact name wins over another case of it."""
    body = {
        "Result": {
            "User": "u",
            "EXPIRE_AT": 1_900_000_000,
            "Info": {"Name": "N"},
            "Channels": ["Chan:A"],
            "Subs": {"Chan:B": {"Info": 1, "Override": {"Presence": {"Value": False}}}},
            "Meta": {"Plan": 1},
        }
    }
    answer = bodies.connect_answer(enc(body))
    assert answer == bodies.ConnectAnswer(
        user="u",
        expire_at=1_900_000_000,
        info='{"Name":"N"}',
        channels=["Chan:A", "Chan:B"],
        subs={"Chan:B": SubscribeOptions("1", None, Override(presence=False))},
        meta={"Plan": 1},
    )
    with pytest.raises(ClientError) as refused:
        bodies.rpc_answer(enc({"Error": {"Code": 4000, "Message": "m", "Temporary": True}}))
    assert (refused.value.code, refused.value.message, refused.value.temporary) == (
        4000,
        "m",
        True,
    )
    with pytest.raises(DisconnectError) as closed:
        bodies.rpc_answer(enc({"Disconnect": {"Code": 4500, "Reason": "r"}}))
    assert (closed.value.code, closed.value.reason) == (4500, "r")
    sub = bodies.subscribe_answer(enc({"Result": {"Override": {"Join_Leave": {"VALUE": True}}}}))
    assert sub.override == Override(join_leave=True)
    published = bodies.publish_answer(enc({"Result": {"Skip_History": True, "Tags": {"K": "v"}}}))
    assert published.skip_history and published.tags == {"K": "v"}
    assert bodies.refresh_answer(enc({"RESULT": {"Expired": True}})).expired
    exact = bodies.connect_answer(enc({"result": {"User": "b", "user": "a"}}))
    assert exact is not None and exact.user == "a"


def test_in_a_publish_answer_data_wins_over_b64data_as_in_centrifugo() -> None:
    both = enc({"result": {"data": {"from": "data"}, "b64data": b64(b'"b64"')}})
    assert bodies.publish_answer(both).data == '{"from":"data"}'
    assert bodies.publish_answer(enc({"result": {"b64data": b64(b'"b64"')}})).data == '"b64"'


def test_a_publish_answer() -> None:
    answer = bodies.publish_answer(
        enc(
            {
                "result": {
                    "data": {"x": 1},
                    "skip_history": True,
                    "tags": {"k": "v"},
                    "idempotency_key": "i1",
                    "delta": True,
                }
            }
        )
    )
    assert answer == bodies.PublishAnswer('{"x":1}', True, {"k": "v"}, "i1", True)


def test_refresh_answers() -> None:
    answer = bodies.refresh_answer(enc({"result": {"expire_at": 10, "info": "i", "meta": {}}}))
    assert answer == bodies.RefreshAnswer(False, 10, '"i"', {})
    assert bodies.sub_refresh_answer(enc({"result": {"expired": True}})).expired


def test_the_backend_error_passes_through_unchanged() -> None:
    with pytest.raises(ClientError) as caught:
        bodies.subscribe_answer(enc({"error": {"code": 4403, "message": "no", "temporary": True}}))
    assert (caught.value.code, caught.value.message, caught.value.temporary) == (4403, "no", True)
    with pytest.raises(ClientError) as caught:
        bodies.rpc_answer(enc({"error": {"code": 103}}))
    assert (caught.value.code, caught.value.message) == (103, "permission denied")


def test_a_disconnect_passes_through_and_wins_over_an_error() -> None:
    body = {"disconnect": {"code": 4501, "reason": "banned"}, "error": {"code": 1}}
    with pytest.raises(DisconnectError) as caught:
        bodies.connect_answer(enc(body))
    assert (caught.value.code, caught.value.reason) == (4501, "banned")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'"result"',
        b'{"result": []}',
        b'{"result": {"user": 1}}',
        b'{"result": {"expire_at": "1"}}',
        b'{"result": {"expire_at": true}}',
        b'{"result": {"channels": "a"}}',
        b'{"result": {"channels": [1]}}',
        b'{"result": {"channels": [""]}}',
        b'{"result": {"subs": []}}',
        b'{"result": {"subs": {"a": 1}}}',
        b'{"result": {"subs": {"a": {"override": {"presence": 1}}}}}',
        b'{"result": {"meta": [1]}}',
        b'{"result": {"b64info": "%%%"}}',
        b'{"result": {"b64info": "/w=="}}',
        b'{"result": {"b64data": "%%%"}}',
        b'{"result": {"b64data": 5}}',
        '{"result": {"b64data": "\u00e9"}}'.encode(),
        b'{"error": {"code": 0}}',
        b'{"error": {"code": "4000"}}',
        b'{"error": {"code": 4000, "message": 1}}',
        b'{"error": {"code": 4000, "temporary": "yes"}}',
        b'{"error": []}',
        b'{"disconnect": {"code": 1000}}',
        b'{"disconnect": {"code": 5000}}',
        b'{"disconnect": {"code": 4000, "reason": 3}}',
        b'{"result": {"user": "a", "data": NaN}}',
    ],
)
def test_malformed_connect_answers(body: bytes) -> None:
    with pytest.raises(BadResponse):
        bodies.connect_answer(body)


@pytest.mark.parametrize(
    ("parse", "body"),
    [
        (bodies.refresh_answer, b'{"result": {"expired": 1}}'),
        (bodies.refresh_answer, b'{"result": {"expire_at": 1.5}}'),
        (bodies.subscribe_answer, b'{"result": {"override": 1}}'),
        (bodies.subscribe_answer, b'{"result": {"info": 1, "b64info": "x"}}'),
        (bodies.publish_answer, b'{"result": {"tags": {"a": 1}}}'),
        (bodies.publish_answer, b'{"result": {"skip_history": "no"}}'),
        (bodies.publish_answer, b'{"result": {"idempotency_key": 1}}'),
        (bodies.sub_refresh_answer, b'{"result": {"expired": "yes"}}'),
        (bodies.rpc_answer, b'{"result": {"b64data": "%"}}'),
    ],
)
def test_other_malformed_answers(parse: Any, body: bytes) -> None:
    with pytest.raises(BadResponse):
        parse(body)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
KEYS = st.sampled_from(["result", "error", "disconnect", "user", "data", "b64data", "subs"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(KEYS, JSON | st.dictionaries(KEYS, JSON, max_size=3), max_size=3))
def test_any_json_is_an_answer_or_one_of_three_errors(value: Any) -> None:
    body = enc(value)
    for parse in (
        bodies.connect_answer,
        bodies.refresh_answer,
        bodies.subscribe_answer,
        bodies.publish_answer,
        bodies.rpc_answer,
        bodies.sub_refresh_answer,
    ):
        with contextlib.suppress(BadResponse, ClientError, DisconnectError):
            parse(body)


# -- headers and logs ------------------------------------------------------------------------


def test_forwarded_headers() -> None:
    handshake = {
        "Cookie": "a=b",
        "X-Custom": "real",
        "Host": "h",
        "X-Other": "o",
        "X-Bad": "a\r\nb",
    }
    emulated = {"authorization": "Bearer t", "x-custom": "forged", "x-real-ip": "6.6.6.6"}
    names = ("cookie", "x-custom", "host", "x-bad", "content-type")
    out = bodies.forwarded_headers(
        handshake, emulated, names, ("authorization", "x-custom"), "1.2.3.4"
    )
    assert out == {
        "authorization": "Bearer t",
        "x-custom": "real",
        "cookie": "a=b",
        "x-real-ip": "1.2.3.4",
        "x-forwarded-for": "1.2.3.4",
    }
    assert bodies.forwarded_headers(handshake, emulated, (), (), "") == {}


def test_header_values_http_forbids_are_left_out_not_a_failed_request() -> None:
    """A client's emulated header with a control character (what aiohttp refuses to send,
    failing the whole request) is left out; tab and non-ASCII text go."""
    names = ("x-e",)
    for bad in ("a\x0bb", "a\x7f", "\x00", "a\rb", "a\nb", "\x1b[31m"):
        assert bodies.forwarded_headers({}, {"x-e": bad}, (), names, "") == {}, repr(bad)
    for good in ("a\tb", "\u00e9t\u00e9", "\u2028"):
        assert bodies.forwarded_headers({}, {"x-e": good}, (), names, "") == {"x-e": good}


def test_a_client_never_sets_the_forwarded_address_itself() -> None:
    """Listed or not, the client's X-Forwarded-For / X-Real-IP never go: hubbub's address
    does, and without one neither header."""
    claims = {"X-Forwarded-For": "6.6.6.6", "X-Real-IP": "6.6.6.6"}
    names = ("x-forwarded-for", "x-real-ip")
    assert bodies.forwarded_headers(claims, claims, names, names, "") == {}
    out = bodies.forwarded_headers(claims, claims, names, names, "1.2.3.4")
    assert out == {"x-forwarded-for": "1.2.3.4", "x-real-ip": "1.2.3.4"}


def test_endpoints_are_logged_without_secrets() -> None:
    assert shown("https://u:pw@example.com:8443/p?token=abc&x=1") == (
        "https://example.com:8443/p?token=REDACTED&x=1"
    )
    assert shown("http://[::1]/c") == "http://[::1]/c"
