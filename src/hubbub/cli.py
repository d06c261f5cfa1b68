"""The ``hubbub`` command line."""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from hubbub import __version__
from hubbub.config import load_settings
from hubbub.core.types import HistoryResult, Publication
from hubbub.engines.base import HistoryStore
from hubbub.errors import ConfigError, HubbubError
from hubbub.hub import Hub


@click.group()
@click.version_option(__version__, prog_name="hubbub")
def main() -> None:
    """hubbub: a real-time messaging server for Python."""


@main.command()
@click.option("--host", help="Address to listen on [default: 127.0.0.1].")
@click.option("--port", type=int, help="TCP port, 0 for any free one [default: 8765].")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Directory for hubbub's files.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    help="TOML settings file [default: $HUBBUB_CONFIG, else ./hubbub.toml if present].",
)
@click.option("--max-message-size", type=int, help="Largest incoming message in bytes.")
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), help="Log level."
)
@click.option("--app", help="Serve the Hub at module:attribute (e.g. myapp.realtime:hub).")
@click.option(
    "--history",
    help="History store: memory, sqlite:///PATH, postgresql://... [default: SQLite in data dir].",
)
@click.option("--api-key", help="Key of the server API (X-API-Key).")
@click.option("--api-port", type=int, help="Serve the server API on this port only.")
@click.option("--token-hmac-secret", help="Secret of HS256 connection/subscription tokens.")
@click.option("--allowed-origins", help="Comma-separated Origins allowed to open WebSockets.")
@click.option(
    "--allow-anonymous/--no-allow-anonymous",
    default=None,
    help="Accept connections without a token [default: true].",
)
def serve(config_file: Path | None, **flags: Any) -> None:
    """Run the server until SIGINT/SIGTERM.

    Settings come from flags, then HUBBUB_* environment variables, then the TOML file,
    then defaults.
    """
    try:
        settings = load_settings(flags, config_file=config_file)
        hub = load_hub(settings.app) if settings.app else None
        if hub is not None:
            settings = load_settings(flags, config_file=config_file, base=hub.defaults)
    except HubbubError as exc:
        raise click.ClickException(str(exc)) from None
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from hubbub.server.runner import serve as run_server

    def ready(line: str) -> None:
        click.echo(line)
        sys.stdout.flush()

    try:
        asyncio.run(run_server(settings, hub=hub, on_ready=ready))
    except HubbubError as exc:
        raise click.ClickException(str(exc)) from None


def load_hub(spec: str) -> Hub:
    """Import ``module:attribute`` (the current directory is importable) and check it."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError([f"app: {spec!r} is not module:attribute"])
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError([f"app: cannot import {module_name!r}: {exc}"]) from None
    hub = getattr(module, attr, None)
    if not isinstance(hub, Hub):
        raise ConfigError([f"app: {spec!r} is not a hubbub.Hub"])
    return hub


@main.command()
@click.argument("channel")
@click.option("--limit", type=int, default=100, show_default=True, help="Most publications.")
@click.option("--since", "since", type=int, help="Only publications after this offset.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--history", help="History store URL [default: the server's].")
@click.option("--data-dir", type=click.Path(path_type=Path), help="The server's data directory.")
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="TOML settings.")
def history(
    channel: str,
    limit: int,
    since: int | None,
    as_json: bool,
    config_file: Path | None,
    **flags: Any,
) -> None:
    """Print CHANNEL's history, oldest first, from the store the server uses."""
    from hubbub.engines.factory import history_store

    try:
        settings = load_settings(flags, config_file=config_file)
        url = settings.history_url
        if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).exists():
            raise HubbubError(f"no history store at {url[len('sqlite:///') :]}")
        result = asyncio.run(_read_history(history_store(settings), channel, since, limit))
    except HubbubError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        for pub in result.publications:
            click.echo(json_line(pub))
        return
    click.echo(f"# {channel}: epoch {result.position.epoch}, top offset {result.position.offset}")
    for pub in result.publications:
        who = (pub.info.user or pub.info.client) if pub.info is not None else "-"
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(pub.time_ms / 1000))
        click.echo(f"{pub.offset:>8}  {stamp}  {who}  {pub.data}")


async def _read_history(
    store: HistoryStore, channel: str, since: int | None, limit: int
) -> HistoryResult:
    await store.open()
    try:
        return await store.read(channel, since_offset=since, limit=limit, reverse=False)
    finally:
        await store.close()


def json_line(pub: Publication) -> str:
    """One publication as a JSON object: offset, time (ms), data, info, tags."""
    parts = [f'"offset":{pub.offset}', f'"time":{pub.time_ms}', f'"data":{pub.data}']
    if pub.info is not None:
        parts.append(f'"info":{pub.info.to_json()}')
    if pub.tags:
        parts.append(f'"tags":{json.dumps(pub.tags)}')
    return "{" + ",".join(parts) + "}"
