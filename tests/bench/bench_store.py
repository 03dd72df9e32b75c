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
import random
import struct
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import uvloop

from controller.ids import unique_hex
from controller.plugins.acd.state_persistor import _ADD_DURATION, _SAVE_AGENT, AcdRecords
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


#: An agent's saved row (`AcdEngine._saved_agent`) as the bench's agents have it.
AGENT_ROW = ('{"state":"ready","reason":null,"since":1732693854.123,"endpoint":"PJSIP/5001",'
             '"logged_in_at":1732693800.5,"idle_since":1732693854.123,"calls_answered":12,"online_before":true,'
             '"seconds_by_state":{"ready":540.2,"talking":360.1,"ringing":4.8,"acw":60.0},"queue":null,'
             '"acw_until":null,"answers":[1732693854.123]}')
FULL_PATH_CALLS = 600  # measured, after HISTORY_CALLS written in batches of 50
HISTORY_CALLS = 3000


async def full_path_call(store: Store, records: tuple[CallRecords, AcdRecords, LiveCallState], n: int,
                         commit: bool = True) -> None:
    """A full-path call's statements as bench_fullpath counts them at 10 calls/s (call events 15, CTI events 15,
    live-call picture ~4, saved agent 3, agent states 3, durations 2, calls and queue_calls 8: 51), in its 3
    commits (IVR; queue, ring and answer; end)."""
    calls, acd, live = records
    call_id, agent, now = unique_hex(), str(5000 + n % 100), time.time  # (the controller's call ids)

    def cti(count: int, agent_id: str | None) -> None:
        for i in range(count):
            store.write(CTI_INSERT, (next(_seq), now(), "call.x", call_id, agent_id, "general",
                                     f'{{"caller":"13800138000","did":"4008001234","n":{i}}}'))

    calls.started(call_id, f"{1732693854 + n}.{n}", direction="inbound", caller=f"138{random.randrange(10**8):08d}",
                  did="4008001234")
    calls.answered(call_id)
    calls.set_flow(call_id, "main")
    for kind in ("answered", "playback", "dtmf", "node", "node", "playback"):
        calls.event(call_id, kind, node="menu", digits="1")
    cti(4, None)
    live.save(call_id, "call", {"channel": f"ch-{n}", "caller": "13800138000"})
    live.save(call_id, "ivr", {"node": "menu"})
    if commit:
        await store.flush()
    for kind in ("queued", "ringing", "offer", "agent_answered"):
        calls.event(call_id, kind, agent_id=agent)
    cti(5, agent)
    acd.enqueued(call_id, "general", 0)
    acd.agent_state(agent, "ringing", None, "ready", now())
    store.write_at_commit("acd_saved", lambda: [(_SAVE_AGENT, (agent, now(), AGENT_ROW))])
    live.save(call_id, "queue", {"queue": "general"})
    live.save(call_id, "ring", {"agent": agent})
    acd.offer(call_id, agent, 0.4, "answered")
    acd.left(call_id, "answered", 1.5, agent, None)
    acd.agent_state(agent, "talking", None, "ringing", now())
    live.drop(call_id, "ring")
    live.save(call_id, "talk", {"agent": agent})
    if commit:
        await store.flush()
    for kind in ("talk", "hold", "unhold", "hangup", "ended"):
        calls.event(call_id, kind, agent_id=agent)
    cti(6, agent)
    acd.talk_ended(call_id)
    acd.agent_state(agent, "acw", None, "talking", now())
    store.write_at_commit("acd_saved", lambda: [(_SAVE_AGENT, (agent, now(), AGENT_ROW)),
                                                (_ADD_DURATION, ("general", "talk", now(), 30.5)),
                                                (_ADD_DURATION, ("general", "ring", now(), 0.4))])
    calls.finished(call_id, {"lang": "zh", "menu": "1"}, reason="caller_hangup", cause=16, cause_txt="Normal Clearing")
    live.drop(call_id)
    if commit:
        await store.flush()


def _rows(conn: Any, sql: str) -> list[Any]:
    return list(conn.execute(sql).fetchall())


async def full_path_costs() -> None:
    """The store's thread's CPU, statements, commits and WAL frames (by table or index, read back from the -wal file
    and mapped with `dbstat`) per full-path call, on a store holding HISTORY_CALLS calls (README "Benchmarks", third
    round, fifth session). Frames: with the automatic checkpoint off, so that every frame of the calls stays there."""
    random.seed(1)
    for count_frames in (False, True):
        with tempfile.TemporaryDirectory(prefix="ccc-bench-store-") as folder:
            path = Path(folder) / "bench.sqlite3"
            store = Store(path)
            await store.open()
            records = CallRecords(store, time.time), AcdRecords(store, time.time), LiveCallState(store, time.time)
            for n in range(HISTORY_CALLS):
                await full_path_call(store, records, n, commit=False)
                if n % 50 == 49:
                    await store.flush()
            await store._run(_rows, store._require(), "PRAGMA wal_checkpoint(TRUNCATE)")
            if count_frames:
                await store._run(_rows, store._require(), "PRAGMA wal_autocheckpoint=0")
            assert store._thread._thread is not None
            clock = time.pthread_getcpuclockid(store._thread._thread.ident)  # type: ignore[arg-type]
            writes, commits, cpu = store.writes, store.commits, time.clock_gettime(clock)
            for n in range(HISTORY_CALLS, HISTORY_CALLS + FULL_PATH_CALLS):
                await full_path_call(store, records, n)
            cpu = time.clock_gettime(clock) - cpu
            if not count_frames:
                print(f"full-path call, its 3 commits alone: store thread {cpu * 1000 / FULL_PATH_CALLS:.3f} ms CPU,"
                      f" {(store.writes - writes) / FULL_PATH_CALLS:.1f} statements,"
                      f" {(store.commits - commits) / FULL_PATH_CALLS:.1f} commits per call", flush=True)
            else:
                data = path.with_name(path.name + "-wal").read_bytes()
                pages = [struct.unpack(">I", data[at:at + 4])[0] for at in range(32, len(data) - 4119, 4120)]
                names = dict(await store._run(_rows, store._require(), "SELECT pageno, name FROM dbstat"))
                frames = Counter(names.get(page, "(free)") for page in pages)
                print(f"  WAL frames per call {len(pages) / FULL_PATH_CALLS:.1f}: " + ", ".join(
                    f"{name} {count / FULL_PATH_CALLS:.1f}" for name, count in frames.most_common()), flush=True)
            await store.close()


def main() -> None:
    asyncio.run(full_path_costs())
    uvloop.run(round_trips())
    asyncio.run(run())


if __name__ == "__main__":
    main()
