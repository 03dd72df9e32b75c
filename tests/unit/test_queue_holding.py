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
from controller.plugins.acd.holding import holding_bridge_id
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
    assert rig.ari.moh == {SALES: "default"}
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
    assert rig.ari.moh == {SALES: "default"}  # the music started on the new one
    assert rig.acd.calls["C1"].waiting_in == SALES


async def test_an_answered_caller_leaves_by_remove_alone_and_the_bridge_stays_for_the_next(rig: Rig) -> None:  # noqa: F811
    leg = await rig.connect()  # asserts the caller talks with a1's leg
    assert rig.ari.bridges[SALES] == set() and rig.ari.bridge_of(CALLER) == {CALLER, leg}
    assert rig.session.caller_bridge != SALES


async def test_the_music_follows_the_queues_class_and_a_removed_queues_idle_bridge_goes(rig: Rig) -> None:  # noqa: F811
    rig.acd.command("logout", "a1")
    rig.queued = asyncio.create_task(rig.acd.enqueue(rig.session, QueueRequest("sales", {}, 0, {})))
    await settle()
    assert rig.ari.moh == {SALES: "default"}
    config = rig.acd.config
    jazz = dataclasses.replace(config.acd.queues[0], moh_class="jazz")
    await rig.acd.live_config.replace(with_acd(config, queues=[jazz]))
    await settle()
    assert rig.ari.moh == {SALES: "jazz"} and rig.ari.bridges == {SALES: {CALLER}}  # the caller waits on
    # Another change to the queue leaves the music alone (positive above: a class change reaches it).
    await rig.acd.live_config.replace(with_acd(rig.acd.config, queues=[dataclasses.replace(jazz, max_wait=900)]))
    await settle()
    assert rig.ari.moh == {SALES: "jazz"}
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
