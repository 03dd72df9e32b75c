"""ACD queueing: a caller's visit to a queue — enqueue, hold with music, position announcements, ringing
the agents the engine offers the call to (RONA), pickups, overflow — until an agent answers (the call
goes to call control, `call_control.AcdCallControl.connect`) or the call leaves the queue.

Like wazo-calld's capabilities, this side owns the "queue" and "ring" parts of the live-call picture;
the engine and the shared state stay in `services.AcdService`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from controller.acd.engine import AcdError
from controller.acd.estimates import wait_phrase
from controller.acd.model import (
    Announce,
    Overflow,
)
from controller.config import AcdQueueConfig
from controller.ivr.port import CallerHangup, Prompt, QueueOutcome, QueueRequest
from controller.lookup import is_phone_number
from controller.plugins.acd.stasis import LeftQueue, QueueCall
from controller.plugins.calls.legs import DialOutcome, Leg
from controller.plugins.calls.session import CallSession

if TYPE_CHECKING:
    from controller.plugins.acd.services import AcdService

log = logging.getLogger("controller.acd")

#: Overflow hops a call may make through `queue:` targets before the flow decides instead.
MAX_QUEUE_HOPS = 3


class AcdQueueing:
    def __init__(self, acd: AcdService) -> None:
        self.acd = acd
        self._history_failing = False  # the store could not give a caller's history (said once per outage)

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
            request = dataclasses.replace(request, queue=target.removeprefix("queue:"))
        return outcome

    async def _caller_history(self, session: CallSession) -> list[dict[str, Any]]:
        """The caller's last calls for the agent's screen pop. Only a help: when the store cannot be read
        (disk full, I/O error) the call is queued without it, said once per outage in the log."""
        try:
            # As committed: the caller's past calls, not this moment's writes; a commit forced here cost one
            # per queued call (README "Benchmarks", third round).
            calls = await session.records.history(session.caller, limit=6, flush=False)
        except Exception as exc:  # whatever the store's trouble, the caller is served
            self.acd.history_failures += 1
            if not self._history_failing:
                log.warning("call %s: the caller's history cannot be read (%s); queueing without it until"
                            " the store answers again", session.call_id, exc)
            self._history_failing = True
            return []
        if self._history_failing:
            log.info("the callers' history can be read again")
        self._history_failing = False
        return [call for call in calls if call["call_id"] != session.call_id][:5]

    def read_history_ahead(self, session: CallSession) -> None:
        """Start reading the caller's history for the screen pop now (the IVR, when the call's flow has a queue
        node), so it is there when the caller queues: read at the queue, it waited behind the store's running
        commit on the caller's last key -> agent's phone ringing path (README "Benchmarks")."""
        if session.caller_history is None and is_phone_number(session.caller):
            session.caller_history = asyncio.ensure_future(self._caller_history(session))

    async def _history_of(self, session: CallSession) -> list[dict[str, Any]]:
        """The caller's history for this visit: the one read ahead (`read_history_ahead`), else read now."""
        ahead, session.caller_history = session.caller_history, None
        if ahead is not None:
            return await ahead
        if is_phone_number(session.caller):  # "anonymous" or "x&y" would pool strangers' calls
            return await self._caller_history(session)
        return []

    async def _visit(self, session: CallSession, request: QueueRequest, waited: float) -> QueueOutcome:
        resumed = self.acd.queue_resume.take(session.call_id)  # a visit taken over after a restart goes on
        queue = resumed.queue if resumed is not None else self.acd.queue_configs.get(request.queue)
        if queue is None:
            log.error("call %s: no queue %r in the configuration", session.call_id, request.queue)
            return QueueOutcome("unavailable")
        waiting = resumed or QueueCall(session, queue, request, phone_dial=self.acd.config.asterisk.phone_dial)
        waiting.on_legs_changed = lambda: self.acd.queue_resume.save_ring(waiting)
        self.acd.calls[session.call_id] = waiting
        session.state = "queued"
        session.data.update(waiting.request.data)
        session.persist()
        if resumed is None:
            session.records.event(session.call_id, "queued", queue=queue.name, priority=request.priority)
            self.acd.records.enqueued(session.call_id, queue.name, request.priority)
        try:
            if resumed is None:
                await session.answer()
                waiting.history = await self._history_of(session)
                decisions = self.acd.engine.enqueue(session.call_id, queue.name, priority=request.priority,
                                                    skills=dict(request.skills), data=dict(request.data),
                                                    waited=waited)
                view = self.acd.engine.call(session.call_id)
                self.acd.publish("call.queued", call_id=session.call_id, queue=queue.name,
                                 priority=request.priority, skills=dict(request.skills),
                                 position=view.position if view else 0)
                self.acd.apply(decisions)
                # An agent offered the call at once rings before the caller joins the holding bridge: addChannel
                # answers only once the caller's channel thread has run it (after its current media frame, later
                # under load), and it stood between the caller's last key and the agent's phone ringing.
                await waiting.ring_offered(lambda agent_id, leg, outcome: self._ring_failed(waiting, agent_id, leg,
                                                                                           outcome))
                await waiting.wait(self.acd.holding)
            elif waiting.waiting_in is None and waiting.answered_meanwhile is None:
                await waiting.wait(self.acd.holding)  # its holding bridge was gone (or was the caller's own)
                await waiting.drop_own_holding()
            self.acd.queue_resume.save(waiting)
            if waiting.answered_meanwhile is not None:
                return await self.acd.call_control.connect(waiting, waiting.answered_meanwhile)
            step = await waiting.next_step(lambda announce: self._announce(waiting, announce),
                                           lambda agent_id, leg, outcome: self._ring_failed(waiting, agent_id,
                                                                                           leg, outcome))
            if isinstance(step, LeftQueue):
                return self._overflow_outcome(step.overflow, queue)
            return await self.acd.call_control.connect(waiting, step)
        except BaseException:
            # The caller hung up (or we failed, or are stopping): the call leaves the engine as abandoned.
            # (One who took a callback keeps their place: their engine call goes on without them.)
            if not waiting.left and not (self.acd.callbacks and self.acd.callbacks.owns(session.call_id)):
                with contextlib.suppress(AcdError):
                    self.acd.apply(self.acd.engine.abandon(session.call_id))
            raise
        finally:
            self.acd.calls.pop(session.call_id, None)
            await waiting.hang_up_legs()
            await waiting.unhold()
            if session.state != "ended":
                session.state = "ivr"  # back in the flow (survey, goodbye): no agent any more
            waiting.drop_hooks()

    def _overflow_outcome(self, overflow: Overflow, queue: AcdQueueConfig) -> QueueOutcome:
        target = overflow.target if overflow.target is not None else queue.overflow
        if target is None:
            return QueueOutcome("no_agents" if overflow.reason == "no_agents" else "timeout")
        return QueueOutcome("overflow", overflow_target=target)

    def ring_timed_out(self, waiting: QueueCall, agent_id: str, reason: str = "ring_timeout") -> None:
        """An offer the engine took back (its ring timeout: RONA; or a colleague picked the call up):
        it goes on the visit's record like a failed ring."""
        leg = waiting.legs.get(agent_id)
        result = "picked_up" if reason == "picked_up" else "no_answer"
        self.acd.records.offer(waiting.call_id, agent_id, leg.ring_seconds() if leg else 0.0, result)
        self.acd.queue_resume.save(waiting)
        waiting.session.records.event(waiting.call_id, "agent_no_answer" if result == "no_answer" else "picked_up",
                                      agent_id=agent_id, status=reason.upper())

    def _ring_failed(self, waiting: QueueCall, agent_id: str, leg: Leg, outcome: DialOutcome) -> None:
        self.acd.records.offer(waiting.call_id, agent_id, leg.ring_seconds(), outcome.status.lower())
        self.acd.queue_resume.save(waiting)
        waiting.session.records.event(waiting.call_id, "agent_no_answer", agent_id=agent_id, status=outcome.status)
        reason = "busy" if outcome.status == "BUSY" else "no_answer"
        with contextlib.suppress(AcdError):
            self.acd.apply(self.acd.engine.no_answer(waiting.call_id, agent_id, reason))

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
        if waiting.visited_queue.announce_wait_time and announce.estimated_wait is not None:
            phrase = wait_phrase(announce.estimated_wait, "zh" if zh else "en")
            text += f"，预计等待{phrase}" if zh else f" Your estimated wait is {phrase}."
        text += "，请稍候。" if zh else " Please hold."
        session.records.event(session.call_id, "announcement", position=announce.position, text=text)
        await self.acd.announce_to_caller(session, Prompt("tts", text, "zh" if zh else "en"),
                                           unless=waiting.offer_pending)
        if self.acd.callbacks is not None and await self.acd.callbacks.offer(waiting, announce.estimated_wait):
            raise CallerHangup()  # they took a callback (virtual hold) and were hung up; their place stays

    def pickup(self, call_id: str, agent_id: str) -> dict[str, Any]:
        """抢接 (see `AcdEngine.pickup`); AcdError when the call is not waiting or the agent is busy."""
        if agent_id not in self.acd.agent_configs:
            raise AcdError(f"no agent {agent_id!r}")
        if self.acd.engine.call(call_id) is None:
            raise AcdError("the call is not waiting in a queue")
        self.acd.apply(self.acd.engine.pickup(call_id, agent_id))
        return {"call_id": call_id, "agent_id": agent_id, "state": "ringing"}
