"""The ACD's saved state (README "Benchmarks", third round): one row per agent and per queue, and at a commit only
the rows of the agents and queues that changed are written (an agent removed: their row deleted), in the batch of
the live-call parts they agree with; a controller upgraded from the former single snapshot row resumes from it and
replaces it by the rows; a failed commit loses no change. Engine-level tests are pure; the store's run on each store
engine (a real SQLite file, a real PostgreSQL server)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from controller.acd import engine as engine_module
from controller.acd.engine import AcdEngine, UnsavedChanges
from controller.acd.model import AgentSettings, QueueSettings
from controller.clock import FakeClock
from controller.plugins.acd.state_persistor import AcdRecords
from controller.plugins.calls.live_state import LiveCallState
from controller.store import db
from controller.store.db import Store, StoreUnavailable
from controller.store.engines import upsert
from tests.conftest import StoreTarget
from tests.unit.test_store import Outage, eventually


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "RETRY_SECONDS", (0.05, 0.2))


def center(clock: FakeClock, agents: int = 5) -> AcdEngine:
    return AcdEngine([QueueSettings("q", wrapup_seconds=5), QueueSettings("r")],
                     [AgentSettings(f"a{i}", f"Agent {i}", f"10{i:02d}", f"80{i:02d}", queues={"q": 0})
                      for i in range(agents)], clock)


class Rows:
    """The store's rows as `AcdEngine.snapshot()` spells them: what the changes taken so far wrote."""

    def __init__(self, acd: AcdEngine) -> None:
        self.acd = acd
        self.saved: dict[str, Any] = {"version": 1, "agents": {}, "queues": {}}

    def take(self) -> UnsavedChanges:
        """Take the engine's changes and write them."""
        changes = self.acd.take_unsaved()
        for agent_id, text in changes.agents.items():
            if text is None:
                self.saved["agents"].pop(agent_id, None)
            else:
                self.saved["agents"][agent_id] = json.loads(text)
        for queue, durations in changes.queues.items():
            if durations is None:
                self.saved["queues"].pop(queue, None)
                continue
            saved = self.saved["queues"].setdefault(queue, {"talks": [], "rings": []})
            for kind, change in zip(("talks", "rings"), durations, strict=True):
                saved[kind] += [list(pair) for pair in change.added]
                if change.forget_before is not None:
                    saved[kind] = [pair for pair in saved[kind] if pair[0] >= change.forget_before]
                saved[kind].sort()  # (rows have no order: a restart reads them back sorted)
        return changes


def as_stored(snapshot: dict[str, Any]) -> dict[str, Any]:
    """`snapshot` with each queue's durations sorted, as its rows read back: durations that ended at the same time
    come back in any order (the engine keeps them in the order they came)."""
    return {**snapshot, "queues": {name: {kind: sorted(pairs) for kind, pairs in durations.items()}
                                   for name, durations in snapshot["queues"].items()}}


# -- the engine: what changed ------------------------------------------------------------------------------


def test_only_the_agents_and_queues_that_changed_are_taken_each_once() -> None:
    clock = FakeClock()
    acd = center(clock)
    rows = Rows(acd)
    assert not acd.has_unsaved()  # configured agents who never logged in: nothing to keep
    for i in range(5):
        acd.login(f"a{i}", ready=False)
    assert sorted(rows.take().agents) == ["a0", "a1", "a2", "a3", "a4"] and rows.saved == acd.snapshot()
    assert not acd.has_unsaved() and rows.take() == UnsavedChanges({}, {})  # taken: not again
    acd.ready("a2")
    clock.advance(1)
    acd.enqueue("c1", "q")  # a2 rings
    assert acd.agent("a2").state == "ringing"
    assert set(rows.take().agents) == {"a2"}  # not the four others
    clock.advance(2)
    acd.answered("c1", "a2")  # the ring's time goes to the queue's row
    changes = rows.take()
    assert set(changes.agents) == {"a2"} and set(changes.queues) == {"q"}
    clock.advance(30)
    acd.call_ended("a2")
    changes = rows.take()
    assert set(changes.agents) == {"a2"} and set(changes.queues) == {"q"}
    assert rows.saved["agents"]["a2"]["state"] == "acw" and rows.saved["agents"]["a2"]["acw_until"] == clock.now() + 5
    clock.advance(5)
    acd.tick()  # the wrap-up ends by the clock
    assert set(rows.take().agents) == {"a2"}
    acd.upsert_agent(AgentSettings("a3", "Agent 3", "1003", "desk-3", queues={"q": 0}))  # a new default phone
    assert set(rows.take().agents) == {"a3"} and rows.saved["agents"]["a3"]["endpoint"] == "desk-3"
    assert rows.saved == acd.snapshot()


def test_a_removed_agent_and_a_removed_queue_are_taken_as_nothing_to_keep() -> None:
    clock = FakeClock()
    acd = center(clock)
    rows = Rows(acd)
    acd.login("a0")
    acd.login("a1")
    acd.upsert_agent(AgentSettings("a4", "Agent 4", "1004", "8004", queues={"r": 0}))
    acd.login("a4")
    acd.enqueue("c1", "r")
    clock.advance(1)
    acd.answered("c1", "a4")
    clock.advance(9)
    acd.call_ended("a4")
    changes = rows.take()
    assert set(changes.agents) == {"a0", "a1", "a4"} and set(changes.queues) == {"r"}
    acd.remove_agent("a0")  # ready: forgotten at once
    assert rows.take().agents == {"a0": None}
    acd.login("a2")
    clock.advance(1)
    acd.logout("a2")
    assert rows.take().agents.keys() == {"a2"} and rows.saved["agents"]["a2"]["state"] == "logged_out"
    acd.remove_agent("a2")  # logged out already, with the day's figures saved: forgotten, row and all
    assert rows.take().agents == {"a2": None}
    acd.enqueue("c2", "q")  # rings a1
    acd.answered("c2", "a1")
    rows.take()
    acd.remove_agent("a1")  # talking: they finish the call and its wrap-up first ...
    assert rows.take().agents == {}
    acd.call_ended("a1")
    rows.take()
    assert rows.saved["agents"]["a1"]["state"] == "acw"
    clock.advance(5)
    acd.tick()
    assert rows.take().agents == {"a1": None}  # ... then they go, and so does their row
    acd.logout("a4")
    acd.upsert_agent(AgentSettings("a4", "Agent 4", "1004", "8004", queues={}))
    acd.remove_queue("r")
    changes = rows.take()
    assert changes.queues == {"r": None} and set(changes.agents) == {"a4"}
    assert rows.saved == acd.snapshot() and set(rows.saved["agents"]) == {"a4"} and set(rows.saved["queues"]) == {"q"}


def test_changes_whose_encoding_fails_stay_unsaved(monkeypatch: pytest.MonkeyPatch) -> None:
    acd = center(FakeClock())
    acd.login("a0")
    acd.login("a1")

    def refuse(*_: object, **__: object) -> str:
        raise ValueError("cannot encode")

    with monkeypatch.context() as patched:
        patched.setattr(engine_module.jsontext, "dumps", refuse)
        with pytest.raises(ValueError, match="cannot encode"):
            acd.take_unsaved()
    assert acd.has_unsaved()
    assert set(acd.take_unsaved().agents) == {"a0", "a1"}  # the next commit writes them


# -- the store: the rows -------------------------------------------------------------------------------------


async def saved_at(store: Store) -> dict[str, float]:
    return {row["agent_id"]: row["saved_at"] for row in await store.fetchall(
        "SELECT agent_id, saved_at FROM acd_saved_agents")}


async def test_a_commit_writes_the_rows_of_what_changed_alone_with_the_live_parts(engine_store: Store) -> None:
    store = engine_store
    clock = FakeClock(1_800_000_000.0)
    acd = center(clock, agents=50)
    records = AcdRecords(store, clock.now)
    live = LiveCallState(store, clock.now)
    for i in range(50):
        acd.login(f"a{i}")
        records.save_changes_at_commit(acd.take_unsaved)
    await store.flush()
    first = clock.now()
    assert set((await saved_at(store)).values()) == {first} and len(await saved_at(store)) == 50
    clock.advance(10)
    acd.enqueue("c1", "q")  # the longest idle agent rings
    ringing = next(view.id for view in acd.agents() if view.state == "ringing")
    records.save_changes_at_commit(acd.take_unsaved)
    live.save("c1", "ring", {"agent_id": ringing})
    await store.flush()
    rows = await saved_at(store)
    assert [agent_id for agent_id, at in rows.items() if at != first] == [ringing]  # one row written, not 50
    assert (await live.load_all())["c1"]["ring"] == {"agent_id": ringing}
    assert await AcdRecords(store, clock.now).load_snapshot() == acd.snapshot()
    acd.answered("c1", ringing)
    clock.advance(20)
    acd.call_ended(ringing)
    acd.remove_agent("a7")
    records.save_changes_at_commit(acd.take_unsaved)
    await store.flush()
    loaded = await AcdRecords(store, clock.now).load_snapshot()
    assert loaded == acd.snapshot() and "a7" not in loaded["agents"] and len(loaded["agents"]) == 49
    assert loaded["queues"]["q"]["talks"] == [[clock.now(), 20.0]]


async def test_a_controller_upgraded_from_the_single_snapshot_row_resumes_from_it_and_replaces_it(
        engine_store: Store) -> None:
    store = engine_store
    clock = FakeClock(1_800_000_000.0)
    before = center(clock)
    before.login("a0")
    before.login("a1")
    before.not_ready("a1", "meal")
    before.login("a2")
    before.enqueue("c1", "q")  # rings a0
    clock.advance(3)
    before.answered("c1", "a0")
    clock.advance(40)
    before.login("a3")
    clock.advance(60)
    before.logout("a3")  # logged out: the day's figures are kept
    before.call_ended("a0")  # in ACW until +5
    old = before.snapshot()
    # what the former controller left (its schema had acd_snapshot only; migration 19 adds the new tables empty)
    await store.execute(upsert("acd_snapshot", ("id", "saved_at", "snapshot"), ("id",)),
                        (1, clock.now(), json.dumps(old)))
    clock.advance(1)
    records = AcdRecords(store, clock.now)
    snapshot = await records.load_snapshot()
    assert snapshot == old
    after = center(clock)
    after.restore(snapshot)
    assert [(v.id, v.state, v.reason) for v in after.agents()] == [
        ("a0", "acw", None), ("a1", "not_ready", "meal"), ("a2", "ready", None), ("a3", "logged_out", None),
        ("a4", "logged_out", None)]
    records.save_changes_at_commit(after.take_unsaved)
    await store.flush()
    assert await store.fetchall("SELECT id FROM acd_snapshot") == []  # replaced, in the batch of the rows
    again = await AcdRecords(store, clock.now).load_snapshot()
    assert again == after.snapshot() and set(again["agents"]) == {"a0", "a1", "a2", "a3"}
    assert again["queues"]["q"] == old["queues"]["q"]
    clock.advance(5)
    after.tick()  # the wrap-up restored goes on and ends at its time
    assert after.agent("a0").state == "ready"


async def test_changes_whose_commit_fails_are_written_once_the_store_can(store_target: StoreTarget) -> None:
    store = Store(store_target.target, password=store_target.password, spill_dir=store_target.spill_dir,
                  statement_timeout=0.2)  # (PostgreSQL: a commit blocked by the outage's lock fails fast)
    await store.open()
    writer = asyncio.create_task(store.run_writer())
    outage = Outage(store_target, table="acd_saved_agents")
    clock = FakeClock(1_800_000_000.0)
    acd = center(clock, agents=30)
    records = AcdRecords(store, clock.now)
    live = LiveCallState(store, clock.now)
    try:
        await outage.start(store)
        for i in range(30):
            acd.login(f"a{i}")
        records.save_changes_at_commit(acd.take_unsaved)
        live.save("c1", "ring", {"agent_id": "a0", "pad": "x" * 6000})  # (SQLite: a new page, the disk is full)
        with pytest.raises(StoreUnavailable):
            await store.flush()
        assert not acd.has_unsaved()  # taken: they are in the batch the store keeps and tries again ...
        await eventually(lambda: store.commit_failures >= 2)
        clock.advance(5)
        acd.not_ready("a0", "meal")  # ... and what changes meanwhile goes in after them
        acd.logout("a1")
        records.save_changes_at_commit(acd.take_unsaved)
        await outage.stop(store)
        await eventually(lambda: not store._pending and not store._committing)
        loaded = await AcdRecords(store, clock.now).load_snapshot()
        assert loaded == acd.snapshot() and len(loaded["agents"]) == 30
        assert loaded["agents"]["a0"]["reason"] == "meal" and loaded["agents"]["a1"]["state"] == "logged_out"
        assert (await live.load_all())["c1"]["ring"]["agent_id"] == "a0"
    finally:
        await outage.stop(store)
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        await store.close(retry_seconds=0)


def a_call(acd: AcdEngine, clock: FakeClock, call_id: str, ring: float, talk: float) -> None:
    """A call to queue q that rings agent a0 (the only one ready) `ring` seconds, then talks `talk` seconds."""
    acd.enqueue(call_id, "q")
    clock.advance(ring)
    acd.answered(call_id, "a0")
    clock.advance(talk)
    acd.call_ended("a0")


async def test_a_duration_is_one_small_row_and_a_restart_restores_the_kept_ones(engine_store: Store) -> None:
    """A call's talk adds one row to its queue's durations (the queue's whole list was rewritten before: ~25 kB
    with 2 x 500 pairs); the rows restore what the engine keeps, also once durations were forgotten."""
    store = engine_store
    clock = FakeClock(1_800_000_000.0)
    acd = center(clock)
    records = AcdRecords(store, clock.now)
    acd.login("a0")
    for n in range(engine_module.estimates.MAX_TALKS + 5):  # past the cap: the oldest are forgotten
        a_call(acd, clock, f"c{n}", ring=1, talk=10)
        clock.advance(5)
        acd.tick()  # (the wrap-up ends)
        records.save_changes_at_commit(acd.take_unsaved)
        if n % 50 == 0:
            await store.flush()
    await store.flush()
    written = dict(store.written)
    a_call(acd, clock, "last", ring=1, talk=10)
    records.save_changes_at_commit(acd.take_unsaved)
    await store.flush()
    statements = {sql: count - written.get(sql, 0) for sql, count in store.written.items()
                  if count != written.get(sql, 0)}
    assert sorted(statements.items()) == sorted({
        "INSERT INTO acd_queue_durations (queue, kind, ended_at, seconds) VALUES (?, ?, ?, ?)": 2,  # ring, talk
        next(sql for sql in statements if "acd_saved_agents" in sql): 1}.items())
    stored = await store.fetchall("SELECT COUNT(*) AS n FROM acd_queue_durations WHERE kind = 'talk'")
    assert stored[0]["n"] > engine_module.estimates.MAX_TALKS  # (the forgotten ones go in bulk, later)
    loaded = await AcdRecords(store, clock.now).load_snapshot()
    assert loaded is not None
    again = center(clock)
    again.restore(loaded)
    assert again.snapshot()["queues"] == acd.snapshot()["queues"]
    assert len(acd.snapshot()["queues"]["q"]["talks"]) == engine_module.estimates.MAX_TALKS


async def test_a_controller_upgraded_from_a_row_per_queue_resumes_from_it_and_moves_it(engine_store: Store) -> None:
    store = engine_store
    clock = FakeClock(1_800_000_000.0)
    before = center(clock)
    before.login("a0")
    a_call(before, clock, "c1", ring=3, talk=40)
    old = before.snapshot()
    # what a controller before schema 21 left: its queue's durations as one row
    await store.execute("INSERT INTO acd_saved_queues (queue, saved_at, talks, rings) VALUES (?, ?, ?, ?)",
                        ("q", clock.now(), json.dumps(old["queues"]["q"]["talks"]),
                         json.dumps(old["queues"]["q"]["rings"])))
    await store.execute("INSERT INTO acd_saved_queues (queue, saved_at, talks, rings) VALUES (?, ?, ?, ?)",
                        ("gone", clock.now(), "[[1.0, 2.0]]", "[]"))  # a queue no longer configured
    records = AcdRecords(store, clock.now)
    snapshot = await records.load_snapshot()
    assert snapshot is not None and snapshot["queues"]["q"] == old["queues"]["q"]
    after = center(clock)
    after.restore(snapshot)
    records.save_changes_at_commit(after.take_unsaved)
    await store.flush()
    assert await store.fetchall("SELECT queue FROM acd_saved_queues") == []  # moved, in one batch
    again = await AcdRecords(store, clock.now).load_snapshot()
    assert again is not None and again["queues"] == {"q": old["queues"]["q"]}
