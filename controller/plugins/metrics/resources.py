"""Prometheus metrics at /metrics (text exposition format), read at scrape time.

Values are collected when Prometheus scrapes, from the live objects, so nothing is updated on
the hot path of a call. Gauges from other plugins (queues, agents) register a callback here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from controller.http.server import roles

MetricSource = Callable[[], Iterable[Any]]


class LiveCollector(Collector):
    def __init__(self, sources: list[MetricSource]) -> None:
        self.sources = sources

    def collect(self) -> Iterable[Any]:
        for source in self.sources:
            yield from source()


def controller_metrics(app: Any) -> MetricSource:
    """Metrics of the core: calls, the ARI event stream, the store, webhooks."""

    def collect() -> Iterable[Any]:
        calls = GaugeMetricFamily("ccc_calls", "Calls under the controller's control, by state", labels=["state"])
        for state, count in sorted(app.calls.counts_by_state().items()):
            calls.add_metric([state], count)
        yield calls
        yield CounterMetricFamily("ccc_calls_started", "Calls the controller took", value=app.calls.calls_started)
        yield CounterMetricFamily("ccc_calls_recovered", "Calls found left in Stasis and re-adopted",
                                  value=app.calls.recovered)
        yield GaugeMetricFamily("ccc_ari_connected", "1 when the ARI event stream is connected",
                                value=1 if app.stream.connected.is_set() else 0)
        yield CounterMetricFamily("ccc_ari_events", "ARI events received", value=app.stream.events_received)
        yield GaugeMetricFamily("ccc_ari_event_lag_seconds", "Age of a recent ARI event when read (sampled)",
                                value=app.stream.last_lag or 0.0)
        yield CounterMetricFamily("ccc_ari_connections", "Times the event stream (re)connected",
                                  value=app.stream.connections)
        yield GaugeMetricFamily("ccc_webhook_backlog", "Events not yet delivered to webhooks",
                                value=app.webhooks.backlog())
        yield CounterMetricFamily("ccc_webhook_failures", "Failed webhook delivery attempts",
                                  value=app.webhooks.failures)
        yield CounterMetricFamily("ccc_cti_events", "CTI events published", value=app.events.published)
        yield CounterMetricFamily("ccc_store_writes", "Statements committed to the store", value=app.store.writes)

    return collect


def routes(sources: list[MetricSource]) -> list[web.RouteDef]:
    registry = CollectorRegistry()
    registry.register(LiveCollector(sources))

    @roles("supervisor", "integration")
    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), content_type="text/plain", charset="utf-8",
                            headers={"X-Content-Type-Options": "nosniff"})

    return [web.get("/metrics", metrics)]
