"""The CTI event stream: every call and agent event, numbered, persisted, then fanned out.

`publish()` gives each event the next sequence number and queues it; `run()` commits queued events
to the store in batches and only then hands them, in order, to its listeners (the /ws fan-out,
webhooks, queue_log and CDRs). So a sequence number that anyone has seen is in the store: after a crash
the stream continues from the store's newest number, and no number ever goes out twice for two
different events, nor is one skipped. While the store fails, events wait in memory (bounded by
`max_unpersisted`; beyond it new events are refused and counted, never given a number) and go
out once committed. Event types and their fields are documented in events.yml and checked by the
JSON Schemas in schemas.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from controller import jsontext
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
    #: `data` as JSON text (the store's column): given when read from the store, else encoded on first use.
    data_json: str | None = field(default=None, compare=False, repr=False)
    #: The whole event as JSON text (what the WebSocket and webhooks send): given when published (one encoding
    #: for it and the stored `data`: `EventBus.publish`), else built on first use around `data_json`.
    text: str | None = field(default=None, compare=False, repr=False)

    def _envelope(self) -> dict[str, Any]:
        return {"seq": self.seq, "type": self.type, "at": self.at, "call_id": self.call_id,
                "agent_id": self.agent_id, "queue": self.queue}

    def as_dict(self) -> dict[str, Any]:
        return {**self._envelope(), "data": self.data}

    def data_text(self) -> str:
        """`data` as JSON (for the store), encoded once."""
        if self.data_json is None:
            object.__setattr__(self, "data_json", jsontext.dumps(self.data))
        return self.data_json  # type: ignore[return-value]

    def as_json(self) -> str:
        """`as_dict()` as JSON text, what the WebSocket and webhooks send: encoded once for every subscriber
        and webhook; an event read from the store is built around its data's stored text."""
        if self.text is None:
            head = jsontext.dumps(self._envelope())
            object.__setattr__(self, "text", f'{head[:-1]},"data":{self.data_text()}}}')
        return self.text  # type: ignore[return-value]


#: Events that name no agent but are work for every agent of their queue: a new message or fax in its inbox.
QUEUE_WORK_EVENTS = frozenset({"voicemail.new", "fax.new"})
#: Managed configuration every agent's toolbar shows (GET /api/desk/options): not-ready reasons, standard
#: prompts, the hold and ACW standards. Their agent's own item and their queues' items concern them too.
DESK_CONFIG_KINDS = frozenset({"not_ready_reason", "standard_prompt", "standards"})


@dataclass(frozen=True)
class AgentScope:
    """What an agent's token or session sees: events about that agent, plus the few that name no agent but
    concern them (README "CTI events": what an agent sees). `queues_of` answers the agent's queues as they
    are now (None: no such agent), so a queue added to them live counts at once."""

    agent_id: str
    queues_of: Callable[[str], Collection[str] | None] = lambda _agent: None

    def sees(self, event: CtiEvent) -> bool:
        if event.agent_id is not None:
            return event.agent_id == self.agent_id
        if event.type in QUEUE_WORK_EVENTS:
            return event.queue is not None and event.queue in (self.queues_of(self.agent_id) or ())
        if event.type == "config.changed":
            kind, key = event.data.get("kind"), event.data.get("key")
            return (kind in DESK_CONFIG_KINDS or (kind == "agent" and key == self.agent_id)
                    or (kind == "queue" and key in (self.queues_of(self.agent_id) or ())))
        return False


@dataclass(frozen=True)
class EventFilter:
    """Which events a subscriber wants: type patterns ("call.*"), a queue, an agent; `scope`: an agent's own
    view (instead of `agent_id`)."""

    types: tuple[str, ...] = ()
    queue: str | None = None
    agent_id: str | None = None
    scope: AgentScope | None = None

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
        if self.scope is not None:
            return self.scope.sees(event)
        return self.agent_id is None or event.agent_id == self.agent_id


#: What hears the stream: each batch of committed events, in order, as it is published (the /ws fan-out, webhooks,
#: queue_log and CDRs). Called on the event loop, before anything newer is published: it must not block or raise.
Listener = Callable[[list[CtiEvent]], None]

#: A failed commit of events is tried again after the first delay, doubling up to the second.
RETRY_SECONDS = (0.2, 5.0)
#: How long stopping waits for the last events to be committed.
FINAL_COMMIT_SECONDS = 5.0
#: Calls whose agent is remembered for their `call.ended` (a bound for calls that never end cleanly).
_CALLS_REMEMBERED = 10_000
#: The newest published events kept in memory for `since` (webhooks and clients a little behind); older ones are
#: read from the store. Bounded by number and by the size of their JSON text: a ringing call's event carries the
#: screen pop (the caller's last calls), 30 times a hold's; 20,000 events kept ~25 MB, still growing after a
#: 10-minute soak (README "Benchmarks", third round). (The bytes were their data's until 2026-11-27, when an event
#: kept both texts; it keeps only the whole event's now: about as many events in less memory.)
RECENT_EVENTS = 5_000
RECENT_BYTES = 700_000
_INSERT = ("INSERT INTO cti_events (seq, at, type, call_id, agent_id, queue, data)"
           " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (seq) DO NOTHING")


class EventBus:
    def __init__(self, store: Store, now: Callable[[], float], recent: int = RECENT_EVENTS,
                 recent_bytes: int = RECENT_BYTES, max_unpersisted: int = 100_000, batch: int = 2_000) -> None:
        self._store = store
        self._now = now
        self._assigned = 0  # the newest number handed out (maybe not committed yet)
        self._published_seq = 0  # the newest number committed and fanned out
        self._recent: deque[CtiEvent] = deque()  # oldest first
        self._recent_bytes = 0  # the size of their JSON text (`CtiEvent.text`)
        self._recent_bounds = (recent, recent_bytes)
        self._unpersisted: deque[CtiEvent] = deque()
        self._written_through = 0  # the newest number queued to the store (committed or not)
        self._tickets: dict[int, int | None] = {}  # seq -> the store's ticket of its row (None: not queued)
        self._wake = asyncio.Event()  # `run` has work: no writer to publish what it commits, or a hand-over
        # With the store's writer running, each commit publishes what it stored (`_publish_committed`, a listener of
        # the store); `run` takes over what a commit cannot do by itself (`_handed_over`) and, meanwhile (`_busy`),
        # the commits leave it to `run`.
        self._handed_over = False
        self._busy = False
        store.commit_listeners.append(self._on_commit)
        self._call_agent: dict[str, str] = {}  # call id -> the agent it was last offered to / with
        self.listeners: list[Listener] = []
        #: Called once the stream has stopped (the controller is stopping): nothing more is published.
        self.stop_listeners: list[Callable[[], None]] = []
        self.stopped = False
        self.max_unpersisted = max_unpersisted
        self.batch = batch
        self.published = 0
        self.dropped = 0  # refused because too many waited for the store (logged)
        self.commit_failures = 0

    async def open(self) -> None:
        """Continue the numbering from the store's newest event."""
        row = await self._store.fetchone("SELECT MAX(seq) AS seq FROM cti_events")
        self._assigned = self._published_seq = self._written_through = int(row["seq"] or 0) if row else 0

    @property
    def last_seq(self) -> int:
        """The newest event committed and published (what a client can have seen)."""
        return self._published_seq

    @property
    def unpersisted(self) -> int:
        """Events numbered but not committed yet (waiting for the store)."""
        return len(self._unpersisted)

    def publish(self, type_: str, *, call_id: str | None = None, agent_id: str | None = None,
                queue: str | None = None, **data: Any) -> CtiEvent | None:
        """Number an event and queue it for the store; listeners get it once it is committed.
        None when it was refused because the store has been failing for too long."""
        if type_ not in EVENT_TYPES:
            raise ValueError(f"undocumented event type {type_!r}: add it to events.yml")
        if len(self._unpersisted) >= self.max_unpersisted:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("CTI: %d events wait for the store (failing); %d new events refused so far",
                          len(self._unpersisted), self.dropped)
            return None
        if call_id is not None and (agent_id is not None or type_ == "call.ended"):
            agent_id = self._agent_of(type_, call_id, agent_id)
        seq = self._assigned = self._assigned + 1
        at = round(self._now(), 3)
        # One encoding: the text every client and webhook gets, and within it the data's text for the store.
        text, data_json = jsontext.dumps_with_last({"seq": seq, "type": type_, "at": at, "call_id": call_id,
                                                    "agent_id": agent_id, "queue": queue, "data": data})
        event = CtiEvent(seq, type_, at, call_id, agent_id, queue, data, text=text)
        if not self._unpersisted and not self._store.writing:
            self._wake.set()  # (with the writer running, its commit publishes it: `_publish_committed`)
        self._unpersisted.append(event)
        if seq == self._written_through + 1:  # (else `run` writes it, after the ones to write again)
            # Queued now, with the caller's own writes of the moment: the event is committed in the same
            # transaction as the change it reports (a call record's end and its `call.ended`).
            self._tickets[seq] = self._store.write_watched(
                _INSERT, (seq, at, type_, call_id, agent_id, queue, data_json))
            self._written_through = seq
        return event

    def _agent_of(self, type_: str, call_id: str, agent_id: str | None) -> str | None:
        """`call.ended` concerns the agent the call was last with, so that agent's token receives it (asked for
        a call's events that name an agent, and its `call.ended`)."""
        if type_ == "call.ended":
            remembered = self._call_agent.pop(call_id, None)
            return agent_id or remembered
        if agent_id is not None:
            self._call_agent.pop(call_id, None)  # re-insert: the dict stays ordered oldest call first
            self._call_agent[call_id] = agent_id
            if len(self._call_agent) > _CALLS_REMEMBERED:
                del self._call_agent[next(iter(self._call_agent))]
        return agent_id

    async def run(self) -> None:
        """Commit queued events in batches and fan them out in order; run in the application's TaskGroup. With the
        store's writer running, its commits publish what they store without this task (`_publish_committed`): it
        is woken only for what they cannot do (a failing store, an event to write again, no writer).
        Cancelled, it hands what is still queued to the store (committed when the store closes) and tells the
        stop listeners (the /ws fan-out ends every client's stream: they resume with `since` from the next
        process)."""
        delay = RETRY_SECONDS[0]
        unpersisted = self._unpersisted
        try:
            while True:
                while not unpersisted or (self._store.writing and not self._handed_over):
                    self._wake.clear()
                    await self._wake.wait()
                batch = list(unpersisted) if len(unpersisted) <= self.batch else \
                    [unpersisted[i] for i in range(self.batch)]
                self._busy = True
                try:
                    persisted = await self._persist(batch)
                finally:
                    self._busy = False
                if persisted:
                    delay = RETRY_SECONDS[0]
                    for _ in batch:
                        unpersisted.popleft()
                    self._handed_over = False
                    self._fan_out(batch + self._committed_since())
                    self._publish_committed()  # (more of them beyond a batch, or a hand-over)
                    continue
                if self._store.frozen:
                    # A graceful stop froze the store: what was queued before is committed as it closes; events
                    # published since come from the stop itself (its calls are left to the next process, which
                    # resumes them), so they are neither stored nor sent. Nothing to retry until cancelled.
                    await asyncio.get_running_loop().create_future()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_SECONDS[1])
        finally:
            # (A frozen store, a graceful stop: the events were queued to it when published, before it froze, and
            # it commits them as it closes; a write now would be dropped and reported as not stored.)
            self._handed_over = self._busy = True  # the commits publish nothing more
            if unpersisted and not self._store.frozen:
                # Written again (ON CONFLICT DO NOTHING): a commit cancelled with this task may never have run.
                # Committed before the store's writer is stopped in turn (bounded: the store may be failing;
                # then the closing store tries once more).
                self._written_through = min(self._written_through, unpersisted[0].seq - 1)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._persist(list(unpersisted)), FINAL_COMMIT_SECONDS)
            self.stopped = True
            for listener in self.stop_listeners:
                listener()

    def _on_commit(self) -> None:
        """The store's commit ended (done or failed) or its writer stopped: publish what it stored, unless `run` has
        taken over."""
        if self._unpersisted and not (self._busy or self._handed_over):
            self._publish_committed()

    def _publish_committed(self) -> None:
        """Fan out, in order, the events whose rows are committed (in the commit's own loop iteration: no task is
        woken for it, at 10 calls/s ~3 loop iterations per call less); hand the first one left over to `run` when
        no commit will store it by itself: not queued (to write again after a rejection, or a frozen store),
        rejected, a failing store or no writer."""
        while more := self._committed_since():
            self._fan_out(more)
        unpersisted, store = self._unpersisted, self._store
        if not unpersisted:
            return
        ticket = self._tickets.get(unpersisted[0].seq)
        if ticket is None or store.done(ticket) or store.failing or not store.writing:
            self._handed_over = True
            self._wake.set()

    def _write(self, events: Iterable[CtiEvent]) -> None:
        """Queue the rows of events not queued yet (written again after a failed or refused commit)."""
        for event in events:
            if event.seq > self._written_through:
                if (earlier := self._tickets.get(event.seq)) is not None:
                    self._store.forget(earlier)  # written again: only the new statement's outcome counts
                self._tickets[event.seq] = self._store.write_watched(
                    _INSERT, (event.seq, event.at, event.type, event.call_id, event.agent_id, event.queue,
                              event.data_text()))
                self._written_through = event.seq

    async def _persist(self, batch: list[CtiEvent]) -> bool:
        """True once every event of the batch is committed: the store says what became of each row's statement
        (`Store.stored`), so a statement it rejected, or never queued, is not taken for committed."""
        first, last = batch[0].seq, batch[-1].seq
        if last > self._written_through:
            self._write(batch)
        try:
            # Committed with the other writes of the moment (one transaction for many calls' changes when busy).
            await self._store.committed()
        except Exception as exc:
            self.commit_failures += 1
            log.error("CTI: events %d-%d not committed yet (%s); %d events wait, nothing is published meanwhile",
                      first, last, exc, len(self._unpersisted))
            return False
        pop = self._tickets.pop
        stored = self._store.stored([pop(seq, None) for seq in range(first, last + 1)])
        if stored == len(batch):
            return True
        self._not_all_stored(first, last, stored)
        return False

    def _not_all_stored(self, first: int, last: int, stored: int) -> None:
        """The store committed only `stored` of events first..last: they are written again from `first` (DO NOTHING
        on a conflict: the rows that exist stay as they are), a failure counted and logged, except at a graceful
        stop (a frozen store: `run()` stops, nothing is written again)."""
        if not self._store.frozen:
            self.commit_failures += 1
            log.error("CTI: the store committed only %d of events %d-%d; writing them again", stored, first, last)
        self._written_through = first - 1

    def _committed_since(self) -> list[CtiEvent]:
        """The events queued behind a batch whose rows the same commit stored (published while the batch waited for
        it): they go out with it, in order, not as a batch each after it (at 10 calls/s, 4.4 fan-outs per call
        for 2.9 commits: a write to every /ws client each). Stops at the first one not committed yet; one the store
        rejected is written again (as `_persist` does) and held, with those behind it, until stored."""
        unpersisted, tickets, store = self._unpersisted, self._tickets, self._store
        more: list[CtiEvent] = []
        while unpersisted and len(more) < self.batch:
            event = unpersisted[0]
            ticket = tickets.get(event.seq)
            if ticket is None or not store.done(ticket):
                break
            del tickets[event.seq]
            if not store.stored((ticket,)):
                self._not_all_stored(event.seq, event.seq, 0)
                break
            more.append(unpersisted.popleft())
        return more

    def _fan_out(self, batch: list[CtiEvent]) -> None:
        """Publish a committed batch: kept for `since` (the oldest forgotten beyond either bound: the store has
        them), then handed to every listener."""
        recent = self._recent
        size = self._recent_bytes
        for event in batch:
            recent.append(event)
            size += len(event.text or "")
        most, most_bytes = self._recent_bounds
        while len(recent) > 1 and (len(recent) > most or size > most_bytes):
            size -= len(recent.popleft().text or "")
        self._recent_bytes = size
        self._published_seq = batch[-1].seq
        self.published += len(batch)
        for listener in self.listeners:
            listener(batch)

    async def since(self, seq: int, limit: int = 10_000) -> list[CtiEvent]:
        """Published events after `seq`, oldest first, at most `limit` (from memory when recent enough,
        else from the store)."""
        if self._recent and self._recent[0].seq <= seq + 1:
            return [event for event in self._recent if event.seq > seq][:limit]
        rows = await self._store.fetchall(
            "SELECT seq, at, type, call_id, agent_id, queue, data FROM cti_events WHERE seq > ? AND seq <= ?"
            " ORDER BY seq LIMIT ?", (seq, self._published_seq, limit))
        return list(_from_rows(rows))


def _from_rows(rows: Iterable[Any]) -> Iterable[CtiEvent]:
    for row in rows:
        yield CtiEvent(row["seq"], row["type"], row["at"], row["call_id"], row["agent_id"], row["queue"],
                       jsontext.loads(row["data"]), row["data"])
