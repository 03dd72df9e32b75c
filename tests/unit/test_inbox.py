"""The inbox and follow-up tasks on a real SQLite store with a fake clock: due times on the Chinese calendar
(make-up workdays), reminders and the overdue alert once each, the fallback mailbox and flow imports (once)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from controller.clock import FakeClock
from controller.config import InboxSettings
from controller.plugins.inbox.services import InboxError, InboxService, Viewer, caller_number
from controller.plugins.inbox.state_persistor import InboxRecords
from controller.store.db import Store
from controller.workdays import working_days_later

SHANGHAI = ZoneInfo("Asia/Shanghai")
#: The Friday evening before National Day 2025: the 27th (Saturday) is a day off, the 28th (Sunday) a make-up
#: workday (调休), 1-8 October are holidays.
FRIDAY_EVENING = datetime(2025, 9, 26, 19, 30, tzinfo=SHANGHAI)


def local(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, SHANGHAI)


class Harness:
    def __init__(self, store: Store, clock: FakeClock, tmp_path: Path) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.settings = InboxSettings(fallback_mailbox_dir=str(tmp_path / "mailbox"), fallback_queue="general",
                                      task_reminder_minutes=60)
        self.clock = clock
        self.store = store
        self.service = InboxService(settings=lambda: self.settings, records=InboxRecords(store, clock.now),
                                    now=clock.now, publish=self.publish,
                                    recordings_dir=lambda: str(tmp_path / "recording"), data_dir=tmp_path / "data")

    def publish(self, type_: str, **fields: Any) -> None:
        self.events.append((type_, fields))

    def types(self) -> list[str]:
        return [type_ for type_, _ in self.events]


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    store = Store(tmp_path / "store.sqlite3")
    await store.open()
    writer = asyncio.create_task(store.run_writer())
    yield Harness(store, FakeClock(FRIDAY_EVENING), tmp_path)
    writer.cancel()
    await store.close()


def test_one_working_day_later_skips_holidays_and_counts_make_up_workdays() -> None:
    due = local(working_days_later(FRIDAY_EVENING.timestamp(), 1, "Asia/Shanghai"))
    assert due == datetime(2025, 9, 28, 19, 30, tzinfo=SHANGHAI)  # the make-up Sunday, not Monday the 29th
    before_holiday = datetime(2025, 9, 30, 18, 0, tzinfo=SHANGHAI)  # Tuesday: 1-8 October off
    assert local(working_days_later(before_holiday.timestamp(), 1, "Asia/Shanghai")).date().isoformat() == "2025-10-09"
    ordinary = datetime(2025, 11, 4, 9, 0, tzinfo=SHANGHAI)  # a Tuesday
    assert local(working_days_later(ordinary.timestamp(), 1, "Asia/Shanghai")) == datetime(2025, 11, 5, 9, 0,
                                                                                           tzinfo=SHANGHAI)


async def test_a_task_created_friday_evening_is_due_on_the_make_up_sunday_reminded_then_overdue_once(
        harness: Harness) -> None:
    service = harness.service
    task = await service.create_task(title="回访: 账单疑问", created_by="1001", call_id="c1", agent_id="1001",
                                     queue=None, due_at=None)
    assert local(task["due_at"]) == datetime(2025, 9, 28, 19, 30, tzinfo=SHANGHAI)
    assert harness.types() == ["task.created"]
    await service.check_tasks()
    assert harness.types() == ["task.created"]  # Saturday is not a reminder's time
    harness.clock.advance(task["due_at"] - harness.clock.now() - 30 * 60)  # 30 min before
    await service.check_tasks()
    await service.check_tasks()
    assert harness.types() == ["task.created", "task.reminder"]
    assert await service.task_counts() == {"open": 1, "overdue": 0}
    harness.clock.advance(31 * 60)
    await service.check_tasks()
    await service.check_tasks()
    assert harness.types() == ["task.created", "task.reminder", "alert.raised"]
    alert = harness.events[-1][1]
    assert (alert["kind"], alert["subject"], alert["agent_id"]) == ("task_overdue", task["id"], "1001")
    assert await service.task_counts() == {"open": 1, "overdue": 1}
    closed = await service.close_task(task, "1001", "已回电")
    assert (closed["status"], closed["note"]) == ("closed", "已回电")
    assert harness.events[-1] == ("task.closed", {"call_id": "c1", "agent_id": "1001", "queue": None,
                                                  "task_id": task["id"], "closed_by": "1001", "overdue": True})
    assert await service.task_counts() == {"open": 0, "overdue": 0}


MESSAGE = """;
; Message Information file
;
[message]
origmailbox=hotline
context=ccc-fallback
exten=4008001234
callerid="13800138000" <13800138000>
origtime={origtime}
duration=6
msg_id={msg_id}
"""


def leave_message(mailbox: Path, number: int, msg_id: str, *, age: float = 10.0) -> None:
    inbox = mailbox / "INBOX"
    inbox.mkdir(parents=True, exist_ok=True)
    text, wav = inbox / f"msg{number:04d}.txt", inbox / f"msg{number:04d}.wav"
    text.write_text(MESSAGE.format(origtime=1758886200, msg_id=msg_id))
    wav.write_bytes(b"RIFF....WAVE")
    stamp = os.path.getmtime(text) - age
    for path in (text, wav):
        os.utime(path, (stamp, stamp))


async def test_fallback_messages_are_imported_once_and_leave_the_mailbox(harness: Harness) -> None:
    mailbox = Path(harness.settings.fallback_mailbox_dir)
    leave_message(mailbox, 0, "1758886200-00000000")
    leave_message(mailbox, 1, "1758886201-00000001", age=0)  # still being written: left for the next round
    assert await harness.service.import_fallback_mailbox() == 1
    assert sorted(p.name for p in (mailbox / "INBOX").iterdir()) == ["msg0001.txt", "msg0001.wav"]
    (item,) = await harness.service.records.items(agent_id=None, queues=None)
    assert (item["caller"], item["queue"], item["duration"], item["source"]) == (
        "13800138000", "general", 6.0, "fallback:1758886200-00000000")
    assert Path(item["file"]).read_bytes() == b"RIFF....WAVE"
    assert harness.types() == ["voicemail.new"] and "13800138000" not in json.dumps(harness.events)
    # A crash after indexing, before removing: the same message again is removed, not imported twice.
    leave_message(mailbox, 0, "1758886200-00000000")
    assert await harness.service.import_fallback_mailbox() == 0
    assert not (mailbox / "INBOX" / "msg0000.txt").exists()
    assert len(await harness.service.records.items(agent_id=None, queues=None)) == 1


async def test_flow_messages_go_to_the_last_queue_and_agents_see_only_their_queues(harness: Harness) -> None:
    store = harness.store
    await store.execute("INSERT INTO calls (call_id, channel_id, direction, caller, did, started_at, data)"
                        " VALUES ('c9', 'ch', 'inbound', '13900139000', '4008001234', 1, ?)",
                        (json.dumps({"account": "42"}),))
    await store.execute("INSERT INTO queue_calls (call_id, queue, enqueued_at) VALUES ('c9', 'orders', 2)")
    await store.execute("INSERT INTO ivr_records (call_id, kind, created_at, caller, did, payload)"
                        " VALUES ('c9', 'voicemail', 3, '13900139000', '4008001234', ?)",
                        (json.dumps({"recording": "voicemail-c9-1", "duration": 4.5, "flow": "hotline"}),))
    await store.execute("INSERT INTO ivr_records (call_id, kind, created_at, caller, did, payload)"
                        " VALUES ('c9', 'callback', 3, '13900139000', '4008001234', '{}')")
    assert await harness.service.import_flow_voicemails() == 1
    assert await harness.service.import_flow_voicemails() == 0  # the cursor moved with the item
    orders_agent, general_agent = Viewer("1004", ["orders"]), Viewer("1001", ["general"])
    (item,) = await harness.service.records.items(agent_id="1004", queues=["orders"])
    assert (item["queue"], item["call_id"], item["data"]["ivr"], item["duration"]) == ("orders", "c9",
                                                                                     {"account": "42"}, 4.5)
    assert item["file"].endswith("recording/voicemail-c9-1.wav")
    assert await harness.service.records.items(agent_id="1001", queues=["general"]) == []
    assert orders_agent.sees(item) and not general_agent.sees(item)
    assigned = await harness.service.assign(item, "1001", "supervisor")
    assert general_agent.sees(assigned) and not orders_agent.sees(assigned)  # assigned: that person's now
    harness.clock.advance(120)
    done = await harness.service.done(assigned, "1001", "已处理", "1001")
    assert done["status"] == "done"
    assert harness.events[-1][1]["response_seconds"] == pytest.approx(FRIDAY_EVENING.timestamp() + 120 - 3)


def test_caller_numbers_from_app_voicemail() -> None:
    assert caller_number('"Zhang" <13800138000>') == "13800138000"
    assert caller_number("13800138000") == "13800138000"
    assert caller_number("<unknown>") == ""


async def test_call_back_links_the_call_and_retention_removes_old_messages(harness: Harness, tmp_path: Path) -> None:
    leave_message(Path(harness.settings.fallback_mailbox_dir), 0, "1758886200-00000000")
    await harness.service.import_fallback_mailbox()
    (item,) = await harness.service.records.items(agent_id=None, queues=None)
    dialled: list[tuple[str, str]] = []

    async def click_to_dial(agent_id: str, number: str) -> dict[str, Any]:
        dialled.append((agent_id, number))
        return {"call_id": "out-1", "agent_id": agent_id, "state": "ringing_agent"}
    harness.service.click_to_dial = click_to_dial
    called = await harness.service.call_back(item, "1002")
    assert dialled == [("1002", "13800138000")]
    assert (called["status"], called["callback_call_id"], called["agent_id"]) == ("called_back", "out-1", "1002")
    done = await harness.service.done(called, "1002", "ok", "1002")
    with pytest.raises(InboxError):
        await harness.service.call_back(done, "1002")
    assert dialled == [("1002", "13800138000")]  # a done item is not dialled again
    report = await harness.service.report(0, harness.clock.now() + 1)
    assert [(r["queue"], r["messages"], r["answered"]) for r in report["voicemail"]] == [("general", 1, 1)]

    harness.settings = InboxSettings(fallback_mailbox_dir=harness.settings.fallback_mailbox_dir, retention_days=30)
    assert await harness.service.apply_retention() == 0  # the message is from 2025-09-26: not yet 30 days old
    harness.clock.advance(40 * 86400)
    assert await harness.service.apply_retention() == 1
    await harness.store.flush()
    assert not Path(item["file"]).exists()
    assert await harness.service.records.items(agent_id=None, queues=None) == []
