"""`Store.write_watched` / `outcome`: a writer learns whether its statement was committed or rejected without
reading it back (the CTI bus publishes an event once its row is committed), on each engine."""

from __future__ import annotations

from controller.store.db import Store


async def test_a_watched_statement_is_told_committed_or_rejected_once_its_batch_is_done(engine_store: Store) -> None:
    store = engine_store
    await store.execute("CREATE TABLE t (n INTEGER NOT NULL)")
    stored = store.write_watched("INSERT INTO t (n) VALUES (?)", (1,))
    refused = store.write_watched("INSERT INTO t (n) VALUES (NULL)")  # NOT NULL: can never be stored
    out_of_range = store.write_watched("INSERT INTO t (n) VALUES (?)", (2**63,))  # refused before queueing
    assert stored is not None and refused is not None and out_of_range is not None
    assert store.outcome(stored) is None and store.outcome(refused) is None  # not committed yet
    await store.committed()
    assert (store.outcome(stored), store.outcome(refused), store.outcome(out_of_range)) == (True, False, False)
    assert [row["n"] for row in await store.fetchall("SELECT n FROM t")] == [1]
    assert not store._watched  # answered: forgotten
    forgotten = store.write_watched("INSERT INTO t (n) VALUES (NULL)")
    assert forgotten is not None
    store.forget(forgotten)
    await store.committed()
    assert not store._watched


async def test_a_statement_written_to_a_frozen_store_has_no_ticket(engine_store: Store) -> None:
    """A graceful stop drops writes: such a statement is never reported committed."""
    await engine_store.execute("CREATE TABLE t (n INTEGER NOT NULL)")
    before = engine_store.write_watched("INSERT INTO t (n) VALUES (?)", (1,))
    engine_store.freeze()
    assert before is not None and engine_store.write_watched("INSERT INTO t (n) VALUES (?)", (2,)) is None


async def test_the_outcomes_of_a_batch_of_watched_statements_in_one_call(engine_store: Store) -> None:
    """`stored`: how many of a batch's tickets were committed (what the CTI bus asks per commit), each forgotten."""
    store = engine_store
    await store.execute("CREATE TABLE t (n INTEGER NOT NULL)")
    tickets = [store.write_watched("INSERT INTO t (n) VALUES (?)", (n,)) for n in (1, None, 3)]  # (NULL: refused)
    assert store.stored(tickets) == 0 and not store._watched  # not committed yet: not counted (and forgotten)
    tickets = [store.write_watched("INSERT INTO t (n) VALUES (?)", (n,)) for n in (4, None, 6)]
    await store.committed()
    assert store.stored([*tickets, None]) == 2 and not store._watched  # None: a statement never queued
    assert sorted(row["n"] for row in await store.fetchall("SELECT n FROM t")) == [1, 3, 4, 6]
