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

Erlang A (M/M/N+M, Palm 1943; Garnett, Mandelbaum & Reiman 2002) adds callers' patience: each waiting
caller hangs up after an exponential time with mean `patience_seconds`. Its birth–death chain is
solved exactly (truncated where its tail is below 1e-15), and the service level — callers answered
within t over all callers offered, so an abandoned call never counts as answered — comes from a
tagged caller's position in the queue (a pure-death chain, solved with scipy's expm_multiply).
Abandonment lets fewer agents keep a queue stable, so Erlang A never asks for more agents than Erlang C.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

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
    abandon_rate: float | None = None  # Erlang A only: the share of callers who hang up while waiting

    def as_dict(self) -> dict[str, float | int | None]:
        data: dict[str, float | int | None] = {
            "agents": self.agents, "traffic_erlangs": round(self.traffic_erlangs, 4),
            "probability_of_waiting": round(self.probability_of_waiting, 4),
            "service_level": round(self.service_level, 4),
            "asa_seconds": None if math.isinf(self.asa_seconds) else round(self.asa_seconds, 2),
            "occupancy": round(self.occupancy, 4)}
        if self.abandon_rate is not None:
            data["abandon_rate"] = round(self.abandon_rate, 4)
        return data


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


def achieved_with_abandonment(agents: int, *, calls: float, aht_seconds: float, patience_seconds: float,
                              interval_minutes: float = 30, answer_within_seconds: float = 20) -> Staffing:
    """Erlang A: what `agents` agents achieve when waiting callers give up after `patience_seconds` on average.

    `asa_seconds` is the mean wait of all callers (answered or not: Little's law on the queue)."""
    if agents <= 0:
        raise ValueError("agents must be ≥ 1")
    if patience_seconds <= 0:
        raise ValueError("the callers' mean patience must be > 0 seconds")
    erlangs = traffic(calls, aht_seconds, interval_minutes)
    if erlangs == 0:
        return Staffing(agents, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0)
    arrival = calls / (interval_minutes * 60)
    service, patience = 1 / aht_seconds, 1 / patience_seconds
    # Stationary distribution of callers in the system, in logs (A^k/k! overflows for big centres).
    log_weights = [k * math.log(erlangs) - math.lgamma(k + 1) for k in range(agents + 1)]
    peak = max(log_weights)
    k = agents
    while k < agents + 200_000:
        k += 1
        log_weights.append(log_weights[-1] + math.log(arrival / (agents * service + (k - agents) * patience)))
        peak = max(peak, log_weights[-1])
        if log_weights[-1] < peak - 35 and log_weights[-1] < log_weights[-2]:
            break
    weights = np.exp(np.array(log_weights) - peak)
    states = weights / weights.sum()
    queued = states[agents:]  # an arrival finding k ≥ N callers has k − N ahead of it (PASTA)
    waiting = float(queued.sum())
    queue_length = float(np.dot(np.arange(len(queued)), queued))
    abandon = patience * queue_length / arrival
    level = (1 - waiting) + _answered_within(queued, agents * service, patience, answer_within_seconds)
    served = erlangs * (1 - abandon)
    return Staffing(agents, erlangs, waiting, min(1.0, level), queue_length / arrival, served / agents, abandon)


def _answered_within(ahead: NDArray[np.float64], drain: float, patience: float, seconds: float) -> float:
    """P(an arrival waits, is answered, and within `seconds`): `ahead[m]` = P(it arrives with m callers ahead).

    The tagged caller's state is the number of callers ahead (m moves to m − 1 at rate N·μ + m·θ: an answer
    or an abandonment ahead; from 0 the next answer is its own) and it gives up itself at rate θ."""
    size = len(ahead)
    if seconds <= 0 or size == 0:
        return 0.0
    from scipy import sparse  # here: ~40 MB at import, needed only by Erlang A (README "Benchmarks")
    from scipy.sparse.linalg import expm_multiply

    served = size  # the absorbing "answered" state
    rows, cols, rates = [], [], []
    for m in range(size):
        onward = drain + m * patience
        rows += [m, served if m == 0 else m - 1]
        cols += [m, m]
        rates += [-(onward + patience), onward]
    # Column-oriented generator (dp/dt = Q p) on states 0..size−1 plus "answered"; abandonment leaks out.
    generator = sparse.csr_matrix((rates, (rows, cols)), shape=(size + 1, size + 1))
    start = np.append(ahead, 0.0)
    at_t = expm_multiply(generator * seconds, start)
    return float(at_t[served])


def agents_needed(*, calls: float, aht_seconds: float, interval_minutes: float = 30,
                  target_service_level: float = 0.8, answer_within_seconds: float = 20,
                  max_occupancy: float | None = None, target_asa_seconds: float | None = None,
                  patience_seconds: float | None = None) -> Staffing:
    """The fewest agents that reach the target service level (and ASA / occupancy caps, if given).

    With `patience_seconds` (callers' mean patience) the model is Erlang A, else Erlang C."""
    if not 0 < target_service_level < 1:
        raise ValueError("the target service level is a fraction between 0 and 1, e.g. 0.8")
    if max_occupancy is not None and not 0 < max_occupancy <= 1:
        raise ValueError("the maximum occupancy is a fraction between 0 and 1, e.g. 0.85")
    if patience_seconds is not None:
        return _agents_needed_with_abandonment(
            calls=calls, aht_seconds=aht_seconds, interval_minutes=interval_minutes,
            target_service_level=target_service_level, answer_within_seconds=answer_within_seconds,
            max_occupancy=max_occupancy, target_asa_seconds=target_asa_seconds, patience_seconds=patience_seconds)
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


def _agents_needed_with_abandonment(*, calls: float, aht_seconds: float, interval_minutes: float,
                                    target_service_level: float, answer_within_seconds: float,
                                    max_occupancy: float | None, target_asa_seconds: float | None,
                                    patience_seconds: float) -> Staffing:
    """Erlang A's fewest agents: a bisection between 1 and Erlang C's answer (every target is monotone in N)."""
    upper = agents_needed(calls=calls, aht_seconds=aht_seconds, interval_minutes=interval_minutes,
                          target_service_level=target_service_level, answer_within_seconds=answer_within_seconds,
                          max_occupancy=max_occupancy, target_asa_seconds=target_asa_seconds)

    def meets(result: Staffing) -> bool:
        return (result.service_level >= target_service_level
                and (target_asa_seconds is None or result.asa_seconds <= target_asa_seconds)
                and (max_occupancy is None or result.occupancy <= max_occupancy))

    def at(agents: int) -> Staffing:
        return achieved_with_abandonment(agents, calls=calls, aht_seconds=aht_seconds,
                                         patience_seconds=patience_seconds, interval_minutes=interval_minutes,
                                         answer_within_seconds=answer_within_seconds)

    low, high = 0, upper.agents  # `low` fails (or is 0), `high` meets
    best = at(high)
    if not meets(best):  # rounding at the edge: Erlang C's count is enough in theory
        return best
    while high - low > 1:
        middle = (low + high) // 2
        result = at(middle)
        if meets(result):
            high, best = middle, result
        else:
            low = middle
    return best


def scheduled(agents: int, shrinkage: float) -> int:
    """Agents to schedule so that `agents` are on the phones after shrinkage (0 ≤ shrinkage < 1)."""
    if not 0 <= shrinkage < 1:
        raise ValueError("shrinkage is a fraction between 0 and 1, e.g. 0.3")
    return math.ceil(agents / (1 - shrinkage) - 1e-9)
