"""A day in the call center, simulated: the real routing engine on a fake clock, driven by random
callers and agents, so a supervisor can compare routing settings before changing them.

Discrete events, no I/O: callers arrive as a Poisson process whose rate changes per interval; each
has a patience (exponential: they hang up after it unless answered); agents log in and out by their
shift, answer a ringing phone after `answer_seconds`, talk for a log-normal time and then wrap up as
the queue says. The engine decides everything else — who rings, escalation, wrap-up, maximum wait,
announcements — exactly as in production.

Besides the day's KPIs (service level, ASA, abandon rate, occupancy), each announcement's wait
estimate is compared with the wait that followed (for the callers who were answered), and so is
the former estimate (position × a moving average of handle times ÷ logged-in agents).
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from controller.acd.engine import AcdEngine
from controller.acd.model import (
    AgentSettings,
    Announce,
    CallLeft,
    CancelOffer,
    Decision,
    EscalationStep,
    Offer,
    QueueSettings,
    Strategy,
)
from controller.clock import FakeClock

__all__ = ["DayResult", "Scenario", "Shift", "default_scenario", "estimate_lines", "results_table", "simulate"]

BUSY_STATES = ("ringing", "talking", "on_hold", "acw")
LONG_WAIT = 30.0  # the estimates' error is also given for the announcements followed by a wait this long
DAY_START = 1_800_000_000.0  # the fake clock's origin (any fixed moment; only differences matter)


@dataclass(frozen=True)
class Shift:
    """An agent working from `start` to `end` (seconds after the day's first interval starts)."""

    agent: AgentSettings
    start: float
    end: float
    talk_factor: float = 1.0  # this agent's talk times against the scenario's mean (an expert is quicker)


@dataclass(frozen=True)
class Scenario:
    queue: QueueSettings
    shifts: Sequence[Shift]
    calls_per_interval: Sequence[float]  # expected arrivals in each interval, from the start
    interval_seconds: float = 1800.0
    talk_seconds: float = 180.0  # mean talk time
    talk_cv: float = 0.8  # its coefficient of variation (log-normal)
    patience_seconds: float = 120.0  # mean patience (exponential); 0: nobody hangs up while waiting
    answer_seconds: float = 3.0  # an agent picks up a ringing phone after this long
    seed: int = 1


@dataclass
class DayResult:
    strategy: str  # (or any label of the variant simulated)
    offered: int = 0
    answered: int = 0
    answered_within_sl: int = 0
    abandoned: int = 0
    overflowed: int = 0
    waits: list[float] = field(default_factory=list)  # of answered calls
    busy_seconds: dict[str, float] = field(default_factory=dict)  # per agent: ringing, talking, hold, ACW
    ready_seconds: dict[str, float] = field(default_factory=dict)  # per agent: ready, waiting for a call
    calls_by_agent: dict[str, int] = field(default_factory=dict)
    # (announced estimate, the wait that followed), seconds, of the callers then answered; and the same for
    # the former formula
    estimates: list[tuple[float, float]] = field(default_factory=list)
    former_estimates: list[tuple[float, float]] = field(default_factory=list)

    @property
    def service_level(self) -> float | None:
        left = self.answered + self.abandoned + self.overflowed
        return self.answered_within_sl / left if left else None

    @property
    def asa(self) -> float | None:
        return statistics.fmean(self.waits) if self.waits else None

    @property
    def abandon_rate(self) -> float | None:
        return self.abandoned / self.offered if self.offered else None

    def occupancy(self, agents: Sequence[str] | None = None) -> float | None:
        """Busy time ÷ (busy + ready) time, of these agents (default: all)."""
        names = list(self.busy_seconds) if agents is None else list(agents)
        busy = sum(self.busy_seconds.get(a, 0.0) for a in names)
        ready = sum(self.ready_seconds.get(a, 0.0) for a in names)
        return busy / (busy + ready) if busy + ready else None

    def add(self, other: DayResult) -> None:
        """Pool another day's result into this one (counts summed; waits, errors and agents' times pooled)."""
        self.offered += other.offered
        self.answered += other.answered
        self.answered_within_sl += other.answered_within_sl
        self.abandoned += other.abandoned
        self.overflowed += other.overflowed
        self.waits += other.waits
        self.estimates += other.estimates
        self.former_estimates += other.former_estimates
        for mine, theirs in ((self.busy_seconds, other.busy_seconds), (self.ready_seconds, other.ready_seconds)):
            for agent, seconds in theirs.items():
                mine[agent] = mine.get(agent, 0.0) + seconds
        for agent, count in other.calls_by_agent.items():
            self.calls_by_agent[agent] = self.calls_by_agent.get(agent, 0) + count

    def as_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "offered": self.offered, "answered": self.answered,
                "abandoned": self.abandoned, "overflowed": self.overflowed, "service_level": self.service_level,
                "asa_seconds": self.asa, "abandon_rate": self.abandon_rate, "occupancy": self.occupancy(),
                "calls_by_agent": dict(self.calls_by_agent),
                "occupancy_by_agent": {a: self.occupancy([a]) for a in self.busy_seconds},
                "estimate_error": error_summary(self.estimates),
                "estimate_error_waits_30s": error_summary(self.estimates, LONG_WAIT),
                "former_estimate_error": error_summary(self.former_estimates),
                "former_estimate_error_waits_30s": error_summary(self.former_estimates, LONG_WAIT)}


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (fraction 0..1) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def error_summary(pairs: Sequence[tuple[float, float]], min_wait: float = 0.0) -> dict[str, float] | None:
    """Of (estimate, actual wait) pairs whose wait was at least `min_wait`: the absolute errors' median and
    90th percentile, and the mean signed error (bias: above 0, estimates too long), in seconds."""
    errors = [estimate - actual for estimate, actual in pairs if actual >= min_wait]
    if not errors:
        return None
    absolute = [abs(e) for e in errors]
    return {"count": len(errors), "median_abs": statistics.median(absolute), "p90_abs": percentile(absolute, 0.9),
            "bias": statistics.fmean(errors)}


class _Day:
    """One simulated day: the engine, its clock, and the events still to come."""

    def __init__(self, scenario: Scenario, strategy: str) -> None:
        self.scenario = scenario
        self.rng = random.Random(scenario.seed)
        self.clock = FakeClock(DAY_START)
        queue = replace(scenario.queue, strategy=strategy)  # type: ignore[arg-type]
        agents = {shift.agent.id: shift.agent for shift in scenario.shifts}
        self.queue = queue.name
        self.engine = AcdEngine([queue], agents.values(), self.clock)
        self.result = DayResult(strategy)
        self.events: list[tuple[float, int, str, str]] = []
        self.seq = itertools.count()
        self.ringing: dict[str, str] = {}  # agent -> call ringing them
        self.leaving: set[str] = set()  # agents whose shift ended during a call
        self.talk_factor = {shift.agent.id: shift.talk_factor for shift in scenario.shifts}
        self.announced: dict[str, list[tuple[float, float, float | None]]] = {}  # call -> (at, estimate, former)
        self.former_handle = 180.0  # the former estimate's moving average of handle times

    def at(self, when: float, kind: str, key: str) -> None:
        heapq.heappush(self.events, (when, next(self.seq), kind, key))

    def plan(self) -> None:
        s = self.scenario
        for shift in s.shifts:
            self.at(DAY_START + shift.start, "login", shift.agent.id)
            self.at(DAY_START + shift.end, "logout", shift.agent.id)
        numbers = itertools.count(1)
        for index, expected in enumerate(s.calls_per_interval):
            start = DAY_START + index * s.interval_seconds
            end = start + s.interval_seconds
            if expected <= 0:
                continue
            moment = start
            while True:
                moment += self.rng.expovariate(expected / s.interval_seconds)
                if moment >= end:
                    break
                self.at(moment, "arrive", f"c{next(numbers)}")

    def run(self) -> DayResult:
        self.plan()
        while True:
            deadline = self.engine.next_deadline()
            if not self.events and deadline is None:
                break
            if self.events and (deadline is None or self.events[0][0] <= deadline):
                when, _, kind, key = heapq.heappop(self.events)
                self._move_to(when)
                self._event(kind, key)
            else:
                self._move_to(deadline or self.clock.now())
                self._apply(self.engine.tick())
        for agent in self.engine.agents():
            self.result.busy_seconds[agent.id] = sum(agent.seconds_by_state.get(s, 0.0) for s in BUSY_STATES)
            self.result.ready_seconds[agent.id] = agent.seconds_by_state.get("ready", 0.0)
        stats = self.engine.queue_stats(self.queue)
        self.result.offered, self.result.answered = stats.offered, stats.answered
        self.result.answered_within_sl, self.result.abandoned = stats.answered_within_sl, stats.abandoned
        self.result.overflowed = stats.overflowed
        return self.result

    def _move_to(self, when: float) -> None:
        if when > self.clock.now():
            self.clock.advance(when - self.clock.now())

    def _event(self, kind: str, key: str) -> None:
        engine, s = self.engine, self.scenario
        if kind == "arrive":
            self._apply(engine.enqueue(key, self.queue))
            if engine.call(key) is not None and s.patience_seconds > 0:
                self.at(self.clock.now() + self.rng.expovariate(1 / s.patience_seconds), "patience", key)
        elif kind == "patience":
            if engine.call(key) is not None:
                self._apply(engine.abandon(key))
        elif kind == "pick_up":
            call = self.ringing.get(key)
            view = engine.call(call) if call is not None else None
            if view is not None and key in view.agents_ringing:
                self._apply(engine.answered(view.call_id, key))
                self.at(self.clock.now() + self._talk_time() * self.talk_factor.get(key, 1.0), "hang_up", key)
        elif kind == "hang_up":
            now = self.clock.now()  # (for the former estimate: talk + wrap-up of this call)
            talked = now - (engine.agent(key).since or now)
            self.former_handle = 0.8 * self.former_handle + 0.2 * (talked + s.queue.wrapup_seconds)
            self._apply(engine.call_ended(key))
            if key in self.leaving:
                self._leave(key)
        elif kind == "login":
            self._apply(engine.login(key))
        elif kind == "logout":
            if engine.agent(key).state in ("talking", "on_hold"):
                self.leaving.add(key)
            else:
                self._leave(key)

    def _leave(self, agent_id: str) -> None:
        """The shift is over: no new call (a ring in progress is let go: RONA), then log out."""
        engine = self.engine
        self.leaving.discard(agent_id)
        call = self.ringing.pop(agent_id, None)
        if call is not None:
            self._apply(engine.no_answer(call, agent_id))
        if engine.agent(agent_id).state in ("ready", "acw"):
            self._apply(engine.not_ready(agent_id, "meeting"))
        if engine.agent(agent_id).state != "logged_out":
            self._apply(engine.logout(agent_id))

    def _talk_time(self) -> float:
        s = self.scenario
        sigma2 = math.log(1 + s.talk_cv ** 2)
        return self.rng.lognormvariate(math.log(s.talk_seconds) - sigma2 / 2, math.sqrt(sigma2))

    def _apply(self, decisions: list[Decision]) -> None:
        now = self.clock.now()
        for decision in decisions:
            if isinstance(decision, Offer):
                self.ringing[decision.agent_id] = decision.call_id
                if self.scenario.answer_seconds < decision.ring_timeout:
                    self.at(now + self.scenario.answer_seconds, "pick_up", decision.agent_id)
            elif isinstance(decision, CancelOffer):
                if self.ringing.get(decision.agent_id) == decision.call_id:
                    del self.ringing[decision.agent_id]
            elif isinstance(decision, Announce) and decision.estimated_wait is not None:
                stats = self.engine.queue_stats(self.queue)
                former = decision.position * self.former_handle / stats.agents_logged_in \
                    if stats.agents_logged_in else None
                self.announced.setdefault(decision.call_id, []).append((now, decision.estimated_wait, former))
            elif isinstance(decision, CallLeft):
                announced = self.announced.pop(decision.call_id, [])
                if decision.outcome != "answered" or decision.agent_id is None:
                    continue
                self.ringing.pop(decision.agent_id, None)
                self.result.waits.append(decision.wait_seconds)
                self.result.calls_by_agent[decision.agent_id] = self.result.calls_by_agent.get(decision.agent_id, 0) + 1
                for at, estimate, former in announced:
                    self.result.estimates.append((estimate, now - at))
                    if former is not None:
                        self.result.former_estimates.append((former, now - at))


def simulate(scenario: Scenario, strategy: str | None = None, *, days: int = 1, label: str | None = None) -> DayResult:
    """Run the day with the queue's strategy replaced by `strategy` (default: the queue's own); with
    `days`, that many days (seeds from the scenario's on) pooled into one result."""
    strategy = strategy or scenario.queue.strategy
    result = DayResult(label or strategy)
    for day in range(days):
        result.add(_Day(replace(scenario, seed=scenario.seed + day), strategy).run())
    return result


#: A weekday's calls per half hour, 08:00-20:00: a morning peak at 10:00, a smaller one at 15:00.
DEFAULT_CALLS = (40, 60, 80, 95, 105, 100, 90, 80, 70, 75, 90, 100, 110, 95, 75, 60, 50, 45, 40, 35, 30, 25, 20, 15)


def default_scenario(*, seed: int = 1, strategy: Strategy = "longest_idle",
                     escalation: Sequence[EscalationStep] = ()) -> Scenario:
    """A support line, 08:00-20:00: 4 experts (level 9, 20 % quicker), 8 regular agents (level 6) and
    6 juniors (level 3, 25 % slower), two thirds of each team on the early shift (08:00-16:00), the
    others on the late one (12:00-20:00); 3-minute calls on average, 30 s wrap-up; callers' patience
    2.5 minutes on average."""
    queue = QueueSettings("support", strategy=strategy, skills={"support": 1}, wrapup_seconds=30.0, ring_timeout=15,
                          max_wait=600, announce_interval=30, no_agents="wait", escalation=tuple(escalation))
    shifts = []
    teams = (("expert", 9, 4, 0.8), ("regular", 6, 8, 1.0), ("junior", 3, 6, 1.25))
    for team, level, count, talk_factor in teams:
        for n in range(count):
            agent = AgentSettings(f"{team}{n + 1}", f"{team} {n + 1}", f"{level}{n:02d}", f"sim-{team}{n}",
                                  skills={"support": level}, queues={"support": 0})
            start = 4 * 3600.0 if n % 3 == 2 else 0.0  # two thirds early, one third late
            shifts.append(Shift(agent, start, start + 8 * 3600.0, talk_factor))
    return Scenario(queue, shifts, DEFAULT_CALLS, interval_seconds=1800.0, talk_seconds=180.0, talk_cv=0.8,
                    patience_seconds=150.0, answer_seconds=3.0, seed=seed)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def results_table(results: Sequence[DayResult], service_level_seconds: float) -> str:
    """One line per simulated day: service level, ASA, abandon rate, occupancy (all agents, and the least
    and most occupied agent: how evenly the work was spread)."""
    lines = [f"{'strategy':<26} {'offered':>7} {'SL ' + format(service_level_seconds, 'g') + ' s':>8} {'ASA':>7}"
             f" {'abandon':>8} {'occupancy':>9} {'agents min-max':>15}"]
    for result in results:
        each = [occupancy for agent in result.busy_seconds if (occupancy := result.occupancy([agent])) is not None]
        spread = f"{100 * min(each):.0f}-{100 * max(each):.0f}%" if each else "-"
        asa = "-" if result.asa is None else f"{result.asa:.1f} s"
        lines.append(f"{result.strategy:<26} {result.offered:>7} {_percent(result.service_level):>8} {asa:>7}"
                     f" {_percent(result.abandon_rate):>8} {_percent(result.occupancy()):>9} {spread:>15}")
    return "\n".join(lines)


def estimate_lines(result: DayResult) -> str:
    """The announced wait estimates against the waits that followed (absolute error, seconds)."""
    lines = []
    for label, pairs in (("wait estimate", result.estimates),
                         ("former (position x handle time / logged-in agents)", result.former_estimates)):
        summary, long = error_summary(pairs), error_summary(pairs, LONG_WAIT)
        if summary is None:
            lines.append(f"{label}: no announcement followed by an answer")
            continue
        line = (f"{label}: error median {summary['median_abs']:.1f} s, p90 {summary['p90_abs']:.1f} s,"
                f" bias {summary['bias']:+.1f} s ({summary['count']:.0f} announcements)")
        if long is not None:
            line += (f"; waits of {LONG_WAIT:g} s or more: median {long['median_abs']:.1f} s,"
                     f" p90 {long['p90_abs']:.1f} s, bias {long['bias']:+.1f} s ({long['count']:.0f})")
        lines.append(line)
    return "\n".join(lines)
