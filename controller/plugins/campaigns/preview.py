"""Preview mode (README "Outbound campaigns"): the agent sees the contact first, then dials or skips it.

The pacing engine plans one dial per ready agent of the campaign; instead of placing it, the runner
offers the agent the next due contact (`offer`): the contact is claimed (status `previewing`, offered to
nobody else) and the CTI event `campaign.preview` carries its screen pop to the agent's desk. The agent
then
- dials it (`dial`): the call is placed as in progressive mode (the agent reserved in the ACD, the customer
  rung with the ring limit, the agent's phone rung when the customer answers);
- or skips it (`skip`): the contact is closed as `skipped` (never dialled) and the next one is offered.

An offer is withdrawn, and its contact due again at once, when the agent logs out, the campaign is paused
or stopped, or the controller restarts (a `previewing` contact in the store is due again).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from controller.acd.engine import AcdError
from controller.outbound.pacing import Dial
from controller.plugins.campaigns.errors import CampaignError

if TYPE_CHECKING:
    from controller.plugins.campaigns.services import Campaign, CampaignService, ContactState

log = logging.getLogger("controller.campaigns")

#: ACD states an agent may dial their previewed contact from (as for an agent's own outbound call).
CAN_DIAL = ("ready", "not_ready", "acw")


@dataclass
class Offer:
    campaign: str
    dial: Dial
    contact_no: int
    offered_at: float
    status_before: str  # the contact's status before the offer (pending or retry): restored when withdrawn


class PreviewDesk:
    def __init__(self, service: CampaignService) -> None:
        self.service = service
        self.offers: dict[str, Offer] = {}  # agent -> their offered contact

    def offer(self, campaign: Campaign, dial: Dial, contact: ContactState) -> None:
        assert dial.agent_id is not None, "preview dials are planned for an agent"
        self.offers[dial.agent_id] = Offer(campaign.name, dial, contact.no, self.service.clock.now(), contact.status)
        contact.status, contact.next_at = "previewing", None
        self.service.save_contact(campaign, contact)
        self.service.notify.preview(campaign.name, dial.agent_id, contact.screen_pop(campaign.name))
        log.info("campaign %s: contact %d offered to agent %s", campaign.name, contact.no, dial.agent_id)

    def current(self, agent_id: str) -> dict[str, Any] | None:
        """The agent's offered contact with its screen pop, or None."""
        offer = self.offers.get(agent_id)
        if offer is None:
            return None
        contact = self.service.campaign(offer.campaign).contacts[offer.contact_no]
        return {"campaign": offer.campaign, "contact_no": offer.contact_no, "offered_at": offer.offered_at,
                "screen_pop": contact.screen_pop(offer.campaign)}

    def dial(self, agent_id: str) -> dict[str, Any]:
        """Place the call to the agent's offered contact; returns the call id and the contact."""
        offer = self._offer_of(agent_id)
        campaign = self.service.campaign(offer.campaign)
        if campaign.status != "running":
            raise CampaignError(f"campaign {campaign.name} is {campaign.status}")
        try:
            state = self.service.acd.engine.agent(agent_id).state
        except AcdError as exc:
            raise CampaignError(str(exc)) from exc
        if state not in CAN_DIAL:
            raise CampaignError(f"agent {agent_id} cannot place a call now ({state})")
        del self.offers[agent_id]
        contact = campaign.contacts[offer.contact_no]
        contact.status = offer.status_before  # _start moves it on to dialing
        call_id = self.service.place(campaign, offer.dial, contact)
        if call_id is None:  # the ACD refused the agent meanwhile: the contact is due again
            contact.next_at = self.service.clock.now()
            self.service.save_contact(campaign, contact)
            self.service.notify.preview_ended(campaign.name, agent_id, contact.no, "withdrawn: agent busy")
            raise CampaignError(f"agent {agent_id} cannot place a call now")
        self.service.notify.preview_ended(campaign.name, agent_id, contact.no, "dialled", call_id)
        return {"call_id": call_id, "contact": contact.view()}

    def skip(self, agent_id: str) -> dict[str, Any]:
        """Close the offered contact as skipped (never dialled); the agent is offered the next one."""
        offer = self._offer_of(agent_id)
        del self.offers[agent_id]
        campaign = self.service.campaign(offer.campaign)
        campaign.pacing.cancel(offer.dial.id)
        contact = campaign.contacts[offer.contact_no]
        contact.status, contact.last_outcome, contact.next_at = "skipped", "skipped", None
        self.service.save_contact(campaign, contact)
        self.service.notify.preview_ended(campaign.name, agent_id, contact.no, "skipped")
        log.info("campaign %s: contact %d skipped by agent %s", campaign.name, contact.no, agent_id)
        return contact.view()

    def withdraw(self, campaign: Campaign, why: str, agent_id: str | None = None) -> None:
        """Take back the campaign's offers (or one agent's): their contacts are due again at once."""
        for agent, offer in list(self.offers.items()):
            if offer.campaign != campaign.name or agent_id not in (None, agent):
                continue
            del self.offers[agent]
            campaign.pacing.cancel(offer.dial.id)
            contact = campaign.contacts[offer.contact_no]
            contact.status, contact.next_at = offer.status_before, self.service.clock.now()
            self.service.save_contact(campaign, contact)
            self.service.notify.preview_ended(campaign.name, agent, contact.no, f"withdrawn: {why}")

    def check_agents(self, campaign: Campaign) -> None:
        """Withdraw the offers of agents who logged out (or left the ACD)."""
        for agent_id, offer in list(self.offers.items()):
            if offer.campaign != campaign.name:
                continue
            try:
                logged_out = self.service.acd.engine.agent(agent_id).state == "logged_out"
            except AcdError:
                logged_out = True
            if logged_out:
                self.withdraw(campaign, "agent logged out", agent_id)

    def _offer_of(self, agent_id: str) -> Offer:
        offer = self.offers.get(agent_id)
        if offer is None:
            raise CampaignError(f"no contact is offered to agent {agent_id}", 404)
        return offer
