"""Webhooks: every event POSTed to each configured endpoint, signed, in order, never lost.

Each webhook has a cursor in the store: the sequence number up to which everything it wants was
delivered. Its worker sends the next event (read back from the persisted stream), retries with
backoff (1 s doubling to 60 s) while the receiver is down or failing, and only then moves on. So a
CRM that is down for hours gets every event once it is back, in order — across controller
restarts too. `replay(name, since)` moves the cursor back to send events again.

Each POST carries `X-CCC-Signature: sha256=<hex HMAC-SHA256 of the body with the webhook's secret>`,
`X-CCC-Event`, `X-CCC-Seq` and `X-CCC-Timestamp`. Secrets are never logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp

from controller.config import WebhookSettings
from controller.plugins.cti.services import CtiEvent, EventBus, EventFilter
from controller.store.db import Store

log = logging.getLogger("controller.webhooks")


@dataclass(frozen=True)
class Webhook:
    name: str
    url: str
    secret: str
    filter: EventFilter
    timeout: float = 5.0

    @classmethod
    def from_config(cls, entry: WebhookSettings) -> Webhook:
        return cls(name=entry.name, url=entry.url, secret=entry.secret,
                   filter=EventFilter(tuple(entry.types), entry.queue), timeout=entry.timeout)


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookNotifier:
    def __init__(self, webhooks: list[Webhook], bus: EventBus, store: Store,
                 session_factory: Any, *, max_backoff: float = 60.0) -> None:
        self.webhooks = {hook.name: hook for hook in webhooks}
        self._bus = bus
        self._store = store
        self._session_factory = session_factory  # returns the shared aiohttp.ClientSession
        self._wake = {name: asyncio.Event() for name in self.webhooks}
        self._cursor: dict[str, int] = {}
        self.max_backoff = max_backoff
        self.delivered = 0
        self.failures = 0
        bus.listeners.append(self._on_event)

    def has(self, name: str) -> bool:
        return name in self.webhooks

    def _on_event(self, event: CtiEvent) -> None:
        for name, hook in self.webhooks.items():
            if hook.filter.matches(event):
                self._wake[name].set()

    def backlog(self) -> int:
        """Events published but not yet delivered, summed over webhooks (a metric)."""
        return sum(max(0, self._bus.last_seq - self._cursor.get(name, self._bus.last_seq)) for name in self.webhooks)

    async def status(self) -> list[dict[str, Any]]:
        return [{"name": name, "url": hook.url, "delivered_seq": self._cursor.get(name),
                 "last_seq": self._bus.last_seq} for name, hook in self.webhooks.items()]

    async def replay(self, name: str, since: int) -> None:
        self._cursor[name] = since
        await self._store.execute("INSERT OR REPLACE INTO webhook_cursor (webhook, delivered_seq) VALUES (?, ?)",
                                  (name, since))
        self._wake[name].set()

    async def run(self) -> None:
        """One worker per webhook; run in the application's TaskGroup."""
        if not self.webhooks:
            return
        async with asyncio.TaskGroup() as workers:
            for name in self.webhooks:
                workers.create_task(self._worker(name))

    async def _load_cursor(self, name: str) -> int:
        row = await self._store.fetchone("SELECT delivered_seq FROM webhook_cursor WHERE webhook = ?", (name,))
        if row is None:  # a new webhook starts with what happens from now on
            await self._store.execute("INSERT INTO webhook_cursor (webhook, delivered_seq) VALUES (?, ?)",
                                      (name, self._bus.last_seq))
            return self._bus.last_seq
        return int(row["delivered_seq"])

    async def _worker(self, name: str) -> None:
        hook = self.webhooks[name]
        self._cursor[name] = await self._load_cursor(name)
        while True:
            pending = await self._bus.since(self._cursor[name], limit=500)
            if not pending:
                self._wake[name].clear()
                await self._wake[name].wait()
                continue
            for event in pending:
                if hook.filter.matches(event):
                    await self._deliver(hook, event)
                self._cursor[name] = event.seq
                self._store.write("UPDATE webhook_cursor SET delivered_seq = ? WHERE webhook = ?", (event.seq, name))

    async def _deliver(self, hook: Webhook, event: CtiEvent) -> None:
        body = json.dumps(event.as_dict(), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "X-CCC-Event": event.type, "X-CCC-Seq": str(event.seq),
                   "X-CCC-Timestamp": str(event.at), "X-CCC-Signature": signature(hook.secret, body)}
        delay = 1.0
        attempts = 0
        while True:
            attempts += 1
            error = await self._post(hook, body, headers)
            if error is None:
                self.delivered += 1
                if attempts > 1:
                    log.info("webhook %s: event %d delivered after %d attempts", hook.name, event.seq, attempts)
                return
            self.failures += 1
            self._store.write(
                "INSERT OR REPLACE INTO webhook_deliveries (webhook, seq, attempts, last_error) VALUES (?, ?, ?, ?)",
                (hook.name, event.seq, attempts, error))
            if attempts == 1 or attempts % 10 == 0:
                log.warning("webhook %s: event %d not delivered (%s); retrying", hook.name, event.seq, error)
            await asyncio.sleep(delay)
            delay = min(self.max_backoff, delay * 2)

    async def _post(self, hook: Webhook, body: bytes, headers: dict[str, str]) -> str | None:
        session: aiohttp.ClientSession = self._session_factory()
        try:
            async with session.post(hook.url, data=body, headers=headers,
                                    timeout=aiohttp.ClientTimeout(total=hook.timeout)) as response:
                if 200 <= response.status < 300:
                    return None
                return f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return type(exc).__name__
