"""A change of a row written within the store's batch window of the statement that writes the row goes in that
statement (`Store.amend`): a call's answer and flow in its INSERT, a queue visit's offers, end and talk's end in
its INSERT or in the UPDATE before. The rows end as the statements one by one would leave them (compared with the
same writes committed one at a time), on each engine, and a statement a commit has taken is never changed."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from controller.plugins.acd.state_persistor import AcdRecords
from controller.plugins.calls.state_persistor import CallRecords
from controller.store.db import Store, StoreUnavailable


def _clock() -> Callable[[], float]:
    ticks = itertools.count(1)
    return lambda: 1_700_000_000.0 + next(ticks)


async def _row(store: Store, sql: str, *params: Any) -> dict[str, Any]:
    row = await store.fetchone(sql, params)
    assert row is not None
    return dict(row)


async def test_amend_replaces_a_queued_statement_in_its_place_and_never_one_a_commit_took(engine_store: Store) -> None:
    store = engine_store
    await store.execute("CREATE TABLE f (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
    first = store.write("INSERT INTO f (id, n) VALUES (?, ?)", (1, 10))
    store.write("UPDATE f SET n = n * 2 WHERE id = ?", (1,))
    assert store.queued(first)
    assert store.amend(first, "INSERT INTO f (id, n) VALUES (?, ?)", (1, 11))  # runs before the UPDATE, as it was
    assert not store.amend(first, "INSERT INTO f (id, n) VALUES (?, ?)", (1, 2**63))  # out of range: left as it is
    await store.flush()
    assert (await _row(store, "SELECT n FROM f WHERE id = 1"))["n"] == 22
    assert not store.queued(first)
    assert not store.amend(first, "INSERT INTO f (id, n) VALUES (?, ?)", (2, 1))  # committed: nothing changes
    store.write("UPDATE f SET n = n + 1 WHERE id = ?", (1,))  # (queued: a newer one)
    assert not store.amend(first, "INSERT INTO f (id, n) VALUES (?, ?)", (2, 1))
    await store.flush()
    assert [dict(row) for row in await store.fetchall("SELECT id, n FROM f")] == [{"id": 1, "n": 23}]
    store.freeze()
    assert not store.amend(store.write("INSERT INTO f (id, n) VALUES (?, ?)", (3, 1)), "SELECT 1", ())


async def test_a_statement_of_a_failed_commit_is_never_amended(engine_store: Store,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Queued again after its commit failed, it is left as it was tried: on PostgreSQL a COMMIT cut short may have
    landed, and the retry skips the statements that did (a change folded into one would be lost)."""
    store = engine_store
    await store.execute("CREATE TABLE f (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
    first = store.write("INSERT INTO f (id, n) VALUES (?, ?)", (1, 10))

    def failing(batch: Any) -> Any:
        raise OSError("the disk is gone")

    monkeypatch.setattr(store, "_commit_sync", failing)
    with pytest.raises(StoreUnavailable):
        await store.flush()
    assert [ticket for ticket, _sql, _params in store._pending] == [first]  # (queued again)
    assert not store.queued(first)
    assert not store.amend(first, "INSERT INTO f (id, n) VALUES (?, ?)", (1, 11))
    monkeypatch.undo()
    store._failing_since = None  # (the outage is over: no wait for the retry's backoff)
    await store.flush()
    assert [dict(row) for row in await store.fetchall("SELECT id, n FROM f")] == [{"id": 1, "n": 10}]


async def _call(store: Store, commit_each: bool, call_id: str = "c1") -> dict[str, Any]:
    records = CallRecords(store, _clock())
    records.started(call_id, "ch-1", direction="inbound", caller="13800138000", did="4008001234")
    for write in (lambda: records.answered(call_id), lambda: records.set_flow(call_id, "main"),
                  lambda: records.answered(call_id), lambda: records.set_flow(call_id, "survey")):
        if commit_each:
            await store.flush()
        write()
    await store.flush()
    return await _row(store, "SELECT call_id, channel_id, direction, caller, did, started_at, answered_at, flow"
                             " FROM calls WHERE call_id = ?", call_id)


async def test_a_calls_answer_and_flow_go_in_its_insert_still_queued(engine_store: Store) -> None:
    store = engine_store
    writes = store.writes
    one_by_one = await _call(store, commit_each=True, call_id="c0")
    assert store.writes - writes == 5
    writes = store.writes
    folded = await _call(store, commit_each=False)
    assert store.writes - writes == 1  # the INSERT alone, with the answer and the flow in it
    assert folded == {**one_by_one, "call_id": "c1"}
    assert folded["answered_at"] == 1_700_000_002.0 and folded["flow"] == "survey"  # the first answer, the last flow


async def test_a_folded_insert_of_a_call_already_stored_sets_what_the_updates_would_have(engine_store: Store) -> None:
    """An INSERT that meets the row (a call started again with its id) does nothing, but the folded answer and flow
    still land as the UPDATEs they replace would have: an answer where there was none, the flow always."""
    store = engine_store
    await store.execute("INSERT INTO calls (call_id, channel_id, direction, caller, did, started_at, flow)"
                        " VALUES ('c1', 'ch-0', 'inbound', '1', '2', 5.0, 'old')")
    row = await _call(store, commit_each=False)
    assert (row["channel_id"], row["started_at"], row["answered_at"], row["flow"]) == ("ch-0", 5.0, 1_700_000_002.0,
                                                                                       "survey")
    await store.execute("UPDATE calls SET answered_at = 7.0, flow = 'old' WHERE call_id = 'c1'")
    row = await _call(store, commit_each=False)
    assert (row["answered_at"], row["flow"]) == (7.0, "survey")  # an answer stored already stays


async def _visit(store: Store, call_id: str, commit_after: set[int] | range) -> list[dict[str, Any]]:
    """A call's two queue visits, committed after the steps numbered in `commit_after`: its rows."""
    records = AcdRecords(store, _clock())
    steps = [lambda: records.enqueued(call_id, "sales", 3),
             lambda: records.offer(call_id, "1001", 4.0, "no_answer"),
             lambda: records.offer(call_id, "1002", 2.0, "answered"),
             lambda: records.left(call_id, "answered", 6.5, "1002"),
             lambda: records.talk_ended(call_id),
             lambda: records.enqueued(call_id, "support", 0),  # (a second visit: the first one stays as it was)
             lambda: records.left(call_id, "abandoned", 1.0, None)]
    for number, step in enumerate(steps):
        step()
        if number in commit_after:
            await store.flush()
    await store.flush()
    rows = await store.fetchall("SELECT * FROM queue_calls WHERE call_id = ? ORDER BY id", (call_id,))
    return [{key: value for key, value in dict(row).items() if key not in ("id", "call_id")} for row in rows]


@pytest.mark.parametrize(("commit_after", "statements"), [(set(), 2), ({1}, 3), ({3}, 3), ({0, 4}, 3)])
async def test_a_queue_visits_changes_go_in_its_statement_still_queued(engine_store: Store, commit_after: set[int],
                                                                        statements: int) -> None:
    store = engine_store
    writes = store.writes
    one_by_one = await _visit(store, "q0", range(7))
    assert store.writes - writes == 7
    assert one_by_one[0]["offers"].count("agent_id") == 2 and one_by_one[0]["talk_ended_at"] is not None
    writes = store.writes
    assert await _visit(store, "q1", commit_after) == one_by_one
    # A visit's writes up to a commit are one statement (its INSERT, or the UPDATE of its first change since).
    assert store.writes - writes == statements
