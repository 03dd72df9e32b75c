"""IVR-only campaigns (README "Outbound campaigns"): notifications and surveys with no agent dialling.

Each answered customer hears the campaign's `flow` (an IVR flow of the flows directory, run by the IVR
engine as for an inbound caller: menus, collected input, surveys, and a `queue` node for "press 1 to talk
to someone", which puts the customer in the ACD queue like any caller). The flow's `caller` is the
customer's number. The attempt's outcome comes from how the flow went:
`transferred` (it reached a queue node), `completed` (it ran to its end or a hangup node), `hung_up` (the
customer hung up first), `failed` (the flow failed, or it is no longer live: the customer is hung up on
and retried after the `failed` delay).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from controller.ivr.nodes.queue import QueueNode
from controller.ivr.runner import FlowResult
from controller.plugins.calls.session import CallSession
from controller.plugins.campaigns.errors import CampaignError

if TYPE_CHECKING:
    from controller.plugins.campaigns.services import Attempt, Campaign, CampaignService

log = logging.getLogger("controller.campaigns")


class IvrOnlyCalls:
    def __init__(self, service: CampaignService) -> None:
        self.service = service

    def check_flow(self, campaign: Campaign) -> None:
        """Before an IVR-only campaign starts: its flow must be live."""
        if campaign.settings.mode != "ivr":
            return
        ivr = self.service.ivr
        if ivr is None or not ivr.flow_exists(campaign.settings.flow):
            raise CampaignError(f"flow: no live IVR flow {campaign.settings.flow!r}", 422)

    async def serve(self, campaign: Campaign, attempt: Attempt, session: CallSession) -> None:
        """Run the flow for the answered customer, then record the attempt's outcome."""
        outcome = "hung_up"
        try:
            ivr = self.service.ivr
            if ivr is None or not ivr.flow_exists(campaign.settings.flow):
                log.error("campaign %s: flow %r is not live: contact %d not served", campaign.name,
                          campaign.settings.flow, attempt.contact.no)
                outcome = "failed"
                return
            session.caller = attempt.contact.number  # the flow's `caller`: the customer, not our caller id
            session.entry_flow = campaign.settings.flow
            result = await ivr.serve(session)
            outcome = self.outcome(result, campaign.settings.flow)
        finally:
            campaign.pacing.ivr_done(attempt.dial.id)
            self.service.end_attempt(campaign, attempt, outcome)
            await session.hangup()

    def outcome(self, result: FlowResult | None, flow_id: str) -> str:
        if result is None or result.ended == "error":
            return "failed"
        assert self.service.ivr is not None
        flow = self.service.ivr.repository.snapshot.flows.get(flow_id)
        if flow is not None and any(isinstance(flow.nodes.get(node), QueueNode) for node in result.visited):
            return "transferred"
        return "hung_up" if result.ended == "caller_hangup" else "completed"
