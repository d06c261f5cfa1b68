"""The outbox consumer's settings (``outbox_*``): their types, bounds and descriptions.

:class:`hubbub.config.Settings` declares each key with one of these types and its default, so
that the keys live in the one settings model (and the generated configuration reference)
while their meaning is written here, beside the consumer's other parts
(:mod:`hubbub.outbox`, :mod:`hubbub.outboxconsumer`).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from hubbub.outbox import MAX_PARTITIONS, check_table

#: The longest ``outbox_retention``: PostgreSQL must be able to subtract it from now().
MAX_RETENTION = 100 * 365.25 * 86_400


def _empty_is_none(value: Any) -> Any:
    return None if value == "" else value


def _check_url(value: str | None) -> str | None:
    if value is None or value.startswith(("postgresql://", "postgres://")):
        return value
    raise ValueError("use postgresql://USER@HOST:PORT/DB (or leave it unset: no outbox)")


OutboxUrl = Annotated[
    str | None,
    BeforeValidator(_empty_is_none),
    AfterValidator(_check_url),
    Field(
        description=(
            "PostgreSQL database (`postgresql://USER@HOST:PORT/DB`) whose outbox table hubbub "
            "publishes from: rows the application inserts in its own transactions "
            "(`hubbub.outbox.publish`) are published once each, in commit order per channel, "
            "after they commit. Unset: no outbox consumer. See docs/recipes/outbox.md."
        ),
    ),
]
OutboxTable = Annotated[
    str,
    AfterValidator(check_table),
    Field(
        description=(
            "Name of the outbox table (created with its triggers at start when missing; "
            "lower-case letters, digits and `_`)."
        ),
    ),
]
OutboxPartitions = Annotated[
    int,
    Field(
        ge=1,
        le=MAX_PARTITIONS,
        description=(
            "The outbox's channels are split into this many partitions by a hash of the "
            "channel name; each partition is consumed by one node at a time, so more "
            "partitions spread the work over more nodes. Every node must use the same number "
            "(a node starting with another one moves the pending rows to its partitions)."
        ),
    ),
]
OutboxBatchSize = Annotated[
    int,
    Field(ge=1, le=10_000, description="Outbox rows published per partition and transaction."),
]
OutboxPollInterval = Annotated[
    float,
    Field(
        ge=0.01,
        le=3600,
        description=(
            "Seconds between two looks at the outbox when no notification came (new rows "
            "wake the consumer at once through LISTEN/NOTIFY; this is the fallback)."
        ),
    ),
]
OutboxRetention = Annotated[
    float,
    Field(
        gt=0,
        le=MAX_RETENTION,
        description=(
            "Seconds a published (or refused) outbox row is kept, marked done, before it is "
            "deleted (at most 100 years)."
        ),
    ),
]
OutboxMaxDataSize = Annotated[
    int,
    Field(
        ge=1,
        le=64 * 1024 * 1024,
        description=(
            "Largest `data` of an outbox row in bytes (at most 64 MiB); a bigger row is "
            "marked done with an error instead of being published."
        ),
    ),
]
