"""The ACD's telephony side against a fake ARI: orders of events that real calls produce rarely,
each of which once left a caller in silence, a channel behind or an agent stuck.

The fake keeps channels and bridges the way Asterisk does (a channel is in at most one bridge;
operations on a channel that is gone fail), and the test delivers events through the real
dispatcher, so the service, the queue call, its legs and the call session run as in production.
The end-to-end tests (tests/e2e) cover the same features on the real Asterisk.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import time
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from controller.acd.engine import UnsavedChanges
from controller.ari.dispatcher import Dispatcher
from controller.ari.errors import AriConflict, AriNotFound, ChannelGone
from controller.ari.models import (
    Channel,
    ChannelDtmfReceived,
    ChannelHangupRequest,
    Event,
    Playback,
    PlaybackFinished,
    StasisStart,
)
from controller.clock import FakeClock, SystemClock
from controller.collector import RINGING
from controller.config import AcdAgentConfig, AcdQueueConfig, AcdSettings, Config, IvrSettings
from controller.ivr.port import CallerHangup, Prompt, QueueOutcome, QueueRequest
from controller.plugins.acd.services import AcdService, next_day, start_of_day
from controller.plugins.acd.state_persistor import AcdRecords
from controller.plugins.calls.live_state import LiveCallState
from controller.plugins.calls.services import CallsService
from controller.plugins.calls.session import CallSession, Resync
from controller.plugins.ivr.services import IvrService
from controller.store.db import Store, StoreUnavailable

CALLER = "caller"


def channel(channel_id: str) -> Channel:
    return Channel(channel_id, channel_id, "Up", "13900000000", "", "", "", "", "", "zh", "", {})


def channel_event(cls: type[Event], channel_id: str, **fields: Any) -> Event:
    return cls(cls.__name__, "", "", {}, channel=channel(channel_id), **fields)  # type: ignore[call-arg]


class Records:
    """Call and ACD records: swallowed (the store has tests of its own)."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None

    async def history(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []

    async def open_calls(self) -> list[Any]:
        return []


class FakeAri:
    node = "default"

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.created: list[str] = []  # bridges asked to be created, in order
        self.moh: dict[str, str | None] = {}  # bridge id -> music on hold class playing (its announcer)
        self.variables: dict[str, dict[str, str]] = {}  # channel id -> variables set through ARI
        self.slow_create: asyncio.Event | None = None  # when set: creating a bridge waits for it
        self.channels = {CALLER}
        self.bridges: dict[str, set[str]] = {}
        self.originated: list[tuple[str, str]] = []  # (channel id, endpoint)
        self.playing: dict[str, str] = {}  # playback id -> channel id
        self.auto_finish = True
        self.snooping: set[str] = set()  # snoop channels created, their StasisStart not sent yet
        self.slow_destroy: asyncio.Event | None = None  # when set: destroying a bridge waits for it
        self.slow_add: asyncio.Event | None = None  # when set: addChannel waits for it (the channel's thread is busy)
        self.leaving: set[str] = set()  # channels of a destroyed bridge that have not departed yet
        self.never_started: list[str] = []  # playbacks asked for on a channel still leaving a bridge

    async def answer(self, channel_id: str) -> None:
        pass

    async def play(self, channel_id: str, media: Any, playback_id: str, lang: str | None = None) -> None:
        if channel_id not in self.channels:
            raise ChannelGone("POST", "/channels", 404, "gone")
        if channel_id in self.leaving:  # as Asterisk: handed to the bridge it leaves, it never starts
            self.never_started.append(playback_id)
            return
        self.playing[playback_id] = channel_id
        if self.auto_finish:
            asyncio.get_running_loop().call_soon(self.finish, playback_id)

    def finish(self, playback_id: str) -> None:
        channel_id = self.playing.pop(playback_id, None)
        if channel_id is not None:
            self.dispatcher.dispatch(PlaybackFinished("PlaybackFinished", "", "", {}, playback=Playback(
                playback_id, "", f"channel:{channel_id}", "done")))

    async def stop_playback(self, playback_id: str) -> None:
        self.finish(playback_id)

    async def originate(self, channel_id: str, endpoint: str, **kwargs: Any) -> None:
        self.originated.append((channel_id, endpoint))
        self.channels.add(channel_id)

    async def snoop(self, channel_id: str, snoop_id: str, **kwargs: Any) -> None:
        """As Asterisk: the snoop channel exists when this answers; it enters Stasis a little later."""
        self.channels.add(snoop_id)
        self.snooping.add(snoop_id)

    def snoop_in_stasis(self, snoop_id: str) -> None:
        self.snooping.discard(snoop_id)
        self.dispatcher.dispatch(channel_event(StasisStart, snoop_id, args=["snoop"]))

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        if channel_id not in self.channels:
            raise ChannelGone("DELETE", "/channels", 404, "gone")
        self.vanish(channel_id)
        self.dispatcher.dispatch(channel_event(ChannelHangupRequest, channel_id))

    def vanish(self, channel_id: str) -> None:
        self.channels.discard(channel_id)
        for members in self.bridges.values():
            members.discard(channel_id)

    def _left(self, channel_ids: set[str]) -> None:
        """As Asterisk after DELETE /bridges/{id}: answered at once, the channels depart a moment later."""
        self.leaving.update(channel_ids)
        asyncio.get_running_loop().call_soon(self.leaving.difference_update, channel_ids)

    async def create_bridge(self, bridge_id: str, kind: str, name: str = "") -> None:
        if self.slow_create is not None:
            await self.slow_create.wait()
        self.created.append(bridge_id)
        if bridge_id in self.bridges:
            raise AriConflict("POST", f"/bridges/{bridge_id}", 409, f"Bridge with id '{bridge_id}' already exists")
        self.bridges[bridge_id] = set()

    async def add_to_bridge(self, bridge_id: str, channel_ids: list[str], role: str | None = None) -> None:
        if self.slow_add is not None:
            await self.slow_add.wait()
        if bridge_id not in self.bridges:
            raise AriNotFound("POST", f"/bridges/{bridge_id}/addChannel", 404, "Bridge not found")
        if any(c not in self.channels for c in channel_ids):
            raise ChannelGone("POST", "/bridges", 422, "Channel not found")
        if self.snooping.intersection(channel_ids):
            raise ChannelGone("POST", "/bridges", 422, "Channel not in Stasis application")
        for members in self.bridges.values():
            members.difference_update(channel_ids)
        self.bridges[bridge_id].update(channel_ids)

    async def remove_from_bridge(self, bridge_id: str, channel_id: str) -> None:
        if channel_id not in self.bridges.get(bridge_id, set()):
            raise AriNotFound("POST", "/bridges", 422, "not in bridge")
        self.bridges[bridge_id].discard(channel_id)  # removeChannel answers once the channel is out

    async def destroy_bridge(self, bridge_id: str) -> None:
        if self.slow_destroy is not None:
            await self.slow_destroy.wait()
        self._left(self.bridges.pop(bridge_id, set()))
        self.moh.pop(bridge_id, None)

    async def bridge_start_moh(self, bridge_id: str, moh_class: str | None = None) -> None:
        if bridge_id not in self.bridges:
            raise AriNotFound("POST", f"/bridges/{bridge_id}/moh", 404, "Bridge not found")
        self.moh[bridge_id] = moh_class

    async def bridge_stop_moh(self, bridge_id: str) -> None:
        if bridge_id not in self.bridges:
            raise AriNotFound("DELETE", f"/bridges/{bridge_id}/moh", 404, "Bridge not found")
        self.moh.pop(bridge_id, None)

    async def set_var(self, channel_id: str, variable: str, value: str, *, timeout: float | None = None) -> None:
        if channel_id not in self.channels:
            raise ChannelGone("POST", f"/channels/{channel_id}/variable", 404, "Channel not found")
        self.variables.setdefault(channel_id, {})[variable] = value

    def bridge_of(self, channel_id: str) -> set[str]:
        return next((members for members in self.bridges.values() if channel_id in members), set())

    def last_leg(self) -> str:
        return self.originated[-1][0]


@dataclass
class Rig:
    acd: AcdService
    ari: FakeAri
    session: CallSession
    clock: FakeClock
    queued: asyncio.Task[QueueOutcome] | None = None

    def answer(self, leg_id: str) -> None:
        """The phone of an originated leg answers: its channel enters our application."""
        self.ari.dispatcher.dispatch(channel_event(StasisStart, leg_id, args=["leg", "C1"]))

    def agent(self, agent_id: str) -> tuple[str, str | None]:
        view = self.acd.engine.agent(agent_id)
        return view.state, view.reason

    async def connect(self) -> str:
        """Queue the caller; agent a1 answers. Returns a1's leg."""
        self.queued = asyncio.create_task(self.acd.enqueue(self.session, QueueRequest("sales", {}, 0, {})))
        await settle()
        leg = self.ari.last_leg()
        self.answer(leg)
        await settle()
        assert self.agent("a1") == ("talking", None) and self.ari.bridge_of(CALLER) == {CALLER, leg}
        return leg

    async def command(self, action: str, **kwargs: Any) -> asyncio.Task[dict[str, Any]]:
        task = asyncio.create_task(self.acd.control("C1", action, **kwargs))
        await settle()
        return task


async def settle(rounds: int = 60) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    clock = FakeClock()
    queue = AcdQueueConfig(name="sales", ring_timeout=15.0, announce_interval=0, wrapup_seconds=0,
                           announce_agent_number=False, no_agents="wait")
    agents = [AcdAgentConfig(id=f"a{i}", name="", number=f"100{i}", endpoint=endpoint, queues={"sales": 0})
              for i, endpoint in ((1, "8001"), (2, "desk.8002"))]
    config = Config(acd=AcdSettings(queues=[queue], agents=agents, standard_prompts={"fees": "sound:fees"}))
    dispatcher = Dispatcher(lambda event: None)
    ari = FakeAri(dispatcher)

    async def media_for(prompt: Prompt) -> str:
        return "sound:x"

    acd = AcdService(config=config, clock=clock, records=Records(), publish=lambda *a, **k: None,  # type: ignore[arg-type]
                     media_for=media_for)
    session = CallSession(call_id="C1", channel=channel(CALLER), did="100", direction="inbound",
                          ari=ari, dispatcher=dispatcher, records=Records(), app_name="ccc",  # type: ignore[arg-type]
                          fallback_context="fallback")
    dispatcher.claim(CALLER, session)
    acd.command("login", "a1")
    built = Rig(acd, ari, session, clock)
    yield built
    if built.queued is not None:
        built.queued.cancel()
        await asyncio.gather(built.queued, return_exceptions=True)


async def test_a_blind_transfer_of_a_held_call_takes_the_caller_back_into_the_call(rig: Rig) -> None:
    await rig.connect()
    assert (await (await rig.command("hold")))["state"] == "held"
    transfer = await rig.command("transfer", target="number:13900139000")
    party = rig.ari.last_leg()
    rig.answer(party)
    assert (await transfer)["state"] == "transferred"
    assert rig.ari.bridge_of(CALLER) == {CALLER, party}  # not alone in silence in a holding bridge


async def test_an_answer_just_after_the_ring_timeout_is_hung_up_and_the_caller_waits_on(rig: Rig) -> None:
    rig.queued = asyncio.create_task(rig.acd.enqueue(rig.session, QueueRequest("sales", {}, 0, {})))
    await settle()
    late = rig.ari.last_leg()
    rig.answer(late)                       # in the call's inbox ...
    rig.clock.advance(15.0)
    rig.acd.apply(rig.acd.engine.tick())   # ... when the engine's ring timeout takes the offer back
    await settle()
    assert late not in rig.ari.channels and not rig.queued.done()
    assert rig.agent("a1") == ("not_ready", "no_answer")
    rig.acd.command("ready", "a1")         # the agent tries again: the caller was kept waiting for them
    await settle()
    rig.answer(rig.ari.last_leg())
    await settle()
    assert rig.agent("a1") == ("talking", None)


async def test_a_transfer_to_an_agent_rings_their_phone_whatever_its_name(rig: Rig) -> None:
    await rig.connect()
    rig.acd.command("login", "a2")
    transfer = await rig.command("transfer", target="agent:a2")
    assert rig.ari.originated[-1][1] == "PJSIP/desk.8002" and rig.agent("a2") == ("ringing", None)
    rig.answer(rig.ari.last_leg())
    assert (await transfer)["state"] == "transferred"
    await settle()
    assert rig.agent("a2") == ("talking", None) and rig.agent("a1")[0] in ("acw", "ready")


async def test_during_a_consultation_other_commands_wait_and_hanging_up_completes_it(rig: Rig) -> None:
    agent_leg = await rig.connect()
    consult = await rig.command("consult", target="phone:2000")
    consulted = rig.ari.last_leg()
    rig.answer(consulted)
    assert (await consult)["state"] == "consulting"
    with pytest.raises(Exception, match="consultation is in progress"):
        await (await rig.command("transfer", target="phone:3000"))
    assert (await (await rig.command("hangup")))["state"] == "transferred"
    await settle()
    assert agent_leg not in rig.ari.channels and rig.ari.bridge_of(CALLER) == {CALLER, consulted}


async def test_a_command_sent_as_soon_as_the_agent_talks_runs_once_the_call_is_connected(rig: Rig) -> None:
    rig.queued = asyncio.create_task(rig.acd.enqueue(rig.session, QueueRequest("sales", {}, 0, {})))
    await settle()
    rig.ari.slow_create = asyncio.Event()  # a busy Asterisk: the talk bridge is made slowly
    rig.answer(rig.ari.last_leg())
    await settle()
    assert rig.agent("a1") == ("talking", None)  # what the agent's desk (and the API) shows now
    hold = await rig.command("hold")
    assert not hold.done()  # not refused ("not connected to an agent"): it waits for the call
    rig.ari.slow_create.set()
    assert (await hold)["state"] == "held"


async def test_a_supervisors_snoop_is_bridged_only_once_it_is_in_our_application(rig: Rig) -> None:
    await rig.connect()
    listen = await rig.command("monitor", target="listen", options={"phone": "8003"})
    supervisor = rig.ari.last_leg()
    rig.answer(supervisor)
    await settle()
    (snoop,) = rig.ari.snooping  # POST /snoop has answered, its StasisStart is still on the way
    assert not listen.done()
    rig.ari.snoop_in_stasis(snoop)
    result = await listen
    assert (result["mode"], result["snoop_channel"]) == ("listen", snoop)
    assert rig.ari.bridge_of(supervisor) == {supervisor, snoop}
    whisper = await rig.command("monitor", target="whisper")
    (replacement,) = rig.ari.snooping
    rig.ari.snoop_in_stasis(replacement)
    assert (await whisper)["snoop_channel"] == replacement
    assert rig.ari.bridge_of(supervisor) == {supervisor, replacement}
    assert snoop not in rig.ari.channels  # the listen snoop was hung up


async def test_an_agent_who_hung_up_while_we_were_disconnected_is_noticed_on_resync(rig: Rig) -> None:
    agent_leg = await rig.connect()
    rig.ari.vanish(agent_leg)  # hung up while the event stream was down: no event ever comes
    rig.session.deliver(Resync("Resync", "", "", {}, vanished=frozenset({agent_leg})))
    await settle(200)
    assert rig.queued is not None and rig.queued.done() and rig.queued.result().result == "answered_then_ended"
    assert rig.agent("a1") == ("ready", None)


async def test_a_command_sent_during_a_prompt_runs_when_the_prompt_ends(rig: Rig) -> None:
    await rig.connect()
    rig.ari.auto_finish = False
    play = await rig.command("play", target="fees")
    hold = await rig.command("hold")  # arrives while the call's task waits for the prompt
    assert not hold.done()
    for playback_id in list(rig.ari.playing):
        rig.ari.finish(playback_id)
    assert (await play)["played"] == "fees"
    assert (await hold)["state"] == "held" and rig.agent("a1") == ("on_hold", None)


async def test_the_agent_number_is_announced_once_the_caller_has_left_the_holding_bridge(rig: Rig) -> None:
    # The caller leaves the holding bridge when the agent answers. ARI answers DELETE before the channel has
    # left, and a playback asked for in that moment never starts: the call would wait for it for good.
    queue = dataclasses.replace(rig.acd.config.acd.queues[0], announce_agent_number=True)
    await rig.acd.live_config.replace(with_acd(rig.acd.config, queues=[queue]))
    rig.queued = asyncio.create_task(rig.acd.enqueue(rig.session, QueueRequest("sales", {}, 0, {})))
    await settle()
    leg = rig.ari.last_leg()
    rig.answer(leg)
    await settle()
    assert rig.ari.never_started == [] and rig.ari.bridge_of(CALLER) == {CALLER, leg}  # announced, then talking
    hold = await rig.command("hold")
    assert (await hold)["state"] == "held"


async def test_keys_pressed_at_the_agent_do_not_answer_the_flows_next_question(rig: Rig) -> None:
    agent_leg = await rig.connect()
    rig.ari.dispatcher.dispatch(channel_event(ChannelDtmfReceived, CALLER, digit="5", duration_ms=100))
    await settle()
    await rig.ari.hangup(agent_leg)  # the agent hangs up: the caller goes on to the survey
    await settle(200)
    assert rig.queued is not None and rig.queued.done()
    assert rig.session.dtmf == []


class ListingAri:
    """Just what re-adoption after a reconnect asks of ARI."""

    def __init__(self) -> None:
        self.live: list[Channel] = []

    async def originate(self, channel_id: str, endpoint: str, **kwargs: Any) -> None:
        pass

    async def channels(self) -> list[Channel]:
        return self.live

    async def bridges(self) -> list[Any]:
        return []


async def test_a_click_to_dial_ring_is_settled_after_a_reconnect() -> None:
    ari = ListingAri()
    dispatcher = Dispatcher(lambda event: None)
    started: list[CallSession] = []

    async def handler(session: CallSession) -> None:
        started.append(session)

    def spawn(coroutine: Any) -> None:
        asyncio.get_running_loop().create_task(coroutine)

    calls = CallsService(config=Config(), ari=ari, dispatcher=dispatcher, records=Records(),  # type: ignore[arg-type]
                         spawn=spawn, publish=lambda *a, **k: None)
    failed: list[int | None] = []
    for _ in range(2):
        await calls.originate("PJSIP/8001", did="13900139000", caller_id=None, timeout=30, handler=handler,
                              on_failed=failed.append)
    ringing = [object_id for ids in dispatcher.ids_by_owner().values() for object_id in ids]
    answered = Channel(ringing[1], "", "Up", "", "", "", "", "Stasis", "ccc,outbound", "zh", "", {})
    ari.live = [answered]  # while disconnected: the first phone stopped ringing, the second answered
    await calls.readopt()
    await settle()
    assert failed == [None]  # the agent is freed (not left `talking`)
    assert [session.channel_id for session in started] == [ringing[1]]


async def test_a_flow_argument_counts_only_for_a_fastagi_hand_over() -> None:
    """`Stasis(ccc,DID,flow=X)` from anywhere but the /ivr hand-over (a request URI
    "4008001234,flow=x" through a dialplan that passes ${EXTEN}) must not choose the flow."""
    started: list[CallSession] = []

    async def handler(session: CallSession) -> None:
        started.append(session)

    def spawn(coroutine: Any) -> None:
        asyncio.get_running_loop().create_task(coroutine)

    calls = CallsService(config=Config(), ari=ListingAri(), dispatcher=Dispatcher(lambda event: None),  # type: ignore[arg-type]
                         records=Records(), spawn=spawn, publish=lambda *a, **k: None)  # type: ignore[arg-type]
    calls.inbound_handler = handler
    calls.on_stasis_start(channel_event(StasisStart, "sip-1", args=["4008001234", "flow=staff_only"]))  # type: ignore[arg-type]
    with calls.expect_handover("agi-1", "hotline_en"):
        calls.on_stasis_start(channel_event(StasisStart, "agi-1", args=["4008001234", "flow=hotline_en"]))  # type: ignore[arg-type]
        # A hand-over names one flow: another flow on the same channel is not accepted either.
        calls.on_stasis_start(channel_event(StasisStart, "agi-1", args=["4008001234", "flow=staff_only"]))  # type: ignore[arg-type]
    await settle()
    assert [(s.channel_id, s.entry_flow) for s in started] == [("sip-1", None), ("agi-1", "hotline_en"),
                                                                 ("agi-1", None)]
    assert calls.handovers == {}


@pytest.mark.parametrize(("caller", "asked"), [("13900000000", ["13900000000"]), ("anonymous", []),
                                               ("x&admin=1", []), ("", [])])
async def test_the_caller_history_is_read_only_for_a_phone_number(rig: Rig, caller: str, asked: list[str]) -> None:
    """A caller id that is not a number ("anonymous") would show one stranger's calls to the next."""
    looked_up: list[str] = []

    class HistoryRecords(Records):
        async def history(self, number: str, **kwargs: Any) -> list[Any]:
            looked_up.append(number)
            return []

    rig.session.caller = caller
    rig.session.records = HistoryRecords()  # type: ignore[assignment]
    await rig.connect()
    assert looked_up == asked


class UnreadableRecords(Records):
    """The store cannot be read (disk full, I/O error)."""

    async def history(self, *args: Any, **kwargs: Any) -> list[Any]:
        raise StoreUnavailable("the store cannot be read (disk I/O error)")


async def test_a_caller_whose_history_cannot_be_read_is_still_queued_and_answered(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    rig.session.records = UnreadableRecords()  # type: ignore[assignment]
    assert rig.session.caller  # a caller with a number: the history is read before queueing
    await rig.connect()  # asserts a1 answered and is talking with the caller
    assert rig.acd.history_failures == 1
    assert caplog.text.count("history cannot be read") == 1
    second = second_caller(rig, UnreadableRecords())
    waiting = asyncio.create_task(rig.acd.enqueue(second, QueueRequest("sales", {}, 0, {})))
    await settle()
    assert rig.acd.history_failures == 2 and caplog.text.count("history cannot be read") == 1  # logged once
    assert rig.acd.engine.call("C2") is not None  # queued, waiting for an agent
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)


def test_agent_outbound_checks_the_number_and_finds_the_phone() -> None:
    from controller.config import DialingSettings
    from controller.plugins.acd.agent_outbound import AgentOutbound, endpoint_of

    assert endpoint_of("PJSIP/8001-0000002a") == "8001"
    assert endpoint_of("PJSIP/agent-desk-7-0000002a") == "agent-desk-7"

    class Acd:  # just what the number check reads
        def __init__(self, prefixes: list[str]) -> None:
            self.config = Config(dialing=DialingSettings(allowed_prefixes=prefixes, denied_prefixes=[]))

    anything = AgentOutbound(Acd(["1", "+"]))  # type: ignore[arg-type]
    assert [anything.number_error(n) for n in ("13900139000", "+8613900139000", "112")] == [None, None, None]
    assert {anything.number_error(n) for n in ("12", "12ab", "139 0013", "1" * 22, "13900139000\n", "")} == \
        {"invalid_number"}
    mobiles = AgentOutbound(Acd(["139", "86"]))  # type: ignore[arg-type]
    assert mobiles.number_error("13900139000") is None and mobiles.number_error("8613800138000") is None
    assert mobiles.number_error("13800138000") == "number_not_allowed"


def test_the_day_of_the_live_counters_runs_from_local_midnight_to_the_next() -> None:
    now = 1_795_687_000.0
    start, end = start_of_day(now), next_day(now)
    assert start <= now < end and 23 * 3600 <= end - start <= 25 * 3600  # a DST day is 23 or 25 h long
    assert start_of_day(end) == end and next_day(start) == end


# -- live configuration (README "Administration (live configuration)") ------------------------------

def with_acd(config: Config, **changes: Any) -> Config:
    return dataclasses.replace(config, acd=dataclasses.replace(config.acd, **changes))


async def test_a_waiting_caller_rings_an_agent_added_live_and_the_queue_change_reaches_the_call(rig: Rig) -> None:
    rig.acd.command("logout", "a1")
    rig.queued = asyncio.create_task(rig.acd.enqueue(rig.session, QueueRequest("sales", {}, 0, {})))
    await settle()
    assert rig.ari.originated == []
    config = rig.acd.config
    new_agent = AcdAgentConfig(id="1006", name="New", number="1006", endpoint="8006", queues={"sales": 0})
    louder = dataclasses.replace(config.acd.queues[0], announce_agent_number=True)
    await rig.acd.live_config.replace(with_acd(config, agents=[*config.acd.agents, new_agent], queues=[louder]))
    assert rig.acd.calls["C1"].queue.announce_agent_number  # the call reads its queue as configured now
    assert rig.acd.agent_refusal("1006") is None
    rig.acd.command("login", "1006")
    await settle()
    assert rig.ari.originated[-1][1] == "PJSIP/8006" and rig.agent("1006") == ("ringing", None)


async def test_an_agent_removed_live_while_talking_ends_the_call_then_is_gone(rig: Rig) -> None:
    await rig.connect()
    config = rig.acd.config
    await rig.acd.live_config.replace(with_acd(config, agents=[a for a in config.acd.agents if a.id != "a1"]))
    assert rig.agent("a1") == ("talking", None)  # the call goes on
    assert rig.acd.agent_refusal("a1") == "agent a1 was removed from the configuration: ask a supervisor"
    assert "a1" not in rig.acd.agent_configs
    rig.ari.dispatcher.dispatch(channel_event(ChannelHangupRequest, CALLER))
    await settle()
    assert not rig.acd.engine.has_agent("a1")  # wrap-up 0: forgotten once the call is over
    agents = [dataclasses.replace(agent, enabled=False) for agent in rig.acd.config.acd.agents]
    disabled = with_acd(rig.acd.config, agents=agents)
    await rig.acd.live_config.replace(disabled)
    assert rig.acd.agent_refusal("a2") == "agent a2 is disabled: ask a supervisor"
    assert AcdService.agents_refused_now(config, disabled) == ["a1", "a2"]  # removed, disabled
    assert AcdService.agents_refused_now(disabled, config) == []


async def test_removing_a_queue_a_caller_waits_in_is_refused_by_the_guard(rig: Rig) -> None:
    config = rig.acd.config
    without_sales = with_acd(config, queues=[], agents=[])
    assert rig.acd.queue_removal_refusal(config, without_sales) is None  # positive: nobody waits yet
    rig.acd.command("logout", "a1")
    rig.queued = asyncio.create_task(rig.acd.enqueue(rig.session, QueueRequest("sales", {}, 0, {})))
    await settle()
    assert rig.acd.queue_removal_refusal(config, without_sales) == \
        "1 caller is waiting in queue sales: move them or wait until it is empty"
    assert rig.acd.queue_removal_refusal(config, config) is None


async def test_a_change_the_engine_refuses_is_logged_and_the_rest_applied(rig: Rig,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    rig.acd.command("logout", "a1")
    rig.queued = asyncio.create_task(rig.acd.enqueue(rig.session, QueueRequest("sales", {}, 0, {})))
    await settle()
    config = rig.acd.config
    renamed = [dataclasses.replace(agent, name="Renamed") for agent in config.acd.agents]
    await rig.acd.live_config.replace(with_acd(config, queues=[], agents=[
        dataclasses.replace(agent, queues={}) for agent in renamed]))  # the guard would have refused this
    assert "the configuration change of queue sales was not applied: 1 caller is waiting in queue sales" in caplog.text
    assert rig.acd.engine.queue_stats("sales").waiting == 1 and not rig.queued.done()  # the caller waits on
    assert rig.acd.engine.agent("a2").name == "Renamed"


async def test_agents_changes_before_a_commit_are_saved_once_in_the_batch_of_their_live_parts(
        rig: Rig, tmp_path: Path) -> None:
    store = Store(tmp_path / "ccc.db")
    await store.open()
    records = AcdRecords(store, lambda: 0.0)
    taken: list[set[str]] = []
    take_unsaved = rig.acd.engine.take_unsaved

    def counted() -> UnsavedChanges:
        changes = take_unsaved()
        taken.append(set(changes.agents))
        return changes

    rig.acd.engine.take_unsaved = counted  # type: ignore[method-assign]
    rig.acd.records = records
    live = LiveCallState(store, lambda: 0.0)
    rig.acd.command("login", "a2")
    rig.acd.command("ready", "a1")
    live.save("c1", "ring", {"agent_id": "a2"})  # a live part written with the agents' changes
    rig.acd.command("ready", "a2")
    assert taken == []  # not one encoding per change ...
    await store.flush()
    assert taken == [{"a1", "a2"}]  # ... one for the batch, with the agents changed, committed with the live part
    saved = await records.load_snapshot()
    assert saved is not None and {saved["agents"][a]["state"] for a in ("a1", "a2")} == {"ready"}
    assert (await live.load_all())["c1"]["ring"] == {"agent_id": "a2"}
    rig.acd.command("not_ready", "a2", reason="meeting")
    store.freeze()  # a graceful stop: the change before it is built and saved
    await store.flush()
    saved = await records.load_snapshot()
    assert saved is not None and saved["agents"]["a2"]["state"] == "not_ready"
    assert taken[1:] == [{"a2"}]  # only the agent who changed
    await store.close()


def count_removes(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The kinds of bridge (queue, talk, hold…) the caller is removed from, in order, from now on."""
    removed: list[str] = []
    remove = rig.ari.remove_from_bridge

    async def counting_remove(bridge_id: str, channel_id: str) -> None:
        removed.append(bridge_id.split("-")[1])
        await remove(bridge_id, channel_id)

    monkeypatch.setattr(rig.ari, "remove_from_bridge", counting_remove)
    return removed


def holding_bridge(rig: Rig) -> str:
    (bridge_id,) = [bridge_id for bridge_id in rig.ari.bridges if bridge_id.startswith("br-queue-")]
    return bridge_id


async def test_a_caller_who_hung_up_leaves_a_bridge_by_its_destruction_alone(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """ARI's bridge DELETE takes its channels out: a remove request before it is a request wasted, unless the
    caller stays on the line (media for them may follow, and must wait until they are out: removeChannel)."""
    removed = count_removes(rig, monkeypatch)
    await rig.connect()  # straight from the holding bridge into the talk bridge (addChannel takes them out)
    rig.ari.vanish(CALLER)
    rig.ari.dispatcher.dispatch(channel_event(ChannelHangupRequest, CALLER))  # the caller hangs up
    await settle()
    assert rig.queued is not None and rig.queued.done()
    # The talk bridge: destroyed, no remove. The queue's holding bridge stays, empty, for the next caller.
    assert rig.ari.bridges == {holding_bridge(rig): set()} and removed == []


@pytest.mark.parametrize("hangs_up_after", [False, True])
async def test_the_caller_is_removed_from_the_talk_bridge_only_when_the_flow_plays_something_next(
        rig: Rig, monkeypatch: pytest.MonkeyPatch, hangs_up_after: bool) -> None:
    """From the hold into the talk with no removeChannel (addChannel departs the Stasis bridge a channel is in
    first). After the talk the caller is taken out before the bridge is destroyed, so the flow's next prompt
    starts (DELETE answers before they are out: a prompt asked for then never would), unless the flow hangs
    them up next with nothing played (`QueueRequest.hangs_up_after`)."""
    removed = count_removes(rig, monkeypatch)
    prompted: list[str | None] = []

    async def visit_then_next_node() -> QueueOutcome:
        outcome = await rig.acd.enqueue(rig.session, QueueRequest("sales", hangs_up_after=hangs_up_after))
        if not hangs_up_after:
            prompted.append(await rig.session.play(["sound:thanks"]))  # at once, as the flow's next node does
        return outcome

    rig.queued = asyncio.create_task(visit_then_next_node())
    await settle()
    leg = rig.ari.last_leg()
    rig.answer(leg)
    await settle()
    assert rig.ari.bridge_of(CALLER) == {CALLER, leg} and rig.ari.bridges[holding_bridge(rig)] == set()
    assert removed == []
    await rig.ari.hangup(leg)  # the agent hangs up
    await settle(200)
    assert removed == ([] if hangs_up_after else ["talk"])
    assert rig.ari.never_started == [] and rig.queued.done()  # (a prompt that never starts is waited for)
    assert rig.queued.result().result == "answered_then_ended"
    assert prompted == ([] if hangs_up_after else [None])
    assert rig.ari.bridges == {holding_bridge(rig): set()}  # the talk bridge is gone either way


async def test_the_screen_pops_history_is_read_as_committed_without_forcing_a_commit(rig: Rig) -> None:
    """A commit forced by this read was one per queued call (README "Benchmarks", third round)."""
    flushes: list[Any] = []

    class HistoryRecords(Records):
        async def history(self, number: str, **kwargs: Any) -> list[Any]:
            flushes.append(kwargs.get("flush", True))
            return []

    rig.session.records = HistoryRecords()  # type: ignore[assignment]
    await rig.connect()
    assert flushes == [False]


async def test_hold_and_resume_move_the_caller_by_add_channel_alone(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """Into the call's holding bridge and back to the talk: addChannel takes the caller out of the bridge they are
    in (as Asterisk does for a Stasis bridge), so neither needs a removeChannel."""
    leg = await rig.connect()
    removed = count_removes(rig, monkeypatch)
    assert (await (await rig.command("hold")))["state"] == "held"
    (hold,) = [bridge_id for bridge_id in rig.ari.bridges if bridge_id.startswith("br-hold-")]
    assert rig.ari.bridges[hold] == {CALLER} and rig.ari.bridge_of(leg) == {leg}  # the agent alone in the talk
    assert (await (await rig.command("resume")))["state"] == "talking"
    assert rig.ari.bridge_of(CALLER) == {CALLER, leg} and hold not in rig.ari.bridges  # the holding bridge is gone
    assert removed == []


async def test_the_engines_timer_takes_an_offer_back_at_its_ring_timeout_with_nothing_else_happening() -> None:
    """The ACD's timer task wakes at the engine's next deadline by itself (one loop timer per wait), and a replan
    meanwhile moves it to the new deadline: here a ring timeout of 0.3 s on the real clock, nobody answering."""
    queue = AcdQueueConfig(name="sales", ring_timeout=0.3, announce_interval=0, wrapup_seconds=0,
                           announce_agent_number=False, no_agents="wait")
    config = Config(acd=AcdSettings(queues=[queue], agents=[
        AcdAgentConfig(id="a1", name="", number="1001", endpoint="8001", queues={"sales": 0})]))
    dispatcher = Dispatcher(lambda event: None)
    ari = FakeAri(dispatcher)

    async def media_for(prompt: Prompt) -> str:
        return "sound:x"

    acd = AcdService(config=config, clock=SystemClock(), records=Records(), publish=lambda *a, **k: None,  # type: ignore[arg-type]
                     media_for=media_for)
    session = CallSession(call_id="C1", channel=channel(CALLER), did="100", direction="inbound",
                          ari=ari, dispatcher=dispatcher, records=Records(), app_name="ccc",  # type: ignore[arg-type]
                          fallback_context="fallback")
    dispatcher.claim(CALLER, session)
    timer = asyncio.create_task(acd._run_timer())
    await settle()
    acd.command("login", "a1")  # a replan: the timer had no deadline, now it waits for none still
    queued = asyncio.create_task(acd.enqueue(session, QueueRequest("sales", {}, 0, {})))
    try:
        await settle()
        assert acd.engine.agent("a1").state == "ringing"  # the offer's ring timeout is the timer's deadline now
        started = time.monotonic()
        while acd.engine.agent("a1").state == "ringing" and time.monotonic() - started < 3.0:
            await asyncio.sleep(0.02)
        assert (acd.engine.agent("a1").state, acd.engine.agent("a1").reason) == ("not_ready", "no_answer")
        assert 0.25 <= time.monotonic() - started < 2.0
        assert not queued.done()  # the caller waits on
    finally:
        for task in (queued, timer):
            task.cancel()
        await asyncio.gather(queued, timer, return_exceptions=True)


async def test_the_agent_rings_before_the_caller_joins_the_holding_bridge(rig: Rig) -> None:
    """addChannel answers once the caller's channel thread has run it (after its media frame, later under load): it
    no longer stands between the caller's last key and the agent's phone ringing (README "Benchmarks")."""
    rig.ari.slow_add = asyncio.Event()
    rig.queued = asyncio.create_task(rig.acd.enqueue(rig.session, QueueRequest("sales", {}, 0, {})))
    await settle()
    assert [endpoint for _, endpoint in rig.ari.originated] == ["PJSIP/8001"]  # ringing, the join still pending
    assert rig.ari.bridge_of(CALLER) == set() and rig.agent("a1") == ("ringing", None)
    rig.ari.slow_add.set()
    await settle()
    assert rig.ari.bridge_of(CALLER) == {CALLER}  # then waits in the holding bridge, with music
    leg = rig.ari.last_leg()
    rig.answer(leg)
    await settle()
    assert rig.agent("a1") == ("talking", None) and rig.ari.bridge_of(CALLER) == {CALLER, leg}


async def test_no_collector_pass_runs_between_an_agent_becoming_ready_and_their_phone_dialled(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """With many callers waiting, a collector pass walks all their objects (30-140 ms for 1,000): wherever one comes
    due between the offer and its originate, the agent's phone rang that much later (README "Benchmarks", fifth
    session). Here a pass is due at nearly every allocation: none runs before the originate, they run after."""
    rig.acd.command("not_ready", "a1", reason="meeting")
    rig.queued = asyncio.create_task(rig.acd.enqueue(rig.session, QueueRequest("sales", {}, 0, {})))
    await settle()
    assert rig.ari.originated == []  # waiting: no agent ready
    passes: list[int] = []
    passes_at_originate: list[int] = []
    originate = rig.ari.originate

    async def counted_originate(channel_id: str, endpoint: str, **kwargs: Any) -> None:
        passes_at_originate.append(len(passes))
        await originate(channel_id, endpoint, **kwargs)

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            passes.append(info["generation"])

    monkeypatch.setattr(rig.ari, "originate", counted_originate)
    threshold = gc.get_threshold()
    gc.callbacks.append(count)
    gc.set_threshold(1)
    try:
        rig.acd.command("ready", "a1")
        at_offer = len(passes)
        await settle()
        assert passes_at_originate == [at_offer]  # the phone dialled with no pass in between
        assert rig.agent("a1") == ("ringing", None) and gc.isenabled() and not RINGING.holding
        await settle()
        assert len(passes) > at_offer  # the collector runs again once the phone is dialled
    finally:
        gc.callbacks.remove(count)
        gc.set_threshold(*threshold)


async def test_a_caller_who_hangs_up_while_joining_the_holding_bridge_stops_the_agents_ring(rig: Rig) -> None:
    """The ring starts before the join: a caller gone before the join answers takes the ring with them."""
    rig.ari.slow_add = asyncio.Event()
    rig.queued = asyncio.create_task(rig.acd.enqueue(rig.session, QueueRequest("sales", {}, 0, {})))
    await settle()
    leg = rig.ari.last_leg()
    rig.ari.vanish(CALLER)
    rig.ari.dispatcher.dispatch(channel_event(ChannelHangupRequest, CALLER))
    rig.ari.slow_add.set()
    await settle()
    assert rig.queued.done()
    assert leg not in rig.ari.channels  # the agent's phone stopped ringing
    assert rig.acd.engine.call("C1") is None and rig.agent("a1") == ("ready", None)


async def test_the_history_read_ahead_while_the_flow_runs_is_the_screen_pops(rig: Rig) -> None:
    """Read as the flow starts (`read_history_ahead`), the caller's history is not read again at the queue: the read
    waited behind the store's running commit between the caller's last key and the ringing."""
    looked_up: list[str] = []
    readable = asyncio.Event()

    class HistoryRecords(Records):
        async def history(self, number: str, **kwargs: Any) -> list[Any]:
            looked_up.append(number)
            await readable.wait()
            return [{"call_id": "C0", "direction": "inbound"}, {"call_id": "C1", "direction": "inbound"}]

    published: list[tuple[str, dict[str, Any]]] = []
    rig.acd.publish = lambda kind, **fields: published.append((kind, fields))  # type: ignore[method-assign]
    rig.session.records = HistoryRecords()  # type: ignore[assignment]
    rig.acd.queueing.read_history_ahead(rig.session)
    await settle()
    assert looked_up == [rig.session.caller]  # read at once, while the caller is still in the flow
    rig.queued = asyncio.create_task(rig.acd.enqueue(rig.session, QueueRequest("sales", {}, 0, {})))
    await settle()
    assert rig.ari.originated == []  # the screen pop needs it: the engine is asked once it is read
    readable.set()
    await settle()
    (pop,) = [fields["screen_pop"] for kind, fields in published if kind == "call.ringing"]
    assert [call["call_id"] for call in pop["history"]] == ["C0"]  # (not the call itself)
    assert looked_up == [rig.session.caller] and len(rig.ari.originated) == 1
    rig.answer(rig.ari.last_leg())
    await settle()
    assert rig.agent("a1") == ("talking", None)
    second = second_caller(rig, HistoryRecords())
    waiting = asyncio.create_task(rig.acd.enqueue(second, QueueRequest("sales", {}, 0, {})))
    await settle()
    assert looked_up == [rig.session.caller, second.caller]  # nothing read ahead: read at the queue, as before
    assert rig.acd.engine.call("C2") is not None
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)


def flow_service(rig: Rig, flows_dir: Path, nodes: str) -> IvrService:
    """The IVR serving DID 100 with one flow of `nodes` (YAML lines) into the rig's ACD."""
    (flows_dir / "sales.yaml").write_text(f'flow: sales\ndids: ["100"]\nnodes:\n  {nodes}\n')

    async def unused(*args: Any) -> Any:
        raise AssertionError("not in this test")

    async def media_for(prompt: Prompt) -> str:
        return "sound:x"

    ivr = IvrService(config=Config(ivr=IvrSettings(flows_dir=str(flows_dir))), clock=FakeClock(), store=None,  # type: ignore[arg-type]
                     publish=lambda *a, **k: None, media_for=media_for, http=unused,  # type: ignore[arg-type]
                     enqueue=rig.acd.enqueue, fallback=unused)
    assert ivr.load() == []
    return ivr


@pytest.mark.parametrize(("queue_node", "read_during_prompt"), [(True, True), (False, False)])
async def test_a_flow_with_a_queue_node_reads_the_callers_history_as_it_starts(
        rig: Rig, tmp_path: Path, queue_node: bool, read_during_prompt: bool) -> None:
    """The IVR tells the ACD of a call that may queue as its flow starts; a flow that never queues reads nothing."""
    looked_up: list[str] = []

    class HistoryRecords(Records):
        async def history(self, number: str, **kwargs: Any) -> list[Any]:
            looked_up.append(number)
            return []

    last = "q: {type: queue, queue: sales, otherwise: bye}\n  bye: {type: hangup}" if queue_node \
        else "q: {type: hangup}"
    ivr = flow_service(rig, tmp_path, f'hello: {{type: play, prompts: ["sound:hello"], next: q}}\n  {last}')
    ivr.queue_ahead = rig.acd.queueing.read_history_ahead
    rig.session.records = HistoryRecords()  # type: ignore[assignment]
    rig.ari.auto_finish = False
    served = asyncio.create_task(ivr.serve(rig.session))
    await settle()
    assert len(rig.ari.playing) == 1  # the prompt plays: the caller is not queued yet
    assert looked_up == ([rig.session.caller] if read_during_prompt else [])
    rig.ari.finish(next(iter(rig.ari.playing)))
    await settle()
    if queue_node:
        assert rig.acd.engine.call("C1") is not None and len(rig.ari.originated) == 1  # queued, a1 rings
        assert looked_up == [rig.session.caller]  # not read a second time
    else:
        assert served.done() and looked_up == []
    served.cancel()
    await asyncio.gather(served, return_exceptions=True)


def second_caller(rig: Rig, records: Any) -> CallSession:
    """A second call, C2 from channel caller2, on the rig's Asterisk."""
    session = CallSession(call_id="C2", channel=channel("caller2"), did="100", direction="inbound", ari=rig.ari,
                          dispatcher=rig.ari.dispatcher, records=records, app_name="ccc",  # type: ignore[arg-type]
                          fallback_context="fallback")
    rig.ari.channels.add("caller2")
    rig.ari.dispatcher.claim("caller2", session)
    return session


def saver_of(session: CallSession) -> Callable[[], None]:
    return lambda: print(session.call_id)


async def test_a_finished_queued_call_is_freed_by_reference_counting_alone(rig: Rig) -> None:
    """No reference cycle outlives a call: the garbage collector's middle passes freed them, hundreds of calls' objects
    at once in one stall of the event loop, the key -> ringing p99's tail (README "Benchmarks", fourth session)."""
    session = second_caller(rig, Records())
    session.persist = saver_of(session)  # as CallsService's: a closure over the session
    queued = asyncio.create_task(rig.acd.enqueue(session, QueueRequest("sales", {}, 0, {})))
    await settle()
    leg = rig.ari.last_leg()
    rig.answer(leg)
    await settle()
    waiting = rig.acd.calls["C2"]
    assert rig.agent("a1") == ("talking", None) and waiting.agent_leg is not None  # hooks of a connected call set
    finished, visit = weakref.ref(session), weakref.ref(waiting)
    gc.collect()
    gc.disable()
    try:
        rig.ari.vanish("caller2")
        rig.ari.dispatcher.dispatch(channel_event(ChannelHangupRequest, "caller2"))
        await settle()
        assert isinstance(queued.exception(), CallerHangup)
        session.left_stasis = True  # (its StasisEnd)
        await session.finish()
        rig.ari.dispatcher.release(leg)
        del session, waiting, queued
        await settle()
        assert finished() is None and visit() is None  # freed at once, no collector pass
    finally:
        gc.enable()


async def test_a_call_whose_flow_ended_is_freed_by_reference_counting_alone(rig: Rig, tmp_path: Path) -> None:
    """The flow's node reporter (a closure over the flow's context) no longer keeps the context, its port and the
    call's session in a reference cycle after the flow."""
    ivr = flow_service(rig, tmp_path, 'hello: {type: play, prompts: ["sound:hello"], next: bye}\n  bye: {type: hangup}')
    session = second_caller(rig, Records())
    finished = weakref.ref(session)
    gc.collect()
    gc.disable()
    try:
        result = await ivr.serve(session)
        assert result is not None and result.visited == ["hello", "bye"]  # the flow ran, its reporter with it
        session.left_stasis = True  # (its StasisEnd)
        await session.finish()
        del session, result
        await settle()
        assert finished() is None  # freed at once, no collector pass
    finally:
        gc.enable()


async def test_the_engines_timer_wakes_only_for_a_sooner_deadline() -> None:
    """A change that adds no deadline, or a later one, does not wake the ACD's timer task: a wake-up per change (a
    task step, a timer armed and cancelled, a tick that finds nothing due) was most of its work per call. A sooner
    deadline still wakes it, and it acts at that deadline."""
    queues = [AcdQueueConfig(name="sales", ring_timeout=30.0, announce_interval=0, wrapup_seconds=0,
                             announce_agent_number=False, no_agents="wait"),
              AcdQueueConfig(name="rush", ring_timeout=30.0, announce_interval=0, wrapup_seconds=0, max_wait=0.3,
                             announce_agent_number=False, no_agents="wait")]
    config = Config(acd=AcdSettings(queues=queues, agents=[
        AcdAgentConfig(id=f"a{i}", name="", number=f"100{i}", endpoint=f"800{i}", queues={"sales": 0})
        for i in (1, 2)]))
    dispatcher = Dispatcher(lambda event: None)
    ari = FakeAri(dispatcher)
    ari.channels.add("caller-2")

    async def media_for(prompt: Prompt) -> str:
        return "sound:x"

    acd = AcdService(config=config, clock=SystemClock(), records=Records(), publish=lambda *a, **k: None,  # type: ignore[arg-type]
                     media_for=media_for)
    sessions = [CallSession(call_id=f"C{n}", channel=channel(name), did="100", direction="inbound", ari=ari,
                            dispatcher=dispatcher, records=Records(), app_name="ccc",  # type: ignore[arg-type]
                            fallback_context="fallback") for n, name in ((1, CALLER), (2, "caller-2"))]
    for session in sessions:
        dispatcher.claim(session.channel_id, session)
    ticks = [0]
    tick = acd.engine.tick

    def counted_tick() -> list[Any]:
        ticks[0] += 1
        return tick()

    acd.engine.tick = counted_tick  # type: ignore[method-assign]
    timer = asyncio.create_task(acd._run_timer())
    acd.command("login", "a1")
    queued = [asyncio.create_task(acd.enqueue(sessions[0], QueueRequest("sales", {}, 0, {})))]
    try:
        await settle()
        assert acd.engine.agent("a1").state == "ringing"  # its ring timeout, 30 s away, is the timer's deadline
        woken = ticks[0]
        for _ in range(5):  # changes with no deadline of their own: the timer sleeps on
            acd.command("login", "a2")
            acd.command("logout", "a2")
            await settle()
        assert ticks[0] == woken
        queued.append(asyncio.create_task(acd.enqueue(sessions[1], QueueRequest("rush", {}, 0, {}))))
        await settle()  # its max wait, 0.3 s away, is sooner: the timer wakes for it ...
        assert ticks[0] == woken + 1
        outcome = await asyncio.wait_for(queued[1], 3.0)  # ... and overflows the call then
        assert outcome.result == "timeout" and not queued[0].done()  # (max_wait with no overflow target)
    finally:
        for task in (*queued, timer):
            task.cancel()
        await asyncio.gather(*queued, timer, return_exceptions=True)
