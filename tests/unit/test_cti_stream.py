"""The CTI stream's numbering against a real SQLite store: committed before published, in order, no gap
or repeat across a crash or a failing store; the WebSocket and polling pages; the agent's scope."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import sqlite3
import time
import tracemalloc
from asyncio import selector_events
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer

from controller import jsontext
from controller.config import TokenSettings
from controller.http.server import build_app
from controller.plugins.cti import resources, services
from controller.plugins.cti.notifier import WebhookNotifier
from controller.plugins.cti.services import AgentScope, CtiEvent, EventBus, EventFilter
from controller.store import db
from controller.store.db import Store
from tests.conftest import StoreTarget

TOKENS = [TokenSettings("ops", "admin-token", "admin"), TokenSettings("crm", "crm-token", "integration"),
          TokenSettings("a1", "agent-1001-token", "agent", "1001")]


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "RETRY_SECONDS", (0.02, 0.1))
    monkeypatch.setattr(services, "RETRY_SECONDS", (0.02, 0.1))


class Running:
    """A store with its writer and a bus with its committer, as the controller runs them."""

    def __init__(self, target: StoreTarget, **bus_options: Any) -> None:
        self.store = Store(target.target, **target.kwargs())  # type: ignore[arg-type]
        self.bus = EventBus(self.store, time.time, **bus_options)
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> Running:
        await self.store.open()
        await self.bus.open()
        self.tasks = [asyncio.create_task(self.store.run_writer()), asyncio.create_task(self.bus.run())]
        return self

    async def crash(self) -> None:
        """Stop everything at once, committing nothing more (like SIGKILL)."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.store._pending.clear()
        await self.store.close()

    async def stop(self) -> None:
        for task in reversed(self.tasks):
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.store.close()


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    """On SQLite (the tests taking `store_target` run on both engines: tests/conftest.py)."""
    system = await Running(StoreTarget.sqlite(tmp_path)).start()
    yield system
    await system.stop()


def publish_calls(bus: EventBus, count: int, prefix: str = "c") -> None:
    for n in range(count):
        bus.publish("call.held", call_id=f"{prefix}{n}")


async def until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def fail_commits(store: Store, monkeypatch: pytest.MonkeyPatch, count: int) -> list[Exception]:
    real_commit = store._commit_sync
    failures: list[Exception] = [sqlite3.OperationalError("disk I/O error")] * count

    def flaky_commit(batch: list[Any]) -> Any:
        if failures:
            raise failures.pop()
        return real_commit(batch)

    monkeypatch.setattr(store, "_commit_sync", flaky_commit)
    return failures


def published(bus: EventBus) -> list[int]:
    """The numbers of the events the bus hands to its listeners, as it does."""
    seqs: list[int] = []
    bus.listeners.append(lambda events: seqs.extend(event.seq for event in events))
    return seqs


async def test_an_event_is_published_only_once_committed_in_order(running: Running) -> None:
    bus = running.bus
    seen = published(bus)
    publish_calls(bus, 3)
    assert not seen and bus.last_seq == 0  # numbered, not out yet
    await until(lambda: len(seen) == 3)
    assert seen == [1, 2, 3] and bus.last_seq == 3
    rows = await running.store.fetchall("SELECT seq FROM cti_events ORDER BY seq")
    assert [row["seq"] for row in rows] == [1, 2, 3]


async def test_a_failing_store_holds_events_until_they_are_committed(running: Running,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    bus = running.bus
    seen = published(bus)
    failures = fail_commits(running.store, monkeypatch, 10_000)  # failing until cleared below
    publish_calls(bus, 5)
    await until(lambda: bus.commit_failures >= 2)
    assert not seen and bus.unpersisted == 5 and bus.last_seq == 0
    publish_calls(bus, 2, prefix="later")
    failures.clear()  # the store recovers
    await until(lambda: len(seen) == 7)
    assert seen == [1, 2, 3, 4, 5, 6, 7] and bus.unpersisted == 0
    rows = await running.store.fetchall("SELECT seq, call_id FROM cti_events ORDER BY seq")
    assert [row["call_id"] for row in rows] == ["c0", "c1", "c2", "c3", "c4", "later0", "later1"]


async def test_an_event_the_store_rejected_is_not_published_and_is_written_again(running: Running) -> None:
    """A row the store refuses (here a trigger: the store logs it and commits the rest of the batch) is not taken
    for committed: neither it nor the events after it go out until it is written again and stored (the one before
    it, committed, goes out at once). The bus learns it from the store's outcome of its statement, not by reading
    rows back."""
    bus, store = running.bus, running.store
    seen = published(bus)
    await store.execute("CREATE TRIGGER refuse_two BEFORE INSERT ON cti_events WHEN NEW.seq = 2"
                        " BEGIN SELECT RAISE(ABORT, 'refused'); END")
    publish_calls(bus, 3)
    await until(lambda: bus.commit_failures >= 2)  # refused, written again, refused again
    assert seen == [1] and bus.last_seq == 1 and bus.unpersisted == 2
    assert [row["seq"] for row in await store.fetchall("SELECT seq FROM cti_events ORDER BY seq")] == [1, 3]
    await store.execute("DROP TRIGGER refuse_two")
    await until(lambda: len(seen) == 3)
    assert seen == [1, 2, 3] and bus.unpersisted == 0
    assert [row["seq"] for row in await store.fetchall("SELECT seq FROM cti_events ORDER BY seq")] == [1, 2, 3]
    assert not store._watched and not bus._tickets  # every ticket answered or forgotten


async def test_events_published_while_a_batch_waits_for_its_commit_go_out_with_it(running: Running) -> None:
    """An event published while the batch before it waits for the store's commit, and stored by that commit, goes
    to the listeners with that batch (one fan-out, one write to each /ws client), not in a batch of its own after
    it; one the same commit refused is held (with those behind it) and written again, never skipped. (The writer
    is stopped here, so that the bus takes each batch at once and commits it after COMMITTED_FALLBACK_SECONDS.)"""
    bus, store = running.bus, running.store
    writer = running.tasks.pop(0)
    writer.cancel()
    await asyncio.gather(writer, return_exceptions=True)
    batches: list[list[int]] = []
    bus.listeners.append(lambda events: batches.append([event.seq for event in events]))
    bus.publish("call.held", call_id="c1")
    await asyncio.sleep(0.05)  # the bus took it and waits for its commit ...
    assert bus.unpersisted == 1 and not batches
    bus.publish("call.held", call_id="c2")  # ... these are written meanwhile, and stored by the same commit
    bus.publish("call.held", call_id="c3")
    await until(lambda: sum(map(len, batches)) == 3)
    assert batches == [[1, 2, 3]]  # one fan-out
    await store.execute("CREATE TRIGGER refuse_five BEFORE INSERT ON cti_events WHEN NEW.seq = 5"
                        " BEGIN SELECT RAISE(ABORT, 'refused'); END")
    bus.publish("call.held", call_id="c4")
    await asyncio.sleep(0.05)
    bus.publish("call.held", call_id="c5")  # refused by the commit that stores 4 and 6
    bus.publish("call.held", call_id="c6")
    await until(lambda: bus.commit_failures >= 1)
    assert batches[1:] == [[4]] and bus.last_seq == 4  # 5 and 6 wait: 5 is written again
    await store.execute("DROP TRIGGER refuse_five")
    await until(lambda: bus.last_seq == 6)
    assert [seq for batch in batches for seq in batch] == [1, 2, 3, 4, 5, 6] and bus.unpersisted == 0
    assert [row["seq"] for row in await store.fetchall("SELECT seq FROM cti_events ORDER BY seq")] == list(range(1, 7))
    assert not store._watched and not bus._tickets  # every ticket answered or forgotten


async def test_with_the_writer_running_a_publish_does_not_wake_the_bus_its_commit_does(
        running: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bus waits for the store's next commit, which stores what is published meanwhile, rather than for a
    publish (then for the commit): one task step and one Event wait less per batch. Every event still goes out, in
    order, each once committed."""
    bus, store = running.bus, running.store
    seen = published(bus)
    woken = [0]
    wait = bus._wake.wait

    async def counted_wait() -> bool:
        woken[0] += 1
        return await wait()

    monkeypatch.setattr(bus._wake, "wait", counted_wait)
    for n in range(1, 4):  # a batch each
        bus.publish("call.held", call_id=f"c{n}")
        await until(lambda: len(seen) == n)  # noqa: B023 (awaited here)
    assert seen == [1, 2, 3] and woken == [0]
    assert [row["seq"] for row in await store.fetchall("SELECT seq FROM cti_events ORDER BY seq")] == [1, 2, 3]


async def test_with_the_writer_running_a_commit_publishes_its_events_without_waking_the_bus_task(
        running: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each commit publishes the events it stored in its own loop iteration (a listener of the store): the bus's
    task is not stepped for it (it was woken by every commit, a loop iteration each: ~3 a call at 10 calls/s).
    Every event still goes out, in order, once committed, and not before."""
    bus, store = running.bus, running.store
    batches: list[list[int]] = []
    bus.listeners.append(lambda events: batches.append([event.seq for event in events]))
    await asyncio.sleep(0.05)  # (the bus's task waits)
    bus_task = running.tasks[1]
    steps: list[Any] = []
    loop = asyncio.get_running_loop()
    call_soon = loop.call_soon

    def counted_call_soon(callback: Any, *args: Any, **kwargs: Any) -> asyncio.Handle:
        if getattr(callback, "__self__", None) is bus_task:
            steps.append(callback)
        return call_soon(callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_soon", counted_call_soon)
    for n in range(1, 4):  # a commit each
        bus.publish("call.held", call_id=f"c{n}")
        bus.publish("call.ended", call_id=f"c{n}")
        assert batches[n - 1:] == []  # not before its commit
        await store.next_commit()
        assert batches[n - 1:] == [[2 * n - 1, 2 * n]]
    monkeypatch.setattr(loop, "call_soon", call_soon)
    assert steps == [] and bus.unpersisted == 0 and bus.last_seq == 6
    assert [row["seq"] for row in await store.fetchall("SELECT seq FROM cti_events ORDER BY seq")] == list(range(1, 7))


async def test_events_are_published_without_reading_their_rows_back(running: Running,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Each committed batch of events costs no read of the store (it was one executor round trip per batch)."""
    bus, store = running.bus, running.store
    seen = published(bus)
    reads: list[str] = []
    real_fetchall = store.fetchall

    async def counting_fetchall(sql: str, *args: Any, **kwargs: Any) -> Any:
        reads.append(sql)
        return await real_fetchall(sql, *args, **kwargs)

    monkeypatch.setattr(store, "fetchall", counting_fetchall)
    for n in range(5):
        publish_calls(bus, 3, prefix=f"burst{n}-")
        await until(lambda n=n: len(seen) == 3 * (n + 1))  # type: ignore[misc]
    assert seen == list(range(1, 16)) and reads == []


async def test_events_published_after_the_store_froze_for_a_stop_are_not_published(
        running: Running, caplog: pytest.LogCaptureFixture) -> None:
    """A graceful stop freezes the store (writes are dropped): an event written then is never reported committed
    nor sent, and that is the stop, not a failure: no error, no retry (it was logged as "the store committed only
    0 of events" and retried until the bus was cancelled). The one before is published."""
    bus, store = running.bus, running.store
    seen = published(bus)
    publish_calls(bus, 1, prefix="before")
    await until(lambda: len(seen) == 1)
    store.freeze()
    publish_calls(bus, 1, prefix="after")
    await asyncio.sleep(0.5)  # several retry periods (quick_retries: 0.02-0.1 s)
    assert seen == [1] and bus.last_seq == 1 and bus.unpersisted == 1
    assert bus.commit_failures == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


@pytest.mark.parametrize("why", ["graceful stop", "refused row"])
async def test_an_event_left_unstored_is_a_failure_unless_a_graceful_stop_left_it_unwritten(
        running: Running, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, why: str) -> None:
    """Three events of which the store commits the first two: the third was published after a graceful stop froze
    the store (its row was never queued: the stop's own event, left to the next process) or its row was refused.
    The first two go out with the commit that stored them; the third, not stored (0 of 3-3), is a failure, counted
    and logged, only when the store refused it; at a graceful stop it is the stop: nothing counted or logged. The
    store's writer keeps running, so the rows queued before the freeze are committed by its next window."""
    bus, store = running.bus, running.store
    partial: list[tuple[int, int, int]] = []
    not_all_stored = bus._not_all_stored

    def noted(first: int, last: int, stored: int) -> None:
        partial.append((first, last, stored))
        not_all_stored(first, last, stored)

    monkeypatch.setattr(bus, "_not_all_stored", noted)
    if why == "refused row":
        await store.execute("CREATE TRIGGER refuse_three BEFORE INSERT ON cti_events WHEN NEW.seq = 3"
                            " BEGIN SELECT RAISE(ABORT, 'refused'); END")
    publish_calls(bus, 2, prefix="before")  # queued to the store, not committed yet (its batch window)
    if why == "graceful stop":
        store.freeze()
    publish_calls(bus, 1, prefix="last")
    await until(lambda: bool(partial))
    await asyncio.sleep(0.2)  # retry periods (quick_retries: 0.02-0.1 s)
    assert partial[0] == (3, 3, 0)  # 1-2 went out with their commit: the third is left, not stored
    assert [row["seq"] for row in await store.fetchall("SELECT seq FROM cti_events ORDER BY seq")] == [1, 2]
    assert [event.seq for event in await bus.since(0)] == [1, 2]  # published: the two stored
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and r.name == "controller.cti"]
    if why == "graceful stop":
        assert set(partial) == {(3, 3, 0)}  # nothing stored: the bus waits to be cancelled
        assert bus.commit_failures == 0 and errors == [], caplog.text
    else:
        assert len(partial) >= 2 and bus.commit_failures == len(partial)  # written again, refused again
        assert errors[0] == "CTI: the store committed only 0 of events 3-3; writing them again"
        await store.execute("DROP TRIGGER refuse_three")
        await until(lambda: bus.last_seq == 3)


async def test_numbering_after_a_crash_never_repeats_a_number_anyone_saw(store_target: StoreTarget,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[int, str | None] = {}

    def watch(bus: EventBus) -> None:
        def record(events: list[CtiEvent]) -> None:
            for event in events:
                assert seen.setdefault(event.seq, event.call_id) == event.call_id, "a number went out twice"
                seen[event.seq] = event.call_id
        bus.listeners.append(record)

    first = await Running(store_target).start()
    watch(first.bus)
    publish_calls(first.bus, 4, prefix="before")
    await until(lambda: first.bus.last_seq == 4)
    fail_commits(first.store, monkeypatch, 1000)  # the store stops committing, then the process dies
    publish_calls(first.bus, 3, prefix="lost")
    await until(lambda: first.bus.commit_failures >= 1)
    await first.crash()

    second = await Running(store_target).start()
    watch(second.bus)
    assert second.bus.last_seq == 4
    publish_calls(second.bus, 2, prefix="after")
    await until(lambda: second.bus.last_seq == 6)
    await second.stop()
    assert seen == {1: "before0", 2: "before1", 3: "before2", 4: "before3", 5: "after0", 6: "after1"}


async def test_beyond_the_bound_new_events_are_refused_without_a_gap(store_target: StoreTarget,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    system = await Running(store_target, max_unpersisted=3).start()
    failures = fail_commits(system.store, monkeypatch, 3)
    events = [system.bus.publish("call.held", call_id=f"c{n}") for n in range(5)]
    assert [e.seq if e else None for e in events] == [1, 2, 3, None, None] and system.bus.dropped == 2
    await until(lambda: not failures and system.bus.last_seq == 3)
    later = system.bus.publish("call.held", call_id="later")
    assert later is not None and later.seq == 4
    await until(lambda: system.bus.last_seq == 4)
    await system.stop()


async def test_call_ended_concerns_the_agent_the_call_was_with(running: Running) -> None:
    bus = running.bus
    bus.publish("call.ringing", call_id="mine", agent_id="1001", queue="q", endpoint="8001", screen_pop={})
    bus.publish("call.ringing", call_id="colleague", agent_id="1002", queue="q", endpoint="8002", screen_pop={})
    bus.publish("call.ended", call_id="colleague", reason="caller_hangup", cause=16, cause_txt=None, duration=1.0)
    bus.publish("call.ended", call_id="mine", reason="caller_hangup", cause=16, cause_txt=None, duration=1.0)
    bus.publish("call.ended", call_id="never-offered", reason="caller_hangup", cause=16, cause_txt=None,
                duration=1.0)
    await until(lambda: bus.last_seq == 5)
    agent = EventFilter(agent_id="1001")
    mine = [(e.type, e.call_id) for e in await bus.since(0) if agent.matches(e)]
    assert mine == [("call.ringing", "mine"), ("call.ended", "mine")]


# -- HTTP: the WebSocket's replay and polling ---------------------------------------------------------


@pytest.fixture
async def client(running: Running) -> AsyncIterator[TestClient[Any, Any]]:
    notifier = WebhookNotifier([], running.bus, running.store, lambda: None)
    server = TestServer(build_app(TOKENS, resources.routes(running.bus, notifier)))
    async with TestClient(server) as test_client:
        yield test_client


async def test_websocket_since_pages_through_a_long_backlog_then_goes_live(tmp_path: Path) -> None:
    # Most of the backlog is read from the store.
    system = await Running(StoreTarget.sqlite(tmp_path), recent=500).start()
    publish_calls(system.bus, 25_000)
    await until(lambda: system.bus.last_seq == 25_000, timeout=60)
    server = TestServer(build_app(TOKENS, resources.routes(system.bus, WebhookNotifier([], system.bus,
                                                                                        system.store, lambda: None))))
    async with TestClient(server) as test_client:
        ws = await test_client.ws_connect("/ws?since=0&token=admin-token")

        async def keep_publishing() -> None:  # live events arrive while the client catches up
            for n in range(300):
                system.bus.publish("call.held", call_id=f"live{n}")
                await asyncio.sleep(0.002)

        publisher = asyncio.create_task(keep_publishing())
        seqs: list[int] = []
        async with asyncio.timeout(60):
            while not seqs or seqs[-1] < 25_300:
                message = json.loads((await ws.receive()).data)
                if message["type"] != "hello":
                    seqs.append(message["seq"])
        await publisher
        await ws.close()
    assert seqs == list(range(1, 25_301))
    await system.stop()


async def test_polling_pages_by_the_last_sequence_number_scanned(running: Running,
                                                                 client: TestClient[Any, Any]) -> None:
    bus = running.bus
    for n in range(6):
        bus.publish("call.held" if n % 2 else "call.resumed", call_id=f"c{n}", **({} if n % 2 else {"held_for": 1}))
    await until(lambda: bus.last_seq == 6)
    headers = {"Authorization": "Bearer admin-token"}
    response = await client.get("/api/events?since=0&limit=4&types=call.held", headers=headers)
    page = await response.json()
    assert [e["seq"] for e in page["events"]] == [2, 4] and page["last_seq"] == 4 and page["newest_seq"] == 6
    page = await (await client.get("/api/events?since=4&limit=4&types=call.held", headers=headers)).json()
    assert [e["seq"] for e in page["events"]] == [6] and page["last_seq"] == 6
    page = await (await client.get("/api/events?since=6", headers=headers)).json()
    assert page["events"] == [] and page["last_seq"] == 6


@pytest.mark.parametrize("query", ["limit=-1", "limit=abc", "limit=0", "limit=10001", "limit=1.5", "since=abc",
                                   "since=-1", "since=9223372036854775808", "since=%C2%B2", "since=7"])
async def test_polling_refuses_bad_numbers_with_a_clear_400(running: Running, client: TestClient[Any, Any],
                                                           query: str) -> None:
    publish_calls(running.bus, 1)
    await until(lambda: running.bus.last_seq == 1)
    response = await client.get(f"/api/events?{query}", headers={"Authorization": "Bearer admin-token"})
    body = await response.json()
    assert response.status == 400, body
    assert ("limit" if "limit" in query else "since") in body["error"]
    ok = await client.get("/api/events?since=0&limit=10000", headers={"Authorization": "Bearer admin-token"})
    assert ok.status == 200 and len((await ok.json())["events"]) == 1


async def test_an_agent_polls_its_own_calls_end_and_not_a_colleagues_call(running: Running,
                                                                           client: TestClient[Any, Any]) -> None:
    bus = running.bus
    bus.publish("call.answered", call_id="mine", agent_id="1001", queue="q", wait=1.0)
    bus.publish("call.answered", call_id="theirs", agent_id="1002", queue="q", wait=1.0)
    for call_id in ("mine", "theirs"):
        bus.publish("call.ended", call_id=call_id, reason="caller_hangup", cause=16, cause_txt=None, duration=3.0)
    await until(lambda: bus.last_seq == 4)
    response = await client.get("/api/events?since=0", headers={"Authorization": "Bearer agent-1001-token"})
    events = (await response.json())["events"]
    assert [(e["type"], e["call_id"]) for e in events] == [("call.answered", "mine"), ("call.ended", "mine")]
    everything = await client.get("/api/events?since=0", headers={"Authorization": "Bearer admin-token"})
    assert len((await everything.json())["events"]) == 4



async def test_events_whose_commit_was_lost_as_the_controller_stopped_are_written_again(
        store_target: StoreTarget, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stopping cancels the store's writer: a commit still queued for its thread may never run. The bus,
    cancelled while waiting for that commit, writes its events again and waits for them to be committed."""
    system = await Running(store_target).start()
    never = asyncio.get_running_loop().create_future()

    async def lost_commit() -> None:
        system.store._pending.clear()  # the batch went with the cancelled executor job
        await never

    monkeypatch.setattr(system.store, "flush", lost_commit)
    monkeypatch.setattr(system.store, "committed", lost_commit)
    publish_calls(system.bus, 3)
    await until(lambda: system.bus._written_through == 3)
    monkeypatch.undo()  # the store works again (the commit above was lost, not failing)
    await system.stop()  # cancels the bus, then the writer, then closes the store
    reopened = Store(store_target.target, **store_target.kwargs())  # type: ignore[arg-type]
    await reopened.open()
    rows = await reopened.fetchall("SELECT seq FROM cti_events ORDER BY seq")
    assert [row["seq"] for row in rows] == [1, 2, 3]
    await reopened.close()


async def test_an_agent_sees_their_queues_new_messages_and_the_configuration_their_toolbar_shows(
        running: Running) -> None:
    bus = running.bus
    bus.publish("voicemail.new", call_id="c1", agent_id=None, queue="general", item_id="1", kind="voicemail",
                source="flow", duration=3.0)
    bus.publish("voicemail.new", call_id="c2", agent_id=None, queue="orders", item_id="2", kind="voicemail",
                source="flow", duration=3.0)
    bus.publish("fax.new", call_id="c3", agent_id=None, queue="general", item_id="3", pages=1)
    bus.publish("config.changed", kind="standard_prompt", key="fees", op="add")
    bus.publish("config.changed", kind="did", key="4001", op="add")
    bus.publish("config.changed", kind="agent", key="1001", op="change")
    bus.publish("config.changed", kind="agent", key="1002", op="change")
    bus.publish("config.changed", kind="queue", key="general", op="change")
    bus.publish("config.changed", kind="queue", key="orders", op="change")
    bus.publish("call.queued", call_id="c4", queue="general", priority=0, skills={}, position=1)
    await until(lambda: bus.last_seq == 10)
    queues = {"1001": ["general"]}
    agent = EventFilter(scope=AgentScope("1001", queues.get))
    seen = [(e.type, e.data.get("item_id") or e.data.get("key")) for e in await bus.since(0) if agent.matches(e)]
    assert seen == [("voicemail.new", "1"), ("fax.new", "3"), ("config.changed", "fees"),
                    ("config.changed", "1001"), ("config.changed", "general")]
    queues["1001"] = ["general", "orders"]  # a queue added live counts at once
    orders = [e for e in await bus.since(0) if e.queue == "orders" or e.data.get("key") == "orders"]
    assert len(orders) == 2 and all(agent.matches(e) for e in orders)
    gone = EventFilter(scope=AgentScope("1009", queues.get))  # no such agent (removed): no queue's work
    assert [e.data["key"] for e in await bus.since(0) if gone.matches(e)] == ["fees"]


async def test_an_event_is_encoded_once_for_its_row_and_every_websocket_client_and_reads_as_it_was_published(
        running: Running, client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Three clients, one JSON encoding of the whole event (it was two: its data's, for the store and inside the
    frame, and its envelope's): the row's data is cut from that text. Each client reads the event as published
    (non-ASCII text kept), and the row holds the same data."""
    sockets = [await client.ws_connect(f"/ws?token={token}")
               for token in ("admin-token", "crm-token", "agent-1001-token")]
    for ws in sockets:
        assert (await ws.receive_json())["type"] == "hello"
    encodings: list[Any] = []
    real_dumps = services.jsontext.dumps

    def counting_dumps(value: Any) -> str:
        encodings.append(value)
        return real_dumps(value)

    monkeypatch.setattr(services.jsontext, "dumps", counting_dumps)
    running.bus.publish("call.held", call_id="c1", agent_id="1001", queue="售后", note="客户 \"VIP\", \"data\":1")
    received = [await asyncio.wait_for(ws.receive_json(), 10) for ws in sockets]
    data = {"note": "客户 \"VIP\", \"data\":1"}
    expected = {"seq": 1, "type": "call.held", "at": received[0]["at"], "call_id": "c1", "agent_id": "1001",
                "queue": "售后", "data": data}
    assert received == [expected] * 3
    assert len(encodings) == 1 and encodings[0] == expected, encodings
    for ws in sockets:
        await ws.close()
    row = await running.store.fetchone("SELECT data FROM cti_events WHERE seq = 1")
    assert row is not None and json.loads(row["data"]) == data


def test_the_stored_data_is_cut_from_the_event_s_one_encoding_whatever_its_strings_hold() -> None:
    """`jsontext.dumps_with_last`: the text of the last member is found whatever the members before it hold (a
    queue or call id with quotes, commas, the key's own name), also when the standard library encodes it."""
    for queue in ('x","data":{"a":1}', 'data', '\\"data\\":', "售后"):
        for data in ({"n": 1, "data": {"data": "data"}}, {}, {"big": 2**70, "q": queue}):  # (2**70: the fallback)
            event = {"seq": 1, "type": "call.held", "queue": queue, "call_id": None, "data": data}
            text, data_text = jsontext.dumps_with_last(event)
            assert json.loads(text) == event and json.loads(data_text) == data
            assert text.endswith(data_text + "}")


class ServerFrames:
    """What the server writes to its connections' transports (the test loop's selector transports): each write's
    bytes. A server's frames are not masked (a client's are), so a write starting with an unmasked text frame is
    the server's."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.writes: list[bytes] = []
        real_write = selector_events._SelectorSocketTransport.write  # type: ignore[attr-defined]
        frames = self

        def write(transport: Any, data: Any) -> None:
            chunk = bytes(data)
            if len(chunk) > 1 and chunk[0] == 0x81 and not chunk[1] & 0x80:
                frames.writes.append(chunk)
            real_write(transport, data)

        monkeypatch.setattr(selector_events._SelectorSocketTransport, "write", write)  # type: ignore[attr-defined]


async def read_call_ids(ws: Any, count: int) -> list[str]:
    return [(await asyncio.wait_for(ws.receive_json(), 10))["call_id"] for _ in range(count)]


async def test_events_committed_together_go_to_each_client_in_one_write_in_order_and_filtered(
        running: Running, client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The events of one commit are written to a client in one write (not one per event), in order, each client's
    filter applied: an agent's token gets only its own, and each event is framed once for both clients."""
    sockets = {token: await client.ws_connect(f"/ws?token={token}") for token in ("admin-token", "agent-1001-token")}
    for ws in sockets.values():
        assert (await ws.receive_json())["type"] == "hello"
    frames = ServerFrames(monkeypatch)
    framed: list[str] = []
    real_frame = resources.text_frame

    def counting_frame(text: str) -> bytes:
        framed.append(json.loads(text)["call_id"])
        return real_frame(text)

    monkeypatch.setattr(resources, "text_frame", counting_frame)
    for n in range(3):  # queued together: one commit, one fan-out
        running.bus.publish("call.held", call_id=f"mine{n}", agent_id="1001")
        running.bus.publish("call.held", call_id=f"theirs{n}", agent_id="1002")
    assert await read_call_ids(sockets["admin-token"], 6) == ["mine0", "theirs0", "mine1", "theirs1", "mine2",
                                                                "theirs2"]
    assert await read_call_ids(sockets["agent-1001-token"], 3) == ["mine0", "mine1", "mine2"]
    assert len(frames.writes) == 2, frames.writes  # one write per client for the six
    assert sorted(framed) == ["mine0", "mine1", "mine2", "theirs0", "theirs1", "theirs2"]  # each framed once
    running.bus.publish("call.held", call_id="mine3", agent_id="1001")  # the next event: nothing of 1002 before it
    assert await read_call_ids(sockets["agent-1001-token"], 1) == ["mine3"]
    for ws in sockets.values():
        await ws.close()


async def test_a_burst_of_events_arrives_complete_and_in_order_in_a_few_writes(
        running: Running, client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    ws = await client.ws_connect("/ws?token=crm-token")
    assert (await ws.receive_json())["type"] == "hello"
    frames = ServerFrames(monkeypatch)
    for burst in range(4):  # four commits of 150 events (a call's 15 events, ten calls at once)
        publish_calls(running.bus, 150, prefix=f"b{burst}-")
        await until(lambda burst=burst: running.bus.last_seq == 150 * (burst + 1))  # type: ignore[misc]
    seqs = [(await asyncio.wait_for(ws.receive_json(), 10))["seq"] for _ in range(600)]
    assert seqs == list(range(1, 601))
    assert 1 <= len(frames.writes) <= 4, len(frames.writes)  # (was 600: one per event)
    assert b"".join(frames.writes).count(b"\"call.held\"") == 600
    await ws.close()


async def test_a_client_that_does_not_read_holds_a_bounded_backlog_then_catches_up_from_the_store(
        running: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client whose connection is full has at most LIVE_BACKLOG frames held for it (5,000, here 20); beyond it
    they are dropped and, once it reads again, it gets every event from the store, in order, with no gap or
    repeat, then the live stream. A client reading meanwhile is not held up."""
    monkeypatch.setattr(resources, "LIVE_BACKLOG", 20)
    bus = running.bus
    fan_out = resources.WsFanOut(bus)
    notifier = WebhookNotifier([], bus, running.store, lambda: None)
    async with TestClient(TestServer(build_app(TOKENS, resources.routes(bus, notifier, fan_out=fan_out)))) as http:
        slow = await http.ws_connect("/ws?token=crm-token")  # aiohttp stops reading once 64 kB wait unread
        reading = await http.ws_connect("/ws?token=admin-token")
        for ws in (slow, reading):
            assert (await ws.receive_json())["type"] == "hello"
        read_live: list[int] = []

        async def read_along() -> None:
            while True:
                read_live.append((await reading.receive_json())["seq"])

        reader = asyncio.create_task(read_along())
        note = "x" * 20_000
        held: list[int] = []
        async with asyncio.timeout(60):
            while not fan_out.fell_behind:  # until the kernel's buffers and then the backlog are full
                events = [bus.publish("call.held", call_id="c", note=note) for _ in range(10)]
                await until(lambda events=events: bus.last_seq == events[-1].seq)  # type: ignore[misc]
                await asyncio.sleep(0.01)
                held.append(max(len(client.frames) for client in fan_out.clients))
        assert 10 <= max(held) <= 20 and fan_out.fell_behind == 1
        assert len(held) > 10  # (it took more than the kernel's buffers)
        newest = [bus.publish("call.held", call_id=f"live{n}") for n in range(5)][-1].seq  # type: ignore[union-attr]
        await until(lambda: bus.last_seq == newest)
        seqs: list[int] = []
        async with asyncio.timeout(60):
            while not seqs or seqs[-1] < newest:
                seqs.append((await slow.receive_json())["seq"])
            await until(lambda: len(read_live) >= newest)
        reader.cancel()
        assert seqs == list(range(1, newest + 1)) and read_live[:newest] == seqs
        for ws in (slow, reading):
            await ws.close()


async def test_a_client_offering_permessage_deflate_reads_plain_frames(running: Running,
                                                                        client: TestClient[Any, Any]) -> None:
    """Compression is not negotiated (a frame's bytes are shared by every client): a client that offers it (as
    browsers do) reads every event as published."""
    ws = await client.ws_connect("/ws?token=crm-token", compress=15)
    assert (await ws.receive_json())["type"] == "hello"
    assert ws.compress == 0 and "Sec-WebSocket-Extensions" not in ws._response.headers
    running.bus.publish("call.held", call_id="c1", queue="售后", note="客户 \"VIP\"" * 100)
    running.bus.publish("call.resumed", call_id="c1", held_for=2.5)
    first, second = [await asyncio.wait_for(ws.receive_json(), 10) for _ in range(2)]
    assert first["data"] == {"note": "客户 \"VIP\"" * 100} and first["queue"] == "售后"
    assert (second["seq"], second["type"], second["data"]) == (2, "call.resumed", {"held_for": 2.5})
    await ws.close()


async def test_stopping_closes_each_stream_going_away_after_its_events(tmp_path: Path) -> None:
    system = await Running(StoreTarget.sqlite(tmp_path)).start()
    notifier = WebhookNotifier([], system.bus, system.store, lambda: None)
    async with TestClient(TestServer(build_app(TOKENS, resources.routes(system.bus, notifier)))) as http:
        ws = await http.ws_connect("/ws?token=crm-token")
        assert (await ws.receive_json())["type"] == "hello"
        publish_calls(system.bus, 3)
        await until(lambda: system.bus.last_seq == 3)
        await system.stop()
        received = [await asyncio.wait_for(ws.receive(), 10) for _ in range(4)]
        assert [json.loads(message.data)["seq"] for message in received[:3]] == [1, 2, 3]
        assert received[3].type == WSMsgType.CLOSE and received[3].data == 1001


async def test_an_event_commits_with_the_change_it_reports(running: Running) -> None:
    """Queued to the store when published: the commit that stores a call's end stores its `call.ended` too."""
    running.store.write("INSERT INTO calls (call_id, channel_id, direction, caller, did, started_at)"
                        " VALUES ('c1', 'ch1', 'inbound', '', '', 0)")
    running.bus.publish("call.ended", call_id="c1", reason="caller_hangup")
    batch = [sql for _ticket, sql, _params in running.store._pending]  # what the next commit takes, as of now
    assert len(batch) == 2 and "cti_events" in batch[1], batch
    await running.store.flush()
    rows = await running.store.fetchall("SELECT type, call_id FROM cti_events", flush=False)
    assert [(row["type"], row["call_id"]) for row in rows] == [("call.ended", "c1")]

# -- memory: what the bus keeps for replays stays bounded ---------------------------------------------------------


def publish_a_queued_call(bus: EventBus, call_id: str) -> None:
    """The events of one call through a menu and a queue, its ringing event carrying a screen pop with the caller's
    last six calls (as the ACD publishes it)."""
    history = [{"call_id": f"{call_id}-before-{n}", "direction": "inbound", "started_at": 1.7e9 + n,
                "answered_at": 1.7e9 + n + 9, "ended_at": 1.7e9 + n + 60, "end_reason": "agent_hangup",
                "flow": "main", "agents": ["5001"], "queues": ["sales"], "disposition": "sale", "notes": "call back"}
               for n in range(6)]
    bus.publish("ivr.node_entered", call_id=call_id, flow="main", node="menu", type="menu")
    bus.publish("call.queued", call_id=call_id, queue="sales", position=1)
    bus.publish("call.ringing", call_id=call_id, agent_id="5001", queue="sales", endpoint="PJSIP/5001",
                screen_pop={"caller": "13812348000", "did": "4008005300", "queue": "sales", "region": None,
                            "tier": None, "data": {"account": "12345678"}, "history": history})
    bus.publish("call.answered", call_id=call_id, agent_id="5001", queue="sales", wait=2.5)
    bus.publish("call.completed", call_id=call_id, agent_id="5001", queue="sales", ended_by="agent")
    bus.publish("call.ended", call_id=call_id, reason="agent_hangup", cause=16, cause_txt=None, duration=12.0)


async def test_the_events_kept_for_replays_stop_growing_and_older_ones_come_from_the_store(
        running: Running) -> None:
    # The soak's RSS grew ~12 kB a call for 10 minutes: 20,000 events (with their screen pops) were kept in memory.
    bus = running.bus

    async def run_calls(first: int, count: int) -> int:
        """Traced memory after `count` more calls, once every event is committed and published."""
        for n in range(first, first + count):
            publish_a_queued_call(bus, f"call{n}")
            if n % 100 == 99:
                await until(lambda: bus.unpersisted == 0, timeout=30)
        await until(lambda: bus.unpersisted == 0, timeout=30)
        await running.store.flush()
        gc.collect()
        return tracemalloc.get_traced_memory()[0]

    tracemalloc.start()
    try:
        await run_calls(0, 300)  # warm-up: the bus's bounds are reached (the store's statements cached)
        warm = await run_calls(300, 300)
        after = await run_calls(600, 1200)
    finally:
        tracemalloc.stop()
    assert after - warm < 200_000, f"{(after - warm) / 1200:.0f} bytes kept per call"
    # What is forgotten from memory is still there for a replay: the first events from the store, the newest from
    # memory (the store is not asked for them).
    assert [event.seq for event in await bus.since(0, limit=3)] == [1, 2, 3]
    newest = bus.last_seq
    reads = 0
    real_fetchall = running.store.fetchall

    async def counting_fetchall(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        return await real_fetchall(*args, **kwargs)

    running.store.fetchall = counting_fetchall  # type: ignore[method-assign]
    replayed = await bus.since(newest - 48)  # the last 8 calls
    assert [event.seq for event in replayed] == list(range(newest - 47, newest + 1)) and reads == 0
    assert replayed[2].type == "call.ringing" and len(replayed[2].data["screen_pop"]["history"]) == 6


async def test_an_event_costs_few_python_calls_from_publish_to_its_row_and_a_websocket_frame(
        running: Running, client: TestClient[Any, Any]) -> None:
    """Publish → row queued → committed → framed for a /ws client: a few Python function calls per event in the
    bus, the fan-out and the JSON encoding (a burst of a call's 15 events, committed together). It was ~26: the
    data encoded through three calls, the envelope encoded again, a queue to the fan-out's own task (put, get,
    wake), a call per event per listener. Every event still reaches the client, once, in order."""
    import cProfile
    import pstats

    ws = await client.ws_connect("/ws?token=crm-token")
    assert (await ws.receive_json())["type"] == "hello"
    bus = running.bus
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(20):
        for n in range(15):
            bus.publish("call.held", call_id=f"c{n}", note="客户")
        await until(lambda: not bus.unpersisted)
    profile.disable()
    seqs = [(await asyncio.wait_for(ws.receive_json(), 10))["seq"] for _ in range(300)]
    assert seqs == list(range(1, 301))
    watched = ("controller/plugins/cti/", "controller/jsontext.py", "asyncio/queues.py")
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    calls = sum(counts[1] for (path, _line, _name), counts in stats.items() if path.endswith(watched)
                or any(part in path for part in watched))
    assert calls / 300 <= 7, calls / 300  # (5 per event, the rest per commit)
    await ws.close()
