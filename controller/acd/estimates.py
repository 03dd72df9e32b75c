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

from controller import jsontext

__all__ = ["DEFAULT_TALK_SECONDS", "Durations", "estimate_wait", "wait_phrase"]

DEFAULT_TALK_SECONDS = 120.0  # before any call was measured (the standards' average talk time is ≤ 3 min)
MAX_TALKS = 500  # talk times kept per queue (the most recent), bounding the work per estimate
#: A call that has already lasted longer than the mean still has this share of the mean to go. Chosen with the
#: day's simulation (log-normal talk times, coefficient of variation 0.8): 0 underestimates long waits by
#: ~18 s on average, 0.35 overestimates them by ~35 s; 0.2 gives the lowest 90th-percentile error.
MIN_REMAINING_TALK = 0.2


class Durations:
    """Recent durations (seconds) with when each ended: a queue's talk times, and its rings (from the offer
    to the answer)."""

    __slots__ = ("_texts", "ended")

    def __init__(self, ended: Iterable[Sequence[float]] = ()) -> None:
        self.ended: deque[tuple[float, float]] = deque(
            sorted((float(at), float(seconds)) for at, seconds in ended), maxlen=MAX_TALKS)
        # Each pair as JSON, encoded once when it comes: the saved state is their join (a call's end changes two
        # queues' lists of up to 500 pairs; encoding them all again was ~7 % of the controller's CPU per call).
        self._texts: deque[str] = deque((_pair_json(at, seconds) for at, seconds in self.ended), maxlen=MAX_TALKS)

    def add(self, at: float, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.ended.append((at, seconds))
        self._texts.append(_pair_json(at, seconds))

    def mean(self, now: float, window: float) -> float | None:
        """The mean of the durations ended in the last `window` seconds (None: none)."""
        self.forget_before(now - window)
        if not self.ended:
            return None
        return sum(seconds for _, seconds in self.ended) / len(self.ended)

    def forget_before(self, since: float) -> None:
        while self.ended and self.ended[0][0] < since:
            self.ended.popleft()
            self._texts.popleft()

    def saved(self) -> list[list[float]]:
        return [[round(at, 3), round(seconds, 3)] for at, seconds in self.ended]

    def saved_json(self) -> str:
        """`saved()` as JSON, from the pairs encoded as they came (the saved state holds up to 500 per queue)."""
        return "[" + ", ".join(self._texts) + "]"


def _pair_json(at: float, seconds: float) -> str:
    return jsontext.dumps([round(at, 3), round(seconds, 3)])


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
