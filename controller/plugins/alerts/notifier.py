"""The alerts' CTI event: an acknowledgement, so every open console crosses the alert off."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class AlertNotifier:
    def __init__(self, publish: Callable[..., Any]) -> None:
        self._publish = publish

    def acknowledged(self, alert: dict[str, Any]) -> None:
        self._publish("alert.acknowledged", call_id=alert["call_id"], agent_id=alert["agent_id"],
                      queue=alert["queue"], alert_id=alert["id"], kind=alert["kind"], subject=alert["subject"],
                      acknowledged_by=alert["acknowledged_by"])
