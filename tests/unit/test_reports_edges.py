"""KPIs, the live service level and Erlang staffing at their boundaries: values exactly at a
threshold, figures where rounding choices differ, and time zones whose offset is not whole hours.

Each test names the bug it guards (issue 21: the older tests' figures happened to agree with it).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from controller.acd.engine import AcdEngine
from controller.acd.model import AgentSettings, QueueSettings
from controller.clock import FakeClock
from controller.reports import erlang
from controller.reports.kpis import CallFact, Standards, compute_report, interval_start

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 24, 10, 0, tzinfo=TZ).timestamp()
END = START + 3600


def answered(call_id: str, wait: float, **extra: float) -> CallFact:
    return CallFact(call_id, "q", "A", START + 60, "answered", wait, **extra)  # type: ignore[arg-type]


def abandoned(call_id: str, wait: float) -> CallFact:
    return CallFact(call_id, "q", None, START + 60, "abandoned", wait)


def row(calls: list[CallFact], standards: Standards | None = None) -> dict[str, object]:
    (only,) = compute_report(calls, [], start=START, end=END, standards=standards or Standards())
    return only.as_dict()


def test_report_service_level_counts_an_answer_at_exactly_the_threshold() -> None:
    """Guards: the report's service level `<=` made `<` (or the threshold moved)."""
    standards = Standards(service_level_seconds=20)
    assert row([answered("c1", 20.0), answered("c2", 20.5)], standards)["service_level"] == 0.5
    assert row([answered("c1", 19.9), answered("c2", 20.0)], standards)["service_level"] == 1.0


def test_a_short_abandon_is_strictly_shorter_than_the_threshold() -> None:
    """Guards: short abandons `<` made `<=`: a caller who waited exactly the threshold is a real abandon."""
    result = row([abandoned("c1", 5.0), abandoned("c2", 4.9), answered("c3", 3.0)],
                 Standards(short_abandon_seconds=5))
    assert (result["offered"], result["short_abandons"], result["abandoned"]) == (3, 1, 1)
    assert result["abandon_rate"] == 0.5  # 1 / (3 − 1)
    assert result["answer_rate"] == 0.5


def test_breaches_are_strictly_over_the_limit() -> None:
    at_limit = answered("c1", 600.0, talk_seconds=180.0, acw_seconds=60.0, hold_seconds=30.0)
    over = answered("c2", 600.5, talk_seconds=180.5, acw_seconds=60.5, hold_seconds=30.5)
    assert row([at_limit])["breaches"] == {"talk": 0, "acw": 0, "hold": 0, "wait": 0}
    assert row([at_limit, over])["breaches"] == {"talk": 1, "acw": 1, "hold": 1, "wait": 1}


def test_live_service_level_counts_an_answer_at_exactly_the_threshold() -> None:
    """Guards: the engine's live service level `<=` made `<` (queue stats and the wallboard)."""
    clock = FakeClock(1000.0)
    acd = AcdEngine([QueueSettings("q", service_level_seconds=20, announce_interval=0, ring_timeout=60)],
                    [AgentSettings("a1", "A", "1", "8001", queues={"q": 0})], clock)
    acd.login("a1", ready=False)
    acd.enqueue("on-time", "q")
    clock.advance(20)
    acd.ready("a1")
    acd.answered("on-time", "a1")
    assert (acd.queue_stats("q").answered_within_sl, acd.queue_stats("q").service_level) == (1, 1.0)
    acd.call_ended("a1")
    acd.end_acw("a1")
    acd.not_ready("a1", "meal")
    acd.enqueue("late", "q")
    clock.advance(20.5)
    acd.ready("a1")
    acd.answered("late", "a1")
    stats = acd.queue_stats("q")
    assert (stats.answered, stats.answered_within_sl, stats.service_level) == (2, 1, 0.5)


def test_scheduled_staff_rounds_up() -> None:
    """Guards: staff to schedule rounded to the nearest agent (`round`) instead of up (`ceil`):
    10 agents after 30 % shrinkage need 14.3 scheduled, which is 15 people, not 14."""
    assert erlang.scheduled(10, 0.3) == 15
    assert erlang.scheduled(21, 0.3) == 30  # exactly 30 (21 / (1 - 0.3) is 30.000000000000004 in floating point)
    assert erlang.scheduled(9, 0.25) == 12
    assert erlang.scheduled(9, 0.0) == 9
    with pytest.raises(ValueError, match="shrinkage"):
        erlang.scheduled(9, 1.0)
    with pytest.raises(ValueError, match="shrinkage"):
        erlang.scheduled(9, -0.1)


def test_hourly_intervals_follow_a_time_zone_with_a_non_whole_hour_offset() -> None:
    """Guards: the interval floored in the host's zone (UTC here) instead of the report's: with
    Asia/Kathmandu (+05:45) an hour starts at :00 local, which is :15 UTC."""
    kathmandu = ZoneInfo("Asia/Kathmandu")
    moment = datetime(2026, 11, 24, 10, 50, tzinfo=kathmandu).timestamp()
    assert interval_start(moment, 60, kathmandu) == datetime(2026, 11, 24, 10, 0, tzinfo=kathmandu).timestamp()
    assert interval_start(moment, 15, kathmandu) == datetime(2026, 11, 24, 10, 45, tzinfo=kathmandu).timestamp()
    assert interval_start(moment, None, kathmandu) is None
    rows = compute_report([CallFact("c1", "q", None, moment, "answered", 1)], [], start=moment - 7200,
                          end=moment + 7200, interval_minutes=60, tz="Asia/Kathmandu")
    assert [r.interval_start for r in rows] == [datetime(2026, 11, 24, 10, 0, tzinfo=kathmandu).timestamp()]
