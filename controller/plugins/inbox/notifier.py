"""The inbox's CTI events (declared in plugins/cti/events.yml). No caller numbers: readers fetch the item."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Publish = Callable[..., Any]


class InboxNotifier:
    def __init__(self, publish: Publish) -> None:
        self._publish = publish

    def new_item(self, item: dict[str, Any]) -> None:
        self._publish("voicemail.new", call_id=item["call_id"], agent_id=item["agent_id"], queue=item["queue"],
                      item_id=item["id"], kind=item["kind"], source=item["source"].split(":", 1)[0],
                      duration=item["duration"])

    def assigned(self, item: dict[str, Any], agent_id: str, by: str) -> None:
        self._publish("voicemail.assigned", call_id=item["call_id"], agent_id=agent_id, queue=item["queue"],
                      item_id=item["id"], assigned_by=by)

    def answered(self, item: dict[str, Any], *, status: str, agent_id: str | None, response_seconds: float,
                 callback_call_id: str | None) -> None:
        self._publish("voicemail.done", call_id=item["call_id"], agent_id=agent_id, queue=item["queue"],
                      item_id=item["id"], status=status, response_seconds=round(response_seconds, 1),
                      callback_call_id=callback_call_id)

    def task_created(self, task: dict[str, Any]) -> None:
        self._publish("task.created", call_id=task["call_id"], agent_id=task["agent_id"], queue=task["queue"],
                      task_id=task["id"], due_at=task["due_at"])

    def task_reminder(self, task: dict[str, Any]) -> None:
        self._publish("task.reminder", call_id=task["call_id"], agent_id=task["agent_id"], queue=task["queue"],
                      task_id=task["id"], due_at=task["due_at"])

    def task_overdue(self, task: dict[str, Any], now: float) -> None:
        """Through the service-standard alerts' event (alert.raised), as the ACD's alerts are."""
        self._publish("alert.raised", call_id=task["call_id"], agent_id=task["agent_id"], queue=task["queue"],
                      kind="task_overdue", subject=task["id"], value=round(now - task["due_at"], 1), threshold=0.0)

    def task_closed(self, task: dict[str, Any], by: str, *, overdue: bool) -> None:
        self._publish("task.closed", call_id=task["call_id"], agent_id=task["agent_id"], queue=task["queue"],
                      task_id=task["id"], closed_by=by, overdue=overdue)
