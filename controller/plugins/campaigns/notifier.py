"""Campaigns' CTI events (controller/plugins/cti/events.yml: campaign.*). Numbers go only into the events
addressed to the agent who works the contact (the screen pop); the others name the contact by its number
in the list."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class CampaignNotifier:
    def __init__(self, publish: Callable[..., Any]) -> None:
        self._publish = publish

    def status(self, campaign: str, status: str) -> None:
        self._publish("campaign.status_changed", campaign=campaign, status=status)

    def dialing(self, campaign: str, call_id: str, contact_no: int, attempt: int, agent_id: str | None) -> None:
        self._publish("campaign.dialing", call_id=call_id, agent_id=agent_id, campaign=campaign,
                      contact_no=contact_no, attempt=attempt)

    def connecting(self, campaign: str, call_id: str, agent_id: str, screen_pop: dict[str, Any]) -> None:
        """The customer answered; the agent's phone rings with the contact's data."""
        self._publish("campaign.connecting", call_id=call_id, agent_id=agent_id, campaign=campaign,
                      screen_pop=screen_pop)

    def attempt_ended(self, campaign: str, call_id: str, contact_no: int, outcome: str, status: str,
                      next_at: float | None, agent_id: str | None) -> None:
        self._publish("campaign.attempt_ended", call_id=call_id, agent_id=agent_id, campaign=campaign,
                      contact_no=contact_no, outcome=outcome, status=status, next_at=next_at)

    def preview(self, campaign: str, agent_id: str, screen_pop: dict[str, Any]) -> None:
        """Preview mode: the agent's next contact, theirs until they dial or skip it."""
        self._publish("campaign.preview", agent_id=agent_id, campaign=campaign, screen_pop=screen_pop)

    def preview_ended(self, campaign: str, agent_id: str, contact_no: int, how: str,
                      call_id: str | None = None) -> None:
        self._publish("campaign.preview_ended", call_id=call_id, agent_id=agent_id, campaign=campaign,
                      contact_no=contact_no, how=how)

    def amd(self, campaign: str, call_id: str, contact_no: int, status: str, cause: str, handling: str,
            agent_id: str | None) -> None:
        self._publish("campaign.amd", call_id=call_id, agent_id=agent_id, campaign=campaign, contact_no=contact_no,
                      status=status, cause=cause, handling=handling)
