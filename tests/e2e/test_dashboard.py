"""deploy/grafana/hubbub-dashboard.json cannot drift from /metrics: every metric named in
every panel's query is in a real scrape of a running hubbub."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import StartServer
from tests.support.server import ROOT

pytestmark = pytest.mark.e2e

DASHBOARD = ROOT / "deploy" / "grafana" / "hubbub-dashboard.json"

#: PromQL words that are not metric names (functions, aggregations and their modifiers).
PROMQL_WORDS = frozenset({
    "sum", "min", "max", "avg", "count", "rate", "irate", "increase", "histogram_quantile",
    "time", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset",
})  # fmt: skip


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield item
        yield from panels(item.get("panels", []))


def metric_names(expr: str) -> set[str]:
    """The metric names of a PromQL expression: label matchers, ranges, grouping clauses,
    strings, Grafana variables and numbers taken out, what is left that is not PromQL."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", "", text)
    text = re.sub(r"\$\w+", "", text)
    words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", text))
    return words - PROMQL_WORDS


def test_the_query_parser_finds_the_names() -> None:
    """(The helper itself: it must not let a name slip through as a word.)"""
    expr = (
        'histogram_quantile(0.99, sum by (le, source) (rate(hubbub_x_bucket{job=~"$job"}'
        "[$__rate_interval]))) / time() - max by (instance) (process_start_time_seconds)"
    )
    assert metric_names(expr) == {"hubbub_x_bucket", "process_start_time_seconds"}


def dashboard_queries() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    out = []
    for panel in panels(board["panels"]):
        for target in panel.get("targets", []):
            out.append((panel["title"], target["expr"]))
    for var in board["templating"]["list"]:
        if var["type"] == "query":  # label_values(SELECTOR, LABEL): the selector's metric
            match = re.fullmatch(r"label_values\((.+), *(\w+)\)", var["definition"])
            assert match, var["definition"]
            out.append((f"${var['name']}", match.group(1)))
    return out


def test_the_dashboard_is_well_formed() -> None:
    """Unique panel ids, every panel on the data source variable, the panels the issue asks for."""
    board = json.loads(DASHBOARD.read_text())
    all_panels = list(panels(board["panels"]))
    ids = [p["id"] for p in all_panels]
    assert len(ids) == len(set(ids))
    for panel in all_panels:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"], panel["title"]
    queries = " ".join(expr for _, expr in dashboard_queries())
    for needed in (
        "hubbub_connections", "hubbub_subscriptions", "rate(hubbub_publications_total",
        "rate(hubbub_deliveries_total", "histogram_quantile(0.5,", "histogram_quantile(0.99,",
        "hubbub_slow_consumer_closes_total", "process_cpu_seconds_total",
        "process_resident_memory_bytes", "process_open_fds",
    ):  # fmt: skip
        assert needed in queries, needed


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process_* need Linux /proc")
async def test_every_metric_of_the_dashboard_is_scraped(start_server: StartServer) -> None:
    """Every name in every query is a sample name of /metrics (labels used for grouping too)."""
    server = start_server()
    async with aiohttp.ClientSession() as http, http.get(server.url + "/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    scraped: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            scraped.setdefault(sample.name, set()).update(sample.labels)
    for title, expr in dashboard_queries():
        names = metric_names(expr)
        assert names, (title, expr)
        missing = names - scraped.keys()
        assert not missing, f"panel {title!r} queries {sorted(missing)}, not in /metrics"
        for grouping in re.findall(r"\bby\s*\(([^)]*)\)", expr):
            labels = {label.strip() for label in grouping.split(",")} - {"instance", "job"}
            for name in names:
                assert labels <= scraped[name], (title, name, labels)
