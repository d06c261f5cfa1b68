"""The ``hubbub`` command line."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from hubbub import __version__
from hubbub.config import load_settings
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
