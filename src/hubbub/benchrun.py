"""What ``hubbub bench`` runs against a hubbub server: one scenario of :mod:`hubbub.loadgen`,
with a progress line on stderr and the figures as table rows.

Scenarios:

- ``fanout``: ``clients`` subscribers of one channel; a publisher keeps up to four
  publications in flight for ``duration`` seconds, then publishes at half the rate reached
  to measure publish-to-receive latency.
- ``ping``: ``clients`` connections in closed loops of the protocol's ``ping`` command.
- ``connect``: ``clients`` connections, each connecting and subscribing, 100 at a time.

Publications go through the client protocol's ``publish`` command, so the channel must let
clients publish. A channel with history would keep them: :mod:`hubbub.benchhistory` checks
before the run and removes them after it (with the server API key), or refuses.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from hubbub import benchhistory
from hubbub.loadgen import (
    Client,
    HubbubDialect,
    Measure,
    Stats,
    Window,
    client_frame,
    close_all,
    connect_clients,
    drain,
    flood,
    open_client,
    paced,
)

SCENARIOS: Final = ("fanout", "ping", "connect")
BAR: Final = 30


class Progress:
    """One line on stderr, redrawn in place: ``label [#####.....] detail``."""

    def __init__(self, label: str, enabled: bool = True) -> None:
        self.label = label
        self.enabled = enabled and sys.stderr.isatty()  # no bar in logs and pipes
        self._last = 0.0

    def show(self, fraction: float, detail: str = "", *, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < 0.1):
            return
        self._last = now
        filled = int(BAR * min(1.0, max(0.0, fraction)))
        bar = "#" * filled + "." * (BAR - filled)
        print(f"\r{self.label:<10} [{bar}] {detail:<38}", end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.enabled:
            print("\r" + " " * (BAR + 52) + "\r", end="", file=sys.stderr, flush=True)


def websocket_url(url: str) -> tuple[str, str]:
    """``http://host:port`` (or ws://, with or without a path) -> (ws base URL, path)."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path if parts.path not in ("", "/") else "/connection/websocket"
    return urlunsplit((scheme, parts.netloc, "", "", "")), path


def _dialect(path: str, token: str) -> HubbubDialect:
    dialect = HubbubDialect(token=token)
    dialect.path = path
    return dialect


async def run(
    url: str,
    scenario: str,
    clients: int,
    duration: float,
    *,
    channel: str = "bench",
    token: str = "",
    size: int = 100,
    pid: int | None = None,
    progress: bool = True,
    api_key: str | None = None,
    keep_history: bool = False,
) -> list[tuple[str, str]]:
    """Run ``scenario``; return (figure, value) rows for the final table. Raises
    :class:`hubbub.benchhistory.BenchRefused` before connecting anybody when fan-out would
    leave publications in the channel's history unasked."""
    base, path = websocket_url(url)
    guard = None
    if scenario == "fanout":
        guard = await benchhistory.guard(url, base + path, channel, token, api_key, keep_history)
    rows: list[tuple[str, str]] = [
        ("scenario", scenario),
        ("server", f"{base}{path}"),
        ("clients", f"{clients:,}"),
    ]
    bar = Progress("connect", progress)
    stats = Stats()
    subscribed = [channel] if scenario == "fanout" else []
    subs, rate = await connect_clients(
        base, lambda: _dialect(path, token), stats, clients, lambda i: subscribed,
        samples=min(clients, 200),
        progress=lambda n: bar.show(n / clients, f"{n:,}/{clients:,} connected"),
    )  # fmt: skip
    bar.done()
    rows.append(("connect + subscribe/s" if subscribed else "connects/s", f"{rate:,.0f}"))
    try:
        if scenario == "fanout":
            rows += await _fanout(base, path, token, subs, stats, channel, duration, size, pid)
        elif scenario == "ping":
            rows += await _ping(subs, stats, duration, pid)
    finally:
        close_all(subs)
    if guard is not None:
        rows.append(await guard.clean())
    return rows


def _cpu_rows(measure: Measure, what: str) -> list[tuple[str, str]]:
    rows = []
    if measure.server_cpu is not None:
        rows.append(("server CPU seconds", f"{measure.server_cpu:.2f}"))
        if measure.per_cpu is not None:
            rows.append((f"{what} per server CPU-s", f"{measure.per_cpu:,.0f}"))
    rows.append(("generator load (1.0 = a full core)", f"{measure.own_load:.2f}"))
    return rows


async def _fanout(
    base: str,
    path: str,
    token: str,
    subs: Sequence[Client],
    stats: Stats,
    channel: str,
    duration: float,
    size: int,
    pid: int | None,
) -> list[tuple[str, str]]:
    publisher = await open_client(base, _dialect(path, token), Stats())
    try:
        bar = Progress("fan-out")
        count = len(subs)
        base_count = stats.delivered

        def tick(elapsed: float) -> None:
            got = stats.delivered - base_count
            bar.show(elapsed / duration, f"{got / max(elapsed, 1e-3):,.0f} deliveries/s")

        measure = await flood(publisher, stats, count, duration, [channel], window=4, size=size,
                              pid=pid, tick=tick)  # fmt: skip
        bar.done()
        per_second = max(measure.rate / count / 2, 0.5)
        latency = Progress("latency")
        latency.show(0.5, f"{per_second:.1f} publications/s", force=True)
        await drain(stats, base_count + measure.sent * count)
        p50, p99, samples = await paced(publisher, stats, per_second, min(duration, 10.0),
                                        size=size, channel=channel,
                                        per_publication=count)  # fmt: skip
        latency.done()
    finally:
        close_all([publisher])
    return [
        ("deliveries/s", f"{measure.rate:,.0f}"),
        ("publications/s", f"{measure.rate / count:,.1f}"),
        *_cpu_rows(measure, "deliveries"),
        (f"latency p50 at {per_second:,.1f} pub/s (ms)", f"{p50:.1f}"),
        (f"latency p99 ({samples:,} samples, ms)", f"{p99:.1f}"),
    ]


async def _ping(
    clients: Sequence[Client], stats: Stats, duration: float, pid: int | None
) -> list[tuple[str, str]]:
    bar = Progress("ping")
    frame_of = {id(c): client_frame(b'{"id":7,"ping":{}}') for c in clients}
    running = True

    def again(client: Client) -> None:
        if running:
            client.send(frame_of[id(client)])

    window = Window(pid)
    base_count = stats.replies
    for client in clients:
        client.on_reply = again
        again(client)
    end = window.t0 + duration
    while (now := time.perf_counter()) < end:
        elapsed = now - window.t0
        bar.show(elapsed / duration, f"{(stats.replies - base_count) / max(elapsed, 1e-3):,.0f}/s")
        await asyncio.sleep(0.1)
    measure = window.done(stats.replies - base_count)
    running = False
    bar.done()
    return [("round trips/s", f"{measure.rate:,.0f}"), *_cpu_rows(measure, "round trips")]


def table(rows: Sequence[tuple[str, str]]) -> str:
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
