"""The ACD's saved state per store commit, at a big center's size: the former way (every agent encoded to JSON and
written as one row at each commit) against the rows of the agents that changed (README "Benchmarks", third round).

`CCC_BENCH_SAVED_AGENTS` agents (1,000 and 5,000) logged in, each with a day's figures; per commit 2 agents change
(what a call does between two commits: one rings, one goes to wrap-up). Printed per commit: the encoding on the event
loop (µs), the whole commit on SQLite (ms, fsync as configured), and the bytes of saved state written.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

from controller.acd.engine import AcdEngine, UnsavedChanges
from controller.acd.model import AgentSettings, QueueSettings
from controller.clock import FakeClock
from controller.plugins.acd.state_persistor import AcdRecords
from controller.store.db import Store
from controller.store.engines import upsert

SIZES = [int(n) for n in os.environ.get("CCC_BENCH_SAVED_AGENTS", "1000,5000").split(",")]
COMMITS = int(os.environ.get("CCC_BENCH_SAVED_COMMITS", "200"))
_SAVE_SNAPSHOT = upsert("acd_snapshot", ("id", "saved_at", "snapshot"), ("id",))  # the former single row


def center(agents: int) -> tuple[AcdEngine, FakeClock]:
    clock = FakeClock(1_800_000_000.0)
    acd = AcdEngine([QueueSettings("q1"), QueueSettings("q2")],
                    [AgentSettings(f"a{i}", "", str(i), f"e{i}", queues={f"q{1 + i % 2}": 0}) for i in range(agents)],
                    clock)
    for i in range(agents):
        acd.login(f"a{i}", ready=False)
        clock.advance(0.01)
        acd.not_ready(f"a{i}", "meeting")  # a day's figures: time in two states
    return acd, clock


def change_two(acd: AcdEngine, clock: FakeClock, n: int, agents: int) -> None:
    clock.advance(0.5)
    for agent_id in (f"a{(2 * n) % agents}", f"a{(2 * n + 1) % agents}"):
        acd.ready(agent_id)
        acd.not_ready(agent_id, "meal")


async def measure(agents: int, incremental: bool) -> tuple[float, float, float]:
    """(µs of encoding per commit, ms per commit, bytes of saved state per commit)."""
    acd, clock = center(agents)
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "bench.db")
        await store.open()
        records = AcdRecords(store, clock.now)
        encoding = 0.0
        written = 0

        def take() -> UnsavedChanges:
            nonlocal encoding, written
            started = time.perf_counter()
            changes = acd.take_unsaved()
            encoding += time.perf_counter() - started
            written += sum(len(text or "") for text in changes.agents.values())
            return changes

        def whole() -> list[tuple[str, tuple[object, ...]]]:
            nonlocal encoding, written
            started = time.perf_counter()
            text = json.dumps(acd.snapshot(), ensure_ascii=False)
            encoding += time.perf_counter() - started
            written += len(text)
            return [(_SAVE_SNAPSHOT, (1, clock.now(), text))]

        records.save_changes_at_commit(acd.take_unsaved)
        await store.flush()  # every agent's first row
        encoding, written = 0.0, 0
        started = time.perf_counter()
        for n in range(COMMITS):
            change_two(acd, clock, n, agents)
            if incremental:
                records.save_changes_at_commit(take)
            else:
                acd.take_unsaved()  # (forgotten: this way writes everything)
                store.write_at_commit("acd_snapshot", whole)
            await store.flush()
        elapsed = time.perf_counter() - started
        await store.close()
    return encoding / COMMITS * 1e6, elapsed / COMMITS * 1e3, written / COMMITS


async def run() -> None:
    print(f"{COMMITS} commits, 2 agents changed per commit")
    print(f"{'agents':>7}  {'saved state written':<34} {'encoding µs':>12} {'commit ms':>10} {'bytes':>9}")
    for agents in SIZES:
        for incremental, label in ((False, "every agent, one row (before)"), (True, "changed agents' rows (now)")):
            encode_us, commit_ms, size = await measure(agents, incremental)
            print(f"{agents:>7}  {label:<34} {encode_us:>12.1f} {commit_ms:>10.2f} {size:>9.0f}")


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
