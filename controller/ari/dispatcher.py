"""Routes each ARI event to the object that owns it, in order, without blocking the reader.

An owner (a call session, an agent leg…) claims the ids it cares about: its channels, bridges,
playbacks, recordings. Ids are chosen by us before the request that creates the object, so even
an event that arrives before the REST response finds its owner. Each owner has its own inbox,
consumed by its own task: one slow call never delays another, and a call sees its events in the
order Asterisk sent them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from controller.ari.models import ChannelDestroyed, Event, StasisEnd, StasisStart

log = logging.getLogger("controller.ari.dispatcher")


class EventSink(Protocol):
    def deliver(self, event: Event) -> None: ...


class Inbox:
    """An owner's ordered queue of events; `get` waits with an optional timeout."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Event] = asyncio.Queue()

    def deliver(self, event: Event) -> None:
        self._queue.put_nowait(event)

    async def get(self, timeout: float | None = None) -> Event | None:
        """The next event, or None when `timeout` seconds pass first."""
        if timeout is None:
            return await self._queue.get()
        if timeout <= 0:
            return self._queue.get_nowait() if not self._queue.empty() else None
        try:
            async with asyncio.timeout(timeout):
                return await self._queue.get()
        except TimeoutError:
            return None

    def pending(self) -> int:
        return self._queue.qsize()


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
        if self.end_watcher is not None and isinstance(event, StasisEnd | ChannelDestroyed):
            self.end_watcher(event)
        for object_id in event.routing_ids():
            owner = self._owners.get(object_id)
            if owner is not None:
                owner.deliver(event)
                return
        if isinstance(event, StasisStart):
            self._on_new_channel(event)
        else:
            self.unrouted += 1
