"""Internal messages between agents and supervisors (README "Supervisor console"): sent through the API,
stored first (a recipient who is offline sees them at their next login), announced live on the event
stream, marked read by their recipient.

Between people who log in (users), by user name. Who may write to whom: a supervisor or admin to anyone;
an agent to supervisors and admins only, not to fellow agents (the standards' messages are between the
floor and its supervisors; agent-to-agent chat would be an unsupervised side channel during calls).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from controller.plugins.messages.notifier import MessageNotifier
from controller.plugins.messages.state_persistor import MessageRecords

MAX_TEXT = 1000  # characters: a note between colleagues, not a document
STAFF_ROLES = ("supervisor", "admin")


class MessageRefused(Exception):
    """A message that cannot be sent or read: HTTP status and a clear reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def may_write(sender_role: str, recipient_role: str) -> bool:
    return sender_role in STAFF_ROLES or recipient_role in STAFF_ROLES


class MessageService:
    def __init__(self, records: MessageRecords, notifier: MessageNotifier, *,
                 users: Callable[[], list[dict[str, object]]], now: Callable[[], float]) -> None:
        """`users`: the users as they are now (name, role, agent_id)."""
        self.records = records
        self.notifier = notifier
        self.users = users
        self.now = now

    def _user(self, name: str) -> dict[str, object] | None:
        return next((user for user in self.users() if user["name"] == name), None)

    def contacts(self, sender: str, sender_role: str) -> list[dict[str, object]]:
        """Whom this user may write to (name, role, agent_id), by name."""
        return [{"name": u["name"], "role": u["role"], "agent_id": u["agent_id"]} for u in self.users()
                if u["name"] != sender and may_write(sender_role, str(u["role"]))]

    async def send(self, sender: str, sender_role: str, recipient: str, text: str) -> dict[str, Any]:
        text = text.strip()
        if not text:
            raise MessageRefused(400, "text: the message is empty")
        if len(text) > MAX_TEXT:
            raise MessageRefused(400, f"text: at most {MAX_TEXT} characters")
        target = self._user(recipient)
        if target is None:
            raise MessageRefused(404, f"no user {recipient!r}")
        if recipient == sender:
            raise MessageRefused(409, "a message to yourself")
        if not may_write(sender_role, str(target["role"])):
            raise MessageRefused(403, "an agent may write to supervisors and admins only")
        message = {"id": uuid.uuid4().hex, "sender": sender, "recipient": recipient, "text": text,
                   "sent_at": round(self.now(), 3), "read_at": None}
        await self.records.add(message)
        self.notifier.sent(message, target["agent_id"] if target["role"] == "agent" else None)  # type: ignore[arg-type]
        return message

    async def of_user(self, user: str, *, unread_only: bool, limit: int) -> dict[str, Any]:
        return {"messages": await self.records.of_user(user, unread_only=unread_only, limit=limit),
                "unread": await self.records.unread_count(user)}

    async def mark_read(self, user: str, message_id: str) -> dict[str, Any]:
        message = await self.records.get(message_id)
        if message is None or user not in (message["sender"], message["recipient"]):
            raise MessageRefused(404, "no message with that id for you")
        if message["recipient"] != user:
            raise MessageRefused(409, "only its recipient marks a message read")
        if message["read_at"] is None:
            await self.records.mark_read(message_id, round(self.now(), 3))
            message = await self.records.get(message_id) or message
            sender = self._user(str(message["sender"]))
            self.notifier.read(message, str(sender["agent_id"]) if sender and sender["role"] == "agent" else None)
        return message
