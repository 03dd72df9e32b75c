"""Agents' outbound calls (外呼): click-to-dial from the API, and numbers dialled on the agent's phone.

Both run the same way once the agent's phone is on the line: the number is checked (digits, the
allowed prefixes), the customer is dialled through the trunk with the agent's caller id and bridged
with the agent, who is busy (talking, reason "outbound", offered no queue call) until one side hangs
up; then back to what they were doing before (not ready with the same reason, or ready), or to
after-call work for `acd.outbound_wrapup_seconds`. Each call has a record (direction outbound, the
agent in its `customer_dialled` event, the number, times, end reason and cause) and the CTI events
of any call (call.offered, agent.state_changed, call.dialing, call.answered when the customer answers,
call.ended).

- Click-to-dial (`click_to_dial`): the controller rings the agent's phone first, then the customer.
- Dialled on the phone (`phone_call`): `dialplans/ccc-agents.conf` hands the number to the
  application (`Stasis(ccc,outbound,…)`); the phone hears ringing while the customer rings, and is
  answered when the customer answers. A number that is not valid or not allowed, a phone no agent is
  logged in on, an agent who cannot place a call now, or an internal number that has no phone (the
  dialplan hands it over as `outbound,unknown`) is refused: an announcement says why, the
  call is hung up (a Q.850 cause saying the same) and recorded with that reason.
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import TYPE_CHECKING, Any

from controller.acd.dialing import number_refusal
from controller.acd.engine import AcdError
from controller.ari.errors import AriError
from controller.config import DEFAULT_NODE
from controller.ids import unique_hex
from controller.ivr.port import CallerHangup, Prompt
from controller.logs import mask_number
from controller.media.tts import TtsError
from controller.plugins.calls.legs import Leg
from controller.plugins.calls.session import CallSession

if TYPE_CHECKING:
    from controller.plugins.acd.services import AcdService

log = logging.getLogger("controller.acd")

#: A number an agent may call: digits (a leading + allowed), 3 to 21 of them, as the API's pattern.
NUMBER = re.compile(r"\+?[0-9]{3,21}")
#: How long the customer's phone rings on a callback (an agent's own call: `acd.outbound_customer_ring_seconds`).
CUSTOMER_RING_SECONDS = 30.0

#: Why a call dialled on a phone is refused: what the phone hears (zh, en), and the hang-up reason
#: ARI gives Asterisk (its Q.850 cause goes into the BYE and the record).
REFUSALS: dict[str, tuple[str, str, str]] = {
    "unknown_extension": ("您拨打的分机号码不存在。", "The extension you dialled does not exist.", "unallocated"),
    "invalid_number": ("您拨打的号码无效，请核对后再拨。",
                       "The number you dialled is not valid. Please check it and dial again.", "number_incomplete"),
    "number_not_allowed": ("该号码不允许外呼。", "Calls to this number are not allowed.", "rejected"),
    "not_logged_in": ("请先签入坐席，再拨打外线。", "Log in as an agent before calling out.", "rejected"),
    "agent_busy": ("您当前的状态不能外呼。", "You cannot call out in your current state.", "busy"),
    "unavailable": ("外呼暂不可用。", "Outbound calls are not available.", "congestion"),
}
#: The dial status of a ring Asterisk ended itself, by its Q.850 cause; and the end reasons of the dial statuses.
FAILED_BY_CAUSE = {17: "BUSY", 18: "NOANSWER", 19: "NOANSWER"}
END_REASONS = {"NOANSWER": "no_answer", "TIMEOUT": "no_answer"}
#: How a customer's phone that did not answer ends the agent's call (ARI hang-up reason).
DIAL_FAILURES = {"BUSY": "busy", "NOANSWER": "no_answer", "TIMEOUT": "no_answer", "CHANUNAVAIL": "congestion",
                 "CONGESTION": "congestion"}


def endpoint_of(channel_name: str) -> str:
    """"PJSIP/8001-0000002a" -> "8001" (the phone a channel comes from)."""
    return channel_name.partition("/")[2].rpartition("-")[0]


class AgentOutbound:
    """The agents' outbound calls, on the ACD's engine, records and CTI stream."""

    def __init__(self, acd: AcdService) -> None:
        self.acd = acd

    def prompts(self) -> list[Prompt]:
        """The refusal announcements, to render ahead (`AcdService.warm_prompts`)."""
        return [prompt for zh, en, _ in REFUSALS.values()
                for prompt in (Prompt("tts", zh, "zh"), Prompt("tts", en, "en"))]

    # -- checks ---------------------------------------------------------------------------------------

    def number_error(self, number: str) -> str | None:
        """Why an agent may not call `number` ("invalid_number", "number_not_allowed"), None if they may."""
        if not NUMBER.fullmatch(number):
            return "invalid_number"
        if number_refusal(self.acd.config.dialing, number) is not None:
            return "number_not_allowed"
        return None

    def caller_id(self, agent_id: str) -> str | None:
        """The number the customer sees: the agent's own outbound caller id, else the centre's."""
        agent = self.acd.agent_configs.get(agent_id)
        return (agent.caller_id if agent else "") or self.acd.config.acd.outbound_caller_id or None

    def agent_on_phone(self, endpoint: str, node: str = DEFAULT_NODE) -> str | None:
        """The agent logged in on this phone of this Asterisk node, if any."""
        phone = (node, endpoint)
        return next((agent.id for agent in self.acd.engine.agents()
                     if self.acd.phone_at(agent.endpoint) == phone and agent.state != "logged_out"), None)

    def _busy(self, agent_id: str, call_id: str) -> None:
        """The agent is on this outbound call now (AcdError when they cannot place one)."""
        self.acd.apply(self.acd.engine.outbound(agent_id, call_id,
                                                wrapup_seconds=self.acd.config.acd.outbound_wrapup_seconds))

    def _free(self, agent_id: str, call_id: str) -> None:
        """The agent's outbound call is over: ACW, or back as before (once per call)."""
        if self.acd.engine.agent(agent_id).current_call == call_id:
            with contextlib.suppress(AcdError):
                self.acd.apply(self.acd.engine.call_ended(agent_id))

    # -- click-to-dial: the agent's phone rings first, then the customer through the trunk -------------

    async def click_to_dial(self, agent_id: str, number: str) -> dict[str, Any]:
        """Ring the agent's phone (`acd.outbound_agent_ring_seconds`); when they answer, dial `number` and
        connect them. AcdError when the agent cannot place a call now (nothing changed then)."""
        acd = self.acd
        if agent_id not in acd.agent_configs:
            raise AcdError(f"no agent {agent_id!r}")
        if acd.originate is None:
            raise AcdError("outbound calls are not available")
        if (error := self.number_error(number)) is not None:
            raise AcdError("the number is not valid" if error == "invalid_number"
                           else "calls to that number are not allowed (dialing.allowed_prefixes/denied_prefixes)")
        endpoint = acd.engine.agent(agent_id).endpoint or acd.agent_configs[agent_id].endpoint
        call_id = unique_hex()
        self._busy(agent_id, call_id)
        try:
            await acd.originate(acd.config.asterisk.phone_dial.replace("{endpoint}", endpoint), did=number,
                                caller_id=number, timeout=acd.config.acd.outbound_agent_ring_seconds, call_id=call_id,
                                handler=lambda session: self._agent_answered(session, agent_id, number),
                                on_failed=lambda cause: self._agent_did_not_answer(agent_id, call_id, cause))
        except AriError as exc:
            self._free(agent_id, call_id)
            raise AcdError(f"cannot ring the agent's phone {endpoint}: {exc.message}") from exc
        log.info("agent %s: click-to-dial %s (call %s)", agent_id, mask_number(number), call_id)
        return {"call_id": call_id, "agent_id": agent_id, "state": "ringing_agent"}

    def _agent_did_not_answer(self, agent_id: str, call_id: str, cause: int | None) -> None:
        """The agent's phone never answered: the agent is free again; the CTI stream hears why."""
        self._free(agent_id, call_id)
        self.acd.publish("call.ended", call_id=call_id, agent_id=agent_id, reason="agent_no_answer", cause=cause,
                         cause_txt=None, duration=0.0)

    async def _agent_answered(self, session: CallSession, agent_id: str, number: str) -> None:
        session.answered = True  # the originated channel is up
        session.records.answered(session.call_id)
        await self._call_customer(session, agent_id, number, answer_agent=False)

    # -- a number dialled on the agent's phone ----------------------------------------------------------

    async def phone_call(self, session: CallSession) -> None:
        """The call handler for a number dialled on a phone (`CallsService.phone_call_handler`)."""
        number, endpoint = session.did, endpoint_of(session.channel_name)
        agent_id = self.agent_on_phone(endpoint, session.ari.node)
        if session.stasis_args[1:2] == ["unknown"]:  # an internal number the dialplan found no phone for
            await self._refuse(session, "unknown_extension", agent_id, endpoint)
            return
        if agent_id is None:
            await self._refuse(session, "not_logged_in", None, endpoint)
            return
        if (error := self.number_error(number)) is not None:
            await self._refuse(session, error, agent_id, endpoint)
            return
        try:
            self._busy(agent_id, session.call_id)
        except AcdError:
            await self._refuse(session, "agent_busy", agent_id, endpoint)
            return
        log.info("agent %s: dialled %s on phone %s (call %s)", agent_id, mask_number(number), endpoint,
                 session.call_id)
        session.records.event(session.call_id, "agent_dialled", agent_id=agent_id, endpoint=endpoint)
        with contextlib.suppress(AriError):
            await session.ari.ring(session.channel_id)  # the phone hears ringing while the customer rings
        await self._call_customer(session, agent_id, number, answer_agent=True)

    async def _refuse(self, session: CallSession, reason: str, agent_id: str | None, endpoint: str) -> None:
        """Say why the call cannot be placed, hang up with a cause saying the same, keep it on record."""
        zh, en, hangup_reason = REFUSALS[reason]
        log.info("phone %s: outbound call to %s refused: %s (call %s)", endpoint, mask_number(session.did), reason,
                 session.call_id)
        session.end_reason = reason
        session.records.event(session.call_id, "outbound_refused", reason=reason, agent_id=agent_id,
                              endpoint=endpoint)
        english = session.language.startswith("en")
        try:
            media = await self.acd.media_for(Prompt("tts", en if english else zh, "en" if english else "zh"))
            await session.ari.answer(session.channel_id)  # answered for the announcement; not on the record
            session.answered = True
            await session.play([media])
        except (TtsError, AriError) as exc:
            log.warning("call %s: refusal announcement not played: %s", session.call_id, exc)
        await session.hangup(hangup_reason)

    # -- both: the customer's leg -------------------------------------------------------------------------

    async def _call_customer(self, session: CallSession, agent_id: str, number: str, *, answer_agent: bool) -> None:
        """Dial the customer through the trunk and connect them with the agent's phone (the session's
        channel); `answer_agent`: that channel is still ringing, answered when the customer answers.

        Once connected, the customer's channel is the call's own and the agent's phone a leg of it
        (`CallSession.take_channel`): the call runs as an inbound one does (`AcdCallControl.serve_outbound`)."""
        session.state = "dialing"
        leg = Leg(session, self.acd.config.asterisk.trunk_dial.replace("{number}", number), purpose="customer",
                  caller_id=self.caller_id(agent_id), ring_timeout=self.acd.config.acd.outbound_customer_ring_seconds)
        self.acd.publish("call.dialing", call_id=session.call_id, agent_id=agent_id, number=number)
        try:
            dialled = await leg.dial()
            session.records.event(session.call_id, "customer_dialled", agent_id=agent_id, status=dialled.status,
                                  cause=dialled.cause)
            if not dialled.answered:
                # A ring Asterisk ended itself (the originate's timeout) says why by its cause only (19: no answer).
                status = FAILED_BY_CAUSE.get(dialled.cause or 0, "FAILED") if dialled.status == "FAILED" \
                    else dialled.status
                session.end_reason = f"customer_{END_REASONS.get(status, status.lower())}"
                await session.hangup(DIAL_FAILURES.get(status, "normal"))
                return
            if answer_agent:
                await session.answer()
            self.acd.publish("call.answered", call_id=session.call_id, agent_id=agent_id, queue=None,
                             wait=round(leg.ring_seconds(), 3))
            phone = session.take_channel(leg.channel_id, caller=number, previous_as="agent")
            leg = Leg.answered_channel(session, phone, purpose="agent")  # the customer's channel is the call's now
            await self.acd.call_control.serve_outbound(session, agent_id, leg)
            session.end_reason = session.end_reason or "agent_hangup"  # the agent (or whom they transferred to) left
        except CallerHangup:
            # The call's channel hung up: the agent's phone while the customer rang, the customer's afterwards.
            session.end_reason = session.end_reason or ("customer_hangup" if leg.purpose == "agent" else "agent_hangup")
            raise
        finally:
            self._free(agent_id, session.call_id)
            await leg.hangup()
            await session.hangup()
