"""Pusher webhooks: each ``[[pusher_apps]]`` entry with a ``webhook_url`` is a delivery target
of its own (:class:`~hubbub.webhooks.delivery.Target`), fed by :mod:`.emitter` and delivered
by the same at-least-once :class:`~hubbub.webhooks.delivery.Deliverer` as hubbub's webhooks.

The request is Pusher's: a POST of ``{"time_ms": <ms>, "events": [<event>, ...]}`` with
``Content-Type: application/json``, ``X-Pusher-Key`` (the app key) and ``X-Pusher-Signature``
(the hex HMAC-SHA256 of the exact body, keyed with the app secret). The events, as Pusher
sends them:

- ``channel_occupied`` / ``channel_vacated``: ``name``, ``channel``;
- ``member_added`` / ``member_removed``: ``name``, ``channel``, ``user_id``;
- ``client_event``: ``name``, ``channel``, ``event``, ``data`` (the string Pusher clients get
  as the event's data), ``socket_id``, and ``user_id`` on presence channels;
- ``cache_miss``: ``name``, ``channel``.

``channel`` is the app's Pusher channel name (:func:`hubbub.pushersettings.pusher_channel`),
never the node channel; an app gets only the events of its own channels, and only the types
in its ``webhook_events``.

Guarantees:

- **Stamped and signed per attempt.** The outbox keeps each event's JSON object alone; the
  body is made, with ``time_ms`` read from the clock, and signed on every attempt (the
  deliverer asks the target for a body each time). So a batch retried after minutes carries
  a current ``time_ms`` and a signature of the body actually sent: receivers that refuse
  webhooks older than 300 s (the ``pusher`` libraries' ``validate_webhook``) take it.
  ``time_ms`` is therefore when the request was made, not when the event happened.
- **Pure core.** :func:`event_json` and :func:`body` do no I/O and read no clock; the
  clock is :func:`pusher_target`'s argument.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from hubbub import __version__
from hubbub.core.jsontext import dumps
from hubbub.dialects.pusher import signing
from hubbub.pushersettings import PusherApp, pusher_channel
from hubbub.webhooks.delivery import Target

CHANNEL_OCCUPIED: Final = "channel_occupied"
CHANNEL_VACATED: Final = "channel_vacated"
MEMBER_ADDED: Final = "member_added"
MEMBER_REMOVED: Final = "member_removed"
CLIENT_EVENT: Final = "client_event"
CACHE_MISS: Final = "cache_miss"
#: The two occupancy types (the names hubbub's own webhooks use too).
OCCUPANCY: Final = (CHANNEL_OCCUPIED, CHANNEL_VACATED)
#: The start of every event's JSON text (how a log tells a Pusher event's type).
PREFIX: Final = '{"name":'


def event_json(name: str, channel: str, **fields: str) -> str:
    """One event's JSON object: ``name``, ``channel`` (the Pusher name), then ``fields`` in
    the order given (all strings)."""
    return dumps({"name": name, "channel": channel, **fields})


def body(payloads: Iterable[str], time_ms: int) -> bytes:
    """A request's body: the events' JSON objects (as stored) under ``time_ms``."""
    return (f'{{"time_ms":{int(time_ms)},"events":[' + ",".join(payloads) + "]}").encode()


def target_name(app: PusherApp) -> str:
    """The outbox target of ``app``'s webhooks (apart from hubbub's ``webhook``)."""
    return f"pusher-{app.id}"


def pusher_target(app: PusherApp, clock: Callable[[], float] = time.time) -> Target:
    """``app``'s target: its ``webhook_url``, a body stamped with ``clock()`` when it is made
    (every attempt), signed with the app's key and secret."""
    if not app.webhook_url:
        raise ValueError(f"pusher app {app.id} has no webhook_url")
    key, secret = app.key, app.secret

    def make_body(payloads: list[str]) -> bytes:
        return body(payloads, int(clock() * 1000))

    def headers(raw: bytes) -> Mapping[str, str]:
        return {
            "Content-Type": "application/json",
            "User-Agent": f"hubbub/{__version__}",
            **signing.webhook_headers(key, secret, raw),
        }

    return Target(target_name(app), app.webhook_url, make_body, headers)


@dataclass(frozen=True, slots=True)
class AppHooks:
    """One app's webhooks: its ``target`` and the event types it wants (``events``)."""

    app: PusherApp
    target: Target
    events: frozenset[str]

    def channel(self, node_channel: str) -> str | None:
        """The app's Pusher name of ``node_channel``; None when it is not the app's."""
        return pusher_channel(self.app, node_channel)


def app_hooks(apps: Iterable[PusherApp], clock: Callable[[], float] = time.time) -> list[AppHooks]:
    """The webhooks of every app with a ``webhook_url`` and at least one event type."""
    return [
        AppHooks(app, pusher_target(app, clock), frozenset(app.webhook_events))
        for app in apps
        if app.webhook_url and app.webhook_events
    ]
