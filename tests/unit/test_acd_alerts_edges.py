"""Service-standard alerts at their boundaries: a value exactly at the limit raises nothing, the
alert carries every field, the defaults, and the service level's interval starting afresh."""

from __future__ import annotations

from controller.acd.alerts import Alert, StandardsMonitor
from controller.acd.model import AgentView, WaitingCallView
from controller.reports.kpis import Standards


def agent(agent_id: str, state: str, since: float, call: str | None = "call-1") -> AgentView:
    return AgentView(id=agent_id, name="", number=agent_id, state=state, reason=None,  # type: ignore[arg-type]
                     since=since, endpoint="8001", logged_in_at=0.0, idle_since=None, calls_answered=0,
                     current_call=call, online_seconds=0.0, seconds_by_state={})


def waiting(call_id: str, waited: float, queue: str = "general") -> WaitingCallView:
    return WaitingCallView(call_id, queue, 1, 0, 0, waited, "waiting", (), {})


def test_agent_limits_are_strictly_exceeded_and_alerts_carry_every_field() -> None:
    monitor = StandardsMonitor(Standards(max_hold_seconds=30))
    # a ready agent first: skipped, and the check goes on to the next
    at_limit = [agent("1000", "ready", 0.0), agent("1001", "on_hold", 70.0)]
    assert monitor.check(100.0, at_limit, []) == []  # exactly 30 s
    assert monitor.check(100.27, at_limit, []) == [
        Alert("hold", "1001", 30.3, 30.0, queue=None, agent_id="1001", call_id="call-1")]


def test_wait_limit_is_strictly_exceeded_and_the_alert_carries_every_field() -> None:
    monitor = StandardsMonitor(Standards(max_wait_seconds=600))
    assert monitor.check(0.0, [], [waiting("c1", 600.0)]) == []
    assert monitor.check(1.0, [], [waiting("c1", 600.27, queue="vip")]) == [
        Alert("wait", "c1", 600.3, 600.0, queue="vip", agent_id=None, call_id="c1")]


def test_service_level_defaults_boundary_and_each_interval_counted_afresh() -> None:
    monitor = StandardsMonitor(Standards(service_level_target=0.8))  # 30-minute intervals, at least 5 calls
    for within in (True, True, True, True):
        monitor.call_left("general", 10.0, answered_within=within)
    monitor.call_left("general", 1799.0, answered_within=False)  # 4 / 5 = 80 %: on target, no alert
    assert monitor.check(1799.0, [], [], ["quiet", "general"]) == []
    for within in (True, False, False):  # 1800 is a new interval: 1 / 3, but too few calls to judge
        monitor.call_left("general", 1800.0, answered_within=within)
    assert monitor.check(1800.0, [], [], ["general"]) == []
    monitor.call_left("general", 1810.0, answered_within=True)
    monitor.call_left("general", 1810.0, answered_within=True)  # 3 / 5 in this interval (4 / 5 + 3 / 5 overall)
    assert monitor.check(1810.0, [], [], ["quiet", "general"]) == [
        Alert("service_level", "general", 0.6, 0.8, queue="general", agent_id=None, call_id=None)]
    assert monitor.check(1811.0, [], [], ["general"]) == []  # once per interval
    for within in (True, False, False, True, False, False):  # the next interval: 2 / 6, alerted again
        monitor.call_left("general", 3600.0, answered_within=within)
    assert monitor.check(3600.0, [], [], ["general"]) == [
        Alert("service_level", "general", 0.3333, 0.8, queue="general")]


def test_the_minimum_number_of_calls_before_judging_is_five_by_default() -> None:
    monitor = StandardsMonitor(Standards(service_level_target=0.8))
    for _ in range(4):
        monitor.call_left("general", 0.0, answered_within=False)
    assert monitor.check(0.0, [], [], ["general"]) == []
    monitor.call_left("general", 0.0, answered_within=False)
    assert [a.value for a in monitor.check(0.0, [], [], ["general"])] == [0.0]
