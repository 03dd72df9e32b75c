"""The garbage collector, for a process whose calls' objects live seconds (README "Benchmarks"): its set-up after
start (`tune_gc_after_start_up`), and its passes held back while an offered call rings its agent (issue 19).

With many calls waiting, a pass over the collector's middle or oldest generation walks every waiting call's objects
(~100 each: with 1,000 callers waiting, ~100,000 objects, 30-140 ms with the event loop stopped). Such a pass runs at
whichever allocation crosses the collector's count; when that falls between an agent becoming ready and the originate
that rings their phone, the phone rings that much later (the concurrency bench's 50 agents made ready at once with
1,000 callers waiting: ready -> ringing p50 175-345 ms instead of ~100-150 ms, only because fewer objects allocated
per call since the previous pass had moved the due pass into that window). `RINGING` holds the automatic passes back
from an offer until its agent's phone is dialled: a pass that became due meanwhile runs at the next allocation after,
while Asterisk rings. The collector is held back for `MAX_PAUSE_SECONDS` at most in one go, however many offers
follow one another."""

from __future__ import annotations

import asyncio
import gc


def tune_gc_after_start_up() -> None:
    """The garbage collector, for a process whose calls' objects live seconds (README "Benchmarks"):
    - start-up's ~75,000 objects (configuration, flows, schemas, libraries) are frozen, out of every later pass:
      a full pass in a call burst walked ~120,000 objects, now ~30,000 (26 ms of CPU; frozen objects are
      still freed by reference counting);
    - the youngest generation is collected after GC_YOUNGEST_THRESHOLD net allocations instead of 700: at 60
      calls/s that was ~16 passes a second over objects that nearly all outlived them (a call's), ~0.4 ms of
      CPU per call with the middle and full passes they led to; now ~0.1 ms, each pass ≤ ~10 ms."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNGEST_THRESHOLD, *gc.get_threshold()[1:])


#: Net allocations of container objects between two passes over the youngest generation (Python's default: 700).
GC_YOUNGEST_THRESHOLD = 10_000


#: The longest the automatic passes are held back in one go (offers one after another keep it held only this long:
#: then the collector runs, and the next offer holds it back again).
MAX_PAUSE_SECONDS = 0.5


class CollectorPause:
    """Holds the collector's automatic passes back while any holder has not released (or until the limit). A hold
    returns a token for its release: a release after the limit ended its pause is ignored."""

    def __init__(self, limit: float = MAX_PAUSE_SECONDS) -> None:
        self.limit = limit
        self.pauses = 0  # how many times the collector was held back (a figure for tests and benchmarks)
        self._holds = 0
        self._pause = 0  # the current pause's number: the tokens of earlier ones are stale
        self._expiry: asyncio.TimerHandle | None = None

    @property
    def holding(self) -> bool:
        return self._holds > 0

    def hold(self) -> int:
        """Hold the automatic passes back until `release(token)`; on the event loop. A collector disabled by someone
        else stays as it is (the token's release does nothing)."""
        if self._holds == 0:
            if not gc.isenabled():
                return -1
            gc.disable()
            self._pause += 1
            self.pauses += 1
            self._expiry = asyncio.get_running_loop().call_later(self.limit, self._resume)
        self._holds += 1
        return self._pause

    def release(self, token: int) -> None:
        if token != self._pause or self._holds == 0:
            return  # held back by someone else, or the pause ended at its limit
        self._holds -= 1
        if self._holds == 0:
            self._resume()

    def _resume(self) -> None:
        self._holds = 0
        self._pause += 1  # (stale tokens from now on)
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        gc.enable()


#: Held from an offer's decision until its agent's phone is dialled (`QueueCall`).
RINGING = CollectorPause()
