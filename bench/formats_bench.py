"""JSON, Protobuf and permessage-deflate JSON clients of one hubbub server side by side in
one run: fan-out and echo/RPC.

    python bench/formats_bench.py [--scenario fanout,echo] [--subscribers 2000] [--seconds 3]
                                  [--rounds 3] [--mixes json,protobuf,...] [--no-pin]

One ``hubbub serve`` (the embedded default: SQLite history in a temporary data dir, plus the
bench's lifted rate limits, demos off and bench/hub_app.py's ``echo`` RPC), driven by
hubbub.loadgen speaking either format: ``HubbubDialect`` (JSON text frames) or
``ProtobufDialect`` (subprotocol ``centrifuge-protobuf``, binary frames of length-delimited
Commands/Replies, hand-encoded in the generator, not hubbub's codec), or JSON with
permessage-deflate offered as browsers do (``DeflateHubbubDialect``: the subscribers inflate
every compressed frame; the server's default ``compression_min_size`` of 64 bytes leaves the
~150-byte pushes compressed).

1. fan-out: ``--subscribers`` connections, all JSON, all Protobuf, half and half
   (interleaved), or all JSON with permessage-deflate (``json+deflate``), each subscribed to
   ``nohist:bench`` (a namespace without history) and ``bench`` (a channel of the embedded
   default: durable SQLite history of 1000, recovery, presence); for each channel one
   100-byte publication at a time (the next once every subscriber has the last), then
   p50/p99 publish-to-receive latency at half that rate on 200 sampled connections (and the
   deliveries per server CPU-second at that rate, where the generator is far from
   saturated). The publisher speaks the subscribers' format (JSON in the mixed and the
   deflate runs). Publication data is a JSON string in both formats, so both kinds of
   subscriber read it.
2. echo/RPC: 100 connections of one format in closed loops of the ``echo`` RPC.

Per CPU-s: deliveries (round trips) per CPU second of the server process (/proc). The server
runs on the last core and the generator on the first (taskset; ``--no-pin``: wherever the
scheduler puts them). Every round measures every figure, in reverse order every other round;
each figure is the better of the rounds. The ratios Protobuf/JSON of each figure and
deflate/JSON of the fan-outs (target >= 0.8) close the report, and then hubbub's JSON fan-outs
as a percentage of the kernel's floor: bench/peers/floor.c (bench/floor.py), pinned like the
server, fanning out to as many subscribers once per round.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import floor  # noqa: E402
from bench.peers_bench import Peer, fmt, prepare_machine, running, status, table  # noqa: E402

from hubbub.loadgen import (  # noqa: E402
    Client,
    Dialect,
    HubbubDialect,
    Measure,
    Stats,
    Window,
    close_all,
    connect_clients,
    drain,
    echo,
    flood,
    open_client,
    paced,
    parser_ceiling,
    quiesce,
)
from hubbub.loadgen_deflate import DeflateHubbubDialect  # noqa: E402
from hubbub.loadgen_protobuf import ProtobufDialect, varint  # noqa: E402

CONFIG = """
demos = false
client_command_rate = 1000000000
client_command_burst = 1000000000
client_channel_limit = 128
write_buffer_limit = 4194304

[[namespaces]]
name = "nohist"
"""
CHANNELS = {"nohist:bench": "no history", "bench": "durable (SQLite)"}
MIXES = ("json", "protobuf", "half/half", "json+deflate")
FORMATS: dict[str, Callable[[], Dialect]] = {"json": HubbubDialect, "protobuf": ProtobufDialect}
#: Subscribers of the mixes that are one dialect but not a wire format (published in JSON).
SUBSCRIBERS: dict[str, Callable[[], Dialect]] = {"json+deflate": DeflateHubbubDialect}


def _serve(port: int, tmp: Path) -> list[str]:
    config = tmp / "hubbub.toml"
    config.write_text(CONFIG)
    return [sys.executable, "-m", "hubbub", "serve", "--port", str(port), "--config",
            str(config), "--data-dir", str(tmp), "--app", "bench.hub_app:hub",
            "--log-level", "warning"]  # fmt: skip


HUBBUB = Peer("hubbub", _serve, HubbubDialect, lambda: None)


def pinned(cpu: int) -> Peer:
    """hubbub with every thread on ``cpu`` (taskset execs the server: same pid)."""
    return Peer("hubbub", lambda port, tmp: ["taskset", "-c", str(cpu), *_serve(port, tmp)],
                HubbubDialect, lambda: None)  # fmt: skip


def subscribers_of(mix: str) -> Callable[[], Dialect]:
    """The dialect factory of a mix. Half/half alternates, shifted by one every 10
    connections so that the sampled ones (every 10th of 2,000) are of both formats too."""
    if mix in FORMATS:
        return FORMATS[mix]
    if mix in SUBSCRIBERS:
        return SUBSCRIBERS[mix]
    counter = itertools.count()

    def make() -> Dialect:
        k = next(counter)
        return ProtobufDialect() if (k + k // 10) % 2 else HubbubDialect()

    return make


async def fanout_phase(
    url: str, pid: int, mix: str, subscribers: int, seconds: float, out: dict[str, Any]
) -> None:
    stats = Stats()
    subs, _ = await connect_clients(
        url, subscribers_of(mix), stats, subscribers, lambda i: list(CHANNELS), samples=200,
        progress=lambda n: status(f"{mix}: {n}/{subscribers} connected")
        if n % 500 == 0 else None,
    )  # fmt: skip
    try:
        publisher = await open_client(url, FORMATS.get(mix, HubbubDialect)(), Stats())
        subs.append(publisher)
        await quiesce(pid)
        for channel in CHANNELS:
            status(f"{mix}: fan-out in {channel}")
            base = stats.delivered
            measure = await flood(
                publisher, stats, subscribers, seconds, [channel], batch=1, window=1, pid=pid
            )
            await drain(stats, base + measure.sent * subscribers)
            per_second = max(measure.rate / subscribers / 2, 0.5)
            status(f"{mix}: latency in {channel} at {per_second:.1f} publications/s")
            window, base = Window(pid), stats.delivered
            latency = await paced(
                publisher, stats, per_second, min(5.0, max(2.0, 3 / per_second)),
                channel=channel, per_publication=subscribers,
            )  # fmt: skip
            out[f"fanout {channel} {mix}"] = measure
            out[f"latency {channel} {mix}"] = latency
            out[f"paced {channel} {mix}"] = window.done(stats.delivered - base)
    finally:
        close_all(subs)


async def echo_phase(url: str, pid: int, name: str, seconds: float, out: dict[str, Any]) -> None:
    stats = Stats()
    conns: list[Client] = []
    try:
        for _ in range(100):
            conns.append(await open_client(url, FORMATS[name](), stats))
        status(f"{name}: echo/RPC")
        out[f"echo {name}"] = await echo(conns, seconds, pid=pid)
    finally:
        close_all(conns)


def better(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Per figure the round with more per CPU-second (a fan-out's latency from the same
    round)."""
    out = dict(old)
    for key, value in new.items():
        if not isinstance(value, Measure) or key.startswith("paced"):
            continue
        mine = out.get(key)
        if mine is None or (value.per_cpu or value.rate) > (mine.per_cpu or mine.rate):
            out[key] = value
            for other in ("latency", "paced"):  # from the round of the figure
                same = key.replace("fanout", other, 1)
                if same != key and same in new:
                    out[same] = new[same]
    return out


def ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}" if value and base else "-"


def report(results: dict[str, Any], subscribers: int) -> list[tuple[str, float]]:
    """Print the tables; return (label, Protobuf/JSON per CPU-s) of every figure."""
    ratios: list[tuple[str, float]] = []

    def per_cpu(key: str) -> float | None:
        m = results.get(key)
        return m.per_cpu if m is not None else None

    for n, (channel, what) in enumerate(CHANNELS.items(), 1):
        rows = []
        json_cpu = per_cpu(f"fanout {channel} json")
        for mix in MIXES:
            m = results.get(f"fanout {channel} {mix}")
            if m is None:
                continue
            p50, p99, _ = results.get(f"latency {channel} {mix}", (float("nan"),) * 2 + (0,))
            half = results.get(f"paced {channel} {mix}")
            rows.append([mix, fmt(m.rate), fmt(m.per_cpu), ratio(m.per_cpu, json_cpu),
                         f"{p50:.1f}", f"{p99:.1f}", fmt(half.per_cpu if half else None),
                         f"{m.own_load:.2f}"])  # fmt: skip
            if mix != "json" and m.per_cpu and json_cpu:
                ratios.append((f"fan-out {what}, {mix}", m.per_cpu / json_cpu))
        if not rows:
            continue
        table(f"{n}. fan-out to {subscribers:,} subscribers of {channel} ({what}), one 100-byte "
              "publication at a time",
              ["subscribers", "deliveries/s", "per CPU-s", "x JSON", "p50 ms", "p99 ms",
               "half rate: per CPU-s", "gen load"], rows)  # fmt: skip
    rows = []
    json_cpu = per_cpu("echo json")
    for name in FORMATS:
        m = results.get(f"echo {name}")
        if m is None:
            continue
        rows.append([name, fmt(m.rate), fmt(m.per_cpu), ratio(m.per_cpu, json_cpu),
                     f"{m.own_load:.2f}"])  # fmt: skip
        if name != "json" and m.per_cpu and json_cpu:
            ratios.append(("echo/RPC round trips", m.per_cpu / json_cpu))
    if rows:
        table(f"{len(CHANNELS) + 1}. echo/RPC round trips, 100 connections in closed loops",
              ["format", "round trips/s", "per CPU-s", "x JSON", "gen load"], rows)  # fmt: skip
    return ratios


def summary(ratios: list[tuple[str, float]], errors: list[str]) -> None:
    print("\nProtobuf / JSON per server CPU-second (target >= 1.0: Protobuf at least as fast):")
    for label, value in ratios:
        if "deflate" not in label:
            print(f"  {label}: {value:.2f} {'met' if value >= 1.0 else 'MISSED'}")
    print("permessage-deflate / plain JSON fan-out per server CPU-second (target >= 0.8):")
    for label, value in ratios:
        if "deflate" in label:
            print(f"  {label}: {value:.2f} {'met' if value >= 0.8 else 'MISSED'}")
    for error in errors:
        print(f"  failed: {error}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3, help="Best of this many rounds.")
    parser.add_argument("--scenario", default="fanout,echo", help="fanout, echo or both.")
    parser.add_argument("--mixes", default=",".join(MIXES),
                        help=f"Fan-out subscriber mixes, of {', '.join(MIXES)}.")  # fmt: skip
    parser.add_argument("--no-pin", action="store_true",
                        help="Do not pin the server and the generator to a core each.")  # fmt: skip
    args = parser.parse_args()
    scenarios = set(args.scenario.split(","))
    if not scenarios or scenarios - {"fanout", "echo"}:
        parser.error(f"unknown scenario in {args.scenario!r}")
    mixes = [mix for mix in args.mixes.split(",") if mix]
    if set(mixes) - set(MIXES):
        parser.error(f"unknown mix in {args.mixes!r}")
    server = HUBBUB
    floor_peer = Peer(floor.NAME, floor.command(), floor.dialect, floor.available)
    cpu = prepare_machine(parser, not args.no_pin, args.subscribers)
    if cpu is not None:
        server = pinned(cpu)
        floor_peer = Peer(floor.NAME, floor.command(cpu), floor.dialect, floor.available)
    body = b'"T1234567890|' + b"x" * 88 + b'"'
    json_push = b'{"push":{"channel":"bench","pub":{"data":' + body + b"}}}"
    pub = b"\x22" + varint(len(body)) + body  # Publication.data = 4
    push = b"\x12\x05bench" + b"\x22" + varint(len(pub)) + pub  # Push.channel, Push.pub
    reply = b"\x22" + varint(len(push)) + push  # Reply.push = 4
    ceilings = (
        parser_ceiling(HubbubDialect(), json_push),
        parser_ceiling(ProtobufDialect(), varint(len(reply)) + reply, binary=True),
    )
    print(f"load generator ceiling: {ceilings[0]:,.0f} JSON / {ceilings[1]:,.0f} Protobuf push "
          "frames per CPU-second parsed (one frame per read, from memory)")  # fmt: skip
    results: dict[str, Any] = {}
    errors: list[str] = []
    started = time.perf_counter()
    with running(server) as (url, pid):
        for round_ in range(args.rounds):
            flip = round_ % 2 == 1  # every other round in reverse order, against drift
            got: dict[str, Any] = {}
            steps = [("fan-out", mix) for mix in mixes if "fanout" in scenarios]
            steps += [("echo", name) for name in FORMATS if "echo" in scenarios]
            if "fanout" in scenarios and floor.available() is None:
                steps.append(("floor", floor.NAME))
            for kind, what in steps[::-1] if flip else steps:
                try:
                    if kind == "fan-out":
                        await fanout_phase(url, pid, what, args.subscribers, args.seconds, got)
                    elif kind == "floor":
                        status("the kernel's floor")
                        with running(floor_peer) as (floor_url, floor_pid):
                            got["fanout floor"] = await floor.fanout(
                                floor_url, floor_pid, args.subscribers, args.seconds
                            )
                    else:
                        await echo_phase(url, pid, what, args.seconds, got)
                except Exception as exc:  # reported; the other figures still run
                    errors.append(f"round {round_ + 1}, {kind} {what}: {exc!r}")
                await quiesce(pid)
            status("")
            for key, m in got.items():  # every round's figures, on stderr
                if isinstance(m, Measure):
                    print(f"\r  round {round_ + 1}: {key}: {m.rate:,.0f}/s, {fmt(m.per_cpu)} per "
                          f"CPU-s, gen load {m.own_load:.2f}", file=sys.stderr)  # fmt: skip
            results = better(results, got)
            status("")
            print(f"\rround {round_ + 1} done at {time.perf_counter() - started:.0f} s",
                  file=sys.stderr)  # fmt: skip
    print(f"(best of {args.rounds} interleaved rounds per figure; one server for all)")
    summary(report(results, args.subscribers), errors)
    against_floor(results, args.subscribers)


def against_floor(results: dict[str, Any], subscribers: int) -> None:
    """hubbub's JSON fan-outs per server CPU-second as a percentage of the floor's."""
    why = floor.available()
    at_floor = results.get("fanout floor")
    if why is not None or at_floor is None:
        print(f"\nthe kernel's floor: not measured ({why or 'failed'})")
        return
    print(f"\nthe kernel's floor ({floor.NAME}, one write per subscriber per publication, "
          f"{subscribers:,} subscribers): {fmt(at_floor.per_cpu)} deliveries per CPU-s; "
          f"target >= {100 * floor.TARGET:.0f} %")  # fmt: skip
    for channel, what in CHANNELS.items():
        m = results.get(f"fanout {channel} json")
        if m is not None and m.per_cpu and at_floor.per_cpu:
            got = m.per_cpu / at_floor.per_cpu
            print(f"  fan-out {what}, JSON: {floor.percent(m.per_cpu, at_floor.per_cpu)} of the "
                  f"floor {'met' if got >= floor.TARGET else 'MISSED'}")  # fmt: skip


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
