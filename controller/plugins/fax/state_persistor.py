"""The faxes sent (rows of `faxes`) and what a received fax's call left in `ivr_records`."""

from __future__ import annotations

import json
from typing import Any

from controller.store.db import Store

FAX_COLUMNS = ("id, direction, number, created_by, created_at, pages, status, pages_sent, fax_status, error,"
               " ended_at")


class FaxRecords:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def add_outgoing(self, fax: dict[str, Any]) -> None:
        await self._store.execute(
            "INSERT INTO faxes (id, direction, number, created_by, created_at, pages) VALUES (?, 'out', ?, ?, ?, ?)",
            (fax["id"], fax["number"], fax["created_by"], fax["created_at"], fax["pages"]))

    async def fax(self, fax_id: str) -> dict[str, Any] | None:
        await self._store.flush()
        row = await self._store.fetchone(f"SELECT {FAX_COLUMNS} FROM faxes WHERE id = ?", (fax_id,))
        return dict(row) if row else None

    async def sending(self) -> list[dict[str, Any]]:
        await self._store.flush()
        rows = await self._store.fetchall(f"SELECT {FAX_COLUMNS} FROM faxes WHERE status = 'sending'", ())
        return [dict(row) for row in rows]

    async def ended(self, fax_id: str, *, status: str, pages_sent: int | None, fax_status: str | None,
                    error: str | None, at: float) -> None:
        await self._store.execute(
            "UPDATE faxes SET status = ?, pages_sent = ?, fax_status = ?, error = ?, ended_at = ?"
            " WHERE id = ? AND status = 'sending'", (status, pages_sent, fax_status, error, at, fax_id))

    async def received_call(self, fax_id: str) -> dict[str, Any] | None:
        """The `fax` node's record of a received fax (hex id), with the call's IVR data and its last queue."""
        await self._store.flush()
        row = await self._store.fetchone(
            "SELECT r.call_id, c.channel_id, r.created_at, r.caller, r.did, r.payload, c.data AS call_data,"
            " (SELECT q.queue FROM queue_calls q WHERE q.call_id = r.call_id ORDER BY q.enqueued_at DESC LIMIT 1)"
            " AS last_queue FROM ivr_records r LEFT JOIN calls c ON c.call_id = r.call_id"
            " WHERE r.kind = 'fax' AND (r.payload LIKE ? OR r.payload LIKE ?) AND c.channel_id IS NOT NULL",
            # the payload's JSON text: compact since controller.jsontext, with spaces in rows written before
            (f'%"fax_id":"{fax_id}"%', f'%"fax_id": "{fax_id}"%'))
        if row is None:
            return None
        record = dict(row)
        record["payload"] = json.loads(record["payload"] or "{}")
        record["call_data"] = json.loads(record["call_data"] or "{}")
        return record
