"""Delta compression with the SDKs, unchanged: centrifuge-python (``delta=DeltaType.FOSSIL``)
and centrifuge-js (``delta: "fossil"``), each in JSON and Protobuf. Each subscriber must
reconstruct the exact data of every publication: deltas, a publication not marked delta in
between, a connection dropped and recovered, and a subscriber without delta on the same
channel getting plain data. Also: deltas made by hubbub's fossil encoder applied by
centrifuge-js's own codecs (centrifuge-python's decoder: tests/unit/core/test_fossil.py)."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from centrifuge import (
    Client,
    ClientEventHandler,
    DeltaType,
    PublicationContext,
    SubscribedContext,
    SubscriptionEventHandler,
)

from hubbub.core import fossil
from tests.conftest import StartServer, missing, need_binary
from tests.support.proxy import FlakyProxy
from tests.support.sdk import SDK_GARBAGE
from tests.support.server import ServerProcess
from tests.support.timing import scaled

pytestmark = [
    pytest.mark.interop,
    *SDK_GARBAGE,  # centrifuge-python in this process (tests/support/sdk.py)
]

JS_DIR = Path(__file__).with_name("js")
KEY = "delta-interop-key-0123456789"
CONFIG = f"""
api_key = "{KEY}"

[[namespaces]]
name = "doc"
allowed_delta_types = ["fossil"]
history_size = 50
history_ttl = 300
force_recovery = true
"""
#: Marks of the publications: five while connected (one not marked), three while the delta
#: subscriber is cut off (recovered in full), two after.
MARKS = [True, True, True, False, True, True, True, True, True, True]
#: What the delta subscriber gets them as: the first after subscribing in full, the one not
#: marked in full, the recovered ones in full, the rest as deltas.
KINDS = ["full", "delta", "delta", "full", "delta", "full", "full", "full", "delta", "delta"]


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    return start_server(config=CONFIG)


def document(n: int) -> dict[str, Any]:
    """Similar documents (a delta of one from another is small), with characters of 2, 3
    and 4 UTF-8 bytes."""
    return {"n": n, "rows": [{"id": i, "label": f"row {i} é€𝄞", "v": i * n} for i in range(30)]}


async def publish(server: ServerProcess, channel: str, n: int, delta: bool) -> None:
    """Through the server API, as JSON text with the characters raw (b64data keeps it as it
    is), so that the deltas carry multi-byte characters."""
    text = json.dumps(document(n), ensure_ascii=False).encode()
    params = {"channel": channel, "b64data": base64.b64encode(text).decode(), "delta": delta}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{server.url}/api/publish", json=params, headers={"X-API-Key": KEY}) as r,
    ):
        body = await r.json()
    assert "error" not in body, body


class Recorder(SubscriptionEventHandler):
    def __init__(self, protobuf: bool) -> None:
        self.protobuf = protobuf
        self.pubs: asyncio.Queue[tuple[Any, bool]] = asyncio.Queue()
        self.subscribed: list[SubscribedContext] = []

    async def on_publication(self, ctx: PublicationContext) -> None:
        data = json.loads(ctx.pub.data) if self.protobuf else ctx.pub.data
        await self.pubs.put((data, ctx.pub.delta))

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self.subscribed.append(ctx)

    async def take(self, n: int) -> list[tuple[Any, bool]]:
        return [await asyncio.wait_for(self.pubs.get(), scaled(10)) for _ in range(n)]


async def sdk_client(port: int, protobuf: bool) -> Client:
    client = Client(
        f"ws://127.0.0.1:{port}/connection/websocket",
        events=ClientEventHandler(),
        min_reconnect_delay=0.05,
        max_reconnect_delay=0.3,
        use_protobuf=protobuf,
    )
    await client.connect()
    await client.ready(scaled(10))
    return client


@pytest.mark.parametrize("protobuf", [False, True], ids=["json", "protobuf"])
async def test_centrifuge_python_reconstructs_every_publication(
    server: ServerProcess, protobuf: bool
) -> None:
    channel = "doc:py-pb" if protobuf else "doc:py-json"
    proxy = await FlakyProxy(server.port).start()
    with_delta, plain = Recorder(protobuf), Recorder(protobuf)
    ada = await sdk_client(proxy.port, protobuf)
    bob = await sdk_client(server.port, protobuf)
    try:
        sub = ada.new_subscription(channel, with_delta, delta=DeltaType.FOSSIL)
        await sub.subscribe()
        await sub.ready(scaled(10))
        plain_sub = bob.new_subscription(channel, plain)
        await plain_sub.subscribe()
        await plain_sub.ready(scaled(10))
        assert sub._delta_negotiated is True  # the SDK's state: the reply said delta
        assert plain_sub._delta_negotiated is False
        got = []
        for n in range(5):
            await publish(server, channel, n, MARKS[n])
        got += await with_delta.take(5)
        proxy.cut()
        await asyncio.sleep(0.1)
        for n in range(5, 8):
            await publish(server, channel, n, MARKS[n])
        await asyncio.sleep(0.3)
        proxy.restore()
        got += await with_delta.take(3)
        for n in range(8, 10):
            await publish(server, channel, n, MARKS[n])
        got += await with_delta.take(2)
        plain_got = await plain.take(10)
        await asyncio.sleep(0.2)
        assert with_delta.pubs.empty() and plain.pubs.empty()
    finally:
        await ada.disconnect()
        await bob.disconnect()
        await proxy.close()
    assert [data for data, _ in got] == [document(n) for n in range(10)]
    assert ["delta" if delta else "full" for _, delta in got] == KINDS
    assert plain_got == [(document(n), False) for n in range(10)]
    last = with_delta.subscribed[-1]
    assert (len(with_delta.subscribed), last.was_recovering, last.recovered) == (2, True, True)


def run_node(script: str, *args: str, stdin: bytes = b"") -> Any:
    """Run a script of tests/interop/js; its last line of output, parsed."""
    node = need_binary("node")
    if not (JS_DIR / "node_modules" / "centrifuge").is_dir():
        missing("centrifuge-js is not installed: `make test` runs npm ci in tests/interop/js")
    done = subprocess.run(
        [node, "--experimental-websocket", "--no-warnings", script, *args],
        input=stdin,
        capture_output=True,
        cwd=JS_DIR,
        timeout=scaled(60),
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


@pytest.mark.parametrize("fmt", ["json", "protobuf"])
def test_centrifuge_js_reconstructs_every_publication(server: ServerProcess, fmt: str) -> None:
    channel = f"doc:js-{fmt}"
    out = run_node("delta.mjs", str(server.port), fmt, channel, KEY)
    assert out["error"] is None, out["error"]
    expected = [p["data"] for p in out["published"]]
    assert expected == [document(n) for n in range(10)]
    assert [p["delta"] for p in out["published"]] == MARKS
    assert out["got"]["withDelta"] == expected
    assert out["got"]["plain"] == expected
    assert out["extra"] == 0
    stats = out["stats"]
    assert (stats["numFullPayloads"], stats["numDeltaPayloads"]) == (
        KINDS.count("full"),
        KINDS.count("delta"),
    )
    assert stats["bytesReceived"] < stats["bytesDecoded"] * 0.7  # half come as deltas
    assert out["plainStats"]["numPublications"] == 0  # no delta negotiated: not counted
    assert out["subscribed"][-1] == {"wasRecovering": True, "recovered": True}
    assert out["accepted"] >= 2


def compat_cases() -> list[tuple[bytes, bytes, bool]]:
    """(source, target, as JSON) pairs: JSON documents with multi-byte characters changed
    in small and large ways (sent as the JSON protocol does), and bytes of any kind."""
    rng = random.Random(14)
    cases: list[tuple[bytes, bytes, bool]] = []
    alphabet = 'ab:{}[]," é€𝄞ü©'
    for _ in range(60):
        doc = {"k": "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 400)))}
        text = json.dumps(doc, ensure_ascii=False)
        edited = list(text[5:-2])
        for _ in range(rng.randrange(0, 6)):
            at = rng.randrange(0, len(edited) + 1)
            edited[at : at + rng.randrange(0, 5)] = rng.choices(alphabet.replace('"', ""), k=3)
        target = json.dumps({"k": "".join(edited).replace("\\", "")}, ensure_ascii=False)
        cases.append((text.encode(), target.encode(), True))
    for n in range(5):
        cases.append((json.dumps(document(n)).encode(), json.dumps(document(n + 1)).encode(), True))
    for _ in range(60):
        source = rng.randbytes(rng.randrange(0, 600))
        target = bytearray(source)
        for _ in range(rng.randrange(0, 6)):
            at = rng.randrange(0, len(target) + 1)
            target[at : at + rng.randrange(0, 20)] = rng.randbytes(rng.randrange(0, 20))
        cases.append((source, bytes(target), False))
    cases += [(b"", b"", False), (b"", b"new", False), (b"old", b"", False)]
    return cases


def test_centrifuge_js_applies_hubbubs_deltas() -> None:
    cases = compat_cases()
    payload = [
        {
            "source": base64.b64encode(source).decode(),
            "delta": base64.b64encode(fossil.create(source, target)).decode(),
            "json": as_json,
        }
        for source, target, as_json in cases
    ]
    results = run_node("fossil.mjs", stdin=json.dumps(payload).encode())
    assert len(results) == len(cases)
    for (source, target, _), result in zip(cases, results, strict=True):
        assert "error" not in result, (source, target, result)
        assert base64.b64decode(result["target"]) == target
