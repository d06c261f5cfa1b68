"""Pusher's signatures, checked against the ``pusher`` PyPI library (pusher-http-python): what
it signs we sign byte for byte, what it sends our verifier accepts, and a tampered request
(body, query, path, timestamp, key, secret) is refused."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any
from urllib.parse import urlsplit

import pusher
import pytest
from pusher.http import Request

from hubbub.dialects.pusher import signing
from hubbub.dialects.pusher.errors import SignatureError

APP_ID, KEY, SECRET = "123456", "app-key", "app-secret"
MASTER_KEY = bytes(range(32))
SOCKET_ID = "1234.5678"


@pytest.fixture
def client() -> pusher.Pusher:
    """The library's client; it never sends anything here."""
    return pusher.Pusher(
        app_id=APP_ID,
        key=KEY,
        secret=SECRET,
        host="127.0.0.1",
        port=9,
        ssl=False,
        encryption_master_key_base64=base64.b64encode(MASTER_KEY).decode(),
    )


def _request(client: pusher.Pusher, method: str, *args: Any, **kwargs: Any) -> Request:
    """The request the library would send for ``client.<method>(...)``, built, not sent."""
    return getattr(client._pusher_client, method).make_request(*args, **kwargs)  # type: ignore[no-any-return]


def _verify(request: Request, **change: Any) -> signing.VerifiedQuery:
    """Our verifier on the library's request as the server would receive it."""
    url = urlsplit(request.url)
    parts = {
        "method": request.method,
        "path": url.path,
        "query": url.query,
        "body": request.body,
        "now": float(request.query_params["auth_timestamp"]),
    }
    parts.update(change)
    return signing.verify_api_request(KEY, SECRET, **parts)


def test_private_channel_auth_equals_the_library(client: pusher.Pusher) -> None:
    """authorize_channel for private- is the library's authenticate, key:signature."""
    ours = signing.authorize_channel(KEY, SECRET, SOCKET_ID, "private-orders")
    assert ours == client.authenticate("private-orders", SOCKET_ID)


def test_presence_channel_auth_equals_the_library(client: pusher.Pusher) -> None:
    """For presence- the channel_data string and its signature match the library's."""
    member = {"user_id": "42", "user_info": {"name": "Ada", "roles": ["admin"]}}
    ours = signing.authorize_channel(KEY, SECRET, SOCKET_ID, "presence-room", presence=member)
    assert ours == client.authenticate("presence-room", SOCKET_ID, member)
    assert signing.verify_channel_auth(
        ours["auth"], KEY, SECRET, SOCKET_ID, "presence-room", ours["channel_data"]
    )


def test_encrypted_channel_shared_secret_equals_the_library(client: pusher.Pusher) -> None:
    """private-encrypted- adds the library's shared_secret (base64 of the derived key)."""
    ours = signing.authorize_channel(
        KEY, SECRET, SOCKET_ID, "private-encrypted-vault", master_key=MASTER_KEY
    )
    theirs = client.authenticate("private-encrypted-vault", SOCKET_ID)
    assert ours["auth"] == theirs["auth"]
    assert ours["shared_secret"].encode() == theirs["shared_secret"]
    assert (
        signing.shared_secret("private-encrypted-vault", MASTER_KEY)
        == hashlib.sha256(b"private-encrypted-vault" + MASTER_KEY).digest()
    )


def test_user_authentication_equals_the_library(client: pusher.Pusher) -> None:
    """authenticate_user gives the library's auth and user_data for pusher:signin."""
    user = {"id": "u-1", "name": "Ada", "watchlist": ["u-2"]}
    ours = signing.authenticate_user(KEY, SECRET, SOCKET_ID, user)
    assert ours == client.authenticate_user(SOCKET_ID, user)
    assert signing.verify_user_auth(ours["auth"], KEY, SECRET, SOCKET_ID, ours["user_data"])


def test_channel_auth_refuses_what_it_does_not_sign() -> None:
    """Another socket, channel, channel_data, key or secret, or a malformed auth, is refused."""
    auth = signing.channel_auth(KEY, SECRET, SOCKET_ID, "private-a")
    assert signing.verify_channel_auth(auth, KEY, SECRET, SOCKET_ID, "private-a")
    assert not signing.verify_channel_auth(auth, KEY, SECRET, "1234.5679", "private-a")
    assert not signing.verify_channel_auth(auth, KEY, SECRET, SOCKET_ID, "private-b")
    assert not signing.verify_channel_auth(auth, KEY, SECRET, SOCKET_ID, "private-a", '{"u":1}')
    assert not signing.verify_channel_auth(auth, "other-key", SECRET, SOCKET_ID, "private-a")
    assert not signing.verify_channel_auth(auth, KEY, "other-secret", SOCKET_ID, "private-a")
    for bad in (None, "", "no-colon", 42, auth.upper(), f"{KEY}:"):
        assert not signing.verify_channel_auth(bad, KEY, SECRET, SOCKET_ID, "private-a")


def test_user_auth_refuses_changed_user_data() -> None:
    """A sign-in whose user_data changed after signing is refused."""
    body = signing.authenticate_user(KEY, SECRET, SOCKET_ID, {"id": "u-1"})
    assert not signing.verify_user_auth(body["auth"], KEY, SECRET, SOCKET_ID, '{"id": "u-2"}')


def test_auth_helpers_refuse_what_pusher_js_cannot_use() -> None:
    """Presence without a user_id, encrypted without a master key, a user without an id."""
    with pytest.raises(ValueError):
        signing.authorize_channel(KEY, SECRET, SOCKET_ID, "presence-a")
    with pytest.raises(ValueError):
        signing.authorize_channel(KEY, SECRET, SOCKET_ID, "private-encrypted-a")
    with pytest.raises(ValueError):
        signing.authenticate_user(KEY, SECRET, SOCKET_ID, {"name": "no id"})


def test_master_key_parsing() -> None:
    """The base64 master key must decode to 32 bytes."""
    assert signing.parse_master_key(base64.b64encode(MASTER_KEY).decode()) == MASTER_KEY
    for bad in ("not base64!", base64.b64encode(b"short").decode()):
        with pytest.raises(ValueError):
            signing.parse_master_key(bad)


def test_webhook_signature_is_accepted_by_the_library(client: pusher.Pusher) -> None:
    """Our webhook headers pass the library's validate_webhook; its body comes back.

    The library also refuses a body whose time_ms is over 300 s from its clock, hence now."""
    payload = {
        "time_ms": int(time.time() * 1000),
        "events": [{"name": "channel_occupied", "channel": "a"}],
    }
    body = json.dumps(payload).encode()
    headers = signing.webhook_headers(KEY, SECRET, body)
    got = client.validate_webhook(
        headers[signing.WEBHOOK_KEY_HEADER], headers[signing.WEBHOOK_SIGNATURE_HEADER], body
    )
    assert got == payload
    assert signing.verify_webhook(KEY, SECRET, headers, body)
    assert not signing.verify_webhook(KEY, SECRET, headers, body + b" ")


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("trigger", (["a", "private-b"], "ev", {"x": 1}, "1.2")),
        ("trigger_batch", ([{"channel": "a", "name": "ev", "data": "d"}],)),
        ("channels_info", ("presence-", ["user_count", "subscription_count"])),
        ("channel_info", ("presence-a", ["user_count"])),
        ("users_info", ("presence-a",)),
        ("terminate_user_connections", ("u-1",)),
    ],
)
def test_verifier_accepts_the_library_requests(
    client: pusher.Pusher, method: str, args: tuple[Any, ...]
) -> None:
    """Every HTTP API request the library signs passes; the auth parameters are removed."""
    verified = _verify(_request(client, method, *args))
    assert not set(verified.params) & {"auth_key", "auth_signature", "body_md5"}
    if method == "channels_info":
        assert verified.params == {
            "filter_by_prefix": "presence-",
            "info": "user_count,subscription_count",
        }


def test_verifier_accepts_percent_encoded_query(client: pusher.Pusher) -> None:
    """A client that escapes its query (commas as %2C) signs the same unescaped string."""
    request = _request(client, "channels_info", "presence-", ["user_count", "subscription_count"])
    query = urlsplit(request.url).query.replace(",", "%2C")
    assert _verify(request, query=query).params["info"] == "user_count,subscription_count"


def test_verifier_refuses_tampered_requests(client: pusher.Pusher) -> None:
    """Changing body, query, path or method after signing fails with 401."""
    request = _request(client, "trigger", ["a"], "ev", "data")
    query = urlsplit(request.url).query
    tampered = [
        {"body": request.body.replace(b"data", b"DATA")},
        {"query": query + "&extra=1"},
        {"query": query.replace("auth_version=1.0", "auth_version=1.1")},
        {"path": "/apps/999/events"},
        {"method": "PUT"},
    ]
    for change in tampered:
        with pytest.raises(SignatureError) as raised:
            _verify(request, **change)
        assert raised.value.status == 401, change


def test_verifier_refuses_a_changed_body_with_its_new_md5(client: pusher.Pusher) -> None:
    """Recomputing body_md5 for a new body does not help: the signature covers body_md5."""
    request = _request(client, "trigger", ["a"], "ev", "data")
    body = b'{"name":"ev","channels":["b"],"data":"x"}'
    query = urlsplit(request.url).query.replace(
        request.query_params["body_md5"], hashlib.md5(body).hexdigest()
    )
    with pytest.raises(SignatureError, match="Invalid signature"):
        _verify(request, body=body, query=query)


def test_verifier_window_is_600_seconds(client: pusher.Pusher) -> None:
    """A timestamp 600 s away either way passes; 601 s away is refused."""
    request = _request(client, "channels_info")
    ts = float(request.query_params["auth_timestamp"])
    _verify(request, now=ts + 600)
    _verify(request, now=ts - 600)
    for now in (ts + 601, ts - 601):
        with pytest.raises(SignatureError, match="Timestamp expired"):
            _verify(request, now=now)


def test_verifier_refuses_wrong_key_or_secret(client: pusher.Pusher) -> None:
    """A request signed for another app's key or secret is refused."""
    request = _request(client, "channels_info")
    with pytest.raises(SignatureError, match="auth_key"):
        signing.verify_api_request(
            "other-key", SECRET, "GET", request.path, urlsplit(request.url).query, b"", 0
        )
    other = pusher.Pusher(app_id=APP_ID, key=KEY, secret="wrong", host="127.0.0.1", port=9)
    with pytest.raises(SignatureError, match="Invalid signature"):
        _verify(_request(other, "channels_info"))


def test_verifier_needs_body_md5_for_a_body() -> None:
    """A body without body_md5, or a missing timestamp, is refused."""
    body = b'{"name":"ev","channel":"a","data":"x"}'
    params = signing.sign_api_request(KEY, SECRET, "POST", "/apps/1/events", {}, body, 1000)
    del params["body_md5"]
    params["auth_signature"] = signing.sign(
        SECRET, signing.api_string_to_sign("POST", "/apps/1/events", params)
    )
    query = "&".join(f"{k}={v}" for k, v in params.items())
    with pytest.raises(SignatureError, match="body_md5"):
        signing.verify_api_request(KEY, SECRET, "POST", "/apps/1/events", query, body, 1000)
    no_ts = query.replace("auth_timestamp=1000&", "")
    with pytest.raises(SignatureError, match="auth_timestamp"):
        signing.verify_api_request(KEY, SECRET, "POST", "/apps/1/events", no_ts, body, 1000)


def test_verifier_refuses_a_repeated_query_key() -> None:
    """A key given twice makes the sorted string ambiguous: 400."""
    with pytest.raises(SignatureError) as raised:
        signing.verify_api_request(KEY, SECRET, "GET", "/", "a=1&A=2", b"", 0)
    assert raised.value.status == 400


def test_our_request_signing_is_the_library_string_to_sign() -> None:
    """sign_api_request's signature is the HMAC of the documented string: sorted keys,
    lower-cased, unescaped, auth_signature excluded."""
    params = signing.sign_api_request(
        KEY, SECRET, "GET", "/apps/1/channels", {"Filter_By_Prefix": "a b"}, b"", 1353088179
    )
    expected = (
        "GET\n/apps/1/channels\nauth_key=app-key&auth_timestamp=1353088179&auth_version=1.0"
        "&body_md5=d41d8cd98f00b204e9800998ecf8427e&filter_by_prefix=a b"
    )
    assert signing.api_string_to_sign("GET", "/apps/1/channels", params) == expected
    assert params["auth_signature"] == signing.sign(SECRET, expected)
