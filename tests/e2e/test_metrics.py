"""/metrics of a running server: the publish-duration histogram by source and the process_*
metrics of the serving process."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hubbub.hub import Hub
from tests.conftest import StartServer
from tests.support.inprocess import serving

pytestmark = pytest.mark.e2e

KEY = "metrics-key-0123456789"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape: (name, sorted labels) -> value."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with aiohttp.ClientSession() as http, http.get(url + "/metrics") as resp:
        assert resp.status == 200
        return samples(await resp.text())


async def test_publish_durations_are_counted_by_source(tmp_path: Path) -> None:
    """One publish each from the server API, a raw room member and hub.publish: each counted
    under its source, every bucket rendered (le ascending, +Inf the count)."""
    hub = Hub(port=0, api_key=KEY)
    async with serving(hub, tmp_path) as url, aiohttp.ClientSession() as http:
        before = await scrape(url)
        for source in ("api", "client", "hub"):
            key = ("hubbub_publish_duration_seconds_count", (("source", source),))
            assert before[key] == 0
        async with http.post(
            url + "/api/publish", json={"channel": "m", "data": 1}, headers={"X-API-Key": KEY}
        ) as resp:
            assert resp.status == 200
        ws_url = "ws" + url[len("http") :] + "/rooms/lobby"
        async with http.ws_connect(ws_url) as a, http.ws_connect(ws_url) as b:
            await a.send_str("hi")
            assert (await b.receive()).data == "hi"
        await hub.publish("m", {"n": 2})
        await hub.publish("m", {"n": 3})
        after = await scrape(url)
    counts = {
        source: after[("hubbub_publish_duration_seconds_count", (("source", source),))]
        for source in ("api", "client", "hub")
    }
    assert counts == {"api": 1, "client": 1, "hub": 2}
    hub_buckets = sorted(
        (float(dict(labels)["le"]), value)
        for (name, labels), value in after.items()
        if name == "hubbub_publish_duration_seconds_bucket" and dict(labels)["source"] == "hub"
    )
    assert len(hub_buckets) == 19 and hub_buckets[-1] == (float("inf"), 2)
    assert [v for _, v in hub_buckets] == sorted(v for _, v in hub_buckets)  # cumulative
    hub_sum = after[("hubbub_publish_duration_seconds_sum", (("source", "hub"),))]
    assert 0 < hub_sum < 10  # seconds, two SQLite appends


def lower_nofile() -> None:
    resource.setrlimit(
        resource.RLIMIT_NOFILE, (1000, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    )


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
async def test_process_metrics_describe_the_serving_process(start_server: StartServer) -> None:
    """The server's own process: its open-file limit (lowered to 1000 for it alone), its start,
    its memory and descriptors."""
    started = time.time()
    server = start_server(preexec_fn=lower_nofile)
    values = {name: value for (name, labels), value in (await scrape(server.url)).items()}
    assert values["process_max_fds"] == 1000
    assert started - 5 <= values["process_start_time_seconds"] <= time.time() + 1
    assert values["process_resident_memory_bytes"] > 10 * 2**20
    assert values["process_virtual_memory_bytes"] >= values["process_resident_memory_bytes"]
    assert 0 < values["process_cpu_seconds_total"] < 600
    assert values["process_open_fds"] >= 5  # listening socket, SQLite, the scrape
    assert values["hubbub_slow_consumer_closes_total"] == 0
