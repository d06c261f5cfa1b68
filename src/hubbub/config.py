"""Settings: one typed, frozen object built from four layers.

Precedence, highest first: command-line flags > ``HUBBUB_*`` environment variables >
the TOML file (``--config FILE``, ``HUBBUB_CONFIG``, else ``./hubbub.toml`` when present) >
defaults. Every key has the same name in each layer (``max_message_size`` in TOML is
``HUBBUB_MAX_MESSAGE_SIZE`` in the environment and ``--max-message-size`` on the command line).

Unknown keys and bad values are refused with :class:`hubbub.errors.ConfigError`, whose lines name
the key and where its value came from.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from hubbub.edgesettings import EdgeSettings
from hubbub.errors import ConfigError

ENV_PREFIX: Final = "HUBBUB_"
#: Environment variables with the prefix that are not settings.
ENV_NOT_SETTINGS: Final = frozenset({"HUBBUB_CONFIG"})
DEFAULT_CONFIG_FILE: Final = Path("hubbub.toml")

KiB: Final = 1024
MiB: Final = 1024 * KiB


class ChannelOptions(BaseModel):
    """What a channel does and who may do what in it.

    Permissions come in pairs: ``*_for_client`` lets authenticated connections (non-empty user)
    do it, ``*_for_anonymous`` lets anonymous ones. A Python hook for the action, when
    registered, is asked after the flags and may still refuse.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    history_size: int = Field(0, ge=0, le=1_000_000, description="Publications kept per channel.")
    history_ttl: float = Field(0, ge=0, description="Seconds publications are kept.")
    presence: bool = Field(False, description="Track who is subscribed.")
    join_leave: bool = Field(
        False, description="Emit join/leave events (to subscribers that ask for them)."
    )
    force_push_join_leave: bool = Field(
        False, description="Push join/leave events to every subscriber, asked or not."
    )
    force_recovery: bool = Field(False, description="Make every subscription recoverable.")
    allow_recovery: bool = Field(
        False,
        description=(
            "Let clients ask for a recoverable subscription even where they may not read "
            "the history (with history access they may anyway)."
        ),
    )
    force_recovery_mode: Literal["stream", "cache"] = Field(
        "stream",
        description=(
            "How recovery works: 'stream' replays every missed publication; 'cache' gives "
            "only the channel's latest publication (last-value channels: prices, scores)."
        ),
    )
    auto_cache_recover: bool = Field(
        False,
        description=(
            "In cache mode, give the latest publication on every subscribe, without the "
            "client asking for recovery (needs force_recovery and force_recovery_mode='cache')."
        ),
    )
    force_positioning: bool = Field(
        False,
        description=(
            "Watch every subscriber's stream position: a publication lost between nodes "
            "makes its subscribers resubscribe and recover (needs history)."
        ),
    )
    allow_positioning: bool = Field(
        False,
        description=(
            "Let clients ask for positioning even where they may not read the history (with "
            "history access they may anyway)."
        ),
    )
    allow_tags_filter: bool = Field(
        False,
        description=(
            "Let subscribers send a tags filter (tf): they then get only the publications "
            "whose tags match it."
        ),
    )
    allow_subscribe_for_client: bool = True
    allow_subscribe_for_anonymous: bool = True
    allow_publish_for_client: bool = True
    allow_publish_for_anonymous: bool = True
    allow_history_for_client: bool = True
    allow_history_for_anonymous: bool = True
    allow_presence_for_client: bool = True
    allow_presence_for_anonymous: bool = True
    allow_user_limited_channels: bool = Field(
        False,
        description=(
            "Channels named <name>#<user>[,<user>...] may be subscribed to by the users listed "
            "(without a token); without this option they need a subscription token."
        ),
    )
    max_message_size: int = Field(
        64 * KiB, ge=1, description="Largest publication data (JSON bytes) clients may publish."
    )
    allowed_delta_types: tuple[Literal["fossil"], ...] = Field(
        (),
        description=(
            'Delta compression subscribers may ask for (["fossil"]); empty: none is negotiated.'
        ),
    )
    delta_publish: bool = Field(
        False,
        description=(
            "Mark every publication of the channel delta: subscribers that negotiated delta "
            "compression get it as a delta against the previous one."
        ),
    )

    @property
    def history_enabled(self) -> bool:
        return self.history_size > 0 and self.history_ttl > 0

    @model_validator(mode="after")
    def _cache_recover_needs_cache_mode(self) -> ChannelOptions:
        if self.auto_cache_recover and not (
            self.force_recovery and self.force_recovery_mode == "cache"
        ):
            raise ValueError(
                "auto_cache_recover needs force_recovery = true and force_recovery_mode = 'cache'"
            )
        return self


class Namespace(ChannelOptions):
    """Options for channels named ``<name>:...``."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")


def embedded_channel_defaults() -> ChannelOptions:
    """What a channel does when nothing is configured (``hubbub serve`` as it comes): history
    of 1000 publications for 24 h with recovery, presence and join/leave. The ``rooms``
    namespace gets the same unless it is configured."""
    return ChannelOptions(
        history_size=1000,
        history_ttl=24 * 3600,
        force_recovery=True,
        presence=True,
        join_leave=True,
    )


class Settings(EdgeSettings):
    """Everything a hubbub server can be told. Immutable once built. The production edge's
    keys (TLS, trusted proxies, the access log) come from :class:`EdgeSettings`."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)

    host: str = Field("127.0.0.1", min_length=1, description="Address to listen on.")
    port: int = Field(8765, ge=0, le=65535, description="TCP port; 0 picks a free one.")
    data_dir: Path = Field(Path("data"), description="Directory for hubbub's own files.")
    max_message_size: int = Field(
        64 * KiB,
        ge=125,
        le=64 * MiB,
        description="Largest incoming WebSocket message in bytes; bigger closes with 1009.",
    )
    ping_interval: float = Field(
        25.0, gt=0, le=3600, description="Seconds of silence from a peer before it is pinged."
    )
    pong_timeout: float = Field(
        10.0, gt=0, le=3600, description="Seconds a pinged peer has to answer before it is closed."
    )
    allowed_origins: tuple[str, ...] = Field(
        (),
        description=(
            "Origins allowed to open WebSockets (e.g. 'https://app.example.com'). Empty allows "
            "any; when set, a handshake with another Origin gets HTTP 403."
        ),
    )
    write_buffer_limit: int = Field(
        1 * MiB,
        ge=64 * KiB,
        description="Unsent bytes queued for one connection before it is closed as slow.",
    )
    max_handshake_header_bytes: int = Field(
        16 * KiB,
        ge=1 * KiB,
        le=1 * MiB,
        description=(
            "Largest request line plus headers of one HTTP request (a WebSocket handshake "
            "included), in bytes; bigger gets HTTP 431. Each line is also limited to 8190 "
            "bytes and a request to 128 headers."
        ),
    )
    handshake_timeout: float = Field(
        10.0,
        gt=0,
        le=600,
        description=(
            "Seconds a new TCP connection has to send its first request line and headers; "
            "silent and trickling ones are closed. The HTTP transports' request bodies have "
            "as long (then 408)."
        ),
    )
    keepalive_timeout: float = Field(
        75.0,
        gt=0,
        le=3600,
        description=(
            "Seconds an HTTP keep-alive connection may wait for (and receive the headers of) "
            "its next request before it is closed."
        ),
    )
    client_expired_close_delay: float = Field(
        25.0,
        ge=0,
        le=3600,
        description=(
            "Seconds past a connection token's expiry before the connection is closed (3005): "
            "time for the SDK's refresh, sent when the ttl runs out (Centrifugo's grace)."
        ),
    )
    client_expired_sub_close_delay: float = Field(
        25.0,
        ge=0,
        le=3600,
        description=(
            "Seconds past a subscription token's expiry before the subscription is ended "
            "(2501): time for the SDK's sub_refresh (Centrifugo's grace)."
        ),
    )
    client_connect_timeout: float = Field(
        10.0,
        gt=0,
        le=600,
        description=(
            "Seconds a channel-protocol connection has to complete its connect command; "
            "else it is closed with 3502 (stale)."
        ),
    )
    client_connection_limit: int | None = Field(
        None,
        ge=1,
        description=(
            "WebSockets one node serves at once, handshakes under way included; more get "
            "HTTP 503. Default: 90 % of the sockets the open-file limit leaves after a "
            "reserve of 5 % (at least 64) for engines, files and listening sockets."
        ),
    )
    compression: bool = Field(True, description="Offer permessage-deflate (RFC 7692).")
    http_stream: bool = Field(
        True,
        description=(
            "Serve /connection/http_stream (bidirectional emulation over an HTTP stream, with "
            "/emulation); off: 404."
        ),
    )
    sse: bool = Field(
        True,
        description=(
            "Serve /connection/sse (bidirectional emulation over Server-Sent Events, with "
            "/emulation); off: 404."
        ),
    )
    uni_websocket: bool = Field(
        True, description="Serve /connection/uni_websocket (unidirectional WebSocket); off: 404."
    )
    uni_sse: bool = Field(
        True, description="Serve /connection/uni_sse (unidirectional Server-Sent Events); off: 404."
    )
    uni_http_stream: bool = Field(
        True,
        description="Serve /connection/uni_http_stream (unidirectional HTTP stream); off: 404.",
    )
    compression_window_bits: int = Field(
        12,
        ge=9,
        le=15,
        description=(
            "Largest permessage-deflate window (server_max_window_bits) the server compresses "
            "with; memory per compressing connection is about 1.5 * 2**(bits + 2) bytes + 6 KiB "
            "(30 KiB at 12, 198 KiB at 15)."
        ),
    )
    shutdown_timeout: float = Field(
        5.0, gt=0, le=600, description="Seconds to close connections on SIGINT/SIGTERM."
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    event_loop: Literal["auto", "asyncio", "uvloop"] = Field(
        "auto",
        description="auto: uvloop when installed (pip install 'hubbub[fast]'), else asyncio.",
    )
    channel: ChannelOptions = Field(
        default_factory=embedded_channel_defaults,
        description="Options of channels with no namespace.",
    )
    history: str | None = Field(
        None,
        description=(
            "Where channel history lives: memory, sqlite:///PATH or postgresql://...; "
            "default: SQLite in data_dir (hubbub.db)."
        ),
    )
    engine: str = Field(
        "memory",
        description=(
            "What connects nodes: memory (one process), redis://HOST:PORT/DB or "
            "postgresql://USER@HOST:PORT/DB (fan-out, history and presence in that engine)."
        ),
    )
    engine_prefix: str = Field(
        "hubbub", pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Key prefix in the engine."
    )
    workers: int = Field(1, ge=1, le=64, description="Processes serving one port.")
    history_group_commit: bool = Field(
        True, description="Commit publishes that arrive together in one transaction."
    )
    history_meta_ttl: float = Field(
        30 * 24 * 3600.0,
        gt=0,
        description="Seconds a channel's stream position is kept after its last publish.",
    )
    namespaces: tuple[Namespace, ...] = Field(
        (), description="Channel namespaces; `rooms` also holds the raw rooms."
    )
    allow_anonymous: bool = Field(
        True,
        description=(
            "Accept connections without a token when no on_connect hook decides (the embedded "
            "default, for trying hubbub on 127.0.0.1; genconfig writes false)."
        ),
    )
    api_key: str | None = Field(
        None, min_length=16, description="Key of the server API (X-API-Key); none: API refused."
    )
    api_port: int | None = Field(
        None, ge=0, le=65535, description="Serve the server API on this port instead."
    )
    api_max_body_size: int = Field(
        1 * MiB, ge=1024, description="Largest server API request body in bytes (else 413)."
    )
    token_hmac_secret: str | None = Field(
        None, min_length=32, description="Secret of HS256 tokens."
    )
    token_rsa_public_key: Path | None = Field(
        None, description="PEM file with the RSA public key of RS256 tokens."
    )
    token_ecdsa_public_key: Path | None = Field(
        None, description="PEM file with the EC public key of ES256 tokens."
    )
    token_jwks_file: Path | None = Field(
        None, description="JWKS file with public keys (RS256/ES256) chosen by the token's kid."
    )
    token_audience: str | None = Field(None, description="Required `aud` claim of tokens.")
    token_issuer: str | None = Field(None, description="Required `iss` claim of tokens.")
    client_user_connection_limit: int = Field(
        0, ge=0, description="Most connections one user may hold (0: no limit)."
    )
    client_command_rate: float = Field(
        1000.0, gt=0, description="Commands per second one connection may send on average."
    )
    client_command_burst: int = Field(
        2000, ge=1, description="Commands one connection may send in a burst."
    )
    client_byte_rate: float = Field(
        1 * MiB,
        gt=0,
        description=(
            "Bytes per second one connection may send on average (its WebSocket messages as "
            "received; raw room members too); beyond, its commands get error 111."
        ),
    )
    client_byte_burst: int = Field(
        4 * MiB,
        ge=1,
        description=(
            "Bytes one connection may send in a burst (one message of any accepted size "
            "still gets through after a pause)."
        ),
    )
    client_refusal_limit: int = Field(
        100,
        ge=1,
        description=(
            "Refusals (error 111) a connection may collect within client_refusal_window; "
            "the next one disconnects it (3013; raw room members 1008)."
        ),
    )
    client_refusal_window: float = Field(
        10.0,
        gt=0,
        description="Seconds over which client_refusal_limit refusals are allowed.",
    )
    memory_history_max_bytes: int = Field(
        256 * MiB,
        ge=1 * MiB,
        description=(
            "Most bytes the memory history store holds across all channels; beyond, the "
            "oldest publications (then the longest idle streams) are evicted."
        ),
    )
    client_channel_limit: int = Field(
        128, ge=1, description="Most channels one connection may be subscribed to."
    )
    recovery_max_publications: int = Field(
        300, ge=0, description="Most publications one recovery may replay."
    )
    idempotency_ttl: float = Field(
        300.0, gt=0, description="Seconds an idempotency key of a publish is remembered."
    )
    presence_ttl: float = Field(
        60.0, gt=0, description="Seconds a presence entry lives unless refreshed."
    )
    channel_position_check_delay: float = Field(
        40.0,
        ge=0,
        description=(
            "Seconds a channel with positioned subscribers may be quiet before its stream "
            "top is compared with what this node was handed (a lost last publication then "
            "makes them recover); 0 turns the check off. Only with a cluster engine."
        ),
    )
    app: str | None = Field(None, description="A Hub to serve, as module:attribute.")
    demos: bool = Field(
        True, description="Serve the demos (/demo/*) with their namespaces and publishers."
    )
    admin_password: str | None = Field(
        None,
        min_length=8,
        description=(
            "Password of /admin (HTTP Basic, any user name). Without one the dashboard is "
            "refused unless admin_insecure is set."
        ),
    )
    admin_insecure: bool = Field(
        False,
        description=(
            "Serve /admin without a password to direct requests from this machine (loopback "
            "peer and Host, no proxy headers); for trying hubbub locally (make run sets it)."
        ),
    )

    @field_validator("namespaces")
    @classmethod
    def _unique_namespaces(cls, value: tuple[Namespace, ...]) -> tuple[Namespace, ...]:
        names = [ns.name for ns in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"namespace {dupes[0]!r} is defined twice")
        return value

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part for part in (p.strip() for p in value.split(",")) if part]
        return value

    @field_validator("token_hmac_secret", "api_key", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("engine")
    @classmethod
    def _check_engine(cls, value: str) -> str:
        if value == "memory" or value.startswith(
            ("redis://", "rediss://", "postgresql://", "postgres://")
        ):
            return value
        raise ValueError("use memory, redis://HOST:PORT/DB or postgresql://USER@HOST:PORT/DB")

    @field_validator("history")
    @classmethod
    def _check_history(cls, value: str | None) -> str | None:
        if value is None or value == "memory":
            return value
        if value.startswith(("sqlite:///", "postgresql://", "postgres://")):
            return value
        raise ValueError("use memory, sqlite:///PATH or postgresql://USER@HOST:PORT/DB")

    @property
    def history_url(self) -> str:
        """The history store's URL, with the default (SQLite in data_dir) filled in."""
        return self.history or f"sqlite:///{(self.data_dir / 'hubbub.db').resolve()}"

    @field_validator("allowed_origins")
    @classmethod
    def _check_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        out = []
        for origin in value:
            if "://" not in origin or origin.endswith("/"):
                raise ValueError(
                    f"{origin!r} is not an origin; write scheme://host[:port] without a path"
                )
            out.append(origin.lower())
        return tuple(out)


SETTING_NAMES: Final = frozenset(Settings.model_fields)


def env_name(key: str) -> str:
    return ENV_PREFIX + key.upper()


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    base: Mapping[str, Any] | None = None,
) -> Settings:
    """Build :class:`Settings` from flags, environment, TOML file, ``base`` and defaults.

    ``base`` holds defaults given in code (a :class:`hubbub.hub.Hub`'s keyword arguments).

    ``flags`` holds only the flags the user gave (``None`` values are ignored). ``config_file``
    is read when given (it must exist); otherwise ``HUBBUB_CONFIG`` names it, else
    ``./hubbub.toml`` is read if it exists.
    """
    environ = os.environ if environ is None else environ
    layers: list[tuple[str, dict[str, Any]]] = [("code", dict(base or {}))]

    path = config_file
    if path is None and environ.get("HUBBUB_CONFIG"):
        path = Path(environ["HUBBUB_CONFIG"])
    if path is not None or DEFAULT_CONFIG_FILE.is_file():
        path = path or DEFAULT_CONFIG_FILE
        layers.append((str(path), _read_toml(path)))

    env_values = {
        name[len(ENV_PREFIX) :].lower(): value
        for name, value in environ.items()
        if name.startswith(ENV_PREFIX) and name not in ENV_NOT_SETTINGS
    }
    layers.append(("environment", env_values))
    layers.append(("command line", {k: v for k, v in (flags or {}).items() if v is not None}))

    merged: dict[str, Any] = {}
    source: dict[str, str] = {}
    problems: list[str] = []
    for origin, values in layers:
        for key, value in values.items():
            if key not in SETTING_NAMES:
                shown = env_name(key) if origin == "environment" else key
                problems.append(f"{shown}: unknown setting (from {origin})")
                continue
            merged[key] = value
            source[key] = origin
    if problems:
        raise ConfigError(problems)
    try:
        return Settings(**merged)
    except ValidationError as exc:
        for err in exc.errors():
            if not err["loc"]:  # a rule over several keys: its message names them
                problems.append(str(err["msg"]).removeprefix("Value error, "))
                continue
            key = str(err["loc"][0])
            origin = source.get(key, "defaults")
            dotted = ".".join(str(part) for part in err["loc"]) or "?"
            shown = env_name(key) if origin == "environment" else dotted
            problems.append(f"{shown}: {err['msg']} (from {origin})")
        raise ConfigError(problems) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError([f"config file {path} does not exist"]) from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError([f"config file {path}: {exc}"]) from None
