"""``GET /metrics``: Prometheus text format, read from the node's counters at scrape time.

Nothing is counted per delivery for this: the collector reads the totals the node keeps
anyway, so the fan-out path pays nothing for metrics. With ``--workers N`` each worker answers
for itself (scrape each worker or aggregate in Prometheus).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hubbub.engines.base import Monitored
from hubbub.node import Node

METRICS_NODE: Final = web.AppKey("metrics_node", Node)
METRICS_REGISTRY: Final = web.AppKey("metrics_registry", CollectorRegistry)


class NodeCollector(Collector):
    def __init__(self, node: Node) -> None:
        self.node = node

    def collect(self) -> Iterator[Metric]:
        node = self.node
        broker = node.broker
        yield CounterMetricFamily(
            "hubbub_publications", "Publications fanned out by this node.", value=node.publications
        )
        yield CounterMetricFamily(
            "hubbub_deliveries",
            "Messages handed to subscribers by this node.",
            value=node.deliveries,
        )
        monitored = broker if isinstance(broker, Monitored) else None
        yield CounterMetricFamily(
            "hubbub_engine_errors",
            "Failed engine calls.",
            value=monitored.errors if monitored is not None else 0,
        )
        yield CounterMetricFamily(
            "hubbub_engine_reconnects",
            "Times the engine connection was restored.",
            value=monitored.reconnects if monitored is not None else 0,
        )
        connected = 1 if monitored is None or monitored.connected else 0
        yield GaugeMetricFamily(
            "hubbub_engine_connected", "1 while the engine is reachable.", value=connected
        )
        yield GaugeMetricFamily(
            "hubbub_connections", "Open connections.", value=node.connection_count
        )
        yield GaugeMetricFamily(
            "hubbub_clients", "Connected channel-protocol clients.", value=node.client_count
        )
        yield GaugeMetricFamily("hubbub_users", "Distinct users connected.", value=node.user_count)
        yield GaugeMetricFamily(
            "hubbub_channels", "Channels with local subscribers.", value=len(node.channels())
        )
        yield GaugeMetricFamily(
            "hubbub_subscriptions", "Local subscriptions.", value=node.subscription_count()
        )


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS_REGISTRY])
    return web.Response(
        body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
    )


def add_routes(app: web.Application, node: Node) -> None:
    registry = CollectorRegistry()
    registry.register(NodeCollector(node))
    app[METRICS_NODE] = node
    app[METRICS_REGISTRY] = registry
    app.router.add_get("/metrics", metrics)
