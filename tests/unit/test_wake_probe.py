"""bench_fullpath's small CPU figures: the machine line (tests/bench/wake_probe.py: the child's CPU per wake-up, and
how it is printed) and a process's CPU to the nanosecond (bench_calls.cpu_seconds)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from tests.bench import wake_probe
from tests.bench.bench_calls import cpu_seconds
from tests.bench.wake_probe import WakeCost, cost_at, describe


def test_cost_at_reports_the_childs_cpu_per_wake_up() -> None:
    cost = cost_at(1.0, wake_ups=5)
    assert cost.spacing_ms == 1.0
    # 20 JSON round trips of an ARI event: tens of microseconds at least, far from a second
    assert 5 < cost.cpu_us < 100_000


def test_describe_gives_each_spacing_and_the_sparse_to_dense_ratio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wake_probe, "halt_poll_ns", lambda: "0")
    line = describe([WakeCost(1.0, 100.0), WakeCost(5.0, 150.0), WakeCost(20.0, 250.0)])
    assert "100 us at 1 ms, 150 us at 5 ms, 250 us at 20 ms apart" in line
    assert "(2.5x when sparse; guest halt-poll 0 ns)" in line


def test_cpu_seconds_counts_a_threads_cpu_to_below_a_clock_tick() -> None:
    def spin() -> None:
        until = time.thread_time() + 0.004  # less than one 10 ms clock tick
        while time.thread_time() < until:
            pass

    before = cpu_seconds(os.getpid())
    worker = threading.Thread(target=spin)
    worker.start()
    worker.join()
    spent = cpu_seconds(os.getpid()) - before
    assert 0.003 < spent < 0.009  # (clock ticks would say 0 or 0.01)
