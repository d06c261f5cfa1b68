"""The Pusher apps of a server (``[[pusher_apps]]``): their settings, the rules across them,
and where each app's channels live among the node's channels.

Each entry is one app as the Pusher protocol knows it: ``id`` (digits, as the server libraries
require), ``key`` (in the clients' URL ``/app/{key}``) and ``secret`` (signs subscriptions,
sign-ins, HTTP API requests and webhooks), plus options. :class:`hubbub.config.Settings`
holds them in ``pusher_apps``; the rules across entries and keys (ids and keys unique, a
mapped namespace configured, none named like another app's own) are :func:`check_apps`.

**Channels.** A Pusher channel ``c`` of an app is the node channel
``<prefix><namespace>:c``: ``namespace`` is the app's ``namespace`` if set, else
``pusher-<id>`` (:func:`app_namespace`), and ``prefix`` is ``$`` (the Centrifugo protocol's
private prefix: a Centrifugo client needs a subscription token) for every kind of channel
that takes Pusher authorization (``private-``, ``presence-``, ``private-encrypted-`` and their
``cache`` forms, and ``#server-to-user-``), nothing for public and ``cache-`` channels. So the
channels of two apps never meet; an app with ``namespace = "chat"`` shares its public
channel ``news`` with Centrifugo clients as ``chat:news`` and its ``private-orders`` as
``$chat:private-orders``. A namespace that no ``[[namespaces]]`` entry configures
(``pusher-<id>``) is added with options that let no Centrifugo client do anything
(:func:`own_namespace`), so unmapped apps are apart from the Centrifugo protocol.

Guarantee: :func:`node_channel` and :func:`pusher_channel` are inverse for every valid
Pusher channel name of the app; a node channel name stays within the 255 characters the node
accepts (a namespace is at most :data:`MAX_NAMESPACE` characters).
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from hubbub.channeloptions import ChannelOptions, Namespace

PusherWebhookEvent = Literal[
    "channel_occupied",
    "channel_vacated",
    "member_added",
    "member_removed",
    "client_event",
    "cache_miss",
]
#: Every Pusher webhook event type.
PUSHER_WEBHOOK_EVENTS: Final[tuple[PusherWebhookEvent, ...]] = typing.get_args(PusherWebhookEvent)

#: The longest namespace an app maps into: ``$`` + namespace + ``:`` + a 200-character Pusher
#: channel name fits the node's 255.
MAX_NAMESPACE: Final = 53
#: The node channel's prefix of every channel kind that takes Pusher authorization.
PRIVATE_PREFIX: Final = "$"
_AUTHORIZED_PREFIXES: Final = ("private-", "presence-", "#server-to-user-")
#: The Pusher channel kinds that keep their last event: ``cache-``, ``private-cache-``,
#: ``presence-cache-``, ``private-encrypted-cache-``.
_CACHE_PREFIXES: Final = ("cache-", "private-cache-", "presence-cache-", "private-encrypted-cache-")
#: Seconds a cache channel's last event is kept at least (Pusher: 30 minutes).
CACHE_TTL: Final = 1800.0


def _empty_is_none(value: object) -> object:
    return None if value == "" else value


def _check_url(value: str | None) -> str | None:
    if value is None or value.startswith(("http://", "https://")):
        return value
    raise ValueError("use an http:// or https:// URL (or leave it unset: no webhooks)")


class PusherApp(BaseModel):
    """One Pusher app: its credentials and options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(
        pattern=r"^[0-9]{1,20}$",
        description="The app id (1-20 digits, as the Pusher server libraries require): "
        "`/apps/{id}/...` of the HTTP API.",
    )
    key: str = Field(
        pattern=r"^[A-Za-z0-9_.-]{1,128}$",
        description="The app key clients connect with (`/app/{key}`; 1-128 of "
        "`A-Z a-z 0-9 _ . -`), public.",
    )
    secret: str = Field(
        min_length=16,
        max_length=256,
        repr=False,
        description="The app secret (16+ characters; never logged): signs channel "
        "authorizations, user sign-ins, HTTP API requests and webhooks.",
    )
    client_events: bool = Field(
        False,
        description="Let clients send `client-*` events on the private and presence channels "
        "they are subscribed to (Pusher's default: off).",
    )
    namespace: Annotated[
        str | None,
        BeforeValidator(_empty_is_none),
        Field(
            pattern=rf"^[A-Za-z0-9_-]{{1,{MAX_NAMESPACE}}}$",
            description="A `[[namespaces]]` entry the app's channels live in, shared with "
            "Centrifugo clients (`news` is `<namespace>:news`, authorized kinds "
            "`$<namespace>:private-...`); unset: `pusher-<id>`, apart from them. See "
            "docs/pusher.md.",
        ),
    ] = None
    max_connections: int = Field(
        0,
        ge=0,
        description="Most connections of the app on each node (then 4004 over quota); 0: no "
        "limit beyond the server's.",
    )
    activity_timeout: int = Field(
        120,
        ge=1,
        le=3600,
        description="Seconds of silence after which a client pings (announced in "
        "`pusher:connection_established`); a connection silent for it plus 30 s is closed "
        "(4201).",
    )
    webhook_url: Annotated[
        str | None,
        BeforeValidator(_empty_is_none),
        AfterValidator(_check_url),
        Field(
            description="Where the app's Pusher webhooks are POSTed (signed with its secret in "
            "`X-Pusher-Signature`); unset: none.",
        ),
    ] = None
    webhook_events: tuple[PusherWebhookEvent, ...] = Field(
        PUSHER_WEBHOOK_EVENTS,
        description="The webhook events sent: `channel_occupied`, `channel_vacated`, "
        "`member_added`, `member_removed`, `client_event`, `cache_miss` (default: all).",
    )

    @property
    def channel_namespace(self) -> str:
        """The namespace its channels live in (:func:`app_namespace`)."""
        return app_namespace(self)


def app_namespace(app: PusherApp) -> str:
    """The namespace ``app``'s channels live in: its ``namespace``, else ``pusher-<id>``."""
    return app.namespace or f"pusher-{app.id}"


def node_channel(app: PusherApp, channel: str) -> str:
    """The node channel of ``app``'s Pusher channel ``channel`` (a valid Pusher name)."""
    prefix = PRIVATE_PREFIX if channel.startswith(_AUTHORIZED_PREFIXES) else ""
    return f"{prefix}{app_namespace(app)}:{channel}"


def pusher_channel(app: PusherApp, channel: str) -> str | None:
    """The Pusher channel of ``app`` that node channel ``channel`` is, or None when it is not
    one of the app's (another namespace, or a prefix that does not match the kind)."""
    private = channel.startswith(PRIVATE_PREFIX)
    namespace, sep, name = channel[1 if private else 0 :].partition(":")
    if not sep or namespace != app_namespace(app) or not name:
        return None
    if private != name.startswith(_AUTHORIZED_PREFIXES):
        return None
    return name


def own_namespace(app: PusherApp) -> Namespace:
    """The namespace of an app whose namespace is not configured: no history unless a channel
    kind asks (cache channels keep their last event), no Centrifugo client may subscribe,
    publish or read (the server API and the app's Pusher clients still do)."""
    denied = {
        f"allow_{action}_for_{who}": False
        for action in ("subscribe", "publish", "history", "presence")
        for who in ("client", "anonymous")
    }
    return Namespace(name=app_namespace(app), **denied)


def implicit_namespaces(apps: Iterable[PusherApp], configured: Iterable[str]) -> list[Namespace]:
    """The namespaces to add for ``apps``: each unmapped app's own, unless configured."""
    known = set(configured)
    return [own_namespace(app) for app in apps if app_namespace(app) not in known]


def check_apps(apps: Sequence[PusherApp], namespaces: Iterable[str]) -> None:
    """The rules across apps: ids and keys unique; a mapped namespace configured (in
    ``[[namespaces]]``); no app maps into another app's own ``pusher-<id>``."""
    for field in ("id", "key"):
        values = [getattr(app, field) for app in apps]
        dupes = sorted({v for v in values if values.count(v) > 1})
        if dupes:
            raise ValueError(f"pusher_apps: {field} {dupes[0]!r} is used by two apps")
    configured = set(namespaces)
    owned = {f"pusher-{app.id}": app.id for app in apps}
    for app in apps:
        if app.namespace is None:
            continue
        if app.namespace not in configured:
            raise ValueError(
                f"pusher_apps: app {app.id} maps into namespace {app.namespace!r}, which no "
                "[[namespaces]] entry configures"
            )
        other = owned.get(app.namespace)
        if other is not None and other != app.id:
            raise ValueError(
                f"pusher_apps: app {app.id} maps into {app.namespace!r}, app {other}'s own "
                "namespace"
            )
    mapped = [app.namespace for app in apps if app.namespace is not None]
    shared = sorted({ns for ns in mapped if mapped.count(ns) > 1})
    if shared:
        raise ValueError(f"pusher_apps: two apps map into namespace {shared[0]!r}")


def user_key(app: PusherApp, user_id: str) -> str:
    """The node's user of a connection signed in (``pusher:signin``) to ``app`` as
    ``user_id``: what server API control and ``terminate_connections`` address it by, apart
    from Centrifugo users and other apps' users."""
    return f"pusher-{app.id}#{user_id}"


def cache_options(
    apps: Iterable[PusherApp],
) -> Callable[[str, ChannelOptions], ChannelOptions] | None:
    """What makes the apps' cache channels keep their last event whoever publishes (the
    Pusher HTTP API, the server API, a Centrifugo client): ``(channel, options)`` -> the
    options with history of at least 1 publication for at least :data:`CACHE_TTL` seconds
    when ``channel`` is a cache channel of an app, else ``options``. None without apps.
    (:class:`hubbub.core.channels.ChannelRules` calls it; one copy per namespace.)"""
    namespaces = {app_namespace(app) for app in apps}
    if not namespaces:
        return None
    made: dict[int, ChannelOptions] = {}

    def adjust(channel: str, options: ChannelOptions) -> ChannelOptions:
        namespace, sep, name = channel.lstrip(PRIVATE_PREFIX).partition(":")
        if not sep or namespace not in namespaces or not name.startswith(_CACHE_PREFIXES):
            return options
        if options.history_size >= 1 and options.history_ttl >= CACHE_TTL:
            return options
        found = made.get(id(options))
        if found is None:
            update = {
                "history_size": max(options.history_size, 1),
                "history_ttl": max(options.history_ttl, CACHE_TTL),
            }
            found = made[id(options)] = options.model_copy(update=update)
        return found

    return adjust
