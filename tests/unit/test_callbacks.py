"""Scheduled callbacks with a fake clock and a real store: the IVR's requests become callbacks due on the
right working day, a due one is queued as a virtual call, a personal one goes to its agent only, bad
input books nothing, and the waiting ones come back at their place after a restart."""

from __future__ import annotations

import asyncio
import datetime
import gc
import json
from typing import Any

import pytest

from controller.clock import FakeClock
from controller.collector import RINGING
from controller.config import AcdAgentConfig, AcdQueueConfig, AcdSettings, Config
from controller.ivr.port import Prompt
from controller.plugins.acd.callback_records import CallbackRecords
from controller.plugins.acd.callbacks import CallbackService
from controller.plugins.acd.services import AcdService
from controller.store.db import Store
from tests.unit.test_acd_calls import Records

FRIDAY_EVENING = datetime.datetime(2025, 9, 26, 19, 30)  # before National Day; Sunday the 28th is worked (调休)


def service(store: Store, clock: FakeClock, originated: list[str], callback_order: str = "agent_first",
            ) -> tuple[CallbackService, list[tuple[str, Any]]]:
    queue = AcdQueueConfig(name="sales", announce_interval=0, no_agents="wait", business_hours="09:00-18:00",
                           callback_order=callback_order)  # type: ignore[arg-type]
    agents = [AcdAgentConfig(id=f"a{i}", name="", number=f"100{i}", endpoint=f"800{i}", queues={"sales": 0})
              for i in (1, 2)]
    published: list[tuple[str, Any]] = []

    async def media_for(prompt: Prompt) -> str:
        return "sound:x"

    async def originate(endpoint: str, **_: Any) -> str:
        originated.append(endpoint)
        return "out-1"

    acd = AcdService(config=Config(acd=AcdSettings(queues=[queue], agents=agents)), clock=clock,
                     records=Records(), publish=lambda kind, **data: published.append((kind, data)),  # type: ignore[arg-type]
                     media_for=media_for, originate=originate)
    return CallbackService(acd, CallbackRecords(store, clock.now)), published


async def test_an_ivr_request_on_a_friday_evening_is_queued_on_the_make_up_sunday(store: Store) -> None:
    clock = FakeClock(FRIDAY_EVENING)
    callbacks, published = service(store, clock, [])
    await callbacks.restore()
    await store.execute("INSERT INTO ivr_records (call_id, kind, created_at, caller, payload) VALUES (?, ?, ?, ?, ?)",
                        ("C1", "callback", clock.now(), "13800138000",
                         json.dumps({"number": "13900139000", "queue": "sales", "when": "next_morning"})))
    await callbacks.take_ivr_requests()
    await store.flush()
    (row,) = await callbacks.records.listing(status="scheduled", since=None, limit=10)
    assert datetime.datetime.fromtimestamp(row["due_at"]) == datetime.datetime(2025, 9, 28, 9, 0)
    assert (row["origin"], row["number"], row["call_id"]) == ("ivr", "13900139000", "C1")
    taken = await store.fetchone("SELECT status FROM ivr_records WHERE call_id = 'C1'")
    assert taken is not None and taken["status"] == "queued"
    await callbacks.take_ivr_requests()  # taken once
    assert len(await callbacks.records.listing(status=None, since=None, limit=10)) == 1

    clock.advance(datetime.datetime(2025, 9, 28, 8, 59).timestamp() - clock.now())
    callbacks.tick()
    assert callbacks.acd.engine.waiting("sales") == []  # not yet due
    clock.advance(60)
    callbacks.tick()
    (waiting,) = callbacks.acd.engine.waiting("sales")
    assert waiting.call_id == f"callback-{row['id']}" and waiting.data["callback"] is True
    assert callbacks.owns(waiting.call_id)
    assert [kind for kind, _ in published] == ["callback.requested", "call.queued"]


async def test_a_personal_callback_goes_to_its_agent_only(store: Store) -> None:
    clock = FakeClock(datetime.datetime(2025, 11, 12, 10, 0))  # a Wednesday morning
    originated: list[str] = []
    callbacks, _ = service(store, clock, originated)
    await callbacks.restore()
    acd = callbacks.acd
    acd.command("login", "a1")
    booked = callbacks.schedule(queue="sales", number="13900139000", when="asap", agent_id="a2")
    callbacks.tick()
    view = acd.engine.call(booked.key)
    assert view is not None and view.agents_ringing == () and acd.engine.agent("a1").state == "ready"
    acd.command("login", "a2")
    callbacks.tick()
    await asyncio.sleep(0)  # the agent-first ring starts
    assert acd.engine.agent("a2").state == "ringing" and acd.engine.agent("a1").state == "ready"
    assert originated == ["PJSIP/8002"]
    pop = callbacks.screen_pop(booked.key, "sales")
    assert (pop["callback"], pop["caller"], pop["attempt"]) == (True, "13900139000", 1)


@pytest.mark.parametrize(("queue", "number", "when", "agent", "error"), [
    ("nosuch", "13900139000", "asap", None, "no queue"),
    ("sales", "12ab", "asap", None, "not valid"),
    ("sales", "0012025550100", "asap", None, "may not be dialled"),
    ("sales", "13900139000", "tomorrow-ish", None, "Invalid isoformat"),
    ("sales", "13900139000", "asap", "a9", "no agent"),
])
async def test_bad_input_books_nothing(store: Store, queue: str, number: str, when: str, agent: str | None,
                                       error: str) -> None:
    callbacks, published = service(store, FakeClock(FRIDAY_EVENING), [])
    await callbacks.restore()
    with pytest.raises(ValueError, match=error):
        callbacks.schedule(queue=queue, number=number, when=when, agent_id=agent)
    await store.flush()
    assert await callbacks.records.listing(status=None, since=None, limit=10) == [] and published == []
    assert callbacks.schedule(queue="sales", number="13900139000", when="asap").id == 1  # and a good one is booked


async def test_a_waiting_callback_comes_back_at_its_place_after_a_restart(store: Store) -> None:
    clock = FakeClock(datetime.datetime(2025, 11, 12, 10, 0))
    first, _ = service(store, clock, [])
    await first.restore()
    booked = first.schedule(queue="sales", number="13900139000", when="asap")
    first.tick()
    await store.flush()
    clock.advance(120)
    second, _ = service(store, clock, [])
    await second.restore()
    (waiting,) = second.acd.engine.waiting("sales")
    assert waiting.call_id == booked.key and waiting.waited == pytest.approx(120)
    assert second.schedule(queue="sales", number="13900139000", when="asap").id == booked.id + 1


@pytest.mark.parametrize("order", ["agent_first", "customer_first"])
async def test_no_collector_pass_runs_between_a_callbacks_offer_and_its_dial(store: Store, order: str) -> None:
    """As for a waiting caller (test_acd_calls): a collector pass due between the engine's offer of a callback and
    the originate (the agent's phone, or the customer's number) would delay that dial by the pass's length. Here a
    pass is due at nearly every allocation: none runs before the originate, they run after."""
    clock = FakeClock(datetime.datetime(2025, 11, 12, 10, 0))  # a Wednesday morning
    passes: list[int] = []
    passes_at_originate: list[int] = []
    callbacks, _ = service(store, clock, [], callback_order=order)

    async def originate(endpoint: str, **_: Any) -> str:
        passes_at_originate.append(len(passes))
        await asyncio.sleep(0)
        return "out-1"

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            passes.append(info["generation"])

    callbacks.acd.originate = originate
    await callbacks.restore()
    callbacks.acd.command("login", "a1")
    callbacks.schedule(queue="sales", number="13900139000", when="asap", agent_id=None)
    threshold = gc.get_threshold()
    gc.callbacks.append(count)
    gc.set_threshold(1)
    try:
        callbacks.tick()  # offered to a1
        at_offer = len(passes)
        for _ in range(5):
            await asyncio.sleep(0)
        assert passes_at_originate == [at_offer]  # dialled with no pass in between
        assert gc.isenabled() and not RINGING.holding
        await asyncio.sleep(0)
        assert len(passes) > at_offer  # the collector runs again once dialled
    finally:
        gc.callbacks.remove(count)
        gc.set_threshold(*threshold)
