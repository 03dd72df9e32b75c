"""The outbound pacing engine: how many customers to dial now, and who takes an answered one. No I/O.

The campaign runner tells it which agents it may use (blending: an agent serving inbound calls, or
not ready, is not told ready), places the dials `plan()` returns and reports what happened to each
(`answered` / `not_answered` / `cancel`) and when an agent's handling (talk and wrap-up) ends
(`finished`). The clock is an argument, so a simulation can run a day in a second.

Modes:
- **preview**: one reserved contact per ready agent; the agent sees it, then dials it or skips it.
- **progressive**: one call per ready agent, reserved to that agent (never an abandoned customer).
- **predictive**: dials ahead, for the agents ready now and those likely to be free when the dials
  answer. The number of lines is chosen so that the expected overflow (answers beyond the agents there
  are) stays under the abandon cap, with the answer rate, the time to answer and the distribution of
  handle times measured as the campaign runs; a feedback factor, driven by the abandon rate measured over
  a rolling window, corrects what the model gets wrong (it backs off quickly and grows slowly).
  An answered customer with no free agent is abandoned (the runner plays the short message).
- **ivr**: no agents; up to `ivr_lines` customers at a time hear the campaign's flow.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

from controller.clock import Clock

__all__ = ["MODES", "Abandon", "Connect", "Dial", "IvrOnly", "PacingEngine", "PacingError", "PacingSettings",
           "PacingStats"]

Mode = Literal["preview", "progressive", "predictive", "ivr"]
MODES: tuple[Mode, ...] = ("preview", "progressive", "predictive", "ivr")
#: Handle times kept for the distribution of "who will be free soon".
HANDLE_SAMPLES = 300
#: Attempts kept for the answer rate.
ANSWER_SAMPLES = 400
#: Answers in the window before the feedback factor trusts the measured abandon rate.
MIN_ANSWERS_FOR_FEEDBACK = 20
#: Measurements needed before a measured distribution replaces the prior.
MIN_SAMPLES = 20
#: The feedback factor on the overflow the model may risk: its bounds and its gain per answer.
MIN_FACTOR, MAX_FACTOR, FEEDBACK_GAIN = 0.05, 2.0, 0.003
#: The abandon rate the feedback aims at, as a share of the cap; the recent rate's memory, in answers.
FEEDBACK_AIM, RECENT_ANSWERS = 0.7, 200


class PacingError(ValueError):
    """A report about a dial or an agent the engine does not know in that state."""


@dataclass(frozen=True)
class PacingSettings:
    mode: Mode = "progressive"
    abandon_cap: float = 0.03  # abandoned / answered, over the rolling window
    window_seconds: float = 3600.0
    max_lines_per_agent: float = 4.0  # predictive: never more dials in flight than this × usable agents
    ivr_lines: int = 10  # ivr mode: customers in the flow or being dialled at a time
    expected_answer_rate: float = 0.25  # prior, until enough attempts are measured
    expected_handle_seconds: float = 120.0  # prior
    expected_answer_seconds: float = 10.0  # prior: dial to answer

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown dialing mode {self.mode!r} (one of {', '.join(MODES)})")
        if not 0.0 < self.abandon_cap < 1.0:
            raise ValueError("abandon_cap must be between 0 and 1 (0.03 is 3 %)")
        if self.window_seconds <= 0 or self.max_lines_per_agent < 1 or self.ivr_lines < 1:
            raise ValueError("window_seconds must be positive, max_lines_per_agent and ivr_lines at least 1")


@dataclass(frozen=True)
class Dial:
    """A call to place now; `agent_id` is the agent reserved for it (preview, progressive)."""

    id: int
    agent_id: str | None


@dataclass(frozen=True)
class Connect:
    """Bridge the answered customer to this agent."""

    agent_id: str


@dataclass(frozen=True)
class Abandon:
    """Answered with no agent free: play the short message, hang up, count it abandoned."""


@dataclass(frozen=True)
class IvrOnly:
    """Answered in an IVR-only campaign: run the flow."""


@dataclass(frozen=True)
class PacingStats:
    dialed: int
    answered: int
    abandoned: int
    abandon_rate: float  # over the rolling window
    answer_rate: float  # measured (or the prior)
    handle_seconds: float
    lines: int  # dials in flight
    ready_agents: int
    busy_agents: int
    factor: float


@dataclass
class _Flight:
    agent_id: str | None
    started: float


class PacingEngine:
    def __init__(self, settings: PacingSettings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self._ids = itertools.count(1)
        self._flights: dict[int, _Flight] = {}
        self._ready: dict[str, float] = {}  # agent -> since (insertion order: longest idle first)
        self._reserved: set[str] = set()  # ready agents a dial is reserved for (preview, progressive)
        self._busy: dict[str, float] = {}  # agent handling a campaign customer -> since
        self._ivr: set[int] = set()  # answered IVR-only dials still in the flow
        self._attempts: deque[bool] = deque(maxlen=ANSWER_SAMPLES)
        self._handles: list[float] = []  # sorted
        self._handle_order: deque[float] = deque()
        self._answer_seconds = settings.expected_answer_seconds
        self._answer_delays: list[float] = []  # sorted: dial to answer, of recent answered attempts
        self._fail_delays: list[float] = []  # sorted: dial to the end, of recent unanswered attempts
        self._delay_order: deque[tuple[bool, float]] = deque()
        self._window: deque[tuple[float, bool]] = deque()  # (time, abandoned) of each answer in the window
        self._window_abandoned = 0
        self.inbound_waiting = 0  # callers waiting for these agents: inbound goes first
        self._recent = 0.0  # abandoned share of the recent answers (exponential average)
        self.factor = 0.2  # starts careful: the measurements are few
        self.dialed = self.answered_total = self.abandoned_total = 0

    # -- agents ---------------------------------------------------------------------------------------

    def agent_ready(self, agent_id: str) -> None:
        """The agent may take a campaign customer now."""
        self._busy.pop(agent_id, None)
        self._ready.setdefault(agent_id, self.clock.now())

    def agent_away(self, agent_id: str) -> None:
        """The agent may not be used (logged out, not ready, serving an inbound caller). A dial reserved for
        them stays theirs until it is reported."""
        self._ready.pop(agent_id, None)
        self._busy.pop(agent_id, None)

    def finished(self, agent_id: str) -> None:
        """The agent's campaign customer is done (talk and wrap-up): their handle time is measured and they
        are ready again."""
        since = self._busy.pop(agent_id, None)
        if since is None:
            raise PacingError(f"agent {agent_id} is not handling a campaign customer")
        self._measure_handle(self.clock.now() - since)
        self._ready[agent_id] = self.clock.now()

    # -- dials ----------------------------------------------------------------------------------------

    def plan(self) -> list[Dial]:
        """The dials to place now (each counted in flight until reported)."""
        mode = self.settings.mode
        if mode in ("preview", "progressive"):
            free = [a for a in self._ready if a not in self._reserved][: self._usable_ready()]
            return [self._start(agent) for agent in free]
        if mode == "ivr":
            return [self._start(None) for _ in range(self.settings.ivr_lines - len(self._flights) - len(self._ivr))]
        return [self._start(None) for _ in range(self._predictive_dials())]

    def answered(self, dial_id: int) -> Connect | Abandon | IvrOnly:
        flight = self._take(dial_id)
        now = self.clock.now()
        self._attempts.append(True)
        self._measure_delay(True, now - flight.started)
        self.answered_total += 1
        self._answer_seconds += 0.05 * ((now - flight.started) - self._answer_seconds)
        if self.settings.mode == "ivr":
            self._ivr.add(dial_id)
            return IvrOnly()
        agent = flight.agent_id
        if agent is None:  # predictive: the longest idle agent not reserved
            agent = next((a for a in self._ready if a not in self._reserved), None)
        elif agent not in self._ready:
            agent = None  # the reserved agent went away meanwhile
        self._count_answer(now, abandoned=agent is None)
        if agent is None:
            return Abandon()
        self._reserved.discard(agent)
        self._ready.pop(agent, None)
        self._busy[agent] = now
        return Connect(agent)

    def not_answered(self, dial_id: int) -> None:
        """Busy, no answer, rejected, failed: an attempt that did not reach the customer."""
        flight = self._take(dial_id)
        self._attempts.append(False)
        self._measure_delay(False, self.clock.now() - flight.started)

    def cancel(self, dial_id: int) -> None:
        """A planned dial that was not placed (no contact left, a preview the agent skipped, DNC)."""
        self._take(dial_id)
        self.dialed -= 1

    def ivr_done(self, dial_id: int) -> None:
        self._ivr.discard(dial_id)

    def stats(self) -> PacingStats:
        self._expire(self.clock.now())
        return PacingStats(dialed=self.dialed, answered=self.answered_total, abandoned=self.abandoned_total,
                           abandon_rate=self._window_rate(), answer_rate=self._answer_rate(),
                           handle_seconds=self._mean_handle(), lines=len(self._flights),
                           ready_agents=len(self._ready), busy_agents=len(self._busy), factor=self.factor)

    # -- internals ------------------------------------------------------------------------------------

    def _start(self, agent_id: str | None) -> Dial:
        dial = Dial(next(self._ids), agent_id)
        self._flights[dial.id] = _Flight(agent_id, self.clock.now())
        if agent_id is not None:
            self._reserved.add(agent_id)
        self.dialed += 1
        return dial

    def _take(self, dial_id: int) -> _Flight:
        flight = self._flights.pop(dial_id, None)
        if flight is None:
            raise PacingError(f"dial {dial_id} is not in flight")
        if flight.agent_id is not None:
            self._reserved.discard(flight.agent_id)
        return flight

    def _usable_ready(self) -> int:
        """Ready agents left for the campaign once the inbound callers waiting for them are served."""
        return max(0, len(self._ready) - self.inbound_waiting)

    def _answer_rate(self) -> float:
        measured, prior_weight = len(self._attempts), 50
        answered = sum(self._attempts)
        return (answered + prior_weight * self.settings.expected_answer_rate) / (measured + prior_weight)

    def _measure_handle(self, seconds: float) -> None:
        self._handle_order.append(seconds)
        bisect.insort(self._handles, seconds)
        if len(self._handle_order) > HANDLE_SAMPLES:
            oldest = self._handle_order.popleft()
            del self._handles[bisect.bisect_left(self._handles, oldest)]

    def _measure_delay(self, answered: bool, seconds: float) -> None:
        self._delay_order.append((answered, seconds))
        bisect.insort(self._answer_delays if answered else self._fail_delays, seconds)
        if len(self._delay_order) > ANSWER_SAMPLES:
            was_answered, oldest = self._delay_order.popleft()
            delays = self._answer_delays if was_answered else self._fail_delays
            del delays[bisect.bisect_left(delays, oldest)]

    def _mean_handle(self) -> float:
        return sum(self._handles) / len(self._handles) if self._handles else self.settings.expected_handle_seconds

    def _free_within(self, elapsed: float, horizon: float) -> float:
        """P(an agent `elapsed` seconds into a customer is free within `horizon`), from the measured handle
        times (until there are enough, nobody is counted on: a wrong guess would abandon customers)."""
        if len(self._handles) < MIN_SAMPLES:
            return 0.0
        return _conditional_share(self._handles, elapsed, elapsed + horizon)

    def _answer_chance(self, ringing: float, rate: float) -> float:
        """P(a dial ringing for `ringing` seconds is answered), from how long the measured answered and
        unanswered attempts took (the plain answer rate until there are enough of both)."""
        if len(self._answer_delays) < MIN_SAMPLES or len(self._fail_delays) < MIN_SAMPLES:
            return rate
        answers = rate * _survival(self._answer_delays, ringing)
        others = (1.0 - rate) * _survival(self._fail_delays, ringing)
        return answers / (answers + others) if answers + others > 0 else 0.0

    def _count_answer(self, now: float, *, abandoned: bool) -> None:
        self._window.append((now, abandoned))
        if abandoned:
            self._window_abandoned += 1
            self.abandoned_total += 1
        self._expire(now)
        if self.settings.mode != "predictive" or len(self._window) < MIN_ANSWERS_FOR_FEEDBACK:
            return
        # multiplicative, smooth: grows while both the window's rate and the recent rate (which moves before
        # the window's does) are under FEEDBACK_AIM of the cap, shrinks faster above it
        self._recent += (abandoned - self._recent) / RECENT_ANSWERS
        error = 1.0 - max(self._recent, self._window_rate()) / (FEEDBACK_AIM * self.settings.abandon_cap)
        self.factor = min(MAX_FACTOR, max(MIN_FACTOR, self.factor * math.exp(FEEDBACK_GAIN * max(-3.0, error))))

    def _expire(self, now: float) -> None:
        while self._window and self._window[0][0] <= now - self.settings.window_seconds:
            _, abandoned = self._window.popleft()
            self._window_abandoned -= abandoned

    def _window_rate(self) -> float:
        return self._window_abandoned / len(self._window) if self._window else 0.0

    def _predictive_dials(self) -> int:
        usable = len(self._ready) + len(self._busy)
        room = int(self.settings.max_lines_per_agent * usable) - len(self._flights)
        if room <= 0 or not usable:
            return 0
        now = self.clock.now()
        horizon = self._answer_seconds
        freeing = [self._free_within(now - since, horizon) for since in self._busy.values()]
        capacity = self._usable_ready() + sum(freeing)
        capacity_variance = sum(q * (1.0 - q) for q in freeing)
        rate = self._answer_rate()
        chances = [self._answer_chance(now - flight.started, rate) for flight in self._flights.values()]
        ringing_mean = sum(chances)
        ringing_variance = sum(c * (1.0 - c) for c in chances)
        target = self.settings.abandon_cap * self.factor

        def drop_chance(new: int) -> float:
            """P(the `new`-th new dial, if answered, finds every agent taken by the others' answers)."""
            others = new - 1
            return _full_chance(ringing_mean + others * rate,
                                ringing_variance + others * rate * (1.0 - rate) + capacity_variance, capacity)

        if drop_chance(1) > target:
            return 0
        low, high = 1, room  # the largest count of new dials whose last one stays under target
        while low < high:
            middle = (low + high + 1) // 2
            if drop_chance(middle) <= target:
                low = middle
            else:
                high = middle - 1
        return low


def _survival(sorted_values: list[float], at: float) -> float:
    return (len(sorted_values) - bisect.bisect_right(sorted_values, at)) / len(sorted_values)


def _conditional_share(sorted_values: list[float], after: float, by: float) -> float:
    """Among the values above `after`, the share at or below `by` (1 when none is above `after`)."""
    longer = len(sorted_values) - bisect.bisect_right(sorted_values, after)
    if longer == 0:
        return 1.0
    return (longer - (len(sorted_values) - bisect.bisect_right(sorted_values, by))) / longer


def _full_chance(mean: float, variance: float, capacity: float) -> float:
    """P(answers ≥ capacity) for answers less agents freed (of this mean and variance: sums of Bernoulli
    variables) against the ready agents, normal approximation with continuity correction."""
    if capacity <= 0:
        return 1.0
    if variance <= 0:
        return 1.0 if mean >= capacity else 0.0
    return 0.5 * math.erfc((capacity - 0.5 - mean) / math.sqrt(2 * variance))
