# ruff: noqa: E501  (the forgery table reads best one row per line)
"""The security table of tokens (issue 12): forged and invalid JWTs, each row with the answer
it must get from :class:`hubbub.auth.TokenVerifier`.

Answers are Centrifugo's: 3500 "invalid token" (a disconnect) for anything forged, malformed,
of a wrong type or of the wrong kind, 109 "token expired" (an error the SDK answers with a new
token) for a well-formed token whose ``exp`` has passed. Tokens PyJWT refuses to produce
(``alg: none``, NaN literals, wrong headers, foreign signatures) are put together by hand.

The table is also run against a real ``hubbub serve`` by ``tests/e2e/test_security.py``: rows
whose ``settings`` is ``"all"`` use the keys that server is configured with.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from hubbub.auth import MAX_TOKEN_LENGTH, TokenVerifier
from hubbub.config import Settings
from hubbub.errors import ClientError, DisconnectError

SECRET = "forgery-table-secret-" * 3
AUDIENCE = "hubbub"
ISSUER = "https://auth.example"
#: A fixed "now" for the unit rows; the e2e rows use the wall clock.
NOW = 1_800_000_000.0

INVALID = 3500
EXPIRED = 109
ACCEPTED = 0

Kind = Literal["connect", "subscribe"]
#: Which keys the verifier has: every kind plus aud/iss ("all", as the e2e server), or one.
KeySet = Literal["all", "hmac", "rsa", "ec", "jwks"]
Signer = Callable[[bytes], bytes]
Json = dict[str, Any] | str  # a dict is dumped; a str is the JSON text as is


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(part: Json) -> str:
    text = part if isinstance(part, str) else json.dumps(part, separators=(",", ":"))
    return b64(text.encode("utf-8", "surrogatepass"))


def hand(header: Json, body: Json, sign: Signer | None) -> str:
    """A token put together by hand: base64url(header).base64url(body).base64url(signature);
    no signature segment content when ``sign`` is None."""
    head = segment(header) + "." + segment(body)
    return head + "." + (b64(sign(head.encode())) if sign is not None else "")


def hs(key: bytes, digest: str = "sha256") -> Signer:
    return lambda data: hmac.new(key, data, getattr(hashlib, digest)).digest()


def rs(key: rsa.RSAPrivateKey, digest: hashes.HashAlgorithm | None = None) -> Signer:
    return lambda data: key.sign(data, padding.PKCS1v15(), digest or hashes.SHA256())


def ps(key: rsa.RSAPrivateKey) -> Signer:
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    return lambda data: key.sign(data, pss, hashes.SHA256())


def es(key: ec.EllipticCurvePrivateKey, digest: hashes.HashAlgorithm | None = None) -> Signer:
    """A JWS ECDSA signature: r and s as fixed-size big-endian integers (not DER)."""
    size = (key.curve.key_size + 7) // 8

    def sign(data: bytes) -> bytes:
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(digest or hashes.SHA256())))
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")

    return sign


def public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def self_signed_der(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "auth.example")])
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=36500))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


class Keys:
    """The verifier's keys (written to ``directory``) and an attacker's keys."""

    def __init__(self, directory: Path) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.jwks_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.jwks_ec = ec.generate_private_key(ec.SECP256R1())
        self.evil_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.evil_ec = ec.generate_private_key(ec.SECP256R1())
        self.p384 = ec.generate_private_key(ec.SECP384R1())
        self.ed25519 = ed25519.Ed25519PrivateKey.generate()
        self.rsa_pem = public_pem(self.rsa)
        self.ec_pem = public_pem(self.ec)
        self.rsa_path = directory / "rsa.pem"
        self.ec_path = directory / "ec.pem"
        self.jwks_path = directory / "jwks.json"
        self.rsa_path.write_bytes(self.rsa_pem)
        self.ec_path.write_bytes(self.ec_pem)
        k1 = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.jwks_rsa.public_key()))
        k1.update(kid="k1", alg="RS256", use="sig")
        k2 = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.jwks_ec.public_key()))
        k2.update(kid="k2", alg="ES256", use="sig")
        self.jwks_text = json.dumps({"keys": [k1, k2]})
        self.jwks_path.write_text(self.jwks_text)
        self.evil_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.evil_rsa.public_key()))
        self.evil_cert = b64(self_signed_der(self.evil_rsa))

    def settings(self, which: KeySet) -> Settings:
        if which == "hmac":
            return Settings(token_hmac_secret=SECRET)
        if which == "rsa":
            return Settings(token_rsa_public_key=self.rsa_path)
        if which == "ec":
            return Settings(token_ecdsa_public_key=self.ec_path)
        if which == "jwks":
            return Settings(token_jwks_file=self.jwks_path)
        return Settings(
            token_hmac_secret=SECRET,
            token_rsa_public_key=self.rsa_path,
            token_ecdsa_public_key=self.ec_path,
            token_jwks_file=self.jwks_path,
            token_audience=AUDIENCE,
            token_issuer=ISSUER,
        )

    def toml(self) -> str:
        """The same keys as server settings ("all")."""
        return (
            f"token_hmac_secret = {json.dumps(SECRET)}\n"
            f"token_rsa_public_key = {json.dumps(str(self.rsa_path))}\n"
            f"token_ecdsa_public_key = {json.dumps(str(self.ec_path))}\n"
            f"token_jwks_file = {json.dumps(str(self.jwks_path))}\n"
            f"token_audience = {json.dumps(AUDIENCE)}\n"
            f"token_issuer = {json.dumps(ISSUER)}\n"
        )


@dataclass(frozen=True)
class Ctx:
    """What a row's token is made from: the keys, the time it is checked at, its kind."""

    keys: Keys
    now: float
    kind: Kind

    def claims(self, **extra: Any) -> dict[str, Any]:
        """Valid claims for a verifier with every key ("all"); ``None`` drops a claim."""
        base: dict[str, Any] = {
            "sub": "ada",
            "exp": int(self.now) + 7200,
            "aud": AUDIENCE,
            "iss": ISSUER,
        }
        if self.kind == "subscribe":
            base["channel"] = "a"
        base.update(extra)
        return {k: v for k, v in base.items() if v is not None}

    def body(self, **raw: str) -> str:
        """The JSON text of :meth:`claims` with each of ``raw`` pasted in as written (NaN,
        Infinity, 5,000 digits: what json.dumps would not write, or would write otherwise)."""
        claims = self.claims(**dict.fromkeys(raw))
        text = json.dumps(claims, separators=(",", ":"))[:-1]
        return text + "".join(f",{json.dumps(k)}:{v}" for k, v in raw.items()) + "}"

    def hs256(self, **extra: Any) -> str:
        return jwt.encode(self.claims(**extra), SECRET, "HS256")


Maker = Callable[[Ctx], str]


@dataclass(frozen=True)
class Row:
    id: str
    make: Maker
    expect: int  # INVALID (3500), EXPIRED (109) or ACCEPTED
    kinds: tuple[Kind, ...] = ("connect", "subscribe")
    settings: KeySet = "all"
    #: What the refusal's reason says (a substring), when it matters.
    reason: str | None = None


def attach(token: str, signature: str) -> str:
    return token.rsplit(".", 1)[0] + "." + signature


def _tampered(c: Ctx) -> str:
    head, _, sig = c.hs256().split(".")
    return f"{head}.{segment(c.claims(sub='root'))}.{sig}"


def _header_tampered(c: Ctx) -> str:
    _, body, sig = c.hs256().split(".")
    return f"{segment({'alg': 'HS256', 'typ': 'JWT', 'kid': 'x'})}.{body}.{sig}"


def _other_signature(c: Ctx) -> str:
    return attach(c.hs256(), c.hs256(sub="eve").rsplit(".", 1)[1])


def _long_signed(c: Ctx, size: int) -> str:
    return c.hs256(info={"pad": "x" * size})


DEEP = "[" * 50_000 + "]" * 50_000


# -- 1. the 24 rows of tests/unit/test_auth.py, kept here with this table's ids ---------------
EXISTING: list[Row] = [
    Row("alg-none", lambda c: hand({"alg": "none", "typ": "JWT"}, c.claims(), None), INVALID),
    Row("alg-None", lambda c: hand({"alg": "None"}, c.claims(), None), INVALID),
    Row("wrong-hmac-secret", lambda c: jwt.encode(c.claims(), "x" * 40, "HS256"), INVALID),
    Row("rsa-pem-as-hmac-secret", lambda c: hand({"alg": "HS256", "typ": "JWT"}, c.claims(), hs(c.keys.rsa_pem)), INVALID),
    Row("rs256-other-key", lambda c: jwt.encode(c.claims(), c.keys.evil_rsa, "RS256"), INVALID),
    Row("es256-other-key", lambda c: jwt.encode(c.claims(), c.keys.evil_ec, "ES256"), INVALID),
    Row("hs512-not-accepted", lambda c: jwt.encode(c.claims(), SECRET * 2, "HS512"), INVALID),
    Row("rs256-unknown-kid", lambda c: jwt.encode(c.claims(), c.keys.evil_rsa, "RS256", headers={"kid": "k9"}), INVALID),
    Row("expired", lambda c: c.hs256(exp=int(c.now) - 10), EXPIRED),
    Row("not-valid-yet", lambda c: c.hs256(nbf=int(c.now) + 600), INVALID, reason="not valid yet"),
    Row("wrong-audience", lambda c: c.hs256(aud="other"), INVALID, reason="wrong audience"),
    Row("no-audience", lambda c: c.hs256(aud=None), INVALID),
    Row("wrong-issuer", lambda c: c.hs256(iss="https://evil"), INVALID, reason="wrong issuer"),
    Row("no-sub", lambda c: c.hs256(sub=None), INVALID),
    Row("sub-not-a-string", lambda c: hand({"alg": "HS256"}, c.claims(sub=42), hs(SECRET.encode())), INVALID),
    Row("malformed", lambda c: "not.a.token", INVALID),
    Row("garbage", lambda c: "hello", INVALID),
    Row("truncated-signature", lambda c: c.hs256()[:-6], INVALID),
    Row("tampered-payload", _tampered, INVALID),
    Row("subscription-token-to-connect", lambda c: c.hs256(channel="a"), INVALID, kinds=("connect",), reason="not a connection token"),
    Row("connection-token-to-subscribe", lambda c: c.hs256(channel=None), INVALID, kinds=("subscribe",), reason="not a subscription token"),
    Row("channels-not-a-list", lambda c: c.hs256(channels="a"), INVALID, kinds=("connect",)),
    Row("expire_at-not-a-number", lambda c: c.hs256(expire_at="soon"), INVALID),
    Row("expired-subscription-token", lambda c: c.hs256(exp=int(c.now) - 1), EXPIRED, kinds=("subscribe",)),
]  # fmt: skip

# -- 2. time claims of every wrong JSON type, written into the body by hand -------------------
WRONG_TIMES: list[tuple[str, str]] = [
    ("string", '"soon"'),
    ("numeric-string", '"2000000000"'),
    ("empty-string", '""'),
    ("true", "true"),
    ("false", "false"),
    ("null", "null"),
    ("object", '{"seconds":2000000000}'),
    ("array", "[2000000000]"),
    ("empty-array", "[]"),
    ("NaN", "NaN"),
    ("Infinity", "Infinity"),
    ("-Infinity", "-Infinity"),
    ("1e400", "1e400"),  # json reads it as inf
    ("past-year-9999", "253402300800"),
    ("10**30", "1" + "0" * 30),
    ("2**64", str(2**64)),
    ("5000-digits", "1" + "0" * 4999),  # beyond Python's int-from-string limit
    ("negative", "-1"),
    ("negative-float", "-1.5e9"),
]
TIME_CLAIMS = ("exp", "nbf", "iat", "expire_at")


def _wrong_time(claim: str, literal: str) -> Maker:
    return lambda c: hand(
        {"alg": "HS256", "typ": "JWT"}, c.body(**{claim: literal}), hs(SECRET.encode())
    )


TIMES: list[Row] = [
    Row(f"{claim}-{what}", _wrong_time(claim, literal), INVALID, reason="invalid token")
    for claim in TIME_CLAIMS
    for what, literal in WRONG_TIMES
] + [
    Row("exp-now", lambda c: hand({"alg": "HS256"}, c.body(exp=repr(c.now)), hs(SECRET.encode())), EXPIRED),
    Row("exp-zero", lambda c: hand({"alg": "HS256"}, c.body(exp="0"), hs(SECRET.encode())), EXPIRED),
    Row("exp-negative-zero", lambda c: hand({"alg": "HS256"}, c.body(exp="-0.0"), hs(SECRET.encode())), EXPIRED),
    Row("iat-in-the-future", lambda c: c.hs256(iat=int(c.now) + 60), INVALID, reason="not valid yet"),
    Row("nbf-year-9999", lambda c: c.hs256(nbf=253_402_300_799), INVALID, reason="not valid yet"),
    Row("expire_at-passed-exp-valid", lambda c: c.hs256(expire_at=int(c.now) - 10), ACCEPTED),  # expire_at ends the session, exp admits the token
]  # fmt: skip

# -- 3. headers that point elsewhere for the key -----------------------------------------------
HEADERS: list[Row] = [
    Row("jku-attacker-url", lambda c: hand({"alg": "RS256", "jku": "https://evil.example/jwks.json", "kid": "k1"}, c.claims(), rs(c.keys.evil_rsa)), INVALID),
    Row("jwk-embedded-attacker-key", lambda c: hand({"alg": "RS256", "jwk": c.keys.evil_jwk}, c.claims(), rs(c.keys.evil_rsa)), INVALID),
    Row("jwk-embedded-kid-k1", lambda c: hand({"alg": "RS256", "kid": "k1", "jwk": {**c.keys.evil_jwk, "kid": "k1"}}, c.claims(), rs(c.keys.evil_rsa)), INVALID),
    Row("x5u-attacker-url", lambda c: hand({"alg": "RS256", "x5u": "https://evil.example/cert.pem"}, c.claims(), rs(c.keys.evil_rsa)), INVALID),
    Row("x5c-attacker-cert", lambda c: hand({"alg": "RS256", "x5c": [c.keys.evil_cert]}, c.claims(), rs(c.keys.evil_rsa)), INVALID),
    Row("kid-path-traversal", lambda c: hand({"alg": "RS256", "kid": "../../etc/passwd"}, c.claims(), rs(c.keys.evil_rsa)), INVALID),
    Row("kid-dev-null-empty-hmac", lambda c: hand({"alg": "HS256", "kid": "../../../../dev/null"}, c.claims(), hs(b"")), INVALID),
    Row("kid-sql-injection", lambda c: hand({"alg": "HS256", "kid": "x' UNION SELECT 'key"}, c.claims(), hs(b"key")), INVALID),
    Row("kid-not-a-string", lambda c: hand({"alg": "RS256", "kid": ["k1"]}, c.claims(), rs(c.keys.jwks_rsa)), INVALID),
    Row("kid-k1-attacker-key", lambda c: jwt.encode(c.claims(), c.keys.evil_rsa, "RS256", headers={"kid": "k1"}), INVALID),
    Row("kid-k1-rs256-key-file", lambda c: jwt.encode(c.claims(), c.keys.rsa, "RS256", headers={"kid": "k1"}), INVALID),  # the kid binds the JWKS key
    Row("kid-k1-with-es256", lambda c: jwt.encode(c.claims(), c.keys.jwks_ec, "ES256", headers={"kid": "k1"}), INVALID, reason="does not match the key"),
    Row("kid-k2-with-rs256", lambda c: jwt.encode(c.claims(), c.keys.jwks_rsa, "RS256", headers={"kid": "k2"}), INVALID, reason="does not match the key"),
    Row("jwks-unknown-kid", lambda c: jwt.encode(c.claims(), c.keys.evil_rsa, "RS256", headers={"kid": "k9"}), INVALID, settings="jwks"),
    Row("jwks-kid-path-traversal", lambda c: jwt.encode(c.claims(), c.keys.evil_rsa, "RS256", headers={"kid": "../../etc/passwd"}), INVALID, settings="jwks"),
    Row("jwks-no-kid", lambda c: jwt.encode(c.claims(), c.keys.jwks_rsa, "RS256"), INVALID, settings="jwks", reason="not accepted"),
    Row("jwks-kid-k1-hs256-jwk-as-secret", lambda c: hand({"alg": "HS256", "kid": "k1"}, c.claims(), hs(c.keys.jwks_text.encode())), INVALID, settings="jwks"),
    Row("crit-unknown-extension", lambda c: hand({"alg": "HS256", "crit": ["x-evil"], "x-evil": True}, c.claims(), hs(SECRET.encode())), INVALID),
    Row("b64-false-unencoded-payload", lambda c: hand({"alg": "HS256", "b64": False, "crit": ["b64"]}, c.claims(), hs(SECRET.encode())), INVALID),
    Row("header-not-an-object", lambda c: hand('["HS256"]', c.claims(), hs(SECRET.encode())), INVALID),
    Row("header-deeply-nested", lambda c: hand('{"alg":"HS256","x":' + DEEP + "}", c.claims(), hs(SECRET.encode())), INVALID),
    Row("header-tampered", _header_tampered, INVALID),
]  # fmt: skip

# -- 4. algorithms ------------------------------------------------------------------------------
ALGS: list[Row] = [
    Row("alg-NONE", lambda c: hand({"alg": "NONE"}, c.claims(), None), INVALID),
    Row("alg-nOnE", lambda c: hand({"alg": "nOnE"}, c.claims(), None), INVALID),
    Row("alg-none-with-signature", lambda c: hand({"alg": "none"}, c.claims(), hs(SECRET.encode())), INVALID),
    Row("alg-none-hmac-only", lambda c: hand({"alg": "none"}, c.claims(), None), INVALID, settings="hmac"),
    Row("alg-missing", lambda c: hand({"typ": "JWT"}, c.claims(), hs(SECRET.encode())), INVALID),
    Row("alg-null", lambda c: hand({"alg": None}, c.claims(), hs(SECRET.encode())), INVALID),
    Row("alg-list", lambda c: hand({"alg": ["HS256"]}, c.claims(), hs(SECRET.encode())), INVALID),
    Row("alg-number", lambda c: hand({"alg": 256}, c.claims(), hs(SECRET.encode())), INVALID),
    Row("alg-lowercase-hs256", lambda c: hand({"alg": "hs256"}, c.claims(), hs(SECRET.encode())), INVALID),
    Row("alg-hs256-trailing-space", lambda c: hand({"alg": "HS256 "}, c.claims(), hs(SECRET.encode())), INVALID),
    Row("hs256-rsa-pem-rsa-only", lambda c: hand({"alg": "HS256"}, c.claims(), hs(c.keys.rsa_pem)), INVALID, settings="rsa", reason="not accepted"),
    Row("hs256-ec-pem-ec-only", lambda c: hand({"alg": "HS256"}, c.claims(), hs(c.keys.ec_pem)), INVALID, settings="ec", reason="not accepted"),
    Row("hs256-ec-pem-as-secret", lambda c: hand({"alg": "HS256"}, c.claims(), hs(c.keys.ec_pem)), INVALID),
    Row("hs256-rsa-pem-stripped", lambda c: hand({"alg": "HS256"}, c.claims(), hs(c.keys.rsa_pem.strip())), INVALID),
    Row("rs256-against-ec-key", lambda c: jwt.encode(c.claims(), c.keys.rsa, "RS256"), INVALID, settings="ec", reason="not accepted"),
    Row("es256-against-rsa-key", lambda c: jwt.encode(c.claims(), c.keys.ec, "ES256"), INVALID, settings="rsa", reason="not accepted"),
    Row("header-es256-rsa-signature", lambda c: hand({"alg": "ES256"}, c.claims(), rs(c.keys.rsa)), INVALID),
    Row("header-rs256-ec-signature", lambda c: hand({"alg": "RS256"}, c.claims(), es(c.keys.ec)), INVALID),
    Row("header-es256-hmac-signature", lambda c: hand({"alg": "ES256"}, c.claims(), hs(SECRET.encode())), INVALID),
    Row("hs384-hmac-only", lambda c: jwt.encode(c.claims(), SECRET, "HS384"), INVALID, settings="hmac", reason="not accepted"),
    Row("hs512-hmac-only", lambda c: hand({"alg": "HS512"}, c.claims(), hs(SECRET.encode(), "sha512")), INVALID, settings="hmac", reason="not accepted"),
    Row("hs384", lambda c: jwt.encode(c.claims(), SECRET, "HS384"), INVALID),
    Row("ps256-configured-rsa-key", lambda c: hand({"alg": "PS256"}, c.claims(), ps(c.keys.rsa)), INVALID, reason="not accepted"),
    Row("ps256-rsa-only", lambda c: hand({"alg": "PS256"}, c.claims(), ps(c.keys.rsa)), INVALID, settings="rsa"),
    Row("rs512-configured-rsa-key", lambda c: hand({"alg": "RS512"}, c.claims(), rs(c.keys.rsa, hashes.SHA512())), INVALID),
    Row("es384-p384-key", lambda c: hand({"alg": "ES384"}, c.claims(), es(c.keys.p384, hashes.SHA384())), INVALID),
    Row("eddsa", lambda c: hand({"alg": "EdDSA"}, c.claims(), c.keys.ed25519.sign), INVALID),
    Row("rs256-jwks-key-without-kid", lambda c: jwt.encode(c.claims(), c.keys.jwks_rsa, "RS256"), INVALID),
]  # fmt: skip

# -- 5. shapes: segments, encodings, sizes ------------------------------------------------------
SHAPES: list[Row] = [
    Row("empty", lambda c: "", INVALID),
    Row("one-dot", lambda c: ".", INVALID),
    Row("two-dots", lambda c: "..", INVALID),
    Row("two-segments", lambda c: c.hs256().rsplit(".", 1)[0], INVALID),
    Row("signature-stripped", lambda c: attach(c.hs256(), ""), INVALID),
    Row("extra-segment", lambda c: c.hs256() + ".e30", INVALID),
    Row("five-segments-jwe-shape", lambda c: c.hs256() + ".e30.e30", INVALID),
    Row("signature-of-another-token", _other_signature, INVALID),
    Row("signature-extended", lambda c: c.hs256() + "AAAA", INVALID),
    Row("signature-not-base64", lambda c: attach(c.hs256(), "!!!!"), INVALID),
    Row("non-ascii", lambda c: "é.é.é", INVALID),
    Row("nul-bytes", lambda c: c.hs256().replace(".", "\x00.", 1), INVALID),
    Row("lone-surrogate", lambda c: "\ud800." + c.hs256(), INVALID),
    Row("payload-not-an-object", lambda c: hand({"alg": "HS256"}, "[1]", hs(SECRET.encode())), INVALID),
    Row("payload-not-utf8", lambda c: hand({"alg": "HS256"}, '{"sub":"\udcff"}', hs(SECRET.encode())), INVALID),
    Row("payload-deeply-nested", lambda c: hand({"alg": "HS256"}, '{"sub":"ada","x":' + DEEP + "}", hs(SECRET.encode())), INVALID),
    Row("1MB-garbage", lambda c: "A" * 1_000_000, INVALID, reason="too long"),
    Row("1MB-of-dots", lambda c: "." * 1_000_000, INVALID, reason="too long"),
    Row("1MB-forged", lambda c: hand({"alg": "HS256"}, c.claims(info="x" * 1_000_000), hs(b"wrong")), INVALID, reason="too long"),
    Row("1MB-signed", lambda c: _long_signed(c, 1_000_000), INVALID, reason="too long"),
    Row("over-the-limit-signed", lambda c: _long_signed(c, MAX_TOKEN_LENGTH), INVALID, reason="too long"),
    Row("under-the-limit-signed", lambda c: _long_signed(c, 40_000), ACCEPTED),
]  # fmt: skip

# -- 6. audience, issuer, subject, kind ---------------------------------------------------------
CLAIMS: list[Row] = [
    Row("audience-list-without-ours", lambda c: c.hs256(aud=["other", "more"]), INVALID),
    Row("audience-list-with-ours", lambda c: c.hs256(aud=["other", AUDIENCE]), ACCEPTED),
    Row("audience-number", lambda c: c.hs256(aud=42), INVALID),
    Row("audience-case", lambda c: c.hs256(aud="HUBBUB"), INVALID),
    Row("issuer-missing", lambda c: c.hs256(iss=None), INVALID),
    Row("issuer-list", lambda c: hand({"alg": "HS256"}, c.claims(iss=[ISSUER]), hs(SECRET.encode())), INVALID),
    Row("issuer-case", lambda c: c.hs256(iss=ISSUER.upper()), INVALID),
    Row("issuer-prefix", lambda c: c.hs256(iss=ISSUER + ".evil"), INVALID),
    Row("signed-for-another-audience-rs256", lambda c: jwt.encode(c.claims(aud="other-app"), c.keys.rsa, "RS256"), INVALID, reason="wrong audience"),
    Row("signed-by-another-issuer-es256", lambda c: jwt.encode(c.claims(iss="https://other.example"), c.keys.ec, "ES256"), INVALID, reason="wrong issuer"),
    Row("sub-null", lambda c: hand({"alg": "HS256"}, c.body(sub="null"), hs(SECRET.encode())), INVALID),
    Row("sub-object", lambda c: hand({"alg": "HS256"}, c.claims(sub={"id": "ada"}), hs(SECRET.encode())), INVALID),
    Row("connect-with-channel-null", lambda c: hand({"alg": "HS256"}, c.body(channel="null"), hs(SECRET.encode())), INVALID, kinds=("connect",)),
    Row("subscribe-channel-empty", lambda c: c.hs256(channel=""), INVALID, kinds=("subscribe",)),
    Row("subscribe-channel-number", lambda c: c.hs256(channel=5), INVALID, kinds=("subscribe",)),
    Row("subscribe-channel-list", lambda c: c.hs256(channel=["a"]), INVALID, kinds=("subscribe",)),
    Row("channels-with-a-number", lambda c: c.hs256(channels=["a", 1]), INVALID, kinds=("connect",)),
]  # fmt: skip

#: Every row of the table, by section (the e2e file runs the "all" rows against a server).
SECTIONS: dict[str, list[Row]] = {
    "existing": EXISTING,
    "times": TIMES,
    "headers": HEADERS,
    "algs": ALGS,
    "shapes": SHAPES,
    "claims": CLAIMS,
}
TABLE: list[Row] = [row for rows in SECTIONS.values() for row in rows]

#: Tokens that must get in (so the table is not passing by refusing everything).
VALID: list[Row] = [
    Row("valid-hs256", lambda c: c.hs256(), ACCEPTED),
    Row("valid-rs256-key-file", lambda c: jwt.encode(c.claims(), c.keys.rsa, "RS256"), ACCEPTED),
    Row("valid-es256-key-file", lambda c: jwt.encode(c.claims(), c.keys.ec, "ES256"), ACCEPTED),
    Row("valid-jwks-k1", lambda c: jwt.encode(c.claims(), c.keys.jwks_rsa, "RS256", headers={"kid": "k1"}), ACCEPTED),
    Row("valid-jwks-k2", lambda c: jwt.encode(c.claims(), c.keys.jwks_ec, "ES256", headers={"kid": "k2"}), ACCEPTED),
    # A kid the JWKS does not have is only a hint: the RS256 key file still checks the token.
    Row("valid-unknown-kid-rs256-key-file", lambda c: jwt.encode(c.claims(), c.keys.rsa, "RS256", headers={"kid": "k9"}), ACCEPTED),
    Row("valid-float-exp", lambda c: hand({"alg": "HS256"}, c.body(exp=repr(c.now + 3600.5)), hs(SECRET.encode())), ACCEPTED),
    Row("valid-exp-year-9999", lambda c: c.hs256(exp=253_402_300_799), ACCEPTED),
    Row("valid-nbf-and-iat-now", lambda c: c.hs256(nbf=int(c.now), iat=int(c.now)), ACCEPTED),
    Row("valid-expire_at-zero", lambda c: c.hs256(expire_at=0), ACCEPTED),
]  # fmt: skip


def rows_for(rows: list[Row], *, settings: KeySet | None = None) -> list[Any]:
    """pytest params (row, kind), one per kind, with ids ``row-id[kind]``."""
    return [
        pytest.param(row, kind, id=f"{row.id}[{kind}]")
        for row in rows
        if settings is None or row.settings == settings
        for kind in row.kinds
    ]


@dataclass(frozen=True)
class Answer:
    """What the verifier did: accepted (code 0) or refused with a code and a reason."""

    code: int
    reason: str = ""


def verify(verifier: TokenVerifier, token: str, kind: Kind, now: float) -> Answer:
    check = verifier.connect if kind == "connect" else verifier.subscribe
    try:
        check(token, now=now)
    except DisconnectError as exc:
        return Answer(exc.code, exc.reason)
    except ClientError as exc:
        return Answer(exc.code, exc.message)
    return Answer(ACCEPTED)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys(tmp_path_factory.mktemp("forgery-keys"))


@pytest.fixture(scope="module")
def verifiers(keys: Keys) -> dict[KeySet, TokenVerifier]:
    sets: tuple[KeySet, ...] = ("all", "hmac", "rsa", "ec", "jwks")
    return {which: TokenVerifier(keys.settings(which)) for which in sets}


def test_the_table_has_unique_ids() -> None:
    ids = [row.id for row in TABLE + VALID]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert len(EXISTING) == 24


@pytest.mark.parametrize(("row", "kind"), rows_for(TABLE + VALID))
def test_forgery_table(
    keys: Keys, verifiers: dict[KeySet, TokenVerifier], row: Row, kind: Kind
) -> None:
    token = row.make(Ctx(keys, NOW, kind))
    answer = verify(verifiers[row.settings], token, kind, NOW)
    assert answer.code == row.expect, answer
    if row.expect == INVALID:
        assert answer.reason.startswith("invalid token"), answer
    if row.reason is not None:
        assert row.reason in answer.reason, answer


def test_a_1mb_token_is_refused_before_it_is_parsed(keys: Keys) -> None:
    """The length is checked first: a 1 MB token costs no base64 or JSON decoding. (A wall
    clock bound would be flaky on a shared machine; counting the work done is not.)"""
    calls: list[str] = []
    original = jwt.get_unverified_header

    def spy(token: str | bytes) -> dict[str, Any]:
        calls.append("header")
        return original(token)

    verifier = TokenVerifier(keys.settings("all"))
    token = _long_signed(Ctx(keys, NOW, "connect"), 1_000_000)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(jwt, "get_unverified_header", spy)
        answer = verify(verifier, token, "connect", NOW)
        assert verify(verifier, Ctx(keys, NOW, "connect").hs256(), "connect", NOW).code == 0
    assert answer.code == INVALID and "too long" in answer.reason
    assert calls == ["header"]  # only the short token was parsed


def test_the_wall_clock_is_the_default_now(keys: Keys) -> None:
    """Without ``now`` the verifier reads the clock: the table's fixed NOW is not hiding it."""
    ctx = Ctx(keys, time.time(), "connect")
    verifier = TokenVerifier(keys.settings("all"))
    assert verifier.connect(ctx.hs256()).user == "ada"
    with pytest.raises(ClientError) as info:
        verifier.connect(ctx.hs256(exp=int(ctx.now) - 10))
    assert info.value.code == EXPIRED
