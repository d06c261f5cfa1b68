"""Fan-out to subscribers of one channel over the HTTP streaming transports, next to the same
over WebSocket, per server CPU-second (issue 15).

    python bench/stream_bench.py [--subscribers 2000] [--seconds 3] [--rounds 2]
                                 [--rate 40] [--window 4] [--transports websocket,...]
                                 [--no-pin]

One ``hubbub serve`` (the embedded default: SQLite history in a temporary data dir, with an
API key, a token secret and a namespace ``nohist`` without history). Per transport of
:data:`TRANSPORTS`, ``--subscribers`` connections of the load generator (this process) are
subscribed to ``nohist:bench`` (no history) and ``bench`` (the embedded default: durable
history, recovery): over the Centrifugo JSON WebSocket with subscribe commands
(:mod:`hubbub.loadgen`), over the HTTP streams through their token's ``channels`` claim: the
unidirectional ``uni_sse`` (GET, ``cf_connect``) and ``uni_http_stream`` (POST), and the
bidirectional emulation's ``sse`` and ``http_stream`` (the same, with a connect command; no
``/emulation`` request is needed, as nothing is sent after the connect).
Then, per channel, 100-byte publications go through the server API (``POST /api/publish``)
at ``--rate`` per second for ``--seconds``, with at most ``--window`` publications in flight
(requested but not yet delivered to every subscriber), so a transport the server cannot keep
up with is published to as fast as it delivers. The default rate (80,000 deliveries a second
to 2,000 subscribers) is one the server keeps up with over WebSocket on a small machine: each
publication is then written on its own, where a saturated server would write several in one
go and measure how far behind it fell rather than what a delivery costs.

Every connection is read by a hand-written asyncio protocol: WebSocket frames as in
:mod:`hubbub.loadgen`, HTTP streams as in :mod:`bench.streams` (the response head checked,
the chunked body decoded strictly, cut into SSE events or lines, the publications among them
counted). Per server CPU-second (process time from /proc): deliveries counted at the
clients. The server runs on the last
core and the generator on the first (taskset; ``--no-pin``: wherever the scheduler puts
them). Every round measures every transport, in reverse order every other round, and each
figure is the best of the rounds; the ratio to WebSocket closes each row.

A transport is a row of :data:`TRANSPORTS` (a :class:`bench.streams.Stream`): its path,
method, its connect request (the JSON for a token, in a query parameter or as the body), and
where its body is cut into messages.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]  # this checkout's hubbub, then bench/

import aiohttp  # noqa: E402
from bench.peers_bench import Peer, fmt, prepare_machine, running, status, table  # noqa: E402
from bench.streams import (  # noqa: E402
    Stream,
    StreamClient,
    abort_all,
    connect_streams,
    stream_ceiling,
)

from hubbub.auth import mint  # noqa: E402
from hubbub.loadgen import (  # noqa: E402
    Client,
    HubbubDialect,
    Measure,
    Stats,
    Window,
    connect_clients,
    drain,
    parser_ceiling,
    quiesce,
)

API_KEY: Final = "bench-api-key-" + "k" * 20
SECRET: Final = "bench-token-secret-" + "s" * 20
CONFIG: Final = f"""
demos = false
api_key = "{API_KEY}"
token_hmac_secret = "{SECRET}"
write_buffer_limit = 4194304

[[namespaces]]
name = "nohist"
"""
CHANNELS: Final = {"nohist:bench": "no history", "bench": "durable (SQLite)"}
BODY: Final = "x" * 100


# -- transports ----------------------------------------------------------------------------

#: What a transport is: None for the Centrifugo JSON WebSocket (the baseline), else a Stream.
Transport = Stream | None


def _uni(token: str) -> dict[str, Any]:
    """A unidirectional connect request."""
    return {"token": token}


def _command(token: str) -> dict[str, Any]:
    """The connect command of the bidirectional emulation (its replies stream back)."""
    return {"id": 1, "connect": {"token": token}}


TRANSPORTS: Final[dict[str, Transport]] = {
    "websocket": None,
    "uni_sse": Stream("/connection/uni_sse", "GET", _uni, b"\n\n", param="cf_connect"),
    "uni_http_stream": Stream("/connection/uni_http_stream", "POST", _uni, b"\n"),
    "sse": Stream("/connection/sse", "GET", _command, b"\n\n", param="cf_connect"),
    "http_stream": Stream("/connection/http_stream", "POST", _command, b"\n"),
}
BASELINE: Final = "websocket"


# -- publishing -------------------------------------------------------------------------------


async def publish(
    http: aiohttp.ClientSession,
    url: str,
    stats: Stats,
    subscribers: int,
    channel: str,
    *,
    rate: float,
    window: int,
    seconds: float,
    pid: int | None,
) -> Measure:
    """Publish to ``channel`` through the server API at ``rate`` per second for ``seconds``,
    at most ``window`` publications requested but not yet delivered to every subscriber;
    the deliveries counted in that time."""
    endpoint = f"{url}/api/publish"
    headers = {"X-API-Key": API_KEY, "Content-Type": "application/json"}
    body = json.dumps({"channel": channel, "data": BODY}).encode()
    failures: list[str] = []

    async def one() -> None:
        try:
            async with http.post(endpoint, data=body, headers=headers) as resp:
                answer = await resp.read()
                if resp.status != 200 or b'"error"' in answer:
                    failures.append(f"{resp.status} {answer[:200]!r}")
        except aiohttp.ClientError as exc:
            failures.append(repr(exc))

    tasks: set[asyncio.Task[None]] = set()
    interval = 1.0 / rate
    sent = 0
    base = stats.delivered
    measure = Window(pid)
    end = measure.t0 + seconds
    while (now := time.perf_counter()) < end and not failures:
        due = measure.t0 + sent * interval
        if due > now:
            await asyncio.sleep(due - now)
            continue
        if sent - (stats.delivered - base) / subscribers >= window:
            await asyncio.sleep(0.001)
            continue
        task = asyncio.create_task(one())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        sent += 1
        await asyncio.sleep(0)
    result = measure.done(stats.delivered - base)
    result.sent = sent
    if tasks:
        await asyncio.wait(tasks, timeout=30)
    if failures:
        raise RuntimeError(f"publish to {channel} failed: {failures[0]}")
    await drain(stats, base + sent * subscribers, limit=30)
    return result


# -- one round ------------------------------------------------------------------------------


async def transport_phase(
    url: str, pid: int, name: str, args: argparse.Namespace, out: dict[str, Any]
) -> None:
    """Connect ``args.subscribers`` over transport ``name``, then publish to each channel."""
    transport = TRANSPORTS[name]
    stats = Stats()
    count = args.subscribers
    tokens = [mint(SECRET, f"u{i}", channels=list(CHANNELS)) for i in range(min(count, 100))]
    subs: Sequence[StreamClient | Client]
    status(f"{name}: connecting {count:,}")
    if transport is None:
        ws_tokens = [mint(SECRET, f"w{i}") for i in range(min(count, 100))]
        token_of = iter(range(count))

        def dialect() -> HubbubDialect:
            return HubbubDialect(token=ws_tokens[next(token_of) % len(ws_tokens)])

        ws_url = "ws" + url[len("http") :]
        subs, rate = await connect_clients(ws_url, dialect, stats, count, lambda i: list(CHANNELS))
    else:
        subs, rate = await connect_streams(url, transport, stats, count, tokens)
    out[f"connect {name}"] = rate
    try:
        async with aiohttp.ClientSession() as http:
            await quiesce(pid)
            for channel in CHANNELS:
                status(f"{name}: fan-out in {channel}")
                out[f"fanout {channel} {name}"] = await publish(
                    http, url, stats, count, channel, rate=args.rate, window=args.window,
                    seconds=args.seconds, pid=pid,
                )  # fmt: skip
    finally:
        abort_all(subs)


def better(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Per figure, the round with more per server CPU-second (connects: more per second)."""
    out = dict(old)
    for key, value in new.items():
        mine = out.get(key)
        if mine is None:
            out[key] = value
        elif isinstance(value, Measure):
            if (value.per_cpu or value.rate) > (mine.per_cpu or mine.rate):
                out[key] = value
        else:
            out[key] = max(mine, value)
    return out


def ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}" if value and base else "-"


def report(results: dict[str, Any], names: Sequence[str], args: argparse.Namespace) -> None:
    for n, (channel, what) in enumerate(CHANNELS.items(), 1):
        base = results.get(f"fanout {channel} {BASELINE}")
        rows = []
        for name in names:
            m = results.get(f"fanout {channel} {name}")
            if m is None:
                continue
            load = m.server_cpu / m.seconds if m.server_cpu is not None else None
            rows.append([name, fmt(m.rate), fmt(load, 2), fmt(m.per_cpu),
                         ratio(m.per_cpu, base.per_cpu if base else None),
                         fmt(results.get(f"connect {name}")), f"{m.own_load:.2f}"])  # fmt: skip
        if rows:
            table(f"{n}. fan-out to {args.subscribers:,} subscribers of {channel} ({what}): "
                  f"100-byte publications at up to {args.rate:g}/s, {args.window} in flight",
                  ["transport", "deliveries/s", "server load", "per CPU-s",
                   f"x {BASELINE}", "connects/s", "gen load"], rows)  # fmt: skip


def _serve(port: int, tmp: Path) -> list[str]:
    config = tmp / "hubbub.toml"
    config.write_text(CONFIG)
    return [sys.executable, "-m", "hubbub", "serve", "--port", str(port), "--config",
            str(config), "--data-dir", str(tmp), "--log-level", "warning"]  # fmt: skip


def server_peer(cpu: int | None) -> Peer:
    """hubbub, with every thread on ``cpu`` unless None (taskset execs it: the same pid)."""
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    return Peer("hubbub", lambda port, tmp: [*pin, *_serve(port, tmp)], HubbubDialect,
                lambda: None)  # fmt: skip


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=3.0, help="Per channel and transport.")
    parser.add_argument("--rounds", type=int, default=2, help="Best of this many rounds.")
    parser.add_argument("--rate", type=float, default=40.0, help="Publications per second.")
    parser.add_argument("--window", type=int, default=4, help="Publications in flight, at most.")
    parser.add_argument("--transports", default=",".join(TRANSPORTS))
    parser.add_argument("--no-pin", action="store_true",
                        help="Do not pin the server and the generator to a core each.")  # fmt: skip
    args = parser.parse_args()
    names = args.transports.split(",")
    if unknown := set(names) - set(TRANSPORTS):
        parser.error(f"unknown transports: {', '.join(sorted(unknown))}")
    cpu = prepare_machine(parser, not args.no_pin, args.subscribers)
    push = b'{"push":{"channel":"bench","pub":{"data":"' + b"x" * 100 + b'"}}}'
    ceilings = (parser_ceiling(HubbubDialect(), push), stream_ceiling(b"\n\n"),
                stream_ceiling(b"\n"))  # fmt: skip
    print(
        "load generator ceiling (per CPU-second, one message per read, from memory): "
        "{:,.0f} WebSocket frames, {:,.0f} SSE events, {:,.0f} lines".format(*ceilings)
    )
    results: dict[str, Any] = {}
    errors: list[str] = []
    started = time.perf_counter()
    with running(server_peer(cpu)) as (ws_url, pid):
        url = "http" + ws_url[len("ws") :]
        for round_ in range(args.rounds):
            got: dict[str, Any] = {}
            for name in names[::-1] if round_ % 2 else names:  # reversed: against drift
                try:
                    await transport_phase(url, pid, name, args, got)
                except Exception as exc:  # reported; the other transports still run
                    errors.append(f"round {round_ + 1}, {name}: {exc!r}")
                await quiesce(pid)
            status("")
            for key, m in got.items():
                if isinstance(m, Measure):
                    print(f"\r  round {round_ + 1}: {key}: {m.rate:,.0f}/s, {fmt(m.per_cpu)} per "
                          f"CPU-s, gen load {m.own_load:.2f}", file=sys.stderr)  # fmt: skip
            results = better(results, got)
            print(f"\rround {round_ + 1} done at {time.perf_counter() - started:.0f} s",
                  file=sys.stderr)  # fmt: skip
    print(
        f"(best of {args.rounds} interleaved rounds per figure; one server for all; "
        "deliveries counted at the clients, per CPU-second of the server process)"
    )
    report(results, names, args)
    for error in errors:
        print(f"failed: {error}")
    return 1 if errors else 0


if __name__ == "__main__":
    import uvloop

    sys.exit(uvloop.run(main()))
