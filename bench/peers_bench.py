"""hubbub against its peers, side by side in one run: fan-out, many channels, echo/RPC, idle
memory and connect rate.

    python bench/peers_bench.py [--scenario fanout,channels,echo,memory,connect]
                                [--servers hubbub,aiohttp,websockets,socketio,node]
                                [--clients 10000] [--seconds 5]

Every server runs alone as one process (the Python ones on uvloop) and is driven by the same
load generator (hubbub.loadgen: one process, hand-written frame parser). Server CPU seconds
and RSS come from /proc, so "per CPU-s" is what the server spent, whoever else is busy. The
generator's own ceiling (frames it can parse per CPU second) and its load during each run are
printed: a figure taken while it was saturated says more about it than about the server.

hubbub serves bench/hub_app.py with history off in the bench channels (the baselines store
nothing either) and the full Centrifugo protocol on top: connect, subscribe, publish commands,
pushes. Baselines: bench/peers/*.py and ws_server.js (npm ci --prefix bench/peers).
The kernel's floor: bench/peers/floor.c (bench/floor.py compiles it with ``cc -O2`` in the
run; skipped without a C compiler), one write() of a pre-built frame per subscriber per
publication; every fan-out is also printed as a percentage of its deliveries per CPU-second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import floor  # noqa: E402
from bench.dialects import PlainDialect, SocketIODialect  # noqa: E402

from hubbub.loadgen import (  # noqa: E402
    Client,
    Dialect,
    HubbubDialect,
    Measure,
    Stats,
    close_all,
    connect_clients,
    drain,
    echo,
    flood,
    open_client,
    paced,
    parser_ceiling,
    quiesce,
    rss_bytes,
)

PEERS = ROOT / "bench" / "peers"
SCENARIOS = ("fanout", "channels", "echo", "memory", "connect")
HUBBUB_CONFIG = """
demos = false
history = "memory"
client_command_rate = 1000000000
client_command_burst = 1000000000
client_channel_limit = 128
write_buffer_limit = 4194304
[channel]
history_size = 0
presence = false
join_leave = false
force_recovery = false
"""


@dataclass
class Peer:
    name: str
    command: Callable[[int, Path], list[str]]
    dialect: Callable[[], Dialect]
    available: Callable[[], str | None]  # None when it can run, else why not


def _python(script: str) -> Callable[[int, Path], list[str]]:
    return lambda port, _tmp: [sys.executable, str(PEERS / script), str(port)]


def _needs_module(name: str) -> Callable[[], str | None]:
    def check() -> str | None:
        try:
            __import__(name)
        except ImportError:
            return f"{name} is not installed (pip install -e '.[bench]')"
        return None

    return check


def _hubbub(port: int, tmp: Path) -> list[str]:
    config = tmp / "hubbub.toml"
    config.write_text(HUBBUB_CONFIG)
    return [sys.executable, "-m", "hubbub", "serve", "--port", str(port), "--config",
            str(config), "--data-dir", str(tmp), "--app", "bench.hub_app:hub",
            "--log-level", "warning"]  # fmt: skip


def _node_available() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (PEERS / "node_modules" / "ws").exists():
        return "ws is not installed (npm ci --prefix bench/peers)"
    return None


ALL_PEERS = {
    "hubbub": Peer("hubbub", _hubbub, HubbubDialect, lambda: None),
    "aiohttp": Peer(
        "aiohttp", _python("aiohttp_server.py"), lambda: PlainDialect("aiohttp"),
        _needs_module("uvloop"),
    ),
    "websockets": Peer(
        "websockets", _python("websockets_server.py"), lambda: PlainDialect("websockets"),
        _needs_module("websockets"),
    ),
    "socketio": Peer(
        "python-socketio", _python("socketio_server.py"), SocketIODialect,
        _needs_module("socketio"),
    ),
    "node": Peer(
        "node-ws",
        lambda port, _tmp: ["node", str(PEERS / "ws_server.js"), str(port)],
        lambda: PlainDialect("node-ws"),
        _node_available,
    ),
    "floor": Peer(floor.NAME, floor.command(), floor.dialect, floor.available),
}  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running(peer: Peer) -> Iterator[tuple[str, int]]:
    """Start ``peer`` on a free port; yield its ws URL and pid; stop it afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="hubbub-bench-"))
    port = free_port()
    # This checkout's hubbub (src/), not the one the venv was installed from, and bench/.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    env = {k: v for k, v in env.items() if not k.startswith("HUBBUB_")}
    log = open(tmp / "server.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(peer.command(port, tmp), cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{peer.name} exited: {(tmp / 'server.log').read_text()[-500:]}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{peer.name} did not start")
            time.sleep(0.1)
        time.sleep(0.3)
        yield f"ws://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def status(text: str) -> None:
    print(f"\r  {text:<76}", end="", file=sys.stderr, flush=True)


async def bench_peer(
    peer: Peer, scenarios: set[str], clients: int, seconds: float
) -> dict[str, Any]:
    """Every selected scenario against one server; a scenario that fails is reported as
    ``<scenario>_error`` and the others still run."""
    out: dict[str, Any] = {}
    with running(peer) as (url, pid):
        if scenarios & {"fanout", "memory", "connect"}:
            await phase(out, "fanout", pid, fanout_phase(peer, url, pid, scenarios, clients,
                                                         seconds, out))  # fmt: skip
        if "channels" in scenarios:
            await phase(out, "channels", pid, channels_phase(peer, url, pid, clients, seconds,
                                                             out))  # fmt: skip
        if "echo" in scenarios:
            await phase(out, "echo", pid, echo_phase(peer, url, pid, seconds, out))
        if peer.name == floor.NAME:
            out["drops"] = floor.drops(int(url.rsplit(":", 1)[1]))
    status("")
    print("\r", end="", file=sys.stderr)
    return out


async def phase(out: dict[str, Any], name: str, pid: int, run: Any) -> None:
    try:
        await run
    except Exception as exc:  # reported; the next scenario gets a fresh start
        out[f"{name}_error"] = repr(exc)
        traceback.print_exc(file=sys.stderr)
    await quiesce(pid)


async def fanout_phase(
    peer: Peer, url: str, pid: int, scenarios: set[str], clients: int, seconds: float,
    out: dict[str, Any],
) -> None:  # fmt: skip
    stats = Stats()
    rss0 = rss_bytes(pid)
    subs, rate = await connect_clients(
        url, peer.dialect, stats, clients, lambda i: [], samples=200,
        progress=lambda n: status(f"{peer.name}: {n}/{clients} connected")
        if n % 500 == 0 else None,
    )  # fmt: skip
    try:
        out["connect"] = rate
        await asyncio.sleep(1.0)
        out["memory"] = (rss_bytes(pid) - rss0) / clients
        if "fanout" not in scenarios:
            return
        publisher = await open_client(url, peer.dialect(), Stats())
        subs.append(publisher)
        # One publication at a time (the next once every subscriber has the last): nothing
        # for hubbub to coalesce.
        status(f"{peer.name}: fan-out")
        base = stats.delivered
        out["fanout"] = await flood(
            publisher, stats, clients, seconds, [None], batch=1, window=1, pid=pid
        )
        await drain(stats, base + out["fanout"].sent * clients)
        status(f"{peer.name}: fan-out, 8 publications per write")
        base = stats.delivered
        out["coalesced"] = await flood(
            publisher, stats, clients, seconds, [None], batch=8, window=16, pid=pid
        )
        await drain(stats, base + out["coalesced"].sent * clients)
        per_second = out["fanout"].rate / clients / 2
        status(f"{peer.name}: latency at {per_second:.1f} publications/s")
        out["latency"] = await paced(
            publisher, stats, per_second, min(10.0, max(3.0, 3 / per_second)),
            per_publication=clients,
        )  # fmt: skip
    finally:
        close_all(subs)


async def channels_phase(
    peer: Peer, url: str, pid: int, clients: int, seconds: float, out: dict[str, Any]
) -> None:
    stats = Stats()
    names = [f"c{n}" for n in range(1000)]
    subs, _ = await connect_clients(
        url, peer.dialect, stats, clients,
        lambda i: [names[(i * 10 + k * 97) % 1000] for k in range(10)],
        progress=lambda n: status(f"{peer.name}: {n}/{clients} with 10 channels")
        if n % 500 == 0 else None,
    )  # fmt: skip
    try:
        publisher = await open_client(url, peer.dialect(), Stats())
        subs.append(publisher)
        per_publication = clients * 10 // 1000
        status(f"{peer.name}: many channels")
        out["channels"] = await flood(
            publisher, stats, per_publication, seconds, names, batch=1, window=20, pid=pid
        )
    finally:
        close_all(subs)


async def echo_phase(peer: Peer, url: str, pid: int, seconds: float, out: dict[str, Any]) -> None:
    stats = Stats()
    conns: list[Client] = []
    try:
        for _ in range(100):
            conns.append(await open_client(url, peer.dialect(), stats))
        status(f"{peer.name}: echo")
        out["echo"] = await echo(conns, seconds, pid=pid)
    finally:
        close_all(conns)


def prepare_machine(parser: argparse.ArgumentParser, pin: bool, connections: int) -> int | None:
    """Set up a pinned run: the generator (this process) on the first core and the CPU the
    server goes on returned (None: not pinned, with ``pin`` false, one core or no taskset);
    the open-file limit raised to its hard limit (``parser.error`` when ``connections`` do not
    fit); the machine line printed."""
    cpu = None
    cpus = sorted(os.sched_getaffinity(0))
    if pin and len(cpus) >= 2 and shutil.which("taskset"):
        # One core each: the figures move less than when the scheduler moves them around.
        os.sched_setaffinity(0, {cpus[0]})
        cpu = cpus[-1]
        print(f"pinned: generator on CPU {cpus[0]}, server on CPU {cpu}")
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if connections + 500 > hard:
        parser.error(f"{connections} connections need more open files than {hard}")
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f}; Python {sys.version.split()[0]}")  # fmt: skip
    return cpu


def ratio(hub: float | None, other: float | None) -> str:
    if not hub or not other:
        return "-"
    return f"{hub / other:.2f}"


def fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  " + "  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in
                           enumerate(zip(header, widths, strict=True))))  # fmt: skip
    for row in rows:
        print("  " + "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in
                               enumerate(zip(row, widths, strict=True))))  # fmt: skip


def report(results: dict[str, dict[str, Any]], scenarios: set[str], clients: int) -> None:
    hub = results.get("hubbub", {})

    def measured(key: str) -> list[tuple[str, Measure]]:
        return [(name, r[key]) for name, r in results.items() if key in r]

    if "fanout" in scenarios:
        rows = []
        at_floor = results.get(floor.NAME, {}).get("fanout")
        for name, m in measured("fanout"):
            p50, p99, _ = results[name].get("latency", (float("nan"), float("nan"), 0))
            rows.append([name, fmt(m.rate), fmt(m.per_cpu), ratio(hub["fanout"].per_cpu, m.per_cpu)
                         if "fanout" in hub else "-",
                         floor.percent(m.per_cpu, at_floor.per_cpu if at_floor else None),
                         f"{p50:.1f}", f"{p99:.1f}", f"{m.own_load:.2f}"])  # fmt: skip
        table(f"1. fan-out: {clients:,} subscribers, one 100-byte publication per write",
              ["server", "deliveries/s", "per CPU-s", "hubbub x", "of floor", "p50 ms",
               "p99 ms", "gen load"], rows)  # fmt: skip
        if floor.NAME in results:
            print(f"  (floor: {results[floor.NAME].get('drops', 0)} subscribers dropped on a "
                  "short or failed write)")  # fmt: skip
        rows = []
        for name, m in measured("coalesced"):
            rows.append([name, fmt(m.rate), fmt(m.per_cpu),
                         ratio(hub["coalesced"].per_cpu, m.per_cpu) if "coalesced" in hub
                         else "-", f"{m.own_load:.2f}"])  # fmt: skip
        table("1b. fan-out, 8 publications per write (hubbub coalesces them per connection)",
              ["server", "deliveries/s", "per CPU-s", "hubbub x", "gen load"], rows)  # fmt: skip
    if "channels" in scenarios:
        rows = [[name, fmt(m.rate), fmt(m.per_cpu),
                 ratio(hub["channels"].per_cpu, m.per_cpu) if "channels" in hub else "-",
                 f"{m.own_load:.2f}"] for name, m in measured("channels")]  # fmt: skip
        table(f"2. many channels: {clients:,} connections x 10 of 1,000 channels",
              ["server", "deliveries/s", "per CPU-s", "hubbub x", "gen load"], rows)  # fmt: skip
    if "echo" in scenarios:
        rows = [[name, fmt(m.rate), fmt(m.per_cpu),
                 ratio(hub["echo"].per_cpu, m.per_cpu) if "echo" in hub else "-",
                 f"{m.own_load:.2f}"] for name, m in measured("echo")]  # fmt: skip
        table("3. echo (hubbub: RPC) round trips, 100 connections in closed loops",
              ["server", "round trips/s", "per CPU-s", "hubbub x", "gen load"], rows)  # fmt: skip
    if "memory" in scenarios:
        rows = [[name, f"{r['memory'] / 1024:.1f}",
                 ratio(r["memory"], hub.get("memory"))] for name, r in results.items()
                if "memory" in r]  # fmt: skip
        table(f"4. idle memory: server RSS per subscribed idle connection ({clients:,})",
              ["server", "KiB/conn", "x hubbub's"], rows)  # fmt: skip
    if "connect" in scenarios:
        rows = [[name, fmt(r["connect"]), ratio(hub.get("connect"), r["connect"])]
                for name, r in results.items() if "connect" in r]  # fmt: skip
        table("5. connect rate: connections with a subscribe, 100 at a time",
              ["server", "per second", "hubbub x"], rows)  # fmt: skip
    for name, r in results.items():
        for key, value in r.items():
            if key.endswith("_error"):
                print(f"\n{name}: {key[: -len('_error')]} failed: {value}")
    targets(results)


def targets(results: dict[str, dict[str, Any]]) -> None:
    hub = results.get("hubbub")
    if not hub:
        return
    checks = []

    def check(label: str, value: float | None, other: float | None, want: float) -> None:
        if value and other:
            got = value / other
            checks.append(f"  {label}: {got:.2f} (target {want}) "
                          f"{'met' if got >= want else 'MISSED'}")  # fmt: skip

    def per_cpu(name: str, key: str) -> float | None:
        m = results.get(name, {}).get(key)
        return m.per_cpu if m is not None else None

    check(
        "fan-out per CPU-s vs node-ws",
        per_cpu("hubbub", "fanout"),
        per_cpu("node-ws", "fanout"),
        1.2,
    )
    check(
        "fan-out per CPU-s vs aiohttp",
        per_cpu("hubbub", "fanout"),
        per_cpu("aiohttp", "fanout"),
        1.2,
    )
    check(
        "fan-out per CPU-s vs python-socketio",
        per_cpu("hubbub", "fanout"),
        per_cpu("python-socketio", "fanout"),
        10,
    )
    check(
        "coalesced fan-out per CPU-s vs aiohttp",
        per_cpu("hubbub", "coalesced"),
        per_cpu("aiohttp", "coalesced"),
        2,
    )
    check(
        "echo/RPC per CPU-s vs aiohttp echo",
        per_cpu("hubbub", "echo"),
        per_cpu("aiohttp", "echo"),
        0.8,
    )
    at_floor = per_cpu(floor.NAME, "fanout")
    if per_cpu("hubbub", "fanout") and at_floor:
        got = per_cpu("hubbub", "fanout") / at_floor  # type: ignore[operator]
        checks.append(f"  fan-out per CPU-s vs the kernel floor (issue 18): {100 * got:.0f} % "
                      f"(target >= {100 * floor.TARGET:.0f} %) "
                      f"{'met' if got >= floor.TARGET else 'MISSED'}")  # fmt: skip
    if "memory" in hub:
        kib = hub["memory"] / 1024
        checks.append(f"  idle memory: {kib:.1f} KiB per connection (target <= 16) "
                      f"{'met' if kib <= 16 else 'MISSED'}")  # fmt: skip
    if checks:
        print("\ntargets (issue #8):")
        print("\n".join(checks))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default=",".join(SCENARIOS))
    parser.add_argument("--servers", default=",".join(ALL_PEERS))
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2, help="Best of this many rounds.")
    args = parser.parse_args()
    scenarios = set(args.scenario.split(","))
    unknown = scenarios - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.clients + 500 > hard:
        parser.error(f"--clients {args.clients} needs more open files than the limit {hard}")
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f}; Python {sys.version.split()[0]}")  # fmt: skip
    ceiling = parser_ceiling(HubbubDialect(), b'{"push":{"channel":"bench","pub":{"data":"' +
                             b"x" * 100 + b'"}}}')  # fmt: skip
    print(f"load generator ceiling: {ceiling:,.0f} frames per CPU-second parsed (one frame "
          "per read; the event loop and socket reads come on top)")  # fmt: skip
    peers = []
    for key in args.servers.split(","):
        peer = ALL_PEERS[key]
        why = peer.available()
        if why is not None:
            print(f"{peer.name}: skipped: {why}")
        else:
            peers.append(peer)
    results: dict[str, dict[str, Any]] = {}
    for round_ in range(args.rounds):
        # Interleaved, every other round in reverse order, so that drift in the machine's
        # state does not always favour the same server.
        for peer in peers if round_ % 2 == 0 else peers[::-1]:
            started = time.perf_counter()
            try:
                got = await bench_peer(peer, scenarios, args.clients, args.seconds)
            except Exception as exc:  # one broken peer must not lose the others' figures
                print(f"{peer.name}: failed: {exc!r}")
                continue
            results[peer.name] = best(results.get(peer.name, {}), got)
            took = time.perf_counter() - started
            print(f"{peer.name}: round {round_ + 1} in {took:.0f} s", file=sys.stderr)
    print(f"(best of {args.rounds} interleaved rounds per server and figure)")
    report(results, scenarios, args.clients)


def best(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Per figure, the better of two rounds: more per CPU-second (the fan-out's latency comes
    from the same round as its figure), less memory, more connects; an error only where no
    round measured the scenario."""
    out = dict(old)
    for key, value in new.items():
        mine = out.get(key)
        if key == "latency" or key.endswith("_error"):
            continue
        if mine is None:
            out[key] = value
            if key == "fanout" and "latency" in new:
                out["latency"] = new["latency"]
        elif isinstance(value, Measure):
            if (value.per_cpu or value.rate) > (mine.per_cpu or mine.rate):
                out[key] = value
                if key == "fanout" and "latency" in new:
                    out["latency"] = new["latency"]
        elif key == "memory":
            out[key] = min(mine, value)
        else:
            out[key] = max(mine, value)
    for key, value in new.items():
        if key.endswith("_error") and key[: -len("_error")] not in out:
            out[key] = value
    for key in list(out):
        if key.endswith("_error") and key[: -len("_error")] in out:
            del out[key]
    return out


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
