# ruff: noqa: E501  (the token table reads best one case per line)
"""Connection and subscription JWTs: forged and invalid tokens are refused with their code."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hubbub.auth import TokenVerifier, mint
from hubbub.config import Settings
from hubbub.errors import ClientError, DisconnectError

SECRET = "s3cret-" * 6
#: A fixed "now": tokens are made relative to it and the verifier is given it (``now=``), so
#: no result depends on when, or for how long, the tests run.
AT = 1_800_000_000.0
NOW = int(AT)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_token(header: dict[str, Any], claims: dict[str, Any], key: bytes | None) -> str:
    """A token put together by hand (for what PyJWT refuses to produce)."""
    head = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    if key is None:
        return head + "."
    return head + "." + b64(hmac.new(key, head.encode(), hashlib.sha256).digest())


class Keys:
    def __init__(self, tmp: Path) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.other_ec = ec.generate_private_key(ec.SECP256R1())
        self.jwks_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.rsa_pem = self.public_pem(self.rsa)
        (tmp / "rsa.pem").write_bytes(self.rsa_pem)
        (tmp / "ec.pem").write_bytes(self.public_pem(self.ec))
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.jwks_rsa.public_key()))
        jwk.update(kid="k1", alg="RS256", use="sig")
        (tmp / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
        self.settings = Settings(
            token_hmac_secret=SECRET,
            token_rsa_public_key=tmp / "rsa.pem",
            token_ecdsa_public_key=tmp / "ec.pem",
            token_jwks_file=tmp / "jwks.json",
            token_audience="hubbub",
            token_issuer="https://auth.example",
        )

    @staticmethod
    def public_pem(key: Any) -> bytes:
        return key.public_key().public_bytes(  # type: ignore[no-any-return]
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys(tmp_path_factory.mktemp("keys"))


def claims(**extra: Any) -> dict[str, Any]:
    base = {"sub": "ada", "exp": NOW + 7200, "aud": "hubbub", "iss": "https://auth.example"}
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


Maker = Callable[[Keys], str]

INVALID: list[tuple[str, Maker, str, int]] = [
    # (what, token, kind: connect|subscribe, expected code)
    ("alg none", lambda k: raw_token({"alg": "none", "typ": "JWT"}, claims(), None), "connect", 3500),
    ("alg None", lambda k: raw_token({"alg": "None"}, claims(), None), "connect", 3500),
    ("wrong HMAC secret", lambda k: jwt.encode(claims(), "x" * 40, "HS256"), "connect", 3500),
    (
        "RSA public key as HMAC secret",
        lambda k: raw_token({"alg": "HS256", "typ": "JWT"}, claims(), k.rsa_pem),
        "connect",
        3500,
    ),
    ("RS256 from another key", lambda k: jwt.encode(claims(), k.other_rsa, "RS256"), "connect", 3500),
    ("ES256 from another key", lambda k: jwt.encode(claims(), k.other_ec, "ES256"), "connect", 3500),
    ("HS512 not accepted", lambda k: jwt.encode(claims(), SECRET * 2, "HS512"), "connect", 3500),
    ("RS256 with unknown kid", lambda k: jwt.encode(claims(), k.other_rsa, "RS256", headers={"kid": "k9"}), "connect", 3500),
    ("expired", lambda k: jwt.encode(claims(exp=NOW - 10), SECRET, "HS256"), "connect", 109),
    ("not valid yet", lambda k: jwt.encode(claims(nbf=NOW + 600), SECRET, "HS256"), "connect", 3500),
    ("wrong audience", lambda k: jwt.encode(claims(aud="other"), SECRET, "HS256"), "connect", 3500),
    ("no audience", lambda k: jwt.encode(claims(aud=None), SECRET, "HS256"), "connect", 3500),
    ("wrong issuer", lambda k: jwt.encode(claims(iss="https://evil"), SECRET, "HS256"), "connect", 3500),
    ("no sub", lambda k: jwt.encode(claims(sub=None), SECRET, "HS256"), "connect", 3500),
    ("sub not a string", lambda k: raw_token({"alg": "HS256"}, claims(sub=42), SECRET.encode()), "connect", 3500),
    ("malformed", lambda k: "not.a.token", "connect", 3500),
    ("garbage", lambda k: "hello", "connect", 3500),
    ("truncated signature", lambda k: jwt.encode(claims(), SECRET, "HS256")[:-6], "connect", 3500),
    (
        "tampered payload",
        lambda k: ".".join(
            [
                jwt.encode(claims(), SECRET, "HS256").split(".")[0],
                b64(json.dumps(claims(sub="root")).encode()),
                jwt.encode(claims(), SECRET, "HS256").split(".")[2],
            ]
        ),
        "connect",
        3500,
    ),
    ("subscription token to connect", lambda k: jwt.encode(claims(channel="a"), SECRET, "HS256"), "connect", 3500),
    ("connection token to subscribe", lambda k: jwt.encode(claims(), SECRET, "HS256"), "subscribe", 3500),
    ("channels not a list", lambda k: jwt.encode(claims(channels="a"), SECRET, "HS256"), "connect", 3500),
    ("expire_at not a number", lambda k: jwt.encode(claims(expire_at="soon"), SECRET, "HS256"), "connect", 3500),
    ("expired subscription token", lambda k: jwt.encode(claims(channel="a", exp=NOW - 1), SECRET, "HS256"), "subscribe", 109),
]  # fmt: skip


@pytest.mark.parametrize(("what", "make", "kind", "code"), INVALID, ids=[w for w, *_ in INVALID])
def test_invalid_tokens_are_refused(
    keys: Keys, what: str, make: Maker, kind: str, code: int
) -> None:
    verifier = TokenVerifier(keys.settings)
    token = make(keys)
    check = verifier.connect if kind == "connect" else verifier.subscribe
    with pytest.raises((ClientError, DisconnectError)) as info:
        check(token, now=AT)
    assert info.value.code == code


VALID: list[tuple[str, Maker]] = [
    ("HS256", lambda k: jwt.encode(claims(), SECRET, "HS256")),
    ("RS256", lambda k: jwt.encode(claims(), k.rsa, "RS256")),
    ("ES256", lambda k: jwt.encode(claims(), k.ec, "ES256")),
    ("RS256 from the JWKS", lambda k: jwt.encode(claims(), k.jwks_rsa, "RS256", headers={"kid": "k1"})),
    ("no exp", lambda k: jwt.encode(claims(exp=None), SECRET, "HS256")),
]  # fmt: skip


@pytest.mark.parametrize(("what", "make"), VALID, ids=[w for w, _ in VALID])
def test_valid_connection_tokens(keys: Keys, what: str, make: Maker) -> None:
    result = TokenVerifier(keys.settings).connect(make(keys), now=AT)
    assert result.user == "ada"


def test_connection_claims() -> None:
    verifier = TokenVerifier(Settings(token_hmac_secret=SECRET))
    token = mint(SECRET, "bob", ttl=60, info={"name": "Bob"}, channels=["news"], now=AT)
    got = verifier.connect(token, now=AT + 59)
    assert (got.user, got.info, got.channels) == ("bob", '{"name":"Bob"}', ["news"])
    assert got.expire_at == NOW + 60
    with pytest.raises(ClientError) as info:
        verifier.connect(token, now=AT + 60)
    assert info.value.code == 109
    forever = jwt.encode({"sub": "bob", "exp": NOW + 60, "expire_at": 0}, SECRET, "HS256")
    assert verifier.connect(forever, now=AT).expire_at is None


def test_without_now_the_clock_is_the_real_one() -> None:
    """No ``now``: the verifier reads the clock (time taken here, in this test)."""
    verifier = TokenVerifier(Settings(token_hmac_secret=SECRET))
    now = time.time()
    assert verifier.connect(mint(SECRET, "bob", ttl=3600, now=now)).user == "bob"
    with pytest.raises(ClientError) as info:
        verifier.connect(mint(SECRET, "bob", ttl=60, now=now - 120))
    assert info.value.code == 109
    with pytest.raises(DisconnectError, match="not valid yet"):
        verifier.connect(mint(SECRET, "bob", now=now + 3600))  # issued an hour from now


def test_subscription_claims() -> None:
    verifier = TokenVerifier(Settings(token_hmac_secret=SECRET))
    token = mint(SECRET, "bob", channel="secret:1", info={"seat": 2}, now=AT)
    got = verifier.subscribe(token, now=AT)
    assert (got.user, got.channel, got.options.info, got.expire_at) == (
        "bob",
        "secret:1",
        '{"seat":2}',
        None,
    )


def test_no_keys_refuses_every_token() -> None:
    with pytest.raises(DisconnectError, match="no token keys"):
        TokenVerifier(Settings()).connect(jwt.encode({"sub": "a"}, SECRET, "HS256"))


BAD_TIME_CLAIMS: list[tuple[str, dict[str, Any]]] = [
    ("exp as a numeric string", {"exp": "99999999999"}),  # was accepted and never expired
    ("exp as a past numeric string", {"exp": "1000"}),
    ("exp true", {"exp": True}),  # was int(True) = 1: "expired"
    ("exp NaN", {"exp": float("nan")}),
    ("exp Infinity", {"exp": float("inf")}),
    ("exp past year 9999", {"exp": 10**12}),
    ("exp negative", {"exp": -1}),
    ("expire_at NaN", {"expire_at": float("nan")}),  # was error 100 at connect
    ("expire_at -Infinity", {"expire_at": float("-inf")}),
    ("expire_at string", {"expire_at": "1900000000"}),
    ("expire_at huge", {"expire_at": 1e300}),
    ("expire_at false", {"expire_at": False}),
    ("nbf string", {"nbf": "0"}),
    ("nbf NaN", {"nbf": float("nan")}),
    ("iat list", {"iat": [1]}),
    ("iat 2**64", {"iat": 2**64}),
]  # fmt: skip


@pytest.mark.parametrize(("what", "extra"), BAD_TIME_CLAIMS, ids=[w for w, _ in BAD_TIME_CLAIMS])
def test_badly_typed_time_claims_make_an_invalid_token(what: str, extra: dict[str, Any]) -> None:
    verifier = TokenVerifier(Settings(token_hmac_secret=SECRET))
    for kind in ("connect", "subscribe"):
        claims = {"sub": "ada", **({"channel": "c"} if kind == "subscribe" else {}), **extra}
        token = jwt.encode(claims, SECRET, "HS256")  # PyJWT writes NaN and Infinity as is
        check = verifier.connect if kind == "connect" else verifier.subscribe
        with pytest.raises(DisconnectError) as info:
            check(token, now=AT)
        assert info.value.code == 3500 and "invalid token" in info.value.reason


def test_time_claims_are_checked_at_the_given_now() -> None:
    verifier = TokenVerifier(Settings(token_hmac_secret=SECRET))
    token = jwt.encode({"sub": "ada", "exp": 2_000_000_000, "nbf": 1_900_000_000}, SECRET)
    with pytest.raises(DisconnectError, match="not valid yet"):
        verifier.connect(token, now=1_899_999_999.0)
    assert verifier.connect(token, now=1_900_000_000.0).expire_at == 2_000_000_000.0
    assert verifier.connect(token, now=1_999_999_999.5).expire_at == 2_000_000_000.0
    with pytest.raises(ClientError) as info:
        verifier.connect(token, now=2_000_000_000.0)
    assert info.value.code == 109
    floats = jwt.encode({"sub": "ada", "exp": 2e9 + 0.5, "expire_at": 2.1e9}, SECRET)
    assert verifier.connect(floats, now=AT).expire_at == 2.1e9  # JSON numbers, not just ints
