"""bench_fullpath's rounds (CCC_BENCH_ROUNDS): the medians it prints and holds against issue 19's targets."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.bench import bench_fullpath as fullpath
from tests.bench.bench_fullpath import Result, Setup, SetupResults, median_result, round_order, summarize_rounds


def result(asterisk_ms: float, controller_ms: float | None = None, failed: int = 0, p99: float | None = 0.01,
           requests: int = 0) -> Result:
    return Result(calls=100, failed=failed, controller_ms=controller_ms, asterisk_ms=asterisk_ms, p50=0.005, p99=p99,
                  requests=Counter({"channels.answer": requests}), load=1.0, window_s=10.0)


def test_median_result_takes_each_figure_median_and_sums_calls_failures_and_counters() -> None:
    row = median_result([result(10.0, 4.0, p99=0.030, requests=100), result(14.0, 9.0, failed=2, p99=None),
                         result(12.0, 5.0, failed=1, p99=0.010, requests=300)])
    assert (row.asterisk_ms, row.controller_ms) == (12.0, 5.0)
    assert row.p99 == pytest.approx(0.020)  # the rounds that measured it
    assert (row.calls, row.failed) == (300, 3)
    assert row.requests == Counter({"channels.answer": 400})
    assert row.window_s == 30.0
    assert median_result([result(10.0), result(12.0)]).controller_ms is None  # app_queue: no controller figure


def rounds_of(app_queue: list[float], controller: list[tuple[float, float]], failed: list[int]) -> list[SetupResults]:
    setup = Setup(100, 2)
    return [SetupResults(setup, app_queue={10: result(base)}, controller={10: result(ast, ctl, failed=f)})
            for base, (ctl, ast), f in zip(app_queue, controller, failed, strict=True)]


def test_summary_ratios_come_from_the_medians_not_from_each_round() -> None:
    # per round, total / app_queue: 14/10 = 1.40, 22/16 = 1.375, 16/12 = 1.33 (their median: 1.375); from the
    # medians (controller 4, its Asterisk 12, app_queue 12): 16/12 = 1.33
    rounds = rounds_of(app_queue=[10.0, 16.0, 12.0], controller=[(3.0, 11.0), (9.0, 13.0), (4.0, 12.0)],
                       failed=[0, 0, 0])
    summary = summarize_rounds(rounds)
    assert summary.app_queue[10].asterisk_ms == 12.0
    assert (summary.controller[10].controller_ms, summary.controller[10].asterisk_ms) == (4.0, 12.0)
    measured = {target: figure for target, figure, _met in fullpath.targets(summary)}
    assert measured["total CPU per call <= 1.3x app_queue's"] == "1.33x"
    assert measured["controller <= 1/4 of Asterisk's CPU"] == "0.33"  # 4 / 12


def test_a_failure_in_any_round_is_summed_and_keeps_the_rate_out_of_the_cpu_targets() -> None:
    summary = summarize_rounds(rounds_of([10.0, 10.0], [(2.0, 10.0), (2.0, 10.0)], failed=[0, 3]))
    assert (summary.controller[10].calls, summary.controller[10].failed) == (200, 3)
    measured = {target: figure for target, figure, _met in fullpath.targets(summary)}
    assert measured["controller CPU per call <= 8 ms"] == "-"
    clean = summarize_rounds(rounds_of([10.0, 10.0], [(2.0, 10.0), (2.0, 10.0)], failed=[0, 0]))
    assert {t: f for t, f, _m in fullpath.targets(clean)}["controller CPU per call <= 8 ms"] == "2.0 ms"


def test_a_rate_a_round_lacks_is_the_median_of_the_rounds_that_have_it() -> None:
    rounds = rounds_of([10.0, 10.0, 10.0], [(2.0, 10.0), (6.0, 10.0), (3.0, 10.0)], failed=[0, 0, 0])
    rounds[1].controller_exit = "the controller exited (code -9) before 10 calls/s"
    del rounds[1].controller[10]
    summary = summarize_rounds(rounds)
    assert summary.controller[10].controller_ms == 2.5
    assert summary.controller[10].calls == 200
    assert summary.controller_exit == "round 2: the controller exited (code -9) before 10 calls/s"


def test_rounds_alternate_the_handlers_order(monkeypatch: pytest.MonkeyPatch) -> None:
    assert round_order(1) == ["app_queue", "controller"]
    assert round_order(2) == ["controller", "app_queue"]
    monkeypatch.setattr(fullpath, "FLOOR", True)
    assert round_order(3) == ["app_queue", "floor", "controller"]
    assert round_order(4) == ["controller", "floor", "app_queue"]
