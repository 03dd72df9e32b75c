"""Calls: create a session per call, run its handler, and never leave a caller in silence.

Inbound calls arrive by StasisStart; outbound ones (click-to-dial) start with `originate()`,
which rings a phone first and makes the call a session once it answers.

The handler for inbound calls is pluggable (`inbound_handler`): the IVR plugin installs the flow
runner; without it, callers hear the default greeting and go to the dialplan's fallback route.
Whatever goes wrong inside a handler, the call ends in `finish()`, which writes its record; an
unexpected error sends the caller to the fallback route rather than hanging up on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

from controller.ari.client import AriClient, new_id
from controller.ari.dispatcher import Dispatcher
from controller.ari.errors import AriError, ChannelGone
from controller.ari.models import Bridge, Channel, ChannelDestroyed, Event, StasisStart
from controller.config import DEFAULT_NODE, Config
from controller.ids import unique_hex
from controller.ivr.port import CallerHangup
from controller.logs import mask_number
from controller.plugins.calls.bridge_pool import TalkBridgePool
from controller.plugins.calls.live_state import PARTS, LiveCallState
from controller.plugins.calls.session import CallSession, ChannelLost, Resync, synthetic
from controller.plugins.calls.state_persistor import CallRecords

log = logging.getLogger("controller.calls")

#: How long a command to a recovered channel may wait behind a prompt still playing on it.
RECOVERY_TIMEOUT = 120.0
#: Stasis arguments of channels we originate ourselves (agent and party legs, snoops, click-to-dial):
#: one that reaches `on_stasis_start` unowned was given up on, and is no inbound call.
STRAY_LEG_ARGS = ("leg", "snoop", "outbound")
#: Stasis arguments of a number dialled on a phone (dialplans/ccc-agents.conf: `outbound,${EXTEN}`, or
#: `outbound,unknown` for an internal number with no phone); the number itself is read from the
#: channel's extension (commas in it cannot split it).
PHONE_CALL_ARG = "outbound"
#: What is kept of a dialled extension (the handler refuses anything that is no valid number).
MAX_DIALLED = 40
#: How many times a recovered call is offered to the fallback route before it is hung up.
RECOVERY_ATTEMPTS = 3

#: Our bridges' id prefixes (legs.Bridge: br-<purpose>-<hex>): an empty one no live call owns is removed.
OWN_BRIDGE_PREFIX = "br-"

CallHandler = Callable[[CallSession], Awaitable[None]]
Spawn = Callable[[Coroutine[Any, Any, None]], None]
Publish = Callable[..., Any]  # EventBus.publish


@dataclass
class Resumption:
    """A stored call whose caller channel is still in Asterisk, offered to the parts' resumers.

    `parts`: the stored picture (part -> data, see live_state); `channels` / `bridges`: what Asterisk
    shows now, by id (the truth for media). `session` is the rebuilt call session: its caller channel
    is claimed; a resumer claims the other channels it takes over (`session.dispatcher.claim`): after a
    reconnect Asterisk sends no StasisStart for channels already in the application."""

    session: CallSession
    parts: dict[str, dict[str, Any]]
    channels: dict[str, Channel]
    bridges: dict[str, Bridge]
    notes: list[str] = field(default_factory=list)  # why resumers declined (logged if nobody takes it)


#: A part's resumer: the handler that goes on with the call (run as the call's task: its end writes the
#: record and `call.ended`), or None when this part does not take the call over (the next part is asked).
#: A part that only restores state (e.g. "recording") does its work and returns None.
Resumer = Callable[[Resumption], Awaitable[CallHandler | None]]
#: Called for each stored call whose caller channel is gone: close that part's records (the call's parts given);
#: returns the call's end reason when the part knows it (e.g. "caller_hangup"), else None ("lost").
Closer = Callable[[str, dict[str, dict[str, Any]]], Awaitable[str | None]]
#: After the resume: clean up what no live call owns (given Asterisk's channels and bridges by id).
Cleanup = Callable[[dict[str, Channel], dict[str, Bridge]], Awaitable[None]]


class _Originating:
    """An originated channel until it answers (it becomes a call session) or fails (`on_failed`)."""

    def __init__(self, calls: CallsService, channel_id: str, call_id: str, did: str, handler: CallHandler,
                 on_failed: Callable[[int | None], None], ari: AriClient) -> None:
        self.calls, self.channel_id, self.call_id, self.did = calls, channel_id, call_id, did
        self.handler, self.on_failed, self.ari = handler, on_failed, ari

    def deliver(self, event: Event) -> None:
        if isinstance(event, StasisStart):
            session = self.calls._new_session(event.channel, did=self.did, direction="outbound",
                                              call_id=self.call_id, ari=self.ari)
            self.calls.spawn(self.calls._run(session, self.handler))
        elif isinstance(event, ChannelDestroyed):
            self.calls.dispatcher.release(self.channel_id)
            self.on_failed(event.cause)

    def resync(self, channel: Channel | None) -> None:
        """After a reconnect, when the ring's events may have been missed: a channel that is gone
        failed; one that sits in our application answered."""
        if channel is None:
            self.calls.dispatcher.release(self.channel_id)
            self.on_failed(None)
        elif channel.stasis_app_and_args() is not None:
            self.deliver(StasisStart(type="StasisStart", timestamp="", application="", raw={}, channel=channel))


class CallsService:
    def __init__(
        self,
        *,
        config: Config,
        ari: AriClient,
        dispatcher: Dispatcher,
        records: CallRecords,
        spawn: Spawn,
        publish: Publish,
    ) -> None:
        self.config = config
        self.ari = ari  # the first node's client; a call uses its own node's (`session.ari`)
        # Several Asterisk servers (controller/nodes.py): the client of a node by name, and the client a call
        # that starts by ringing a dial string is originated on. One node: always `ari`.
        self.node_client: Callable[[str], AriClient] = lambda _node: self.ari
        self.client_for_dial: Callable[[str], AriClient] = lambda _dial: self.ari
        self.node_count = 1
        self.dispatcher = dispatcher
        self.records = records
        self.spawn = spawn
        self.publish = publish
        self.active: dict[str, CallSession] = {}
        # Idle talk bridges for connected calls (taken and given back by the ACD; reconciled at each readopt).
        self.talk_bridges = TalkBridgePool(dispatcher, spawn)
        self.inbound_handler: CallHandler = self.greeting_then_fallback
        # Numbers dialled on an agent's phone: the ACD installs its handler (agents' outbound calls).
        self.phone_call_handler: CallHandler = self.refuse_phone_call
        self.calls_started = 0
        self.recovered = 0
        # Channels the FastAGI /ivr hand-over is taking into Stasis, with their flow: the only
        # source a `flow=` Stasis argument is accepted from (a SIP request URI cannot add one).
        self.handovers: dict[str, str] = {}
        # The live-call picture (None: nothing is persisted, nothing resumed) and the parts' resumers.
        self.live: LiveCallState | None = None
        self.resumers: dict[str, Resumer] = {}
        self.closers: dict[str, Closer] = {}
        self.cleanups: list[Cleanup] = []
        self.resumed = 0
        self.node_names: list[str] = [DEFAULT_NODE]
        self.readopted_nodes: set[str] = set()  # nodes whose calls were reconciled since they (re)connected
        # Set on a graceful stop: calls are left in Asterisk for the next process (no fallback, no end record).
        self.detaching = False

    def register_resumer(self, part: str, resume: Resumer, close: Closer | None = None) -> None:
        """The capability owning `part` takes stored calls over at start and on reconnect (see `readopt`)."""
        if part not in PARTS:
            raise ValueError(f"unknown live-call part {part!r} (known: {', '.join(PARTS)})")
        self.resumers[part] = resume
        if close is not None:
            self.closers[part] = close

    def register_cleanup(self, cleanup: Cleanup) -> None:
        self.cleanups.append(cleanup)

    def save_call(self, session: CallSession) -> None:
        """Persist the "call" part (on creation, answer and each phase change)."""
        if self.live is not None and not self.detaching:
            self.live.save(session.call_id, "call", call_part(session))

    # -- new calls --------------------------------------------------------------------------------

    def on_stasis_start(self, event: StasisStart) -> None:
        """A channel we do not own yet entered our application: an inbound call."""
        args = event.args
        ari = self.node_client(event.node)
        if len(args) >= 2 and args[0] == PHONE_CALL_ARG:
            number = event.channel.dialplan_exten[:MAX_DIALLED]
            session = self._new_session(event.channel, did=number, direction="outbound", ari=ari)
            session.stasis_args = list(args)
            self.spawn(self._run(session, self.phone_call_handler))
            return
        if args and args[0] in STRAY_LEG_ARGS:
            # A leg we originated and gave up on (a ring cancelled as it was answered, an originate
            # that timed out): its StasisStart came after we released it. Not a caller: hang it up.
            log.info("stray %s channel %s entered the application: hanging it up", args[0], event.channel.id)
            self.spawn(self._hang_up_stray(ari, event.channel.id))
            return
        did = args[0] if args else event.channel.dialplan_exten
        session = self._new_session(event.channel, did=did, direction="inbound", ari=ari)
        for arg in args[1:]:
            if arg.startswith("flow="):
                session.entry_flow = self._handed_over_flow(event.channel.id, arg.removeprefix("flow="))
        self.spawn(self._run(session, self.inbound_handler))

    @contextlib.contextmanager
    def expect_handover(self, channel_id: str, flow: str) -> Iterator[None]:
        """While the FastAGI /ivr request runs `Stasis()`, this channel may name its flow."""
        self.handovers[channel_id] = flow
        try:
            yield
        finally:
            self.handovers.pop(channel_id, None)

    def _handed_over_flow(self, channel_id: str, flow: str) -> str | None:
        if channel_id and self.handovers.get(channel_id) == flow:
            return flow
        log.warning("channel %s asked for flow %r without a FastAGI hand-over: ignored, the DID's flow serves it",
                    channel_id, flow[:60])
        return None

    @staticmethod
    async def _hang_up_stray(ari: AriClient, channel_id: str) -> None:
        with contextlib.suppress(AriError):
            await ari.hangup(channel_id)

    async def originate(self, endpoint: str, *, did: str, caller_id: str | None, timeout: float,
                        handler: CallHandler, on_failed: Callable[[int | None], None],
                        call_id: str | None = None) -> str:
        """Ring `endpoint`; when it answers, the channel is a new outbound call run by `handler`.

        Returns the call id at once. `on_failed(cause)` runs if the channel never answers; an
        AriError means Asterisk refused to originate (nothing to clean up).
        """
        call_id, channel_id = call_id or unique_hex(), new_id("out")
        ari = self.client_for_dial(endpoint)  # the phone's own node: the call's channel is there
        self.dispatcher.claim(channel_id, _Originating(self, channel_id, call_id, did, handler, on_failed, ari))
        try:
            await ari.originate(channel_id, endpoint, app=self.config.ari.app, app_args="outbound",
                                     caller_id=caller_id, timeout=max(1, int(timeout)))
        except AriError:
            self.dispatcher.release(channel_id)
            raise
        return call_id

    def _new_session(self, channel: Channel, *, did: str, direction: str, ari: AriClient,
                     call_id: str | None = None) -> CallSession:
        session = CallSession(
            call_id=call_id or unique_hex(),
            channel=channel,
            did=did,
            direction=direction,
            ari=ari,
            dispatcher=self.dispatcher,
            records=self.records,
            app_name=self.config.ari.app,
            fallback_context=self.config.asterisk.fallback_context,
        )
        self.active[session.call_id] = session
        session.persist = lambda: self.save_call(session)
        self.calls_started += 1
        self.records.started(session.call_id, channel.id, direction=direction, caller=session.caller, did=did)
        log.info("call %s from %s to %s", session.call_id, mask_number(session.caller),
                 mask_number(did) if direction == "outbound" else did)  # an outbound call's did is a customer
        self.publish("call.offered", call_id=session.call_id, caller=session.caller, did=did, direction=direction)
        self.save_call(session)
        return session

    async def _run(self, session: CallSession, handler: CallHandler) -> None:
        try:
            await handler(session)
        except CallerHangup:
            pass
        except asyncio.CancelledError:
            if self.detaching:
                raise  # stopping: the call stays in Asterisk, the next process resumes it
            with contextlib.suppress(AriError):
                await session.to_fallback("controller-stopping")
            raise
        except Exception:
            log.exception("call %s: handler failed; sending the caller to the fallback route", session.call_id)
            with contextlib.suppress(AriError):
                await session.to_fallback("controller-error")
        finally:
            if self.detaching:  # stopping: left to the next process (no end of record, no call.ended)
                self.active.pop(session.call_id, None)
            else:
                await self._end(session)

    async def _end(self, session: CallSession) -> None:
        try:
            await session.finish()
        finally:  # (a failure goes on to the call's task, which logs it and ends this call only: `Controller.spawn`)
            self.active.pop(session.call_id, None)
            if self.live is not None:
                self.live.drop(session.call_id)
            self.publish("call.ended", call_id=session.call_id, reason=session.end_reason or "caller_hangup",
                         cause=session.hangup_cause, cause_txt=session.hangup_cause_txt,
                         duration=round(session.age(), 3))

    async def refuse_phone_call(self, session: CallSession) -> None:
        """The default for numbers dialled on a phone when nothing places outbound calls: refused."""
        session.end_reason = "unavailable"
        await session.hangup("congestion")

    async def greeting_then_fallback(self, session: CallSession) -> None:
        """The default when no IVR flow serves the DID: greet, then the dialplan's fallback route."""
        session.state = "ivr"
        await session.answer()
        await session.play([self.config.ivr.default_greeting])
        if self.config.ivr.no_flow == "hangup":
            await session.hangup()
        else:
            await session.to_fallback("no-flow")

    # -- after (re)connecting ---------------------------------------------------------------------

    async def readopt(self, node: str = DEFAULT_NODE) -> None:
        """Run each time a node's event stream connects: reconcile our calls on that node with what it has.

        - a call we are handling whose channel is gone hung up while we were disconnected: end it;
        - an outbound call still ringing (click-to-dial) failed if its channel is gone, answered if
          it sits in our application;
        - a call we are handling whose channel is still there gets a Resync, to re-check any wait,
          naming its legs that vanished meanwhile (they hung up while we were disconnected);
        - a call of a previous process (crash, restart, upgrade) in the live-call picture whose caller
          channel is still there is resumed (`_resume_stored`); one whose caller is gone is closed;
        - a channel sitting in our application that nobody owns then (no stored picture): a caller goes
          to the fallback route, a leg or snoop is hung up; empty bridges of ours are removed;
        - a record still open whose channel no longer exists (on any node) is closed as lost.
        """
        ari = self.node_client(node)
        channels = await ari.channels()
        existing = {channel.id for channel in channels}
        owned = self.dispatcher.ids_by_owner()
        by_id = {channel.id: channel for channel in channels}
        for owner in owned:
            if isinstance(owner, _Originating) and owner.ari is ari:
                owner.resync(by_id.get(owner.channel_id))  # click-to-dial: the agent's phone was ringing
        for session in list(self.active.values()):
            if session.ari is not ari:
                continue  # another node's call
            if session.channel_id in existing:
                vanished = frozenset(i for i in owned.get(session, ()) if i not in existing)
                session.deliver(Resync(type="Resync", timestamp="", application="", raw={}, vanished=vanished))
            else:
                session.deliver(synthetic(ChannelLost))
        bridges = {bridge.id: bridge for bridge in await ari.bridges()}
        resumed: set[str] = set()
        try:
            resumed = await self._resume_stored(ari, by_id, bridges)
        except Exception:  # e.g. the store cannot be read: the callers left in Stasis get the fallback below
            log.exception("the stored calls could not be resumed")
        orphans = []
        for channel in channels:
            app_and_args = channel.stasis_app_and_args()
            if app_and_args is None or app_and_args[0] != self.config.ari.app:
                continue
            # (a resumed caller's task may have ended already: its channel is no orphan)
            if channel.id not in resumed and self.dispatcher.owner_of(channel.id) is None:
                orphans.append(self._recover(ari, channel, app_and_args[1]))
        await asyncio.gather(*orphans)
        self.readopted_nodes.add(node)
        await self._clean_up(ari, by_id, bridges)
        if self.node_count > 1:
            everywhere = await self._channels_on_every_node()
            if everywhere is None:
                return  # a node does not answer: its calls' records stay open until it is back
            existing = everywhere
        for row in await self.records.open_calls():
            if row["channel_id"] not in existing and row["call_id"] not in self.active:
                self.records.ended(row["call_id"], reason="lost")

    async def _channels_on_every_node(self) -> set[str] | None:
        """The channel ids every node has now; None when one of them does not answer."""
        existing: set[str] = set()
        for node in self.node_names:
            try:
                existing.update(channel.id for channel in await self.node_client(node).channels())
            except AriError:
                return None
        return existing

    async def _resume_stored(self, ari: AriClient, channels: dict[str, Channel],
                             bridges: dict[str, Bridge]) -> set[str]:
        """Take over the stored calls of this node nobody in this process handles (all of them after a start);
        returns their caller channels."""
        if self.live is None:
            return set()
        stored = await self.live.load_all()
        resumes = []
        taken: set[str] = set()
        for call_id, parts in stored.items():
            if call_id in self.active or self.node_client(stored_node(parts)) is not ari:
                continue
            call = parts.get("call")
            channel = channels.get(str(call.get("channel_id"))) if call else None
            if call is None or channel is None:
                resumes.append(self._close_stored(call_id, parts))
            elif channel.stasis_app_and_args() is None:
                # Out of our application: the guard sent the caller to the fallback route while no
                # controller ran (guard.takeover_timeout); the dialplan has the call now.
                resumes.append(self._close_stored(call_id, parts, "fallback"))
            else:
                taken.add(channel.id)
                resumes.append(self._resume_call(ari, call_id, parts, call, channel, channels, bridges))
        await asyncio.gather(*resumes)
        return taken

    async def _resume_call(self, ari: AriClient, call_id: str, parts: dict[str, dict[str, Any]],
                           call: dict[str, Any], channel: Channel, channels: dict[str, Channel],
                           bridges: dict[str, Bridge]) -> None:
        session = self._resumed_session(ari, call_id, call, channel)
        resumption = Resumption(session, parts, channels, bridges)
        handler: CallHandler | None = None
        for part in PARTS[1:]:
            resume = self.resumers.get(part)
            if resume is None or part not in parts:
                continue
            try:
                handler = await resume(resumption)
            except Exception as exc:
                log.exception("call %s: resuming its %s part failed", call_id, part)
                resumption.notes.append(f"{part}: {type(exc).__name__}")
                handler = None
            if handler is not None:
                break
        if handler is None:
            reason = "; ".join(resumption.notes) or f"no resumer for parts {sorted(parts)}"
            session.records.event(call_id, "recovered", resumed=False, reason=reason)
            call_bridges = [b.id for b in bridges.values() if b.raw.get("name") == call_id]
            if session.direction == "outbound":
                # An agent's own call (its channel is the agent's phone): no fallback route for it.
                log.warning("outbound call %s cannot be resumed (%s): hanging it up", call_id, reason)
                handler = self._hang_up_handler(ari, call_bridges)
            else:
                log.warning("call %s cannot be resumed (%s): sending it to the fallback route", call_id, reason)
                handler = self._fallback_handler(ari, "resume-failed", call_bridges)
        else:
            self.resumed += 1
            session.records.event(call_id, "resumed_by_new_process", parts=sorted(parts))
            log.info("call %s resumed (%s)", call_id, ", ".join(sorted(parts)))
        self.spawn(self._run(session, handler))

    def _resumed_session(self, ari: AriClient, call_id: str, call: dict[str, Any], channel: Channel) -> CallSession:
        """The session of a stored call, as it was: same call id, caller channel claimed (no new record)."""
        session = CallSession(
            call_id=call_id, channel=channel, did=str(call.get("did", "")),
            direction=str(call.get("direction", "inbound")), ari=ari, dispatcher=self.dispatcher,
            records=self.records, app_name=self.config.ari.app,
            fallback_context=self.config.asterisk.fallback_context)
        session.answered = bool(call.get("answered"))
        session.state = str(call.get("phase") or session.state)
        session.data = dict(call.get("data") or {})
        session.recording_policy = str(call.get("recording_policy") or session.recording_policy)
        started_at = call.get("started_at")
        if isinstance(started_at, int | float):  # age() spans the restart
            session.started_monotonic -= max(0.0, time.time() - started_at)
        self.active[call_id] = session
        session.persist = lambda: self.save_call(session)
        return session

    def _fallback_handler(self, ari: AriClient, why: str, bridge_ids: list[str]) -> CallHandler:
        """Send the caller to the fallback route, then remove the call's bridges (named after the call)."""
        async def fallback(session: CallSession) -> None:
            try:
                await session.to_fallback(why)
            finally:
                await self._destroy_bridges(ari, bridge_ids)
        return fallback

    def _hang_up_handler(self, ari: AriClient, bridge_ids: list[str]) -> CallHandler:
        async def hang_up(session: CallSession) -> None:
            session.end_reason = "lost"
            try:
                await session.hangup()
            finally:
                await self._destroy_bridges(ari, bridge_ids)
        return hang_up

    @staticmethod
    async def _destroy_bridges(ari: AriClient, bridge_ids: list[str]) -> None:
        for bridge_id in bridge_ids:
            with contextlib.suppress(AriError):
                await ari.destroy_bridge(bridge_id)

    async def _close_stored(self, call_id: str, parts: dict[str, dict[str, Any]], known: str | None = None) -> None:
        """A stored call whose caller is gone (hung up while no process was there) or was sent to the fallback
        route by the guard (`known`): close its parts' records (each owner's closer), then the call's (lost,
        unless that is known better); forget it."""
        reason = known
        for part, close in self.closers.items():
            if part in parts:
                try:
                    closed = await close(call_id, parts)  # every part is closed, whatever is known already
                    reason = reason or closed
                except Exception:
                    log.exception("call %s: closing its %s part failed", call_id, part)
        reason = reason or "lost"
        log.info("call %s ended while no controller was running: %s", call_id, reason)
        self.records.ended(call_id, reason=reason)
        if self.live is not None:
            self.live.drop(call_id)
        self.publish("call.ended", call_id=call_id, reason=reason, cause=None, cause_txt=None, duration=None)

    async def _clean_up(self, ari: AriClient, channels: dict[str, Channel], bridges: dict[str, Bridge]) -> None:
        """What belongs to no live call: empty bridges of ours nobody claimed, then the plugins' hooks."""
        with contextlib.suppress(AriError):  # again: callers sent to the fallback route meanwhile left theirs
            bridges = {bridge.id: bridge for bridge in await ari.bridges()}
        self.talk_bridges.reconcile(ari, bridges)  # (claims the idle ones it keeps and the ones it drains)
        for bridge in bridges.values():
            if bridge.id.startswith(OWN_BRIDGE_PREFIX) and not bridge.channels \
                    and self.dispatcher.owner_of(bridge.id) is None:
                with contextlib.suppress(AriError):
                    await ari.destroy_bridge(bridge.id)
                    log.info("removed empty bridge %s left by a previous process", bridge.id)
        for cleanup in self.cleanups:
            try:
                await cleanup(channels, bridges)
            except Exception:
                log.exception("a clean-up after the resume failed")

    async def _recover(self, ari: AriClient, channel: Channel, args: list[str]) -> None:
        self.recovered += 1
        record = await self.records.by_channel(channel.id)
        did = args[0] if args else channel.dialplan_exten
        if not did.isdigit():
            # Not a caller (an agent leg or helper channel of the previous process): clean it up.
            with contextlib.suppress(ChannelGone):
                await ari.hangup(channel.id)
            return
        call_id = record["call_id"] if record else unique_hex()
        if record is None:
            self.records.started(call_id, channel.id, direction="inbound", caller=channel.caller_number, did=did)
        log.warning("call %s left in Stasis by a previous controller: sending it to the fallback route", call_id)
        self.records.event(call_id, "recovered")
        # Asterisk runs channel commands after a playback the previous process started on the
        # channel has finished, so these may take as long as that prompt: wait for them.
        for attempt in range(1, RECOVERY_ATTEMPTS + 1):
            try:
                await ari.set_var(channel.id, "CCC_FALLBACK", "recovered", timeout=RECOVERY_TIMEOUT)
                await ari.continue_in_dialplan(channel.id, context=self.config.asterisk.fallback_context,
                                                    extension=did, priority=1, timeout=RECOVERY_TIMEOUT)
                self.records.ended(call_id, reason="fallback")
                return
            except ChannelGone:
                self.records.ended(call_id, reason="lost")
                return
            except AriError as exc:
                log.warning("call %s: fallback attempt %d of %d failed: %s", call_id, attempt, RECOVERY_ATTEMPTS,
                            exc)
                await asyncio.sleep(attempt)
        # Never leave the caller in silence in an application that cannot serve them.
        log.error("call %s could not be sent to the fallback route: hanging it up", call_id)
        with contextlib.suppress(AriError):
            await ari.hangup(channel.id)
        self.records.ended(call_id, reason="lost")

    # -- status -----------------------------------------------------------------------------------

    def counts_by_state(self) -> dict[str, int]:
        return dict(Counter(session.state for session in self.active.values()))

    def node_lost(self, node: str) -> None:
        """Node `node` is down: its calls are gone with it (ended as `node_down`; other nodes' calls go on)."""
        for session in list(self.active.values()):
            if session.ari.node == node and not session.caller_gone:
                session.end_reason = "node_down"
                session.deliver(synthetic(ChannelLost))
        self.readopted_nodes.discard(node)

    def counts_by_node(self) -> dict[str, int]:
        return dict(Counter(session.ari.node for session in self.active.values()))

    def detach(self) -> None:
        """On a graceful stop: leave every call in Asterisk as it is, for the next process to resume."""
        self.detaching = True


def stored_node(parts: dict[str, dict[str, Any]]) -> str:
    """The node a stored call is on (pictures written before nodes existed: the first node)."""
    return str(parts.get("call", {}).get("node") or DEFAULT_NODE)


def call_part(session: CallSession) -> dict[str, Any]:
    """The "call" part of the live-call picture."""
    return {"channel_id": session.channel_id, "node": session.ari.node, "direction": session.direction,
            "did": session.did,
            # (to the ms: computed again at each save, it would differ by µs and make an unchanged part a change)
            "started_at": round(time.time() - session.age(), 3), "answered": session.answered, "phase": session.state,
            "data": session.data, "recording_policy": session.recording_policy}
