"""The webhooks' settings (``webhook_*``): their types, bounds and descriptions.

:class:`hubbub.config.Settings` declares each key with one of these types and its default (the
keys live in the one settings model and the generated configuration reference) while their
meaning is written here, beside the webhooks (:mod:`hubbub.webhooks`). The rule across keys
(``webhook_url`` needs ``webhook_secret``) is :func:`check`, called by the model.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BeforeValidator, Field

WebhookEvent = Literal[
    "connect",
    "disconnect",
    "subscribe",
    "unsubscribe",
    "channel_occupied",
    "channel_vacated",
    "publish",
]
#: Every event type, ``publish`` last.
EVENTS: Final[tuple[WebhookEvent, ...]] = typing.get_args(WebhookEvent)
#: The default of ``webhook_events``: all but ``publish``.
DEFAULT_EVENTS: Final = EVENTS[:-1]


def _empty_is_none(value: Any) -> Any:
    return None if value == "" else value


def _check_url(value: str | None) -> str | None:
    if value is None or value.startswith(("http://", "https://")):
        return value
    raise ValueError("use an http:// or https:// URL (or leave it unset: no webhooks)")


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def check(url: str | None, secret: str | None) -> None:
    """The rule across keys: a ``webhook_url`` needs a ``webhook_secret``."""
    if url and not secret:
        raise ValueError("webhook_url is set but webhook_secret is not: give both")


WebhookUrl = Annotated[
    str | None,
    BeforeValidator(_empty_is_none),
    AfterValidator(_check_url),
    Field(
        description=(
            "Where webhook events are POSTed (http or https): a JSON array of events per "
            "request, signed in `X-Hubbub-Signature`. Unset: no webhooks. See "
            "docs/recipes/webhooks.md."
        ),
    ),
]
WebhookSecret = Annotated[
    Annotated[str, Field(min_length=32)] | None,
    BeforeValidator(_empty_is_none),
    Field(
        description=(
            "Key of the webhooks' HMAC-SHA256 signature (32+ characters; required with "
            "`webhook_url`; never logged)."
        ),
    ),
]
WebhookEvents = Annotated[
    tuple[WebhookEvent, ...],
    BeforeValidator(_comma_list),
    Field(
        description=(
            "Event types sent: `connect`, `disconnect`, `subscribe`, `unsubscribe`, "
            "`channel_occupied`, `channel_vacated`, `publish` (every channel's; a namespace's "
            "`webhook_publish` asks for its own). Default: all but `publish`."
        ),
    ),
]
WebhookTimeout = Annotated[
    float,
    Field(gt=0, description="Seconds a webhook request may take; then it is retried."),
]
WebhookBatchSize = Annotated[
    int, Field(ge=1, le=10_000, description="Most events in one webhook request.")
]
WebhookConcurrency = Annotated[
    int, Field(ge=1, le=256, description="Most webhook requests under way at once, per node.")
]
WebhookMaxBackoff = Annotated[
    float,
    Field(
        gt=0,
        description=(
            "Longest wait in seconds before retrying a failed webhook request (exponential "
            "back-off with full jitter up to it)."
        ),
    ),
]
WebhookMaxAge = Annotated[
    float,
    Field(
        gt=0,
        description=(
            "Seconds an event may wait for delivery; then it is dropped, counted "
            "(`hubbub_webhook_events_dropped_total`) and logged with its id and type."
        ),
    ),
]
WebhookOutboxSize = Annotated[
    int,
    Field(
        ge=1,
        description=(
            "Most events waiting in the outbox (about: checked against the depth read every "
            "few seconds); beyond, new events are dropped, counted and logged."
        ),
    ),
]
WebhookNodeTtl = Annotated[
    float,
    Field(
        gt=0,
        description=(
            "Seconds a node counts as alive without renewing (it renews every third of it); "
            "the channels of a node silent that long are vacated by another node (or by the "
            "next start on the same store)."
        ),
    ),
]
