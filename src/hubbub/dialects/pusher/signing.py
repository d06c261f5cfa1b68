"""The signatures of the Pusher Channels protocol: HMAC-SHA256 everywhere, hex digests.

Pure functions (no clock reads: ``now`` is passed in, no I/O). Four kinds of signature:

- **Channel authorization** (``private-``, ``presence-``, ``private-encrypted-``): the app's
  backend signs ``socket_id:channel`` (presence: ``socket_id:channel:channel_data``) and the
  client sends ``auth = "key:hexdigest"`` in ``pusher:subscribe``.
- **User authentication** (``pusher:signin``): ``socket_id::user::user_data``.
- **HTTP API requests**: ``METHOD\\nPATH\\nQUERY`` where QUERY is every query parameter but
  ``auth_signature``, keys lower-cased, sorted by key, joined unescaped as ``k=v&k=v``; the
  request carries ``auth_key``, ``auth_timestamp``, ``auth_version=1.0``, ``body_md5`` and
  ``auth_signature``.
- **Webhooks**: ``X-Pusher-Key`` and ``X-Pusher-Signature`` (the HMAC of the raw body).

Plus the shared secret of an encrypted channel: SHA-256 of the channel name followed by the
app's 32-byte encryption master key (what the server libraries hand the client, base64).

Guarantees: every comparison of a signature is constant-time (:func:`hmac.compare_digest`);
a verifier never raises on malformed input other than with ``False`` or a
:class:`~.errors.SignatureError`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl

from hubbub.dialects.pusher.errors import SignatureError

#: The only ``auth_version`` the HTTP API knows.
AUTH_VERSION: Final = "1.0"
#: How far ``auth_timestamp`` may be from the server's clock, either way (Pusher's window).
TIMESTAMP_WINDOW_SECONDS: Final = 600
#: The header names of a Pusher webhook.
WEBHOOK_KEY_HEADER: Final = "X-Pusher-Key"
WEBHOOK_SIGNATURE_HEADER: Final = "X-Pusher-Signature"
#: The length of an encryption master key, in bytes.
MASTER_KEY_LENGTH: Final = 32


def sign(secret: str, message: str) -> str:
    """The lower-case hex HMAC-SHA256 of ``message`` (UTF-8) with ``secret`` (UTF-8)."""
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def _same(a: str, b: str) -> bool:
    """Constant-time equality of two strings (compared as UTF-8, so never raising)."""
    return hmac.compare_digest(a.encode(), b.encode())


# -- channel authorization and user authentication -------------------------------------


def channel_string_to_sign(socket_id: str, channel: str, channel_data: str | None = None) -> str:
    """``socket_id:channel``, with ``:channel_data`` appended when there is one (presence)."""
    base = f"{socket_id}:{channel}"
    return f"{base}:{channel_data}" if channel_data else base


def user_string_to_sign(socket_id: str, user_data: str) -> str:
    """``socket_id::user::user_data``: what ``pusher:signin``'s ``auth`` signs."""
    return f"{socket_id}::user::{user_data}"


def channel_auth(
    key: str, secret: str, socket_id: str, channel: str, channel_data: str | None = None
) -> str:
    """The ``auth`` value of a ``pusher:subscribe``: ``key:signature``."""
    return f"{key}:{sign(secret, channel_string_to_sign(socket_id, channel, channel_data))}"


def user_auth(key: str, secret: str, socket_id: str, user_data: str) -> str:
    """The ``auth`` value of a ``pusher:signin``: ``key:signature``."""
    return f"{key}:{sign(secret, user_string_to_sign(socket_id, user_data))}"


def _check_auth(auth: object, key: str, secret: str, message: str) -> bool:
    if not isinstance(auth, str):
        return False
    given_key, sep, signature = auth.partition(":")
    if not sep:
        return False
    # Both compared, in constant time, whatever the first one says.
    key_ok = _same(given_key, key)
    return _same(signature, sign(secret, message)) and key_ok


def verify_channel_auth(
    auth: object,
    key: str,
    secret: str,
    socket_id: str,
    channel: str,
    channel_data: str | None = None,
) -> bool:
    """Whether ``auth`` (from ``pusher:subscribe``) is this app's signature of the subscription.

    ``channel_data`` is the exact string the client sent (presence), since the signature
    covers its bytes. ``False`` for anything that is not a ``key:signature`` string.
    """
    return _check_auth(auth, key, secret, channel_string_to_sign(socket_id, channel, channel_data))


def verify_user_auth(auth: object, key: str, secret: str, socket_id: str, user_data: str) -> bool:
    """Whether ``auth`` (from ``pusher:signin``) is this app's signature of ``user_data``."""
    return _check_auth(auth, key, secret, user_string_to_sign(socket_id, user_data))


def parse_master_key(encoded: str) -> bytes:
    """The 32-byte encryption master key from its base64 form (as the server libraries take it).

    Raises ``ValueError`` when the text is not base64 of exactly 32 bytes.
    """
    try:
        raw = base64.b64decode(encoded, validate=True)
    except ValueError as exc:
        raise ValueError("the encryption master key is not valid base64") from exc
    if len(raw) != MASTER_KEY_LENGTH:
        raise ValueError(f"the encryption master key must be {MASTER_KEY_LENGTH} bytes")
    return raw


def shared_secret(channel: str, master_key: bytes) -> bytes:
    """An encrypted channel's secretbox key: SHA-256 of the channel name then the master key."""
    return hashlib.sha256(channel.encode() + master_key).digest()


def _json(value: object) -> str:
    # json.dumps' default separators: what the server libraries sign, byte for byte.
    return json.dumps(value)


def authorize_channel(
    key: str,
    secret: str,
    socket_id: str,
    channel: str,
    *,
    presence: Mapping[str, Any] | None = None,
    master_key: bytes | None = None,
) -> dict[str, str]:
    """The JSON body an app's channel-authorization endpoint answers pusher-js with.

    ``{"auth": "key:sig"}``; for a presence channel pass ``presence={"user_id": ...,
    "user_info": {...}}`` and the body adds ``channel_data`` (that mapping as JSON, the
    string signed); for ``private-encrypted-`` pass the master key and it adds
    ``shared_secret`` (base64). The caller decides who may subscribe; this only signs.
    Raises ``ValueError`` for a presence channel without ``presence``, or an encrypted
    one without ``master_key``.
    """
    channel_data = None
    if channel.startswith("presence-"):
        if presence is None or "user_id" not in presence:
            raise ValueError("a presence channel needs presence={'user_id': ..., ...}")
        channel_data = _json(dict(presence))
    body = {"auth": channel_auth(key, secret, socket_id, channel, channel_data)}
    if channel_data is not None:
        body["channel_data"] = channel_data
    if channel.startswith("private-encrypted-"):
        if master_key is None:
            raise ValueError("an encrypted channel needs the encryption master key")
        body["shared_secret"] = base64.b64encode(shared_secret(channel, master_key)).decode()
    return body


def authenticate_user(
    key: str, secret: str, socket_id: str, user: Mapping[str, Any]
) -> dict[str, str]:
    """The JSON body an app's user-authentication endpoint answers pusher-js with.

    ``{"auth": "key:sig", "user_data": "<user as JSON>"}``. ``user`` must have a non-empty
    string ``id`` (pusher-js drops a sign-in without one); raises ``ValueError`` otherwise.
    """
    user_id = user.get("id")
    if not isinstance(user_id, str) or not user_id:
        raise ValueError("user needs a non-empty string 'id'")
    user_data = _json(dict(user))
    return {"auth": user_auth(key, secret, socket_id, user_data), "user_data": user_data}


# -- webhooks --------------------------------------------------------------------------


def webhook_headers(key: str, secret: str, body: bytes) -> dict[str, str]:
    """The two headers of a webhook POST carrying ``body`` (sign the exact bytes sent)."""
    return {WEBHOOK_KEY_HEADER: key, WEBHOOK_SIGNATURE_HEADER: sign_bytes(secret, body)}


def sign_bytes(secret: str, body: bytes) -> str:
    """The hex HMAC-SHA256 of raw bytes with ``secret``."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_webhook(key: str, secret: str, headers: Mapping[str, str], body: bytes) -> bool:
    """Whether a webhook's headers (exact-case names) are this app's signature of ``body``."""
    given_key = headers.get(WEBHOOK_KEY_HEADER, "")
    signature = headers.get(WEBHOOK_SIGNATURE_HEADER, "")
    key_ok = _same(given_key, key)
    return _same(signature, sign_bytes(secret, body)) and key_ok


# -- HTTP API request signing ----------------------------------------------------------


def api_string_to_sign(method: str, path: str, params: Mapping[str, str]) -> str:
    """``METHOD\\nPATH\\nQUERY``: ``params`` without ``auth_signature``, keys lower-cased,
    sorted, joined as ``k=v`` by ``&`` and not escaped."""
    pairs = sorted((k.lower(), v) for k, v in params.items() if k.lower() != "auth_signature")
    query = "&".join(f"{k}={v}" for k, v in pairs)
    return f"{method.upper()}\n{path}\n{query}"


def sign_api_request(
    key: str,
    secret: str,
    method: str,
    path: str,
    params: Mapping[str, str],
    body: bytes,
    now: float,
) -> dict[str, str]:
    """``params`` plus the auth parameters of a request made at ``now`` (Unix seconds).

    What a server library does; used by hubbub's own tools and tests.
    """
    signed = dict(params)
    signed.update(
        auth_key=key,
        auth_timestamp=str(int(now)),
        auth_version=AUTH_VERSION,
        body_md5=hashlib.md5(body).hexdigest(),
    )
    signed["auth_signature"] = sign(secret, api_string_to_sign(method, path, signed))
    return signed


@dataclass(frozen=True, slots=True)
class VerifiedQuery:
    """A request whose signature checked out: its query parameters, keys lower-cased, the
    ``auth_*`` and ``body_md5`` parameters removed."""

    params: Mapping[str, str]


_AUTH_PARAMS: Final = frozenset(
    {"auth_key", "auth_timestamp", "auth_version", "auth_signature", "body_md5"}
)


def parse_query(query: str) -> dict[str, str]:
    """A raw query string as a dict, keys lower-cased, values percent-decoded.

    Raises :class:`SignatureError` (400) for a key given twice: sorting would be ambiguous.
    """
    params: dict[str, str] = {}
    for raw_key, value in parse_qsl(query, keep_blank_values=True):
        k = raw_key.lower()
        if k in params:
            raise SignatureError(400, f"query parameter {k!r} given more than once")
        params[k] = value
    return params


def verify_api_request(
    key: str,
    secret: str,
    method: str,
    path: str,
    query: str,
    body: bytes,
    now: float,
    window: float = TIMESTAMP_WINDOW_SECONDS,
) -> VerifiedQuery:
    """Check an HTTP API request's signature; raise :class:`SignatureError` if it fails.

    ``path`` is the request path as signed (percent-decoded, no query); ``query`` the raw query
    string; ``now`` the server's clock in Unix seconds. Refused (401): a wrong or missing
    ``auth_key``, ``auth_version`` other than 1.0, ``auth_timestamp`` missing or more than
    ``window`` seconds from ``now``, a body without ``body_md5`` or whose MD5 differs, a
    signature that differs. The checks run in that order and every one runs before the
    signature is accepted; the signature compare is constant-time.
    """
    params = parse_query(query)
    if not _same(params.get("auth_key", ""), key):
        raise SignatureError(401, "Unknown auth_key")
    if params.get("auth_version") != AUTH_VERSION:
        raise SignatureError(401, f"auth_version must be {AUTH_VERSION}")
    try:
        timestamp = int(params["auth_timestamp"])
    except (KeyError, ValueError):
        raise SignatureError(401, "auth_timestamp missing or not an integer") from None
    if abs(now - timestamp) > window:
        raise SignatureError(
            401,
            f"Timestamp expired: given timestamp ({timestamp}) is not within {int(window)}s "
            f"of server time ({int(now)})",
        )
    given_md5 = params.get("body_md5")
    if body or given_md5 is not None:
        if given_md5 is None:
            raise SignatureError(401, "body_md5 missing for a request with a body")
        if not _same(given_md5, hashlib.md5(body).hexdigest()):
            raise SignatureError(401, "body_md5 does not match the body")
    signature = params.get("auth_signature", "")
    expected_string = api_string_to_sign(method, path, params)
    if not _same(signature, sign(secret, expected_string)):
        # Pusher's answer names the string to sign (never the secret nor the signature).
        raise SignatureError(
            401, f"Invalid signature: you should have sent HmacSHA256Hex({expected_string!r})"
        )
    return VerifiedQuery({k: v for k, v in params.items() if k not in _AUTH_PARAMS})
