"""The inbox's rows: items (voicemail, fax) for a queue or a person, follow-up tasks, the import cursor.

Plain SQL with ? placeholders that SQLite and PostgreSQL both run (no JSON functions, no INSERT OR IGNORE).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from controller.store.db import Store

ITEM_COLUMNS = ("id, kind, source, call_id, caller, did, queue, agent_id, created_at, duration, file, data, status,"
                " assigned_at, callback_call_id, called_back_at, done_at, done_by, note")
TASK_COLUMNS = ("id, call_id, title, created_by, created_at, agent_id, queue, due_at, reminded_at, overdue_at,"
                " status, closed_at, closed_by, note")


def _item(row: Any) -> dict[str, Any]:
    item = dict(row)
    item["data"] = json.loads(item["data"] or "{}")
    return item


def _visible_to(agent_id: str | None, queues: Sequence[str] | None) -> tuple[str, list[object]]:
    """A WHERE part: rows for this agent or any of these queues (None: no restriction)."""
    if agent_id is None:
        return "1 = 1", []
    marks = ", ".join("?" for _ in queues or ())
    if not marks:
        return "agent_id = ?", [agent_id]
    return f"(agent_id = ? OR (agent_id IS NULL AND queue IN ({marks})))", [agent_id, *(queues or ())]


class InboxRecords:
    def __init__(self, store: Store, now: Callable[[], float]) -> None:
        self._store = store
        self._now = now

    # -- import -----------------------------------------------------------------------------------

    async def cursor(self, name: str) -> int:
        row = await self._store.fetchone("SELECT value FROM inbox_cursor WHERE name = ?", (name,))
        return int(row["value"]) if row else 0

    async def new_flow_voicemails(self, after: int, limit: int = 100) -> list[dict[str, Any]]:
        """ivr_records of kind voicemail past the cursor, with the call's IVR data and its last queue."""
        await self._store.flush()
        rows = await self._store.fetchall(
            "SELECT r.id, r.call_id, r.created_at, r.caller, r.did, r.payload, c.data AS call_data,"
            " (SELECT q.queue FROM queue_calls q WHERE q.call_id = r.call_id ORDER BY q.enqueued_at DESC LIMIT 1)"
            " AS last_queue FROM ivr_records r LEFT JOIN calls c ON c.call_id = r.call_id"
            " WHERE r.kind = 'voicemail' AND r.id > ? ORDER BY r.id LIMIT ?", (after, limit))
        return [dict(row) for row in rows]

    async def add_item(self, item: dict[str, Any], *, cursor: tuple[str, int] | None = None) -> bool:
        """Insert an item unless its source was imported before (then False); moves the cursor with it."""
        exists = await self._store.fetchone("SELECT id FROM inbox_items WHERE source = ?", (item["source"],))
        statements: list[tuple[str, tuple[object, ...]]] = []
        if exists is None:
            statements.append((
                "INSERT INTO inbox_items (id, kind, source, call_id, caller, did, queue, agent_id, created_at,"
                " duration, file, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (item["id"], item["kind"], item["source"], item["call_id"], item["caller"], item["did"],
                 item["queue"], item["agent_id"], item["created_at"], item["duration"], item["file"],
                 json.dumps(item["data"], ensure_ascii=False, default=str))))
        if cursor is not None:
            statements += [("DELETE FROM inbox_cursor WHERE name = ?", (cursor[0],)),
                           ("INSERT INTO inbox_cursor (name, value) VALUES (?, ?)", cursor)]
        if statements:
            await self._store.execute_atomic(statements)
        return exists is None

    # -- items ------------------------------------------------------------------------------------

    async def items(self, *, agent_id: str | None, queues: Sequence[str] | None, status: str | None = None,
                    limit: int = 100) -> list[dict[str, Any]]:
        await self._store.flush()
        where, params = _visible_to(agent_id, queues)
        if status == "open":
            where += " AND status IN ('new', 'assigned')"
        elif status is not None:
            where += " AND status = ?"
            params.append(status)
        rows = await self._store.fetchall(
            f"SELECT {ITEM_COLUMNS} FROM inbox_items WHERE deleted_at IS NULL AND {where}"
            " ORDER BY created_at DESC LIMIT ?", (*params, limit))
        return [_item(row) for row in rows]

    async def item(self, item_id: str) -> dict[str, Any] | None:
        await self._store.flush()
        row = await self._store.fetchone(
            f"SELECT {ITEM_COLUMNS} FROM inbox_items WHERE id = ? AND deleted_at IS NULL", (item_id,))
        return _item(row) if row else None

    async def assign(self, item_id: str, agent_id: str) -> None:
        await self._store.execute(
            "UPDATE inbox_items SET agent_id = ?, assigned_at = ?, status = CASE WHEN status = 'new'"
            " THEN 'assigned' ELSE status END WHERE id = ?", (agent_id, self._now(), item_id))

    async def called_back(self, item_id: str, call_id: str, agent_id: str) -> None:
        await self._store.execute(
            "UPDATE inbox_items SET callback_call_id = ?, called_back_at = ?, status = 'called_back',"
            " agent_id = COALESCE(agent_id, ?) WHERE id = ?", (call_id, self._now(), agent_id, item_id))

    async def done(self, item_id: str, by: str, note: str) -> None:
        await self._store.execute("UPDATE inbox_items SET status = 'done', done_at = ?, done_by = ?, note = ?"
                                  " WHERE id = ?", (self._now(), by, note, item_id))

    async def expired_items(self, before: float) -> list[dict[str, Any]]:
        rows = await self._store.fetchall(
            f"SELECT {ITEM_COLUMNS} FROM inbox_items WHERE deleted_at IS NULL AND created_at < ?", (before,))
        return [_item(row) for row in rows]

    def deleted(self, item_id: str) -> None:
        self._store.write("UPDATE inbox_items SET deleted_at = ? WHERE id = ?", (self._now(), item_id))

    async def response_times(self, start: float, end: float) -> list[dict[str, Any]]:
        """Items that arrived in [start, end): when they arrived and when they were first answered."""
        await self._store.flush()
        rows = await self._store.fetchall(
            "SELECT queue, created_at, called_back_at, done_at FROM inbox_items"
            " WHERE created_at >= ? AND created_at < ?", (start, end))
        return [dict(row) for row in rows]

    async def call_exists(self, call_id: str) -> bool:
        await self._store.flush()
        return await self._store.fetchone("SELECT call_id FROM calls WHERE call_id = ?", (call_id,)) is not None

    # -- tasks ------------------------------------------------------------------------------------

    async def add_task(self, task: dict[str, Any]) -> None:
        await self._store.execute(
            "INSERT INTO follow_up_tasks (id, call_id, title, created_by, created_at, agent_id, queue, due_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (task["id"], task["call_id"], task["title"], task["created_by"], task["created_at"], task["agent_id"],
             task["queue"], task["due_at"]))

    async def tasks(self, *, agent_id: str | None, queues: Sequence[str] | None, status: str | None = None,
                    limit: int = 100) -> list[dict[str, Any]]:
        await self._store.flush()
        where, params = _visible_to(agent_id, queues)
        if status is not None:
            where += " AND status = ?"
            params.append(status)
        rows = await self._store.fetchall(
            f"SELECT {TASK_COLUMNS} FROM follow_up_tasks WHERE {where} ORDER BY due_at LIMIT ?", (*params, limit))
        return [dict(row) for row in rows]

    async def task(self, task_id: str) -> dict[str, Any] | None:
        await self._store.flush()
        row = await self._store.fetchone(f"SELECT {TASK_COLUMNS} FROM follow_up_tasks WHERE id = ?", (task_id,))
        return dict(row) if row else None

    async def close_task(self, task_id: str, by: str, note: str) -> None:
        await self._store.execute("UPDATE follow_up_tasks SET status = 'closed', closed_at = ?, closed_by = ?,"
                                  " note = ? WHERE id = ? AND status = 'open'", (self._now(), by, note, task_id))

    async def open_tasks_due_before(self, moment: float) -> list[dict[str, Any]]:
        rows = await self._store.fetchall(
            f"SELECT {TASK_COLUMNS} FROM follow_up_tasks WHERE status = 'open' AND due_at <= ?"
            " AND (reminded_at IS NULL OR overdue_at IS NULL)", (moment,))
        return [dict(row) for row in rows]

    def reminded(self, task_id: str) -> None:
        self._store.write("UPDATE follow_up_tasks SET reminded_at = ? WHERE id = ?", (self._now(), task_id))

    def overdue(self, task_id: str) -> None:
        self._store.write("UPDATE follow_up_tasks SET overdue_at = ? WHERE id = ?", (self._now(), task_id))

    async def task_counts(self, now: float) -> dict[str, int]:
        row = await self._store.fetchone(
            "SELECT COUNT(*) AS open, SUM(CASE WHEN due_at < ? THEN 1 ELSE 0 END) AS overdue"
            " FROM follow_up_tasks WHERE status = 'open'", (now,))
        return {"open": int(row["open"] or 0) if row else 0, "overdue": int(row["overdue"] or 0) if row else 0}
