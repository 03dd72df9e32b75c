"""A caller waiting in an ACD queue, on the telephony side.

The routing engine decides; this runs the decisions on the caller's channel, inside the call's own
task so that every ARI event of the call (and of the agent legs it rings) is handled in order:

- the caller waits in their queue's shared holding bridge with music on hold (`holding.QueueHolding`) and hears
  position announcements (played to their channel alone);
- an `Offer` rings the agent's phone (an originated leg, caller's number shown);
- the first leg that answers gets the call; a leg that fails or rings out is reported back to the
  engine (RONA), which routes the call again;
- the agent's number is announced to the caller, then caller and agent are bridged until one of
  them hangs up.

Decisions for the call arrive from the engine at any time (`signal`); they are queued here and a
synthetic `AcdWake` event wakes the call's task, so nothing is lost while it waits for something
else (a playback, a ringing leg).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from controller.acd.model import Announce, CancelOffer, Decision, Offer, Overflow
from controller.ari.errors import AriError, AriNotFound, ChannelGone
from controller.ari.models import Event, StasisStart
from controller.collector import RINGING
from controller.config import AcdQueueConfig
from controller.hooks import nothing
from controller.ivr.port import CallerHangup, QueueRequest
from controller.plugins.acd.holding import QueueHolding
from controller.plugins.calls.bridge_pool import TalkBridgePool
from controller.plugins.calls.legs import Bridge, DialOutcome, Leg
from controller.plugins.calls.session import CallSession, Command, Resync, synthetic

log = logging.getLogger("controller.acd")


@dataclass(slots=True)
class AcdWake(Event):
    """Synthetic: the ACD has news for this waiting call (see `QueueCall.signals`)."""


@dataclass(slots=True)
class CallControl(Command):
    """Synthetic: an agent's command for their connected call (hold, resume, transfer), from the API.

    It goes through the call's inbox so that it runs in the call's task, in order with the call's
    ARI events (one that comes during a prompt or a ring waits for it); `done` gets the result (or
    the error) for the HTTP request waiting on it. `agent_id`: the agent it was sent for (an agent's
    token), so it never runs on a colleague's part after a transfer.
    """

    action: str = ""
    target: str | None = None
    done: asyncio.Future[dict[str, object]] | None = None
    options: dict[str, str] | None = None
    agent_id: str | None = None


#: What the connected call does with a command: None to go on talking, or a transfer target.
ControlHandler = Callable[[CallControl, Bridge, Leg], Awaitable[str | None]]


@dataclass
class Monitor:
    """A supervisor on a connected call: their phone's leg in a bridge of its own with a snoop on the
    agent's channel (listen: hears both sides; whisper: the agent hears them too), or in the call's
    bridge (barge: a three-way call)."""

    supervisor: Leg
    bridge: Bridge
    mode: str = ""
    snoop_id: str | None = None


@dataclass(frozen=True)
class Answered:
    agent_id: str
    leg: Leg


@dataclass(frozen=True)
class LeftQueue:
    overflow: Overflow


def _nobody(_agent_id: str) -> None:
    return None


class QueueCall:
    """One caller's visit to a queue; or, with no queue, an outbound call connected to an agent (click-to-dial,
    dialled on the phone, a campaign's): the customer is the caller, under the same commands."""

    def __init__(self, session: CallSession, queue: AcdQueueConfig | None, request: QueueRequest, *,
                 phone_dial: str) -> None:
        self.session = session
        self.queue = queue
        self.request = request
        self.phone_dial = phone_dial
        self.signals: deque[Decision] = deque()
        self.legs: dict[str, Leg] = {}  # agent id -> leg ringing
        self.waiting_in: str | None = None  # the queue's shared holding bridge the caller waits in
        self._shared: QueueHolding | None = None
        self.holding: Bridge | None = None  # the call's own holding bridge while the agent holds it
        self.announcing = False
        self.left = False  # the engine has said how the visit ended (CallLeft)
        self.agent_id: str | None = None  # once an agent answered
        self.held_since: float | None = None  # monotonic time the caller was put on hold
        self.history: list[dict[str, object]] = []  # the caller's last calls, for the screen pop
        self.monitor: Monitor | None = None  # a supervisor listening, whispering or barged in
        self.parties: list[Leg] = []  # conference parties added to the call (besides caller and agent)
        self.consult: Leg | None = None  # the party the agent consults while the caller holds
        self.handover: Answered | None = None  # a colleague who took a transfer to them (agent:ID)
        self._side_tasks: set[asyncio.Task[None]] = set()
        self.on_party_left: Callable[[Leg], None] | None = None
        self.on_agent_left: Callable[[], None] = nothing  # the agent left while others stay
        self.on_legs_changed: Callable[[], None] = nothing  # an agent's phone started or stopped ringing
        # Taken over after a restart: the visit is open already (records, engine, holding bridge), and the
        # agent leg that answered while no process was there, if one did.
        self.resumed = False
        self.answered_meanwhile: Answered | None = None
        # While connected: the talk bridge, the agent's leg, when the talk started (clock time), and what saves
        # the call's "talk" part of the live-call picture after a change (call control installs it).
        self.talk_bridge: Bridge | None = None
        self.agent_leg: Leg | None = None
        self.talk_started: float | None = None
        self.on_talk_changed: Callable[[], None] = nothing
        # Told the agent's id once their part of the call is over (ACW begins): a campaign frees the agent then.
        self.on_agent_done: Callable[[str], None] = _nobody
        # The collector is held back from each offer's decision until its leg is dialled (controller/collector.py).
        self._collector_holds: list[int] = []

    def drop_hooks(self) -> None:
        """The visit is over: forget the hooks. Each is a closure over this call, a reference cycle that only the
        garbage collector's middle passes freed, hundreds of calls' objects at once in one stall of the event loop
        (README "Benchmarks", third round, fourth session); without it reference counting frees the call at its end."""
        self.on_party_left = None
        self.on_agent_left = self.on_legs_changed = self.on_talk_changed = nothing
        self.on_agent_done = _nobody
        while self._collector_holds:  # offers never rung (the caller left first)
            RINGING.release(self._collector_holds.pop())

    @property
    def call_id(self) -> str:
        return self.session.call_id

    @property
    def queue_name(self) -> str | None:
        """The queue the caller came through; None for an outbound call."""
        return self.queue.name if self.queue is not None else None

    @property
    def visited_queue(self) -> AcdQueueConfig:
        """The queue of a queue visit (waiting, announcements, callbacks: only a queued caller has those)."""
        assert self.queue is not None, "an outbound call is in no queue"
        return self.queue

    def signal(self, decision: Decision) -> None:
        """A decision about this call from the engine: queue it and wake the call's task."""
        self.signals.append(decision)
        self.session.deliver(synthetic(AcdWake))
        if not isinstance(decision, Offer):
            return
        # Nothing but the call's task stands between this and the agent's phone ringing now: no collector pass.
        self._collector_holds.append(RINGING.hold())
        if self.announcing and self.session.current_playback:
            # An agent is free: cut the announcement short rather than keep them waiting. (The call's
            # own task is busy in that playback, so this runs beside it; kept until done.)
            task = asyncio.get_running_loop().create_task(self._stop_playback(self.session.current_playback))
            self._side_tasks.add(task)
            task.add_done_callback(self._side_tasks.discard)

    async def _stop_playback(self, playback_id: str) -> None:
        with contextlib.suppress(AriError):
            await self.session.ari.stop_playback(playback_id)

    # -- waiting ----------------------------------------------------------------------------------

    async def wait(self, shared: QueueHolding) -> None:
        """The caller waits in their queue's shared holding bridge (music on hold)."""
        self._shared = shared
        self.waiting_in = await shared.join(self.session, self.visited_queue.name)

    def adopt_waiting(self, shared: QueueHolding, bridge_id: str, channels: tuple[str, ...] | list[str]) -> None:
        """After a restart: the caller still waits in the queue's shared holding bridge (its music plays on)."""
        shared.adopt(self.session, bridge_id, self.visited_queue.name, channels)
        self._shared, self.waiting_in = shared, bridge_id

    async def hold(self, moh_class: str) -> None:
        """Put the caller of a connected call on hold: a holding bridge of the call's own, with music on hold."""
        self.holding = await Bridge(self.session, kind="holding", purpose="hold").create()
        await self.holding.add(self.session.channel_id, role="participant")
        try:
            await self.session.ari.bridge_start_moh(self.holding.bridge_id, moh_class)
        except AriError:
            log.warning("call %s: no music on hold class %r", self.call_id, moh_class)

    async def drop_own_holding(self) -> None:
        """Destroy the call's own holding bridge, if any (an agent's hold; or one an earlier version waited the caller
        in), taking a caller still in it out first (`Bridge.destroy`)."""
        if self.holding is not None:
            holding, self.holding = self.holding, None
            await holding.destroy()

    async def unhold(self, *, moved: bool = False) -> None:
        """Out of the queue's holding bridge (removeChannel: media may follow at once), or the call's own.
        `moved`: addChannel has just put the caller in another bridge, which took them out of the holding bridge
        (`QueueHolding.leave`): no removeChannel."""
        if self.waiting_in is not None and self._shared is not None:
            bridge_id, self.waiting_in = self.waiting_in, None
            await self._shared.leave(self.session, bridge_id, moved=moved)
        await self.drop_own_holding()  # (destroy takes a caller who hung up, or was moved, out too: no remove)

    async def next_step(self, announce: Callable[[Announce], Awaitable[None]],
                        on_ring_failed: Callable[[str, Leg, DialOutcome], None]) -> Answered | LeftQueue:
        """Run decisions and leg events until an agent answers or the call leaves the queue."""
        while True:
            while self.signals:
                decision = self.signals.popleft()
                if isinstance(decision, Offer):
                    await self._ring(decision, on_ring_failed)
                elif isinstance(decision, CancelOffer):
                    await self._cancel(decision.agent_id)
                elif isinstance(decision, Overflow):
                    await self.hang_up_legs()
                    return LeftQueue(decision)
                elif isinstance(decision, Announce) and not self.legs and not self.offer_pending():
                    self.announcing = True
                    try:
                        await announce(decision)
                    finally:
                        self.announcing = False
            event = await self.session.wait_for(lambda e: isinstance(e, AcdWake) or self._leg_of(e) is not None, None)
            agent_id = self._leg_of(event) if event is not None else None
            log.debug("call %s: %s (leg of %s)", self.call_id, type(event).__name__, agent_id)
            if agent_id is None:
                continue
            leg = self.legs[agent_id]
            outcome = leg.outcome_of(event) if event is not None else None
            if outcome is None:
                continue
            if outcome.answered and isinstance(event, StasisStart) and self._withdrawn(agent_id):
                continue  # answered just after the engine took the offer back: the queued decision hangs it up
            if outcome.answered and isinstance(event, StasisStart):
                leg.answered = True
                del self.legs[agent_id]
                await self.hang_up_legs()
                return Answered(agent_id, leg)
            del self.legs[agent_id]
            self.on_legs_changed()
            await leg.hangup()
            on_ring_failed(agent_id, leg, outcome)

    async def ring_offered(self, on_ring_failed: Callable[[str, Leg, DialOutcome], None]) -> None:
        """Ring the agents the engine has just offered the call to (the Offers at the head of the decisions), before
        anything else is asked of Asterisk for the caller: the rest of the decisions are `next_step`'s."""
        while self.signals and isinstance(offer := self.signals[0], Offer):
            self.signals.popleft()
            await self._ring(offer, on_ring_failed)

    def offer_pending(self) -> bool:
        """An agent is about to be rung: no announcement should start now."""
        return any(isinstance(decision, Offer) for decision in self.signals)

    def _withdrawn(self, agent_id: str) -> bool:
        """Whether a decision not yet run takes this agent's offer back (ring timeout, pickup, overflow)."""
        return any((isinstance(decision, CancelOffer) and decision.agent_id == agent_id)
                   or isinstance(decision, Overflow) for decision in self.signals)

    def _leg_of(self, event: Event) -> str | None:
        for agent_id, leg in self.legs.items():
            if leg.concerns(event):
                return agent_id
        return None

    async def _ring(self, offer: Offer, on_ring_failed: Callable[[str, Leg, DialOutcome], None]) -> None:
        endpoint = self.phone_dial.replace("{endpoint}", offer.endpoint)
        leg = Leg(self.session, endpoint, purpose="agent", caller_id=self.session.caller or None,
                  ring_timeout=offer.ring_timeout + 2,  # the engine's own ring timeout fires first
                  variables={"CCC_CALL_ID": self.call_id, "CCC_QUEUE": self.queue_name or ""})
        self.legs[offer.agent_id] = leg
        try:
            failed = await leg.start()
        finally:
            if self._collector_holds:
                RINGING.release(self._collector_holds.pop())
        if failed is not None:
            del self.legs[offer.agent_id]
            on_ring_failed(offer.agent_id, leg, failed)
        else:
            self.on_legs_changed()

    async def _cancel(self, agent_id: str) -> None:
        leg = self.legs.pop(agent_id, None)
        if leg is not None:
            self.on_legs_changed()
            await leg.hangup()

    async def hang_up_legs(self) -> None:
        for agent_id in list(self.legs):
            await self._cancel(agent_id)

    # -- connected ----------------------------------------------------------------------------------

    async def talk(self, leg: Leg, control: ControlHandler, resumed: Bridge | None = None,
                   pool: TalkBridgePool | None = None) -> str | None:
        """Bridge the caller with the agent until the caller is alone again (CallerHangup when the
        caller hung up). Conference parties (`parties`) may join and leave: the call goes on while
        anyone is still with the caller, whoever leaves first.

        Commands for the call (`CallControl`) run here, between the call's events; returns the
        target when the agent transferred the call away, else None. `resumed`: the talk bridge a
        previous process made, which already holds the call's channels (nothing is touched).

        A caller still in a holding bridge (the queue's: nothing was played to them since the agent answered; or
        the call's own: a transfer to a colleague) goes straight from it into the talk bridge: addChannel takes
        them out of it first.

        `pool`: the talk bridge comes from it and goes back to it when the talk ends cleanly (the caller hung up,
        everyone else left, or a transfer took the call on); otherwise it is destroyed. A resumed bridge is
        destroyed at the end too (`TalkBridgePool`).
        """
        if resumed is None and leg.channel_id in self.session.ended_channels:
            return None  # the agent hung up while the caller heard the announcement
        bridge = resumed or await self._talk_bridge(pool)
        self.talk_bridge, self.agent_leg = bridge, leg
        media_follows = True  # after the talk: taken out of its bridge before it is destroyed (`Bridge.destroy`)
        ended_cleanly = False  # returned, or the caller hung up: a pooled bridge may go back to the pool
        try:
            if resumed is None:
                try:
                    bridge = await self._bridge_caller_with(bridge, leg)
                except (ChannelGone, AriNotFound):
                    if self.session.caller_gone:
                        raise CallerHangup() from None
                    return None  # the agent hung up during the announcement
                await self.unhold(moved=True)
                self.session.records.event(self.call_id, "bridged", leg=leg.purpose)
                self.on_talk_changed()
            try:
                while True:
                    if self.consult is not None:
                        # The consulted party hung up (back to the caller), or the agent did (completes it).
                        ended = self.session.ended_channels
                        if self.consult.channel_id in ended:
                            await control(self._own_command("consult_cancel"), bridge, leg)
                        elif leg.channel_id in ended:
                            await control(self._own_command("consult_complete"), bridge, leg)
                    if not await self._someone_left_with_caller(leg):
                        break
                    event = await self.session.wait_for(
                        lambda e: isinstance(e, CallControl | Resync) or leg.ended_by(e)
                        or any(party.ended_by(e) for party in self.parties)
                        or (self.consult is not None and self.consult.ended_by(e)), None)
                    if isinstance(event, CallControl):
                        target = await control(event, bridge, leg)
                        if target is not None:
                            ended_cleanly = True
                            return target
                # Everyone left the caller: the flow's `answered` route comes next, which may end the call at once.
                media_follows = not self.request.hangs_up_after
            except CallerHangup:
                for other in (leg, *self.parties, *([self.consult] if self.consult else [])):
                    await other.hangup()
                self.consult = None
                ended_cleanly = True
                raise
            ended_cleanly = True
            return None
        finally:
            for party in (*self.parties, *([self.consult] if self.consult else [])):
                await party.hangup()
            self.parties.clear()
            self.consult = None
            self.session.dtmf.clear()  # keys pressed at the agent must not answer the flow's next question
            self.talk_bridge = self.agent_leg = None
            if ended_cleanly:
                await bridge.end(media_follows=media_follows)
            else:
                await bridge.destroy(media_follows=media_follows)

    async def _talk_bridge(self, pool: TalkBridgePool | None) -> Bridge:
        if pool is None:
            return await Bridge(self.session, purpose="talk").create()
        return await Bridge.from_pool(self.session, pool)

    async def _bridge_caller_with(self, bridge: Bridge, leg: Leg) -> Bridge:
        """Add the agent, then the caller to the talk bridge (when the agent's channel is gone, Asterisk refuses
        before it has moved the caller); returns the bridge they are in. An idle bridge of the pool that Asterisk
        no longer has (404) is forgotten and replaced by a new one of the pool, once."""
        try:
            await bridge.add(leg.channel_id, self.session.channel_id)
            return bridge
        except AriNotFound:
            if bridge.lease is None or bridge.pool is None:
                raise
            pool = bridge.pool
            pool.drop(bridge.lease)  # gone: nothing to destroy
            self.session.dispatcher.release(bridge.bridge_id)
            bridge.created, bridge.lease = False, None
        bridge = self.talk_bridge = await Bridge.from_pool(self.session, pool, fresh=True)
        try:
            await bridge.add(leg.channel_id, self.session.channel_id)
        except BaseException:
            await bridge.destroy()
            raise
        return bridge

    @staticmethod
    def _own_command(action: str) -> CallControl:
        """A command the call gives itself (nobody waits for its result)."""
        return CallControl(type="CallControl", timestamp="", application="", raw={}, action=action)

    def party_left(self, party: Leg, **detail: object) -> None:
        """A conference party is gone (hung up, or removed by command): record it, tell the listener."""
        self.parties.remove(party)
        self.session.records.event(self.call_id, "conference_left", party=party.endpoint, **detail)
        if self.on_party_left is not None:
            self.on_party_left(party)

    async def _someone_left_with_caller(self, agent_leg: Leg) -> bool:
        """Drop the parties that hung up (recording each departure); True while anyone remains."""
        for party in list(self.parties):
            if await party.wait_until_gone(0):
                self.party_left(party)
        agent_here = not agent_leg.gone and not await agent_leg.wait_until_gone(0)
        if not agent_here and self.parties:
            self.on_agent_left()  # the agent is free; the caller goes on with the others
        return agent_here or bool(self.parties)
