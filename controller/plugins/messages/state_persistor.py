"""The internal messages' rows (table internal_messages): plain SQL both engines run."""

from __future__ import annotations

from typing import Any

from controller.store.db import Store

COLUMNS = "id, sender, recipient, text, sent_at, read_at"


class MessageRecords:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def add(self, message: dict[str, Any]) -> None:
        """Stored before it is announced: a recipient who is offline reads it at their next login."""
        await self._store.execute(f"INSERT INTO internal_messages ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                                  tuple(message[column] for column in COLUMNS.split(", ")))

    async def get(self, message_id: str) -> dict[str, Any] | None:
        row = await self._store.fetchone(f"SELECT {COLUMNS} FROM internal_messages WHERE id = ?", (message_id,))
        return dict(row) if row is not None else None

    async def of_user(self, user: str, *, unread_only: bool, limit: int) -> list[dict[str, Any]]:
        """The user's messages, newest first: received and sent, or only the received ones not read yet."""
        params: tuple[str, ...] = (user,) if unread_only else (user, user)
        where = "recipient = ? AND read_at IS NULL" if unread_only else "recipient = ? OR sender = ?"
        rows = await self._store.fetchall(f"SELECT {COLUMNS} FROM internal_messages WHERE {where}"
                                          " ORDER BY sent_at DESC, id LIMIT ?", (*params, limit))
        return [dict(row) for row in rows]

    async def unread_count(self, user: str) -> int:
        row = await self._store.fetchone("SELECT COUNT(*) AS n FROM internal_messages"
                                         " WHERE recipient = ? AND read_at IS NULL", (user,))
        return int(row["n"]) if row is not None else 0

    async def mark_read(self, message_id: str, at: float) -> None:
        await self._store.execute("UPDATE internal_messages SET read_at = ? WHERE id = ? AND read_at IS NULL",
                                  (at, message_id))
