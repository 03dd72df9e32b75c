"""Answering-machine detection on campaign calls (README "Outbound campaigns", AMD).

ARI has no AMD of its own: the answered customer's channel takes a hop through the dialplan
(dialplans/ccc-amd.conf) that runs Asterisk's `AMD()` (app_amd, tuned in amd.conf) and comes back with
`Stasis(<app>,amd,<AMDSTATUS>,<AMDCAUSE>)`. On the way out the application sees StasisEnd, and on the way
back a StasisStart for the same channel, which the dispatcher hands to the call's session (the channel id
is still claimed). A customer who hangs up during the hop sends nothing to the application (it no longer
watches the channel): the wait asks Asterisk whether the channel is still there every second.

With `amd: message` the dialplan also waits for the end of the greeting (the silence after the beep,
`WaitForSilence`) before coming back, so the message is recorded by the machine from its start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from controller.ari.errors import AriError, ChannelGone
from controller.ari.models import StasisEnd, StasisStart
from controller.ivr.port import CallerHangup, Prompt
from controller.media.tts import TtsError
from controller.plugins.calls.session import CallSession

if TYPE_CHECKING:
    from controller.plugins.campaigns.services import Attempt, Campaign, CampaignService

log = logging.getLogger("controller.campaigns")

AMD_CONTEXT = "ccc-amd"
#: AMD's own analysis takes at most amd.conf's total_analysis_time (5 s); waiting for the beep at most
#: BEEP_TIMEOUT_SECONDS more; the rest is margin for a busy Asterisk.
BEEP_TIMEOUT_SECONDS = 20
DETECTION_TIMEOUT = 5.0 + BEEP_TIMEOUT_SECONDS + 10.0
MediaFor = Callable[[Prompt], Awaitable[str]]
#: How often the wait asks Asterisk whether the channel still exists (a hang-up in the dialplan sends no event).
CHANNEL_CHECK_SECONDS = 1.0


@dataclass(frozen=True)
class Verdict:
    """AMDSTATUS (MACHINE, HUMAN, NOTSURE, HANGUP) and AMDCAUSE (e.g. LONGGREETING-1600-1500)."""

    status: str
    cause: str = ""

    @property
    def machine(self) -> bool:
        return self.status == "MACHINE"


async def detect(session: CallSession, *, app: str, wait_for_beep: bool) -> Verdict:
    """Run AMD() on the answered channel and bring it back into the application (HANGUP: the customer left)."""
    try:
        await session.ari.set_var(session.channel_id, "CCC_APP", app)
        await session.ari.set_var(session.channel_id, "CCC_AMD_WAIT_BEEP", "1" if wait_for_beep else "0")
        await session.ari.set_var(session.channel_id, "CCC_AMD_BEEP_TIMEOUT", str(BEEP_TIMEOUT_SECONDS))
        await session.ari.continue_in_dialplan(session.channel_id, context=AMD_CONTEXT, extension="s", priority=1)
    except ChannelGone:
        return Verdict("HANGUP")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DETECTION_TIMEOUT
    while loop.time() < deadline:
        event = await session.next_event(CHANNEL_CHECK_SECONDS)
        if isinstance(event, StasisStart) and event.channel.id == session.channel_id:
            session.left_stasis = False  # back from the dialplan hop: ours again
            status = event.args[1] if len(event.args) > 1 else ""
            return Verdict(status or "NOTSURE", event.args[2] if len(event.args) > 2 else "")
        if event is None or isinstance(event, StasisEnd):
            try:
                await session.ari.channel(session.channel_id)
            except ChannelGone:
                session.destroyed = True
                return Verdict("HANGUP")
            except AriError:
                continue  # Asterisk busy: ask again on the next round
    log.warning("call %s: no answer from the AMD hop within %.0f s: hanging up", session.call_id, DETECTION_TIMEOUT)
    with contextlib.suppress(AriError):
        await session.ari.hangup(session.channel_id)
    session.destroyed = True
    return Verdict("HANGUP", "TIMEOUT")


async def leave_message(session: CallSession, prompt: Prompt, media_for: MediaFor) -> bool:
    """Say `prompt` to the machine (after its beep); True when it was played to the end."""
    try:
        await session.play([await media_for(prompt)])
    except (TtsError, AriError, CallerHangup) as exc:
        log.info("call %s: message for the answering machine not played: %s", session.call_id, exc)
        return False
    return True


class AnsweringMachines:
    """A campaign's handling of what AMD finds (`amd` setting): a person (or NOTSURE) goes on to the agent
    or the flow; a machine is hung up on (`machine`, retried after its delay), left `amd_message`
    (`machine_message`, done), or passed on like a person; a customer who hung up meanwhile is `hung_up`."""

    def __init__(self, service: CampaignService) -> None:
        self.service = service

    async def screen(self, campaign: Campaign, attempt: Attempt, session: CallSession) -> bool:
        """True: go on with the call; False: the attempt is over (ended here)."""
        settings = campaign.settings
        verdict = await detect(session, app=session.app_name, wait_for_beep=settings.amd == "message")
        handling = settings.amd if verdict.machine else ("hangup" if verdict.status == "HANGUP" else "agent")
        session.data["amd"] = verdict.status
        session.records.event(session.call_id, "amd", status=verdict.status, cause=verdict.cause, handling=handling)
        self.service.notify.amd(campaign.name, attempt.call_id, attempt.contact.no, verdict.status, verdict.cause,
                                handling, attempt.agent_id)
        log.info("campaign %s: contact %d: AMD %s (%s): %s", campaign.name, attempt.contact.no, verdict.status,
                 verdict.cause, handling)
        if handling == "agent":
            return True
        outcome = "hung_up" if verdict.status == "HANGUP" else "machine"
        try:
            if handling == "message":
                played = await leave_message(session, Prompt("tts", settings.amd_message,
                                                             "zh" if settings.region == "CN" else "en"),
                                             self.service.acd.media_for)
                outcome = "machine_message" if played else outcome
        finally:
            self.service.end_attempt(campaign, attempt, outcome)
            await session.hangup()
        return False
