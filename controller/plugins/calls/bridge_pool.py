"""Idle talk bridges kept for the next connected calls (README "ACD", "Talk bridges from a pool").

A connected call takes an empty mixing bridge from here instead of creating one, and gives it back at the end
of its talk instead of destroying it: two ARI requests fewer per call (bridges.create and bridges.destroy),
and for Asterisk a bridge set up and torn down less per call.

That a bridge given back is empty is known, not assumed, and costs neither bridge events (the application
declines them: controller/ari/events.py) nor a request: the lease keeps every channel the call added to it
(`joined`) until that channel is known out of it, by a removeChannel, or an addChannel to another bridge, that
Asterisk answered (it answers once the channel has moved), or by the channel's StasisEnd or ChannelDestroyed,
which the dispatcher shows the pool whoever owns the channel (`observe`: res_stasis departs a channel from its
bridge before it publishes StasisEnd, and a destroyed channel is in no bridge). A bridge given back goes idle
once no channel is left in it; until then it drains, and it is destroyed if that takes longer than
`DRAIN_SECONDS`. A bridge whose call did anything else with it (music on hold, a request on it that failed, a
resume after a restart, events possibly missed during a reconnect) is destroyed, never reused.

Then Asterisk confirms it: a bridge that drained goes to the idle list only after a listing of the node's
bridges (`GET /bridges`, one a second at most per node, off the call path, whatever the call rate) taken after
it drained shows it empty; one that still holds a channel there (one this process never added) is destroyed.

The live-call picture names the talk bridge of a connected call (`talk_bridge`) as before: a resumed call finds
it (and destroys it at its end); a bridge a previous process kept idle is empty and nobody claims it, so the
resume's clean-up destroys it; one it left draining is drained, then destroyed, by this process (`reconcile`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from controller.ari.client import AriClient, new_id
from controller.ari.dispatcher import Dispatcher
from controller.ari.errors import AriError
from controller.ari.models import Bridge as AriBridge
from controller.ari.models import ChannelDestroyed, Event, StasisEnd

if TYPE_CHECKING:
    from controller.plugins.calls.session import CallSession

log = logging.getLogger("controller.calls.bridges")

#: The name pooled talk bridges carry in Asterisk (a bridge's name cannot change: it cannot name its call).
POOL_BRIDGE_NAME = "talk-pool"
#: Prefix of the talk bridges' ids (`legs.Bridge`'s "br-<purpose>-").
TALK_BRIDGE_PREFIX = "br-talk-"
#: Idle bridges kept per Asterisk node at most: one given back beyond that is destroyed. (At 60 calls/s with 2 s talks
#: about 200 are out at once, idle in between; 64 made the pool destroy and create ~0.2 bridges per call there.)
MAX_IDLE = 256
#: Idle bridges the pool creates ahead (off the call path) when a take leaves fewer.
MIN_IDLE = 2
#: An idle bridge unused this long is destroyed (the pool shrinks after a busy hour), down to MIN_IDLE.
IDLE_SECONDS = 300.0
#: How long the last channels of a bridge given back may take to leave it before it is destroyed.
DRAIN_SECONDS = 10.0
#: Seconds between two listings of a node's bridges that confirm drained bridges empty (`_confirm`).
CONFIRM_SECONDS = 1.0


@dataclass(slots=True, eq=False)
class Lease:
    """A pooled bridge out of the idle list: in a call's hands, or draining after it."""

    bridge_id: str
    ari: AriClient
    members: set[str] = field(default_factory=set)  # channels added to it and not known out of it yet
    spoiled: bool = False  # never reused: destroyed when given back (see the module's docstring)
    drain: asyncio.TimerHandle | None = None  # while draining: its deadline


@dataclass(slots=True)
class _Idle:
    bridge_id: str
    since: float  # time.monotonic() when it went idle


class TalkBridgePool:
    def __init__(self, dispatcher: Dispatcher, spawn: Callable[[Coroutine[Any, Any, None]], None]) -> None:
        self.dispatcher = dispatcher
        self.spawn = spawn
        self._idle: dict[AriClient, list[_Idle]] = {}  # per node's client: idle bridges, the last given back last
        self._leases: dict[str, Lease] = {}  # bridge id -> lease (taken or draining)
        self._member_of: dict[str, Lease] = {}  # channel id -> the lease it was added to last
        self._topping_up: set[AriClient] = set()  # nodes with a creation ahead in flight
        self._unconfirmed: dict[AriClient, list[str]] = {}  # drained, not yet seen empty by a listing
        self._confirming: set[AriClient] = set()  # nodes with a listing due or in flight
        self._shrink_timer: asyncio.TimerHandle | None = None
        self.taken_new = self.reused = 0  # bridges calls took: created for them, or idle ones
        dispatcher.end_watcher = self.observe

    def deliver(self, event: Event) -> None:
        """Events of idle and draining bridges (the pool owns them): nothing to do."""

    def idle_count(self) -> int:
        return sum(len(idle) for idle in self._idle.values())

    def draining_count(self) -> int:
        """Bridges given back and not idle yet: waiting for their last channels to leave, or for a listing."""
        return sum(1 for lease in self._leases.values() if lease.drain is not None) \
            + sum(len(unconfirmed) for unconfirmed in self._unconfirmed.values())

    # -- a call's side ------------------------------------------------------------------------------

    async def take(self, session: CallSession, *, fresh: bool = False) -> Lease:
        """An empty mixing bridge for the call (claimed for its session): an idle one, else (or `fresh`) created
        now."""
        node = session.ari
        idle = self._idle.get(node)
        if idle and not fresh:
            bridge_id = idle.pop().bridge_id
            self.reused += 1
            self.dispatcher.claim(bridge_id, session)
        else:
            bridge_id = await self._create(node, session)
            self.taken_new += 1
        lease = self._leases[bridge_id] = Lease(bridge_id, node)
        if len(self._idle.get(node, ())) < MIN_IDLE and node not in self._topping_up:
            self._topping_up.add(node)
            self.spawn(self._top_up(node))
        return lease

    def joined(self, lease: Lease, channel_ids: tuple[str, ...]) -> None:
        """Asterisk answered an addChannel of these channels to the lease's bridge."""
        lease.members.update(channel_ids)
        for channel_id in channel_ids:
            self._member_of[channel_id] = lease

    def left(self, lease: Lease, channel_id: str) -> None:
        """`channel_id` is out of the lease's bridge (removed or moved, Asterisk answered; or it ended)."""
        lease.members.discard(channel_id)
        if self._member_of.get(channel_id) is lease:
            del self._member_of[channel_id]
        if lease.drain is not None and not lease.members:
            self._to_idle(lease)

    def give_back(self, lease: Lease) -> None:
        """The call is done with the bridge: idle when no channel is left in it, draining while its last channels
        leave, destroyed when spoiled."""
        self.dispatcher.claim(lease.bridge_id, self)
        if lease.spoiled:
            self._destroy(lease)
        elif not lease.members:
            self._to_idle(lease)
        else:
            lease.drain = asyncio.get_running_loop().call_later(DRAIN_SECONDS, self._drained_too_long, lease)

    def drop(self, lease: Lease) -> None:
        """The call destroys the bridge itself (its talk did not end cleanly): forget it."""
        self._forget(lease)

    # -- what Asterisk says -------------------------------------------------------------------------

    def observe(self, event: StasisEnd | ChannelDestroyed) -> None:
        """A channel's StasisEnd or ChannelDestroyed, before it is routed (`Dispatcher.end_watcher`): the channel
        is in no bridge any more."""
        channel = event.channel
        if channel is not None and (lease := self._member_of.get(channel.id)) is not None:
            self.left(lease, channel.id)

    def reconcile(self, ari: AriClient, bridges: dict[str, AriBridge]) -> None:
        """After (re)connecting to a node (`CallsService.readopt`), given its bridges now. Events may have been
        missed meanwhile: no bridge in a call's hands or draining is reused (those draining are destroyed now);
        idle ones that are gone or hold a channel are dropped; a talk bridge of ours that nobody owns and that
        still holds channels (one a previous process left draining) drains here, then is destroyed."""
        for lease in list(self._leases.values()):
            if lease.ari is ari:
                lease.spoiled = True
                if lease.drain is not None:
                    self._destroy(lease)
        self._idle[ari] = [idle for idle in self._idle.get(ari, []) if self._still_idle(ari, idle.bridge_id, bridges)]
        for bridge in bridges.values():
            if bridge.id.startswith(TALK_BRIDGE_PREFIX) and bridge.channels \
                    and self.dispatcher.owner_of(bridge.id) is None:
                lease = self._leases[bridge.id] = Lease(bridge.id, ari, spoiled=True)
                self.joined(lease, bridge.channels)
                self.dispatcher.claim(bridge.id, self)  # (spoiled: destroyed once empty, or at the deadline)
                lease.drain = asyncio.get_running_loop().call_later(DRAIN_SECONDS, self._drained_too_long, lease)

    # -- keeping the pool -------------------------------------------------------------------------

    def _to_idle(self, lease: Lease) -> None:
        """Drained: idle once a listing of the node's bridges shows it empty (`_confirm`)."""
        if lease.spoiled:  # (one a previous process left draining: gone once empty)
            self._destroy(lease)
            return
        self._forget(lease)
        ari = lease.ari
        if len(self._idle.get(ari, ())) + len(self._unconfirmed.get(ari, ())) >= MAX_IDLE:
            self.spawn(self._destroy_now(ari, lease.bridge_id))
            return
        self.dispatcher.claim(lease.bridge_id, self)
        self._unconfirmed.setdefault(ari, []).append(lease.bridge_id)
        self._confirm_later(ari)

    def _confirm_later(self, ari: AriClient) -> None:
        if ari not in self._confirming:
            self._confirming.add(ari)
            asyncio.get_running_loop().call_later(CONFIRM_SECONDS, self.spawn, self._confirm(ari))

    async def _confirm(self, ari: AriClient) -> None:
        """List the node's bridges: the drained ones it shows empty go idle, any other is destroyed."""
        judged, self._unconfirmed[ari] = self._unconfirmed.get(ari, []), []
        asked = time.monotonic()
        bridges: dict[str, AriBridge] = {}
        try:
            bridges = {bridge.id: bridge for bridge in await ari.bridges()}
            listed = True
        except AriError as exc:
            log.warning("talk bridge pool: listing the bridges failed (%s): %d drained bridge(s) destroyed", exc,
                        len(judged))
            listed = False
        finally:
            self._confirming.discard(ari)
        idle = self._idle.setdefault(ari, [])
        if listed:  # the idle ones the listing should show (idle before it): gone ones forgotten
            idle[:] = [i for i in idle if i.since >= asked or self._still_idle(ari, i.bridge_id, bridges)]
        for bridge_id in judged:
            if self.dispatcher.owner_of(bridge_id) is not self:
                continue  # (reconciled meanwhile)
            bridge = bridges.get(bridge_id)
            if bridge is not None and not bridge.channels:
                idle.append(_Idle(bridge_id, time.monotonic()))
                continue
            self.dispatcher.release(bridge_id)
            if bridge is not None:
                log.warning("talk bridge %s still held %s after its call: destroyed, not reused", bridge_id,
                            ", ".join(bridge.channels))
            if bridge is not None or not listed:  # (gone from a listing that worked: nothing to destroy)
                self.spawn(self._destroy_now(ari, bridge_id))
        if idle:
            self._shrink_later()
        if self._unconfirmed[ari]:
            self._confirm_later(ari)

    def _drained_too_long(self, lease: Lease) -> None:
        log.warning("talk bridge %s: %d channel(s) not known out of it %.0f s after its call: destroyed",
                    lease.bridge_id, len(lease.members), DRAIN_SECONDS)
        lease.drain = None
        self._destroy(lease)

    def _destroy(self, lease: Lease) -> None:
        self._forget(lease)
        self.spawn(self._destroy_now(lease.ari, lease.bridge_id))

    def _forget(self, lease: Lease) -> None:
        if lease.drain is not None:
            lease.drain.cancel()
            lease.drain = None
        self._leases.pop(lease.bridge_id, None)
        for channel_id in lease.members:
            if self._member_of.get(channel_id) is lease:
                del self._member_of[channel_id]
        lease.members.clear()
        if self.dispatcher.owner_of(lease.bridge_id) is self:
            self.dispatcher.release(lease.bridge_id)

    async def _destroy_now(self, ari: AriClient, bridge_id: str) -> None:
        try:
            await ari.destroy_bridge(bridge_id)
        except AriError as exc:  # gone already, or Asterisk away: the next resume's clean-up removes it
            log.debug("talk bridge %s: destroy failed: %s", bridge_id, exc)

    async def _create(self, ari: AriClient, owner: CallSession | TalkBridgePool) -> str:
        """A new pooled mixing bridge, claimed for `owner` (released again if Asterisk does not make it)."""
        bridge_id = new_id("br-talk")
        self.dispatcher.claim(bridge_id, owner)
        try:
            await ari.create_bridge(bridge_id, "mixing", name=POOL_BRIDGE_NAME)
        except BaseException:
            self.dispatcher.release(bridge_id)
            raise
        return bridge_id

    async def _top_up(self, ari: AriClient) -> None:
        """Create one idle bridge ahead, off the call path."""
        try:
            bridge_id = await self._create(ari, self)
        except AriError as exc:
            log.debug("talk bridge pool: creating one ahead failed: %s", exc)
            return
        finally:
            self._topping_up.discard(ari)
        idle = self._idle.setdefault(ari, [])
        if len(idle) >= MAX_IDLE:
            self.dispatcher.release(bridge_id)
            self.spawn(self._destroy_now(ari, bridge_id))
            return
        idle.append(_Idle(bridge_id, time.monotonic()))
        self._shrink_later()

    def _still_idle(self, ari: AriClient, bridge_id: str, bridges: dict[str, AriBridge]) -> bool:
        """Whether an idle bridge is still in Asterisk, empty; if not, it is dropped (destroyed if it is there)."""
        bridge = bridges.get(bridge_id)
        if bridge is not None and not bridge.channels:
            return True
        self.dispatcher.release(bridge_id)
        if bridge is not None:
            self.spawn(self._destroy_now(ari, bridge_id))
        return False

    def _shrink_later(self) -> None:
        if self._shrink_timer is None:
            self._shrink_timer = asyncio.get_running_loop().call_later(IDLE_SECONDS / 2, self._shrink)

    def _shrink(self) -> None:
        """Destroy the bridges idle longer than IDLE_SECONDS (the least recently used first), down to MIN_IDLE."""
        self._shrink_timer = None
        oldest = time.monotonic() - IDLE_SECONDS
        for ari, idle in self._idle.items():
            while len(idle) > MIN_IDLE and idle[0].since < oldest:
                stale = idle.pop(0)
                self.dispatcher.release(stale.bridge_id)
                self.spawn(self._destroy_now(ari, stale.bridge_id))
        if self.idle_count() > 0:
            self._shrink_later()
