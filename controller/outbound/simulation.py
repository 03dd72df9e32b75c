"""A campaign simulated on a fake clock: the real pacing engine, random customers and agents. No I/O.

Each contact is dialled once. A customer answers with `answer_rate` (after 3 to 15 s of ringing); the
others are busy (after 2 to 5 s), do not answer (the ring limit) or fail (1 s), in `unanswered_mix`.
An agent's handling (talk and wrap-up) is log-normal with mean `handle_seconds`. The engine decides the
rest exactly as with the real Asterisk. Occupancy is the agents' handling time over their time from the
start until the list is exhausted (the last dial), so the tail of the last calls does not count.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from dataclasses import dataclass

from controller.clock import FakeClock
from controller.outbound.pacing import Abandon, Connect, PacingEngine, PacingSettings

__all__ = ["CampaignResult", "CampaignScenario", "simulate"]

TICK_SECONDS = 1.0
#: Answers before the rolling-window abandon rate is watched (the first ones are the since-start rate).
WARM_UP_ANSWERS = 300


@dataclass(frozen=True)
class CampaignScenario:
    contacts: int = 10_000
    agents: int = 20
    answer_rate: float = 0.30
    handle_seconds: float = 90.0
    ring_limit: float = 30.0
    unanswered_mix: tuple[float, float, float] = (0.3, 0.6, 0.1)  # busy, no answer, failed
    seed: int = 1


@dataclass(frozen=True)
class CampaignResult:
    mode: str
    dialed: int
    answered: int
    abandoned: int
    occupancy: float
    duration: float  # seconds until the last dial
    window_abandon_max: float  # the highest rolling-window abandon rate after WARM_UP_ANSWERS answers

    @property
    def abandon_rate(self) -> float:
        return self.abandoned / self.answered if self.answered else 0.0

    def line(self) -> str:
        return (f"{self.mode:<11} dialed {self.dialed:>6}  answered {self.answered:>5}  abandoned {self.abandoned:>4}"
                f"  abandon rate {100 * self.abandon_rate:5.2f}% (window max {100 * self.window_abandon_max:5.2f}%)"
                f"  occupancy {100 * self.occupancy:5.1f}%  list done in {self.duration / 3600:4.2f} h")


def simulate(scenario: CampaignScenario, settings: PacingSettings) -> CampaignResult:
    rng = random.Random(scenario.seed)
    clock = FakeClock(1_800_000_000.0)
    start = clock.now()
    engine = PacingEngine(settings, clock)
    events: list[tuple[float, int, str, str]] = []
    seq = itertools.count()
    sigma = 0.4
    mu = math.log(scenario.handle_seconds) - sigma * sigma / 2

    def at(when: float, kind: str, key: str) -> None:
        heapq.heappush(events, (when, next(seq), kind, key))

    handles: list[tuple[float, float]] = []
    left = scenario.contacts
    last_dial = start
    window_max = 0.0
    answered = 0
    agents = [f"a{i}" for i in range(scenario.agents)]
    for agent in agents:
        engine.agent_ready(agent)
    at(start, "tick", "")
    while events:
        when, _, kind, key = heapq.heappop(events)
        clock.advance(when - clock.now())
        if kind == "answer":
            decision = engine.answered(int(key))
            answered += 1
            if isinstance(decision, Connect):
                handle = rng.lognormvariate(mu, sigma)
                handles.append((when, when + handle))
                at(when + handle, "free", decision.agent_id)
            elif isinstance(decision, Abandon) and answered > WARM_UP_ANSWERS:
                window_max = max(window_max, engine.stats().abandon_rate)
        elif kind == "fail":
            engine.not_answered(int(key))
        elif kind == "free":
            engine.finished(key)
        if left:
            for dial in engine.plan():
                if not left:
                    engine.cancel(dial.id)
                    continue
                left -= 1
                last_dial = when
                draw = rng.random()
                if draw < scenario.answer_rate:
                    at(when + rng.uniform(3.0, 15.0), "answer", str(dial.id))
                    continue
                busy, no_answer, _failed = scenario.unanswered_mix
                share = (draw - scenario.answer_rate) / (1.0 - scenario.answer_rate)
                delay = (rng.uniform(2.0, 5.0) if share < busy else scenario.ring_limit if share < busy + no_answer
                         else 1.0)
                at(when + delay, "fail", str(dial.id))
            if kind == "tick":
                at(when + TICK_SECONDS, "tick", "")
    duration = last_dial - start
    busy_time = sum(max(0.0, min(end, last_dial) - begin) for begin, end in handles)
    occupancy = busy_time / (scenario.agents * duration) if duration > 0 else 0.0
    stats = engine.stats()
    return CampaignResult(mode=settings.mode, dialed=stats.dialed, answered=stats.answered,
                          abandoned=stats.abandoned, occupancy=occupancy, duration=duration,
                          window_abandon_max=window_max)
