"""The live-call picture on a real SQLite file: parts saved, replaced, dropped, read back after a restart;
and the resume dispatch in `CallsService.readopt` over it (Asterisk faked: what it lists, what it is sent)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from controller.ari.dispatcher import Dispatcher
from controller.ari.models import Bridge, Channel
from controller.config import Config
from controller.plugins.calls.live_state import LiveCallState
from controller.plugins.calls.services import CallsService, Resumption
from controller.plugins.calls.session import CallSession
from controller.plugins.calls.state_persistor import CallRecords
from controller.store.db import Store
from tests.conftest import StoreTarget


@pytest.fixture
def store(engine_store: Store) -> Store:
    """On each store engine (tests/conftest.py)."""
    return engine_store


async def test_parts_are_saved_replaced_and_dropped(store: Store) -> None:
    live = LiveCallState(store, lambda: 100.0)
    live.save("c1", "call", {"channel_id": "ch1", "did": "4000"})
    live.save("c1", "talk", {"agent_id": "a1", "talk_bridge": "br-talk-1"})
    live.save("c1", "talk", {"agent_id": "a2", "talk_bridge": "br-talk-1"})  # replaced, not added
    live.save("c2", "call", {"channel_id": "ch2", "did": "中文"})
    await store.flush()
    assert await live.load_all() == {
        "c1": {"call": {"channel_id": "ch1", "did": "4000"}, "talk": {"agent_id": "a2", "talk_bridge": "br-talk-1"}},
        "c2": {"call": {"channel_id": "ch2", "did": "中文"}},
    }
    live.drop("c1", "talk")
    live.drop("c2")
    await store.flush()
    assert await live.load_all() == {"c1": {"call": {"channel_id": "ch1", "did": "4000"}}}


async def test_a_call_changed_several_times_before_a_commit_is_one_statement_as_it_stands(store: Store) -> None:
    """Between two commits a call costs one statement whatever changed in it (a row per part cost one per part),
    and the order of the words on one call holds: a part saved before the call ended is gone with it; one saved
    after it ended stays."""
    live = LiveCallState(store, lambda: 1.0)
    live.save("c1", "call", {"channel_id": "ch1"})
    await store.flush()
    writes = store.writes
    live.save("c1", "ring", {"legs": ["a1"]})
    live.save("c1", "queue", {"queue": "sales"})
    live.drop("c1", "ring")
    live.drop("c1", "queue")
    live.drop("c1", "ring")  # (the answer: the visit's parts go, twice for the ring)
    live.save("c1", "talk", {"agent_id": "a1"})
    live.save("c1", "call", {"channel_id": "ch1", "state": "talking"})
    live.save("c2", "call", {"channel_id": "ch2"})
    live.drop("c2")  # ended before its first commit
    live.drop("c3")
    live.save("c3", "call", {"channel_id": "ch3"})  # (a new call of that id after its end)
    await store.flush()
    assert store.writes - writes == 3  # c1's row, c2's delete, c3's row
    assert await live.load_all() == {"c1": {"call": {"channel_id": "ch1", "state": "talking"},
                                            "talk": {"agent_id": "a1"}},
                                     "c3": {"call": {"channel_id": "ch3"}}}
    live.save("c1", "recording", {"id": "r1"})
    live.drop("c1")  # the call ended: whatever its parts were to become
    await store.flush()
    assert await live.load_all() == {"c3": {"call": {"channel_id": "ch3"}}}


async def test_a_part_saved_as_it_is_or_dropped_when_absent_writes_nothing(store: Store) -> None:
    live = LiveCallState(store, lambda: 1.0)
    live.save("c1", "call", {"channel_id": "ch1", "phase": "ivr"})
    live.save("c1", "ivr", {"node": "menu"})
    await store.flush()
    writes = store.writes
    live.save("c1", "call", {"phase": "ivr", "channel_id": "ch1"})  # the same object (keys in another order: no)
    live.save("c1", "call", {"channel_id": "ch1", "phase": "ivr"})
    live.drop("c1", "ring")
    live.drop("c2", "queue")
    await store.flush()
    assert store.writes - writes == 1  # the first of them only (its text differs)
    writes = store.writes
    live.save("c1", "ivr", {"node": "menu"})
    live.drop("c1", "talk")
    await store.flush()
    assert store.writes == writes
    live.save("c1", "ivr", {"node": "queue"})  # a real change still goes
    await store.flush()
    assert store.writes - writes == 1
    assert await live.load_all() == {"c1": {"call": {"phase": "ivr", "channel_id": "ch1"},
                                            "ivr": {"node": "queue"}}}
    with pytest.raises(ValueError, match="unknown live-call part"):
        live.save("c1", "bogus", {})


async def test_a_resumed_call_keeps_the_parts_it_does_not_save_again(store_target: StoreTarget) -> None:
    """The next process holds the calls it read: saving one part of a resumed call (a row per call) keeps the
    others the previous process stored."""
    first = Store(store_target.target, **store_target.kwargs())  # type: ignore[arg-type]
    await first.open()
    previous = LiveCallState(first, lambda: 1.0)
    previous.save("c1", "call", {"channel_id": "ch1"})
    previous.save("c1", "talk", {"agent_id": "a1"})
    previous.save("c1", "recording", {"id": "r1"})
    await first.close(retry_seconds=0)
    second = Store(store_target.target, **store_target.kwargs())  # type: ignore[arg-type]
    await second.open()
    try:
        live = LiveCallState(second, lambda: 2.0)
        assert set((await live.load_all())["c1"]) == {"call", "talk", "recording"}
        live.save("c1", "talk", {"agent_id": "a1", "held": True})
        live.drop("c1", "recording")
        await second.flush()
        assert await LiveCallState(second, lambda: 3.0).load_all() == {
            "c1": {"call": {"channel_id": "ch1"}, "talk": {"agent_id": "a1", "held": True}}}
        live.drop("c1", "call")
        live.drop("c1", "talk")  # no part left: no row
        await second.flush()
        assert await second.fetchall("SELECT * FROM live_call_pictures") == []
    finally:
        await second.close(retry_seconds=0)


async def test_rows_of_a_controller_before_the_upgrade_are_resumed_and_moved(store: Store) -> None:
    """A row per call and part (`live_calls`, before schema 20): read as they are, then written as the calls' rows
    in one transaction with their delete."""
    await store.execute_atomic([
        ("INSERT INTO live_calls (call_id, part, data, updated_at) VALUES (?, ?, ?, 1)", params)
        for params in (("c1", "call", '{"channel_id": "ch1"}'), ("c1", "queue", '{"queue": "sales"}'),
                       ("c2", "call", '{"channel_id": "ch2"}'), ("c2", "ivr", "{bad"))])
    live = LiveCallState(store, lambda: 1.0)
    expected = {"c1": {"call": {"channel_id": "ch1"}, "queue": {"queue": "sales"}},
                "c2": {"call": {"channel_id": "ch2"}}}
    assert await live.load_all() == expected
    await store.flush()
    assert await store.fetchall("SELECT * FROM live_calls") == []
    assert len(await store.fetchall("SELECT * FROM live_call_pictures")) == 2
    assert await LiveCallState(store, lambda: 2.0).load_all() == expected


async def test_the_picture_survives_a_new_process(store_target: StoreTarget) -> None:
    first = Store(store_target.target, **store_target.kwargs())  # type: ignore[arg-type]
    await first.open()
    LiveCallState(first, lambda: 1.0).save("c1", "queue", {"queue": "sales", "enqueued_at": 12.5})
    await first.close(retry_seconds=0)
    second = Store(store_target.target, **store_target.kwargs())  # type: ignore[arg-type]
    await second.open()
    try:
        assert await LiveCallState(second, lambda: 2.0).load_all() == {"c1": {"queue": {"queue": "sales",
                                                                                        "enqueued_at": 12.5}}}
    finally:
        await second.close(retry_seconds=0)


async def test_an_unreadable_part_is_left_out(store: Store) -> None:
    live = LiveCallState(store, lambda: 1.0)
    live.save("c1", "call", {"channel_id": "ch1"})
    await store.flush()
    await store.execute("INSERT INTO live_call_pictures (call_id, parts, updated_at) VALUES ('c2', '{bad', 1)")
    await store.execute("INSERT INTO live_call_pictures (call_id, parts, updated_at) VALUES ('c3', ?, 1)",
                        ('{"call": {"channel_id": "ch3"}, "ivr": [1]}',))
    assert await live.load_all() == {"c1": {"call": {"channel_id": "ch1"}}, "c3": {"call": {"channel_id": "ch3"}}}


async def test_a_frozen_store_drops_writes(store: Store) -> None:
    live = LiveCallState(store, lambda: 1.0)
    live.save("c1", "call", {"channel_id": "ch1"})
    await store.flush()
    store.freeze()
    live.drop("c1")
    live.save("c2", "call", {"channel_id": "ch2"})
    await store.flush()
    assert await live.load_all() == {"c1": {"call": {"channel_id": "ch1"}}}


class FakeAri:
    """What readopt reads from Asterisk, and the fallback and clean-up requests it sends."""

    def __init__(self, channels: list[Channel], bridges: list[Bridge]) -> None:
        self.live, self.live_bridges = channels, bridges
        self.sent: list[tuple[str, str]] = []

    async def channels(self) -> list[Channel]:
        return self.live

    async def bridges(self) -> list[Bridge]:
        return self.live_bridges

    async def set_var(self, channel_id: str, name: str, value: str, **_: Any) -> None:
        self.sent.append(("set_var", f"{channel_id}:{value}"))

    async def continue_in_dialplan(self, channel_id: str, **_: Any) -> None:
        self.sent.append(("fallback", channel_id))

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        self.sent.append(("hangup", channel_id))

    async def destroy_bridge(self, bridge_id: str) -> None:
        self.sent.append(("destroy_bridge", bridge_id))


def in_stasis(channel_id: str, args: str) -> Channel:
    return Channel(channel_id, "", "Up", "", "", "", "", "Stasis", f"ccc,{args}", "zh", "", {})


async def test_readopt_hands_each_stored_call_to_its_parts_in_order(store: Store) -> None:
    """Parts are asked in the order call → recording → talk / ring / queue / ivr; the first handler wins;
    a call nobody takes goes to the fallback route (reason in its events); a call whose caller is gone is
    closed with its closer's reason, one the guard sent to the fallback route as such; an empty bridge of
    ours nobody owns is removed; a bridge in use stays."""
    live = LiveCallState(store, time.time)
    records = CallRecords(store, time.time)
    for call_id, channel_id in (("c1", "ch1"), ("c2", "ch2"), ("c3", "ch3"), ("c4", "ch4")):
        records.started(call_id, channel_id, direction="inbound", caller="13800138000", did="4000")
        live.save(call_id, "call", {"channel_id": channel_id, "did": "4000", "started_at": time.time() - 30})
    live.save("c1", "recording", {"name": "r1"})
    live.save("c1", "talk", {"agent_id": "a1"})
    live.save("c1", "ivr", {"node": "menu"})
    live.save("c2", "queue", {"queue": "sales"})
    live.save("c3", "talk", {"agent_id": "a2"})
    in_dialplan = Channel("ch4", "", "Up", "", "", "", "", "Queue", "ccc-fallback", "zh", "", {})  # the guard's
    ari = FakeAri([in_stasis("ch1", "4000"), in_stasis("ch2", "4000"), in_dialplan],
                  [Bridge("br-talk-1", "mixing", ("ch1", "leg-1"), {"name": "c1"}),
                   Bridge("br-queue-2", "holding", (), {"name": "c2"}), Bridge("other", "mixing", (), {})])
    tasks: list[asyncio.Task[None]] = []
    calls = CallsService(config=Config(), ari=ari, dispatcher=Dispatcher(lambda event: None),  # type: ignore[arg-type]
                         records=records, spawn=lambda coro: tasks.append(asyncio.ensure_future(coro)),
                         publish=lambda *a, **k: None)
    calls.live = live
    asked: list[str] = []
    ran: list[str] = []

    def resumer(part: str, takes: bool) -> Any:
        async def resume(resumption: Resumption) -> Any:
            asked.append(f"{resumption.session.call_id}:{part}")
            if not takes:
                resumption.notes.append(f"{part}: nothing to go on with")
                return None

            async def handler(session: CallSession) -> None:
                ran.append(f"{session.call_id}:{part}")
            return handler
        return resume

    async def close_talk(call_id: str, parts: dict[str, dict[str, Any]]) -> str | None:
        return "caller_hangup"

    for part, takes in (("ivr", True), ("queue", False), ("talk", True), ("recording", False)):
        calls.register_resumer(part, resumer(part, takes), close_talk if part == "talk" else None)
    with pytest.raises(ValueError, match="unknown live-call part"):
        calls.register_resumer("bogus", resumer("bogus", True))
    await calls.readopt()
    await asyncio.gather(*tasks)
    await store.flush()
    assert asked == ["c1:recording", "c1:talk", "c2:queue"]
    assert ran == ["c1:talk"]
    assert ("fallback", "ch2") in ari.sent and ("fallback", "ch1") not in ari.sent
    assert ("destroy_bridge", "br-queue-2") in ari.sent and ("destroy_bridge", "br-talk-1") not in ari.sent
    assert ("destroy_bridge", "other") not in ari.sent  # not ours
    c2 = await records.get("c2")
    assert c2 is not None and c2["end_reason"] == "fallback"
    assert [e["reason"] for e in c2["events"] if e["kind"] == "recovered"] == ["queue: nothing to go on with"]
    c3 = await records.get("c3")
    assert c3 is not None and c3["end_reason"] == "caller_hangup"
    c4 = await records.get("c4")
    assert c4 is not None and c4["end_reason"] == "fallback"
    assert set(await live.load_all()) == set()  # every call ended (c1's handler returned at once)
