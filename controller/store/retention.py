"""Data retention: an hourly job that deletes what is older than the configured days (`retention:`).

Rows go in chunks of `chunk_rows`, each its own commit with a pause between, so the job never
holds the store's single writer (nor its thread) for long while calls are being recorded. What
must survive is never deleted: calls still going on, queue visits not finished, each agent's
latest state (its state now), CTI events a configured webhook has not yet delivered. The
text-to-speech cache is trimmed by `controller.media.tts_cache`. Recordings have their own job
(`RecordingService.run`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from controller.config import RetentionSettings
from controller.store.db import Store

log = logging.getLogger("controller.retention")

DAY = 86400.0


@dataclass(frozen=True)
class _Rule:
    """Rows of `table` whose `time_column` is before the cutoff (and `condition` holds) are deleted."""

    table: str
    time_column: str
    setting: str  # the RetentionSettings field with the days
    condition: str = ""
    #: An index on time_column; else rows are walked oldest `key` first up to the first one not past the cutoff
    #: (those `condition` keeps are passed over).
    indexed: bool = True
    key: str = "id"  # the primary key (an integer growing in time order where not indexed)


RULES = (
    _Rule("calls", "started_at", "calls_days", "ended_at IS NOT NULL", key="call_id"),
    _Rule("queue_calls", "enqueued_at", "calls_days", "left_at IS NOT NULL"),
    _Rule("dispositions", "at", "calls_days", key="call_id"),
    _Rule("call_events", "at", "call_events_days", indexed=False),
    _Rule("agent_states", "at", "agent_states_days",
          "EXISTS (SELECT 1 FROM agent_states later WHERE later.agent_id = agent_states.agent_id"
          " AND later.at > agent_states.at)"),
    _Rule("audit_log", "at", "audit_days"),
    # Kept: what a configured webhook has not delivered yet, and its failed deliveries (dead letters an
    # operator may still replay). `{webhooks}` is the list of their names.
    _Rule("cti_events", "at", "cti_events_days",
          "seq <= ? AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.webhook IN ({webhooks})"
          " AND d.seq = cti_events.seq AND d.state <> 'delivered')", indexed=False, key="seq"),
    # An acknowledgement goes with the days of the alert it acknowledges (an alert.raised CTI event).
    _Rule("alert_acks", "acknowledged_at", "cti_events_days", indexed=False, key="alert_seq"),
    _Rule("internal_messages", "sent_at", "messages_days"),
)


class RetentionJob:
    def __init__(self, store: Store, settings: RetentionSettings, *, webhooks: Sequence[str] = (),
                 purge_tts: Callable[[float], Awaitable[int]] | None = None, pause_seconds: float = 0.05) -> None:
        self.store = store
        self.settings = settings
        self.webhooks = list(webhooks)  # configured webhooks: their undelivered events are kept
        self.purge_tts = purge_tts  # deletes cached prompts not used since the given Unix time
        self.pause_seconds = pause_seconds
        self.deleted: dict[str, int] = {}  # totals since start, per table (and "tts_cache")

    async def run(self, every_seconds: float = 3600.0, first_after: float = 600.0) -> None:
        """Run `purge()` every hour, the first time 10 minutes after the start (not while the flows'
        prompts are being rendered); a failure (e.g. the disk is full) is logged and tried again at the
        next run, never ending the controller."""
        await asyncio.sleep(first_after)
        while True:
            try:
                removed = await self.purge()
            except Exception as exc:
                log.error("retention: this run stopped early (%s: %s); trying again in %g s",
                          type(exc).__name__, exc, every_seconds)
            else:
                if any(removed.values()):
                    log.info("retention: deleted %s", ", ".join(f"{n} {what}" for what, n in removed.items() if n))
            await asyncio.sleep(every_seconds)

    async def purge(self, now: float | None = None) -> dict[str, int]:
        """Delete everything past its retention; returns how many rows (files) per table."""
        now = time.time() if now is None else now
        removed: dict[str, int] = {}
        for rule in RULES:
            days: float = getattr(self.settings, rule.setting)
            if days <= 0:
                continue
            params: tuple[Any, ...] = ()
            if rule.table == "cti_events":
                params = (await self._delivered_everywhere(), *self.webhooks)
                marks = ",".join("?" * len(self.webhooks)) or "NULL"
                rule = replace(rule, condition=rule.condition.replace("{webhooks}", marks))
            removed[rule.table] = await self._purge_table(rule, now - days * DAY, params)
        if self.purge_tts is not None and self.settings.tts_cache_days > 0:
            removed["tts_cache"] = await self.purge_tts(now - self.settings.tts_cache_days * DAY)
        for what, count in removed.items():
            self.deleted[what] = self.deleted.get(what, 0) + count
        return removed

    async def _delivered_everywhere(self) -> int:
        """The highest sequence number every configured webhook has delivered (all of them, with none)."""
        if not self.webhooks:
            return 2**63 - 1
        marks = ",".join("?" * len(self.webhooks))
        rows = await self.store.fetchall(
            f"SELECT webhook, delivered_seq FROM webhook_cursor WHERE webhook IN ({marks})", self.webhooks)
        cursors = {row["webhook"]: int(row["delivered_seq"]) for row in rows}
        if len(cursors) < len(self.webhooks):  # a webhook not started yet: it begins after what exists now
            latest = await self.store.fetchone("SELECT COALESCE(MAX(seq), 0) AS seq FROM cti_events")
            return min([*cursors.values(), int(latest["seq"]) if latest else 0])
        return min(cursors.values())

    async def _purge_table(self, rule: _Rule, cutoff: float, params: tuple[Any, ...]) -> int:
        chunk = self.settings.chunk_rows
        total = 0
        after: Any = None  # not indexed: the last key walked past (a row the condition keeps is not seen again)
        while True:
            if rule.indexed:
                keys = await self._next_chunk(rule, cutoff, params, chunk)
                more = len(keys) == chunk
            else:
                keys, after, more = await self._next_oldest(rule, cutoff, params, chunk, after)
            if keys:
                marks = ",".join("?" * len(keys))
                await self.store.execute(f"DELETE FROM {rule.table} WHERE {rule.key} IN ({marks})", keys)
                total += len(keys)
            if not more:
                return total
            await asyncio.sleep(self.pause_seconds)  # let the calls' writes through

    async def _next_chunk(self, rule: _Rule, cutoff: float, params: tuple[Any, ...], chunk: int) -> list[Any]:
        condition = f" AND {rule.condition}" if rule.condition else ""
        rows = await self.store.fetchall(
            f"SELECT {rule.key} FROM {rule.table} WHERE {rule.time_column} < ?{condition}"
            f" ORDER BY {rule.time_column} LIMIT ?", (cutoff, *params, chunk))
        return [row[0] for row in rows]

    async def _next_oldest(self, rule: _Rule, cutoff: float, params: tuple[Any, ...], chunk: int,
                           after: Any) -> tuple[list[Any], Any, bool]:
        """No index on the time: rows are written in time order, so the oldest keys (after `after`) are walked up to
        the first one still to be kept (bounded work per chunk, no scan of the whole table). The keys to delete,
        the last key walked past, whether there may be more."""
        removable = f"CASE WHEN {rule.condition} THEN 1 ELSE 0 END" if rule.condition else "1"
        since = f" WHERE {rule.key} > ?" if after is not None else ""
        rows = await self.store.fetchall(
            f"SELECT {rule.key}, {rule.time_column}, {removable} FROM {rule.table}{since} ORDER BY {rule.key} LIMIT ?",
            (*(params if rule.condition else ()), *(() if after is None else (after,)), chunk))
        keys: list[Any] = []
        for row in rows:
            if row[1] >= cutoff:
                return keys, after, False  # a row to keep was reached: the table is done
            after = row[0]
            if row[2]:
                keys.append(row[0])
        return keys, after, len(rows) == chunk
