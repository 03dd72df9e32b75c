"""Internal messages (who may write to whom, limits, stored first, read once) and alert acknowledgements,
on a real store (controller/plugins/messages, controller/plugins/alerts)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from controller.clock import FakeClock
from controller.plugins.alerts.notifier import AlertNotifier
from controller.plugins.alerts.services import AlertRefused, AlertService
from controller.plugins.alerts.state_persistor import AlertRecords
from controller.plugins.messages.notifier import MessageNotifier
from controller.plugins.messages.services import MAX_TEXT, MessageRefused, MessageService
from controller.plugins.messages.state_persistor import MessageRecords
from controller.store.db import Store

USERS: list[dict[str, object]] = [{"name": "boss", "role": "supervisor", "agent_id": None},
                                  {"name": "root", "role": "admin", "agent_id": None},
                                  {"name": "1001", "role": "agent", "agent_id": "1001"},
                                  {"name": "1002", "role": "agent", "agent_id": "1002"}]


class Published(list[tuple[str, dict[str, Any]]]):
    def __call__(self, type_: str, **fields: Any) -> None:
        self.append((type_, fields))


async def test_who_may_write_to_whom_and_what_a_message_may_be(store: Store) -> None:
    events = Published()
    clock = FakeClock(1000.0)
    messages = MessageService(MessageRecords(store), MessageNotifier(events), users=lambda: USERS, now=clock.now)
    sent = await messages.send("boss", "supervisor", "1001", "  <b>请接 VIP 电话</b>  ")
    assert sent["text"] == "<b>请接 VIP 电话</b>" and sent["read_at"] is None  # stored as typed (pages escape)
    assert events == [("message.sent", {"agent_id": "1001", "message_id": sent["id"], "sender": "boss",
                                        "recipient": "1001"})]  # the recipient agent's stream; no text
    reply = await messages.send("1001", "agent", "boss", "ok")
    assert events[-1][1]["agent_id"] is None
    refusals = [("1001", "agent", "1002", "hi", 403), ("boss", "supervisor", "nobody", "hi", 404),
                ("boss", "supervisor", "boss", "hi", 409), ("boss", "supervisor", "1001", "   ", 400),
                ("boss", "supervisor", "1001", "x" * (MAX_TEXT + 1), 400)]
    for sender, role, to, text, status in refusals:
        with pytest.raises(MessageRefused) as refused:
            await messages.send(sender, role, to, text)
        assert refused.value.status == status, (to, text[:5])
    assert len(events) == 2  # nothing announced for a refusal
    assert [c["name"] for c in messages.contacts("1001", "agent")] == ["boss", "root"]
    assert [c["name"] for c in messages.contacts("boss", "supervisor")] == ["root", "1001", "1002"]

    mine = await messages.of_user("1001", unread_only=True, limit=10)
    assert [m["id"] for m in mine["messages"]] == [sent["id"]] and mine["unread"] == 1
    with pytest.raises(MessageRefused) as refused:
        await messages.mark_read("boss", sent["id"])  # the sender cannot
    assert refused.value.status == 409
    with pytest.raises(MessageRefused) as refused:
        await messages.mark_read("1002", sent["id"])  # nor a third person, who is not told it exists
    assert refused.value.status == 404
    clock.advance(5)
    read = await messages.mark_read("1001", sent["id"])
    assert read["read_at"] == 1005.0 and events[-1][0] == "message.read" and events[-1][1]["agent_id"] is None
    assert (await messages.mark_read("1001", sent["id"]))["read_at"] == 1005.0 and len(events) == 3  # once
    assert (await messages.of_user("1001", unread_only=True, limit=10))["unread"] == 0
    both = await messages.of_user("1001", unread_only=False, limit=10)
    assert {m["id"] for m in both["messages"]} == {sent["id"], reply["id"]}


async def test_an_alert_is_acknowledged_once(store: Store) -> None:
    for seq, kind in ((7, "hold"), (8, "config"), (9, "wait")):
        await store.execute("INSERT INTO cti_events (seq, at, type, agent_id, data) VALUES (?, ?, ?, ?, ?)",
                            (seq, 990.0, "alert.raised" if kind != "config" else "config.changed", "1001",
                             json.dumps({"kind": kind, "subject": "1001", "value": 40.0, "threshold": 30.0})))
    events = Published()
    alerts = AlertService(AlertRecords(store), AlertNotifier(events), FakeClock(1000.0).now)
    assert [a["id"] for a in await alerts.recent(1, open_only=True, limit=10)] == [9, 7]
    done = await alerts.acknowledge(7, "user:boss", " called the agent ")
    assert (done["acknowledged_by"], done["note"], done["kind"]) == ("user:boss", "called the agent", "hold")
    assert events == [("alert.acknowledged", {"call_id": None, "agent_id": "1001", "queue": None, "alert_id": 7,
                                              "kind": "hold", "subject": "1001", "acknowledged_by": "user:boss"})]
    for alert_id, status in ((7, 409), (8, 404), (99, 404)):
        with pytest.raises(AlertRefused) as refused:
            await alerts.acknowledge(alert_id, "user:other", "")
        assert refused.value.status == status
    assert [a["id"] for a in await alerts.recent(1, open_only=True, limit=10)] == [9]
    assert len(await alerts.recent(1, open_only=False, limit=10)) == 2 and len(events) == 1


async def test_alerts_are_read_by_their_own_index_not_among_every_event(engine_store: Store) -> None:
    """The stream's events have no index on time (each call's ~15 rewrote its last page at every commit); the alerts,
    read by time (the supervisor's list, the reports), have one of their own that no other event enters."""
    store = engine_store
    from types import SimpleNamespace

    from controller.plugins.reports.services import ReportService

    await store.executemany("INSERT INTO cti_events (seq, at, type, data) VALUES (?, ?, 'call.queued', '{}')",
                            [(seq, 900.0 + seq / 1000, ) for seq in range(1, 20_001)])
    await store.executemany("INSERT INTO cti_events (seq, at, type, queue, data) VALUES (?, ?, 'alert.raised', ?, ?)",
                            [(20_000 + n, 905.0 + n, "general", json.dumps({"kind": "wait"})) for n in (1, 2, 3)])
    reports: Any = SimpleNamespace(store=store)

    async def read() -> tuple[list[int], list[float]]:
        recent = [alert["id"] for alert in await AlertRecords(store).since(901.0, open_only=True, limit=10)]
        return recent, [fact.at for fact in await ReportService.alert_facts(reports, 900.0, 907.5)]

    if store.engine_name != "sqlite":
        assert await read() == ([20_003, 20_002, 20_001], [906.0, 907.0])
        return
    from tests.conftest import SqliteSteps

    with SqliteSteps(store) as steps:
        assert await read() == ([20_003, 20_002, 20_001], [906.0, 907.0])
    assert steps.count < 2_000, steps.count  # (through every event's index on time: ~300,000)
