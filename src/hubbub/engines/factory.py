"""Building the engines a :class:`hubbub.config.Settings` asks for."""

from __future__ import annotations

from pathlib import Path

from hubbub.config import Settings
from hubbub.engines.base import Broker, HistoryStore, PresenceManager
from hubbub.engines.local import LocalBroker
from hubbub.engines.memory import MemoryHistory, MemoryPresence


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
    from hubbub.engines.postgres import PostgresHistory

    return PostgresHistory(
        url, meta_ttl=settings.history_meta_ttl, group_commit=settings.history_group_commit
    )


def build_engines(settings: Settings) -> tuple[Broker, PresenceManager]:
    """The broker and presence manager: in this process, or shared through Redis or
    PostgreSQL (then history lives in that engine too, so every node reads the same
    streams)."""
    if settings.engine.startswith(("redis://", "rediss://")):
        from hubbub.engines.redis import RedisBroker, RedisPresence

        broker = RedisBroker(
            settings.engine, prefix=settings.engine_prefix, meta_ttl=settings.history_meta_ttl
        )
        return broker, RedisPresence(broker)
    if settings.engine.startswith(("postgresql://", "postgres://")):
        from hubbub.engines.pgbroker import PostgresBroker, PostgresPresence

        pg = PostgresBroker(
            settings.engine,
            prefix=settings.engine_prefix,
            meta_ttl=settings.history_meta_ttl,
            group_commit=settings.history_group_commit,
        )
        return pg, PostgresPresence(pg)
    return LocalBroker(history_store(settings)), MemoryPresence()
