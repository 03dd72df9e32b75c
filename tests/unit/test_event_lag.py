"""The ARI event lag histogram (`ccc_ari_event_lag_seconds`): every event's age when read, in buckets."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from controller.ari.events import LAG_BUCKETS, _event_lag
from controller.ari.models import parse_event
from controller.plugins.metrics.resources import event_lag_histogram


def test_an_events_lag_is_read_from_asterisks_timestamp() -> None:
    event = parse_event({"type": "StasisEnd", "timestamp": "2026-11-26T15:46:49.228+0000",
                         "channel": {"id": "c1", "name": "PJSIP/x", "state": "Up"}})
    assert _event_lag(event, 1795708009.228 + 0.030) == pytest.approx(0.030, abs=1e-6)
    broken = parse_event({"type": "StasisEnd", "timestamp": "yesterday", "channel": {"id": "c1"}})
    assert _event_lag(broken, 0.0) is None  # no lag rather than an error


class LagOnly:
    def __init__(self, stream: object) -> None:
        self.stream = stream

    def collect(self) -> list[object]:
        return [event_lag_histogram(self.stream)]  # type: ignore[arg-type]


def test_the_histogram_counts_each_event_in_its_bucket_cumulatively() -> None:
    counts = [0] * (len(LAG_BUCKETS) + 1)
    counts[0], counts[4], counts[-1] = 5, 2, 1  # <= 1 ms, <= 25 ms, above 5 s
    stream = SimpleNamespace(lag_counts=counts, lag_sum=6.0)
    registry = CollectorRegistry()
    registry.register(LagOnly(stream))
    text = generate_latest(registry).decode()
    assert 'ccc_ari_event_lag_seconds_bucket{le="0.001"} 5.0' in text
    assert 'ccc_ari_event_lag_seconds_bucket{le="0.01"} 5.0' in text  # cumulative
    assert 'ccc_ari_event_lag_seconds_bucket{le="0.025"} 7.0' in text
    assert 'ccc_ari_event_lag_seconds_bucket{le="+Inf"} 8.0' in text
    assert "ccc_ari_event_lag_seconds_sum 6.0" in text and "ccc_ari_event_lag_seconds_count 8.0" in text
