"""The ``hubbub`` command line."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import click

from hubbub import __version__, logs, operator
from hubbub.auth import TokenVerifier, mint
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
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), help="Log lines: text or JSON [text]."
)
@click.option("--app", help="Serve the Hub at module:attribute (e.g. myapp.realtime:hub).")
@click.option(
    "--history",
    help="History store: memory, sqlite:///PATH, postgresql://... [default: SQLite in data dir].",
)
@click.option(
    "--engine",
    help="memory (default), redis://HOST:PORT/DB or postgresql://USER@HOST:PORT/DB to connect "
    "nodes.",
)
@click.option("--workers", type=int, help="Processes serving the port (needs a shared engine).")
@click.option("--api-key", help="Key of the server API (X-API-Key).")
@click.option("--api-port", type=int, help="Serve the server API on this port only.")
@click.option("--token-hmac-secret", help="Secret of HS256 connection/subscription tokens.")
@click.option("--allowed-origins", help="Comma-separated Origins allowed to open WebSockets.")
@click.option(
    "--allow-anonymous/--no-allow-anonymous",
    default=None,
    help="Accept connections without a token [default: true].",
)
@click.option(
    "--admin-insecure",
    is_flag=True,
    default=None,
    help="Serve /admin without a password to this machine only (direct, loopback requests).",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False),
    help="PEM certificate (chain): serve https:// and wss:// (with --tls-key).",
)
@click.option("--tls-key", type=click.Path(dir_okay=False), help="PEM private key of --tls-cert.")
@click.option(
    "--trusted-proxies",
    help="Comma-separated networks of reverse proxies whose X-Forwarded-For is believed.",
)
@click.option(
    "--access-log/--no-access-log",
    default=None,
    help="One log line per request and per connection (logger hubbub.access).",
)
@click.option("--reuse-port", is_flag=True, hidden=True, help="Set by --workers for its workers.")
def serve(config_file: Path | None, reuse_port: bool, **flags: Any) -> None:
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
    logs.configure(settings.log_level, settings.log_format)
    from hubbub.server.runner import run_loop
    from hubbub.server.runner import serve as run_server

    def ready(line: str) -> None:
        click.echo(line)
        sys.stdout.flush()

    if settings.workers > 1:
        if settings.engine == "memory":
            raise click.ClickException(
                f"--workers {settings.workers} needs an engine that connects the processes: "
                "add --engine redis://HOST:PORT/DB or --engine postgresql://USER@HOST:PORT/DB "
                "(or HUBBUB_ENGINE, or engine in the config)"
            )
        from hubbub.server.workers import run_workers

        try:
            code = run_workers(sys.argv[2:], settings.workers, settings.host, settings.port, ready)
        except HubbubError as exc:
            raise click.ClickException(str(exc)) from None
        sys.exit(code)
    try:
        run_loop(settings, run_server(settings, hub=hub, on_ready=ready, reuse_port=reuse_port))
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
@click.option(
    "--limit", type=click.IntRange(min=1), default=100, show_default=True,
    help="Most publications: the newest ones, or the first ones after --since.",
)  # fmt: skip
@click.option("--since", "since", type=int, help="Only publications after this offset.")
@click.option("--reverse", is_flag=True, help="Newest first (with --since: those before it).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--history", help="History store URL [default: the server's].")
@click.option("--data-dir", type=click.Path(path_type=Path), help="The server's data directory.")
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="TOML settings.")
def history(
    channel: str,
    limit: int,
    since: int | None,
    reverse: bool,
    as_json: bool,
    config_file: Path | None,
    **flags: Any,
) -> None:
    """Print CHANNEL's newest publications, oldest first (as `tail`), from the store the server
    uses; --since OFFSET: the first ones after OFFSET; --reverse: newest first."""
    from hubbub.engines.factory import history_store

    try:
        settings = load_settings(flags, config_file=config_file)
        url = settings.history_url
        if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).exists():
            raise HubbubError(f"no history store at {url[len('sqlite:///') :]}")
        read = _read_history(history_store(settings), channel, since, limit, reverse)
        result = asyncio.run(read)
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
    store: HistoryStore, channel: str, since: int | None, limit: int, reverse: bool
) -> HistoryResult:
    """Without ``since`` the newest ``limit`` (read newest first, then turned round unless
    ``reverse``); with it the store's own order: after ``since``, or before it ``reverse``."""
    await store.open()
    try:
        newest = since is None and not reverse
        result = await store.read(
            channel, since_offset=since, limit=limit, reverse=reverse or newest
        )
    finally:
        await store.close()
    return replace(result, publications=result.publications[::-1]) if newest else result


def json_line(pub: Publication) -> str:
    """One publication as a JSON object: offset, time (ms), data, info, tags."""
    data = pub.data if "\n" not in pub.data else pub.data.replace("\n", " ")  # one line
    parts = [f'"offset":{pub.offset}', f'"time":{pub.time_ms}', f'"data":{data}']
    if pub.info is not None:
        parts.append(f'"info":{pub.info.to_json()}')
    if pub.tags:
        parts.append(f'"tags":{json.dumps(pub.tags)}')
    return "{" + ",".join(parts) + "}"


@main.command()
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Write here, not stdout.")
def genconfig(output: Path | None) -> None:
    """Print a commented production configuration with generated secrets."""
    text = operator.genconfig()
    if output is None:
        click.echo(text, nl=False)
        return
    if output.exists():
        raise click.ClickException(f"{output} exists; not overwriting it")
    output.write_text(text)
    output.chmod(0o600)
    click.echo(f"wrote {output}")


@main.command()
@click.argument("config_file", type=click.Path(path_type=Path))
def checkconfig(config_file: Path) -> None:
    """Validate CONFIG_FILE (with the HUBBUB_* environment on top); exit 1 naming bad keys."""
    try:
        settings = load_settings({}, config_file=config_file)
        TokenVerifier(settings)  # key files must be readable and well-formed
    except HubbubError as exc:
        raise click.ClickException(f"{config_file}: {exc}") from None
    click.echo(f"{config_file}: ok")


@main.command()
@click.option("--user", required=True, help="The token's sub (user id).")
@click.option("--ttl", default="1h", show_default=True, help="Lifetime: 3600, 90s, 15m, 1h, 7d.")
@click.option("--channel", help="Mint a subscription token for this channel.")
@click.option("--info", help="JSON for the info claim.")
@click.option("--token-hmac-secret", help="Secret [default: from the config].")
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="TOML settings.")
def token(
    user: str,
    ttl: str,
    channel: str | None,
    info: str | None,
    config_file: Path | None,
    **flags: Any,
) -> None:
    """Mint an HS256 connection token (or subscription token with --channel)."""
    try:
        settings = load_settings(flags, config_file=config_file)
        if not settings.token_hmac_secret:
            raise HubbubError(
                "no token_hmac_secret: set it in the config, HUBBUB_TOKEN_HMAC_SECRET or "
                "--token-hmac-secret"
            )
        seconds = operator.parse_duration(ttl)
        claims_info = operator.parse_data(info) if info is not None else None
    except HubbubError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        mint(settings.token_hmac_secret, user, ttl=seconds, channel=channel, info=claims_info)
    )


URL_HELP = "The server [default: http://127.0.0.1:8765]."


@main.command()
@click.argument("channel")
@click.argument("data")
@click.option("--url", default="http://127.0.0.1:8765", help=URL_HELP)
@click.option("--api-key", envvar="HUBBUB_API_KEY", help="Server API key [env HUBBUB_API_KEY].")
@click.option("--idempotency-key", help="Retries with the same key publish once.")
def publish(
    channel: str, data: str, url: str, api_key: str | None, idempotency_key: str | None
) -> None:
    """Publish DATA (JSON, or else a string) to CHANNEL through the server API."""
    if not api_key:
        raise click.ClickException("the server API needs a key: --api-key or HUBBUB_API_KEY")
    params: dict[str, Any] = {"channel": channel, "data": operator.parse_data(data)}
    if idempotency_key:
        params["idempotency_key"] = idempotency_key
    try:
        result = asyncio.run(operator.api_call(url, api_key, "publish", params))
    except HubbubError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(result))


@main.command()
@click.argument("channels", nargs=-1, required=True)
@click.option("--url", default="http://127.0.0.1:8765", help=URL_HELP)
@click.option("--token", "connect_token", default="", help="Connection token.")
@click.option("--count", type=int, help="Exit after this many publications.")
def subscribe(channels: tuple[str, ...], url: str, connect_token: str, count: int | None) -> None:
    """Print publications of CHANNELS as JSON lines; reconnects and recovers by itself."""

    def emit(line: str) -> None:
        click.echo(line)
        sys.stdout.flush()

    with contextlib.suppress(KeyboardInterrupt):
        try:
            asyncio.run(
                operator.subscribe(url, list(channels), token=connect_token, count=count, emit=emit)
            )
        except HubbubError as exc:
            raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--url", default="http://127.0.0.1:8765", help=URL_HELP)
@click.option(
    "--scenario", type=click.Choice(["fanout", "ping", "connect"]), default="fanout",
    show_default=True, help="What to measure.",
)  # fmt: skip
@click.option("--clients", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@click.option("--duration", type=click.FloatRange(0.5, 600), default=5.0, show_default=True,
              help="Seconds of measurement.")  # fmt: skip
@click.option("--channel", default="bench", show_default=True, help="Channel of fanout.")
@click.option("--token", "connect_token", default="", help="Connection token for every client.")
@click.option("--size", type=click.IntRange(1, 65536), default=100, show_default=True,
              help="Bytes of each publication's data.")  # fmt: skip
@click.option("--pid", type=int, help="The server's process id (same machine): adds its CPU use.")
@click.option(
    "--api-key",
    envvar="HUBBUB_API_KEY",
    help="Server API key: fan-out removes what it stored in a channel with history.",
)
@click.option(
    "--keep-history",
    is_flag=True,
    help="Fan-out into a channel with history and leave the publications there.",
)
def bench(
    url: str,
    scenario: str,
    clients: int,
    duration: float,
    channel: str,
    connect_token: str,
    size: int,
    pid: int | None,
    api_key: str | None,
    keep_history: bool,
) -> None:
    """Load a running hubbub server and print what it sustained (a progress bar on stderr).

    Fan-out publishes into --channel: where the server keeps its history the bench needs the
    server API key and removes the history afterwards (or --keep-history)."""
    import resource

    from hubbub import benchrun
    from hubbub.benchhistory import BenchRefused

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if clients + 100 > hard:
        raise click.ClickException(f"--clients {clients} needs more open files than {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        run = benchrun.run(url, scenario, clients, duration, channel=channel,
                           token=connect_token, size=size, pid=pid, api_key=api_key,
                           keep_history=keep_history)  # fmt: skip
        rows = asyncio.run(run)
    except BenchRefused as exc:
        raise click.ClickException(str(exc)) from None
    except (OSError, TimeoutError, HubbubError, aiohttp.ClientError) as exc:
        raise click.ClickException(f"{url}: {exc!r}") from None
    click.echo(benchrun.table(rows))
