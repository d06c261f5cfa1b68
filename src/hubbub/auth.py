"""Client authentication with JWTs: connection tokens and subscription tokens.

Keys come from the settings: ``token_hmac_secret`` (HS256), ``token_rsa_public_key`` (RS256),
``token_ecdsa_public_key`` (ES256) and ``token_jwks_file`` (RS256/ES256 keys picked by ``kid``).
A token is checked with the key of *its own* algorithm only, so neither ``alg: none`` nor
algorithm confusion (an RS256 public key used as an HS256 secret) gets through.

A connection token has no ``channel`` claim; a subscription token must have one, so neither can
stand in for the other. Centrifugo's own claims (``info``/``b64info``, ``meta``, ``channels``,
``subs``, ``data``/``b64data``, ``override``) are read by :mod:`hubbub.claims`. What a refused
token gets (Centrifugo's codes):

- expired (``exp`` passed): error 109 "token expired" (SDKs fetch a new token and retry);
- anything else (bad signature, unknown algorithm, ``nbf`` or ``iat`` in the future, wrong
  ``aud``/``iss``, malformed, longer than :data:`MAX_TOKEN_LENGTH` characters, the wrong kind
  of token, a custom claim of the wrong type): disconnect 3500 "invalid token".

The time claims ``exp``, ``nbf``, ``iat`` and ``expire_at`` must be JSON numbers of seconds
since 1970 between 0 and the end of the year 9999: a string (even of digits), a boolean, NaN,
Infinity or a larger number makes the token invalid (3500), so such a token is neither
accepted without expiry nor turned into an internal error. They are checked against the
``now`` given to :meth:`TokenVerifier.connect` / :meth:`TokenVerifier.subscribe`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import jwt

from hubbub import claims as custom
from hubbub.claims import NO_OPTIONS, SubscribeOptions
from hubbub.config import Settings
from hubbub.core.codes import Disconnects, ErrorCode
from hubbub.errors import ClientError, ConfigError, DisconnectError


@dataclass(frozen=True, slots=True)
class ConnectClaims:
    """A verified connection token. ``info`` is JSON text (``b64info`` decoded when given);
    ``channels`` are the server-side subscriptions (a non-empty ``subs`` claim's channels,
    else the ``channels`` claim) and ``subs`` the options of those that have some; ``meta``
    is never sent to clients (see :mod:`hubbub.claims`)."""

    user: str
    expire_at: float | None
    info: str | None
    channels: list[str]
    meta: dict[str, Any] | None = None
    subs: Mapping[str, SubscribeOptions] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SubscribeClaims:
    """A verified subscription token; ``options`` are its ``info``/``b64info``,
    ``data``/``b64data`` and ``override`` claims."""

    user: str
    channel: str
    expire_at: float | None
    options: SubscribeOptions = NO_OPTIONS


def invalid(reason: str) -> DisconnectError:
    return DisconnectError(Disconnects.INVALID_TOKEN.code, f"invalid token: {reason}")


EXPIRED = ClientError(ErrorCode.TOKEN_EXPIRED)

#: The latest time claim accepted, 9999-12-31T23:59:59Z: later ones fit no calendar or timer.
MAX_NUMERIC_DATE: Final = 253_402_300_799
#: The longest token looked at, in characters: as much as the default max_message_size, and
#: far more than keys, claims, a channel list and some info take.
MAX_TOKEN_LENGTH: Final = 65_536


class TokenVerifier:
    """Checks tokens against the keys of the settings."""

    def __init__(self, settings: Settings) -> None:
        self._keys: dict[str, Any] = {}
        self._jwks: dict[str, jwt.PyJWK] = {}
        self._audience = settings.token_audience
        self._issuer = settings.token_issuer
        if settings.token_hmac_secret:
            self._keys["HS256"] = settings.token_hmac_secret
        for alg, path in (
            ("RS256", settings.token_rsa_public_key),
            ("ES256", settings.token_ecdsa_public_key),
        ):
            if path is not None:
                self._keys[alg] = _read(path, alg)
        if settings.token_jwks_file is not None:
            try:
                keyset = jwt.PyJWKSet.from_json(settings.token_jwks_file.read_text())
            except (OSError, jwt.PyJWTError, ValueError) as exc:
                raise ConfigError([f"token_jwks_file: {exc}"]) from None
            self._jwks = {k.key_id: k for k in keyset.keys if k.key_id}

    @property
    def enabled(self) -> bool:
        return bool(self._keys or self._jwks)

    def _decode(self, token: str, now: float) -> dict[str, Any]:
        if not self.enabled:
            raise invalid("no token keys are configured")
        # Before any decoding: a 1 MB token costs nothing, and a JWT is base64url and dots
        # only (PyJWT raised UnicodeEncodeError, an internal error, on a lone surrogate).
        if len(token) > MAX_TOKEN_LENGTH:
            raise invalid(f"too long (more than {MAX_TOKEN_LENGTH} characters)")
        if not token.isascii():
            raise invalid("malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise invalid("malformed") from None
        alg = header.get("alg")
        kid = header.get("kid")
        key: Any = None
        if kid is not None and kid in self._jwks and alg in ("RS256", "ES256"):
            jwk = self._jwks[kid]
            if jwk.algorithm_name not in (None, alg):
                raise invalid("algorithm does not match the key")
            key = jwk.key
        elif isinstance(alg, str) and alg in self._keys:
            key = self._keys[alg]
        if key is None:
            raise invalid(f"algorithm {alg!r} is not accepted")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[str(alg)],
                audience=self._audience,
                issuer=self._issuer,
                options={
                    "require": ["sub"],
                    "verify_aud": self._audience is not None,
                    # Time claims are checked by _check_times: PyJWT takes digit strings and
                    # booleans for numbers (it calls int() on them).
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidAudienceError:
            raise invalid("wrong audience") from None
        except jwt.InvalidIssuerError:
            raise invalid("wrong issuer") from None
        except jwt.PyJWTError as exc:
            raise invalid(str(exc)) from None
        if not isinstance(claims.get("sub"), str):
            raise invalid("sub must be a string")
        _check_times(claims, now)
        return claims

    def connect(self, token: str, now: float | None = None) -> ConnectClaims:
        claims = self._decode(token, time.time() if now is None else now)
        if "channel" in claims:
            raise invalid("a subscription token is not a connection token")
        try:
            channels, subs = custom.server_side(claims)
            info, meta = custom.info(claims), custom.meta(claims)
        except custom.ClaimError as exc:
            raise invalid(str(exc)) from None
        return ConnectClaims(claims["sub"], _expire_at(claims), info, channels, meta, subs)

    def subscribe(self, token: str, now: float | None = None) -> SubscribeClaims:
        claims = self._decode(token, time.time() if now is None else now)
        channel = claims.get("channel")
        if not isinstance(channel, str) or not channel:
            raise invalid("a connection token is not a subscription token")
        try:
            options = custom.subscribe_options(claims)
        except custom.ClaimError as exc:
            raise invalid(str(exc)) from None
        return SubscribeClaims(claims["sub"], channel, _expire_at(claims), options)


def _numeric_date(claims: dict[str, Any], name: str) -> float | None:
    """The time claim ``name`` in seconds since 1970, None when absent. Anything but a JSON
    number in ``[0, MAX_NUMERIC_DATE]`` (strings, booleans, NaN, Infinity, huge numbers) is
    an invalid token."""
    if name not in claims:
        return None
    value = claims[name]
    # type(), not isinstance: bool is an int; the comparison is False for NaN.
    if type(value) not in (int, float) or not 0 <= value <= MAX_NUMERIC_DATE:
        raise invalid(f"{name} must be a number of seconds since 1970")
    return float(value)


def _check_times(claims: dict[str, Any], now: float) -> None:
    """Refuse a token not valid at ``now``: ``iat`` or ``nbf`` in the future (3500), ``exp``
    passed (109); every time claim, ``expire_at`` included, must be well typed (3500)."""
    iat, nbf = _numeric_date(claims, "iat"), _numeric_date(claims, "nbf")
    exp = _numeric_date(claims, "exp")
    _numeric_date(claims, "expire_at")
    if (iat is not None and iat > now) or (nbf is not None and nbf > now):
        raise invalid("not valid yet")
    if exp is not None and exp <= now:
        raise EXPIRED


def _expire_at(claims: dict[str, Any]) -> float | None:
    """When the session ends: ``expire_at`` when given (0: never), else ``exp``."""
    if "expire_at" in claims:
        return _numeric_date(claims, "expire_at") or None
    return _numeric_date(claims, "exp")


def _read(path: Any, alg: str) -> str:
    try:
        return str(path.read_text())
    except OSError as exc:
        setting = "token_rsa_public_key" if alg == "RS256" else "token_ecdsa_public_key"
        raise ConfigError([f"{setting}: {exc}"]) from None


def mint(
    secret: str,
    user: str,
    *,
    ttl: float | None = None,
    channel: str | None = None,
    info: Any = None,
    channels: list[str] | None = None,
    now: float | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """An HS256 token: a connection token, or a subscription token when ``channel`` is set;
    ``extra`` claims are added as they are (``meta``, ``subs``, ``override``, ...)."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"sub": user, "iat": issued}
    if ttl is not None:
        claims["exp"] = issued + int(ttl)
    if channel is not None:
        claims["channel"] = channel
    if info is not None:
        claims["info"] = json.loads(json.dumps(info))
    if channels:
        claims["channels"] = channels
    if extra:
        claims.update(extra)
    return jwt.encode(claims, secret, algorithm="HS256")
