"""What the callbacks write to the store (`callbacks` table): one row per callback, rewritten on each
transition, so that a restarted controller queues the waiting ones again at their place; and the
IVR's callback requests (`ivr_records` kind callback) taken over from the flows."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from controller.store.db import Store

#: The columns a callback's state is written to on each transition.
STATE_COLUMNS = ("status", "enqueued_at", "due_at", "attempts", "connected_at", "outcome", "agent_id", "note")


class CallbackRecords:
    def __init__(self, store: Store, now: Callable[[], float]) -> None:
        self._store = store
        self._now = now
        self._last_id = 0

    async def open(self) -> None:
        """Ids are given here (the writes are batched): carry on after the highest one stored."""
        row = await self._store.fetchone("SELECT MAX(id) AS last FROM callbacks")
        self._last_id = int(row["last"] or 0) if row is not None else 0

    def next_id(self) -> int:
        """The id the next callback gets."""
        return self._last_id + 1

    def create(self, *, call_id: str, origin: str, queue: str, number: str, priority: int, status: str,
               requested_at: float, enqueued_at: float | None = None, due_at: float | None = None,
               agent_id: str | None = None, data: dict[str, Any] | None = None) -> int:
        """A new callback's row; returns its id (it names the callback in events and the API)."""
        self._last_id += 1
        self._store.write(
            "INSERT INTO callbacks (id, call_id, origin, queue, number, priority, agent_id, status, requested_at,"
            " enqueued_at, due_at, data, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (self._last_id, call_id, origin, queue, number, priority, agent_id, status, requested_at, enqueued_at,
             due_at, json.dumps(data or {}, ensure_ascii=False), self._now()))
        return self._last_id

    def save(self, callback_id: int, state: dict[str, Any]) -> None:
        """A transition: the state columns given (batched like every write)."""
        columns = [column for column in STATE_COLUMNS if column in state]
        assignments = ", ".join(f"{column} = ?" for column in columns)
        self._store.write(f"UPDATE callbacks SET {assignments}, updated_at = ? WHERE id = ?",
                          (*(state[column] for column in columns), self._now(), callback_id))

    async def open_rows(self) -> list[dict[str, Any]]:
        """The callbacks a restarted controller carries on: waiting, being served, scheduled, to retry."""
        rows = await self._store.fetchall(
            "SELECT * FROM callbacks WHERE status IN ('waiting', 'serving', 'scheduled', 'retry') ORDER BY id")
        return [_row(row) for row in rows]

    async def get(self, callback_id: int) -> dict[str, Any] | None:
        row = await self._store.fetchone("SELECT * FROM callbacks WHERE id = ?", (callback_id,))
        return _row(row) if row is not None else None

    async def listing(self, *, status: str | None, since: float | None, limit: int) -> list[dict[str, Any]]:
        clauses: list[str] = ["status <> 'declined'"]
        params: list[Any] = []
        if status is not None:
            clauses.append("status = ?")
            params.append(status)
        if since is not None:
            clauses.append("requested_at >= ?")
            params.append(since)
        rows = await self._store.fetchall(
            f"SELECT * FROM callbacks WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT ?", (*params, limit))
        return [_row(row) for row in rows]

    async def between(self, since: float, until: float) -> list[dict[str, Any]]:
        """Callbacks requested (or offered) in [since, until), for the reports."""
        rows = await self._store.fetchall(
            "SELECT * FROM callbacks WHERE requested_at >= ? AND requested_at < ? ORDER BY id", (since, until))
        return [_row(row) for row in rows]

    async def ivr_requests(self, since: float) -> list[dict[str, Any]]:
        """Callback requests the IVR's callback node left since `since` (open ivr_records rows)."""
        rows = await self._store.fetchall(
            "SELECT id, call_id, caller, created_at, payload FROM ivr_records WHERE kind = 'callback'"
            " AND status = 'open' AND created_at >= ? ORDER BY id", (since,))
        return [{**dict(row), "payload": json.loads(row["payload"] or "{}")} for row in rows]

    def ivr_request_taken(self, record_id: int, status: str) -> None:
        """The IVR's request is a callback now (queued), or its callback was connected (done)."""
        self._store.write("UPDATE ivr_records SET status = ? WHERE id = ?", (status, record_id))


def _row(row: Any) -> dict[str, Any]:
    item = dict(row)
    item["data"] = json.loads(item.get("data") or "{}")
    return item
