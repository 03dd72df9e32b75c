"""Erlang C staffing: how many agents an interval needs for a service level, and what N agents achieve.

The model (M/M/N, callers wait, nobody abandons), with
  A = calls × AHT / interval          traffic in erlangs
  Pw = Erlang C(N, A)                 probability a call waits (computed through the Erlang B
                                       recursion, which stays exact for hundreds of agents)
  SL(t) = 1 − Pw · e^(−(N − A)·t / AHT)
  ASA = Pw · AHT / (N − A)
  occupancy = A / N
With N ≤ A the queue grows without bound: Pw = 1, SL = 0, ASA = ∞.
Scheduled staff = agents needed / (1 − shrinkage) (breaks, training, absence).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: More agents than this for one interval is a typing mistake, not a call center.
MAX_AGENTS = 10_000


@dataclass(frozen=True, slots=True)
class Staffing:
    agents: int
    traffic_erlangs: float
    probability_of_waiting: float
    service_level: float
    asa_seconds: float  # math.inf when the agents cannot keep up
    occupancy: float

    def as_dict(self) -> dict[str, float | int | None]:
        return {"agents": self.agents, "traffic_erlangs": round(self.traffic_erlangs, 4),
                "probability_of_waiting": round(self.probability_of_waiting, 4),
                "service_level": round(self.service_level, 4),
                "asa_seconds": None if math.isinf(self.asa_seconds) else round(self.asa_seconds, 2),
                "occupancy": round(self.occupancy, 4)}


def traffic(calls: float, aht_seconds: float, interval_minutes: float) -> float:
    if calls < 0 or aht_seconds <= 0 or interval_minutes <= 0:
        raise ValueError("calls must be ≥ 0, AHT and the interval > 0")
    return calls * aht_seconds / (interval_minutes * 60)


def erlang_c(agents: int, erlangs: float) -> float:
    """Probability that a call has to wait, with `agents` agents and `erlangs` of traffic."""
    if agents <= 0:
        raise ValueError("agents must be ≥ 1")
    if erlangs <= 0:
        return 0.0
    if agents <= erlangs:
        return 1.0
    blocking = 1.0  # Erlang B(0, A); B(k) = A·B(k−1) / (k + A·B(k−1))
    for k in range(1, agents + 1):
        blocking = erlangs * blocking / (k + erlangs * blocking)
    return agents * blocking / (agents - erlangs * (1 - blocking))


def achieved(agents: int, *, calls: float, aht_seconds: float, interval_minutes: float = 30,
             answer_within_seconds: float = 20) -> Staffing:
    """What `agents` agents achieve for this traffic."""
    erlangs = traffic(calls, aht_seconds, interval_minutes)
    waiting = erlang_c(agents, erlangs)
    if agents <= erlangs:
        return Staffing(agents, erlangs, 1.0, 0.0, math.inf, 1.0 if erlangs else 0.0)
    level = 1 - waiting * math.exp(-(agents - erlangs) * answer_within_seconds / aht_seconds)
    asa = waiting * aht_seconds / (agents - erlangs)
    return Staffing(agents, erlangs, waiting, level, asa, erlangs / agents)


def agents_needed(*, calls: float, aht_seconds: float, interval_minutes: float = 30,
                  target_service_level: float = 0.8, answer_within_seconds: float = 20,
                  max_occupancy: float | None = None, target_asa_seconds: float | None = None) -> Staffing:
    """The fewest agents that reach the target service level (and ASA / occupancy caps, if given)."""
    if not 0 < target_service_level < 1:
        raise ValueError("the target service level is a fraction between 0 and 1, e.g. 0.8")
    if max_occupancy is not None and not 0 < max_occupancy <= 1:
        raise ValueError("the maximum occupancy is a fraction between 0 and 1, e.g. 0.85")
    erlangs = traffic(calls, aht_seconds, interval_minutes)
    agents = max(1, math.floor(erlangs) + 1)
    while agents <= MAX_AGENTS:
        result = achieved(agents, calls=calls, aht_seconds=aht_seconds, interval_minutes=interval_minutes,
                          answer_within_seconds=answer_within_seconds)
        if (result.service_level >= target_service_level
                and (target_asa_seconds is None or result.asa_seconds <= target_asa_seconds)
                and (max_occupancy is None or result.occupancy <= max_occupancy)):
            return result
        agents += 1
    raise ValueError(f"more than {MAX_AGENTS} agents needed: check the calls, AHT and interval")


def scheduled(agents: int, shrinkage: float) -> int:
    """Agents to schedule so that `agents` are on the phones after shrinkage (0 ≤ shrinkage < 1)."""
    if not 0 <= shrinkage < 1:
        raise ValueError("shrinkage is a fraction between 0 and 1, e.g. 0.3")
    return math.ceil(agents / (1 - shrinkage) - 1e-9)
