"""The queues' shared holding bridges (controller/plugins/acd/holding.py) against the fake ARI of
test_acd_calls, which behaves as Asterisk does: creating an existing bridge id answers 409, adding a
channel to a bridge that is gone answers 404, a channel is in one bridge at most."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from controller.ari.models import Bridge as AriBridge
from controller.config import AcdQueueConfig
from controller.ivr.port import QueueRequest
from controller.plugins.acd.holding import SHARED_MUSIC_FROM, holding_bridge_id
from controller.plugins.calls.services import Resumption
from controller.plugins.calls.session import CallSession
from tests.unit.test_acd_calls import (
    CALLER,
    Records,
    Rig,
    channel,
    rig,  # noqa: F401 (fixture)
    settle,
    with_acd,
)

SALES = holding_bridge_id("ccc", "default", "sales")


def another_caller(rig: Rig, call_id: str) -> CallSession:  # noqa: F811
    channel_id = f"caller-{call_id}"
    session = CallSession(call_id=call_id, channel=channel(channel_id), did="100", direction="inbound", ari=rig.ari,
                          dispatcher=rig.ari.dispatcher, records=Records(),  # type: ignore[arg-type]
                          app_name="ccc", fallback_context="fallback")
    rig.ari.channels.add(channel_id)
    rig.ari.dispatcher.claim(channel_id, session)
    return session


def test_the_bridge_id_is_the_same_for_a_queue_and_node_and_safe_for_any_queue_name() -> None:
    assert holding_bridge_id("ccc", "default", "sales") == SALES and SALES.startswith("br-queue-sales-")
    assert holding_bridge_id("ccc", "b", "sales") != SALES  # another node
    assert holding_bridge_id("other", "default", "sales") != SALES  # another application on the same Asterisk
    chinese, other = holding_bridge_id("ccc", "default", "销售"), holding_bridge_id("ccc", "default", "客服")
    assert chinese != other and chinese.isascii() and other.isascii()


async def test_callers_arriving_together_wait_in_one_bridge_created_once(rig: Rig) -> None:  # noqa: F811
    rig.acd.command("logout", "a1")  # nobody to ring: both wait
    rig.ari.slow_create = asyncio.Event()  # the creation is in flight while the second caller arrives
    second = another_caller(rig, "C2")
    rig.queued = asyncio.create_task(rig.acd.enqueue(rig.session, QueueRequest("sales", {}, 0, {})))
    other = asyncio.create_task(rig.acd.enqueue(second, QueueRequest("sales", {}, 0, {})))
    await settle()
    assert rig.ari.bridges == {}  # both wait for the one creation
    rig.ari.slow_create.set()
    await settle()
    assert rig.ari.created == [SALES] and rig.ari.bridges == {SALES: {CALLER, second.channel_id}}
    # No music of the bridge's own (an announcer playing to nobody when they are gone): each caller hears Asterisk's
    # holding-bridge music of their own, the default class, so nothing is set on their channels either.
    assert rig.ari.moh == {} and rig.ari.variables == {}
    assert rig.acd.calls["C1"].waiting_in == rig.acd.calls["C2"].waiting_in == SALES
    # A third caller later joins it: no creation, no music request.
    third = another_caller(rig, "C3")
    late = asyncio.create_task(rig.acd.enqueue(third, QueueRequest("sales", {}, 0, {})))
    await settle()
    assert rig.ari.created == [SALES] and rig.ari.bridges[SALES] == {CALLER, second.channel_id, third.channel_id}
    for task in (other, late):
        task.cancel()
    await asyncio.gather(other, late, return_exceptions=True)


async def test_a_bridge_asterisk_lost_is_created_again_and_the_caller_waits_in_it(rig: Rig) -> None:  # noqa: F811
    rig.acd.command("logout", "a1")
    first = another_caller(rig, "C2")
    assert await rig.acd.holding.join(first, "sales") == SALES
    await rig.acd.holding.leave(first, SALES)
    del rig.ari.bridges[SALES]  # Asterisk restarted (or someone destroyed it)
    rig.queued = asyncio.create_task(rig.acd.enqueue(rig.session, QueueRequest("sales", {}, 0, {})))
    await settle()
    assert rig.ari.created == [SALES, SALES] and rig.ari.bridges == {SALES: {CALLER}}
    assert rig.ari.moh == {}  # (the caller's own music)
    assert rig.acd.calls["C1"].waiting_in == SALES


async def test_an_answered_caller_leaves_by_remove_alone_and_the_bridge_stays_for_the_next(rig: Rig) -> None:  # noqa: F811
    leg = await rig.connect()  # asserts the caller talks with a1's leg
    assert rig.ari.bridges[SALES] == set() and rig.ari.bridge_of(CALLER) == {CALLER, leg}
    assert rig.session.caller_bridge != SALES


async def test_the_music_follows_the_queues_class_and_a_removed_queues_idle_bridge_goes(rig: Rig) -> None:  # noqa: F811
    rig.acd.command("logout", "a1")
    rig.queued = asyncio.create_task(rig.acd.enqueue(rig.session, QueueRequest("sales", {}, 0, {})))
    await settle()
    assert rig.ari.moh == {} and rig.ari.variables == {}  # the default class: the caller's own music, nothing set
    config = rig.acd.config
    jazz = dataclasses.replace(config.acd.queues[0], moh_class="jazz")
    await rig.acd.live_config.replace(with_acd(config, queues=[jazz]))
    await settle()
    # The waiting caller hears the new class at once, from the bridge's announcer.
    assert rig.ari.moh == {SALES: "jazz"} and rig.ari.bridges == {SALES: {CALLER}}  # the caller waits on
    # Another change to the queue leaves the music alone (positive above: a class change reaches it).
    await rig.acd.live_config.replace(with_acd(rig.acd.config, queues=[dataclasses.replace(jazz, max_wait=900)]))
    await settle()
    assert rig.ari.moh == {SALES: "jazz"}
    # A caller who comes now gets the class as their own music; once nobody waits, the announcer stops.
    later = another_caller(rig, "C2")
    assert await rig.acd.holding.join(later, "sales") == SALES
    assert rig.ari.variables == {later.channel_id: {"CHANNEL(musicclass)": "jazz"}}
    await rig.acd.holding.leave(later, SALES)
    assert rig.ari.moh == {SALES: "jazz"}  # the first caller still waits
    # The queue removed (the guard would refuse it while someone waits): the bridge goes once it is idle.
    other = AcdQueueConfig(name="support")
    agents = [dataclasses.replace(agent, queues={"support": 0}) for agent in rig.acd.config.acd.agents]
    await rig.acd.live_config.replace(with_acd(rig.acd.config, queues=[other], agents=agents))
    await settle()
    assert SALES in rig.ari.bridges  # the caller still waits in it
    rig.queued.cancel()  # the caller leaves
    await asyncio.gather(rig.queued, return_exceptions=True)
    await settle()
    assert rig.ari.bridges == {}


async def test_the_bridges_own_music_stops_once_nobody_waits_and_new_callers_keep_their_class(rig: Rig) -> None:  # noqa: F811
    """The announcer of a live class change plays to nobody once the last caller left (Asterisk's CPU, all the
    time): stopped, the bridge stays for the next caller, who hears the class as their own music."""
    rig.acd.command("logout", "a1")
    rig.queued = asyncio.create_task(rig.acd.enqueue(rig.session, QueueRequest("sales", {}, 0, {})))
    await settle()
    jazz = dataclasses.replace(rig.acd.config.acd.queues[0], moh_class="jazz")
    await rig.acd.live_config.replace(with_acd(rig.acd.config, queues=[jazz]))
    await settle()
    assert rig.ari.moh == {SALES: "jazz"}
    rig.queued.cancel()  # the caller leaves
    await asyncio.gather(rig.queued, return_exceptions=True)
    await settle()
    assert rig.ari.moh == {} and rig.ari.bridges == {SALES: set()}
    later = another_caller(rig, "C2")
    assert await rig.acd.holding.join(later, "sales") == SALES
    assert rig.ari.variables[later.channel_id] == {"CHANNEL(musicclass)": "jazz"} and rig.ari.moh == {}
    # A class changed while nobody waits starts no announcer.
    await rig.acd.holding.leave(later, SALES)
    pop = dataclasses.replace(jazz, moh_class="pop")
    await rig.acd.live_config.replace(with_acd(rig.acd.config, queues=[pop]))
    await settle()
    assert rig.ari.moh == {}
    assert await rig.acd.holding.join(later, "sales") == SALES  # (the same caller again: the class changes)
    assert rig.ari.variables[later.channel_id] == {"CHANNEL(musicclass)": "pop"}


async def test_from_ten_waiting_the_bridges_own_music_plays_to_them_all_until_it_is_empty(rig: Rig) -> None:  # noqa: F811
    """Music on hold per caller costs more than one announcer once many wait: from SHARED_MUSIC_FROM on, one."""
    callers = [another_caller(rig, f"C{n}") for n in range(2, 2 + SHARED_MUSIC_FROM)]
    for caller in callers[:-1]:
        await rig.acd.holding.join(caller, "sales")
    assert rig.ari.moh == {} and len(rig.ari.bridges[SALES]) == SHARED_MUSIC_FROM - 1  # each one's own
    await rig.acd.holding.join(callers[-1], "sales")
    assert rig.ari.moh == {SALES: "default"}
    for caller in callers[:-1]:
        await rig.acd.holding.leave(caller, SALES)
    assert rig.ari.moh == {SALES: "default"}  # (one still waits)
    await rig.acd.holding.leave(callers[-1], SALES)
    assert rig.ari.moh == {} and rig.ari.bridges == {SALES: set()}


async def test_a_waiting_caller_taken_over_after_a_restart_stays_in_the_queues_bridge(rig: Rig) -> None:  # noqa: F811
    """A new process adopts the bridge the caller waits in (no request: the music plays on), and knows it for the
    next callers; a per-call holding bridge of an earlier version is left for the queue's, then destroyed."""
    rig.acd.command("logout", "a1")
    rig.ari.bridges[SALES] = {CALLER}  # made by the previous process
    await rig.acd.queue_resume.resume(stored_waiting(rig, SALES, (CALLER,)))
    rig.queued = asyncio.create_task(rig.acd.enqueue(rig.session, QueueRequest("sales", {}, 0, {})))
    await settle()
    assert rig.ari.created == [] and rig.acd.calls["C1"].waiting_in == SALES and rig.ari.bridges == {SALES: {CALLER}}
    later = another_caller(rig, "C2")
    assert await rig.acd.holding.join(later, "sales") == SALES and rig.ari.created == []
    # An earlier version's bridge of the call's own.
    own = "br-queue-" + "0" * 32
    resumed = another_caller(rig, "C3")
    rig.ari.bridges[own] = {resumed.channel_id}
    await rig.acd.queue_resume.resume(stored_waiting(rig, own, (resumed.channel_id,), resumed))
    third = asyncio.create_task(rig.acd.enqueue(resumed, QueueRequest("sales", {}, 0, {})))
    await settle()
    assert rig.ari.bridges == {SALES: {CALLER, later.channel_id, resumed.channel_id}}, rig.ari.bridges
    third.cancel()
    await asyncio.gather(third, return_exceptions=True)
    # An earlier version's bridge played its own music all the time: stopped once nobody waits in it.
    rig.ari.moh[SALES] = "default"
    for session in (rig.session, later):
        await rig.acd.holding.leave(session, SALES)
    assert rig.ari.moh == {} and SALES in rig.ari.bridges


def stored_waiting(rig: Rig, bridge_id: str, channels: tuple[str, ...],  # noqa: F811
                   session: CallSession | None = None) -> Resumption:
    session = session or rig.session
    parts = {"queue": {"queue": "sales", "bridge": bridge_id, "enqueued_at": rig.clock.now()}, "ivr": {}}
    return Resumption(session, parts, {}, {bridge_id: AriBridge(bridge_id, "holding", channels, {"name": bridge_id})})


def test_a_queues_music_class_must_be_a_class_name() -> None:
    assert AcdQueueConfig(name="sales", moh_class="ccc-tune_2").moh_class == "ccc-tune_2"
    assert AcdQueueConfig(name="sales").moh_class == ""  # the Asterisk-wide class
    for bad in ("jazz;rock", "a b", "x" * 81):
        with pytest.raises(ValueError, match=r"moh_class: expected a musiconhold\.conf class"):
            AcdQueueConfig(name="sales", moh_class=bad)
