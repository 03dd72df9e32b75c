"""Agents' shifts in the store (table agent_shifts, migration 11)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from controller.plugins.wfm.schedules import Shift
from controller.store.db import Store


class ShiftRecords:
    def __init__(self, store: Store, now: Callable[[], float]) -> None:
        self._store = store
        self._now = now

    async def add(self, shifts: Sequence[Shift], created_by: str) -> None:
        """Store checked shifts (`schedules.check`), and wait until they are committed."""
        now = self._now()
        await self._store.executemany(
            "INSERT INTO agent_shifts (agent_id, starts_at, ends_at, activity, created_at, created_by)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(s.agent_id, s.start, s.end, s.activity, now, created_by) for s in shifts])

    async def delete(self, shift_id: int) -> bool:
        await self._store.flush()
        if await self._store.fetchone("SELECT id FROM agent_shifts WHERE id = ?", (shift_id,)) is None:
            return False
        await self._store.execute("DELETE FROM agent_shifts WHERE id = ?", (shift_id,))
        return True

    async def between(self, start: float, end: float, agent_id: str | None = None) -> list[tuple[int, Shift]]:
        """The shifts overlapping [start, end), by agent and start."""
        await self._store.flush()
        sql = "SELECT id, agent_id, starts_at, ends_at, activity FROM agent_shifts WHERE starts_at < ? AND ends_at > ?"
        params: list[object] = [end, start]
        if agent_id is not None:
            sql += " AND agent_id = ?"
            params.append(agent_id)
        rows = await self._store.fetchall(sql + " ORDER BY agent_id, starts_at, id", params)
        return [(row["id"], Shift(row["agent_id"], row["starts_at"], row["ends_at"], row["activity"])) for row in rows]
