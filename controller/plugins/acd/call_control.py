"""ACD call control: a call connected to an agent — the talk bridge, the agent's number announced, the
recording by queue policy, and the agent's commands on the call (hold, resume, blind and attended
transfer, transfer to an agent, consultation, conference, supervisor monitoring, standard prompts,
hang-up), until the agent or the caller leaves.

Like wazo-calld's capabilities, this side owns the "talk" part of the live-call picture; the engine
and the shared state stay in `services.AcdService`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from controller.acd.engine import AcdError
from controller.ari.client import new_id
from controller.ari.errors import AriError
from controller.ivr.port import CallerHangup, Language, Prompt, QueueOutcome, QueueRequest
from controller.plugins.acd.stasis import Answered, CallControl, Monitor, QueueCall
from controller.plugins.calls.legs import Bridge, Leg, start_snoop
from controller.plugins.calls.services import CallHandler, Resumption, stored_node
from controller.plugins.calls.session import CallSession
from controller.plugins.recordings.services import RecordingError

if TYPE_CHECKING:
    from controller.plugins.acd.services import AcdService

log = logging.getLogger("controller.acd")


class AcdCallControl:
    def __init__(self, acd: AcdService) -> None:
        self.acd = acd

    async def connect(self, waiting: QueueCall, answered: Answered, resumed: Bridge | None = None) -> QueueOutcome:
        """The agent answered: they talk with the caller until one hangs up or the call is transferred.
        A transfer to a named agent hands the call over and the colleague's part runs the same way.
        `resumed`: the talk bridge of a call a previous process connected (see `resume_talk`)."""
        if resumed is None and waiting.queue is not None:
            self.acd.records.offer(waiting.call_id, answered.agent_id, answered.leg.ring_seconds(), "answered")
        # A colleague who takes a transfer is already talking in the engine; so is the agent of an outbound call.
        queue_answer = resumed is None and waiting.queue is not None
        try:
            while True:
                transfer = await self._serve(waiting, answered, queue_answer=queue_answer, resumed=resumed)
                queue_answer, resumed = False, None
                handover, waiting.handover = waiting.handover, None
                if handover is None:
                    break
                answered = handover
        finally:
            await self._drop_handover(waiting)  # a handover never served: the caller left, or we stop
        if transfer is not None:
            return QueueOutcome("transferred", agent_id=answered.agent_id, overflow_target=transfer)
        return QueueOutcome("answered_then_ended", agent_id=answered.agent_id)

    async def serve_outbound(self, session: CallSession, agent_id: str, agent_leg: Leg, *,
                             on_agent_done: Callable[[str], None] | None = None) -> QueueOutcome:
        """An outbound call (click-to-dial, dialled on the phone, a campaign's) with the customer and the agent on
        the line: the customer is the call's channel, as the caller of an inbound call is (see
        `CallSession.take_channel`), the agent's phone a leg. They talk as on an inbound call, under the same
        commands (hold, transfers, conference, monitoring, standard prompts, recording); a blind transfer to a
        queue makes the customer wait there like an inbound caller. The agent was made busy before the dial
        (`AcdEngine.outbound`); their part ends here: ACW or back as before, then `on_agent_done`."""
        waiting = QueueCall(session, None, QueueRequest(""), phone_dial=self.acd.config.asterisk.phone_dial)
        if on_agent_done is not None:
            waiting.on_agent_done = on_agent_done
        self.acd.calls[session.call_id] = waiting
        try:
            outcome = await self.connect(waiting, Answered(agent_id, agent_leg))
        finally:
            self.acd.calls.pop(session.call_id, None)
        await self.acd.follow_queue_transfer(session, outcome, QueueRequest("", data=dict(session.data)))
        return outcome

    async def _serve(self, waiting: QueueCall, answered: Answered, *, queue_answer: bool,
                     resumed: Bridge | None = None) -> str | None:
        """One agent's part of a connected call: announce their number (工号), bridge, run their commands
        until they or the caller leave; returns a transfer target, if any. A `resumed` part goes on in
        its bridge (already announced, bridged and recording)."""
        session = waiting.session
        agent = self.acd.agent_configs.get(answered.agent_id)
        ended_by = "agent"  # who ended this agent's talk, for call.completed (queue_log's COMPLETECALLER/AGENT)
        try:
            waiting.on_talk_changed = lambda: self.save_talk(waiting)
            if resumed is None:
                if queue_answer:
                    self.acd.answering_channel[session.call_id] = answered.leg.channel_id
                    try:
                        self.acd.apply(self.acd.engine.answered(session.call_id, answered.agent_id))
                    finally:
                        self.acd.answering_channel.pop(session.call_id, None)
                # The agent is talking from now on (their desk and the API say so): their commands are taken
                # from now on too, and wait in the call's inbox until the call is bridged (`talk`).
                waiting.agent_id = answered.agent_id
                waiting.on_agent_left = lambda: self.acd.agent_done(waiting, answered.agent_id)
                waiting.talk_started = self.acd.clock.now()
                session.state = "talking"
                session.records.event(session.call_id, "agent_answered", agent_id=answered.agent_id)
                announce = waiting.queue is not None and waiting.queue.announce_agent_number and agent is not None
                if announce or self._records_by_policy(waiting):
                    # Out of the hold music first: for the announcement (removeChannel answers once the caller is
                    # out, so it plays), or so the recording starts without it. Else the caller goes straight from
                    # the hold into the talk bridge (`QueueCall.talk`).
                    await waiting.unhold()
                if announce and agent is not None:
                    prompt = self.acd.agent_number_prompt(agent, session.language)
                    session.records.event(session.call_id, "announcement", agent_id=agent.id, text=prompt.value)
                    await self.acd.announce_to_caller(session, prompt)
            waiting.agent_id = answered.agent_id
            waiting.on_agent_left = lambda: self.acd.agent_done(waiting, answered.agent_id)
            if resumed is None:
                await self._record_by_policy(waiting, answered.agent_id)
            session.persist()
            transfer = await waiting.talk(answered.leg, lambda command, bridge, leg: self._run_control(
                waiting, command, bridge, leg), resumed=resumed, pool=self.acd.talk_bridges)
            if transfer is not None or waiting.handover is not None:
                ended_by = "transfer"
            return transfer
        except CallerHangup:
            ended_by = "caller"
            raise
        except BaseException:
            ended_by = "controller"
            raise
        finally:
            await self.end_monitor(waiting)
            waiting.agent_id = None
            if waiting.held_since is not None:
                self.record_resume(waiting)
                await waiting.unhold()
            await answered.leg.hangup()
            self.acd.agent_done(waiting, answered.agent_id)
            if self.acd.live is not None:
                self.acd.live.drop(waiting.call_id, "talk")
            self.acd.publish("call.completed", call_id=session.call_id, agent_id=answered.agent_id,
                             queue=waiting.queue_name, ended_by=ended_by)

    async def _record_by_policy(self, waiting: QueueCall, agent_id: str) -> None:
        """`recording: always` queues record from the first answer; a call already recording (e.g. after
        a transfer) goes on in the same file with this agent added."""
        recordings = self.acd.recordings
        if recordings is not None and self._records_by_policy(waiting):
            try:
                await recordings.start(waiting.session, queue=waiting.queue_name, agent_id=agent_id,
                                       reason="queue_policy")
            except RecordingError as exc:
                log.error("call %s: %s", waiting.call_id, exc)  # the call goes on, unrecorded

    def _records_by_policy(self, waiting: QueueCall) -> bool:
        """Whether the agent's part is recorded from its start (`_record_by_policy`)."""
        if self.acd.recordings is None or waiting.session.recording_policy == "never":
            return False
        return (waiting.queue is not None and waiting.queue.recording == "always") \
            or waiting.call_id in self.acd.recordings.live

    async def control(self, call_id: str, action: str, *, target: str | None = None,
                      agent_id: str | None = None, timeout: float = 10.0,
                      options: dict[str, str] | None = None) -> dict[str, Any]:
        """Hold, resume, transfer or hang up (the agent's side of) a call connected to an agent;
        AcdError when it cannot be done.

        `agent_id`: the agent the request acts for (an agent's token), refused for another agent's call.
        The command runs in the call's own task (see `stasis.CallControl`); this waits for its result.
        """
        if action not in ("hold", "resume", "transfer", "hangup", "monitor", "conference", "conference_remove",
                          "play", "consult", "consult_complete", "consult_cancel", "consult_conference"):
            raise AcdError(f"unknown call command {action!r}")
        waiting = self.acd.calls.get(call_id)
        if waiting is None or waiting.agent_id is None:
            raise AcdError("the call is not connected to an agent")
        if agent_id is not None and waiting.agent_id != agent_id:
            raise PermissionError("an agent may control only their own calls")
        if action == "transfer":
            self._check_transfer_target(target)
            if waiting.queue is None and (target or "").startswith("node:"):
                raise AcdError("an outbound call has no IVR flow: transfer it to queue:, number:, phone: or agent:")
        done: asyncio.Future[dict[str, object]] = asyncio.get_running_loop().create_future()
        waiting.session.deliver(CallControl(type="CallControl", timestamp="", application="", raw={},
                                            action=action, target=target, done=done, options=options,
                                            agent_id=agent_id))
        async with asyncio.timeout(timeout):
            return dict(await done)

    def _check_transfer_target(self, target: str | None) -> None:
        kind, _, value = (target or "").partition(":")
        if kind == "queue":
            if value not in self.acd.queue_configs:
                raise AcdError(f"no queue {value!r}")
        elif kind in ("number", "phone"):
            self.dial_string(target or "")
        elif kind == "agent":
            if value not in self.acd.agent_configs:
                raise AcdError(f"no agent {value!r}")
        elif kind != "node" or not value:
            raise AcdError("transfer target must be queue:NAME, node:ID, number:DIGITS, phone:ENDPOINT or agent:ID")

    async def _run_control(self, waiting: QueueCall, command: CallControl, bridge: Bridge, leg: Leg) -> str | None:
        """Run one command in the call's task; the HTTP request gets the result through `command.done`
        (commands the call gives itself, e.g. when a consulted party hangs up, have none)."""
        if command.done is not None and command.done.done():
            return None  # its request gave up waiting (it came during a long prompt or ring): too late now
        try:
            return await self._run_command(waiting, command, bridge, leg)
        finally:
            if waiting.agent_id is not None:
                self.save_talk(waiting)

    async def _run_command(self, waiting: QueueCall, command: CallControl, bridge: Bridge, leg: Leg) -> str | None:
        try:
            if command.agent_id is not None and command.agent_id != waiting.agent_id:
                raise AcdError("the call is no longer with that agent")
            result, transfer = await self._control_step(waiting, command, bridge, leg)
        except CallerHangup:
            raise
        except Exception as exc:
            if not isinstance(exc, AcdError | AriError):
                log.exception("call %s: %s failed", waiting.call_id, command.action)
            if command.done is None:
                log.warning("call %s: %s failed: %s", waiting.call_id, command.action, exc)
            elif not command.done.done():
                command.done.set_exception(exc if isinstance(exc, AcdError) else AcdError(str(exc)))
            return None
        if command.done is not None and not command.done.done():
            command.done.set_result(result)
        return transfer

    async def hold_caller(self, waiting: QueueCall, bridge: Bridge) -> None:
        session, agent_id = waiting.session, waiting.agent_id
        assert agent_id is not None
        if waiting.held_since is not None:
            raise AcdError("the call is already on hold")
        self.acd.apply(self.acd.engine.hold(agent_id))
        await waiting.hold(self.acd.config.asterisk.moh_class)  # (addChannel takes the caller out of the talk first)
        waiting.held_since = time.monotonic()
        session.state = "held"
        session.records.event(session.call_id, "held", agent_id=agent_id)
        self.acd.publish("call.held", call_id=session.call_id, agent_id=agent_id)
        self.save_talk(waiting)

    async def resume_caller(self, waiting: QueueCall, bridge: Bridge) -> float:
        if waiting.held_since is None:
            raise AcdError("the call is not on hold")
        held_for = self.record_resume(waiting)
        await bridge.add(waiting.session.channel_id)  # out of the holding bridge by the same request
        await waiting.unhold(moved=True)
        self.save_talk(waiting)
        return held_for

    async def _consult(self, waiting: QueueCall, action: str, target: str, bridge: Bridge,
                       agent_leg: Leg) -> tuple[dict[str, object], str | None]:
        """Attended transfer (咨询转接): the caller holds while the agent talks to the target, then
        `consult_complete` (the caller with the target, the agent free), `consult_cancel` (back to the
        caller) or `consult_conference` (three-way). A target that does not answer, or hangs up, gives
        the caller back to the agent; an agent who hangs up during the consultation completes it."""
        session = waiting.session
        consult = waiting.consult
        if action == "consult":
            if consult is not None:
                raise AcdError("a consultation is already in progress")
            endpoint = self.dial_string(target)
            await self.hold_caller(waiting, bridge)
            party = Leg(session, endpoint, purpose="consult", caller_id=session.caller or None, ring_timeout=30.0)
            outcome = await party.dial()
            if not outcome.answered:
                await self.resume_caller(waiting, bridge)
                session.records.event(session.call_id, "consult_failed", to=endpoint, status=outcome.status)
                return {"call_id": session.call_id, "state": "talking", "consult": outcome.status.lower()}, None
            await bridge.add(party.channel_id)
            waiting.consult = party
            session.records.event(session.call_id, "consult", to=endpoint, agent_id=waiting.agent_id)
            return {"call_id": session.call_id, "state": "consulting", "party_channel": party.channel_id}, None
        if consult is None:
            raise AcdError("no consultation in progress")
        waiting.consult = None
        if action == "consult_cancel" or consult.channel_id in session.ended_channels:
            await consult.hangup()
            await self.resume_caller(waiting, bridge)
            session.records.event(session.call_id, "consult_cancelled", to=consult.endpoint)
            return {"call_id": session.call_id, "state": "talking"}, None
        await self.resume_caller(waiting, bridge)
        waiting.parties.append(consult)
        if action == "consult_conference":
            session.records.event(session.call_id, "conference_joined", party=consult.endpoint,
                                  agent_id=waiting.agent_id)
            self.acd.publish("conference.joined", call_id=session.call_id, agent_id=waiting.agent_id,
                             party=consult.endpoint)
            return {"call_id": session.call_id, "state": "conference"}, None
        session.records.event(session.call_id, "transfer", agent_id=waiting.agent_id, mode="attended",
                              to=consult.endpoint)
        self.acd.publish("call.transferred", call_id=session.call_id, agent_id=waiting.agent_id, kind="attended",
                         target=consult.endpoint)
        await agent_leg.hangup()
        waiting.on_agent_left()
        return {"call_id": session.call_id, "state": "transferred"}, None

    async def _control_step(self, waiting: QueueCall, command: CallControl, bridge: Bridge,
                            leg: Leg) -> tuple[dict[str, object], str | None]:
        session, agent_id = waiting.session, waiting.agent_id
        assert agent_id is not None
        if waiting.consult is not None and not command.action.startswith("consult") and command.action != "monitor":
            if command.action != "hangup":
                raise AcdError("a consultation is in progress: complete, cancel or conference it")
            # The agent leaves during a consultation: as when they hang up their phone, it completes.
            return await self._consult(waiting, "consult_complete", "", bridge, leg)
        if command.action == "play":
            return await self._play_standard(waiting, command.target or ""), None
        if command.action == "conference":
            return await self._add_party(waiting, command.target or "", bridge), None
        if command.action == "conference_remove":
            return await self._remove_party(waiting, command.target or ""), None
        if command.action == "monitor":
            return await self._monitor(waiting, command.target or "", (command.options or {}).get("phone", ""),
                                       bridge, leg), None
        if command.action == "hangup":
            # The agent's side ends; the caller goes on in the flow (survey, goodbye), never to silence.
            if waiting.held_since is not None:
                self.record_resume(waiting)
                await waiting.unhold()
            session.records.event(session.call_id, "agent_hangup", agent_id=agent_id)
            await leg.hangup()
            return {"call_id": session.call_id, "state": "agent_hung_up"}, None
        if command.action == "hold":
            await self.hold_caller(waiting, bridge)
            return {"call_id": session.call_id, "state": "held"}, None
        if command.action == "resume":
            if waiting.consult is not None:
                raise AcdError("a consultation is in progress: complete, cancel or conference it")
            held_for = await self.resume_caller(waiting, bridge)
            return {"call_id": session.call_id, "state": "talking", "held_for": held_for}, None
        if command.action.startswith("consult"):
            return await self._consult(waiting, command.action, command.target or "", bridge, leg)
        target = command.target or ""
        self._check_transfer_target(target)
        if target.startswith("agent:"):
            return await self._transfer_to_agent(waiting, target.removeprefix("agent:"), bridge, leg)
        if waiting.held_since is not None:
            await self.resume_caller(waiting, bridge)  # back in the call's bridge: it carries the transfer
        session.records.event(session.call_id, "transfer", agent_id=agent_id, mode="blind", to=target)
        self.acd.publish("call.transferred", call_id=session.call_id, agent_id=agent_id, kind="blind", target=target)
        if target.startswith(("number:", "phone:")):
            return await self._transfer_out(waiting, target, bridge, leg)
        return {"call_id": session.call_id, "state": "transferring", "target": target}, target

    async def _transfer_out(self, waiting: QueueCall, target: str, talk: Bridge,
                            agent_leg: Leg) -> tuple[dict[str, object], str | None]:
        """Blind transfer to a number or a phone: the agent is free at once; the caller hears music
        while the target rings, then talks with them in the same call (recording included). If the
        target does not answer, the caller goes back to the queue they came from (a new wait there)."""
        session = waiting.session
        await agent_leg.hangup()
        waiting.on_agent_left()
        talk.spoil()  # music on hold in it: not given to another call afterwards
        with contextlib.suppress(AriError):
            await session.ari.bridge_start_moh(talk.bridge_id, self.acd.config.asterisk.moh_class)
        party = Leg(session, self.dial_string(target), purpose="transfer", caller_id=session.caller or None,
                    ring_timeout=30.0)
        try:
            outcome = await party.dial()
        finally:
            with contextlib.suppress(AriError):
                await session.ari.bridge_stop_moh(talk.bridge_id)
        if not outcome.answered:
            session.records.event(session.call_id, "transfer_failed", to=target, status=outcome.status)
            return self._back_to_queue(waiting)
        await talk.add(party.channel_id)
        waiting.parties.append(party)
        session.records.event(session.call_id, "transfer_connected", to=target)
        return {"call_id": session.call_id, "state": "transferred", "target": target}, None

    @staticmethod
    def _back_to_queue(waiting: QueueCall) -> tuple[dict[str, object], str | None]:
        """A transfer failed and nobody is with the caller any more: back to the queue they came from. An
        outbound call has none: it ends (the talk is over with nobody left with the customer)."""
        if waiting.queue is None:
            return {"call_id": waiting.call_id, "state": "ended"}, None
        back = f"queue:{waiting.queue.name}"
        return {"call_id": waiting.call_id, "state": "back_to_queue", "target": back}, back

    async def _transfer_to_agent(self, waiting: QueueCall, to_agent: str, talk: Bridge,
                                 agent_leg: Leg) -> tuple[dict[str, object], str | None]:
        """转接到指定坐席: the caller holds (music) while a ready colleague's phone rings with the screen
        pop; the first agent stays on the line. When the colleague answers, the call is theirs (the first
        agent goes to ACW); when they do not, they are RONA'd and the caller is back with the first
        agent (or back in the queue, if the first agent hung up meanwhile)."""
        session, from_agent = waiting.session, waiting.agent_id
        assert from_agent is not None
        if waiting.consult is not None or waiting.parties:
            raise AcdError("a consultation or conference is in progress")
        target = f"agent:{to_agent}"
        endpoint = self.acd.engine.agent(to_agent).endpoint
        ring_timeout = waiting.queue.ring_timeout if waiting.queue is not None \
            else self.acd.config.acd.outbound_agent_ring_seconds
        colleague = Leg(session, self.dial_string(f"phone:{endpoint}"), purpose="agent",
                        caller_id=session.caller or None, ring_timeout=ring_timeout,
                        variables={"CCC_CALL_ID": session.call_id, "CCC_QUEUE": waiting.queue_name or ""})
        self.acd.apply(self.acd.engine.transfer_offer(session.call_id, from_agent, to_agent))
        try:
            if waiting.held_since is None:
                await self.hold_caller(waiting, talk)
            pop = self.acd.screen_pop(session, waiting.queue_name or "", waiting.history)
            self.acd.publish("call.ringing", call_id=session.call_id, agent_id=to_agent, queue=waiting.queue_name,
                             endpoint=endpoint, screen_pop={**pop, "transferred_by": from_agent})
            outcome = await colleague.dial()
        except BaseException:
            await colleague.hangup()
            self.acd.apply(self.acd.engine.transfer_failed(session.call_id, to_agent, "cancelled"))
            raise
        self.acd.records.offer(session.call_id, to_agent, colleague.ring_seconds(),
                               "transfer_answered" if outcome.answered else outcome.status.lower())
        if not outcome.answered:
            self.acd.apply(self.acd.engine.transfer_failed(session.call_id, to_agent,
                                                           "busy" if outcome.status == "BUSY" else "no_answer"))
            session.records.event(session.call_id, "transfer_failed", to=target, status=outcome.status)
            if agent_leg.gone or agent_leg.channel_id in session.ended_channels:
                return self._back_to_queue(waiting)
            await self.resume_caller(waiting, talk)
            return {"call_id": session.call_id, "state": "talking", "transfer": outcome.status.lower()}, None
        self.acd.apply(self.acd.engine.transfer_answered(session.call_id, from_agent, to_agent))
        self.record_resume(waiting)  # the caller waits in the holding bridge until the colleague's part starts
        session.records.event(session.call_id, "transfer", agent_id=from_agent, mode="agent", to=target)
        self.acd.publish("call.transferred", call_id=session.call_id, agent_id=from_agent, kind="agent", target=target)
        waiting.handover = Answered(to_agent, colleague)
        await agent_leg.hangup()
        waiting.on_agent_left()  # the first agent is in ACW when the command answers
        return {"call_id": session.call_id, "state": "transferred", "agent_id": to_agent}, target

    async def _drop_handover(self, waiting: QueueCall) -> None:
        """A colleague took the transfer but their part never started: hang up, end their part."""
        handover, waiting.handover = waiting.handover, None
        if handover is not None:
            await handover.leg.hangup()
            self.acd.agent_done(waiting, handover.agent_id)

    async def _monitor(self, waiting: QueueCall, mode: str, phone: str, talk: Bridge,
                       agent_leg: Leg) -> dict[str, object]:
        """Supervisor monitoring (监听 listen, 耳语 whisper, 强插 barge, stop), switchable during the call.

        The supervisor's phone is rung once (the first command names it) and stays on while the mode
        changes; listen and whisper go through a snoop channel on the agent's leg, so the caller never
        hears the supervisor until a barge."""
        session = waiting.session
        if mode not in ("listen", "whisper", "barge", "stop"):
            raise AcdError("mode must be listen, whisper, barge or stop")
        if waiting.monitor is not None and waiting.monitor.supervisor.channel_id in session.ended_channels:
            await self.end_monitor(waiting)  # the supervisor hung up: a new request rings them again
        monitor = waiting.monitor
        if waiting.parties and mode == "barge":
            raise AcdError("a conference is in progress: listen or whisper only")
        if mode == "stop":
            if monitor is None:
                raise AcdError("nobody is monitoring the call")
            await self.end_monitor(waiting)
            return {"call_id": session.call_id, "state": "talking", "mode": "stop"}
        if monitor is None:
            if not phone:
                raise AcdError("name the supervisor's phone to ring")
            supervisor = Leg(session, self.acd.config.asterisk.phone_dial.replace("{endpoint}", phone),
                             purpose="supervisor", caller_id=session.caller or None, ring_timeout=20.0)
            outcome = await supervisor.dial()
            if not outcome.answered:
                raise AcdError(f"the supervisor's phone did not answer ({outcome.status})")
            monitor = waiting.monitor = Monitor(supervisor, await Bridge(session, purpose="monitor").create())
            await monitor.bridge.add(supervisor.channel_id)
        # Leave the previous mode, then take the new one.
        if monitor.snoop_id is not None:
            with contextlib.suppress(AriError):
                await session.ari.hangup(monitor.snoop_id)
            session.dispatcher.release(monitor.snoop_id)
            monitor.snoop_id = None
        if monitor.mode == "barge" and mode != "barge":
            await talk.remove(monitor.supervisor.channel_id)
            await monitor.bridge.add(monitor.supervisor.channel_id)
        if mode == "barge":
            if monitor.mode != "barge":
                await monitor.bridge.remove(monitor.supervisor.channel_id)
                await talk.add(monitor.supervisor.channel_id)
        else:
            snoop_id = new_id("snoop")
            await start_snoop(session, agent_leg.channel_id, snoop_id, app=self.acd.config.ari.app, spy="both",
                              whisper="out" if mode == "whisper" else "none")
            await monitor.bridge.add(snoop_id)
            monitor.snoop_id = snoop_id
        monitor.mode = mode
        session.records.event(session.call_id, "monitor", mode=mode, agent_id=waiting.agent_id)
        return {"call_id": session.call_id, "state": "monitored", "mode": mode,
                "supervisor_channel": monitor.supervisor.channel_id, "snoop_channel": monitor.snoop_id,
                "monitor_bridge": monitor.bridge.bridge_id, "talk_bridge": talk.bridge_id}

    async def _play_standard(self, waiting: QueueCall, name: str) -> dict[str, object]:
        """Play a standard recording (fees, how to open an account…) to the caller only, on the agent's
        command; the caller is with the agent again when it ends (or when they press a key)."""
        text = self.acd.standard_prompts.get(name)
        if text is None:  # removed between the request's check and now
            raise AcdError(self.acd.no_standard_prompt(name))
        session = waiting.session
        language: Language = "en" if session.language.startswith("en") else "zh"
        prompt = Prompt("sound", text.removeprefix("sound:"), language) if text.startswith("sound:") \
            else Prompt("tts", text, language)
        session.records.event(session.call_id, "standard_prompt", name=name, agent_id=waiting.agent_id)
        await session.play([await self.acd.media_for(prompt)], barge_in=True)
        return {"call_id": session.call_id, "state": "talking", "played": name}

    def dial_string(self, target: str) -> str:
        """`number:13900139000` (through the trunk) or `phone:8002` (a phone), as an Asterisk endpoint."""
        kind, _, value = target.partition(":")
        if kind == "number" and value.lstrip("+").isdigit() and 3 <= len(value) <= 21:
            return self.acd.config.asterisk.trunk_dial.replace("{number}", value)
        if kind == "phone" and value and re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", value):  # as the API's patterns
            return self.acd.config.asterisk.phone_dial.replace("{endpoint}", value)
        raise AcdError("a conference party is number:DIGITS or phone:ENDPOINT")

    async def _add_party(self, waiting: QueueCall, target: str, talk: Bridge) -> dict[str, object]:
        """Conference (三方通话): ring a third party and add them to the call when they answer."""
        session = waiting.session
        endpoint = self.dial_string(target)
        if waiting.held_since is not None:
            raise AcdError("resume the call before adding a party")
        party = Leg(session, endpoint, purpose="conference",
                    caller_id=self.acd.config.acd.outbound_caller_id or None, ring_timeout=30.0)
        outcome = await party.dial()
        if not outcome.answered:
            raise AcdError(f"{target} did not answer ({outcome.status})")
        await talk.add(party.channel_id)
        waiting.parties.append(party)
        if waiting.on_party_left is None:
            waiting.on_party_left = lambda left: self.acd.publish(
                "conference.left", call_id=session.call_id, agent_id=waiting.agent_id, party=left.endpoint)
        session.records.event(session.call_id, "conference_joined", party=endpoint, agent_id=waiting.agent_id)
        self.acd.publish("conference.joined", call_id=session.call_id, agent_id=waiting.agent_id, party=endpoint)
        return {"call_id": session.call_id, "state": "conference", "party_channel": party.channel_id,
                "parties": [p.endpoint for p in waiting.parties]}

    async def _remove_party(self, waiting: QueueCall, target: str) -> dict[str, object]:
        """Hang up one conference party by command; the call goes on with whoever is left."""
        session = waiting.session
        endpoint = self.dial_string(target)
        party = next((p for p in waiting.parties if p.endpoint == endpoint and not p.gone), None)
        if party is None:
            raise AcdError(f"{target} is not in the conference")
        await party.hangup()
        waiting.party_left(party, removed_by=waiting.agent_id)
        return {"call_id": session.call_id, "state": "conference" if waiting.parties else "talking",
                "parties": [p.endpoint for p in waiting.parties]}

    async def end_monitor(self, waiting: QueueCall) -> None:
        monitor, waiting.monitor = waiting.monitor, None
        if monitor is None:
            return
        if monitor.snoop_id is not None:
            with contextlib.suppress(AriError):
                await waiting.session.ari.hangup(monitor.snoop_id)
            waiting.session.dispatcher.release(monitor.snoop_id)
        await monitor.supervisor.hangup()
        await monitor.bridge.destroy()
        waiting.session.records.event(waiting.call_id, "monitor", mode="stop", agent_id=waiting.agent_id)

    def record_resume(self, waiting: QueueCall) -> float:
        """Take the call off hold in the engine and the records; returns the seconds it was held."""
        session = waiting.session
        held_for = round(time.monotonic() - (waiting.held_since or time.monotonic()), 3)
        waiting.held_since = None
        session.state = "talking"
        if waiting.agent_id is not None:
            with contextlib.suppress(AcdError):
                self.acd.apply(self.acd.engine.resume(waiting.agent_id))
        session.records.event(session.call_id, "resumed", agent_id=waiting.agent_id, held_for=held_for)
        self.acd.publish("call.resumed", call_id=session.call_id, agent_id=waiting.agent_id, held_for=held_for)
        return held_for

    # -- the "talk" part of the live-call picture, and the resume of a connected call -------------------

    def save_talk(self, waiting: QueueCall) -> None:
        """Persist where the connected call stands (after bridging and after every change)."""
        # An outbound call (no queue) is not resumed after a restart: the next process hangs it up (README).
        if self.acd.live is not None and waiting.agent_id is not None and waiting.talk_bridge is not None \
                and waiting.agent_leg is not None and waiting.queue is not None:
            self.acd.live.save(waiting.call_id, "talk", talk_part(waiting, self.acd.clock.now()))

    async def resume_talk(self, resumption: Resumption) -> CallHandler | None:
        """A call that was connected to an agent when the previous process ended: take every leg and bridge
        over as they are (no media touched) and go on with the call where it stands; None when the talk
        bridge or the queue is gone (the next part, or the fallback route, takes the call)."""
        session, part = resumption.session, resumption.parts["talk"]
        queue = self.acd.queue_configs.get(str(part.get("queue")))
        agent_id = str(part.get("agent_id"))
        talk_bridge = resumption.bridges.get(str(part.get("talk_bridge")))
        if queue is None or not self.acd.engine.has_agent(agent_id) or talk_bridge is None:
            resumption.notes.append(f"talk: {'bridge gone' if talk_bridge is None else 'queue or agent unknown'}")
            return None
        request = QueueRequest(queue.name, dict(part.get("skills") or {}), int(part.get("priority") or 0),
                               dict(part.get("data") or {}))
        waiting = QueueCall(session, queue, request, phone_dial=self.acd.config.asterisk.phone_dial)
        alive = resumption.channels
        leg = adopt_leg(session, part["agent_leg"], alive)
        talk = adopt_bridge(session, talk_bridge.id, "mixing", talk_bridge.channels)
        waiting.talk_started = float(part.get("talk_started") or self.acd.clock.now())
        waiting.parties = [adopt_leg(session, party, alive) for party in part.get("parties") or []
                           if party["channel_id"] in alive]
        if part.get("consult"):
            waiting.consult = adopt_leg(session, part["consult"], alive)  # gone: the talk loop cancels it
        holding = resumption.bridges.get(str(part.get("holding_bridge")))
        if holding is not None and session.channel_id in holding.channels:
            waiting.holding = adopt_bridge(session, holding.id, "holding", holding.channels)
            held_for = max(0.0, self.acd.clock.now() - float(part.get("held_since") or self.acd.clock.now()))
            waiting.held_since = time.monotonic() - held_for
        elif holding is not None:
            await adopt_bridge(session, holding.id, "holding").destroy()  # left over: the caller is not in it
        waiting.monitor = await self._adopt_monitor(session, part.get("monitor"), resumption)
        if self.acd.engine.agent(agent_id).current_call != session.call_id:
            log.warning("call %s: agent %s was not restored on it; the call goes on with them", session.call_id,
                        agent_id)
        session.state = "held" if waiting.held_since is not None else "talking"
        self.acd.calls[session.call_id] = waiting  # now: commands find it, and the agent is not released

        async def go_on(session: CallSession) -> None:
            try:
                outcome = await self.connect(waiting, Answered(agent_id, leg), resumed=talk)
            finally:
                self.acd.calls.pop(session.call_id, None)
                await waiting.unhold()
            await self.acd.after_resumed_talk(session, outcome, request)

        return go_on

    async def _adopt_monitor(self, session: CallSession, saved: dict[str, Any] | None,
                             resumption: Resumption) -> Monitor | None:
        """A supervisor's monitoring goes on when their leg and bridge are still there; otherwise what is
        left of it is removed (the snoop, their leg, the bridge)."""
        if not saved:
            return None
        alive, bridges = resumption.channels, resumption.bridges
        supervisor = adopt_leg(session, saved["supervisor"], alive)
        bridge = adopt_bridge(session, str(saved.get("bridge")), "mixing")
        snoop_id = saved.get("snoop")
        if snoop_id in alive:
            session.dispatcher.claim(snoop_id, session)
        if not supervisor.gone and bridge.bridge_id in bridges:
            return Monitor(supervisor, bridge, str(saved.get("mode") or ""), snoop_id if snoop_id in alive else None)
        if snoop_id in alive:
            with contextlib.suppress(AriError):
                await session.ari.hangup(snoop_id)
            session.dispatcher.release(snoop_id)
        await supervisor.hangup()
        if bridge.bridge_id in bridges:
            await bridge.destroy()
        else:
            session.dispatcher.release(bridge.bridge_id)
        return None

    async def close_talk(self, call_id: str, parts: dict[str, dict[str, Any]]) -> str | None:
        """A connected call whose caller is gone (while no process was there): hang up what is left of it
        (the agent alone in the bridge, parties, the supervisor), end the agent's part (ACW, talk time);
        the call's end reason: the caller hung up if the agent's leg was still up, else lost."""
        part = parts["talk"]
        ari = self.acd.node_client(stored_node(parts))  # the call's node
        agent_leg = str((part.get("agent_leg") or {}).get("channel_id"))
        agent_was_up = False
        legs = [agent_leg, *(p["channel_id"] for p in part.get("parties") or []),
                *([part["consult"]["channel_id"]] if part.get("consult") else []),
                *([part["monitor"]["supervisor"]["channel_id"], part["monitor"].get("snoop")]
                  if part.get("monitor") else [])]
        for channel_id in legs:
            if not channel_id or ari is None:
                continue
            try:
                await ari.hangup(channel_id)
                agent_was_up = agent_was_up or channel_id == agent_leg
            except AriError:
                pass
        bridges = [part.get("talk_bridge"), part.get("holding_bridge"),
                   part["monitor"].get("bridge") if part.get("monitor") else None]
        for bridge_id in bridges:
            if bridge_id and ari is not None:
                with contextlib.suppress(AriError):
                    await ari.destroy_bridge(bridge_id)
        agent_id = str(part.get("agent_id"))
        if self.acd.engine.has_agent(agent_id) and self.acd.engine.agent(agent_id).current_call == call_id:
            self.acd.records.talk_ended(call_id)
            with contextlib.suppress(AcdError):
                self.acd.apply(self.acd.engine.call_ended(agent_id))
        return "caller_hangup" if agent_was_up else None


def leg_part(leg: Leg) -> dict[str, Any]:
    return {"channel_id": leg.channel_id, "endpoint": leg.endpoint, "purpose": leg.purpose}


def talk_part(waiting: QueueCall, now: float) -> dict[str, Any]:
    """The "talk" part: what a new process needs to go on with the connected call (see `resume_talk`)."""
    assert waiting.talk_bridge is not None and waiting.agent_leg is not None
    monitor = waiting.monitor
    held_since = None if waiting.held_since is None else now - (time.monotonic() - waiting.held_since)
    return {
        "queue": waiting.visited_queue.name, "priority": waiting.request.priority,
        "skills": dict(waiting.request.skills), "data": dict(waiting.request.data), "agent_id": waiting.agent_id,
        "agent_leg": leg_part(waiting.agent_leg), "talk_bridge": waiting.talk_bridge.bridge_id,
        "talk_started": waiting.talk_started, "held_since": held_since,
        "holding_bridge": waiting.holding.bridge_id if waiting.holding is not None else None,
        "parties": [leg_part(party) for party in waiting.parties],
        "consult": leg_part(waiting.consult) if waiting.consult is not None else None,
        "monitor": None if monitor is None else {"supervisor": leg_part(monitor.supervisor),
                                                 "bridge": monitor.bridge.bridge_id, "mode": monitor.mode,
                                                 "snoop": monitor.snoop_id},
    }


def adopt_leg(session: CallSession, saved: dict[str, Any], alive: Mapping[str, object]) -> Leg:
    """A leg a previous process originated, as a `Leg` of the resumed call (claimed when still up)."""
    leg = Leg.answered_channel(session, str(saved["channel_id"]), purpose=str(saved.get("purpose") or "agent"),
                               endpoint=str(saved.get("endpoint") or ""))
    if leg.channel_id in alive:
        session.dispatcher.claim(leg.channel_id, session)
    else:
        leg.gone = True
        session.ended_channels.add(leg.channel_id)
    return leg


def adopt_bridge(session: CallSession, bridge_id: str, kind: str, channels: Iterable[str] = ()) -> Bridge:
    """A bridge a previous process created, as a `Bridge` of the resumed call (claimed); `channels`: the
    ones Asterisk lists in it now."""
    bridge = Bridge(session, kind=kind)
    bridge.bridge_id = bridge_id
    bridge.created = True
    if session.channel_id in channels:
        session.caller_bridge = bridge_id
    session.dispatcher.claim(bridge_id, session)
    return bridge
