"""The store on each engine (a real SQLite file, a real PostgreSQL server): a failing commit keeps its
batch (in order) and is retried, one bad statement fails alone, reads answer while writes cannot, a stop
while the database cannot be written saves what is unsaved and the next start commits it.

The database fails for a reason of its own (not of the statement): on SQLite the disk is made full with
`PRAGMA max_page_count` (SQLite's own SQLITE_FULL path; test_store_fs.py fills a real file system); on
PostgreSQL another session holds a lock on the table, so each commit waits out the lock timeout and fails
(55P03), and a connection is cut with pg_terminate_backend."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from controller.store import db
from controller.store.bounds import OutOfRange, check_params, sql_int
from controller.store.db import StatementFailed, Store, StoreUnavailable, ValueOutOfRange
from tests.conftest import StoreTarget

BIG = "x" * 6000  # a row that needs a new page: the write fails when the database may not grow


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "RETRY_SECONDS", (0.05, 0.2))


def new_store(target: StoreTarget) -> Store:
    # A short statement (and lock) timeout on PostgreSQL: a commit blocked by the outage's lock fails fast.
    return Store(target.target, password=target.password, spill_dir=target.spill_dir, statement_timeout=0.2)


@contextlib.asynccontextmanager
async def writer_running(store: Store) -> AsyncIterator[None]:
    """The store's writer runs for the block (`Store.run_writer`), cancelled and awaited after it."""
    writer = asyncio.create_task(store.run_writer())
    try:
        yield
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)


@pytest.fixture
async def store(store_target: StoreTarget) -> AsyncIterator[Store]:
    store = new_store(store_target)
    await store.open()
    await store.execute("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER NOT NULL, pad TEXT)")
    yield store
    await store.close(retry_seconds=0)


class Outage:
    """The database cannot take writes for a while (see the module's docstring), then can again."""

    def __init__(self, target: StoreTarget, table: str = "t") -> None:
        self.target = target
        self.table = table  # PostgreSQL: the table locked
        self.reason = "full" if target.engine == "sqlite" else "timeout"  # in the store's messages
        self._blocker: Any = None

    async def start(self, store: Store) -> None:
        if self.target.engine == "sqlite":
            await disk_full(store, True)
            return
        import psycopg

        self._blocker = await asyncio.to_thread(psycopg.connect, str(self.target.target),
                                                password=self.target.password, connect_timeout=5)
        await asyncio.to_thread(self._blocker.execute, f"LOCK TABLE {self.table} IN EXCLUSIVE MODE")  # reads work

    async def stop(self, store: Store) -> None:
        if self.target.engine == "sqlite":
            if not store._closed:  # (the limit is the connection's own: a closed store has none)
                await disk_full(store, False)
        elif self._blocker is not None:
            blocker, self._blocker = self._blocker, None
            await asyncio.to_thread(blocker.rollback)
            await asyncio.to_thread(blocker.close)


@pytest.fixture
async def outage(store_target: StoreTarget) -> AsyncIterator[Outage]:
    failure = Outage(store_target)
    yield failure
    if failure._blocker is not None:
        failure._blocker.close()


async def disk_full(store: Store, full: bool) -> None:
    """Let the database grow no more (SQLITE_FULL on the next write that needs a page), or again."""
    conn = store._require()

    def limit() -> None:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count={pages if full else 1_000_000}")

    await store._run(limit)


async def numbers(store: Store) -> list[int]:
    return [row["n"] for row in await store.fetchall("SELECT n FROM t ORDER BY id")]


async def eventually(condition: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def test_a_failed_commit_is_retried_and_nothing_is_lost(store: Store, outage: Outage) -> None:
    writer = asyncio.create_task(store.run_writer())
    await outage.start(store)
    store.write("INSERT INTO t (n, pad) VALUES (1, ?)", (BIG,))
    with pytest.raises(StoreUnavailable) as failure:
        await store.flush()  # whoever waits learns of the failure, with the real reason ...
    assert outage.reason in str(failure.value)
    assert "cannot rollback" not in str(failure.value)
    assert store.health()["status"] == "degraded"
    store.write("INSERT INTO t (n, pad) VALUES (2, ?)", (BIG,))
    await eventually(lambda: store.commit_failures >= 3)
    assert store._pending  # ... the writer keeps trying ...
    await outage.stop(store)
    await eventually(lambda: not store._pending)  # ... and commits everything once it can
    assert await numbers(store) == [1, 2]
    assert store.health()["status"] == "ok"
    writer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writer


async def test_writes_queued_during_a_failing_commit_keep_their_order(store: Store, outage: Outage,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The failed batch goes back in FRONT of what was written meanwhile (issue 21: retry order)."""
    loop = asyncio.get_running_loop()
    real_commit = store._commit_sync
    first = True

    def commit_while_writes_arrive(batch: Any) -> Any:
        nonlocal first
        if first:  # while this (failing) commit runs, the event loop queues more writes
            first = False
            queued = threading.Event()

            def write_more() -> None:
                for n in (4, 5):
                    store.write("INSERT INTO t (n, pad) VALUES (?, ?)", (n, BIG))
                queued.set()

            loop.call_soon_threadsafe(write_more)
            assert queued.wait(5)
        return real_commit(batch)

    monkeypatch.setattr(store, "_commit_sync", commit_while_writes_arrive)
    await outage.start(store)
    for n in (1, 2, 3):
        store.write("INSERT INTO t (n, pad) VALUES (?, ?)", (n, BIG))
    with pytest.raises(StoreUnavailable):
        await store.flush()
    assert [params[0] for _ticket, _sql, params in store._pending] == [1, 2, 3, 4, 5]
    await outage.stop(store)
    writer = asyncio.create_task(store.run_writer())
    await eventually(lambda: not store._pending)
    assert await numbers(store) == [1, 2, 3, 4, 5]
    writer.cancel()


async def test_one_bad_statement_fails_alone(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """2**63 (webhook replay `since`, 20 collected digits as a priority), a constraint, an SQL error: each
    fails alone, its caller is told, the rest of the batch and every later batch commit, reads work."""
    writer = asyncio.create_task(store.run_writer())
    store.write("INSERT INTO t (n) VALUES (?)", (1,))
    store.write("INSERT INTO t (n) VALUES (?)", (2**63,))
    store.write("INSERT INTO t (n) VALUES (NULL)")  # NOT NULL constraint
    store.write("INSERT INTO nowhere VALUES (1)")
    store.write("INSERT INTO t (n) VALUES (?)", (2,))
    await store.flush()
    with pytest.raises(ValueOutOfRange) as out_of_range:
        await store.execute("INSERT INTO t (n) VALUES (?)", (12345678901234567890,))
    assert "12345678901234567890" not in str(out_of_range.value)  # collected digits stay out of messages
    with pytest.raises(StatementFailed, match=r"(?i)not[ -]null"):
        await store.execute("INSERT INTO t (n) VALUES (NULL)")
    await store.execute("INSERT INTO t (n) VALUES (?)", (3,))
    with pytest.raises(StatementFailed, match=r"(?i)not[ -]null"):  # one bad row of many: the others are stored
        await store.executemany("INSERT INTO t (n) VALUES (?)", [(4,), (None,), (5,)])
    assert await numbers(store) == [1, 2, 3, 4, 5]
    assert store.rejected == 6
    assert store.health()["status"] == "ok" and not store._pending
    assert "12345678901234567890" not in caplog.text and "statement not stored" in caplog.text
    with pytest.raises(OutOfRange):  # a read with such a number: a clear error, not OverflowError
        await store.fetchall("SELECT n FROM t WHERE n = ?", (-(2**63) - 1,))
    writer.cancel()


async def test_a_statement_failing_inside_the_commit_fails_alone(store: Store,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the check at `write()`, the OverflowError comes from sqlite3 during the commit: it must not
    wedge the store (it used to be retried forever and every read re-raised it)."""
    monkeypatch.setattr(db, "check_params", lambda params: None)
    store.write("INSERT INTO t (n) VALUES (?)", (1,))
    store.write("INSERT INTO t (n) VALUES (?)", (2**63,))
    store.write("INSERT INTO t (n) VALUES (?)", (2,))
    await store.flush()
    await store.execute("INSERT INTO t (n) VALUES (?)", (3,))
    assert await numbers(store) == [1, 2, 3]
    assert store.rejected == 1 and not store._pending


async def test_reads_answer_while_writes_cannot(store: Store, outage: Outage) -> None:
    await store.execute("INSERT INTO t (n) VALUES (1)")
    await outage.start(store)
    store.write("INSERT INTO t (n, pad) VALUES (2, ?)", (BIG,))
    with pytest.raises(StoreUnavailable):
        await store.flush()
    async with asyncio.timeout(0.5):  # at once: not after the next retry
        assert await numbers(store) == [1]
        with pytest.raises(StoreUnavailable):
            await store.execute("INSERT INTO t (n, pad) VALUES (3, ?)", (BIG,))
        with pytest.raises(ValueOutOfRange):  # what can never be stored says so, store failing or not
            await store.execute("INSERT INTO t (n) VALUES (?)", (2**63,))
    health = store.health()
    assert health["status"] == "degraded" and health["pending"] == 2 and outage.reason in health["last_error"]


async def test_a_stop_while_the_database_fails_saves_and_the_next_start_commits(
        store: Store, store_target: StoreTarget, outage: Outage, caplog: pytest.LogCaptureFixture) -> None:
    await outage.start(store)
    for n in (1, 2):
        store.write("INSERT INTO t (n, pad) VALUES (?, ?)", (n, BIG))
    caplog.set_level(logging.INFO, "controller.store")
    await store.close(retry_seconds=0.3)
    assert store.commit_failures >= 2  # it kept trying for a while
    assert "2 statements could not be committed" in caplog.text and "saved to" in caplog.text
    assert stat.S_IMODE(store.spill_path.stat().st_mode) == 0o600
    store.write("INSERT INTO t (n, pad) VALUES (3, ?)", ("late",))  # after close: saved too, not dropped
    await outage.stop(store)

    again = new_store(store_target)
    await again.open()
    assert await numbers(again) == [1, 2, 3]
    assert not again.spill_path.exists()
    await again.close()


async def test_open_makes_the_database_and_its_wal_and_shm_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store = Store(tmp_path / "s.sqlite3")
        await store.open()
        await store.execute("CREATE TABLE t (n INTEGER)")
        files = [tmp_path / name for name in ("s.sqlite3", "s.sqlite3-wal", "s.sqlite3-shm")]
        assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {f.name: 0o600 for f in files}
        await store.close()
        for file in files:  # files left 0644 by an older version are fixed at the next open
            if file.exists():
                file.chmod(0o644)
        store = Store(tmp_path / "s.sqlite3")
        await store.open()
        await store.execute("INSERT INTO t VALUES (1)")
        assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files if f.exists())
        await store.close()
    finally:
        os.umask(old)


def test_sql_int_names_the_field_and_the_range() -> None:
    assert sql_int(2**63 - 1, "since") == 2**63 - 1
    with pytest.raises(OutOfRange, match=r"since: expected an integer from 0 to 9223372036854775807"):
        sql_int(2**63, "since", minimum=0)
    with pytest.raises(OutOfRange, match="priority: expected an integer from -5 to 5"):
        sql_int(6, "priority", minimum=-5, maximum=5)
    with pytest.raises(OutOfRange, match="expected an integer"):
        sql_int(True, "priority")
    check_params((1, "x", 2.5, None, -(2**63)))
    with pytest.raises(OutOfRange, match="parameter since"):
        check_params({"since": 2**64})


async def test_a_transaction_left_open_does_not_hide_the_next_commit(store: Store) -> None:
    """A failed commit whose rollback also failed leaves a transaction open: the next batch still commits."""
    await store._run(store.engine.begin)
    await store.execute("INSERT INTO t (n) VALUES (7)")
    assert await numbers(store) == [7]


def test_environment_errors_are_told_from_statement_errors() -> None:
    conn = sqlite3.connect(":memory:")
    with pytest.raises(sqlite3.Error) as syntax:
        conn.execute("SELEC 1")
    assert not db.is_environment_error(syntax.value)
    assert not db.is_environment_error(OverflowError("Python int too large to convert to SQLite INTEGER"))


async def test_the_api_answers_503_while_the_store_fails_and_400_for_a_number_out_of_range() -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from controller.http.server import build_app, public

    @public
    async def failing(request: web.Request) -> web.Response:
        raise StoreUnavailable("the store cannot be written (database or disk is full)")

    @public
    async def too_big(request: web.Request) -> web.Response:
        sql_int(int(request.query["since"]), "since", minimum=0)
        return web.json_response({"ok": True})

    app = build_app([], [web.get("/failing", failing), web.get("/since", too_big)])
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/failing")
        assert response.status == 503 and "disk is full" in (await response.json())["error"]
        response = await client.get("/since", params={"since": str(2**63)})
        assert response.status == 400 and "since: expected an integer from 0" in (await response.json())["error"]
        response = await client.get("/since", params={"since": "5"})  # the positive twin
        assert response.status == 200


async def test_a_group_waiting_for_a_failing_database_is_saved_and_committed_whole_at_the_next_start(
        store: Store, store_target: StoreTarget, outage: Outage) -> None:
    await outage.start(store)
    group = [("INSERT INTO t (n, pad) VALUES (?, ?)", (n, BIG)) for n in (1, 2)]
    with pytest.raises(StoreUnavailable):
        await store.execute_atomic(group)  # kept: "don't write it again"
    await store.close(retry_seconds=0.1)
    assert "atomic group" in store.spill_path.read_text()
    await outage.stop(store)

    again = new_store(store_target)
    await again.open()
    assert await numbers(again) == [1, 2]
    with pytest.raises(StatementFailed):  # and a group with a statement that can never succeed: none of it
        await again.execute_atomic([("INSERT INTO t (n) VALUES (3)", ()), ("INSERT INTO t (n) VALUES (NULL)", ())])
    assert await numbers(again) == [1, 2]
    await again.close()


async def test_a_statement_built_at_commit_is_built_once_per_batch_from_the_state_of_the_cut(store: Store) -> None:
    state = {"n": 1}
    builds: list[int] = []

    def latest() -> list[tuple[str, tuple[Any, ...]]]:
        builds.append(state["n"])
        return [("INSERT INTO t (n) VALUES (?)", (state["n"] * 100,))]

    for n in (1, 2, 3):  # three changes before the batch is cut ...
        state["n"] = n
        store.write("INSERT INTO t (n) VALUES (?)", (n,))
        store.write_at_commit("latest", latest)
    assert builds == []
    await store.flush()
    assert builds == [3]  # ... one statement, built at the cut, with the state after all three
    assert await numbers(store) == [1, 2, 3, 300]  # committed in the batch of the changes
    await store.flush()
    assert builds == [3]  # nothing asked for since: nothing built
    state["n"] = 4
    store.write_at_commit("latest", latest)
    await store.flush()
    assert await numbers(store) == [1, 2, 3, 300, 400]


async def test_a_failing_builder_fails_alone_and_a_stopped_store_builds_before_freezing(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> list[tuple[str, tuple[Any, ...]]]:
        raise ValueError("no snapshot")

    store.write_at_commit("broken", broken)
    store.write("INSERT INTO t (n) VALUES (1)")
    await store.flush()
    assert await numbers(store) == [1]  # the other statement of its batch is stored
    assert "statement not stored" in caplog.text and "no snapshot" in caplog.text
    state = {"n": 2}
    store.write_at_commit("latest", lambda: [("INSERT INTO t (n) VALUES (?)", (state["n"],))])
    store.freeze()  # a graceful stop: what was asked for is built from the state before it ...
    state["n"] = 3
    store.write_at_commit("latest", lambda: [("INSERT INTO t (n) VALUES (?)", (state["n"],))])  # ... later: dropped
    await store.flush()
    assert await numbers(store) == [1, 2]


async def test_the_writer_commits_the_writes_of_a_window_together_in_order(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes spread over less than BATCH_WINDOW_SECONDS after the first one (a call's ARI events at a low call
    rate, each with its statements) go in one transaction, not one each, and nothing is committed before the
    window ends; later writes start a new window. Every write is committed, in order. The writer is woken once per
    window, when it is over (it was woken by every write: ~58 a call; then at the window's first write, to sleep
    out the window)."""
    monkeypatch.setattr(db, "BATCH_WINDOW_SECONDS", 1.0)  # long against the scheduler's jitter on a busy machine
    monkeypatch.setattr(db, "COMMITTED_FALLBACK_SECONDS", 5.0)  # (committed() waits for the writer, not its own)
    wakes: list[None] = []
    real_cut = store._cut
    monkeypatch.setattr(store, "_cut", lambda: (wakes.append(None), real_cut())[1])
    async with writer_running(store):
        loop = asyncio.get_running_loop()
        commits = store.commits
        started = loop.time()
        for n in range(10):  # over ~0.1 s, a tenth of the window
            store.write("INSERT INTO t (n) VALUES (?)", (n,))
            await asyncio.sleep(0.01)
        assert store.commits == commits  # still collecting
        assert not wakes  # (woken when the window is over, by its timer)
        assert await store.fetchall("SELECT n FROM t", flush=False) == []
        await store.committed()
        assert store.commits == commits + 1, f"{store.commits - commits} commits for 10 writes in one window"
        assert len(wakes) == 1
        assert loop.time() - started >= 1.0 - 0.01  # (the loop's clock may be coarser than time.monotonic)
        store.write("INSERT INTO t (n) VALUES (?)", (10,))  # the next window
        await store.committed()
        assert store.commits == commits + 2 and len(wakes) == 2
        rows = await store.fetchall("SELECT n FROM t ORDER BY id", flush=False)
        assert [row["n"] for row in rows] == list(range(11))


async def test_commits_of_their_own_leave_the_writer_one_window_not_more(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A commit asked for while the writer's window is open (`flush()`: a poller's read, an API write) takes the
    batch; the window's timer, still armed, then cuts what is written after it. The next write used to arm a timer of
    its own as well, and each such commit left one more window running out of phase with the others for as long as
    writes kept coming: at a 200 ms window, `bench_fullpath` at 10 calls/s committed every ~40 ms. Here 3 such
    commits a quarter of a window apart, then a write every 5 ms for 10 windows: about one commit per window (it
    was ~4), every write stored in order."""
    monkeypatch.setattr(db, "BATCH_WINDOW_SECONDS", 0.1)
    async with writer_running(store):
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(10):
            await asyncio.sleep(0.05)  # (the writer has started)
            for n in range(3):  # a quarter of a window apart: old timers stay out of phase
                store.write("INSERT INTO t (n) VALUES (?)", (n,))  # the first write armed the window ...
                await asyncio.sleep(db.BATCH_WINDOW_SECONDS / 4)
                await store.flush()  # ... and a commit of its own takes the batch
            commits = store.commits
            n = 3
            end = loop.time() + 10 * db.BATCH_WINDOW_SECONDS
            while loop.time() < end:
                store.write("INSERT INTO t (n) VALUES (?)", (n,))
                n += 1
                await asyncio.sleep(0.005)
            made = store.commits - commits
            await store.flush()
        assert made <= 12, f"{made} commits in 10 windows: more than one window runs"
        assert [row["n"] for row in await store.fetchall("SELECT n FROM t ORDER BY id", flush=False)] == list(range(n))


async def test_a_commit_by_the_writer_arms_one_timer_and_committed_waits_on_no_timer_of_its_own(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Per batch the writer's window is one loop timer, armed by the batch's first write, and `committed()` with a
    writer running waits for its commit with no fallback timer (it armed a timeout context per wait: the CTI bus
    waits once per batch): one timer per write-and-wait here, it was two. Every write is still committed."""
    monkeypatch.setattr(db, "BATCH_WINDOW_SECONDS", 0.01)
    loop = asyncio.get_running_loop()
    timers: list[float] = []
    call_at = loop.call_at

    def counted_call_at(when: float, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        timers.append(when)
        return call_at(when, *args, **kwargs)

    async with writer_running(store):
        async with asyncio.timeout(10):
            await asyncio.sleep(0.05)  # (the writer has started)
            monkeypatch.setattr(loop, "call_at", counted_call_at)
            commits = store.commits
            for n in range(5):
                store.write("INSERT INTO t (n) VALUES (?)", (n,))
                await store.committed()
            monkeypatch.setattr(loop, "call_at", call_at)
        assert len(timers) == 5 and store.commits == commits + 5
        assert [row["n"] for row in await store.fetchall("SELECT n FROM t ORDER BY id", flush=False)] == list(range(5))


async def test_the_writers_commit_costs_the_event_loop_its_timer_and_its_completion_only(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Per batch the event loop runs the window's timer, which hands the batch to the store's thread, and the
    commit's completion, which wakes those waiting: no task of the store's own is stepped in between (a writer task
    woken by the timer, a task per commit and its shield cost five loop callbacks more per batch, each a loop
    iteration on a quiet controller: README "Benchmarks", sixth session). Every write is still committed."""
    monkeypatch.setattr(db, "BATCH_WINDOW_SECONDS", 0.01)
    loop = asyncio.get_running_loop()
    scheduled: list[str] = []
    call_soon = loop.call_soon

    def counted_call_soon(callback: Any, *args: Any, **kwargs: Any) -> asyncio.Handle:
        scheduled.append(repr(callback))
        return call_soon(callback, *args, **kwargs)

    async with writer_running(store):
        async with asyncio.timeout(10):
            await asyncio.sleep(0.05)  # (the writer has started)
            for n in range(3):
                monkeypatch.setattr(loop, "call_soon", counted_call_soon)
                store.write("INSERT INTO t (n) VALUES (?)", (n,))
                await store.next_commit()
                monkeypatch.setattr(loop, "call_soon", call_soon)
                assert len(scheduled) == 1, scheduled  # this task's own wake-up, by the completion
                scheduled.clear()
        assert [row["n"] for row in await store.fetchall("SELECT n FROM t ORDER BY id", flush=False)] == [0, 1, 2]


async def test_committed_during_a_commit_waits_for_the_writer(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A `committed()` that starts while the writer's commit is under way waits for it (and the next one), whatever
    the outcome of the commit before: it is not taken for a failed one."""
    monkeypatch.setattr(db, "BATCH_WINDOW_SECONDS", 0.01)
    real_commit = store._commit_sync

    def slow_commit(batch: list[Any]) -> Any:
        time.sleep(0.2)
        return real_commit(batch)

    monkeypatch.setattr(store, "_commit_sync", slow_commit)
    async with writer_running(store):
        store.write("INSERT INTO t (n) VALUES (?)", (1,))
        await asyncio.sleep(0.1)  # its commit is under way
        assert store.health()["pending"] == 1
        store.write("INSERT INTO t (n) VALUES (?)", (2,))
        async with asyncio.timeout(5):
            await store.committed()
        assert [row["n"] for row in await store.fetchall("SELECT n FROM t ORDER BY id", flush=False)] == [1, 2]


async def test_committed_returns_when_the_writer_stops_before_committing(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """`committed()` waits for the running writer's commit with no timer of its own; when the writer stops first
    (the application stopping), the wait ends and it commits the writes itself, as with no writer."""
    monkeypatch.setattr(db, "BATCH_WINDOW_SECONDS", 30.0)  # the writer would commit long after the test's timeout
    writer = asyncio.create_task(store.run_writer())
    await asyncio.sleep(0)
    store.write("INSERT INTO t (n) VALUES (?)", (1,))
    waiting = asyncio.create_task(store.committed())
    await asyncio.sleep(0.05)
    assert not waiting.done() and store.writing
    writer.cancel()
    await asyncio.gather(writer, return_exceptions=True)
    async with asyncio.timeout(5):
        await waiting
    assert [row["n"] for row in await store.fetchall("SELECT n FROM t", flush=False)] == [1]


async def test_flush_execute_and_reads_of_ones_own_writes_do_not_wait_for_the_window(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "BATCH_WINDOW_SECONDS", 30.0)
    async with writer_running(store):
        async with asyncio.timeout(10):  # far below the window
            store.write("INSERT INTO t (n) VALUES (?)", (1,))
            await store.flush()
            await store.execute("INSERT INTO t (n) VALUES (?)", (2,))
            store.write("INSERT INTO t (n) VALUES (?)", (3,))
            assert [row["n"] for row in await store.fetchall("SELECT n FROM t ORDER BY id")] == [1, 2, 3]
            store.write("INSERT INTO t (n) VALUES (?)", (4,))
            await store.execute_atomic([("INSERT INTO t (n) VALUES (?)", (5,))])
        assert [row["n"] for row in await store.fetchall("SELECT n FROM t ORDER BY id", flush=False)] == [1, 2, 3, 4, 5]


async def test_committed_waits_for_the_writers_commit_or_commits_itself_without_a_writer(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    store.write("INSERT INTO t (n) VALUES (?)", (1,))
    await store.committed()  # no writer running: it commits them itself (after a short wait)
    assert [row["n"] for row in await store.fetchall("SELECT n FROM t", flush=False)] == [1]
    monkeypatch.setattr(db, "BATCH_WINDOW_SECONDS", 0.1)  # (below COMMITTED_FALLBACK_SECONDS)
    async with writer_running(store):
        commits = store.commits
        store.write("INSERT INTO t (n) VALUES (?)", (2,))
        waiting = asyncio.create_task(store.committed())
        await asyncio.sleep(0.02)
        store.write("INSERT INTO t (n) VALUES (?)", (3,))
        await waiting
        assert store.commits == commits + 1  # 2 and 3 in the writer's one commit: none of committed()'s own
        assert [row["n"] for row in await store.fetchall("SELECT n FROM t", flush=False)] == [1, 2, 3]


async def test_a_read_without_flush_answers_what_is_committed_and_commits_nothing(store: Store) -> None:
    await store.execute("INSERT INTO t (n) VALUES (?)", (1,))
    commits = store.commits
    store.write("INSERT INTO t (n) VALUES (?)", (2,))
    assert [row["n"] for row in await store.fetchall("SELECT n FROM t", flush=False)] == [1]
    assert store.commits == commits
    assert [row["n"] for row in await store.fetchall("SELECT n FROM t")] == [1, 2]  # read your own writes


async def test_queueing_a_statement_costs_four_python_calls(store: Store) -> None:
    """`write` is on every statement's path (~58 a call): the method itself, the parameters' check, the queueing and
    the statement's tuple. It was seven: a `_write` under `write`, an ABC's isinstance in the check, a wake of the
    writer per statement."""
    import cProfile
    import pstats

    profile = cProfile.Profile()
    gc.disable()  # (a collection here would count what it runs: finalizers of earlier tests' objects, callbacks)
    try:
        profile.enable()
        for n in range(100):
            store.write("INSERT INTO t (n, pad) VALUES (?, ?)", (n, "x"))
        profile.disable()
    finally:
        gc.enable()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    python_calls = sum(counts[1] for (path, _line, name), counts in stats.items()
                       if path != "~" and name != "disable")  # ("~": functions written in C)
    assert python_calls <= 4 * 100 + 1, python_calls  # (+1: the window's first write wakes the writer)
    await store.flush()
    assert [row["n"] for row in await store.fetchall("SELECT n FROM t ORDER BY id")] == list(range(100))
