"""Waiting callers and ringing agents taken over after a restart (issue 13): the "queue" and "ring" parts.

While a caller waits, their visit is saved on every transition as the "queue" part of the live-call picture
(queue, original enqueue time, priority, skills, data, offers so far, holding bridge) and each agent phone
ringing for them as the "ring" part (agent, leg channel, ring start). A new process (`resume`):

- puts the caller back into the engine at their original place (original enqueue time and priority: first
  come, first served with the callers who arrived meanwhile; the maximum wait counts from the first
  enqueue; position announcements on the beat they had), in the holding bridge that still plays them
  music; routing waits until every stored call is back (`route_after_resume`), so a ready agent takes
  the longest waiter, not the first one resumed;
- settles a ring: a leg answered meanwhile is connected (the normal answer path), a leg still ringing keeps
  ringing (its ring timeout counts from the first ring), a leg that is gone is RONA (the agent goes not
  ready "no_answer"; the caller keeps their place);
- prepares the visit only: the call's flow resumes at its queue node (the "ivr" part's resumer), whose
  `enqueue` takes the prepared visit (`take`) instead of starting a new one. The visit keeps its record
  and gets its true outcome later (answered with the full wait…): never `abandoned` because we restarted.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from controller.acd.engine import AcdError
from controller.ari.errors import AriError
from controller.ari.models import Bridge as AriBridge
from controller.ivr.port import QueueRequest
from controller.plugins.acd.call_control import adopt_bridge, adopt_leg
from controller.plugins.acd.holding import holding_bridge_id
from controller.plugins.acd.stasis import Answered, QueueCall
from controller.plugins.calls.services import CallHandler, Resumption, stored_node

if TYPE_CHECKING:
    from controller.plugins.acd.services import AcdService

log = logging.getLogger("controller.acd")

QUEUE_PART = "queue"
RING_PART = "ring"


class QueueResume:
    def __init__(self, acd: AcdService) -> None:
        self.acd = acd
        self._prepared: dict[str, QueueCall] = {}  # call id -> visit taken over, until its flow's queue node runs
        self.resumed = 0

    # -- saving -------------------------------------------------------------------------------------

    def save(self, waiting: QueueCall) -> None:
        """The "queue" part of a waiting call (after its enqueue, and when its offers change)."""
        view = self.acd.engine.call(waiting.call_id)
        if self.acd.live is None or view is None:
            return
        request = waiting.request
        self.acd.live.save(waiting.call_id, QUEUE_PART, {  # (enqueued_at to the ms: as the call part's started_at)
            "queue": waiting.visited_queue.name, "enqueued_at": round(self.acd.clock.now() - view.waited, 3),
            "priority": request.priority, "skills": dict(request.skills), "data": dict(request.data),
            "offers": self.acd.records.offers_of(waiting.call_id),
            "bridge": waiting.waiting_in,
            "next_announcement": self.acd.engine.next_announcement(waiting.call_id)})

    def save_ring(self, waiting: QueueCall) -> None:
        """The "ring" part: the agents' phones ringing for the call now (none: dropped)."""
        if self.acd.live is None:
            return
        if not waiting.legs:
            self.acd.live.drop(waiting.call_id, RING_PART)
            return
        now, monotonic = time.time(), time.monotonic()
        self.acd.live.save(waiting.call_id, RING_PART, {"legs": [
            {"agent": agent_id, "channel_id": leg.channel_id, "endpoint": leg.endpoint, "purpose": leg.purpose,
             "started_at": now - (monotonic - leg.started_at if leg.started_at else 0.0)}
            for agent_id, leg in waiting.legs.items()]})
        self.save(waiting)

    def left(self, call_id: str) -> None:
        """The visit ended (answered, abandoned, overflowed): its parts are over."""
        if self.acd.live is not None:
            self.acd.live.drop(call_id, QUEUE_PART)
            self.acd.live.drop(call_id, RING_PART)

    # -- resuming -----------------------------------------------------------------------------------

    async def resume(self, resumption: Resumption) -> CallHandler | None:
        """Prepare a stored waiting call's visit (see the module's doc); the flow's resumer goes on with it."""
        session, parts = resumption.session, resumption.parts
        saved = parts[QUEUE_PART]
        queue = self.acd.queue_configs.get(str(saved.get("queue", "")))
        if queue is None:
            resumption.notes.append(f"queue: no queue {saved.get('queue')!r} in the configuration")
            return None
        if "ivr" not in parts:
            resumption.notes.append("queue: no flow to go on with after the queue")
            return None
        request = QueueRequest(queue.name, dict(saved.get("skills") or {}), int(saved.get("priority") or 0),
                               dict(saved.get("data") or {}))
        waiting = QueueCall(session, queue, request, phone_dial=self.acd.config.asterisk.phone_dial)
        waiting.resumed = True
        enqueued_at = float(saved.get("enqueued_at") or self.acd.clock.now())
        try:
            decisions = self.acd.engine.enqueue(session.call_id, queue.name, priority=request.priority,
                                                skills=request.skills, data=request.data, enqueued_at=enqueued_at,
                                                route=False, announce_from=_number(saved.get("next_announcement")))
        except AcdError as exc:
            resumption.notes.append(f"queue: {exc}")
            return None
        self.acd.records.resume_visit(session.call_id, list(saved.get("offers") or []))
        self.acd.calls[session.call_id] = waiting
        self._prepared[session.call_id] = waiting
        session.on_finish.append(lambda: self._never_taken(session.call_id))
        self._adopt_holding(waiting, str(saved.get("bridge") or ""), resumption.bridges)
        self.acd.apply(decisions)
        ring = parts.get(RING_PART)
        if ring is not None:
            await self._settle_rings(waiting, list(ring.get("legs") or []), resumption)
        self.resumed += 1
        session.records.event(session.call_id, "queue_resumed", queue=queue.name,
                              waited=round(self.acd.clock.now() - enqueued_at, 3))
        return None

    async def close(self, call_id: str, parts: dict[str, dict[str, Any]]) -> str | None:
        """A stored waiting caller the new process cannot take over: hung up while no process was there
        (the visit ends abandoned, its wait counted to now: the moment they left is not known), or sent to
        the dialplan's fallback route by the guard (their channel is still up, out of the application:
        the visit overflowed to `fallback`)."""
        saved = parts[QUEUE_PART]
        wait = max(0.0, self.acd.clock.now() - float(saved.get("enqueued_at") or self.acd.clock.now()))
        self.acd.records.resume_visit(call_id, list(saved.get("offers") or []))
        if await self._still_up(stored_node(parts), str(parts.get("call", {}).get("channel_id") or "")):
            self.acd.records.left(call_id, "overflowed", wait, None, "fallback")
        else:
            self.acd.records.left(call_id, "abandoned", wait, None)
        self.acd.records.forget(call_id)
        return None  # the call's own end reason is the calls plugin's (lost, or fallback)

    async def _still_up(self, node: str, channel_id: str) -> bool:
        client = self.acd.node_client(node)
        if not channel_id or client is None:
            return False
        try:
            await client.channel(channel_id)
        except AriError:
            return False  # gone (404), or Asterisk does not answer: the caller is not ours to count
        return True

    def take(self, call_id: str) -> QueueCall | None:
        """The visit prepared for this call, for its flow's queue node (once)."""
        return self._prepared.pop(call_id, None)

    def route_after_resume(self) -> None:
        """Every stored call is back: offer the waiting calls to the ready agents, longest waiter first."""
        self.acd.apply(self.acd.engine.route_waiting())

    async def _never_taken(self, call_id: str) -> None:
        """The call ended before its flow took the prepared visit (it went to the fallback route)."""
        waiting = self._prepared.pop(call_id, None)
        if waiting is not None:
            self.acd.calls.pop(call_id, None)
            with contextlib.suppress(AcdError):
                self.acd.apply(self.acd.engine.abandon(call_id))
            await waiting.hang_up_legs()
            await waiting.unhold()

    def _adopt_holding(self, waiting: QueueCall, bridge_id: str, bridges: dict[str, AriBridge]) -> None:
        """Keep the caller in the queue's holding bridge (music on hold goes on) when Asterisk still has them there;
        else the queue node puts them in it again (created anew if Asterisk lost it). A holding bridge of the
        call's own (an earlier version's) is taken over until the queue node has moved the caller out of it."""
        bridge = bridges.get(bridge_id)
        session = waiting.session
        if bridge is None or session.channel_id not in bridge.channels:
            return
        if bridge_id == holding_bridge_id(session.app_name, session.ari.node, waiting.visited_queue.name):
            waiting.adopt_waiting(self.acd.holding, bridge_id, bridge.channels)
        else:
            waiting.holding = adopt_bridge(session, bridge_id, "holding", bridge.channels)

    async def _settle_rings(self, waiting: QueueCall, legs: list[dict[str, Any]], resumption: Resumption) -> None:
        """Each agent phone that rang for the call when the process died: connect, keep ringing, or RONA.
        Only the first leg is taken over (one agent rings for a call again); the others are hung up."""
        session, engine = waiting.session, self.acd.engine
        for index, saved in enumerate(legs):
            agent_id = str(saved.get("agent", ""))
            leg = adopt_leg(session, saved, resumption.channels)  # claimed when still up
            leg.answered = False
            channel = resumption.channels.get(leg.channel_id)
            started_at = float(saved.get("started_at") or time.time())
            leg.started_at = time.monotonic() - max(0.0, time.time() - started_at)
            try:
                decisions = engine.resume_offer(session.call_id, agent_id,
                                                ring_started=self.acd.clock.now() - leg.ring_seconds()) \
                    if index == 0 and waiting.answered_meanwhile is None else None
            except AcdError as exc:
                log.info("call %s: the ring of agent %s is not taken over: %s", session.call_id, agent_id, exc)
                decisions = None
            if channel is None:
                if decisions is not None:  # failed, or hung up, while no process was there: RONA
                    self.acd.apply(decisions)
                    self.acd.records.offer(session.call_id, agent_id, leg.ring_seconds(), "no_answer")
                    session.records.event(session.call_id, "agent_no_answer", agent_id=agent_id, status="GONE")
                    self.acd.apply(engine.no_answer(session.call_id, agent_id))
                continue
            if decisions is None:
                await leg.hangup()  # a second leg of a ring-all, or an agent busy meanwhile
                continue
            self.acd.apply(decisions)
            if channel.stasis_app_and_args() is not None:  # the agent answered while no process was there
                leg.answered = True
                waiting.answered_meanwhile = Answered(agent_id, leg)
                log.info("call %s: agent %s answered while the controller was away: connecting",
                         session.call_id, agent_id)
            else:  # still ringing: it goes on (answer, failure or the ring timeout settle it)
                waiting.legs[agent_id] = leg


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None
