"""The recordings index: one row per recorded call (one mixed file across transfers and holds)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from controller.store.db import Store

COLUMNS = ("id, name, call_id, caller, queue, agents, started_at, ended_at, duration, file, pauses, reason,"
           " deleted_at")


def _row(row: Any) -> dict[str, Any]:
    record = dict(row)
    record["agents"] = json.loads(record["agents"] or "[]")
    record["pauses"] = json.loads(record["pauses"] or "[]")
    return record


class RecordingIndex:
    def __init__(self, store: Store, now: Callable[[], float]) -> None:
        self._store = store
        self._now = now

    def started(self, *, name: str, call_id: str, caller: str, queue: str | None, agents: list[str], file: str,
                reason: str) -> None:
        self._store.write(
            "INSERT INTO recordings (name, call_id, caller, queue, agents, started_at, file, reason)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (name, call_id, caller, queue, json.dumps(agents), self._now(), file, reason))

    def agents(self, name: str, agents: list[str]) -> None:
        self._store.write("UPDATE recordings SET agents = ? WHERE name = ?", (json.dumps(agents), name))

    def pauses(self, name: str, pauses: list[list[float | None]]) -> None:
        self._store.write("UPDATE recordings SET pauses = ? WHERE name = ?", (json.dumps(pauses), name))

    def finished(self, name: str, *, duration: float, pauses: list[list[float | None]]) -> None:
        self._store.write(
            "UPDATE recordings SET ended_at = ?, duration = ?, pauses = ? WHERE name = ? AND ended_at IS NULL",
            (self._now(), round(duration, 3), json.dumps(pauses), name))

    def deleted(self, recording_id: int) -> None:
        self._store.write("UPDATE recordings SET deleted_at = ? WHERE id = ?", (self._now(), recording_id))

    async def get(self, recording_id: int) -> dict[str, Any] | None:
        await self._store.flush()
        row = await self._store.fetchone(f"SELECT {COLUMNS} FROM recordings WHERE id = ?", (recording_id,))
        return _row(row) if row else None

    async def search(self, *, call_id: str | None = None, agent_id: str | None = None, caller: str | None = None,
                     queue: str | None = None, start: float | None = None, end: float | None = None,
                     limit: int = 100) -> list[dict[str, Any]]:
        await self._store.flush()
        where: list[str] = ["deleted_at IS NULL"]
        params: list[object] = []
        for column, value in (("call_id", call_id), ("caller", caller), ("queue", queue)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if agent_id is not None:
            where.append(self._store.dialect.json_array_has("agents"))
            params.append(agent_id)
        if start is not None:
            where.append("started_at >= ?")
            params.append(start)
        if end is not None:
            where.append("started_at < ?")
            params.append(end)
        rows = await self._store.fetchall(
            f"SELECT {COLUMNS} FROM recordings WHERE {' AND '.join(where)} ORDER BY started_at DESC LIMIT ?",
            (*params, limit))
        return [_row(row) for row in rows]

    async def older_than(self, before: float) -> list[dict[str, Any]]:
        rows = await self._store.fetchall(
            f"SELECT {COLUMNS} FROM recordings WHERE deleted_at IS NULL AND ended_at IS NOT NULL AND started_at < ?",
            (before,))
        return [_row(row) for row in rows]
