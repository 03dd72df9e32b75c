"""Service-standard alerts: what in the live ACD breaks the center's standards right now.

Pure (no I/O): `StandardsMonitor.check(now, agents, waiting, queue_names)` returns the alerts that became
true since the last check. Each occurrence is raised once: an agent's hold, ACW or talk (keyed by
the agent and when that state began), a caller's wait (keyed by the call), and a queue's service
level under target in the current interval (once per queue and interval, only after
`min_calls_for_service_level` calls have left the queue in that interval, so that one early
abandon does not page a supervisor).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from controller.acd.model import AgentStanding, AgentView, WaitingCallView
from controller.reports.kpis import Standards

AlertKind = Literal["hold", "acw", "talk", "wait", "service_level"]

#: Which agent state each per-agent standard limits, and which field of `Standards` holds the limit (an agent in
#: another state is never alerted on: `check` may be given only the agents in these states).
AGENT_LIMITS: dict[str, tuple[AlertKind, str]] = {
    "on_hold": ("hold", "max_hold_seconds"),
    "acw": ("acw", "max_acw_seconds"),
    "talking": ("talk", "max_talk_seconds"),
}


@dataclass(frozen=True, slots=True)
class Alert:
    kind: AlertKind
    subject: str  # the agent id, call id or queue name
    value: float  # seconds, or the service level (0..1)
    threshold: float
    queue: str | None = None
    agent_id: str | None = None
    call_id: str | None = None


@dataclass
class _IntervalCounts:
    start: float
    left: int = 0
    within: int = 0


class StandardsMonitor:
    def __init__(self, standards: Standards, *, interval_seconds: float = 1800,
                 min_calls_for_service_level: int = 5) -> None:
        self.standards = standards
        self.interval_seconds = interval_seconds
        self.min_calls = min_calls_for_service_level
        self._raised: set[tuple[str, str, float]] = set()
        self._intervals: dict[str, _IntervalCounts] = {}

    def interval_of(self, now: float) -> float:
        return now - now % self.interval_seconds

    def call_left(self, queue: str, now: float, *, answered_within: bool) -> None:
        """Count a call that left `queue` (for the current interval's service level)."""
        counts = self._counts(queue, now)
        counts.left += 1
        counts.within += 1 if answered_within else 0

    def _counts(self, queue: str, now: float) -> _IntervalCounts:
        start = self.interval_of(now)
        counts = self._intervals.get(queue)
        if counts is None or counts.start != start:
            counts = self._intervals[queue] = _IntervalCounts(start)
        return counts

    def _once(self, kind: str, subject: str, since: float) -> bool:
        key = (kind, subject, since)
        if key in self._raised:
            return False
        self._raised.add(key)
        return True

    def check(self, now: float, agents: Iterable[AgentView | AgentStanding], waiting: Iterable[WaitingCallView],
              queue_names: Iterable[str] = ()) -> list[Alert]:
        """The alerts that became true: `agents` (those in a state of `AGENT_LIMITS` at least), the calls `waiting`
        in queues, and every queue's name (its service level in the current interval)."""
        alerts: list[Alert] = []
        live: set[tuple[str, str, float]] = set()
        for agent in agents:
            limit = AGENT_LIMITS.get(agent.state)
            if limit is None or agent.since is None:
                continue
            kind, field_name = limit
            threshold = float(getattr(self.standards, field_name))
            live.add((kind, agent.id, agent.since))
            elapsed = now - agent.since
            if elapsed > threshold and self._once(kind, agent.id, agent.since):
                alerts.append(Alert(kind, agent.id, round(elapsed, 1), threshold, agent_id=agent.id,
                                    call_id=agent.current_call))
        for call in waiting:
            live.add(("wait", call.call_id, 0.0))
            if call.waited > self.standards.max_wait_seconds and self._once("wait", call.call_id, 0.0):
                alerts.append(Alert("wait", call.call_id, round(call.waited, 1), self.standards.max_wait_seconds,
                                    queue=call.queue, call_id=call.call_id))
        interval = self.interval_of(now)
        for name in queue_names:
            counts = self._counts(name, now)
            live.add(("service_level", name, interval))
            if counts.left < self.min_calls:
                continue
            level = counts.within / counts.left
            if level < self.standards.service_level_target and self._once("service_level", name, interval):
                alerts.append(Alert("service_level", name, round(level, 4),
                                    self.standards.service_level_target, queue=name))
        self._raised &= live  # forget occurrences that are over (the next one alerts again)
        return alerts
