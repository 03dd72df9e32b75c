"""Webhooks changed live (`WebhookNotifier.apply`): added, changed and removed while events flow.

A real HTTP receiver and a real SQLite store; the receivers record what they got and the tests
assert on the record.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from controller.plugins.cti import services
from controller.plugins.cti.notifier import Webhook
from controller.plugins.cti.services import EventFilter
from controller.store import db
from tests.conftest import StoreTarget
from tests.unit import test_webhooks as webhook_tests


class Receiver:
    """Records (seq, signature valid for `secret`) of each POST; answers `status`."""

    def __init__(self, secret: str = "s1") -> None:
        self.secret = secret
        self.status = 204
        self.got: list[tuple[int, bool]] = []
        self.server: TestServer | None = None
        self.url = ""

    @property
    def seqs(self) -> list[int]:
        return [seq for seq, _ in self.got]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        self.got.append((int(json.loads(body)["seq"]), request.headers.get("X-CCC-Signature") == expected))
        return web.Response(status=self.status)

    async def up(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/events", self.handle)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        self.url = str(self.server.make_url("/events"))
        return self


def hook(name: str, receiver: Receiver, secret: str = "s1", types: tuple[str, ...] = ()) -> Webhook:
    return Webhook(name, receiver.url, secret, EventFilter(types), timeout=2, max_attempts=3)


class System(webhook_tests.System):
    def __init__(self, target: StoreTarget, webhooks: list[Webhook]) -> None:
        super().__init__(target, webhook_tests.Receiver(), 3, webhooks)

    async def publish_and_wait(self, count: int) -> int:
        """Publish `count` events and wait until they are published; returns the last seq."""
        for n in range(count):
            self.bus.publish("call.held", call_id=f"c{n}")
        await self.store.flush()
        target = self.bus.last_seq + count
        await until(lambda: self.bus.last_seq >= target or not self.bus.unpersisted)
        return self.bus.last_seq

    async def rows(self, table: str, name: str) -> int:
        row = await self.store.fetchone(f"SELECT COUNT(*) AS n FROM {table} WHERE webhook = ?", (name,))
        return int(row["n"]) if row else 0


MakeSystem = Callable[[list[Webhook]], Awaitable[System]]
Pair = tuple[Receiver, Receiver]


async def until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


@pytest.fixture
async def receivers() -> AsyncIterator[tuple[Receiver, Receiver]]:
    pair = (await Receiver().up(), await Receiver().up())
    yield pair
    for receiver in pair:
        assert receiver.server is not None
        await receiver.server.close()


@pytest.fixture
async def make_system(store_target: StoreTarget, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[MakeSystem]:
    monkeypatch.setattr(db, "RETRY_SECONDS", (0.02, 0.1))
    monkeypatch.setattr(services, "RETRY_SECONDS", (0.02, 0.1))
    started: list[System] = []

    async def make(webhooks: list[Webhook]) -> System:
        started.append(System(store_target, webhooks))
        await started[-1].start()
        await until(lambda: all(hook.name in started[-1].notifier._cursor for hook in webhooks))  # workers ready
        return started[-1]

    yield make
    for system in started:
        await system.stop()


async def test_a_webhook_added_live_gets_the_events_from_then_on(
        make_system: MakeSystem, receivers: Pair) -> None:
    crm, added = receivers
    system = await make_system([hook("crm", crm)])
    before = await system.publish_and_wait(2)
    await until(lambda: crm.seqs == [1, 2])
    await system.notifier.apply([hook("crm", crm), hook("erp", added)])
    await system.publish_and_wait(2)
    await until(lambda: len(added.got) == 2 and len(crm.got) == 4)
    assert added.seqs == [before + 1, before + 2]  # nothing from before it was added
    assert [ok for _, ok in added.got] == [True, True]
    assert system.notifier.has("erp") and system.notifier.dead["erp"] == 0


async def test_a_changed_url_and_secret_are_used_for_the_next_delivery(
        make_system: MakeSystem, receivers: Pair) -> None:
    old, new = receivers
    new.secret = "s2"
    system = await make_system([hook("crm", old)])
    await system.publish_and_wait(1)
    await until(lambda: old.seqs == [1])
    await system.notifier.apply([Webhook("crm", new.url, "s2", EventFilter(), timeout=2, max_attempts=3)])
    await system.publish_and_wait(1)
    await until(lambda: new.seqs == [2])
    assert new.got == [(2, True)]  # signed with the new secret
    assert old.seqs == [1]  # positive above: the old URL gets nothing more


async def test_an_event_being_retried_goes_to_the_new_url(
        make_system: MakeSystem, receivers: Pair) -> None:
    down, fixed = receivers
    down.status = 503
    system = await make_system([hook("crm", down)])
    await system.publish_and_wait(1)
    await until(lambda: len(down.got) >= 2)  # retried
    await system.notifier.apply([hook("crm", fixed)])
    await until(lambda: fixed.seqs == [1])
    # the receiver records the event before it answers: the retry ends when the answer is read
    await until(lambda: system.notifier._retrying.get("crm") is None)


async def test_a_removed_webhook_stops_and_its_delivery_state_is_dropped(
        make_system: MakeSystem, receivers: Pair) -> None:
    kept, removed = receivers
    removed.status = 503  # it has a retry in progress when it is removed
    system = await make_system([hook("crm", kept), hook("erp", removed)])
    await system.publish_and_wait(1)
    await until(lambda: len(removed.got) >= 2 and kept.seqs == [1])
    assert await system.rows("webhook_deliveries", "erp") == 1
    async with asyncio.timeout(5):  # its worker is stopped, not waited for
        await system.notifier.apply([hook("crm", kept)])
    attempts = len(removed.got)
    await system.publish_and_wait(2)
    await until(lambda: kept.seqs == [1, 2, 3])  # the positive check: events still flow
    await asyncio.sleep(0.2)  # several backoffs of the removed one
    assert len(removed.got) == attempts
    assert not system.notifier.has("erp") and "erp" not in system.notifier.dead
    assert await system.rows("webhook_deliveries", "erp") == 0 and await system.rows("webhook_cursor", "erp") == 0
    assert [s["name"] for s in await system.notifier.status()] == ["crm"]


async def test_added_again_it_starts_from_then_not_from_its_old_cursor(
        make_system: MakeSystem, receivers: Pair) -> None:
    crm, _ = receivers
    system = await make_system([hook("crm", crm)])
    await system.publish_and_wait(1)
    await until(lambda: crm.seqs == [1])
    await system.notifier.apply([])
    missed = await system.publish_and_wait(2)
    await system.notifier.apply([hook("crm", crm)])
    await system.publish_and_wait(1)
    await until(lambda: len(crm.got) == 2)
    assert crm.seqs == [1, missed + 1]


async def test_a_webhook_added_before_run_starts_with_it(store_target: StoreTarget, receivers: Pair) -> None:
    crm, _ = receivers
    system = System(store_target, [])
    await system.open()
    await system.notifier.apply([hook("crm", crm)])  # e.g. the database's webhooks replacing the file's at start
    system.run()
    try:
        await system.publish_and_wait(1)
        await until(lambda: crm.seqs == [1])
    finally:
        await system.stop()


async def test_an_unchanged_apply_changes_nothing(
        make_system: MakeSystem, receivers: Pair) -> None:
    crm, _ = receivers
    system = await make_system([hook("crm", crm)])
    worker = system.notifier._workers["crm"]
    await system.notifier.apply([hook("crm", crm)])
    assert system.notifier._workers["crm"] is worker
    await system.publish_and_wait(1)
    await until(lambda: crm.seqs == [1])


async def test_a_webhook_added_then_removed_live_stops(
        make_system: MakeSystem, receivers: Pair, caplog: pytest.LogCaptureFixture) -> None:
    crm, added = receivers
    system = await make_system([hook("crm", crm)])
    await system.notifier.apply([hook("crm", crm), hook("erp", added)])
    await system.publish_and_wait(1)
    await until(lambda: added.seqs == [1] and crm.seqs == [1])
    async with asyncio.timeout(5):
        await system.notifier.apply([hook("crm", crm)])
    await system.publish_and_wait(1)
    await until(lambda: crm.seqs == [1, 2])
    await asyncio.sleep(0.1)
    assert added.seqs == [1]
    workers = [t for t in asyncio.all_tasks() if t.get_coro().__qualname__ == "WebhookNotifier._worker"]  # type: ignore[union-attr]
    assert len(workers) == 1  # its worker is gone, not left waiting
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_a_changed_filter_is_used_for_the_next_events(
        make_system: MakeSystem, receivers: Pair) -> None:
    crm, _ = receivers
    system = await make_system([hook("crm", crm, types=("call.held",))])
    await system.publish_and_wait(1)
    await until(lambda: crm.seqs == [1])
    await system.notifier.apply([hook("crm", crm, types=("agent.*",))])
    system.bus.publish("call.held", call_id="c1")
    system.bus.publish("agent.state_changed", agent_id="1001", state="ready")
    await system.store.flush()
    await until(lambda: len(crm.got) == 2)
    assert crm.seqs == [1, 3]  # the call.held after the change is no longer wanted
