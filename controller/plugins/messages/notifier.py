"""The internal messages' CTI events (declared in plugins/cti/events.yml). No text: it stays in the store,
read through the API by its sender and recipient only; the event tells the recipient's page to fetch it.
`agent_id` is the agent the event concerns (the recipient of a new message, the sender of one read), so
an agent's event stream carries their own messages only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Publish = Callable[..., Any]


class MessageNotifier:
    def __init__(self, publish: Publish) -> None:
        self._publish = publish

    def sent(self, message: dict[str, Any], recipient_agent: str | None) -> None:
        self._publish("message.sent", agent_id=recipient_agent, message_id=message["id"],
                      sender=message["sender"], recipient=message["recipient"])

    def read(self, message: dict[str, Any], sender_agent: str | None) -> None:
        self._publish("message.read", agent_id=sender_agent, message_id=message["id"], sender=message["sender"],
                      recipient=message["recipient"], read_at=message["read_at"])
