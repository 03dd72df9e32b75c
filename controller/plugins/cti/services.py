"""The CTI event stream: every call and agent event, numbered, persisted, fanned out.

`publish()` gives each event the next sequence number of the stream, keeps it in memory for
live subscribers and writes it to the store (batched), so a client that reconnects — or a webhook
whose CRM was down — resumes from a sequence number without missing anything, across controller
restarts too. Event types and their fields are documented in events.yml and checked by the JSON
Schemas in schemas.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from controller.plugins.cti.schemas import EVENT_TYPES
from controller.store.db import Store

log = logging.getLogger("controller.cti")


@dataclass(frozen=True, slots=True)
class CtiEvent:
    seq: int
    type: str
    at: float
    call_id: str | None
    agent_id: str | None
    queue: str | None
    data: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "type": self.type, "at": self.at, "call_id": self.call_id,
                "agent_id": self.agent_id, "queue": self.queue, "data": self.data}


@dataclass(frozen=True)
class EventFilter:
    """Which events a subscriber wants: type patterns ("call.*"), a queue, an agent."""

    types: tuple[str, ...] = ()
    queue: str | None = None
    agent_id: str | None = None

    @classmethod
    def parse(cls, types: str | None, queue: str | None = None, agent_id: str | None = None) -> EventFilter:
        patterns = tuple(t.strip() for t in (types or "").split(",") if t.strip())
        return cls(patterns, queue or None, agent_id or None)

    def matches(self, event: CtiEvent) -> bool:
        if self.types and not any(
            event.type == p or (p.endswith("*") and event.type.startswith(p[:-1])) for p in self.types
        ):
            return False
        if self.queue is not None and event.queue != self.queue:
            return False
        return self.agent_id is None or event.agent_id == self.agent_id


@dataclass(eq=False)
class Subscriber:
    queue: asyncio.Queue[CtiEvent] = field(default_factory=lambda: asyncio.Queue(maxsize=5000))
    overflowed: bool = False


class EventBus:
    def __init__(self, store: Store, now: Callable[[], float], recent: int = 20_000) -> None:
        self._store = store
        self._now = now
        self._seq = 0
        self._recent: deque[CtiEvent] = deque(maxlen=recent)
        self._subscribers: set[Subscriber] = set()
        self.listeners: list[Callable[[CtiEvent], None]] = []
        self.published = 0

    async def open(self) -> None:
        row = await self._store.fetchone("SELECT MAX(seq) AS seq FROM cti_events")
        self._seq = int(row["seq"] or 0) if row else 0

    @property
    def last_seq(self) -> int:
        return self._seq

    def publish(self, type_: str, *, call_id: str | None = None, agent_id: str | None = None,
                queue: str | None = None, **data: Any) -> CtiEvent:
        if type_ not in EVENT_TYPES:
            raise ValueError(f"undocumented event type {type_!r}: add it to events.yml")
        self._seq += 1
        event = CtiEvent(self._seq, type_, round(self._now(), 3), call_id, agent_id, queue, data)
        self._recent.append(event)
        self.published += 1
        self._store.write(
            "INSERT INTO cti_events (seq, at, type, call_id, agent_id, queue, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (event.seq, event.at, event.type, call_id, agent_id, queue,
             json.dumps(data, ensure_ascii=False, default=str)))
        for subscriber in list(self._subscribers):
            if subscriber.overflowed:
                continue
            try:
                subscriber.queue.put_nowait(event)
            except asyncio.QueueFull:
                subscriber.overflowed = True  # the reader is told to resume from its last sequence number
        for listener in self.listeners:
            listener(event)
        return event

    def subscribe(self) -> Subscriber:
        subscriber = Subscriber()
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    async def since(self, seq: int, limit: int = 10_000) -> list[CtiEvent]:
        """Events after `seq`, oldest first (from memory when recent enough, else from the store)."""
        if self._recent and self._recent[0].seq <= seq + 1:
            return [event for event in self._recent if event.seq > seq][:limit]
        rows = await self._store.fetchall(
            "SELECT seq, at, type, call_id, agent_id, queue, data FROM cti_events WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, limit))
        return list(_from_rows(rows))


def _from_rows(rows: Iterable[Any]) -> Iterable[CtiEvent]:
    for row in rows:
        yield CtiEvent(row["seq"], row["type"], row["at"], row["call_id"], row["agent_id"], row["queue"],
                       json.loads(row["data"]))
