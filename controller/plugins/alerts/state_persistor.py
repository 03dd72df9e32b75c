"""The alerts as raised (the alert.raised events in cti_events) and their acknowledgements (alert_acks)."""

from __future__ import annotations

import json
from typing import Any

from controller.store.db import Store

SELECT = ("SELECT e.seq, e.at, e.call_id, e.agent_id, e.queue, e.data, a.acknowledged_by, a.acknowledged_at, a.note"
          " FROM cti_events e LEFT JOIN alert_acks a ON a.alert_seq = e.seq WHERE e.type = 'alert.raised'")


def _alert(row: Any) -> dict[str, Any]:
    data = json.loads(row["data"] or "{}")
    return {"id": row["seq"], "at": row["at"], "kind": data.get("kind"), "subject": data.get("subject"),
            "value": data.get("value"), "threshold": data.get("threshold"), "queue": row["queue"],
            "agent_id": row["agent_id"], "call_id": row["call_id"], "acknowledged_by": row["acknowledged_by"],
            "acknowledged_at": row["acknowledged_at"], "note": row["note"]}


class AlertRecords:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def since(self, start: float, *, open_only: bool, limit: int) -> list[dict[str, Any]]:
        where = " AND e.at >= ?" + (" AND a.alert_seq IS NULL" if open_only else "")
        # (`+e.seq`: not in the primary key's order, which SQLite would walk through every event for the LIMIT, but
        # from the alerts' own index on time, then sorted)
        rows = await self._store.fetchall(f"{SELECT}{where} ORDER BY +e.seq DESC LIMIT ?", (start, limit))
        return [_alert(row) for row in rows]

    async def get(self, alert_id: int) -> dict[str, Any] | None:
        row = await self._store.fetchone(f"{SELECT} AND e.seq = ?", (alert_id,))
        return _alert(row) if row is not None else None

    async def acknowledge(self, alert_id: int, by: str, at: float, note: str) -> None:
        await self._store.execute("INSERT INTO alert_acks (alert_seq, acknowledged_by, acknowledged_at, note)"
                                  " VALUES (?, ?, ?, ?) ON CONFLICT (alert_seq) DO NOTHING", (alert_id, by, at, note))
