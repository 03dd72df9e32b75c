"""Service-standard alerts: each breach raised once, again for the next occurrence, SL per interval."""

from __future__ import annotations

from controller.acd.alerts import StandardsMonitor
from controller.acd.model import AgentView, WaitingCallView
from controller.reports.kpis import Standards


def agent(agent_id: str, state: str, since: float, call: str | None = "call-1") -> AgentView:
    return AgentView(id=agent_id, name="", number=agent_id, state=state, reason=None,  # type: ignore[arg-type]
                     since=since, endpoint="8001", logged_in_at=0.0, idle_since=None, calls_answered=0,
                     current_call=call, online_seconds=0.0, seconds_by_state={})


def waiting(call_id: str, waited: float) -> WaitingCallView:
    return WaitingCallView(call_id, "general", 1, 0, 0, waited, "waiting", (), {})


def test_agent_standards_raise_once_per_occurrence() -> None:
    monitor = StandardsMonitor(Standards())
    assert monitor.check(100.0, [agent("1001", "on_hold", 80.0)], []) == []  # 20 s ≤ 30 s
    (hold,) = monitor.check(111.0, [agent("1001", "on_hold", 80.0)], [])
    assert (hold.kind, hold.subject, hold.value, hold.threshold, hold.call_id) == ("hold", "1001", 31.0, 30.0,
                                                                                  "call-1")
    assert monitor.check(150.0, [agent("1001", "on_hold", 80.0)], []) == []  # already raised
    # Back to talking (from 150), then a second hold that is too long again: a new alert.
    assert monitor.check(160.0, [agent("1001", "talking", 150.0)], []) == []
    (again,) = monitor.check(200.0, [agent("1001", "on_hold", 165.0)], [])
    assert again.kind == "hold" and again.value == 35.0
    (acw,) = monitor.check(300.0, [agent("1002", "acw", 230.0, call=None)], [])
    assert (acw.kind, acw.value, acw.threshold) == ("acw", 70.0, 60.0)
    (talk,) = monitor.check(400.0, [agent("1003", "talking", 210.0)], [])
    assert (talk.kind, talk.value, talk.threshold) == ("talk", 190.0, 180.0)
    assert monitor.check(400.0, [agent("1004", "ready", 0.0), agent("1005", "not_ready", 0.0)], []) == []


def test_long_wait_is_raised_once() -> None:
    monitor = StandardsMonitor(Standards(max_wait_seconds=600))
    assert monitor.check(0.0, [], [waiting("c1", 599.0)]) == []
    (alert,) = monitor.check(2.0, [], [waiting("c1", 601.0), waiting("c2", 10.0)])
    assert (alert.kind, alert.call_id, alert.queue) == ("wait", "c1", "general")
    assert monitor.check(3.0, [], [waiting("c1", 602.0)]) == []


def test_service_level_under_target_in_the_interval() -> None:
    monitor = StandardsMonitor(Standards(service_level_target=0.8), interval_seconds=1800,
                               min_calls_for_service_level=5)
    for within in (True, True, True, False):
        monitor.call_left("general", 10.0, answered_within=within)
    assert monitor.check(20.0, [], [], ["general"]) == []  # 4 calls: too few to judge
    monitor.call_left("general", 30.0, answered_within=False)  # 3 / 5 = 60 %
    (alert,) = monitor.check(40.0, [], [], ["general"])
    assert (alert.kind, alert.subject, alert.value, alert.threshold) == ("service_level", "general", 0.6, 0.8)
    assert monitor.check(50.0, [], [], ["general"]) == []  # once per interval
    # The next interval starts from zero.
    for _ in range(5):
        monitor.call_left("general", 1900.0, answered_within=True)
    assert monitor.check(1900.0, [], [], ["general"]) == []
