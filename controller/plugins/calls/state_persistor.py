"""Call records in the store: one row per call, plus a row per thing that happened during it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from controller.store.db import Store


class CallRecords:
    def __init__(self, store: Store, now: Callable[[], float]) -> None:
        self._store = store
        self._now = now

    def started(self, call_id: str, channel_id: str, *, direction: str, caller: str, did: str) -> None:
        self._store.write(
            "INSERT OR IGNORE INTO calls (call_id, channel_id, direction, caller, did, started_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (call_id, channel_id, direction, caller, did, self._now()),
        )

    def answered(self, call_id: str) -> None:
        self._store.write("UPDATE calls SET answered_at = ? WHERE call_id = ? AND answered_at IS NULL",
                          (self._now(), call_id))

    def set_flow(self, call_id: str, flow: str) -> None:
        self._store.write("UPDATE calls SET flow = ? WHERE call_id = ?", (flow, call_id))

    def set_data(self, call_id: str, data: dict[str, Any]) -> None:
        self._store.write("UPDATE calls SET data = ? WHERE call_id = ?",
                          (json.dumps(data, ensure_ascii=False, default=str), call_id))

    def event(self, call_id: str, kind: str, /, **detail: Any) -> None:
        self._store.write(
            "INSERT INTO call_events (call_id, at, kind, detail) VALUES (?, ?, ?, ?)",
            (call_id, self._now(), kind, json.dumps(detail, ensure_ascii=False, default=str)),
        )

    def ended(self, call_id: str, *, reason: str, cause: int | None = None, cause_txt: str | None = None,
              at: float | None = None) -> None:
        self._store.write(
            "UPDATE calls SET ended_at = ?, end_reason = ?, hangup_cause = ?, hangup_cause_txt = ?"
            " WHERE call_id = ? AND ended_at IS NULL",
            (at if at is not None else self._now(), reason, cause, cause_txt, call_id),
        )

    async def get(self, call_id: str) -> dict[str, Any] | None:
        row = await self._store.fetchone("SELECT * FROM calls WHERE call_id = ?", (call_id,))
        if row is None:
            return None
        record = dict(row)
        record["data"] = json.loads(record["data"] or "{}")
        events = await self._store.fetchall(
            "SELECT at, kind, detail FROM call_events WHERE call_id = ? ORDER BY id", (call_id,))
        record["events"] = [{"at": e["at"], "kind": e["kind"], **json.loads(e["detail"])} for e in events]
        return record

    async def by_channel(self, channel_id: str) -> dict[str, Any] | None:
        row = await self._store.fetchone(
            "SELECT call_id FROM calls WHERE channel_id = ? ORDER BY started_at DESC LIMIT 1", (channel_id,))
        return await self.get(row["call_id"]) if row else None

    async def open_calls(self) -> list[dict[str, Any]]:
        rows = await self._store.fetchall("SELECT call_id, channel_id FROM calls WHERE ended_at IS NULL")
        return [dict(row) for row in rows]

    async def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = await self._store.fetchall(
            "SELECT call_id, channel_id, direction, caller, did, flow, started_at, answered_at, ended_at,"
            " end_reason, hangup_cause FROM calls ORDER BY started_at DESC LIMIT ?", (limit,))
        return [dict(row) for row in rows]
