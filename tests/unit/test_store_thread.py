"""The store's hand-off to its one thread (`StoreThread`, which replaced `loop.run_in_executor`): jobs run one at a
time in the order handed, off the event loop; each awaiter gets its own result or error; a cancelled awaiter
leaves the thread working; a stop waits for what was handed before, ends the thread and refuses new jobs."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from controller.store.db import Store, StoreThread


async def test_jobs_run_one_at_a_time_in_the_order_handed_on_one_thread_off_the_loop() -> None:
    thread = StoreThread("test-store")
    ran: list[int] = []
    running = {"now": 0, "most": 0}
    names: set[str] = set()

    def job(n: int) -> int:
        running["now"] += 1
        running["most"] = max(running["most"], running["now"])
        names.add(threading.current_thread().name)
        time.sleep(0.001 * (n % 3))  # uneven lengths: a second thread would finish them out of order
        ran.append(n)
        running["now"] -= 1
        return n * 10

    try:
        results = await asyncio.gather(*(thread.run(job, n) for n in range(30)))  # all handed before any runs
        assert results == [n * 10 for n in range(30)]
        assert ran == list(range(30))
        assert running["most"] == 1
        assert names == {"test-store"}
    finally:
        await thread.stop()


async def test_an_error_reaches_its_own_awaiter_and_the_thread_goes_on() -> None:
    thread = StoreThread()

    def fail(kind: type[BaseException]) -> None:
        raise kind("broken")

    try:
        first = thread.run(fail, ValueError)
        second = thread.run(lambda: "next")
        with pytest.raises(ValueError, match="broken"):
            await first
        assert await second == "next"
        with pytest.raises(RuntimeError, match="StopIteration"):  # (a future cannot hold StopIteration itself)
            await thread.run(fail, StopIteration)
        assert await thread.run(lambda: "after") == "after"
    finally:
        await thread.stop()


async def test_the_loop_runs_while_a_job_runs_and_a_cancelled_awaiter_leaves_the_thread_working() -> None:
    thread = StoreThread()
    finished = threading.Event()
    ticks = 0

    def slow() -> str:
        time.sleep(0.3)
        finished.set()
        return "done"

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    loop_errors: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, context: loop_errors.append(context))
    ticker = asyncio.create_task(tick())
    try:
        waiting = asyncio.ensure_future(thread.run(slow))
        await asyncio.sleep(0.15)
        assert ticks >= 5  # the event loop was not blocked by the job
        waiting.cancel()
        assert await thread.run(lambda: "next") == "next"  # handed after: runs once the slow job is over
        assert finished.is_set()
        assert waiting.cancelled()
        assert loop_errors == []  # its outcome dropped quietly, not set on a cancelled future
    finally:
        ticker.cancel()
        await thread.stop()


async def test_a_stop_waits_for_the_jobs_handed_before_ends_the_thread_and_refuses_new_ones() -> None:
    thread = StoreThread("test-stop")
    done: list[int] = []

    def job(n: int) -> None:
        time.sleep(0.02)
        done.append(n)

    pending = [thread.run(job, n) for n in range(5)]
    await thread.stop()
    assert done == list(range(5))
    assert all(future.done() for future in pending)
    assert not any(t.name == "test-stop" for t in threading.enumerate())
    with pytest.raises(RuntimeError, match="stopped"):
        thread.run(job, 5)
    await thread.stop()  # twice: nothing more


async def test_a_closed_store_has_no_thread_left_and_refuses_reads(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    await store.open()
    await store.execute("CREATE TABLE t (n INTEGER)")
    store.write("INSERT INTO t (n) VALUES (?)", (1,))
    assert [row["n"] for row in await store.fetchall("SELECT n FROM t")] == [1]  # the write, then the read
    worker = store._thread._thread
    assert worker is not None and worker.is_alive()
    await store.close()
    assert not worker.is_alive()
    with pytest.raises(RuntimeError):
        await store.fetchall("SELECT n FROM t", flush=False)


async def test_the_store_counts_its_round_trips_and_its_committed_statements_by_kind(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    await store.open()
    try:
        await store.execute("CREATE TABLE t (n INTEGER CHECK (n < 10))")
        trips = store.round_trips
        for n in (1, 2, 11):  # 11: refused by the CHECK, not committed
            store.write("INSERT INTO t (n) VALUES (?)", (n,))
        store.write("UPDATE t SET n = n + 1 WHERE n = ?", (1,))
        await store.flush()
        await store.fetchall("SELECT n FROM t", flush=False)
        assert store.round_trips - trips == 2  # one commit, one read
        kinds = store.writes_by_kind()
        assert kinds["INSERT INTO t"] == 2
        assert kinds["UPDATE t SET n = n + 1 WHERE n = ?"] == 1
    finally:
        await store.close()
