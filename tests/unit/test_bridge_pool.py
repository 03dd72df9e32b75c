"""The talk bridge pool's rules (controller/plugins/calls/bridge_pool.py): a bridge given back is reused only once
every channel the call added is known out of it and a listing of the node's bridges shows it empty; otherwise it
is destroyed. Asterisk is faked here (pure logic); tests/e2e/test_talk_bridge_pool.py runs it on the real one."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from controller.ari.dispatcher import Dispatcher
from controller.ari.errors import AriUnavailable
from controller.ari.models import Bridge, parse_event
from controller.plugins.calls import bridge_pool
from controller.plugins.calls.bridge_pool import TalkBridgePool


class FakeAri:
    """Bridges by id with their channels, as Asterisk would list them."""

    def __init__(self) -> None:
        self.bridges_now: dict[str, list[str]] = {}
        self.sent: list[tuple[str, str]] = []
        self.listing_fails = False

    async def create_bridge(self, bridge_id: str, bridge_type: str = "mixing", name: str = "") -> None:
        self.sent.append(("create", bridge_id))
        self.bridges_now[bridge_id] = []

    async def destroy_bridge(self, bridge_id: str) -> None:
        self.sent.append(("destroy", bridge_id))
        self.bridges_now.pop(bridge_id, None)

    async def bridges(self) -> list[Bridge]:
        self.sent.append(("list", ""))
        if self.listing_fails:
            raise AriUnavailable("GET", "/bridges", 0, "Asterisk away")
        return [Bridge.parse({"id": b, "channels": c}) for b, c in self.bridges_now.items()]


class Owner:
    def __init__(self, ari: FakeAri) -> None:
        self.ari = ari

    def deliver(self, event: Any) -> None:
        pass


def stasis_end(channel_id: str) -> Any:
    return parse_event({"type": "StasisEnd", "timestamp": "", "channel": {"id": channel_id}})


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bridge_pool, "CONFIRM_SECONDS", 0.01)
    monkeypatch.setattr(bridge_pool, "DRAIN_SECONDS", 0.2)
    monkeypatch.setattr(bridge_pool, "MIN_IDLE", 0)  # nothing made ahead: the counts below are the calls' own


def make_pool() -> tuple[TalkBridgePool, Dispatcher, FakeAri, Owner, set[asyncio.Task[None]]]:
    tasks: set[asyncio.Task[None]] = set()
    dispatcher = Dispatcher(on_new_channel=lambda _event: None)
    pool = TalkBridgePool(dispatcher, lambda coro: tasks.add(asyncio.get_running_loop().create_task(coro)))
    ari = FakeAri()
    return pool, dispatcher, ari, Owner(ari), tasks


async def test_a_bridge_goes_idle_once_its_channels_left_and_a_listing_shows_it_empty(fast: None) -> None:
    pool, dispatcher, ari, owner, _ = make_pool()
    lease = await pool.take(owner)  # type: ignore[arg-type]
    assert dispatcher.owner_of(lease.bridge_id) is owner
    pool.joined(lease, ("caller", "agent"))
    ari.bridges_now[lease.bridge_id] = ["caller", "agent"]
    dispatcher.dispatch(stasis_end("agent"))  # the agent hung up: out of every bridge
    pool.give_back(lease)  # the caller is still in it
    assert (pool.idle_count(), pool.draining_count()) == (0, 1)
    other = await pool.take(owner)  # type: ignore[arg-type]
    assert other.bridge_id != lease.bridge_id  # a draining bridge is never handed out
    ari.bridges_now[lease.bridge_id] = []
    dispatcher.dispatch(stasis_end("caller"))
    assert pool.idle_count() == 0  # not before Asterisk's listing says it is empty
    await asyncio.sleep(0.1)
    assert (pool.idle_count(), pool.draining_count()) == (1, 0)
    again = await pool.take(owner)  # type: ignore[arg-type]
    assert again.bridge_id == lease.bridge_id and pool.reused == 1
    assert ("destroy", lease.bridge_id) not in ari.sent


async def test_a_bridge_whose_channels_do_not_all_leave_is_destroyed(fast: None) -> None:
    pool, dispatcher, ari, owner, _ = make_pool()
    lease = await pool.take(owner)  # type: ignore[arg-type]
    pool.joined(lease, ("caller", "agent"))
    dispatcher.dispatch(stasis_end("caller"))
    pool.give_back(lease)
    await asyncio.sleep(0.4)  # past the drain deadline: the agent never left
    assert ("destroy", lease.bridge_id) in ari.sent
    assert (pool.idle_count(), pool.draining_count()) == (0, 0)
    assert dispatcher.owner_of(lease.bridge_id) is None
    dispatcher.dispatch(stasis_end("agent"))  # too late: changes nothing
    assert pool.idle_count() == 0


async def test_a_bridge_the_listing_shows_with_a_channel_is_destroyed_not_reused(fast: None) -> None:
    pool, dispatcher, ari, owner, _ = make_pool()
    lease = await pool.take(owner)  # type: ignore[arg-type]
    pool.joined(lease, ("caller",))
    dispatcher.dispatch(stasis_end("caller"))
    ari.bridges_now[lease.bridge_id] = ["someone-else"]  # a channel this process never added
    pool.give_back(lease)
    await asyncio.sleep(0.1)
    assert ("destroy", lease.bridge_id) in ari.sent and pool.idle_count() == 0


async def test_a_drained_bridge_whose_listing_failed_is_destroyed_not_forgotten(fast: None) -> None:
    pool, dispatcher, ari, owner, _ = make_pool()
    lease = await pool.take(owner)  # type: ignore[arg-type]
    pool.joined(lease, ("caller",))
    dispatcher.dispatch(stasis_end("caller"))
    ari.listing_fails = True  # e.g. Asterisk restarting: its bridges cannot be confirmed empty
    pool.give_back(lease)
    await asyncio.sleep(0.1)
    assert ("list", "") in ari.sent and ("destroy", lease.bridge_id) in ari.sent
    assert (pool.idle_count(), pool.draining_count()) == (0, 0) and dispatcher.owner_of(lease.bridge_id) is None


async def test_a_spoiled_bridge_is_destroyed_when_given_back(fast: None) -> None:
    pool, _, ari, owner, _ = make_pool()
    lease = await pool.take(owner)  # type: ignore[arg-type]
    lease.spoiled = True  # e.g. music on hold played in it
    pool.give_back(lease)
    await asyncio.sleep(0.05)
    assert ("destroy", lease.bridge_id) in ari.sent and pool.idle_count() == 0


async def test_after_a_reconnect_bridges_in_hands_are_not_reused_and_gone_idle_ones_are_dropped(fast: None) -> None:
    pool, _, ari, owner, _ = make_pool()
    first, second = await pool.take(owner), await pool.take(owner)  # type: ignore[arg-type]
    pool.give_back(second)
    await asyncio.sleep(0.05)
    assert pool.idle_count() == 1
    del ari.bridges_now[second.bridge_id]  # Asterisk restarted: the idle one is gone
    pool.reconcile(ari, {b.id: b for b in await ari.bridges()})  # type: ignore[arg-type]
    assert pool.idle_count() == 0 and first.spoiled  # events may have been missed: destroyed at its end
    pool.give_back(first)
    await asyncio.sleep(0.05)
    assert ("destroy", first.bridge_id) in ari.sent and pool.idle_count() == 0
