"""Centrifugo's own token claims (``b64info``, ``meta``, ``subs``, ``data``/``b64data``,
``override``): what a good token gives, and 3500 for every claim of the wrong type or shape."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest

from hubbub.auth import TokenVerifier, mint
from hubbub.claims import NO_OPTIONS, Override, SubscribeOptions
from hubbub.config import ChannelOptions, Settings
from hubbub.errors import DisconnectError

SECRET = "claims-" * 6
AT = 1_800_000_000.0
VERIFIER = TokenVerifier(Settings(token_hmac_secret=SECRET))


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def signed(body: str) -> str:
    """An HS256 token whose claims are ``body``, JSON text as it is (NaN included)."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = part(b'{"alg":"HS256","typ":"JWT"}') + "." + part(body.encode("utf-8", "surrogatepass"))
    return head + "." + part(hmac.new(SECRET.encode(), head.encode(), hashlib.sha256).digest())


def connection(**claims: Any) -> str:
    return mint(SECRET, "ada", now=AT, extra=claims)


def subscription(**claims: Any) -> str:
    return mint(SECRET, "ada", channel="c", now=AT, extra=claims)


def test_b64info_is_the_info_when_given() -> None:
    assert VERIFIER.connect(connection(b64info=b64('{"a": 1}')), now=AT).info == '{"a": 1}'
    both = connection(info={"from": "info"}, b64info=b64('"from b64info"'))
    assert VERIFIER.connect(both, now=AT).info == '"from b64info"'
    empty = connection(info={"from": "info"}, b64info="")
    assert VERIFIER.connect(empty, now=AT).info == '{"from":"info"}'
    assert VERIFIER.connect(connection(), now=AT).info is None
    sub = VERIFIER.subscribe(subscription(info=1, b64info=b64("[2]")), now=AT)
    assert sub.options.info == "[2]"


def test_meta_is_kept_as_an_object() -> None:
    meta = {"tenant": "acme", "roles": ["admin"], "n": None}
    assert VERIFIER.connect(connection(meta=meta), now=AT).meta == meta
    assert VERIFIER.connect(connection(), now=AT).meta is None
    assert VERIFIER.connect(connection(meta=None), now=AT).meta is None


def test_subs_are_server_side_channels_with_their_options() -> None:
    subs = {
        "news": {},
        "chat:1": {"info": {"seat": 4}, "data": {"welcome": True}},
        "chat:2": {
            "b64info": b64('{"b": 1}'),
            "info": "ignored",
            "b64data": b64("[1,2]"),
            "data": "ignored",
            "override": {"presence": {"value": False}, "join_leave": {"value": True}},
            "unknown": "ignored",
        },
    }
    got = VERIFIER.connect(connection(subs=subs, channels=["ignored"]), now=AT)
    assert got.channels == ["news", "chat:1", "chat:2"]
    assert got.subs == {
        "chat:1": SubscribeOptions('{"seat":4}', '{"welcome":true}'),
        "chat:2": SubscribeOptions('{"b": 1}', "[1,2]", Override(presence=False, join_leave=True)),
    }


def test_channels_count_when_subs_are_empty_or_absent() -> None:
    got = VERIFIER.connect(connection(subs={}, channels=["a", "b", "a"]), now=AT)
    assert got.channels == ["a", "b"]
    got = VERIFIER.connect(connection(subs=None, channels=["a"]), now=AT)
    assert (got.channels, got.subs) == (["a"], {})


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({}, None),
        ({"presence": None}, None),
        ({"presence": {"value": True}}, Override(presence=True)),
        ({"presence": {}}, Override(presence=False)),  # Go's zero value, as in Centrifugo
        ({"presence": {"value": None}}, Override(presence=False)),
        (
            {"join_leave": {"value": False}, "force_push_join_leave": {"value": True}},
            Override(join_leave=False, force_push_join_leave=True),
        ),
        (
            {"force_recovery": {"value": True}, "force_positioning": {"value": True}},
            Override(force_recovery=True, force_positioning=True),
        ),
        ({"some_future_option": {"value": True}}, None),
    ],
)
def test_overrides_are_bool_values(override: dict[str, Any], expected: Override | None) -> None:
    sub = VERIFIER.subscribe(subscription(override=override), now=AT)
    assert sub.options.override == expected
    conn = VERIFIER.connect(connection(subs={"c": {"override": override}}), now=AT)
    assert conn.subs.get("c", NO_OPTIONS).override == expected


def test_a_subscription_tokens_options() -> None:
    got = VERIFIER.subscribe(subscription(info={"i": 1}, data={"d": 2}), now=AT)
    assert got.options == SubscribeOptions('{"i":1}', '{"d":2}')
    got = VERIFIER.subscribe(subscription(b64data=b64('{"d": 3}'), data="ignored"), now=AT)
    assert got.options.data == '{"d": 3}'
    assert VERIFIER.subscribe(subscription(), now=AT).options == NO_OPTIONS


NOT_UTF8 = b64(bytes([0xFF, 0xFE]))

#: Claims of the wrong type or shape, each making the token invalid (3500).
BAD_CONNECTION_CLAIMS: list[tuple[str, str]] = [
    ('"b64info": 12', "b64info must be a base64 string"),
    ('"b64info": true', "b64info must be a base64 string"),
    ('"b64info": {"a": 1}', "b64info must be a base64 string"),
    ('"b64info": "!!!!"', "b64info must be base64 of JSON text"),
    ('"b64info": "e30"', "b64info must be base64 of JSON text"),  # "{}" without its padding
    (f'"b64info": "{b64("not json")}"', "b64info must be base64 of JSON text"),
    (f'"b64info": "{NOT_UTF8}"', "b64info must be base64 of JSON text"),
    (f'"b64info": "{b64("NaN")}"', "b64info must be base64 of JSON text"),
    ('"info": NaN', "info is not usable JSON"),
    ('"info": {"a": Infinity}', "info is not usable JSON"),
    ('"info": "\\ud800"', "info is not usable JSON"),
    ('"meta": "tenant=acme"', "meta must be a JSON object"),
    ('"meta": ["acme"]', "meta must be a JSON object"),
    ('"meta": 1', "meta must be a JSON object"),
    ('"meta": {"n": NaN}', "meta is not usable JSON"),
    ('"channels": "news"', "channels must be a list of strings"),
    ('"channels": [1]', "channels must be a list of strings"),
    ('"channels": [null]', "channels must be a list of strings"),
    ('"subs": ["news"]', "subs must be an object of channel options"),
    ('"subs": "news"', "subs must be an object of channel options"),
    ('"subs": {"news": true}', "subs: the options of 'news' must be an object"),
    ('"subs": {"news": null}', "subs: the options of 'news' must be an object"),
    ('"subs": {"news": {"info": NaN}}', "subs.news.info is not usable JSON"),
    ('"subs": {"news": {"data": [Infinity]}}', "subs.news.data is not usable JSON"),
    ('"subs": {"news": {"b64data": "%%%"}}', "subs.news.b64data must be base64 of JSON text"),
    ('"subs": {"news": {"b64data": 7}}', "subs.news.b64data must be a base64 string"),
    ('"subs": {"news": {"b64info": "!"}}', "subs.news.b64info must be base64 of JSON text"),
    ('"subs": {"news": {"override": true}}', "subs.news.override must be an object"),
    (
        '"subs": {"news": {"override": {"presence": true}}}',
        'subs.news.override.presence must be {"value": true|false}',
    ),
    (
        '"subs": {"news": {"override": {"presence": {"value": "yes"}}}}',
        "subs.news.override.presence must be",
    ),
    (
        '"subs": {"news": {"override": {"join_leave": {"value": 1}}}}',
        "subs.news.override.join_leave must be",
    ),
    (
        '"subs": {"news": {"override": {"force_recovery": {"value": 0}}}}',
        "subs.news.override.force_recovery must be",
    ),
    (
        '"subs": {"news": {"override": {"force_positioning": []}}}',
        "subs.news.override.force_positioning must be",
    ),
]


@pytest.mark.parametrize(("claim", "reason"), BAD_CONNECTION_CLAIMS)
def test_a_bad_connection_claim_is_an_invalid_token(claim: str, reason: str) -> None:
    token = signed('{"sub": "ada", ' + claim + "}")
    with pytest.raises(DisconnectError) as info:
        VERIFIER.connect(token, now=AT)
    assert info.value.code == 3500
    assert reason in info.value.reason


BAD_SUBSCRIPTION_CLAIMS: list[tuple[str, str]] = [
    ('"b64info": 1', "b64info must be a base64 string"),
    (f'"b64info": "{b64("{")}"', "b64info must be base64 of JSON text"),
    ('"info": NaN', "info is not usable JSON"),
    ('"data": -Infinity', "data is not usable JSON"),
    ('"b64data": ["x"]', "b64data must be a base64 string"),
    ('"b64data": "a b"', "b64data must be base64 of JSON text"),
    ('"override": "presence"', "override must be an object"),
    ('"override": {"presence": {"value": "false"}}', "override.presence must be"),
    ('"override": {"force_push_join_leave": false}', "override.force_push_join_leave must be"),
]


@pytest.mark.parametrize(("claim", "reason"), BAD_SUBSCRIPTION_CLAIMS)
def test_a_bad_subscription_claim_is_an_invalid_token(claim: str, reason: str) -> None:
    token = signed('{"sub": "ada", "channel": "c", ' + claim + "}")
    with pytest.raises(DisconnectError) as info:
        VERIFIER.subscribe(token, now=AT)
    assert info.value.code == 3500
    assert reason in info.value.reason


def test_an_override_changes_only_what_it_names() -> None:
    namespace = ChannelOptions(presence=True, join_leave=False, history_size=5, history_ttl=60)
    own = Override(presence=False, join_leave=True, force_recovery=True).apply(namespace)
    assert (own.presence, own.join_leave, own.force_recovery) == (False, True, True)
    rest = {"presence", "join_leave", "force_recovery"}
    assert own.model_dump(exclude=rest) == namespace.model_dump(exclude=rest)
    assert namespace.presence and not namespace.join_leave  # unchanged
    # Nothing to change: the namespace's own options (no copy to remember).
    assert Override(presence=True).apply(namespace) is namespace
    assert Override(force_positioning=False).apply(namespace) is namespace
    assert Override(force_positioning=True).apply(namespace).force_positioning


def test_minted_extra_claims_are_signed_as_given() -> None:
    """(The helper the tests use.)"""
    token = mint(SECRET, "ada", extra={"meta": {"k": "v"}}, now=AT)
    body = token.split(".")[1]
    assert json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))["meta"] == {"k": "v"}
