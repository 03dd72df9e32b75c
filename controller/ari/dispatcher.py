"""Routes each ARI event to the object that owns it, in order, without blocking the reader.

An owner (a call session, an agent leg…) claims the ids it cares about: its channels, bridges,
playbacks, recordings. Ids are chosen by us before the request that creates the object, so even
an event that arrives before the REST response finds its owner. Each owner has its own inbox,
consumed by its own task: one slow call never delays another, and a call sees its events in the
order Asterisk sent them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from controller.ari.models import ChannelDestroyed, Event, StasisEnd, StasisStart

log = logging.getLogger("controller.ari.dispatcher")


class EventSink(Protocol):
    def deliver(self, event: Event) -> None: ...


class Inbox:
    """An owner's ordered queue of events; `get` waits with an optional timeout.

    Not an asyncio.Queue and asyncio.timeout: every event of every call passes here, and those cost ~20 Python
    calls per event (getters' bookkeeping, a timeout context that reschedules and looks up the current task,
    each lookup of the running loop a getpid() on Python 3.11); here a waiter is one future, its deadline one
    timer (`loop.call_at`). Like asyncio.Queue, several tasks may wait at once: each event wakes the first."""

    __slots__ = ("_events", "_loop", "_waiters")

    def __init__(self) -> None:
        self._events: collections.deque[Event] = collections.deque()
        self._waiters: collections.deque[asyncio.Future[bool]] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop of the task that waits here, looked up once: on Python 3.11 each lookup is a getpid()
        system call, and a call's task waits here for each of its events (an inbox serves one loop)."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop

    def deliver(self, event: Event) -> None:
        self._events.append(event)
        waiters = self._waiters
        if waiters:  # most often the call's task waits: wake it here, without a call to _wake_next
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(True)
            else:
                self._wake_next()

    async def get(self, timeout: float | None = None) -> Event | None:
        """The next event, or None when `timeout` seconds pass first."""
        events = self._events
        if events:
            return events.popleft()
        if timeout is not None and timeout <= 0:
            return None
        loop = self._loop or self.loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not events:
            waiter: asyncio.Future[bool] = loop.create_future()
            self._waiters.append(waiter)
            expiry = None if deadline is None else loop.call_at(deadline, _expire, waiter)
            try:
                woken = await waiter  # True: an event came; False: the deadline passed
            except BaseException:  # cancelled: an event this waiter was woken for goes to the next one
                if waiter.done() and not waiter.cancelled():
                    self._wake_next()
                else:
                    self._discard(waiter)
                raise
            finally:
                if expiry is not None:
                    expiry.cancel()
            if not woken:
                self._discard(waiter)
                return events.popleft() if events else None
        return events.popleft()

    def pending(self) -> int:
        return len(self._events)

    def _wake_next(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(True)
                return

    def _discard(self, waiter: asyncio.Future[bool]) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


#: The events `Dispatcher.end_watcher` is told (by class: ARI's event classes have no subclasses).
_CHANNEL_ENDS = frozenset({StasisEnd, ChannelDestroyed})


class Dispatcher:
    def __init__(self, on_new_channel: Callable[[StasisStart], None]) -> None:
        self._owners: dict[str, EventSink] = {}
        self._on_new_channel = on_new_channel
        self.unrouted = 0
        # Told every channel's StasisEnd and ChannelDestroyed before it is routed, whoever owns the channel: the
        # talk bridge pool learns from them that a channel has left every bridge (res_stasis departs it first).
        self.end_watcher: Callable[[StasisEnd | ChannelDestroyed], None] | None = None

    def claim(self, object_id: str, owner: EventSink) -> None:
        self._owners[object_id] = owner

    def release(self, object_id: str) -> None:
        self._owners.pop(object_id, None)

    def owner_of(self, object_id: str) -> EventSink | None:
        return self._owners.get(object_id)

    def owners(self) -> set[EventSink]:
        return set(self._owners.values())

    def ids_by_owner(self) -> dict[EventSink, list[str]]:
        """Every claimed id, grouped by owner (one pass; for the re-check after a reconnect)."""
        grouped: dict[EventSink, list[str]] = {}
        for object_id, owner in self._owners.items():
            grouped.setdefault(owner, []).append(object_id)
        return grouped

    def dispatch(self, event: Event) -> None:
        if self.end_watcher is not None and event.__class__ in _CHANNEL_ENDS:
            self.end_watcher(event)  # type: ignore[arg-type]
        for object_id in event.routing_ids():
            owner = self._owners.get(object_id)
            if owner is not None:
                owner.deliver(event)
                return
        if isinstance(event, StasisStart):
            self._on_new_channel(event)
        else:
            self.unrouted += 1
