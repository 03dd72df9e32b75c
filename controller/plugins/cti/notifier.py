"""Webhooks: every event POSTed to each configured endpoint, signed, in order, never lost.

Each webhook has a cursor in the store: the sequence number up to which everything it wants was
handled. Its worker sends the next event (read back from the persisted stream) and only then
moves on:
- a receiver that is down, times out, answers 5xx, 408 or 429 is retried with backoff (1 s doubling
  to 60 s) for as long as it takes, so a CRM that is down for hours gets every event once it is
  back, in order — across controller restarts too;
- an event the receiver refuses (any other 4xx) is tried `max_attempts` times, then becomes a
  *dead letter* (kept in `webhook_deliveries`, state `dead`) and the worker moves on. An operator
  sees dead letters and has them delivered again (`replay_dead_letters`), e.g. once the CRM is fixed.
`replay(name, since)` moves the cursor back to send events again; the worker drops the page it
was on rather than writing its own cursor over the operator's.

Webhooks change live (`apply`, the administration's `webhooks:`): a new one gets what is published
from the moment it is added; a changed URL, secret, filter or timeout is used from the next POST
(an event being retried is retried to the new URL); a removed one stops at once (an unfinished POST
to it is abandoned) and its delivery state — cursor, retries, dead letters — is dropped: the events
themselves stay in the stream (`/api/events`) for their retention. Added again under the same name,
it starts from the moment it is added, like any new webhook.

Each POST carries `X-CCC-Signature: sha256=<hex HMAC-SHA256 of the body with the webhook's secret>`,
`X-CCC-Event`, `X-CCC-Seq` and `X-CCC-Timestamp`. Secrets are never logged. The cursor is written once
the receiver took the event and committed with the store's next grouped commit (within about 20 ms): a
crash in between sends the events of that instant again: receivers de-duplicate by `X-CCC-Seq`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp

from controller.config import WebhookSettings
from controller.plugins.cti.services import CtiEvent, EventBus, EventFilter
from controller.store.db import Store
from controller.store.engines import upsert

log = logging.getLogger("controller.webhooks")


#: Statuses worth trying again (the receiver is busy or timed out); other 4xx are permanent refusals.
TRANSIENT_4XX = frozenset({408, 429})
#: A worker whose store reads fail waits this long (doubling to the second) before trying again.
STORE_RETRY_SECONDS = (1.0, 30.0)
Outcome = Literal["delivered", "dead", "stopped"]


@dataclass(frozen=True)
class Webhook:
    name: str
    url: str
    secret: str
    filter: EventFilter
    timeout: float = 5.0
    max_attempts: int = 5  # tries of an event the receiver refuses (4xx) before it is a dead letter

    @classmethod
    def from_config(cls, entry: WebhookSettings) -> Webhook:
        return cls(name=entry.name, url=entry.url, secret=entry.secret,
                   filter=EventFilter(tuple(entry.types), entry.queue), timeout=entry.timeout,
                   max_attempts=entry.max_attempts)


@dataclass(frozen=True)
class Failure:
    error: str
    permanent: bool  # the receiver refused the event (4xx but 408/429): trying again will not help


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


#: A failed delivery being retried (its row replaced: a `delivered_at` of an earlier send is cleared).
_RETRYING = upsert("webhook_deliveries", ("webhook", "seq", "attempts", "last_error", "state", "failed_at"),
                   ("webhook", "seq"), clear=("delivered_at",))

class WebhookNotifier:
    def __init__(self, webhooks: list[Webhook], bus: EventBus, store: Store,
                 session_factory: Any, *, max_backoff: float = 60.0, first_backoff: float = 1.0) -> None:
        self.webhooks: dict[str, Webhook] = {}
        self._bus = bus
        self._store = store
        self._session_factory = session_factory  # returns the shared aiohttp.ClientSession
        self._wake: dict[str, asyncio.Event] = {}
        self._cursor: dict[str, int] = {}
        self._generation: dict[str, int] = {}  # bumped by replay(): the worker's page is stale
        self._requeued: dict[str, bool] = {}  # dead letters to send again (checked at start)
        self._retrying: dict[str, dict[str, Any]] = {}  # name -> the event being retried and why
        self.dead: dict[str, int] = {}  # current dead letters per webhook (a metric)
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._group: asyncio.TaskGroup | None = None  # while run() runs
        for hook in webhooks:
            self._add(hook)
        self.max_backoff = max_backoff
        self.first_backoff = first_backoff
        self.delivered = 0
        self.failures = 0
        self.dead_lettered = 0
        self._stopping = asyncio.Event()
        bus.listeners.append(self._on_events)

    def has(self, name: str) -> bool:
        return name in self.webhooks

    def _add(self, hook: Webhook) -> None:
        self.webhooks[hook.name] = hook
        self._wake[hook.name] = asyncio.Event()
        self._generation[hook.name] = 0
        self._requeued[hook.name] = True
        self.dead[hook.name] = 0
        if self._group is not None:
            self._workers[hook.name] = self._group.create_task(self._worker(hook.name))

    async def apply(self, webhooks: list[Webhook]) -> None:
        """Make `webhooks` the live set (see the module's docstring for what adding, changing and
        removing one means)."""
        wanted = {hook.name: hook for hook in webhooks}
        for name in [name for name in self.webhooks if name not in wanted]:
            await self._remove(name)
        for name, hook in wanted.items():
            if name not in self.webhooks:
                # From now on: its cursor is written before any event published after this can be missed.
                await self._store.execute("INSERT INTO webhook_cursor (webhook, delivered_seq) VALUES (?, ?)"
                                          " ON CONFLICT (webhook) DO NOTHING", (name, self._bus.last_seq))
                self._add(hook)
                log.info("webhook %s added: events from seq %d on", name, self._bus.last_seq + 1)
            elif self.webhooks[name] != hook:
                self.webhooks[name] = hook  # the worker reads it before each POST
                self._wake[name].set()  # a filter that now matches more: look at the stream again
                log.info("webhook %s changed", name)

    async def _remove(self, name: str) -> None:
        worker = self._workers.pop(name, None)
        if worker is not None:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
        del self.webhooks[name]
        for state in (self._wake, self._cursor, self._generation, self._requeued, self._retrying, self.dead):
            state.pop(name, None)
        await self._store.execute("DELETE FROM webhook_deliveries WHERE webhook = ?", (name,))
        await self._store.execute("DELETE FROM webhook_cursor WHERE webhook = ?", (name,))
        log.info("webhook %s removed: its delivery state (cursor, retries, dead letters) is dropped", name)

    def _on_events(self, events: list[CtiEvent]) -> None:
        for name, hook in self.webhooks.items():
            if any(hook.filter.matches(event) for event in events):
                self._wake[name].set()

    def backlog(self) -> int:
        """Events published but not yet delivered, summed over webhooks (a metric)."""
        return sum(max(0, self._bus.last_seq - self._cursor.get(name, self._bus.last_seq)) for name in self.webhooks)

    async def status(self) -> list[dict[str, Any]]:
        return [{"name": name, "url": hook.url, "delivered_seq": self._cursor.get(name),
                 "last_seq": self._bus.last_seq, "max_attempts": hook.max_attempts,
                 "dead_letters": self.dead[name], "retrying": self._retrying.get(name)}
                for name, hook in self.webhooks.items()]

    async def replay(self, name: str, since: int) -> None:
        """Send every event after `since` again (it must not be beyond the newest event)."""
        if not 0 <= since <= self._bus.last_seq:
            raise ValueError(f"since={since} is not between 0 and the newest event ({self._bus.last_seq})")
        self._cursor[name] = since
        self._generation[name] += 1
        await self._store.execute(upsert("webhook_cursor", ("webhook", "delivered_seq"), ("webhook",)), (name, since))
        self._wake[name].set()

    async def dead_letters(self, name: str, limit: int = 100) -> list[dict[str, Any]]:
        rows = await self._store.fetchall(
            "SELECT d.seq, d.attempts, d.last_error, d.failed_at, e.type, e.call_id, e.at FROM webhook_deliveries d"
            " LEFT JOIN cti_events e ON e.seq = d.seq WHERE d.webhook = ? AND d.state = 'dead' ORDER BY d.seq LIMIT ?",
            (name, limit))
        return [{**dict(row), "stored": row["type"] is not None} for row in rows]

    async def replay_dead_letters(self, name: str, seqs: list[int] | None = None) -> list[int]:
        """Queue dead letters (all, or those of `seqs`) for delivery before the webhook's next events."""
        rows = await self._store.fetchall(
            "SELECT seq FROM webhook_deliveries WHERE webhook = ? AND state = 'dead' ORDER BY seq", (name,))
        wanted = None if seqs is None else set(seqs)
        requeued = [int(row["seq"]) for row in rows if wanted is None or row["seq"] in wanted]
        await self._store.executemany("UPDATE webhook_deliveries SET state = 'requeued' WHERE webhook = ? AND seq = ?",
                                      [(name, seq) for seq in requeued])
        self.dead[name] = max(0, self.dead[name] - len(requeued))
        self._requeued[name] = True
        self._wake[name].set()
        return requeued

    def stop(self) -> None:
        """Let each worker finish the POST it has in flight (and queue its cursor, committed as the store
        closes), then return: a POST cut off after the receiver took it would be sent again by the next process."""
        self._stopping.set()
        for wake in self._wake.values():
            wake.set()

    @property
    def longest_post(self) -> float:
        """How long a stop may wait for an in-flight POST."""
        return max((hook.timeout for hook in self.webhooks.values()), default=0.0)

    async def _pause(self, seconds: float) -> None:
        """Sleep, unless the notifier is stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def run(self) -> None:
        """One worker per webhook, also for those `apply` adds later; run in the application's TaskGroup
        (returns once stopped)."""
        try:
            async with asyncio.TaskGroup() as workers:
                self._group = workers
                for name in self.webhooks:
                    self._workers[name] = workers.create_task(self._worker(name))
                await self._stopping.wait()
        finally:
            self._group = None
            self._workers.clear()

    async def _load(self, name: str) -> None:
        row = await self._store.fetchone("SELECT delivered_seq FROM webhook_cursor WHERE webhook = ?", (name,))
        if row is None:  # a new webhook starts with what happens from now on
            await self._store.execute("INSERT INTO webhook_cursor (webhook, delivered_seq) VALUES (?, ?)",
                                      (name, self._bus.last_seq))
            self._cursor[name] = self._bus.last_seq
        else:
            self._cursor[name] = int(row["delivered_seq"])
        # A retry interrupted by a restart starts again from the cursor; its row said nothing else.
        self._store.write("DELETE FROM webhook_deliveries WHERE webhook = ? AND state = 'retrying'", (name,))
        dead = await self._store.fetchone(
            "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE webhook = ? AND state = 'dead'", (name,))
        self.dead[name] = int(dead["n"]) if dead else 0

    async def _worker(self, name: str) -> None:
        """Deliver forever; an error (a store read or cursor commit that fails) only pauses the worker."""
        delay = STORE_RETRY_SECONDS[0]
        while not self._stopping.is_set():
            try:
                if name not in self._cursor:
                    await self._load(name)
                await self._step(self.webhooks[name])
                delay = STORE_RETRY_SECONDS[0]
            except Exception as exc:  # mostly the store failing; never let it end the webhook (or the controller)
                log.error("webhook %s: delivery interrupted (%s: %s); trying again in %.0f s", name,
                          type(exc).__name__, exc, delay)
                await self._pause(delay)
                delay = min(delay * 2, STORE_RETRY_SECONDS[1])

    async def _step(self, hook: Webhook) -> None:
        """Dead letters an operator asked for again, else the next page of the stream (or wait for one)."""
        name = hook.name
        if self._requeued[name]:
            await self._send_requeued(hook)
            return
        generation = self._generation[name]
        self._wake[name].clear()  # before reading: an event published meanwhile sets it again
        pending = await self._bus.since(self._cursor[name], limit=500)
        if not pending:
            await self._wake[name].wait()
            return
        for event in pending:
            if self._stopping.is_set():
                return
            if self._generation[name] != generation or self._requeued[name]:
                return  # replayed meanwhile (the cursor moved back), or dead letters come first
            hook = self.webhooks[name]  # as it is now: `apply` may have changed it during the last POST
            sent = hook.filter.matches(event)
            if sent:
                if await self._deliver(hook, event) == "stopped":
                    return  # not handled: the next process sends it
                if self._generation[name] != generation:
                    return  # do not write over the replayed cursor
            self._cursor[name] = event.seq
            # Queued after the receiver took the event (never before: at least once), committed with the store's
            # next grouped commit rather than one commit of its own per event (a webhook's events went one commit
            # each); a crash in between sends the events of those few milliseconds again (de-duplicated by seq).
            self._store.write("UPDATE webhook_cursor SET delivered_seq = ? WHERE webhook = ?", (event.seq, name))

    async def _send_requeued(self, hook: Webhook) -> None:
        self._requeued[hook.name] = False
        rows = await self._store.fetchall(
            "SELECT d.seq, e.seq AS stored FROM webhook_deliveries d LEFT JOIN cti_events e ON e.seq = d.seq"
            " WHERE d.webhook = ? AND d.state = 'requeued' ORDER BY d.seq", (hook.name,))
        for row in rows:
            if self._stopping.is_set():
                self._requeued[hook.name] = True  # the next process sends the rest
                return
            events = await self._bus.since(int(row["seq"]) - 1, limit=1) if row["stored"] is not None else []
            if events and events[0].seq == row["seq"]:
                await self._deliver(hook, events[0], requeued=True)
            else:
                self._dead_letter(hook, int(row["seq"]), 0, "the event is no longer stored")

    async def _deliver(self, hook: Webhook, event: CtiEvent, *, requeued: bool = False) -> Outcome:
        """POST one event until the receiver takes it ("delivered"), refused it `max_attempts` times ("dead"),
        or the notifier stops between two attempts ("stopped"). Each attempt uses the webhook as it is
        then (a URL or secret changed by `apply` is used from the next attempt)."""
        body = event.as_json().encode()
        delay = self.first_backoff
        attempts = 0
        while True:
            attempts += 1
            hook = self.webhooks.get(hook.name, hook)
            headers = {"Content-Type": "application/json", "X-CCC-Event": event.type, "X-CCC-Seq": str(event.seq),
                       "X-CCC-Timestamp": str(event.at), "X-CCC-Signature": signature(hook.secret, body)}
            failure = await self._post(hook, body, headers)
            if failure is None:
                self.delivered += 1
                self._retrying.pop(hook.name, None)
                if attempts > 1 or requeued:
                    log.info("webhook %s: event %d delivered after %d attempts", hook.name, event.seq, attempts)
                    self._store.write("UPDATE webhook_deliveries SET state = 'delivered', delivered_at = ?,"
                                      " attempts = ? WHERE webhook = ? AND seq = ?",
                                      (time.time(), attempts, hook.name, event.seq))
                return "delivered"
            self.failures += 1
            if failure.permanent and attempts >= hook.max_attempts:
                self._retrying.pop(hook.name, None)
                self._dead_letter(hook, event.seq, attempts, failure.error)
                return "dead"
            self._retrying[hook.name] = {"seq": event.seq, "attempts": attempts, "last_error": failure.error}
            # A dead letter sent again stays `requeued` while retried, so a restart still finds it.
            self._store.write(_RETRYING, (hook.name, event.seq, attempts, failure.error,
                                          "requeued" if requeued else "retrying", time.time()))
            if attempts == 1 or attempts % 10 == 0:
                log.warning("webhook %s: event %d not delivered (%s); retrying", hook.name, event.seq, failure.error)
            await self._pause(delay)
            if self._stopping.is_set():
                return "stopped"  # neither delivered nor dead: the next process tries it again
            delay = min(self.max_backoff, delay * 2)

    def _dead_letter(self, hook: Webhook, seq: int, attempts: int, error: str) -> None:
        self.dead_lettered += 1
        self.dead[hook.name] += 1
        log.error("webhook %s: event %d refused %d times (%s): kept as a dead letter, moving on",
                  hook.name, seq, attempts, error)
        self._store.write(
            "INSERT INTO webhook_deliveries (webhook, seq, attempts, last_error, state, failed_at)"
            " VALUES (?, ?, ?, ?, 'dead', ?) ON CONFLICT (webhook, seq) DO UPDATE SET"
            " attempts = excluded.attempts, last_error = excluded.last_error,"
            " state = 'dead', failed_at = excluded.failed_at", (hook.name, seq, attempts, error, time.time()))

    async def _post(self, hook: Webhook, body: bytes, headers: dict[str, str]) -> Failure | None:
        session: aiohttp.ClientSession = self._session_factory()
        try:
            async with session.post(hook.url, data=body, headers=headers,
                                    timeout=aiohttp.ClientTimeout(total=hook.timeout)) as response:
                if 200 <= response.status < 300:
                    return None
                permanent = 400 <= response.status < 500 and response.status not in TRANSIENT_4XX
                return Failure(f"HTTP {response.status}", permanent)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Failure(type(exc).__name__, permanent=False)
