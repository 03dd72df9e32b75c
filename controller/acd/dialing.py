"""What the API lets agents dial: allowed and denied number prefixes, and a per-token rate limit.

Pure decisions (no I/O): the HTTP resources ask them before anything rings. Dials a flow makes
itself (its own configuration) are not limited here.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from controller.config import DialingSettings


def number_refusal(settings: DialingSettings, number: str) -> str | None:
    """Why `number` may not be dialled (None: it may).

    The longest prefix of the number found in either list decides; at equal length a denied prefix
    wins, and a number no allowed prefix matches is refused."""
    allowed = max((len(p) for p in settings.allowed_prefixes if number.startswith(p)), default=-1)
    denied = max((len(p) for p in settings.denied_prefixes if number.startswith(p)), default=-1)
    if allowed < 0:
        return "the number matches none of dialing.allowed_prefixes"
    if denied >= allowed:
        return "the number matches one of dialing.denied_prefixes"
    return None


class RateLimiter:
    """At most `limit` events per key in any `per_seconds` (a sliding window of event times)."""

    def __init__(self, limit: int, per_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.per_seconds = per_seconds
        self.clock = clock
        self._events: dict[str, deque[float]] = {}
        self._settings: Callable[[], DialingSettings] | None = None

    @classmethod
    def following(cls, settings: Callable[[], DialingSettings]) -> RateLimiter:
        """A limiter whose limit is `settings()`'s `rate_limit_calls` per `rate_limit_seconds`, read at each
        event (a reloaded configuration changes it)."""
        current = settings()
        limiter = cls(current.rate_limit_calls, current.rate_limit_seconds)
        limiter._settings = settings
        return limiter

    def acquire(self, key: str) -> float | None:
        """Count one event for `key`; when over the limit, count nothing and return the seconds until
        one is allowed again."""
        if self._settings is not None:
            current = self._settings()
            self.limit, self.per_seconds = current.rate_limit_calls, current.rate_limit_seconds
        now = self.clock()
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - self.per_seconds:
            events.popleft()
        if len(events) >= self.limit:
            return max(0.001, events[0] + self.per_seconds - now)
        events.append(now)
        return None
