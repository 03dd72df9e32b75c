"""The queues' shared holding bridges: callers wait in one holding bridge per queue and Asterisk node, with the
queue's music on hold, instead of a bridge and a music announcer channel each (1,000 waiting callers were
2,275 channels and 2,900 threads in Asterisk that way).

The music is each waiting caller's own, as app_queue plays it: Asterisk's holding bridge starts music on hold for a
participant that joins with the role `holding_participant` a bridge with no announcer (bridges/bridge_holding.c, idle
mode "musiconhold"), in the class of the caller's `CHANNEL(musicclass)`, set before the join when the queue's class
is not "default" (one request more then). A bridge's own music (POST /bridges/{id}/moh, an announcer channel that
every participant hears instead of their own) played all the time, whether anybody waited or not: with 20 queues,
56 ms of Asterisk's CPU a second (issue 19). It now plays only while `SHARED_MUSIC_FROM` callers or more wait
(one music source is cheaper than many), or to switch the callers waiting when a queue's class changes live, and
stops once the bridge is empty (Asterisk then gives anyone who joins music of their own again).

A waiting caller costs one ARI request, addChannel (role holding_participant) when they start waiting, and a second,
removeChannel, when they leave it for media (the agent's number, the flow's next prompt) or for nothing (a caller
sent on to the dialplan). A caller connected straight to their agent costs no second one: addChannel to the talk
bridge takes them out of this one first (`leave(moved=True)`). The bridge

- has a deterministic id (`holding_bridge_id`: the queue's name made safe, and a hash of application, node and
  queue), so a new process (restart, SIGKILL, a standby taking over) adopts it with its callers (`adopt`) and a
  second one is never made; its name is its id, never a call id or a caller's number;
- is created on first use; callers who arrive meanwhile await that one creation;
- is created again when it is gone (Asterisk restarted, or the bridge was destroyed): an add answered 404
  forgets it, creates it and tries once more;
- follows its queue's music-on-hold class when that changes live (`music_changed`: its announcer plays the new class
  to those waiting, new callers get it as their own), and is destroyed once its queue is removed and nobody waits in
  it (`queue_removed`, `leave`).

Position announcements go to one caller's channel (`CallSession.play`), which Asterisk plays to that channel
alone while it stays in the bridge. The guard (controller/guard/selection.py) takes anyone in such a bridge for
a waiting caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from controller.ari.client import AriClient
from controller.ari.dispatcher import Dispatcher
from controller.ari.errors import AriConflict, AriDetached, AriError, AriNotFound, ChannelGone
from controller.ari.models import Event
from controller.plugins.calls.session import CallSession

log = logging.getLogger("controller.acd")

#: The ids of the queues' holding bridges start so (the guard's and the README's `br-queue-*`).
HOLDING_PREFIX = "br-queue-"
#: The role a waiting caller joins with. Asterisk's Stasis bridges give a channel joining a holding bridge with no
#: role of this name the idle mode "none" (res/stasis/stasis_bridge.c); with it, bridge_holding.c's default: music
#: on hold of the caller's own.
HOLDING_PARTICIPANT = "holding_participant"
#: From this many callers waiting in a bridge, its own music plays to them all (one announcer) instead of one
#: music on hold per caller: measured alone on these machines, similar at 3-10 waiting, 3x less CPU at 100.
SHARED_MUSIC_FROM = 10


@functools.lru_cache(maxsize=1024)
def holding_bridge_id(app: str, node: str, queue: str) -> str:
    """`br-queue-<queue, safe>-<hash>`: the same for a queue on a node whichever process asks. The hash keeps
    names apart that differ only in characters made safe (Chinese names), and applications sharing an Asterisk.
    Cached: each queued call asks (a regular expression and a SHA-256 each time otherwise)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", queue)[:40]
    digest = hashlib.sha256(f"{app}\0{node}\0{queue}".encode()).hexdigest()[:10]
    return f"{HOLDING_PREFIX}{safe}-{digest}"


@dataclass
class SharedBridge:
    """A queue's holding bridge on one node, as this process knows it."""

    bridge_id: str
    queue: str
    ari: AriClient
    dispatcher: Dispatcher
    moh_class: str
    members: set[str] = field(default_factory=set)  # caller channels this process put (or found) in it
    # The bridge's own music may play (an announcer: a live class change, or made by an earlier version, which
    # started it with the bridge): stopped once nobody waits in it.
    announcer: bool = False


class QueueHolding:
    """Every shared holding bridge of this process, by id (see the module's doc)."""

    def __init__(self, moh_class_of: Callable[[str], str], queue_exists: Callable[[str], bool]) -> None:
        self._moh_class_of = moh_class_of  # a queue's music-on-hold class now
        self._queue_exists = queue_exists
        self._bridges: dict[str, SharedBridge] = {}
        self._creating: dict[str, asyncio.Task[SharedBridge]] = {}
        self.created = 0  # bridges this process created (again, after one vanished, too)

    def deliver(self, event: Event) -> None:
        """Claimed in the dispatcher (so the clean-up after a restart keeps the bridge while it is empty); its
        own events are not needed (the callers' channel events go to their calls)."""

    def bridges(self) -> list[SharedBridge]:
        return list(self._bridges.values())

    async def join(self, session: CallSession, queue: str) -> str:
        """Put the caller in the queue's holding bridge on their node (created if need be); returns its id."""
        bridge_id = holding_bridge_id(session.app_name, session.ari.node, queue)
        for attempt in (1, 2):
            bridge = await self._ready(session.ari, session.dispatcher, bridge_id, queue)
            await self._choose_music(session, bridge.moh_class)
            try:
                await session.ari.add_to_bridge(bridge_id, [session.channel_id], role=HOLDING_PARTICIPANT)
            except AriNotFound:
                if attempt == 2:
                    raise
                log.warning("holding bridge %s of queue %s is gone (Asterisk restarted?): creating it again",
                            bridge_id, queue)
                if self._bridges.get(bridge_id) is bridge:
                    del self._bridges[bridge_id]
                continue
            bridge.members.add(session.channel_id)
            session.caller_bridge = bridge_id
            if len(bridge.members) >= SHARED_MUSIC_FROM and not bridge.announcer:
                await self._start_announcer(bridge)
            return bridge_id
        raise AssertionError("unreachable")

    async def leave(self, session: CallSession, bridge_id: str, *, moved: bool = False) -> None:
        """Take the caller out. removeChannel answers once the channel is out, so media asked for next (the agent's
        number) plays; a caller who hung up has left by themselves (no request).

        `moved`: the caller is in another bridge already. ARI's addChannel on a channel in a Stasis bridge departs
        that bridge before adding it (Asterisk's res/stasis/control.c, `control_swap_channel_in_bridge`), and
        answers once the channel is in the new one: only the book-keeping is left here (no request)."""
        bridge = self._bridges.get(bridge_id)
        if bridge is not None:
            bridge.members.discard(session.channel_id)
        if not session.caller_gone and not moved:
            try:
                await session.ari.remove_from_bridge(bridge_id, session.channel_id)
            except (ChannelGone, AriNotFound, AriDetached):
                pass
            except AriError as exc:
                log.warning("call %s: leaving holding bridge %s failed: %s", session.call_id, bridge_id, exc)
        if session.caller_bridge == bridge_id:
            session.caller_bridge = None
        if bridge is not None and not bridge.members and not self._queue_exists(bridge.queue):
            await self._destroy(bridge)
        elif bridge is not None and not bridge.members and bridge.announcer:
            await self._stop_announcer(bridge)

    async def _choose_music(self, session: CallSession, moh_class: str) -> None:
        """The class Asterisk's holding bridge plays to the caller (their channel's musicclass, else "default"):
        set only when it is not that already, so a call in a queue of the default class asks nothing."""
        if moh_class == session.music_class or (moh_class == "default" and not session.music_class):
            return
        try:
            await session.ari.set_var(session.channel_id, "CHANNEL(musicclass)", moh_class)
        except ChannelGone:
            raise
        except AriError as exc:
            log.warning("call %s: music on hold class %r not set: %s", session.call_id, moh_class, exc)
            return
        session.music_class = moh_class

    async def _start_announcer(self, bridge: SharedBridge) -> None:
        """The bridge's own music, in its class, to everyone in it (POST /moh starts it, or changes its class)."""
        bridge.announcer = True
        try:
            await bridge.ari.bridge_start_moh(bridge.bridge_id, bridge.moh_class)
        except AriNotFound:
            self._bridges.pop(bridge.bridge_id, None)  # gone: the next caller creates it
            return
        except AriError as exc:
            log.warning("holding bridge %s: music on hold class %r not set: %s", bridge.bridge_id, bridge.moh_class,
                        exc)
            return
        if not bridge.members:  # the last caller left meanwhile
            await self._stop_announcer(bridge)

    async def _stop_announcer(self, bridge: SharedBridge) -> None:
        """Nobody waits: the bridge's own music stops (Asterisk would play it to nobody, all the time)."""
        bridge.announcer = False
        try:
            await bridge.ari.bridge_stop_moh(bridge.bridge_id)
        except (AriConflict, AriNotFound, AriDetached):
            pass  # (409: not playing)
        except AriError as exc:
            log.warning("holding bridge %s: music on hold not stopped: %s", bridge.bridge_id, exc)

    def adopt(self, session: CallSession, bridge_id: str, queue: str, channels: tuple[str, ...] | list[str]) -> None:
        """A caller a previous process left waiting in the bridge (it plays on): known from now on."""
        bridge = self._bridges.get(bridge_id)
        if bridge is None:
            # (announcer: an earlier version's bridge plays its own music; stopped once it is empty)
            bridge = SharedBridge(bridge_id, queue, session.ari, session.dispatcher, self._moh_class_of(queue),
                                  announcer=True)
            self._bridges[bridge_id] = bridge
            session.dispatcher.claim(bridge_id, self)
        bridge.members.add(session.channel_id)
        if session.channel_id in channels:
            session.caller_bridge = bridge_id

    async def music_changed(self, queue: str) -> None:
        """The queue's music-on-hold class changed: the callers waiting hear the new one at once, from the bridge's
        announcer (POST /moh starts it, or changes its class), until the bridge is empty; new callers get it as
        their own music."""
        moh_class = self._moh_class_of(queue)
        for bridge in [b for b in self._bridges.values() if b.queue == queue and b.moh_class != moh_class]:
            bridge.moh_class = moh_class
            if bridge.members:
                await self._start_announcer(bridge)
                log.info("holding bridge %s of queue %s: music on hold class %r", bridge.bridge_id, queue, moh_class)

    async def queue_removed(self, queue: str) -> None:
        """The queue is gone: its idle bridges are destroyed (one still in use goes when its last caller leaves)."""
        for bridge in [b for b in self._bridges.values() if b.queue == queue and not b.members]:
            await self._destroy(bridge)

    async def _ready(self, ari: AriClient, dispatcher: Dispatcher, bridge_id: str, queue: str) -> SharedBridge:
        """The bridge, once it exists: created here, or by the creation already in flight."""
        known = self._bridges.get(bridge_id)
        if known is not None:
            return known
        creating = self._creating.get(bridge_id)
        if creating is None:
            creating = asyncio.get_running_loop().create_task(self._create(ari, dispatcher, bridge_id, queue))
            self._creating[bridge_id] = creating
            creating.add_done_callback(lambda task: self._created(bridge_id, task))
        # Shielded: a caller hanging up (their task cancelled) does not cancel it for the others.
        return await asyncio.shield(creating)

    def _created(self, bridge_id: str, task: asyncio.Task[SharedBridge]) -> None:
        if self._creating.get(bridge_id) is task:
            del self._creating[bridge_id]
        if not task.cancelled():
            task.exception()  # retrieved: every caller awaiting it got it already

    async def _create(self, ari: AriClient, dispatcher: Dispatcher, bridge_id: str, queue: str) -> SharedBridge:
        moh_class = self._moh_class_of(queue)
        dispatcher.claim(bridge_id, self)
        made_before = False
        try:
            await ari.create_bridge(bridge_id, "holding", name=bridge_id)
        except AriConflict:
            made_before = True  # a previous process made it, and nobody it held was resumed into it: ours all the same
        except BaseException:
            dispatcher.release(bridge_id)
            raise
        self.created += 1
        log.info("holding bridge %s of queue %s created (music on hold class %r)", bridge_id, queue, moh_class)
        bridge = SharedBridge(bridge_id, queue, ari, dispatcher, moh_class, announcer=made_before)
        self._bridges[bridge_id] = bridge
        return bridge

    async def _destroy(self, bridge: SharedBridge) -> None:
        if self._bridges.get(bridge.bridge_id) is bridge:
            del self._bridges[bridge.bridge_id]
        with contextlib.suppress(AriError):
            await bridge.ari.destroy_bridge(bridge.bridge_id)
        bridge.dispatcher.release(bridge.bridge_id)
        log.info("holding bridge %s of removed queue %s destroyed", bridge.bridge_id, bridge.queue)
