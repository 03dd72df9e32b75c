"""Prometheus metrics at /metrics (text exposition format), read at scrape time.

Values are collected when Prometheus scrapes, from the live objects, so nothing is updated on
the hot path of a call. Gauges from other plugins (queues, agents) register a callback here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from controller.ari.events import LAG_BUCKETS, EventStream
from controller.http.server import roles

MetricSource = Callable[[], Iterable[Any]]


class LiveCollector(Collector):
    def __init__(self, sources: list[MetricSource]) -> None:
        self.sources = sources

    def collect(self) -> Iterable[Any]:
        for source in self.sources:
            yield from source()


def node_metrics(app: Any) -> Iterable[Any]:
    """Per Asterisk node (README "Several Asterisk servers"): up, calls, times it went down."""
    up = GaugeMetricFamily("ccc_node_up", "1 while the node's ARI event stream is connected", labels=["node"])
    down = CounterMetricFamily("ccc_node_down", "Times the node was declared down", labels=["node"])
    calls = GaugeMetricFamily("ccc_node_calls", "Calls under the controller's control on the node", labels=["node"])
    by_node = app.calls.counts_by_node()
    for node in app.nodes:
        up.add_metric([node.name], 1 if node.connected else 0)
        down.add_metric([node.name], node.times_down)
        calls.add_metric([node.name], by_node.get(node.name, 0))
    yield from (up, down, calls)


def event_lag_histogram(stream: EventStream) -> HistogramMetricFamily:
    """Every ARI event's age when read (Asterisk's timestamp to our read): its p99 is the event loop's lag."""
    cumulative, buckets = 0, []
    for bound, count in zip((*LAG_BUCKETS, float("inf")), stream.lag_counts, strict=True):
        cumulative += count
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
    return HistogramMetricFamily("ccc_ari_event_lag_seconds", "Age of each ARI event when read",
                                 buckets=buckets, sum_value=stream.lag_sum)


def controller_metrics(app: Any) -> MetricSource:
    """Metrics of the core: calls, the ARI event stream, the store, webhooks."""

    def collect() -> Iterable[Any]:
        calls = GaugeMetricFamily("ccc_calls", "Calls under the controller's control, by state", labels=["state"])
        for state, count in sorted(app.calls.counts_by_state().items()):
            calls.add_metric([state], count)
        yield calls
        yield CounterMetricFamily("ccc_calls_started", "Calls the controller took", value=app.calls.calls_started)
        yield GaugeMetricFamily("ccc_asyncio_tasks", "Tasks of the controller's event loop (a leak grows them)",
                                value=len(asyncio.all_tasks()))
        yield CounterMetricFamily("ccc_calls_recovered", "Calls found left in Stasis and re-adopted",
                                  value=app.calls.recovered)
        pool = app.calls.talk_bridges
        bridges = GaugeMetricFamily("ccc_talk_bridges", "Talk bridges of the pool not in a call's hands, by state",
                                    labels=["state"])
        bridges.add_metric(["idle"], pool.idle_count())
        bridges.add_metric(["draining"], pool.draining_count())
        yield bridges
        taken = CounterMetricFamily("ccc_talk_bridges_taken", "Talk bridges taken by calls, by where they came from",
                                    labels=["source"])
        taken.add_metric(["created"], pool.taken_new)
        taken.add_metric(["reused"], pool.reused)
        yield taken
        yield GaugeMetricFamily("ccc_ari_connected", "1 when the ARI event stream is connected",
                                value=1 if app.stream.connected.is_set() else 0)
        yield CounterMetricFamily("ccc_ari_events", "ARI events received", value=app.stream.events_received)
        events = CounterMetricFamily("ccc_ari_events_by_type", "ARI events received, by type", labels=["type"])
        for event_type, count in sorted(app.stream.events_by_type.items()):
            events.add_metric([event_type], count)
        yield events
        requests = CounterMetricFamily("ccc_ari_requests", "ARI requests sent, by operation", labels=["operation"])
        for operation, count in sorted(app.ari.requests_sent.items()):
            requests.add_metric([operation], count)
        yield requests
        yield event_lag_histogram(app.stream)
        yield CounterMetricFamily("ccc_ari_connections", "Times the event stream (re)connected",
                                  value=app.stream.connections)
        yield from node_metrics(app)
        yield GaugeMetricFamily("ccc_webhook_backlog", "Events not yet delivered to webhooks",
                                value=app.webhooks.backlog())
        yield CounterMetricFamily("ccc_webhook_failures", "Failed webhook delivery attempts",
                                  value=app.webhooks.failures)
        yield CounterMetricFamily("ccc_webhook_dead_lettered", "Events a receiver refused for good (dead letters)",
                                  value=app.webhooks.dead_lettered)
        dead = GaugeMetricFamily("ccc_webhook_dead_letters", "Dead letters waiting for an operator",
                                 labels=["webhook"])
        for name, count in sorted(app.webhooks.dead.items()):
            dead.add_metric([name], count)
        yield dead
        yield CounterMetricFamily("ccc_cti_events", "CTI events published", value=app.events.published)
        yield GaugeMetricFamily("ccc_cti_events_unpersisted", "CTI events waiting for the store (not published yet)",
                                value=app.events.unpersisted)
        yield CounterMetricFamily("ccc_cti_events_refused", "CTI events refused: too many waited for a failing store",
                                  value=app.events.dropped)
        yield CounterMetricFamily("ccc_cti_commit_failures", "Failed commits of CTI events (retried)",
                                  value=app.events.commit_failures)
        yield CounterMetricFamily("ccc_store_writes", "Statements committed to the store", value=app.store.writes)
        yield CounterMetricFamily("ccc_store_commits", "Transactions committed to the store", value=app.store.commits)
        by_kind = CounterMetricFamily("ccc_store_writes_by_kind", "Statements committed to the store, by what they do"
                                      " (statement and table)", labels=["kind"])
        for kind, count in sorted(app.store.writes_by_kind().items()):
            by_kind.add_metric([kind], count)
        yield by_kind
        yield CounterMetricFamily("ccc_store_round_trips", "Jobs handed to the store's thread (commits, reads)",
                                  value=app.store.round_trips)
        store = app.store.health()
        yield GaugeMetricFamily("ccc_store_ok", "1 when the store commits and reads, 0 when degraded",
                                value=1 if store["status"] == "ok" else 0)
        yield GaugeMetricFamily("ccc_store_pending", "Statements waiting to be committed", value=store["pending"])
        yield CounterMetricFamily("ccc_store_commit_failures", "Commits that failed (and were retried)",
                                  value=store["commit_failures"])
        yield CounterMetricFamily("ccc_store_rejected_statements", "Statements that could never succeed (not stored)",
                                  value=store["rejected_statements"])
        yield CounterMetricFamily("ccc_store_read_failures", "Reads the store could not answer",
                                  value=store["read_failures"])
        yield CounterMetricFamily("ccc_caller_history_failures",
                                  "Calls queued without the caller's history (the store could not be read)",
                                  value=app.acd.history_failures)

    return collect


def ivr_metrics(ivr: Any) -> MetricSource:
    """The IVR's back-end requests (http nodes), by flow, node and outcome (ok, timeout, connection_error,
    http_status, bad_answer)."""

    def collect() -> Iterable[Any]:
        requests = CounterMetricFamily("ccc_ivr_http_requests", "IVR http node requests, by outcome",
                                       labels=["flow", "node", "outcome"])
        for (flow, node, outcome), count in sorted(ivr.http_outcomes.items()):
            requests.add_metric([flow, node, outcome], count)
        yield requests

    return collect


def acd_metrics(acd: Any) -> MetricSource:
    """Queues (waiting, longest wait, service level so far) and agents by state, from the ACD engine."""

    def collect() -> Iterable[Any]:
        queues = acd.engine.queues()
        families = {
            "waiting": GaugeMetricFamily("ccc_queue_waiting", "Calls waiting (or ringing an agent)", labels=["queue"]),
            "longest_wait": GaugeMetricFamily("ccc_queue_longest_wait_seconds", "Longest current wait",
                                              labels=["queue"]),
            "agents_ready": GaugeMetricFamily("ccc_queue_agents_ready", "Agents ready for the queue", labels=["queue"]),
            "service_level": GaugeMetricFamily("ccc_queue_service_level",
                                               "Answered within the threshold / calls that left (since start)",
                                               labels=["queue"]),
        }
        outcomes = CounterMetricFamily("ccc_queue_calls", "Calls that left the queue, by outcome",
                                       labels=["queue", "outcome"])
        for stats in queues:
            for name, family in families.items():
                value = getattr(stats, name)
                if value is not None:
                    family.add_metric([stats.name], value)
            for outcome in ("answered", "abandoned", "overflowed"):
                outcomes.add_metric([stats.name, outcome], getattr(stats, outcome))
        yield from families.values()
        yield outcomes
        agents = GaugeMetricFamily("ccc_agents", "Agents by state", labels=["state"])
        for state, count in acd.agents_by_state().items():
            agents.add_metric([state], count)
        yield agents

    return collect


def routes(sources: list[MetricSource]) -> list[web.RouteDef]:
    registry = CollectorRegistry()
    registry.register(LiveCollector(sources))

    @roles("supervisor", "integration")
    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), content_type="text/plain", charset="utf-8",
                            headers={"X-Content-Type-Options": "nosniff"})

    return [web.get("/metrics", metrics)]
