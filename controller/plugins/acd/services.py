"""The ACD service: the routing engine (pure, `controller.acd`) wired to calls, records and CTI.

- Agent commands (login, ready, pause, logout, end ACW) come from the HTTP API and the CLI.
- `enqueue()` is what the IVR's queue node calls: the caller waits (see `stasis.QueueCall`) until
  an agent answers and hangs up again, the caller leaves, or the queue overflows.
- The engine's decisions are applied in `apply()`: state changes are recorded and published, and
  decisions about a call go to that call's task. A timer task calls `engine.tick()` when the
  engine has something due (ring timeouts, end of wrap-up, announcements, maximum wait).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from controller.acd.alerts import StandardsMonitor
from controller.acd.engine import AcdEngine, AcdError
from controller.acd.model import (
    AgentSettings,
    AgentStateChanged,
    Announce,
    CallLeft,
    CancelOffer,
    Decision,
    Offer,
    Overflow,
    QueueSettings,
)
from controller.ari.client import new_id
from controller.ari.errors import AriError
from controller.clock import Clock
from controller.config import AcdAgentConfig, AcdQueueConfig, Config
from controller.ivr.flow import screen_pop_data
from controller.ivr.port import CallerHangup, Language, Prompt, QueueOutcome, QueueRequest
from controller.logs import mask_number
from controller.lookup import caller_region, is_phone_number
from controller.media.say import say_digits
from controller.media.tts import TtsError
from controller.plugins.acd.agent_outbound import AgentOutbound
from controller.plugins.acd.stasis import Answered, CallControl, LeftQueue, Monitor, QueueCall
from controller.plugins.acd.state_persistor import AcdRecords
from controller.plugins.calls.legs import Bridge, DialOutcome, Leg, start_snoop
from controller.plugins.calls.session import CallSession
from controller.plugins.recordings.services import RecordingError, RecordingService

log = logging.getLogger("controller.acd")

MediaFor = Callable[[Prompt], Awaitable[str]]
Originate = Callable[..., Awaitable[str]]  # CallsService.originate
Publish = Callable[..., Any]

#: Overflow hops a call may make through `queue:` targets before the flow decides instead.
MAX_QUEUE_HOPS = 3
#: How often the service standards (hold, ACW, talk, wait, service level) are checked.
STANDARDS_CHECK_SECONDS = 1.0


def queue_settings(queue: AcdQueueConfig) -> QueueSettings:
    return QueueSettings(
        name=queue.name, strategy=queue.strategy, skills=dict(queue.skills), wrapup_seconds=queue.wrapup_seconds,
        ring_timeout=queue.ring_timeout, max_wait=queue.max_wait, overflow=queue.overflow,
        announce_interval=queue.announce_interval, service_level_seconds=queue.service_level_seconds,
        no_agents=queue.no_agents, priority_aging_seconds=queue.priority_aging_seconds)


def agent_settings(agent: AcdAgentConfig) -> AgentSettings:
    return AgentSettings(id=agent.id, name=agent.name, number=agent.number, endpoint=agent.endpoint,
                         skills=dict(agent.skills), queues=dict(agent.queues))


class AcdService:
    def __init__(self, *, config: Config, clock: Clock, records: AcdRecords, publish: Publish,
                 media_for: MediaFor, originate: Originate | None = None,
                 recordings: RecordingService | None = None) -> None:
        self.config = config
        self.clock = clock
        self.records = records
        self.publish = publish
        self.media_for = media_for
        self.originate = originate
        self.recordings = recordings
        self.queue_configs = {queue.name: queue for queue in config.acd.queues}
        self.agent_configs = {agent.id: agent for agent in config.acd.agents}
        self.engine = AcdEngine([queue_settings(q) for q in config.acd.queues],
                                [agent_settings(a) for a in config.acd.agents], clock,
                                not_ready_reasons=tuple(config.acd.not_ready_reasons))
        self.standards = config.standards
        self.monitor = StandardsMonitor(self.standards)
        self.calls: dict[str, QueueCall] = {}
        self._overflow_targets: dict[str, str | None] = {}
        self._replan = asyncio.Event()
        self.history_failures = 0  # caller-history reads that failed (the calls were queued without it)
        self._history_failing = False
        self.outbound = AgentOutbound(self)

    # -- lifecycle ----------------------------------------------------------------------------------

    async def restore(self) -> None:
        """Bring agents back as they were before a restart (the snapshot is saved on every change)."""
        snapshot = await self.records.load_snapshot()
        if snapshot:
            self.apply(self.engine.restore(snapshot))
            log.info("ACD: restored %d agents' states", sum(1 for a in self.engine.agents()
                                                               if a.state != "logged_out"))

    async def run(self) -> None:
        """The engine's timer and the service-standards watch, until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._run_timer())
            tasks.create_task(self._watch_standards())
            tasks.create_task(self.warm_prompts())

    async def warm_prompts(self) -> None:
        """Render the agents' number announcements (and outbound refusals) ahead: nobody should wait for
        text to speech."""
        prompts = [self._agent_number_prompt(agent, language) for agent in self.agent_configs.values()
                   for language in ("zh", "en")]
        for prompt in [*prompts, *self.outbound.prompts()]:
            with contextlib.suppress(Exception):
                await self.media_for(prompt)

    async def _watch_standards(self) -> None:
        while True:
            await asyncio.sleep(STANDARDS_CHECK_SECONDS)
            self.check_standards()

    def check_standards(self) -> None:
        """Publish an `alert.raised` event for each standard newly broken (see `controller.acd.alerts`)."""
        engine = self.engine
        waiting = [call for queue in engine.queues() for call in engine.waiting(queue.name)]
        for alert in self.monitor.check(self.clock.now(), engine.agents(), waiting, engine.queues()):
            log.warning("standard broken: %s %s (%s > %s)", alert.kind, alert.subject, alert.value, alert.threshold)
            self.publish("alert.raised", call_id=alert.call_id, agent_id=alert.agent_id, queue=alert.queue,
                         kind=alert.kind, subject=alert.subject, value=alert.value, threshold=alert.threshold)

    async def _run_timer(self) -> None:
        """Call `engine.tick()` whenever the engine has something due."""
        while True:
            deadline = self.engine.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self.clock.now())
            self._replan.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._replan.wait()
            self.apply(self.engine.tick())

    # -- agent commands -------------------------------------------------------------------------------

    def command(self, action: str, agent_id: str, **arguments: Any) -> Any:
        """Run an agent command on the engine (AcdError on bad input: nothing changed)."""
        handlers: dict[str, Callable[..., list[Decision]]] = {
            "login": self.engine.login, "ready": self.engine.ready, "not_ready": self.engine.not_ready,
            "logout": self.engine.logout, "end_acw": self.engine.end_acw,
            "hold": self.engine.hold, "resume": self.engine.resume,
        }
        if action not in handlers:
            raise AcdError(f"unknown agent command {action!r}")
        self.apply(handlers[action](agent_id, **arguments))
        return self.engine.agent(agent_id)

    # -- decisions ---------------------------------------------------------------------------------

    def apply(self, decisions: list[Decision]) -> None:
        agents_changed = False
        for decision in decisions:
            if isinstance(decision, AgentStateChanged):
                agents_changed = True
                self.records.agent_state(decision.agent_id, decision.state, decision.reason, decision.previous,
                                         decision.at)
                self.publish("agent.state_changed", agent_id=decision.agent_id, state=decision.state,
                             previous=decision.previous, reason=decision.reason)
            elif isinstance(decision, CallLeft):
                self._call_left(decision)
            else:
                if isinstance(decision, Overflow):
                    self._overflow_targets[decision.call_id] = decision.target
                waiting = self.calls.get(decision.call_id)
                if waiting is not None:
                    if isinstance(decision, CancelOffer) and decision.reason in ("ring_timeout", "picked_up"):
                        self._ring_timed_out(waiting, decision.agent_id, decision.reason)
                    waiting.signal(decision)
                if isinstance(decision, Offer):
                    self._publish_ringing(decision)
                elif isinstance(decision, Announce):
                    self.publish("call.position_changed", call_id=decision.call_id, queue=decision.queue,
                                 position=decision.position, estimated_wait=decision.estimated_wait)
        if agents_changed:
            self.records.save_snapshot(self.engine.snapshot())
        self._replan.set()

    def _call_left(self, left: CallLeft) -> None:
        waiting = self.calls.get(left.call_id)
        if waiting is not None:
            waiting.left = True
        target = self._overflow_targets.pop(left.call_id, None)
        queue = self.queue_configs.get(left.queue)
        threshold = queue.service_level_seconds if queue else self.standards.service_level_seconds
        if not (left.outcome == "abandoned" and left.wait_seconds < self.standards.short_abandon_seconds):
            self.monitor.call_left(left.queue, self.clock.now(),
                                   answered_within=left.outcome == "answered" and left.wait_seconds <= threshold)
        self.records.left(left.call_id, left.outcome, left.wait_seconds, left.agent_id, target)
        wait = round(left.wait_seconds, 3)
        if left.outcome == "answered":
            self.publish("call.answered", call_id=left.call_id, agent_id=left.agent_id, queue=left.queue, wait=wait)
        elif left.outcome == "abandoned":
            self.publish("call.abandoned", call_id=left.call_id, queue=left.queue, wait=wait)
        elif waiting is not None and not (target or "").startswith("queue:"):
            # The flow decides where an overflowed caller goes (the queue's `overflow` is only a hint to
            # its queue node): the event names that place when the flow takes the caller there (IVR).
            waiting.session.pending_overflow = {"call_id": left.call_id, "queue": left.queue, "wait": wait}
        else:
            self.publish("call.overflowed", call_id=left.call_id, queue=left.queue, target=target or "", wait=wait)

    def _publish_ringing(self, offer: Offer) -> None:
        waiting = self.calls.get(offer.call_id)
        pop = self.screen_pop(waiting.session, offer.queue, waiting.history) if waiting else {}
        self.publish("call.ringing", call_id=offer.call_id, agent_id=offer.agent_id, queue=offer.queue,
                     endpoint=offer.endpoint, screen_pop=pop)

    def screen_pop(self, session: CallSession, queue: str,
                   history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """What the agent's screen shows for a ringing call: who calls, from where, what they said,
        and their last calls (when, who answered, the disposition left)."""
        region = caller_region(session.caller) if session.caller else None
        return {"caller": session.caller, "did": session.did, "queue": queue,
                "region": region.as_dict() if region else None,
                "tier": session.data.get("tier"), "data": screen_pop_data(session.data), "history": history or []}

    # -- the caller's side ----------------------------------------------------------------------------

    async def enqueue(self, session: CallSession, request: QueueRequest) -> QueueOutcome:
        """Queue the caller; returns when the agent call is over (caller still here) or the call left
        the queue; raises CallerHangup when the caller hung up (recorded as abandoned if waiting)."""
        waited = 0.0
        for _hop in range(MAX_QUEUE_HOPS):
            outcome = await self._visit(session, request, waited)
            target = outcome.overflow_target or ""
            if outcome.result not in ("overflow", "transferred") or not target.startswith("queue:"):
                return outcome
            # An overflowed caller keeps their wait in the next queue; a transferred one starts anew.
            waited = session.age() if outcome.result == "overflow" else 0.0
            request = QueueRequest(target.removeprefix("queue:"), request.skills, request.priority, request.data)
        return outcome

    async def _caller_history(self, session: CallSession) -> list[dict[str, Any]]:
        """The caller's last calls for the agent's screen pop. Only a help: when the store cannot be read
        (disk full, I/O error) the call is queued without it, said once per outage in the log."""
        try:
            calls = await session.records.history(session.caller, limit=6)
        except Exception as exc:  # whatever the store's trouble, the caller is served
            self.history_failures += 1
            if not self._history_failing:
                log.warning("call %s: the caller's history cannot be read (%s); queueing without it until"
                            " the store answers again", session.call_id, exc)
            self._history_failing = True
            return []
        if self._history_failing:
            log.info("the callers' history can be read again")
        self._history_failing = False
        return [call for call in calls if call["call_id"] != session.call_id][:5]

    async def _visit(self, session: CallSession, request: QueueRequest, waited: float) -> QueueOutcome:
        queue = self.queue_configs.get(request.queue)
        if queue is None:
            log.error("call %s: no queue %r in the configuration", session.call_id, request.queue)
            return QueueOutcome("unavailable")
        waiting = QueueCall(session, queue, request, phone_dial=self.config.asterisk.phone_dial)
        self.calls[session.call_id] = waiting
        session.state = "queued"
        session.data.update(request.data)
        session.records.event(session.call_id, "queued", queue=queue.name, priority=request.priority)
        self.records.enqueued(session.call_id, queue.name, request.priority)
        try:
            await session.answer()
            await waiting.hold(self.config.asterisk.moh_class)
            if is_phone_number(session.caller):  # "anonymous" or "x&y" would pool strangers' calls
                waiting.history = await self._caller_history(session)
            decisions = self.engine.enqueue(session.call_id, queue.name, priority=request.priority,
                                            skills=dict(request.skills), data=dict(request.data), waited=waited)
            view = self.engine.call(session.call_id)
            self.publish("call.queued", call_id=session.call_id, queue=queue.name, priority=request.priority,
                         skills=dict(request.skills), position=view.position if view else 0)
            self.apply(decisions)
            step = await waiting.next_step(lambda announce: self._announce(waiting, announce),
                                           lambda agent_id, leg, outcome: self._ring_failed(waiting, agent_id,
                                                                                           leg, outcome))
            if isinstance(step, LeftQueue):
                return self._overflow_outcome(step.overflow, queue)
            return await self._connect(waiting, step)
        except BaseException:
            # The caller hung up (or we failed, or are stopping): the call leaves the engine as abandoned.
            if not waiting.left:
                with contextlib.suppress(AcdError):
                    self.apply(self.engine.abandon(session.call_id))
            raise
        finally:
            self.calls.pop(session.call_id, None)
            await waiting.hang_up_legs()
            await waiting.unhold()
            if session.state != "ended":
                session.state = "ivr"  # back in the flow (survey, goodbye): no agent any more

    def _overflow_outcome(self, overflow: Overflow, queue: AcdQueueConfig) -> QueueOutcome:
        target = overflow.target if overflow.target is not None else queue.overflow
        if target is None:
            return QueueOutcome("no_agents" if overflow.reason == "no_agents" else "timeout")
        return QueueOutcome("overflow", overflow_target=target)

    async def _record_by_policy(self, waiting: QueueCall, agent_id: str) -> None:
        """`recording: always` queues record from the first answer; a call already recording (e.g. after
        a transfer) goes on in the same file with this agent added."""
        if self.recordings is None or waiting.session.recording_policy == "never":
            return
        recording = self.recordings.live.get(waiting.call_id)
        if waiting.queue.recording == "always" or recording is not None:
            try:
                await self.recordings.start(waiting.session, queue=waiting.queue.name, agent_id=agent_id,
                                            reason="queue_policy")
            except RecordingError as exc:
                log.error("call %s: %s", waiting.call_id, exc)  # the call goes on, unrecorded

    def _ring_timed_out(self, waiting: QueueCall, agent_id: str, reason: str = "ring_timeout") -> None:
        """An offer the engine took back (its ring timeout: RONA; or a colleague picked the call up):
        it goes on the visit's record like a failed ring."""
        leg = waiting.legs.get(agent_id)
        result = "picked_up" if reason == "picked_up" else "no_answer"
        self.records.offer(waiting.call_id, agent_id, leg.ring_seconds() if leg else 0.0, result)
        waiting.session.records.event(waiting.call_id, "agent_no_answer" if result == "no_answer" else "picked_up",
                                      agent_id=agent_id, status=reason.upper())

    def _ring_failed(self, waiting: QueueCall, agent_id: str, leg: Leg, outcome: DialOutcome) -> None:
        self.records.offer(waiting.call_id, agent_id, leg.ring_seconds(), outcome.status.lower())
        waiting.session.records.event(waiting.call_id, "agent_no_answer", agent_id=agent_id, status=outcome.status)
        reason = "busy" if outcome.status == "BUSY" else "no_answer"
        with contextlib.suppress(AcdError):
            self.apply(self.engine.no_answer(waiting.call_id, agent_id, reason))

    async def _announce(self, waiting: QueueCall, announce: Announce) -> None:
        """您前面还有 N 位 / There are N callers ahead of you (and the estimated wait)."""
        session = waiting.session
        zh = not session.language.startswith("en")
        ahead = max(0, announce.position - 1)
        if zh:
            text = f"您前面还有{ahead}位客户" if ahead else "您是下一位"
        else:
            text = f"There {'is' if ahead == 1 else 'are'} {ahead} caller{'' if ahead == 1 else 's'} ahead of you." \
                if ahead else "You are next in line."
        if waiting.queue.announce_wait_time and announce.estimated_wait:
            minutes = max(1, round(announce.estimated_wait / 60))
            text += f"，预计等待{minutes}分钟" if zh else f" Your estimated wait is {minutes} minute" \
                                                      f"{'' if minutes == 1 else 's'}."
        text += "，请稍候。" if zh else " Please hold."
        session.records.event(session.call_id, "announcement", position=announce.position, text=text)
        await self._announce_to_caller(session, Prompt("tts", text, "zh" if zh else "en"),
                                       unless=waiting.offer_pending)

    async def _announce_to_caller(self, session: CallSession, prompt: Prompt,
                                  unless: Callable[[], bool] | None = None) -> None:
        """An announcement the call can go on without: when its speech cannot be rendered, it is skipped;
        so it is when `unless()` says so once it is rendered (rendering can take a while)."""
        try:
            media = await self.media_for(prompt)
        except TtsError as exc:
            log.error("call %s: announcement skipped: %s", session.call_id, exc)
            return
        if unless is not None and unless():
            return
        await session.play([media])

    async def _connect(self, waiting: QueueCall, answered: Answered) -> QueueOutcome:
        """The agent answered: they talk with the caller until one hangs up or the call is transferred.
        A transfer to a named agent hands the call over and the colleague's part runs the same way."""
        self.records.offer(waiting.call_id, answered.agent_id, answered.leg.ring_seconds(), "answered")
        queue_answer = True  # a colleague who takes a transfer is already talking in the engine
        try:
            while True:
                transfer = await self._serve(waiting, answered, queue_answer=queue_answer)
                queue_answer = False
                handover, waiting.handover = waiting.handover, None
                if handover is None:
                    break
                answered = handover
        finally:
            await self._drop_handover(waiting)  # a handover never served: the caller left, or we stop
        if transfer is not None:
            return QueueOutcome("transferred", agent_id=answered.agent_id, overflow_target=transfer)
        return QueueOutcome("answered_then_ended", agent_id=answered.agent_id)

    async def _serve(self, waiting: QueueCall, answered: Answered, *, queue_answer: bool) -> str | None:
        """One agent's part of a connected call: announce their number (工号), bridge, run their commands
        until they or the caller leave; returns a transfer target, if any."""
        session = waiting.session
        agent = self.agent_configs.get(answered.agent_id)
        try:
            if queue_answer:
                self.apply(self.engine.answered(session.call_id, answered.agent_id))
            # The agent is talking from now on (their desk and the API say so): their commands are taken
            # from now on too, and wait in the call's inbox until the call is bridged (`talk`).
            waiting.agent_id = answered.agent_id
            waiting.on_agent_left = lambda: self._agent_done(waiting, answered.agent_id)
            session.state = "talking"
            session.records.event(session.call_id, "agent_answered", agent_id=answered.agent_id)
            await waiting.unhold()
            if waiting.queue.announce_agent_number and agent is not None:
                prompt = self._agent_number_prompt(agent, session.language)
                session.records.event(session.call_id, "announcement", agent_id=agent.id, text=prompt.value)
                await self._announce_to_caller(session, prompt)
            await self._record_by_policy(waiting, answered.agent_id)
            return await waiting.talk(answered.leg, lambda command, bridge, leg: self._run_control(
                waiting, command, bridge, leg))
        finally:
            await self._end_monitor(waiting)
            waiting.agent_id = None
            if waiting.held_since is not None:
                self._record_resume(waiting)
                await waiting.unhold()
            await answered.leg.hangup()
            self._agent_done(waiting, answered.agent_id)

    def pickup(self, call_id: str, agent_id: str) -> dict[str, Any]:
        """抢接 (see `AcdEngine.pickup`); AcdError when the call is not waiting or the agent is busy."""
        if agent_id not in self.agent_configs:
            raise AcdError(f"no agent {agent_id!r}")
        if self.engine.call(call_id) is None:
            raise AcdError("the call is not waiting in a queue")
        self.apply(self.engine.pickup(call_id, agent_id))
        return {"call_id": call_id, "agent_id": agent_id, "state": "ringing"}

    def _agent_done(self, waiting: QueueCall, agent_id: str) -> None:
        """The agent's part of the call is over (they hung up, or transferred it away while the caller
        stays with someone else): talk ends, ACW starts. Once per agent and call."""
        if self.engine.agent(agent_id).current_call != waiting.call_id:
            return  # already done (the agent may be on another call by now)
        self.records.talk_ended(waiting.call_id)
        with contextlib.suppress(AcdError):
            self.apply(self.engine.call_ended(agent_id))

    # -- call control (agents' commands on their connected call) ------------------------------------------

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
        waiting = self.calls.get(call_id)
        if waiting is None or waiting.agent_id is None:
            raise AcdError("the call is not connected to an agent")
        if agent_id is not None and waiting.agent_id != agent_id:
            raise PermissionError("an agent may control only their own calls")
        if action == "transfer":
            self._check_transfer_target(target)
        done: asyncio.Future[dict[str, object]] = asyncio.get_running_loop().create_future()
        waiting.session.deliver(CallControl(type="CallControl", timestamp="", application="", raw={},
                                            action=action, target=target, done=done, options=options,
                                            agent_id=agent_id))
        async with asyncio.timeout(timeout):
            return dict(await done)

    def _check_transfer_target(self, target: str | None) -> None:
        kind, _, value = (target or "").partition(":")
        if kind == "queue":
            if value not in self.queue_configs:
                raise AcdError(f"no queue {value!r}")
        elif kind in ("number", "phone"):
            self.dial_string(target or "")
        elif kind == "agent":
            if value not in self.agent_configs:
                raise AcdError(f"no agent {value!r}")
        elif kind != "node" or not value:
            raise AcdError("transfer target must be queue:NAME, node:ID, number:DIGITS, phone:ENDPOINT or agent:ID")

    async def _run_control(self, waiting: QueueCall, command: CallControl, bridge: Bridge, leg: Leg) -> str | None:
        """Run one command in the call's task; the HTTP request gets the result through `command.done`
        (commands the call gives itself, e.g. when a consulted party hangs up, have none)."""
        if command.done is not None and command.done.done():
            return None  # its request gave up waiting (it came during a long prompt or ring): too late now
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

    async def _hold_caller(self, waiting: QueueCall, bridge: Bridge) -> None:
        session, agent_id = waiting.session, waiting.agent_id
        assert agent_id is not None
        if waiting.held_since is not None:
            raise AcdError("the call is already on hold")
        self.apply(self.engine.hold(agent_id))
        await bridge.remove(session.channel_id)
        await waiting.hold(self.config.asterisk.moh_class)
        waiting.held_since = time.monotonic()
        session.state = "held"
        session.records.event(session.call_id, "held", agent_id=agent_id)
        self.publish("call.held", call_id=session.call_id, agent_id=agent_id)

    async def _resume_caller(self, waiting: QueueCall, bridge: Bridge) -> float:
        if waiting.held_since is None:
            raise AcdError("the call is not on hold")
        held_for = self._record_resume(waiting)
        await waiting.unhold()
        await bridge.add(waiting.session.channel_id)
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
            await self._hold_caller(waiting, bridge)
            party = Leg(session, endpoint, purpose="consult", caller_id=session.caller or None, ring_timeout=30.0)
            outcome = await party.dial()
            if not outcome.answered:
                await self._resume_caller(waiting, bridge)
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
            await self._resume_caller(waiting, bridge)
            session.records.event(session.call_id, "consult_cancelled", to=consult.endpoint)
            return {"call_id": session.call_id, "state": "talking"}, None
        await self._resume_caller(waiting, bridge)
        waiting.parties.append(consult)
        if action == "consult_conference":
            session.records.event(session.call_id, "conference_joined", party=consult.endpoint,
                                  agent_id=waiting.agent_id)
            self.publish("conference.joined", call_id=session.call_id, agent_id=waiting.agent_id,
                         party=consult.endpoint)
            return {"call_id": session.call_id, "state": "conference"}, None
        session.records.event(session.call_id, "transfer", agent_id=waiting.agent_id, mode="attended",
                              to=consult.endpoint)
        self.publish("call.transferred", call_id=session.call_id, agent_id=waiting.agent_id, kind="attended",
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
                self._record_resume(waiting)
                await waiting.unhold()
            session.records.event(session.call_id, "agent_hangup", agent_id=agent_id)
            await leg.hangup()
            return {"call_id": session.call_id, "state": "agent_hung_up"}, None
        if command.action == "hold":
            await self._hold_caller(waiting, bridge)
            return {"call_id": session.call_id, "state": "held"}, None
        if command.action == "resume":
            if waiting.consult is not None:
                raise AcdError("a consultation is in progress: complete, cancel or conference it")
            held_for = await self._resume_caller(waiting, bridge)
            return {"call_id": session.call_id, "state": "talking", "held_for": held_for}, None
        if command.action.startswith("consult"):
            return await self._consult(waiting, command.action, command.target or "", bridge, leg)
        target = command.target or ""
        self._check_transfer_target(target)
        if target.startswith("agent:"):
            return await self._transfer_to_agent(waiting, target.removeprefix("agent:"), bridge, leg)
        if waiting.held_since is not None:
            await self._resume_caller(waiting, bridge)  # back in the call's bridge: it carries the transfer
        session.records.event(session.call_id, "transfer", agent_id=agent_id, mode="blind", to=target)
        self.publish("call.transferred", call_id=session.call_id, agent_id=agent_id, kind="blind", target=target)
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
        with contextlib.suppress(AriError):
            await session.ari.bridge_start_moh(talk.bridge_id, self.config.asterisk.moh_class)
        party = Leg(session, self.dial_string(target), purpose="transfer", caller_id=session.caller or None,
                    ring_timeout=30.0)
        try:
            outcome = await party.dial()
        finally:
            with contextlib.suppress(AriError):
                await session.ari.bridge_stop_moh(talk.bridge_id)
        if not outcome.answered:
            session.records.event(session.call_id, "transfer_failed", to=target, status=outcome.status)
            back = f"queue:{waiting.queue.name}"
            return {"call_id": session.call_id, "state": "back_to_queue", "target": back}, back
        await talk.add(party.channel_id)
        waiting.parties.append(party)
        session.records.event(session.call_id, "transfer_connected", to=target)
        return {"call_id": session.call_id, "state": "transferred", "target": target}, None

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
        endpoint = self.engine.agent(to_agent).endpoint
        colleague = Leg(session, self.dial_string(f"phone:{endpoint}"), purpose="agent",
                        caller_id=session.caller or None, ring_timeout=waiting.queue.ring_timeout,
                        variables={"CCC_CALL_ID": session.call_id, "CCC_QUEUE": waiting.queue.name})
        self.apply(self.engine.transfer_offer(session.call_id, from_agent, to_agent))
        try:
            if waiting.held_since is None:
                await self._hold_caller(waiting, talk)
            self.publish("call.ringing", call_id=session.call_id, agent_id=to_agent, queue=waiting.queue.name,
                         endpoint=endpoint, screen_pop={**self.screen_pop(session, waiting.queue.name, waiting.history),
                                                        "transferred_by": from_agent})
            outcome = await colleague.dial()
        except BaseException:
            await colleague.hangup()
            self.apply(self.engine.transfer_failed(session.call_id, to_agent, "cancelled"))
            raise
        self.records.offer(session.call_id, to_agent, colleague.ring_seconds(),
                           "transfer_answered" if outcome.answered else outcome.status.lower())
        if not outcome.answered:
            self.apply(self.engine.transfer_failed(session.call_id, to_agent,
                                                   "busy" if outcome.status == "BUSY" else "no_answer"))
            session.records.event(session.call_id, "transfer_failed", to=target, status=outcome.status)
            if agent_leg.gone or agent_leg.channel_id in session.ended_channels:
                back = f"queue:{waiting.queue.name}"
                return {"call_id": session.call_id, "state": "back_to_queue", "target": back}, back
            await self._resume_caller(waiting, talk)
            return {"call_id": session.call_id, "state": "talking", "transfer": outcome.status.lower()}, None
        self.apply(self.engine.transfer_answered(session.call_id, from_agent, to_agent))
        self._record_resume(waiting)  # the caller waits in the holding bridge until the colleague's part starts
        session.records.event(session.call_id, "transfer", agent_id=from_agent, mode="agent", to=target)
        self.publish("call.transferred", call_id=session.call_id, agent_id=from_agent, kind="agent", target=target)
        waiting.handover = Answered(to_agent, colleague)
        await agent_leg.hangup()
        waiting.on_agent_left()  # the first agent is in ACW when the command answers
        return {"call_id": session.call_id, "state": "transferred", "agent_id": to_agent}, target

    async def _drop_handover(self, waiting: QueueCall) -> None:
        """A colleague took the transfer but their part never started: hang up, end their part."""
        handover, waiting.handover = waiting.handover, None
        if handover is not None:
            await handover.leg.hangup()
            self._agent_done(waiting, handover.agent_id)

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
            await self._end_monitor(waiting)  # the supervisor hung up: a new request rings them again
        monitor = waiting.monitor
        if waiting.parties and mode == "barge":
            raise AcdError("a conference is in progress: listen or whisper only")
        if mode == "stop":
            if monitor is None:
                raise AcdError("nobody is monitoring the call")
            await self._end_monitor(waiting)
            return {"call_id": session.call_id, "state": "talking", "mode": "stop"}
        if monitor is None:
            if not phone:
                raise AcdError("name the supervisor's phone to ring")
            supervisor = Leg(session, self.config.asterisk.phone_dial.replace("{endpoint}", phone),
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
            await start_snoop(session, agent_leg.channel_id, snoop_id, app=self.config.ari.app, spy="both",
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
        text = self.config.acd.standard_prompts.get(name)
        if text is None:
            raise AcdError(f"no standard prompt {name!r} (configured: {', '.join(self.config.acd.standard_prompts)})")
        session = waiting.session
        language: Language = "en" if session.language.startswith("en") else "zh"
        prompt = Prompt("sound", text.removeprefix("sound:"), language) if text.startswith("sound:") \
            else Prompt("tts", text, language)
        session.records.event(session.call_id, "standard_prompt", name=name, agent_id=waiting.agent_id)
        await session.play([await self.media_for(prompt)], barge_in=True)
        return {"call_id": session.call_id, "state": "talking", "played": name}

    def dial_string(self, target: str) -> str:
        """`number:13900139000` (through the trunk) or `phone:8002` (a phone), as an Asterisk endpoint."""
        kind, _, value = target.partition(":")
        if kind == "number" and value.lstrip("+").isdigit() and 3 <= len(value) <= 21:
            return self.config.asterisk.trunk_dial.replace("{number}", value)
        if kind == "phone" and value and re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", value):  # as the API's patterns
            return self.config.asterisk.phone_dial.replace("{endpoint}", value)
        raise AcdError("a conference party is number:DIGITS or phone:ENDPOINT")

    async def _add_party(self, waiting: QueueCall, target: str, talk: Bridge) -> dict[str, object]:
        """Conference (三方通话): ring a third party and add them to the call when they answer."""
        session = waiting.session
        endpoint = self.dial_string(target)
        if waiting.held_since is not None:
            raise AcdError("resume the call before adding a party")
        party = Leg(session, endpoint, purpose="conference",
                    caller_id=self.config.acd.outbound_caller_id or None, ring_timeout=30.0)
        outcome = await party.dial()
        if not outcome.answered:
            raise AcdError(f"{target} did not answer ({outcome.status})")
        await talk.add(party.channel_id)
        waiting.parties.append(party)
        if waiting.on_party_left is None:
            waiting.on_party_left = lambda left: self.publish(
                "conference.left", call_id=session.call_id, agent_id=waiting.agent_id, party=left.endpoint)
        session.records.event(session.call_id, "conference_joined", party=endpoint, agent_id=waiting.agent_id)
        self.publish("conference.joined", call_id=session.call_id, agent_id=waiting.agent_id, party=endpoint)
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

    async def _end_monitor(self, waiting: QueueCall) -> None:
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

    def _record_resume(self, waiting: QueueCall) -> float:
        """Take the call off hold in the engine and the records; returns the seconds it was held."""
        session = waiting.session
        held_for = round(time.monotonic() - (waiting.held_since or time.monotonic()), 3)
        waiting.held_since = None
        session.state = "talking"
        if waiting.agent_id is not None:
            with contextlib.suppress(AcdError):
                self.apply(self.engine.resume(waiting.agent_id))
        session.records.event(session.call_id, "resumed", agent_id=waiting.agent_id, held_for=held_for)
        self.publish("call.resumed", call_id=session.call_id, agent_id=waiting.agent_id, held_for=held_for)
        return held_for

    # -- agents' outbound calls (外呼): see `agent_outbound` -------------------------------------------------

    async def click_to_dial(self, agent_id: str, number: str, *, ring_seconds: float = 30.0) -> dict[str, Any]:
        """Ring the agent's phone, then the customer (`AgentOutbound.click_to_dial`)."""
        return await self.outbound.click_to_dial(agent_id, number, ring_seconds=ring_seconds)

    def _agent_number_prompt(self, agent: AcdAgentConfig, language: str) -> Prompt:
        """"您好，<center> <工号>号为您服务" (domain.md's greeting standard)."""
        if language.startswith("en"):
            return Prompt("tts", f"Agent number {say_digits(agent.number, 'en')} is at your service.", "en")
        # 工号 digit by digit, 1 as 幺: "幺零零二号", not "一千零二号".
        return Prompt("tts", f"您好，{self.config.acd.center_name}{say_digits(agent.number, 'zh')}号为您服务。", "zh")

    # -- views -------------------------------------------------------------------------------------

    def agents_by_state(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for agent in self.engine.agents():
            counts[agent.state] = counts.get(agent.state, 0) + 1
        return dict(sorted(counts.items()))

    def describe_call(self, call_id: str) -> str:
        waiting = self.calls.get(call_id)
        return f"{call_id} ({mask_number(waiting.session.caller)})" if waiting else call_id
