"""Webhook delivery against a real HTTP receiver and a real SQLite store: replay, dead letters, retries.

The receiver records what it got; the tests assert on the record (never inside the handler).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from controller.config import TokenSettings
from controller.http.server import build_app
from controller.plugins.cti import resources, services
from controller.plugins.cti.notifier import Webhook, WebhookNotifier
from controller.plugins.cti.services import EventBus, EventFilter
from controller.store import db
from controller.store.db import Store
from tests.conftest import StoreTarget

TOKENS = [TokenSettings("crm", "crm-token", "integration"), TokenSettings("a1", "agent-token", "agent", "1001")]
CRM = {"Authorization": "Bearer crm-token"}


class Receiver:
    """A CRM endpoint: answers `status_for(seq, attempt)`; may hold a request until `gate` opens."""

    def __init__(self) -> None:
        self.attempts: list[tuple[int, int]] = []  # (seq, HTTP status answered), in arrival order
        self.status_for: Callable[[int, int], int] = lambda seq, attempt: 204
        self.hold_seq: int | None = None
        self.gate = asyncio.Event()
        self.server: TestServer | None = None
        self.url = ""

    @property
    def accepted(self) -> list[int]:
        return [seq for seq, status in self.attempts if status < 300]

    async def handle(self, request: web.Request) -> web.Response:
        seq = int(request.headers["X-CCC-Seq"])
        if seq == self.hold_seq and not self.gate.is_set():
            self.attempts.append((seq, 0))  # arrived; answered once the gate opens
            await self.gate.wait()
            self.attempts.pop(self.attempts.index((seq, 0)))
        status = self.status_for(seq, sum(1 for s, _ in self.attempts if s == seq) + 1)
        self.attempts.append((seq, status))
        return web.Response(status=status)

    async def up(self) -> None:
        app = web.Application()
        app.router.add_post("/events", self.handle)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        self.url = str(self.server.make_url("/events"))


class System:
    def __init__(self, target: StoreTarget, receiver: Receiver, max_attempts: int,
                 webhooks: list[Webhook] | None = None) -> None:
        """One webhook `crm` to `receiver`, or `webhooks`."""
        self.store = Store(target.target, **target.kwargs())  # type: ignore[arg-type]
        self.bus = EventBus(self.store, time.time)
        self.receiver = receiver
        self.http: aiohttp.ClientSession | None = None
        if webhooks is None:
            webhooks = [Webhook("crm", receiver.url, "secret", EventFilter(), timeout=2, max_attempts=max_attempts)]
        self.notifier = WebhookNotifier(webhooks, self.bus, self.store, lambda: self.http,
                                        max_backoff=0.05, first_backoff=0.01)
        self.tasks: list[asyncio.Task[None]] = []

    async def open(self) -> None:
        await self.store.open()
        await self.bus.open()
        self.http = aiohttp.ClientSession()

    def run(self) -> None:
        self.tasks = [asyncio.create_task(coro) for coro in (self.store.run_writer(), self.bus.run(),
                                                              self.notifier.run())]

    async def start(self) -> System:
        await self.open()
        self.run()
        return self

    async def stop(self) -> None:
        for task in reversed(self.tasks):
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert self.http is not None
        await self.http.close()
        await self.store.close()

    def publish(self, count: int) -> None:
        for n in range(count):
            self.bus.publish("call.held", call_id=f"c{n}")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    await receiver.up()
    yield receiver
    receiver.gate.set()
    assert receiver.server is not None
    await receiver.server.close()


@pytest.fixture
async def system(store_target: StoreTarget, receiver: Receiver,
                 monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[System]:
    """On each store engine (tests/conftest.py)."""
    monkeypatch.setattr(db, "RETRY_SECONDS", (0.02, 0.1))
    monkeypatch.setattr(services, "RETRY_SECONDS", (0.02, 0.1))
    running = await System(store_target, receiver, max_attempts=3).start()
    yield running
    await running.stop()


async def until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def cursor_of(system: System) -> int:
    row = await system.store.fetchone("SELECT delivered_seq FROM webhook_cursor WHERE webhook = 'crm'")
    assert row is not None
    return int(row["delivered_seq"])


async def test_replay_is_not_undone_by_the_worker_finishing_its_page(system: System, receiver: Receiver) -> None:
    await until(lambda: "crm" in system.notifier._cursor)
    receiver.hold_seq = 3
    system.publish(5)
    await until(lambda: (3, 0) in receiver.attempts)  # the worker is in the middle of its page
    await system.notifier.replay("crm", 0)
    receiver.gate.set()
    await until(lambda: len(receiver.accepted) >= 8)
    await asyncio.sleep(0.2)
    assert receiver.accepted == [1, 2, 3, 1, 2, 3, 4, 5]
    assert await cursor_of(system) == 5


async def test_a_refused_event_becomes_a_dead_letter_and_can_be_replayed(system: System, receiver: Receiver) -> None:
    await until(lambda: "crm" in system.notifier._cursor)
    receiver.status_for = lambda seq, attempt: 422 if seq == 2 else 204
    system.publish(4)
    await until(lambda: receiver.accepted == [1, 3, 4])
    assert [status for seq, status in receiver.attempts if seq == 2] == [422, 422, 422]  # max_attempts
    await until(lambda: system.notifier.dead["crm"] == 1)
    letters = await system.notifier.dead_letters("crm")
    assert [(d["seq"], d["attempts"], d["last_error"], d["type"], d["stored"]) for d in letters] == [
        (2, 3, "HTTP 422", "call.held", True)]
    assert system.notifier.dead_lettered == 1 and await cursor_of(system) == 4

    receiver.status_for = lambda seq, attempt: 204  # the CRM is fixed; the operator replays
    assert await system.notifier.replay_dead_letters("crm") == [2]
    await until(lambda: receiver.accepted == [1, 3, 4, 2])
    system.publish(1)
    await until(lambda: receiver.accepted == [1, 3, 4, 2, 5])
    assert await system.notifier.dead_letters("crm") == [] and system.notifier.dead["crm"] == 0
    row = await system.store.fetchone("SELECT state FROM webhook_deliveries WHERE webhook = 'crm' AND seq = 2")
    assert row is not None and row["state"] == "delivered"


@pytest.mark.parametrize("status", [503, 500, 429, 408])
async def test_busy_or_failing_receivers_are_retried_until_they_take_it(system: System, receiver: Receiver,
                                                                        status: int) -> None:
    await until(lambda: "crm" in system.notifier._cursor)
    receiver.status_for = lambda seq, attempt: status if seq == 1 and attempt <= 6 else 204
    system.publish(2)
    await until(lambda: receiver.accepted == [1, 2])
    assert [s for seq, s in receiver.attempts if seq == 1] == [status] * 6 + [204]  # past max_attempts=3
    assert await system.notifier.dead_letters("crm") == [] and system.notifier.dead_lettered == 0


# -- the API ---------------------------------------------------------------------------------------


@pytest.fixture
async def client(system: System) -> AsyncIterator[TestClient[Any, Any]]:
    server = TestServer(build_app(TOKENS, resources.routes(system.bus, system.notifier)))
    async with TestClient(server) as test_client:
        yield test_client


@pytest.mark.parametrize("body", [{"since": 3}, {"since": 9223372036854775808}, {"since": -1}, {"since": "1"},
                                  {"since": True}, {}, {"since": 1, "extra": 1}, [1]])
async def test_replay_refuses_a_since_it_cannot_honour(system: System, client: TestClient[Any, Any],
                                                       body: Any) -> None:
    await until(lambda: "crm" in system.notifier._cursor)
    system.publish(2)
    async with asyncio.timeout(30):  # a loaded machine
        while await cursor_of(system) != 2:  # both delivered
            await asyncio.sleep(0.01)
    response = await client.post("/api/webhooks/crm/replay", json=body, headers=CRM)
    assert response.status == 400, await response.text()
    error = (await response.json())["error"]
    assert "since" in error or "body" in error
    assert await cursor_of(system) == 2  # nothing changed
    ok = await client.post("/api/webhooks/crm/replay", json={"since": 2}, headers=CRM)
    assert ok.status == 200 and (await ok.json())["replaying_from"] == 3


async def test_dead_letters_over_the_api(system: System, receiver: Receiver, client: TestClient[Any, Any]) -> None:
    await until(lambda: "crm" in system.notifier._cursor)
    receiver.status_for = lambda seq, attempt: 400 if seq in (1, 2) else 204
    system.publish(3)
    await until(lambda: system.notifier.dead["crm"] == 2 and receiver.accepted == [3])
    listing = await (await client.get("/api/webhooks/crm/dead-letters", headers=CRM)).json()
    assert [d["seq"] for d in listing["dead_letters"]] == [1, 2]
    status = await (await client.get("/api/webhooks", headers=CRM)).json()
    assert status[0]["dead_letters"] == 2 and status[0]["delivered_seq"] == 3
    assert (await client.get("/api/webhooks/nope/dead-letters", headers=CRM)).status == 404
    assert (await client.get("/api/webhooks/crm/dead-letters",
                             headers={"Authorization": "Bearer agent-token"})).status == 403
    assert (await client.post("/api/webhooks/crm/dead-letters/replay", json={"seqs": ["x"]}, headers=CRM)).status == 400

    receiver.status_for = lambda seq, attempt: 204
    response = await client.post("/api/webhooks/crm/dead-letters/replay", json={"seqs": [2, 3]}, headers=CRM)
    assert (await response.json()) == {"webhook": "crm", "requeued": [2]}  # 3 was delivered: not a dead letter
    await until(lambda: receiver.accepted == [3, 2])
    listing = await (await client.get("/api/webhooks/crm/dead-letters", headers=CRM)).json()
    assert [d["seq"] for d in listing["dead_letters"]] == [1]


async def test_stopping_lets_the_post_in_flight_finish_and_commits_its_cursor(system: System,
                                                                           receiver: Receiver) -> None:
    await until(lambda: "crm" in system.notifier._cursor)
    receiver.hold_seq = 1
    system.publish(2)
    await until(lambda: (1, 0) in receiver.attempts)  # the receiver has the POST, not answered yet
    system.notifier.stop()
    notifier = system.tasks[2]
    await asyncio.sleep(0.2)
    assert not notifier.done()  # waits for the answer rather than cutting the POST off
    receiver.gate.set()
    async with asyncio.timeout(5):
        await notifier
    assert receiver.accepted == [1]  # and sends nothing more: the next process goes on from the cursor
    assert await cursor_of(system) == 1


async def test_a_delivered_events_cursor_rides_in_the_stores_grouped_commit(system: System, receiver: Receiver,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Each delivery's cursor is queued, not committed on its own (it was a commit per event); it is committed
    all the same, only after the receiver took the event, and a restart goes on from it."""
    await until(lambda: "crm" in system.notifier._cursor)
    system.publish(1)
    await until(lambda: receiver.accepted == [1])  # the worker has loaded its state (reads that flush)
    forced: list[int] = []
    real_flush = system.store.flush

    async def counting_flush() -> None:
        forced.append(system.store._last_ticket)
        await real_flush()

    monkeypatch.setattr(system.store, "flush", counting_flush)
    system.publish(10)
    await until(lambda: len(receiver.accepted) == 11)
    assert receiver.accepted == list(range(1, 12)) and forced == []
    monkeypatch.undo()
    await until(lambda: system.notifier._cursor["crm"] == 11)
    await system.store.committed()
    row = await system.store.fetchone("SELECT delivered_seq FROM webhook_cursor WHERE webhook = 'crm'", flush=False)
    assert row is not None and row["delivered_seq"] == 11
