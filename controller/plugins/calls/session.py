"""One call under the controller's control.

A `CallSession` owns the caller's channel (and later the agent legs and bridges it creates). It
receives its ARI events in order through its inbox and offers the telephony primitives the IVR
and the ACD are written with: wait for an event, play with or without barge-in, hang up, hand the
call back to the dialplan. Every wait raises `CallerHangup` as soon as the caller has gone, so
callers of these primitives never wait on a dead channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from controller.ari.client import AriClient, new_id
from controller.ari.dispatcher import Dispatcher, Inbox
from controller.ari.errors import AriDetached, AriError, AriNotFound, AriUnavailable, ChannelGone
from controller.ari.models import (
    Channel,
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelHangupRequest,
    Event,
    PlaybackFinished,
    StasisEnd,
)
from controller.hooks import nothing
from controller.ivr.port import CallerHangup
from controller.logs import mask_number
from controller.plugins.calls.state_persistor import CallRecords

log = logging.getLogger("controller.calls")

#: The ITU-T Q.850 causes a call center sees most (ARI reports the number).
Q850_CAUSES = {
    1: "Unallocated number", 16: "Normal Clearing", 17: "User busy", 18: "No user responding",
    19: "No answer", 21: "Call rejected", 26: "Answered elsewhere", 27: "Destination out of order",
    28: "Invalid number format", 31: "Normal, unspecified", 34: "No circuit available",
    38: "Network out of order", 41: "Temporary failure", 127: "Interworking, unspecified",
}

#: Seconds a call's end waits for its channel's StasisEnd after hanging it up (then the record is closed anyway).
STASIS_END_WAIT = 2.0
#: Seconds between the tries to hang up a call's caller at its end while ARI does not answer.
HANGUP_RETRY_DELAYS = (1.0, 2.0, 4.0)
#: Q.850 causes of a dialled phone that did not answer, as the outcomes callbacks and campaigns retry on.
DIAL_OUTCOME_BY_CAUSE = {17: "busy", 18: "no_answer", 19: "no_answer", 21: "rejected"}
#: The Q.850 cause Asterisk gives a channel hung up by ARI with each `reason` (channels.hangup).
HANGUP_REASON_CAUSES = {
    "normal": 16, "busy": 17, "no_answer": 19, "rejected": 21, "answered_elsewhere": 26, "number_incomplete": 28,
    "normal_unspecified": 31, "congestion": 34, "failure": 38, "unallocated": 1, "codec_mismatch": 58,
    "interworking": 127,
}


@dataclass(slots=True)
class Resync(Event):
    """Synthetic: the event stream reconnected; events may have been missed, re-check state.

    `vanished`: the ids this call owns (its legs, snoops; bridges too) that are no live channel any
    more: legs that hung up while we were disconnected count as ended."""

    vanished: frozenset[str] = frozenset()


@dataclass(slots=True)
class Command(Event):
    """Synthetic: a request for the call's task (e.g. an agent's command from the API). A wait that
    is not for it keeps it for the next wait that is (see `wait_for`), instead of dropping it."""


@dataclass(slots=True)
class ChannelLost(Event):
    """Synthetic: after a reconnect the caller's channel no longer exists (hung up meanwhile)."""


#: The events `CallSession._observe` books; the others (most of a call's) pass it with one isinstance.
_OBSERVED = (Resync, ChannelHangupRequest, StasisEnd, ChannelDestroyed, ChannelDtmfReceived, ChannelLost)


def q850_text(cause: int) -> str:
    return Q850_CAUSES.get(cause, f"cause {cause}")


def synthetic(cls: type[Event]) -> Event:
    return cls(type=cls.__name__, timestamp="", application="", raw={})


class CallSession:
    def __init__(
        self,
        *,
        call_id: str,
        channel: Channel,
        did: str,
        direction: str,
        ari: AriClient,
        dispatcher: Dispatcher,
        records: CallRecords,
        app_name: str,
        fallback_context: str,
    ) -> None:
        self.call_id = call_id
        self.channel_id = channel.id
        self.channel_name = channel.name  # e.g. PJSIP/8001-0000002a: the phone of a call dialled on one
        self.caller = channel.caller_number
        self.caller_name = channel.caller_name
        self.did = did
        self.direction = direction
        self.language = channel.language or "zh"
        self.ari = ari
        self.dispatcher = dispatcher
        self.records = records
        self.app_name = app_name
        self.fallback_context = fallback_context
        self.inbox = Inbox()
        # The dispatcher hands each event of the call straight to the inbox (no method of ours in between).
        self.deliver: Callable[[Event], None] = self.inbox.deliver
        self.dtmf: list[str] = []  # digits pressed and not consumed yet (type-ahead)
        self._commands: list[Command] = []  # commands that came while the call waited for something else
        self.data: dict[str, Any] = {}  # call data: what the IVR collected, tier, region…
        self.entry_flow: str | None = None  # the flow asked for by the dialplan (AGI hand-over: flow=ID)
        self.stasis_args: list[str] = []  # of a number dialled on a phone: outbound,<EXTEN or "unknown">
        self.recording_policy = "on_demand"  # the flow's (always | never | on_demand)
        # call.overflowed waiting for the flow to take the caller somewhere (its target): see IvrService.
        self.pending_overflow: dict[str, Any] | None = None
        # The caller's recent calls for the screen pop, read while the IVR runs (`AcdQueueing.read_history_ahead`).
        self.caller_history: asyncio.Future[list[dict[str, Any]]] | None = None
        # new, ivr, queued, talking, held, survey, voicemail, callback, dialing, ended (status/CTI)
        self.state = "new"
        self.answered = False
        # Answered before it entered our application (ccc-inbound's Answer()): `answer()` asks Asterisk nothing.
        self.up_on_arrival = channel.state == "Up"
        self.hangup_requested = False
        self.left_stasis = False
        self.destroyed = False
        self.lost = False
        self.handed_off = False  # sent on to the dialplan (fallback): no longer ours to hang up
        self.hung_up_by_us = False
        self.current_playback: str | None = None
        self.caller_bridge: str | None = None  # the bridge the caller's channel is in (legs.Bridge)
        self.music_class = ""  # the caller's CHANNEL(musicclass) as we set it ("": never set, Asterisk's "default")
        # Other channels of the call (agent legs…) seen hanging up, whoever was waiting at the time:
        # a leg that hangs up while the caller hears a prompt must not be waited for afterwards.
        self.ended_channels: set[str] = set()
        # What the call's other channels are when their id does not say it ("leg-agent-…" does): the agent's
        # phone of an outbound call once the customer's channel is the call's own (`take_channel`).
        self.leg_names: dict[str, str] = {}
        # Run when the call ends, before its record is closed (e.g. complete the recording's index row).
        self.on_finish: list[Callable[[], Awaitable[object]]] = []
        # Saves the call's part of the live-call picture (CallsService.save_call) after a change.
        self.persist: Callable[[], None] = nothing
        self.started_monotonic = time.monotonic()
        self.hangup_cause: int | None = None
        self.hangup_cause_txt: str | None = None
        self.end_reason: str | None = None
        dispatcher.claim(channel.id, self)

    def __repr__(self) -> str:
        return f"<CallSession {self.call_id} caller={mask_number(self.caller)} did={self.did}>"

    def age(self) -> float:
        """Seconds since the call reached the controller."""
        return time.monotonic() - self.started_monotonic

    # -- events -----------------------------------------------------------------------------------

    @property
    def caller_gone(self) -> bool:
        """True once the caller is no longer ours: hung up, lost, or handed to the dialplan."""
        return self.hangup_requested or self.left_stasis or self.destroyed or self.lost or self.handed_off

    def _observe(self, event: Event) -> None:
        """Book-keeping every event of this call goes through, whoever waits for it."""
        if not isinstance(event, _OBSERVED):  # a playback's end, a dial's progress, a command: one test
            return
        if isinstance(event, Resync):
            self.ended_channels.update(event.vanished - {self.channel_id})
            return
        if isinstance(event, ChannelHangupRequest | StasisEnd | ChannelDestroyed) \
                and event.channel.id != self.channel_id:
            if isinstance(event, ChannelHangupRequest) and event.channel.id not in self.ended_channels:
                self._leg_hung_up(event)
            self.ended_channels.add(event.channel.id)
            return
        if isinstance(event, ChannelDtmfReceived):
            if event.channel.id == self.channel_id:
                # Never stored one by one: keys may be a PIN or a card number (the IVR records
                # what a menu or collect node took, masked when the node is sensitive).
                self.dtmf.append(event.digit)
        elif isinstance(event, ChannelHangupRequest):
            if event.channel.id == self.channel_id and not self.hangup_requested:
                self.hangup_requested = True
                # A remote BYE may come without a cause: that is a normal clearing (Q.850 cause 16).
                # Our own DELETE comes back as a soft request (cause 0 here): its cause is the one we
                # sent (`hangup`), or ChannelDestroyed's when that comes.
                self.hangup_cause = event.cause or self.hangup_cause or 16
                self.hangup_cause_txt = q850_text(self.hangup_cause)
        elif isinstance(event, StasisEnd):
            if event.channel.id == self.channel_id:
                self.left_stasis = True
        elif isinstance(event, ChannelDestroyed):
            if event.channel.id == self.channel_id:
                self.destroyed = True
                if event.cause:  # the channel's own hang-up cause, whoever ended it
                    self.hangup_cause = event.cause
                    self.hangup_cause_txt = event.cause_txt or q850_text(event.cause)
        elif isinstance(event, ChannelLost):
            self.lost = True

    def _leg_hung_up(self, event: ChannelHangupRequest) -> None:
        """The other side's end on the record: which leg (agent, customer, transfer…), its Q.850 cause
        when it hung up itself, or that the controller ended it (a soft request carries no cause)."""
        leg = self.leg_names.get(event.channel.id) \
            or event.channel.id.rpartition("-")[0].removeprefix("leg-")  # "leg-agent-3f2a…" -> "agent"
        if event.soft:
            self.records.event(self.call_id, "leg_ended", leg=leg, by="controller")
        else:
            cause = event.cause or 16  # a BYE without a cause: normal clearing
            self.records.event(self.call_id, "leg_ended", leg=leg, by="far_end", cause=cause,
                               cause_txt=q850_text(cause))

    def take_channel(self, channel_id: str, *, caller: str, previous_as: str) -> str:
        """The call goes on with `channel_id`, one of its answered legs, as its own channel; the channel it had
        so far becomes a leg (named `previous_as` in the records). Returns that channel's id.

        An agent's own outbound call starts on the agent's phone; once the customer answers, the customer is
        the call's channel as the caller of an inbound call is: the one held, recorded, transferred, whose
        hang-up ends the call, while the agent may leave it (a transfer) as from an inbound call."""
        previous, self.channel_id, self.caller = self.channel_id, channel_id, caller
        self.leg_names[previous] = previous_as
        if channel_id in self.ended_channels:  # it hung up just now: the call is over
            self.hangup_requested = True
        self.persist()
        return previous

    async def next_event(self, timeout: float | None = None) -> Event | None:
        event = await self.inbox.get(timeout)
        if event is not None:
            self._observe(event)
        return event

    async def wait_for(self, match: Callable[[Event], bool], timeout: float | None) -> Event | None:
        """The next event that `match`es, or None after `timeout` s; CallerHangup once the caller is gone.

        Other events are dropped, except `Command`s: those wait (in order) for a wait that wants them."""
        if self.caller_gone:
            raise CallerHangup()
        for kept in self._commands:
            if match(kept):
                self._commands.remove(kept)
                return kept
        inbox = self.inbox
        # The running loop as the inbox knows it (on Python 3.11 each lookup is a getpid()).
        loop_time = None if timeout is None else inbox.loop().time
        deadline = None if loop_time is None or timeout is None else loop_time() + timeout
        while True:  # the caller is here: checked above, then after each event (nothing else runs in between)
            remaining = None if loop_time is None or deadline is None else deadline - loop_time()
            if remaining is not None and remaining <= 0:
                return None
            event = await inbox.get(remaining)  # next_event's work, written out: this runs for every event
            if event is None:
                return None
            self._observe(event)
            if self.caller_gone:
                raise CallerHangup()
            if match(event):
                return event
            if isinstance(event, Command):
                self._commands.append(event)

    # -- primitives -------------------------------------------------------------------------------

    async def answer(self) -> None:
        if self.answered:
            return
        if not self.up_on_arrival:
            try:
                await self.ari.answer(self.channel_id)
            except ChannelGone as exc:
                raise CallerHangup() from exc
        self.answered = True
        self.records.answered(self.call_id)
        self.persist()

    async def play(self, media: Sequence[str], *, barge_in: bool = False, timeout: float = 900) -> str | None:
        """Play media URIs in order. With barge-in, a key stops it and is returned (and consumed)."""
        if barge_in and self.dtmf:
            return self.dtmf.pop(0)  # a key pressed ahead of the prompt answers it at once
        if not media:
            return None
        playback_id = new_id("pb")
        try:
            await self.ari.play(self.channel_id, media, playback_id, lang=self.language)
        except ChannelGone as exc:
            raise CallerHangup() from exc
        self.current_playback = playback_id
        try:
            return await self._wait_for_playback(playback_id, media, barge_in, timeout)
        finally:
            self.current_playback = None

    async def _wait_for_playback(
        self, playback_id: str, media: Sequence[str], barge_in: bool, timeout: float
    ) -> str | None:

        def match(event: Event) -> bool:
            if isinstance(event, PlaybackFinished):
                return event.playback.id == playback_id
            return isinstance(event, Resync) or (barge_in and isinstance(event, ChannelDtmfReceived))

        while True:
            try:
                event = await self.wait_for(match, timeout)
            except CallerHangup:
                self.records.event(self.call_id, "playback", media=list(media), state="caller_hangup")
                raise
            if isinstance(event, Resync):
                if await self._playback_exists(playback_id):
                    continue
                event = None  # it ended while we were disconnected
            if isinstance(event, PlaybackFinished):
                self.records.event(self.call_id, "playback", media=list(media), state=event.playback.state)
                if not barge_in:
                    self.dtmf.clear()  # keys pressed during a prompt that cannot be interrupted do not count
                return None
            with contextlib.suppress(AriError):
                await self.ari.stop_playback(playback_id)
            if event is None:
                self.records.event(self.call_id, "playback", media=list(media), state="timeout")
                return None
            self.records.event(self.call_id, "playback", media=list(media), state="interrupted")
            return self.dtmf.pop(0) if self.dtmf else None

    async def _playback_exists(self, playback_id: str) -> bool:
        try:
            await self.ari.request("playbacks.get", {"playbackId": playback_id})
        except AriNotFound:
            return False
        except AriError:
            return True
        return True

    async def wait_for_hangup(self, timeout: float | None = None) -> None:
        with contextlib.suppress(CallerHangup):
            await self.wait_for(lambda event: False, timeout)

    async def hangup(self, reason: str = "normal") -> None:
        if self.caller_gone or self.hung_up_by_us:
            return
        self.end_reason = self.end_reason or "controller_hangup"
        cause = HANGUP_REASON_CAUSES.get(reason)
        with contextlib.suppress(ChannelGone):
            await self.ari.hangup(self.channel_id, reason)
            if cause is not None and self.hangup_cause is None:
                self.hangup_cause, self.hangup_cause_txt = cause, q850_text(cause)  # what our BYE carries
        self.hung_up_by_us = True  # one DELETE per call (a failed one is tried again at finish)

    async def _hang_up_at_end(self) -> None:
        """Hang the caller up as the call ends, retried while Asterisk does not answer (an overloaded Asterisk
        times ARI requests out): a call that ends must not stay in Stasis, nor may its failure end others."""
        for delay in (*HANGUP_RETRY_DELAYS, None):
            try:
                await self.hangup()
                return
            except AriUnavailable as exc:
                if isinstance(exc, AriDetached) or delay is None:
                    log.warning("call %s: the caller's channel could not be hung up: %s", self.call_id, exc)
                    return
                await asyncio.sleep(delay)
            except AriError as exc:  # refused (not a timeout): trying again would get the same answer
                log.warning("call %s: the caller's channel could not be hung up: %s", self.call_id, exc)
                return

    async def to_fallback(self, why: str) -> None:
        """Hand the caller back to the dialplan's fallback route (agents ring, then voicemail)."""
        if self.caller_gone:
            return
        self.records.event(self.call_id, "fallback", why=why)
        # Channel commands wait behind a running playback: stop ours first.
        if self.current_playback:
            with contextlib.suppress(AriError):
                await self.ari.stop_playback(self.current_playback)
        await self.to_dialplan(self.fallback_context, {"CCC_FALLBACK": why}, end_reason="fallback")

    async def to_dialplan(self, context: str, variables: dict[str, str], *, end_reason: str) -> None:
        """Hand the caller to a dialplan context (at the DID, priority 1) with these channel variables set."""
        try:
            for name, value in variables.items():
                await self.ari.set_var(self.channel_id, name, value)
            await self.ari.continue_in_dialplan(self.channel_id, context=context, extension=self.did or "s",
                                                priority=1)
        except ChannelGone:
            return
        self.end_reason = end_reason
        self.handed_off = True

    # -- end of call ------------------------------------------------------------------------------

    async def finish(self) -> None:
        """Close the call: make sure the channel is not left behind, then write the end of the record."""
        try:
            for hook in self.on_finish:
                try:
                    await hook()
                except Exception:  # one failing hook must not keep the call's record open
                    log.exception("call %s: end-of-call hook failed", self.call_id)
            if not self.caller_gone:
                await self._hang_up_at_end()
            if not (self.left_stasis or self.destroyed or self.lost or self.handed_off):
                # Wait for StasisEnd: the last event of the channel we receive, once it is really gone
                # (ChannelDestroyed, with the channel's cause, comes only when it hangs up in Stasis).
                # (A deadline and the inbox's own timer, not an asyncio.timeout context: this runs for most calls.)
                loop_time = self.inbox.loop().time
                deadline = loop_time() + STASIS_END_WAIT
                while not (self.left_stasis or self.destroyed or self.lost):
                    remaining = deadline - loop_time()
                    if remaining <= 0 or await self.next_event(remaining) is None:
                        break
        finally:
            self.state = "ended"
            # The hooks are closures over this session (CallsService's persist, a resumed visit's end hook): a
            # reference cycle per call that only the garbage collector's middle passes freed, hundreds of calls at
            # once in one stall of the event loop (README "Benchmarks", third round, fourth session).
            self.persist = nothing
            self.on_finish.clear()
            reason = self.end_reason or ("lost" if self.lost else "caller_hangup")
            self.records.finished(self.call_id, self.data, reason=reason, cause=self.hangup_cause,
                                  cause_txt=self.hangup_cause_txt)
            self.dispatcher.release(self.channel_id)
            log.info("call %s ended: %s (cause %s)", self.call_id, reason, self.hangup_cause)
