"""Store writes per second on each engine, with the statements a call writes, in the batches the call path
makes (the writer commits whatever queued since the last commit: one call's statements when calls are few,
many calls' under load).

SQLite: a file in a temporary folder (WAL, synchronous=NORMAL: a commit is not fsynced until a checkpoint).
PostgreSQL: Debian's server started for the bench (tests/pg_server.py) with its production defaults
(fsync, synchronous_commit on: every commit waits for the disk), over TCP on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import uvloop

from controller.plugins.acd.state_persistor import AcdRecords
from controller.plugins.calls.live_state import LiveCallState
from controller.plugins.calls.state_persistor import CallRecords
from controller.plugins.cti.services import _INSERT as CTI_INSERT
from controller.store.db import Store, StoreThread
from tests.pg_server import PostgresServer

SECONDS = 3.0  # per engine and batch size
ROUND_TRIPS = 2000  # per way of handing a job to the store's thread
CALLS_PER_BATCH = (1, 10, 50)
_seq = itertools.count(1)


def one_call(store: Store, n: int) -> int:
    """What one IVR -> queue -> agent call writes (the real persistors); returns the statement count."""
    now = time.time
    calls, acd, live = CallRecords(store, now), AcdRecords(store, now), LiveCallState(store, now)
    call_id = f"bench-{n}"
    before = store._last_ticket
    calls.started(call_id, f"ch-{n}", direction="inbound", caller="13800138000", did="4008001234")
    calls.answered(call_id)
    live.save(call_id, "call", {"channel": f"ch-{n}"})
    for kind in ("answered", "playback", "dtmf", "node", "queued"):
        calls.event(call_id, kind, node="menu", digits="1")
    live.save(call_id, "ivr", {"node": "menu"})
    acd.enqueued(call_id, "general", 0)
    live.save(call_id, "queue", {"queue": "general"})
    acd.offer(call_id, "1001", 0.4, "answered")
    acd.agent_state("1001", "ringing", None, "ready", now())
    acd.left(call_id, "answered", 1.5, "1001", None)
    acd.agent_state("1001", "talking", None, "ringing", now())
    live.save(call_id, "talk", {"agent": "1001"})
    for kind in ("call.started", "call.queued", "call.ringing", "call.answered", "call.ended"):
        store.write(CTI_INSERT, (next(_seq), now(), kind, call_id, "1001", "general", "{}"))
    acd.talk_ended(call_id)
    acd.agent_state("1001", "acw", None, "talking", now())
    calls.ended(call_id, reason="caller_hangup", cause=16, cause_txt="Normal Clearing")
    live.drop(call_id)
    return store._last_ticket - before


async def measure(store: Store, calls_per_batch: int) -> tuple[float, float, int]:
    """Statements/s and calls/s over SECONDS, batches of `calls_per_batch` calls."""
    writer = asyncio.create_task(store.run_writer())
    numbers = itertools.count()
    statements = calls = 0
    started = time.perf_counter()
    while time.perf_counter() - started < SECONDS:
        for _ in range(calls_per_batch):
            statements += one_call(store, next(numbers))
            calls += 1
        await store.flush()
    elapsed = time.perf_counter() - started
    writer.cancel()
    per_call = statements // max(calls, 1)
    return statements / elapsed, calls / elapsed, per_call


async def run_engine(name: str, store: Store) -> None:
    await store.open()
    try:
        for size in CALLS_PER_BATCH:
            await store.execute("DELETE FROM calls")
            per_second, calls_per_second, per_call = await measure(store, size)
            print(f"{name:<11} {size:>3} calls ({size * per_call:>4} statements) a commit:"
                  f" {per_second:>8.0f} statements/s, {calls_per_second:>7.0f} calls' records/s", flush=True)
    finally:
        await store.close()


async def run() -> None:
    with tempfile.TemporaryDirectory(prefix="ccc-bench-store-") as folder:
        await run_engine("sqlite", Store(Path(folder) / "bench.sqlite3"))
        server = PostgresServer(durable=True)
        server.start()
        try:
            url = server.new_database("bench")
            await run_engine("postgresql", Store(url, password=server.password, spill_dir=Path(folder)))
        finally:
            server.stop()


def _noop() -> None:
    return None


async def cpu_per_round_trip(round_trip: Callable[[], Awaitable[object]], gap_s: float) -> float:
    """Process CPU µs per `round_trip` of a no-op, the thread asleep in between (as on the call path: a few
    jobs a call, ms apart), less the CPU of the sleeps alone."""
    async def timed(with_trip: bool) -> float:
        started = time.process_time()
        for _ in range(ROUND_TRIPS):
            if with_trip:
                await round_trip()
            await asyncio.sleep(gap_s)
        return time.process_time() - started
    return (await timed(True) - await timed(False)) * 1e6 / ROUND_TRIPS


async def round_trips() -> None:
    """The store's hand-off to its thread (`StoreThread`) against `loop.run_in_executor` it replaced, on uvloop
    (the controller's loop)."""
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=1)
    thread = StoreThread("bench")
    ways: dict[str, Callable[[], Awaitable[object]]] = {
        "run_in_executor": lambda: loop.run_in_executor(executor, _noop), "StoreThread": lambda: thread.run(_noop)}
    for gap_s in (0.0, 0.0005):
        for name, way in ways.items():
            await way()  # (the thread started)
            cpu = min([await cpu_per_round_trip(way, gap_s) for _ in range(3)])
            how = "back to back" if not gap_s else "thread asleep"
            print(f"round trip to the store's thread, {name:<15} {how:<13}: {cpu:5.1f} µs CPU", flush=True)
    executor.shutdown()
    await thread.stop()


def main() -> None:
    uvloop.run(round_trips())
    asyncio.run(run())


if __name__ == "__main__":
    main()
