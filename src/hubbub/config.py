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

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hubbub import outboxsettings as ox
from hubbub import sendingsettings as snd
from hubbub import webhooksettings as wh
from hubbub.channeloptions import ChannelOptions as ChannelOptions
from hubbub.channeloptions import Namespace as Namespace
from hubbub.channeloptions import embedded_channel_defaults as embedded_channel_defaults
from hubbub.errors import ConfigError
from hubbub.proxy import settings as px
from hubbub.pushersettings import PusherApp, check_apps
from hubbub.server.forwarded import parse_network

ENV_PREFIX: Final = "HUBBUB_"
#: Environment variables with the prefix that are not settings.
ENV_NOT_SETTINGS: Final = frozenset({"HUBBUB_CONFIG"})
DEFAULT_CONFIG_FILE: Final = Path("hubbub.toml")

KiB: Final = 1024
MiB: Final = 1024 * KiB


class Settings(BaseModel):
    """Everything a hubbub server can be told. Immutable once built. ``tls_cert`` and
    ``tls_key`` come together or not at all (whether the files hold a certificate and its
    key is checked at start, :mod:`hubbub.server.tls`); ``trusted_proxies`` holds IP
    networks (:mod:`hubbub.server.forwarded`).

    Each field's ``description`` is its meaning, written once: the configuration reference
    (the docs site's and the README's table) is generated from it by :mod:`hubbub.configdoc`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)

    host: str = Field("127.0.0.1", min_length=1, description="Address to listen on.")
    port: int = Field(8765, ge=0, le=65535, description="TCP port; 0 picks a free one.")
    tls_cert: Path | None = Field(
        None,
        description=(
            "PEM file with the server's certificate (and its chain): hubbub serves https:// "
            "and wss:// (TLS 1.2 or later), on the API port too. Needs tls_key."
        ),
    )
    tls_key: Path | None = Field(
        None, description="PEM file with the private key of tls_cert (unencrypted)."
    )
    trusted_proxies: tuple[str, ...] = Field(
        (),
        description=(
            "Networks of the reverse proxies in front of hubbub (e.g. ['127.0.0.1/32']): only "
            "from a peer inside one are X-Forwarded-For and X-Real-IP believed for the client "
            "address (hooks, logs, the admin's local check). Empty: nobody, the TCP peer is "
            "the client."
        ),
    )
    access_log: bool = Field(
        False,
        description=(
            "Log one line per HTTP request and per WebSocket or stream session when it ends "
            "(logger hubbub.access: client address, method, path without secrets, status, "
            "bytes, duration)."
        ),
    )
    data_dir: Path = Field(
        Path("data"),
        description="Directory for hubbub's own files: the SQLite history `hubbub.db`.",
    )
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
            "Origins allowed to open WebSockets (`scheme://host[:port]`, e.g. "
            "`https://app.example.com`; comma-separated in the environment). Empty allows "
            "any; when set, a handshake with another `Origin` gets HTTP 403."
        ),
    )
    write_buffer_limit: int = Field(
        1 * MiB,
        ge=64 * KiB,
        description="Unsent bytes queued for one connection before it is closed as slow.",
    )
    write_delay: snd.WriteDelay = 0.0
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
            "silent and trickling (slowloris) ones are closed. The HTTP transports' request "
            "bodies have as long (then 408)."
        ),
    )
    keepalive_timeout: float = Field(
        75.0,
        gt=0,
        le=3600,
        description=(
            "Seconds an HTTP keep-alive connection may wait for (and receive the headers of) "
            "its next request before it is closed (above the 60 s of common proxies)."
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
            "HTTP 503. None: 90 % of the sockets the open-file limit leaves after a "
            "reserve of 5 % (at least 64) for engines, files and listening sockets "
            "(17,100 at 20,000)."
        ),
    )
    compression: snd.Compression = True
    compression_window_bits: snd.CompressionWindowBits = 12
    compression_min_size: snd.CompressionMinSize = 64
    compression_level: snd.CompressionLevel = 1
    http_stream: bool = Field(
        True,
        description=(
            "Serve `/connection/http_stream` (bidirectional emulation over an HTTP stream, "
            "with `/emulation`); off: 404."
        ),
    )
    sse: bool = Field(
        True,
        description=(
            "Serve `/connection/sse` (bidirectional emulation over Server-Sent Events, with "
            "`/emulation`); off: 404."
        ),
    )
    uni_websocket: bool = Field(
        True, description="Serve `/connection/uni_websocket` (unidirectional WebSocket); off: 404."
    )
    uni_sse: bool = Field(
        True,
        description="Serve `/connection/uni_sse` (unidirectional Server-Sent Events); off: 404.",
    )
    uni_http_stream: bool = Field(
        True,
        description="Serve `/connection/uni_http_stream` (unidirectional HTTP stream); off: 404.",
    )
    shutdown_timeout: float = Field(
        5.0, gt=0, le=600, description="Seconds to close connections on SIGINT/SIGTERM."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Least severe log lines written to stderr."
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="Log lines on stderr: `text`, or `json` (one JSON object per line)."
    )
    event_loop: Literal["auto", "asyncio", "uvloop"] = Field(
        "auto",
        description="`auto`: uvloop when installed (`pip install 'hubbub[fast]'`), else asyncio; "
        "`asyncio` or `uvloop` force one.",
    )
    channel: ChannelOptions = Field(
        default_factory=embedded_channel_defaults,
        description="Options of channels without a namespace (the table below). Writing a "
        "`[channel]` table replaces the default: keys it leaves out take the channel options' "
        "defaults.",
    )
    history: str | None = Field(
        None,
        description=(
            "Where channel history lives: `memory`, `sqlite:///PATH` or `postgresql://...`; "
            "none: SQLite in `data_dir` (`hubbub.db`)."
        ),
    )
    engine: str = Field(
        "memory",
        description=(
            "What connects processes and nodes: `memory` (one process), `redis://HOST:PORT/DB` "
            "or `postgresql://USER@HOST:PORT/DB` (fan-out, history and presence then live in "
            "that engine)."
        ),
    )
    engine_prefix: str = Field(
        "hubbub",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="Key prefix in Redis (notification channel prefix in PostgreSQL), so "
        "several clusters share one Redis.",
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Processes serving one port (SO_REUSEPORT; needs the Redis or PostgreSQL "
        "engine).",
    )
    history_group_commit: bool = Field(
        True, description="Commit publishes that arrive together in one transaction."
    )
    history_meta_ttl: float = Field(
        30 * 24 * 3600.0,
        gt=0,
        description="Seconds a channel's stream position is kept after its last publish.",
    )
    namespaces: tuple[Namespace, ...] = Field(
        (),
        description="Channel namespaces: `name` plus channel options, for channels "
        "`name:...`; `rooms` (the raw rooms) always exists.",
    )
    pusher_apps: tuple[PusherApp, ...] = Field(
        (),
        description="Pusher apps (`id`, `key`, `secret` plus options) served on `/app/{key}` "
        "and `/apps/{id}/...`; see docs/pusher.md.",
    )
    allow_anonymous: bool = Field(
        True,
        description=(
            "Accept connections without a token when no `on_connect` hook decides (the "
            "embedded default, for trying hubbub on 127.0.0.1; `genconfig` writes false)."
        ),
    )
    api_key: str | None = Field(
        None,
        min_length=16,
        description="Key of the server API (`X-API-Key`, 16+ characters); none: every API "
        "request gets 401.",
    )
    api_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Serve the server API (and `/metrics`) on this port only.",
    )
    api_max_body_size: int = Field(
        1 * MiB, ge=1024, description="Largest server API request body in bytes (else 413)."
    )
    token_hmac_secret: str | None = Field(
        None, min_length=32, description="Secret of HS256 tokens (32+ characters)."
    )
    token_rsa_public_key: Path | None = Field(
        None, description="PEM file with the RSA public key of RS256 tokens."
    )
    token_ecdsa_public_key: Path | None = Field(
        None, description="PEM file with the EC public key of ES256 tokens."
    )
    token_jwks_file: Path | None = Field(
        None, description="JWKS file with public keys (RS256/ES256) chosen by the token's `kid`."
    )
    token_audience: str | None = Field(None, description="Required `aud` claim of tokens.")
    token_issuer: str | None = Field(None, description="Required `iss` claim of tokens.")
    client_user_connection_limit: int = Field(
        0, ge=0, description="Most connections one user may hold (0: no limit; 3504 beyond)."
    )
    client_command_rate: float = Field(
        1000.0,
        gt=0,
        description="Commands per second one connection may send on average; beyond, its "
        "commands get error 111.",
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
            "Refusals (error 111) a connection may collect within `client_refusal_window`; "
            "the next one disconnects it (3013; raw room members 1008)."
        ),
    )
    client_refusal_window: float = Field(
        10.0,
        gt=0,
        description="Seconds over which `client_refusal_limit` refusals are allowed.",
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
        128,
        ge=1,
        description="Most channels one connection may be subscribed to (error 106 beyond).",
    )
    recovery_max_publications: int = Field(
        300,
        ge=0,
        description="Most publications one recovery may replay (more: `recovered: false`, "
        "the client is told).",
    )
    idempotency_ttl: float = Field(
        300.0, gt=0, description="Seconds an idempotency key of a publish is remembered."
    )
    presence_ttl: float = Field(
        60.0,
        gt=0,
        description="Seconds a presence entry lives unless refreshed (hubbub refreshes every "
        "third of it).",
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
    # -- webhooks (types and descriptions: hubbub.webhooksettings) --
    webhook_url: wh.WebhookUrl = None
    webhook_secret: wh.WebhookSecret = None
    webhook_events: wh.WebhookEvents = wh.DEFAULT_EVENTS
    webhook_timeout: wh.WebhookTimeout = 5.0
    webhook_batch_size: wh.WebhookBatchSize = 100
    webhook_concurrency: wh.WebhookConcurrency = 4
    webhook_max_backoff: wh.WebhookMaxBackoff = 30.0
    webhook_max_age: wh.WebhookMaxAge = 86_400.0
    webhook_outbox_size: wh.WebhookOutboxSize = 1_000_000
    webhook_node_ttl: wh.WebhookNodeTtl = 10.0
    # -- end of the webhooks' keys --
    # -- the PostgreSQL outbox consumer (types and descriptions: hubbub.outboxsettings) --
    outbox_url: ox.OutboxUrl = None
    outbox_table: ox.OutboxTable = "hubbub_outbox"
    outbox_partitions: ox.OutboxPartitions = 4
    outbox_batch_size: ox.OutboxBatchSize = 100
    outbox_poll_interval: ox.OutboxPollInterval = 1.0
    outbox_retention: ox.OutboxRetention = 86_400.0
    outbox_max_data_size: ox.OutboxMaxDataSize = 1 * MiB
    # -- end of the outbox consumer's keys --
    app: str | None = Field(None, description="A `Hub` to serve, as `module:attribute`.")
    demos: bool = Field(
        True,
        description="Serve the demos (`/demo/*`) with their namespaces (`chat`, `typing`, "
        "`monitor`, `game`) and publishers.",
    )
    admin_password: str | None = Field(
        None,
        min_length=8,
        description=(
            "Password of `/admin` (HTTP Basic, any user name). Without one the dashboard is "
            "refused unless `admin_insecure` is set."
        ),
    )
    admin_insecure: bool = Field(
        False,
        description=(
            "Serve `/admin` without a password to direct requests from this machine (loopback "
            "peer and Host, no proxy headers); for trying hubbub locally (`make run` sets it)."
        ),
    )

    # -- the HTTP proxy (types and descriptions: hubbub.proxy.settings) --
    proxy_connect_endpoint: px.ProxyConnectEndpoint = None
    proxy_refresh_endpoint: px.ProxyRefreshEndpoint = None
    proxy_subscribe_endpoint: px.ProxySubscribeEndpoint = None
    proxy_publish_endpoint: px.ProxyPublishEndpoint = None
    proxy_sub_refresh_endpoint: px.ProxySubRefreshEndpoint = None
    proxy_rpc_endpoint: px.ProxyRpcEndpoint = None
    proxy_timeout: px.ProxyTimeout = 1.0
    proxy_http_headers: px.ProxyHttpHeaders = ()
    proxy_emulated_headers: px.ProxyEmulatedHeaders = ()
    proxy_max_connections: px.ProxyMaxConnections = 100
    _proxied_namespaces = model_validator(mode="after")(px.check_proxied_namespaces)
    # -- end of the HTTP proxy's keys --

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Settings:
        wh.check(self.webhook_url, self.webhook_secret)
        return self

    @model_validator(mode="after")
    def _pusher_apps(self) -> Settings:
        check_apps(self.pusher_apps, [ns.name for ns in self.namespaces])
        return self

    @field_validator("namespaces")
    @classmethod
    def _unique_namespaces(cls, value: tuple[Namespace, ...]) -> tuple[Namespace, ...]:
        names = [ns.name for ns in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"namespace {dupes[0]!r} is defined twice")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """Networks, normalized (``10.1.2.3/8`` -> ``10.0.0.0/8``, ``::1`` -> ``::1/128``)."""
        return tuple(str(parse_network(text)) for text in value)

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            given, missing = ("tls_cert", "tls_key")[:: 1 if self.tls_key is None else -1]
            raise ValueError(f"{given} is set but {missing} is not: give both or neither")
        return self

    @field_validator("allowed_origins", "trusted_proxies", mode="before")
    @classmethod
    def _split_comma_lists(cls, value: Any) -> Any:
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
