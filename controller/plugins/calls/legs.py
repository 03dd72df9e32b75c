"""Second legs and bridges: dialling an agent, a transfer target or a conference party for a call.

A `Leg` is a channel the call originates into our application. Its id is chosen here and claimed
for the call's session before the originate request, so every event of the leg (Dial progress,
StasisStart on answer, the hang-up) arrives in the session's inbox, in order. While a leg rings,
the caller may hang up: the leg is then cancelled and `CallerHangup` propagates as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from controller.ari.client import new_id
from controller.ari.errors import AriDetached, AriError, AriNotFound, AriUnavailable, ChannelGone
from controller.ari.models import (
    ChannelDestroyed,
    ChannelHangupRequest,
    Dial,
    Event,
    StasisEnd,
    StasisStart,
)
from controller.ivr.port import CallerHangup
from controller.plugins.calls.bridge_pool import Lease, TalkBridgePool
from controller.plugins.calls.session import CallSession

log = logging.getLogger("controller.calls")

#: Dial statuses that end a ringing attempt without an answer.
FINAL_DIAL_STATUSES = {"BUSY", "NOANSWER", "CONGESTION", "CHANUNAVAIL", "CANCEL", "DONTCALL", "TORTURE", "INVALIDARGS"}


@dataclass(frozen=True)
class DialOutcome:
    answered: bool
    status: str  # ANSWER, BUSY, NOANSWER, CONGESTION, CHANUNAVAIL, FAILED, TIMEOUT
    cause: int | None = None


class Leg:
    def __init__(self, session: CallSession, endpoint: str, *, purpose: str, caller_id: str | None = None,
                 ring_timeout: float = 30.0, variables: dict[str, str] | None = None) -> None:
        self.session = session
        self.endpoint = endpoint
        self.purpose = purpose  # agent, transfer, conference, consult
        self.caller_id = caller_id
        self.ring_timeout = ring_timeout
        self.variables = variables or {}
        self.channel_id = new_id(f"leg-{purpose}")
        self.answered = False
        self.gone = False
        self.started_at = 0.0

    @classmethod
    def answered_channel(cls, session: CallSession, channel_id: str, *, purpose: str, endpoint: str = "") -> Leg:
        """A channel of the call that is up already (not originated here) as one of its legs: the agent's phone
        of an outbound call once the customer's channel is the call's own, a leg a previous process rang."""
        leg = cls(session, endpoint, purpose=purpose)
        leg.channel_id, leg.answered = channel_id, True
        return leg

    def concerns(self, event: Event) -> bool:
        return self.channel_id in event.routing_ids()

    def ended_by(self, event: Event) -> bool:
        """Whether `event` says this leg hung up or left the application."""
        return self._ends_leg(event)

    def _ends_leg(self, event: Event) -> bool:
        return self.concerns(event) and isinstance(event, ChannelHangupRequest | StasisEnd | ChannelDestroyed)

    async def start(self) -> DialOutcome | None:
        """Originate the leg (it rings); a DialOutcome only when that failed at once."""
        session = self.session
        session.dispatcher.claim(self.channel_id, session)
        self.started_at = time.monotonic()
        try:
            await session.ari.originate(
                self.channel_id, self.endpoint, app=session.app_name, app_args=f"leg,{session.call_id}",
                caller_id=self.caller_id, timeout=max(1, int(self.ring_timeout)), variables=self.variables)
        except AriError as exc:
            self.gone = True
            session.dispatcher.release(self.channel_id)
            return DialOutcome(False, "FAILED", None if exc.status == 0 else exc.status)
        return None

    def outcome_of(self, event: Event) -> DialOutcome | None:
        """What an event of this leg means while it rings: answered, failed, or None (still ringing)."""
        if not self.concerns(event):
            return None
        if isinstance(event, StasisStart):
            return DialOutcome(True, "ANSWER")
        if isinstance(event, ChannelDestroyed):
            return DialOutcome(False, "FAILED", event.cause)
        if isinstance(event, Dial) and event.dialstatus in FINAL_DIAL_STATUSES:
            return DialOutcome(False, event.dialstatus)
        return None

    def ring_seconds(self) -> float:
        return time.monotonic() - self.started_at if self.started_at else 0.0

    async def dial(self) -> DialOutcome:
        """Ring the endpoint; returns when it answers, fails, or the ring timeout passes."""
        failed = await self.start()
        if failed is not None:
            return failed
        try:
            event = await self.session.wait_for(lambda event: self.outcome_of(event) is not None,
                                                self.ring_timeout + 5)
        except CallerHangup:
            await self.hangup()
            raise
        outcome = self.outcome_of(event) if event is not None else DialOutcome(False, "TIMEOUT")
        assert outcome is not None
        if outcome.answered:
            self.answered = True
        else:
            await self.hangup()
        return outcome

    async def hangup(self) -> None:
        """Hang the leg up. Cleanup must go on whatever ARI answers: an error is logged, not raised."""
        if not self.gone:
            self.gone = True
            try:
                await self.session.ari.hangup(self.channel_id)
            except (ChannelGone, AriDetached):
                pass
            except AriError as exc:
                log.warning("call %s: hanging up leg %s failed: %s", self.session.call_id, self.channel_id, exc)
            self.session.dispatcher.release(self.channel_id)

    async def wait_until_gone(self, timeout: float | None = None) -> bool:
        """Wait for the leg to hang up (True) or `timeout` (False); CallerHangup if the caller goes first."""
        if self.gone or self.channel_id in self.session.ended_channels:
            self.gone = True
            self.session.dispatcher.release(self.channel_id)
            return True
        event = await self.session.wait_for(self._ends_leg, timeout)
        if event is not None:
            self.gone = True
            self.session.dispatcher.release(self.channel_id)
            return True
        return False


class _UntilInStasis:
    """Owns a new channel's id for its call until the channel's StasisStart: every event goes on to
    the call's inbox, as if the call owned it, and `in_stasis` is resolved by the StasisStart."""

    def __init__(self, session: CallSession) -> None:
        self.session = session
        self.in_stasis: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def deliver(self, event: Event) -> None:
        if isinstance(event, StasisStart) and not self.in_stasis.done():
            self.in_stasis.set_result(None)
        self.session.deliver(event)


async def start_snoop(session: CallSession, channel_id: str, snoop_id: str, *, app: str, spy: str,
                      whisper: str = "none", timeout: float = 5.0) -> None:
    """Snoop on `channel_id` and return once the snoop channel is in our application (its events go to
    the call's inbox).

    Asterisk answers POST /snoop before the snoop channel enters Stasis (res_stasis_snoop starts it in
    a thread of its own): adding it to a bridge or recording it before its StasisStart fails with 422
    "Channel not in Stasis application", more often the busier Asterisk is."""
    waiter = _UntilInStasis(session)
    session.dispatcher.claim(snoop_id, waiter)
    try:
        await session.ari.snoop(channel_id, snoop_id, app=app, app_args="snoop", spy=spy, whisper=whisper)
        try:
            async with asyncio.timeout(timeout):
                await waiter.in_stasis
        except TimeoutError:
            with contextlib.suppress(AriError):
                await session.ari.hangup(snoop_id)  # it may still come: not left behind in Stasis
            raise AriUnavailable("POST", f"/channels/{channel_id}/snoop/{snoop_id}", 0,
                                 f"the snoop channel did not enter the application within {timeout:g} s") from None
    finally:
        if session.dispatcher.owner_of(snoop_id) is waiter:
            session.dispatcher.claim(snoop_id, session)


class Bridge:
    """A mixing (or holding) bridge owned by the call; its events go to the call's session."""

    def __init__(self, session: CallSession, kind: str = "mixing", purpose: str = "talk") -> None:
        self.session = session
        self.kind = kind
        self.bridge_id = new_id(f"br-{purpose}")
        self.created = False
        # Taken from the talk bridge pool: given back at the end, not destroyed (`end`).
        self.pool: TalkBridgePool | None = None
        self.lease: Lease | None = None

    @classmethod
    async def from_pool(cls, session: CallSession, pool: TalkBridgePool, *, fresh: bool = False) -> Bridge:
        """A talk bridge taken from the pool (created only when none is idle, or `fresh`)."""
        lease = await pool.take(session, fresh=fresh)
        bridge = cls(session)
        bridge.bridge_id, bridge.created, bridge.pool, bridge.lease = lease.bridge_id, True, pool, lease
        return bridge

    def spoil(self) -> None:
        """The call used the bridge for more than talking (e.g. music on hold): destroyed at its end, not reused."""
        if self.lease is not None:
            self.lease.spoiled = True

    async def create(self) -> Bridge:
        self.session.dispatcher.claim(self.bridge_id, self.session)
        await self.session.ari.create_bridge(self.bridge_id, self.kind, name=self.session.call_id)
        self.created = True
        return self

    async def add(self, *channel_ids: str, role: str | None = None) -> None:
        try:
            await self.session.ari.add_to_bridge(self.bridge_id, list(channel_ids), role=role)
        except BaseException:
            self.spoil()  # some may have entered: never reused
            raise
        if self.lease is not None and self.pool is not None:
            self.pool.joined(self.lease, channel_ids)
        if self.session.channel_id in channel_ids:
            self.session.caller_bridge = self.bridge_id  # (out of any other: a channel is in one bridge at most)

    async def remove(self, channel_id: str) -> None:
        try:
            await self.session.ari.remove_from_bridge(self.bridge_id, channel_id)
        except (ChannelGone, AriNotFound):
            return
        except BaseException:
            self.spoil()
            raise
        if self.lease is not None and self.pool is not None:
            self.pool.left(self.lease, channel_id)
        if channel_id == self.session.channel_id and self.session.caller_bridge == self.bridge_id:
            self.session.caller_bridge = None

    async def end(self, *, media_follows: bool = True) -> None:
        """The call's talk in the bridge is over and ended cleanly: a pooled bridge goes back to the pool (the
        caller taken out first unless `media_follows` is False; the others leave as they hang up), else it is
        destroyed (`destroy`)."""
        lease, pool = self.lease, self.pool
        if lease is None or pool is None or not self.created or lease.spoiled:
            await self.destroy(media_follows=media_follows)
            return
        caller = self.session.channel_id
        if self.session.caller_bridge != self.bridge_id:
            pool.left(lease, caller)  # moved to another bridge by an addChannel Asterisk answered
        elif media_follows and not self.session.caller_gone:
            with contextlib.suppress(AriError):  # (a failure spoils it)
                await self.remove(caller)
        if self.session.caller_bridge == self.bridge_id:
            self.session.caller_bridge = None  # (still in it: leaves as it hangs up, the pool waits for that)
        self.created, self.lease = False, None
        pool.give_back(lease)

    async def destroy(self, *, media_follows: bool = True) -> None:
        """Destroy the bridge. Cleanup must go on whatever ARI answers: an error is logged, not raised.

        `media_follows=False`: the caller is hung up next, with nothing played to them (the flow says so), so a
        caller still in the bridge is left in it: DELETE takes them out."""
        if self.created:
            self.created = False
            if self.lease is not None and self.pool is not None:  # a pooled bridge not given back (`end`)
                self.pool.drop(self.lease)
                self.lease = None
            if self.session.caller_bridge == self.bridge_id and not self.session.caller_gone and media_follows:
                # ARI answers DELETE before the caller's channel has left the bridge, and a playback asked for in
                # that moment is handed to the bridge being left and never starts (no PlaybackFinished: the call
                # waited for good). removeChannel answers once the channel is out: media may follow at once.
                with contextlib.suppress(AriError):
                    await self.remove(self.session.channel_id)
            if self.session.caller_bridge == self.bridge_id:
                self.session.caller_bridge = None
            try:
                await self.session.ari.destroy_bridge(self.bridge_id)
            except (AriNotFound, AriDetached):
                pass
            except AriError as exc:
                log.warning("call %s: destroying bridge %s failed: %s", self.session.call_id, self.bridge_id, exc)
            self.session.dispatcher.release(self.bridge_id)


async def connect_and_talk(session: CallSession, leg: Leg) -> str:
    """Bridge the caller with an answered leg until one side hangs up.

    Returns "leg_hangup" when the other side ended (the caller is still here, e.g. for a survey);
    raises CallerHangup (after hanging up the leg) when the caller ended.
    """
    bridge = await Bridge(session).create()
    try:
        await bridge.add(session.channel_id, leg.channel_id)
        try:
            await leg.wait_until_gone()
        except CallerHangup:
            await leg.hangup()
            raise
        return "leg_hangup"
    finally:
        await bridge.destroy()  # takes the caller out too (ARI): no separate remove request
