"""What the admin service keeps in the store: the managed items (admin_items) and whether the configuration
file has seeded them (admin_meta). Writes are statements handed back to the service, which commits them
together with their audit rows (`Store.execute_atomic`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from controller.store.db import Params, Store
from controller.store.engines import upsert

SEEDED_AT = "seeded_at"
Statement = tuple[str, Params]


@dataclass(frozen=True)
class ItemRow:
    kind: str
    key: str
    data: Any  # the item as JSON-ready data
    position: int


class AdminRecords:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def rows(self) -> list[ItemRow]:
        """Every item, by kind, in its section's order."""
        rows = await self._store.fetchall(
            "SELECT kind, key, data, position FROM admin_items ORDER BY kind, position, key")
        return [ItemRow(row["kind"], row["key"], json.loads(row["data"]), row["position"]) for row in rows]

    async def is_empty(self) -> bool:
        """No item and never seeded: the configuration file seeds it."""
        row = await self._store.fetchone(
            "SELECT (SELECT COUNT(*) FROM admin_items) + (SELECT COUNT(*) FROM admin_meta WHERE name = ?) AS n",
            (SEEDED_AT,))
        return row is None or int(row["n"]) == 0

    @staticmethod
    def put(kind: str, key: str, data: Any, position: int, at: float, by: str) -> Statement:
        return ("INSERT INTO admin_items (kind, key, data, position, updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (kind, key) DO UPDATE SET data = excluded.data, position = excluded.position,"
                " updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                (kind, key, json.dumps(data, ensure_ascii=False), position, at, by))

    @staticmethod
    def delete(kind: str, key: str) -> Statement:
        return "DELETE FROM admin_items WHERE kind = ? AND key = ?", (kind, key)

    @staticmethod
    def mark_seeded(at: float) -> Statement:
        return upsert("admin_meta", ("name", "value"), ("name",)), (SEEDED_AT, repr(at))
