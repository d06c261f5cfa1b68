"""The operator's commands, end to end against real servers."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hubbub.auth import TokenVerifier
from hubbub.config import Settings
from hubbub.operator import api_call
from tests.conftest import StartServer
from tests.support.proxy import FlakyProxy
from tests.support.timing import scaled

pytestmark = pytest.mark.e2e

KEY = "cli-key-" * 4
NO_HISTORY = """
[[namespaces]]
name = "nohist"
"""


def hubbub(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin"}
    if "PYTHONPATH" in os.environ:  # a checkout run without installing it
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return subprocess.run(
        [sys.executable, "-m", "hubbub", *args],
        capture_output=True,
        text=True,
        timeout=scaled(60),
        cwd=cwd,
        env=env,
    )


def test_genconfig_then_checkconfig(tmp_path: Path) -> None:
    """genconfig writes a valid config with fresh secrets; checkconfig names a bad key."""
    out = hubbub("genconfig", "-o", str(tmp_path / "hubbub.toml"))
    assert out.returncode == 0, out.stderr
    text = (tmp_path / "hubbub.toml").read_text()
    assert "allow_anonymous = false" in text
    assert hubbub("checkconfig", str(tmp_path / "hubbub.toml")).returncode == 0
    other = hubbub("genconfig").stdout
    assert other != text  # secrets are generated each time
    (tmp_path / "bad.toml").write_text(text.replace("port = 8765", "port = 99999"))
    bad = hubbub("checkconfig", str(tmp_path / "bad.toml"))
    assert bad.returncode == 1
    assert "port: Input should be less than or equal to 65535" in bad.stderr
    (tmp_path / "typo.toml").write_text(
        text.replace("port = 8765", "port = 8765\nmax_mesage_size = 1")
    )
    typo = hubbub("checkconfig", str(tmp_path / "typo.toml"))
    assert typo.returncode == 1 and "max_mesage_size: unknown setting" in typo.stderr
    (tmp_path / "nested.toml").write_text(text + "\nhistroy_size = 1\n")  # in [[namespaces]]
    nested = hubbub("checkconfig", str(tmp_path / "nested.toml"))
    assert nested.returncode == 1 and "namespaces.0.histroy_size" in nested.stderr


def test_token_mints_connection_and_subscription_tokens() -> None:
    secret = "m" * 40
    verifier = TokenVerifier(Settings(token_hmac_secret=secret))
    out = hubbub("token", "--user", "ada", "--ttl", "15m", "--token-hmac-secret", secret)
    assert out.returncode == 0, out.stderr
    claims = verifier.connect(out.stdout.strip())
    assert claims.user == "ada" and claims.expire_at is not None
    sub = hubbub("token", "--user", "ada", "--channel", "chat:1", "--token-hmac-secret", secret)
    assert verifier.subscribe(sub.stdout.strip()).channel == "chat:1"
    missing = hubbub("token", "--user", "ada")
    assert missing.returncode == 1 and "token_hmac_secret" in missing.stderr


async def test_publish_and_subscribe_with_recovery(start_server: StartServer) -> None:
    """`hubbub subscribe` prints what `hubbub publish` sends, also what was published while
    its connection was down."""
    server = start_server("--api-key", KEY)
    proxy = await FlakyProxy(server.port).start()
    subscriber = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hubbub", "subscribe", "news", "--count", "5",
        "--url", f"http://127.0.0.1:{proxy.port}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip

    async def publish(n: int) -> None:
        out = await asyncio.to_thread(
            hubbub, "publish", "news", json.dumps({"n": n}), "--url", server.url, "--api-key", KEY
        )
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["offset"] == n

    async def subscribed() -> None:
        for _ in range(int(scaled(200))):
            out = await asyncio.to_thread(
                hubbub, "publish", "probe", "1", "--url", server.url, "--api-key", KEY
            )
            assert out.returncode == 0
            import aiohttp

            async with (
                aiohttp.ClientSession() as http,
                http.post(
                    server.url + "/api/channels", json={}, headers={"X-API-Key": KEY}
                ) as resp,
            ):
                if "news" in (await resp.json())["result"]["channels"]:
                    return
            await asyncio.sleep(0.05)
        raise AssertionError("the subscriber never subscribed")

    try:
        await subscribed()
        await publish(1)
        await publish(2)
        lines = [
            json.loads(await asyncio.wait_for(subscriber.stdout.readline(), scaled(10)))
            for _ in range(2)
        ]  # type: ignore[union-attr]
        proxy.cut()
        await publish(3)
        await publish(4)
        await asyncio.sleep(0.5)
        proxy.restore()
        for _ in range(2):
            lines.append(
                json.loads(await asyncio.wait_for(subscriber.stdout.readline(), scaled(15)))
            )  # type: ignore[union-attr]
        await publish(5)
        lines.append(json.loads(await asyncio.wait_for(subscriber.stdout.readline(), scaled(10))))  # type: ignore[union-attr]
        assert [(x["channel"], x["offset"], x["data"]) for x in lines] == [
            ("news", n, {"n": n}) for n in range(1, 6)
        ]
        assert await asyncio.wait_for(subscriber.wait(), scaled(10)) == 0
        assert proxy.accepted >= 2
    finally:
        if subscriber.returncode is None:
            subscriber.kill()
            await subscriber.wait()
        await proxy.close()


def test_publish_without_key_is_a_clear_error() -> None:
    out = hubbub("publish", "news", "1", "--url", "http://127.0.0.1:9")
    assert out.returncode == 1 and "needs a key" in out.stderr


def _figures(stdout: str) -> dict[str, str]:
    rows = [line.rsplit("  ", 1) for line in stdout.splitlines() if "  " in line]
    return {name.strip(): value.strip() for name, value in rows}


def test_bench_measures_a_running_server(start_server: StartServer) -> None:
    """`hubbub bench` drives a real server: fan-out deliveries reach every subscriber, ping
    round trips come back, the server's CPU is read when its pid is given; what fan-out
    stored in the channel's history (the embedded default keeps it) is removed after."""
    server = start_server("--api-key", KEY)
    url, pid = server.url, str(server.proc.pid)
    out = hubbub("bench", "--url", url, "--scenario", "fanout", "--clients", "20",
                 "--duration", "1", "--pid", pid, "--api-key", KEY)  # fmt: skip
    assert out.returncode == 0, out.stderr
    figures = _figures(out.stdout)
    assert figures["clients"] == "20"
    assert float(figures["deliveries/s"].replace(",", "")) > 0
    assert float(figures["deliveries per server CPU-s"].replace(",", "")) > 0
    assert re.fullmatch(r"removed the [0-9,]+ publications stored in bench", figures["history"])
    history = asyncio.run(api_call(url, KEY, "history", {"channel": "bench", "limit": -1}))
    assert history["publications"] == []
    out = hubbub("bench", "--url", url, "--scenario", "ping", "--clients", "5", "--duration", "1")
    assert out.returncode == 0, out.stderr
    assert float(_figures(out.stdout)["round trips/s"].replace(",", "")) > 0


def test_bench_leaves_no_history_behind_unasked(start_server: StartServer) -> None:
    """Without the API key fan-out refuses a channel with history (and says what to do); a
    channel without history is measured as it is; one with publications already is kept."""
    server = start_server("--api-key", KEY, config=NO_HISTORY)
    args = ("bench", "--url", server.url, "--clients", "5", "--duration", "0.5")
    refused = hubbub(*args)
    assert refused.returncode == 1
    assert "'bench' keeps history on this server" in refused.stderr
    assert "--api-key or HUBBUB_API_KEY" in refused.stderr
    plain = hubbub(*args, "--channel", "nohist:b")
    assert plain.returncode == 0, plain.stderr
    assert _figures(plain.stdout)["history"] == "none: nohist:b keeps no history"
    asyncio.run(api_call(server.url, KEY, "publish", {"channel": "news", "data": 1}))
    kept = hubbub(*args, "--channel", "news", "--api-key", KEY)
    assert kept.returncode == 1 and "'news' already holds publications" in kept.stderr
    history = asyncio.run(api_call(server.url, KEY, "history", {"channel": "bench", "limit": 0}))
    assert history["offset"] == 0


def test_bench_reports_an_unreachable_server(tmp_path: Path) -> None:
    out = hubbub("bench", "--url", "http://127.0.0.1:9", "--clients", "2", "--duration", "1")
    assert out.returncode == 1
    assert "Error: http://127.0.0.1:9" in out.stderr
