"""Channel options: what a channel does and who may do what in it.

The options of channels without a namespace are the settings' ``[channel]`` table; those of
``<name>:...`` channels a ``[[namespaces]]`` entry. Both are :class:`ChannelOptions` (a
:class:`Namespace` adds its ``name``), immutable once built. Every field has its meaning as
its ``description`` (the one place it is written: the configuration reference of the docs is
generated from it by :mod:`hubbub.configdoc`).

Guarantee: a bad value or an unknown key is refused when the settings are built (pydantic's
``ValidationError``, which :func:`hubbub.config.load_settings` turns into
:class:`hubbub.errors.ConfigError` naming the key).
"""

from __future__ import annotations

from typing import Final, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: The largest publication data clients may publish, by default (bytes).
DEFAULT_MAX_PUBLICATION_SIZE: Final = 64 * 1024


def check_proxy_url(value: str | None) -> str | None:
    """A proxy endpoint: an absolute http:// or https:// URL with a host ("" is None)."""
    if value is None or value == "":
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http:// or https:// URL")
    return value


def _allow(action: str, who: str) -> str:
    """The description of one permission flag."""
    whom = "anonymous connections"
    if who == "client":
        whom = "authenticated connections (a non-empty user)"
    return f"Let {whom} {action} (a hook for it, when registered, may still refuse)."


class ChannelOptions(BaseModel):
    """What a channel does and who may do what in it.

    Permissions come in pairs: ``*_for_client`` lets authenticated connections (non-empty user)
    do it, ``*_for_anonymous`` lets anonymous ones. A Python hook for the action, when
    registered, is asked after the flags and may still refuse.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    history_size: int = Field(
        0,
        ge=0,
        le=1_000_000,
        description="Publications kept per channel; history needs both this and `history_ttl` "
        "above 0.",
    )
    history_ttl: float = Field(0, ge=0, description="Seconds publications are kept.")
    presence: bool = Field(False, description="Track who is subscribed (presence).")
    join_leave: bool = Field(
        False, description="Emit join/leave events to the subscribers that ask for them."
    )
    force_push_join_leave: bool = Field(
        False, description="Push join/leave events to every subscriber, asked or not."
    )
    force_recovery: bool = Field(
        False,
        description="Make every subscription recoverable: a client that reconnects gets what it "
        "missed, or is told it cannot (`recovered: false`), never a silent gap.",
    )
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
            "How recovery works: `stream` replays every missed publication; `cache` gives "
            "only the channel's latest publication (last-value channels: prices, scores)."
        ),
    )
    auto_cache_recover: bool = Field(
        False,
        description=(
            "In cache mode, give the latest publication on every subscribe, without the "
            "client asking for recovery (needs `force_recovery` and "
            '`force_recovery_mode = "cache"`).'
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
            "Let subscribers send a tags filter (`tf`): they then get only the publications "
            "whose tags match it."
        ),
    )
    allow_subscribe_for_client: bool = Field(True, description=_allow("subscribe", "client"))
    allow_subscribe_for_anonymous: bool = Field(True, description=_allow("subscribe", "anonymous"))
    allow_publish_for_client: bool = Field(True, description=_allow("publish", "client"))
    allow_publish_for_anonymous: bool = Field(True, description=_allow("publish", "anonymous"))
    allow_history_for_client: bool = Field(True, description=_allow("read history", "client"))
    allow_history_for_anonymous: bool = Field(True, description=_allow("read history", "anonymous"))
    allow_presence_for_client: bool = Field(True, description=_allow("read presence", "client"))
    allow_presence_for_anonymous: bool = Field(
        True, description=_allow("read presence", "anonymous")
    )
    allow_user_limited_channels: bool = Field(
        False,
        description=(
            "Channels named `<name>#<user>[,<user>...]` may be subscribed to by the users listed "
            "(without a token); without this option they need a subscription token."
        ),
    )
    max_message_size: int = Field(
        DEFAULT_MAX_PUBLICATION_SIZE,
        ge=1,
        description="Largest publication data (JSON bytes) clients may publish.",
    )
    allowed_delta_types: tuple[Literal["fossil"], ...] = Field(
        (),
        description=(
            'Delta compression subscribers may ask for (`["fossil"]`); empty: none is negotiated.'
        ),
    )
    delta_publish: bool = Field(
        False,
        description=(
            "Mark every publication of the channel delta, client ones too: subscribers that "
            "negotiated delta compression get it as a delta against the previous one."
        ),
    )
    webhook_publish: bool = Field(
        False,
        description="Send a `publish` webhook event for each publication accepted in the "
        "channel (with `webhook_url` set).",
    )

    # -- HTTP proxy (issue 17): this namespace's subscribes, publishes, sub refreshes ------
    proxy_subscribe: bool = Field(
        False,
        description=(
            "Ask the subscribe proxy (`proxy_subscribe_endpoint`) whether a client without a "
            "subscription token may subscribe; it decides instead of the `allow_subscribe_*` "
            "flags (a token still decides alone; `$` channels still need one)."
        ),
    )
    proxy_publish: bool = Field(
        False,
        description=(
            "Send client publishes to the publish proxy (`proxy_publish_endpoint`), which "
            "allows, refuses or rewrites them instead of the `allow_publish_*` flags."
        ),
    )
    proxy_sub_refresh: bool = Field(
        False,
        description=(
            "Subscriptions that expire (a token's or the subscribe proxy's `expire_at`) are "
            "refreshed by the server asking the sub refresh proxy "
            "(`proxy_sub_refresh_endpoint`) when they expire, not by the client."
        ),
    )
    proxy_subscribe_endpoint: str | None = Field(
        None, description="This namespace's subscribe proxy URL, instead of the global one."
    )
    proxy_publish_endpoint: str | None = Field(
        None, description="This namespace's publish proxy URL, instead of the global one."
    )
    proxy_sub_refresh_endpoint: str | None = Field(
        None, description="This namespace's sub refresh proxy URL, instead of the global one."
    )

    @field_validator(
        "proxy_subscribe_endpoint", "proxy_publish_endpoint", "proxy_sub_refresh_endpoint"
    )
    @classmethod
    def _check_proxy_url(cls, value: str | None) -> str | None:
        return check_proxy_url(value)

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

    name: str = Field(
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="The namespace: its channels are named `<name>:...` (1-64 of "
        "`A-Z a-z 0-9 _ -`).",
    )


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
