"""Building the engines a :class:`hubbub.config.Settings` asks for.

The drivers of Redis and PostgreSQL are optional dependencies (``pip install
'hubbub[redis]'``, ``'hubbub[postgres]'``), imported only for a setting that names them; a
missing one is a :class:`hubbub.errors.ConfigError` naming the setting and the extra to
install.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from hubbub.config import Settings
from hubbub.engines.base import Broker, HistoryStore, PresenceManager
from hubbub.engines.eventoutbox import EventOutbox, MemoryEventOutbox
from hubbub.engines.local import LocalBroker
from hubbub.engines.memory import MemoryHistory, MemoryPresence
from hubbub.errors import ConfigError

#: The driver each optional engine imports, and the extra of hubbub that installs it.
DRIVERS: Final = {"redis": "redis", "asyncpg": "postgres"}


@contextmanager
def driver_needed(key: str, url: str) -> Iterator[None]:
    """Turn the ImportError of a missing optional driver into a ConfigError for ``key``
    (other ImportErrors are bugs and pass through)."""
    try:
        yield
    except ImportError as exc:
        top = (exc.name or "").split(".")[0]
        if top not in DRIVERS:
            raise
        scheme = url.split(":", 1)[0]
        raise ConfigError(
            [
                f"{key}: {scheme} needs the {top} driver, which is not installed: "
                f"pip install 'hubbub[{DRIVERS[top]}]'"
            ]
        ) from None


def history_store(settings: Settings) -> HistoryStore:
    """The history store for ``settings.history_url``."""
    url = settings.history_url
    if url == "memory":
        return MemoryHistory(
            meta_ttl=settings.history_meta_ttl, max_bytes=settings.memory_history_max_bytes
        )
    if url.startswith("sqlite:///"):
        from hubbub.engines.sqlite import SqliteHistory

        return SqliteHistory(
            Path(url[len("sqlite:///") :]),
            meta_ttl=settings.history_meta_ttl,
            group_commit=settings.history_group_commit,
        )
    with driver_needed("history", url):
        from hubbub.engines.postgres import PostgresHistory

    return PostgresHistory(
        url, meta_ttl=settings.history_meta_ttl, group_commit=settings.history_group_commit
    )


def build_engines(settings: Settings) -> tuple[Broker, PresenceManager]:
    """The broker and presence manager: in this process, or shared through Redis or
    PostgreSQL (then history lives in that engine too, so every node reads the same
    streams)."""
    if settings.engine.startswith(("redis://", "rediss://")):
        with driver_needed("engine", settings.engine):
            from hubbub.engines.redis import RedisBroker, RedisPresence

        broker = RedisBroker(
            settings.engine, prefix=settings.engine_prefix, meta_ttl=settings.history_meta_ttl
        )
        return broker, RedisPresence(broker)
    if settings.engine.startswith(("postgresql://", "postgres://")):
        with driver_needed("engine", settings.engine):
            from hubbub.engines.pgbroker import PostgresBroker, PostgresPresence

        pg = PostgresBroker(
            settings.engine,
            prefix=settings.engine_prefix,
            meta_ttl=settings.history_meta_ttl,
            group_commit=settings.history_group_commit,
        )
        return pg, PostgresPresence(pg)
    return LocalBroker(history_store(settings)), MemoryPresence()


def outbox_store(settings: Settings, broker: Broker) -> EventOutbox | None:
    """The webhook outbox beside the history of ``broker`` (built by :func:`build_engines`):
    in the Redis or PostgreSQL engine, in the SQLite or PostgreSQL history store, else in
    memory; None without ``webhook_url`` and without a Pusher app's ``webhook_url``."""
    if not settings.webhook_url and not any(app.webhook_url for app in settings.pusher_apps):
        return None
    if isinstance(broker, LocalBroker):
        store = broker.store
        if isinstance(store, MemoryHistory):
            return MemoryEventOutbox()
        from hubbub.engines.sqlite import SqliteHistory

        if isinstance(store, SqliteHistory):
            from hubbub.engines.sqlite_events import SqliteEventOutbox

            return SqliteEventOutbox(store)
        from hubbub.engines.pg_events import PostgresEventOutbox
        from hubbub.engines.postgres import PostgresHistory

        assert isinstance(store, PostgresHistory)
        return PostgresEventOutbox(store)
    if settings.engine.startswith(("redis://", "rediss://")):
        from hubbub.engines.redis import RedisBroker
        from hubbub.engines.redis_events import RedisEventOutbox

        assert isinstance(broker, RedisBroker)
        return RedisEventOutbox(broker)
    from hubbub.engines.pg_events import PostgresEventOutbox
    from hubbub.engines.pgbroker import PostgresBroker

    assert isinstance(broker, PostgresBroker)
    return PostgresEventOutbox(broker.store)
