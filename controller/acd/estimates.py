"""Wait estimates a caller can trust: from what the queue's agents measurably do, and said honestly.

The engine estimates a waiting caller's wait from
- the queue's handle time measured over a recent window (`QueueSettings.estimate_window`): the mean
  talk time of the calls its agents ended in that window, plus the queue's wrap-up;
- the agents actually available: logged in and not "not ready" — each is expected free for the
  next call at a known time (ready: now; in wrap-up: when it ends; talking: when a call of the mean
  talk time would end (a call already longer: a fifth of the mean later), then the wrap-up;
  ringing: after the call it is ringing for);
- the ring: the mean time from an offer to the answer, measured the same way, added to the wait;
- the caller's position: the p-th caller is taken when the p-th agent becomes free, each agent
  freeing again one handle time later. With n agents this is p × handle time ÷ n in the long run
  (the queue's service rate, n ÷ handle time answers per second), and closer for the first callers.

(Measured with the day's simulation, `make bench`: this is closer than position × handle time ÷
agents, and closer than taking each talking agent's expected *remaining* talk: the first of several
agents to finish comes sooner than any one of them is expected to.)

The talk and ring times are kept in the engine's snapshot, so a restart does not forget them.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from typing import NamedTuple

__all__ = ["DEFAULT_TALK_SECONDS", "DurationChanges", "Durations", "estimate_wait", "wait_phrase"]

DEFAULT_TALK_SECONDS = 120.0  # before any call was measured (the standards' average talk time is ≤ 3 min)
MAX_TALKS = 500  # talk times kept per queue (the most recent), bounding the work per estimate
#: Durations forgotten (too old, or beyond MAX_TALKS) the store may keep before one statement deletes them.
FORGET_AFTER = MAX_TALKS
#: A call that has already lasted longer than the mean still has this share of the mean to go. Chosen with the
#: day's simulation (log-normal talk times, coefficient of variation 0.8): 0 underestimates long waits by
#: ~18 s on average, 0.35 overestimates them by ~35 s; 0.2 gives the lowest 90th-percentile error.
MIN_REMAINING_TALK = 0.2


class DurationChanges(NamedTuple):
    """What the store is to do with a queue's durations of one kind (`Durations.take_changes`): add `added`
    ([(ended at, seconds)], rounded as saved), then forget those that ended before `forget_before` (None: none)."""

    added: list[tuple[float, float]]
    forget_before: float | None


class Durations:
    """Recent durations (seconds) with when each ended: a queue's talk times, and its rings (from the offer
    to the answer).

    The store keeps them one row per duration (`acd_queue_durations`): a duration added is one small row, where
    the whole list (up to 2 x 500 pairs, ~25 kB, ~7 pages) was rewritten for each. Durations forgotten here (too
    old, or beyond MAX_TALKS) are deleted from the store once FORGET_AFTER of them piled up (or none is left),
    one statement for them all: the store holds at most about MAX_TALKS + FORGET_AFTER rows per queue and kind,
    and a restart keeps the most recent MAX_TALKS of them (the others are forgotten again)."""

    __slots__ = ("_added", "_forgotten", "_forgotten_until", "ended")

    def __init__(self, ended: Iterable[Sequence[float]] = ()) -> None:
        pairs = sorted((float(at), float(seconds)) for at, seconds in ended)
        self.ended: deque[tuple[float, float]] = deque(pairs, maxlen=MAX_TALKS)
        self._added: list[tuple[float, float]] = []  # since the store last took the changes
        self._forgotten = len(pairs) - len(self.ended)  # here, and maybe still stored
        self._forgotten_until = pairs[self._forgotten - 1][0] if self._forgotten else -math.inf

    def add(self, at: float, seconds: float) -> None:
        seconds = max(0.0, seconds)
        if len(self.ended) == MAX_TALKS:
            self._forget(self.ended[0][0])
        self.ended.append((at, seconds))
        self._added.append((round(at, 3), round(seconds, 3)))

    def mean(self, now: float, window: float) -> float | None:
        """The mean of the durations ended in the last `window` seconds (None: none)."""
        self.forget_before(now - window)
        if not self.ended:
            return None
        return sum(seconds for _, seconds in self.ended) / len(self.ended)

    def forget_before(self, since: float) -> None:
        while self.ended and self.ended[0][0] < since:
            self._forget(self.ended.popleft()[0])

    def _forget(self, at: float) -> None:
        self._forgotten += 1
        self._forgotten_until = max(self._forgotten_until, at)

    def saved(self) -> list[list[float]]:
        return [[round(at, 3), round(seconds, 3)] for at, seconds in self.ended]

    def take_changes(self) -> DurationChanges:
        """What the store is to do since it last took them (see the class's doc), and forget it was to."""
        added, self._added = self._added, []
        forget_before: float | None = None
        if self._forgotten and not self.ended:  # (all of them: every stored one ended by then)
            forget_before = round(self._forgotten_until, 3) + 1.0
        elif self._forgotten >= FORGET_AFTER:  # (rounded as stored: the oldest kept one stays)
            forget_before = round(self.ended[0][0], 3)
        if forget_before is not None:
            self._forgotten, self._forgotten_until = 0, -math.inf
        return DurationChanges(added, forget_before)


def estimate_wait(position: int, free_in: Sequence[float], handle_time: float) -> float | None:
    """Seconds until the caller at `position` (1 = next) is taken, given when each available agent is
    expected free for the next call (`free_in`, seconds from now, each at most one handle time).
    None: no agent is available (nothing honest to say)."""
    if not free_in or position < 1:
        return None
    rounds, index = divmod(position - 1, len(free_in))
    return sorted(max(0.0, t) for t in free_in)[index] + rounds * handle_time


def wait_phrase(seconds: float, language: str) -> str:
    """An estimate said honestly: "less than a minute", "about 3 minutes" (to the minute up to 10,
    then to 5 minutes: an estimate of 23 min is not known to the minute). zh: 不到1分钟, 大约3分钟."""
    zh = not language.startswith("en")
    if seconds < 60:
        return "不到1分钟" if zh else "less than a minute"
    minutes = seconds / 60
    rounded = max(1, math.floor(minutes + 0.5)) if minutes < 10 else 5 * math.floor(minutes / 5 + 0.5)
    if zh:
        return f"大约{rounded}分钟"
    return f"about {rounded} minute{'' if rounded == 1 else 's'}"
