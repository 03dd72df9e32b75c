"""The service-standard alerts as a supervisor works them (README "Supervisor console"): every alert.raised
event (controller.acd.alerts, overdue follow-up tasks) is an alert, named by its event's sequence number;
a supervisor acknowledges it once, with an optional note, and every console sees it crossed off."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from controller.plugins.alerts.notifier import AlertNotifier
from controller.plugins.alerts.state_persistor import AlertRecords


class AlertRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class AlertService:
    def __init__(self, records: AlertRecords, notifier: AlertNotifier, now: Callable[[], float]) -> None:
        self.records = records
        self.notifier = notifier
        self.now = now

    async def recent(self, hours: float, *, open_only: bool, limit: int) -> list[dict[str, Any]]:
        return await self.records.since(self.now() - hours * 3600, open_only=open_only, limit=limit)

    async def acknowledge(self, alert_id: int, by: str, note: str) -> dict[str, Any]:
        alert = await self.records.get(alert_id)
        if alert is None:
            raise AlertRefused(404, f"no alert {alert_id}")
        if alert["acknowledged_by"] is not None:
            raise AlertRefused(409, f"alert {alert_id} was acknowledged by {alert['acknowledged_by']}")
        await self.records.acknowledge(alert_id, by, round(self.now(), 3), note.strip())
        alert = await self.records.get(alert_id) or alert
        if alert["acknowledged_by"] == by:  # (not someone else's acknowledgement that came first)
            self.notifier.acknowledged(alert)
            return alert
        raise AlertRefused(409, f"alert {alert_id} was acknowledged by {alert['acknowledged_by']}")
