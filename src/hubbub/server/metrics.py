"""``GET /metrics``: Prometheus text format, read from the node's counters at scrape time.

Nothing is counted per delivery for this: the collector reads the totals the node keeps
anyway, so the fan-out path pays nothing for metrics. The publish-duration histogram
(:mod:`hubbub.core.publishlatency`) costs a publish two clock reads and one bisection;
slow-consumer closes are counted by the connections' flushers (one per loop); the
``process_*`` metrics (:mod:`hubbub.server.processmetrics`) are read from ``/proc`` per scrape.
With ``--workers N`` each worker answers for itself, its own process included (scrape each
worker or aggregate in Prometheus). docs/operations.md lists every metric.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from typing import Final

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from hubbub.engines.base import Monitored
from hubbub.node import Node
from hubbub.outboxconsumer import stats_of
from hubbub.server import httpstream, sending
from hubbub.server.processmetrics import ProcessCollector

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
        yield CounterMetricFamily(
            "hubbub_slow_consumer_closes",
            "Connections closed because their unsent data passed write_buffer_limit.",
            value=slow_closes(),
        )
        outbox = stats_of(node)  # (the outbox consumer's, when outbox_url is set)
        if outbox is not None:
            yield CounterMetricFamily(
                "hubbub_outbox_published",
                "Outbox rows this node published.",
                value=outbox.published,
            )
            yield CounterMetricFamily(
                "hubbub_outbox_refused",
                "Outbox rows this node marked done with an error (bad channel, data not JSON "
                "or too large) instead of publishing them.",
                value=outbox.refused,
            )
            yield CounterMetricFamily(
                "hubbub_outbox_failures",
                "Times this node's outbox consumer lost or could not reach its database.",
                value=outbox.failures,
            )
        latency = HistogramMetricFamily(
            "hubbub_publish_duration_seconds",
            "Seconds from a publish accepted by this node to its publication stored and "
            "handed to fan-out, by source (api, client, hub).",
            labels=["source"],
        )
        for source, histogram in node.publish_latency.histograms.items():
            buckets = [(le_text(b), n) for b, n in histogram.cumulative()]
            latency.add_metric([source.value], buckets, histogram.sum)
        yield latency
        yield from webhook_metrics(node)
        yield from proxy_metrics(node)


def webhook_metrics(node: Node) -> Iterator[Metric]:
    """The webhooks' counters (:mod:`hubbub.webhooks.emitter`); zero while they are off."""
    events = node.events
    emitted = CounterMetricFamily(
        "hubbub_webhook_events_emitted",
        "Webhook events written to the outbox by this node, by type.",
        labels=["type"],
    )
    for kind, n in sorted(events.emitted.items()):
        emitted.add_metric([kind], n)
    yield emitted
    deliverers = events.deliverers
    yield CounterMetricFamily(
        "hubbub_webhook_events_delivered",
        "Webhook events acknowledged (2xx) in requests made by this node.",
        value=sum(d.delivered for d in deliverers),
    )
    yield CounterMetricFamily(
        "hubbub_webhook_events_retried",
        "Webhook events made due again after a failed request by this node.",
        value=sum(d.retried for d in deliverers),
    )
    dropped = CounterMetricFamily(
        "hubbub_webhook_events_dropped",
        "Webhook events given up, by reason (max_age, full, store).",
        labels=["reason"],
    )
    for reason in ("full", "max_age", "store"):
        dropped.add_metric([reason], events.dropped[reason])
    yield dropped
    yield GaugeMetricFamily(
        "hubbub_webhook_outbox_depth",
        "Webhook events waiting in the outbox (every node's; read every few seconds).",
        value=sum(d.depth for d in deliverers),
    )


def proxy_metrics(node: Node) -> Iterator[Metric]:
    """The HTTP proxy's requests (:mod:`hubbub.proxy.caller`) by kind and outcome, and how
    long they took by kind."""
    stats = node.proxy.stats
    requests = CounterMetricFamily(
        "hubbub_proxy_requests",
        "Proxy requests by kind (connect, refresh, subscribe, publish, sub_refresh, rpc) and "
        "outcome (ok, error, disconnect, timeout, unavailable, malformed, cancelled).",
        labels=["kind", "outcome"],
    )
    for (kind, outcome), count in stats.counts.items():
        requests.add_metric([kind, outcome], count)
    yield requests
    durations = HistogramMetricFamily(
        "hubbub_proxy_duration_seconds", "Seconds proxy requests took, by kind.", labels=["kind"]
    )
    for kind, histogram in stats.durations.items():
        buckets = [(le_text(b), n) for b, n in histogram.cumulative()]
        durations.add_metric([kind], buckets, histogram.sum)
    yield durations


def le_text(bound: float) -> str:
    """A bucket bound as Prometheus writes ``le``: ``+Inf``, ``0.005``, ``2.5e-05``, ``1``."""
    return "+Inf" if math.isinf(bound) else format(bound, "g")


def slow_closes() -> int:
    """Slow-consumer closes of the running loop's WebSockets and HTTP streams (0 outside a
    loop)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return 0
    return sending.flusher_for(loop).slow_closes + httpstream.flusher_for(loop).slow_closes


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS_REGISTRY])
    return web.Response(
        body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
    )


def add_routes(app: web.Application, node: Node) -> None:
    registry = CollectorRegistry()
    registry.register(NodeCollector(node))
    registry.register(ProcessCollector())
    app[METRICS_NODE] = node
    app[METRICS_REGISTRY] = registry
    app.router.add_get("/metrics", metrics)
