"""Voicemail as work and follow-up tasks on the real Asterisk (README "Voicemail inbox", "Follow-up tasks").

One controller for the module: a SIPp caller speaks a message in a flow (A-law speech from SIPp's capture), the
queue's agents find it in their inbox and hear it, one calls the caller back (SIPp phones for the agent and, behind
the loopback trunk, the customer) and closes it; a message left on the fallback route (app_voicemail) is imported;
a follow-up task created after the call is due one working day later, raises its alert when it passes, is closed.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sandbox

from controller.workdays import working_days_later
from tests.e2e.conftest import ControllerProcess, ari_get, demo_config, running_controller
from tests.e2e.test_cli import ccctl
from tests.e2e.test_guard import wait_for
from tests.sipp import Caller, Pause, Phone, Speak, WaitForBye

pytestmark = pytest.mark.e2e
VOICEMAIL_DID = "4008006666"
NO_FLOW_DID = "4008001234"  # no flow in this module's folder: greeting, then the dialplan's fallback route
CALLER = "13800138000"
AGENT_1001, AGENT_1002 = "demo-agent-1001-token", "demo-agent-1002-token"
SUPERVISOR = "demo-supervisor-token"
FLOW = f"""
flow: vmtest
language: zh
dids: ["{VOICEMAIL_DID}"]
nodes:
  message:
    type: voicemail
    queue: general
    prompt: ["请留言"]
    max_seconds: 8
    silence_seconds: 0
    done_prompt: ["谢谢"]
    next: bye
  bye: {{type: hangup}}
"""
AGENTS = [
    {"id": "1001", "name": "王芳", "number": "1001", "endpoint": "8001", "queues": {"general": 0}},
    {"id": "1002", "name": "李娜", "number": "1002", "endpoint": "8002", "queues": {"general": 0}},
    {"id": "1004", "name": "刘洋", "number": "1004", "endpoint": "8004", "queues": {"orders": 0}},
]


@pytest.fixture(scope="module")
def shared(asterisk: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControllerProcess]:
    folder = tmp_path_factory.mktemp("inbox")
    flows = folder / "flows"
    flows.mkdir()
    (flows / "vmtest.yaml").write_text(FLOW)
    queues = [{"name": name, "wrapup_seconds": 2, "ring_timeout": 8, "announce_interval": 0, "no_agents": "wait"}
              for name in ("general", "orders")]
    config = demo_config(folder, ivr={"flows_dir": str(flows)}, acd={"queues": queues, "agents": AGENTS},
                         inbox={"fallback_mailbox_dir": str(MAILBOX), "fallback_queue": "general",
                                "poll_seconds": 0.5, "task_reminder_minutes": 1})
    with running_controller(folder, config) as process:
        yield process


MAILBOX = sandbox.ROOT / "var/spool/asterisk/voicemail/ccc/hotline"


def events(process: ControllerProcess, prefix: str) -> list[dict[str, Any]]:
    with sqlite3.connect(process.db) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT * FROM cti_events WHERE type LIKE ? ORDER BY seq", (prefix + "%",)).fetchall()
    return [{**dict(row), "data": json.loads(row["data"])} for row in rows]


async def inbox_of(process: ControllerProcess, token: str) -> list[dict[str, Any]]:
    status, body = await process.api("GET", "/api/inbox", token=token)
    assert status == 200, body
    return list(body["items"])


async def agent_token(process: ControllerProcess, agent_id: str) -> str:
    status, body = await process.api("POST", "/api/tokens", json={"name": f"agent-{agent_id}-inbox", "role": "agent",
                                                                  "agent_id": agent_id})
    assert status == 201, body
    return str(body["token"])


async def audio(process: ControllerProcess, item_id: str, token: str, **headers: str) -> tuple[int, bytes, str]:
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(
            f"{process.url}/api/inbox/{item_id}/audio", headers={"Authorization": f"Bearer {token}", **headers}) as r:
        return r.status, await r.read(), r.headers.get("Content-Type", "")


async def new_messages_seen(process: ControllerProcess, token: str) -> list[str]:
    """The items of the voicemail.new events this token's own event stream (GET /api/events) shows."""
    status, page = await process.api("GET", "/api/events?types=voicemail.new&since=0", token=token)
    assert status == 200, page
    return [event["data"]["item_id"] for event in page["events"]]


async def test_a_voicemail_left_in_a_flow_is_heard_called_back_and_closed_by_the_queues_agents(
        shared: ControllerProcess) -> None:
    orders_agent = await agent_token(shared, "1004")
    caller = Caller(VOICEMAIL_DID, caller=CALLER, steps=[Pause(1500), Speak(ms=9000), WaitForBye(15000)])
    result = await caller.run()
    assert result.ok, result.output + result.errors

    async def flow_item() -> dict[str, Any] | None:
        return next((i for i in await inbox_of(shared, AGENT_1001) if i["call_id"]), None)
    item = await wait_for("the message in agent 1001's inbox", flow_item)
    assert (item["caller"], item["queue"], item["status"], item["kind"]) == (CALLER, "general", "new", "voicemail")
    assert item["duration"] >= 5 and item["data"]["flow"] == "vmtest"
    assert [i["id"] for i in await inbox_of(shared, AGENT_1002)] == [item["id"]]  # the queue's other agent too
    assert await inbox_of(shared, orders_agent) == []  # not another queue's agent ...
    assert (await shared.api("GET", f"/api/inbox/{item['id']}", token=orders_agent))[0] == 404
    assert (await shared.api("GET", f"/api/inbox/{item['id']}", token=SUPERVISOR))[0] == 200  # ... supervisors all

    status, wav, kind = await audio(shared, item["id"], AGENT_1001)
    assert status == 200 and kind == "audio/wav" and wav[:4] == b"RIFF"
    assert len(wav) > 44 + 8000 * 2 * 5  # at least 5 s of 8 kHz 16-bit speech
    status, head, _ = await audio(shared, item["id"], AGENT_1001, Range="bytes=0-43")
    assert (status, head) == (206, wav[:44])
    assert (await audio(shared, item["id"], orders_agent))[0] == 404
    (new,) = [e for e in events(shared, "voicemail.new") if e["data"]["item_id"] == item["id"]]
    assert new["queue"] == "general" and CALLER not in json.dumps(new)
    # The queue's agents are told on their own event stream (the toolbar's messages panel reloads at once);
    # another queue's agent is not.
    assert item["id"] in await new_messages_seen(shared, AGENT_1001)
    assert item["id"] not in await new_messages_seen(shared, orders_agent)

    # Assigned to 1001 by a supervisor: 1001's now, no longer in the queue's other agent's inbox.
    assert (await shared.api("POST", f"/api/inbox/{item['id']}/assign", token=AGENT_1002,
                             json={"agent_id": "1001"}))[0] == 403  # an agent takes items only for themselves
    status, assigned = await shared.api("POST", f"/api/inbox/{item['id']}/assign", token=SUPERVISOR,
                                        json={"agent_id": "1001"})
    assert status == 200 and (assigned["status"], assigned["agent_id"]) == ("assigned", "1001"), assigned
    assert [i["id"] for i in await inbox_of(shared, AGENT_1001)] == [item["id"]]
    assert await inbox_of(shared, AGENT_1002) == []
    (taken,) = [e for e in events(shared, "voicemail.assigned") if e["data"]["item_id"] == item["id"]]
    assert taken["agent_id"] == "1001" and taken["data"]["assigned_by"] == "wallboard"

    # Called back with click-to-dial: the agent's phone rings, then the caller's (behind the loopback trunk).
    agent_phone = Phone(15001, answer_after_ms=300)
    customer = Phone(5090, answer_after_ms=500, hold_ms=2000)
    for phone in (agent_phone, customer):
        await phone.start()
    assert (await shared.api("POST", "/api/agents/1001/login", json={"ready": False}))[0] == 200
    status, called = await shared.api("POST", f"/api/inbox/{item['id']}/callback", token=AGENT_1001)
    assert status == 202, called
    assert called["status"] == "called_back" and called["callback_call_id"] == called["call"]["call_id"]
    answered = await customer.wait()
    assert answered.ok, answered.output + answered.errors  # the customer's phone rang and was answered
    record = await shared.call_record(called["callback_call_id"])
    assert (record["direction"], record["did"]) == ("outbound", CALLER)
    agent_phone.kill()

    status, done = await shared.api("POST", f"/api/inbox/{item['id']}/done", token=AGENT_1001,
                                    json={"note": "已回电，问题已解决"})
    assert status == 200 and (done["status"], done["note"]) == ("done", "已回电，问题已解决")
    assert (await shared.api("POST", f"/api/inbox/{item['id']}/done", token=AGENT_1001, json={"note": "x"}))[0] == 409
    finished = [e["data"] for e in events(shared, "voicemail.done") if e["data"]["item_id"] == item["id"]]
    assert [e["status"] for e in finished] == ["called_back", "done"]
    _, report = await shared.api("GET", "/api/inbox/report", token=SUPERVISOR)
    (general,) = [row for row in report["voicemail"] if row["queue"] == "general"]
    assert general["answered"] >= 1 and general["avg_response_seconds"] is not None
    table = await asyncio.to_thread(ccctl, "report", url=shared.url)
    assert table.returncode == 0 and "voicemail" in table.stdout, table.stderr


async def _channel_in(context: str) -> dict[str, Any] | None:
    return next((c for c in await ari_get("/channels") if c["dialplan"]["context"] == context), None)


async def test_a_message_left_on_the_fallback_route_reaches_the_queues_inbox(shared: ControllerProcess) -> None:
    before = {i["id"] for i in await inbox_of(shared, AGENT_1001)}
    caller = Caller(NO_FLOW_DID, caller="13900139001", steps=[Pause(7000), Speak(ms=8000), Pause(1000)])
    await caller.start()
    channel = await wait_for("the caller on the fallback route", lambda: _channel_in("ccc-fallback"), timeout=15)
    # Skip the minute every agent phone rings (Queue) and go to the route's mailbox, as after a ring-no-answer.
    await asyncio.to_thread(sandbox.cli, f"channel redirect {channel['name']} ccc-fallback,{NO_FLOW_DID},voicemail")
    result = await caller.wait()
    assert result.ok, result.output + result.errors

    async def fallback_item() -> dict[str, Any] | None:
        return next((i for i in await inbox_of(shared, AGENT_1001) if i["id"] not in before), None)
    item = await wait_for("the fallback message in agent 1001's inbox", fallback_item)
    assert (item["caller"], item["queue"], item["call_id"], item["data"]["route"]) == (
        "13900139001", "general", None, "fallback")
    assert item["duration"] >= 3
    status, wav, _ = await audio(shared, item["id"], AGENT_1002)
    assert status == 200 and wav[:4] == b"RIFF" and len(wav) > 8000 * 2 * 3
    assert not list((MAILBOX / "INBOX").glob("msg*"))  # taken out of the mailbox (imported once)


async def test_a_follow_up_task_is_due_one_working_day_later_raises_its_alert_when_overdue_and_is_closed(
        shared: ControllerProcess) -> None:
    if not await shared.call_records():  # run on its own: a call to follow up first
        assert (await Caller(VOICEMAIL_DID, caller=CALLER, steps=[Pause(1000)]).run()).ok
    call_id = (await wait_for("a call record", shared.call_records))[0]["call_id"]
    orders_agent = await agent_token(shared, "1004")
    status, task = await shared.api("POST", "/api/tasks", token=AGENT_1001,
                                    json={"title": "回访: 账单疑问", "call_id": call_id})
    assert status == 201, task
    assert task["agent_id"] == "1001" and task["created_by"] == "1001"
    assert task["due_at"] == pytest.approx(working_days_later(task["created_at"], 1, "Asia/Shanghai"))
    assert task["due_at"] - task["created_at"] >= 86400 - 1
    assert (await shared.api("POST", "/api/tasks", token=AGENT_1001,
                             json={"title": "x", "call_id": "no-such-call"}))[0] == 404

    # One for the queue, due in 3 s: reminded at once (1 minute ahead), then overdue.
    status, soon = await shared.api("POST", "/api/tasks", token=SUPERVISOR,
                                    json={"title": "发送资费单", "queue": "general", "call_id": call_id,
                                          "due_at": time.time() + 3})
    assert status == 201, soon

    async def overdue_alert() -> dict[str, Any] | None:
        return next((e for e in events(shared, "alert.raised") if e["data"]["subject"] == soon["id"]), None)
    alert = await wait_for("the overdue alert", overdue_alert, timeout=15)
    assert alert["data"]["kind"] == "task_overdue" and alert["queue"] == "general"
    reminders = [e for e in events(shared, "task.reminder") if e["data"]["task_id"] == soon["id"]]
    assert len(reminders) == 1 and reminders[0]["seq"] < alert["seq"]
    assert [e["data"]["subject"] for e in events(shared, "alert.raised") if e["data"]["kind"] == "task_overdue"] \
        == [soon["id"]]  # once, and not for the task due tomorrow
    _, listed = await shared.api("GET", "/api/tasks?status=open", token=AGENT_1002)
    assert {t["id"]: t["overdue"] for t in listed["tasks"]} == {soon["id"]: True}  # the queue's; not 1001's own
    _, counts = await shared.api("GET", "/api/tasks/counts", token=SUPERVISOR)
    assert counts == {"open": 2, "overdue": 1}
    assert (await shared.api("GET", f"/api/tasks/{task['id']}", token=orders_agent))[0] == 404
    assert (await shared.api("GET", f"/api/tasks/{task['id']}", token=AGENT_1001))[0] == 200

    closed = await asyncio.to_thread(ccctl, "tasks", "close", soon["id"][:10], "--note", "已发送", url=shared.url)
    assert closed.returncode == 0, closed.stderr
    status, after = await shared.api("POST", f"/api/tasks/{task['id']}/close", token=AGENT_1001,
                                     json={"note": "已回访"})
    assert status == 200 and (after["status"], after["note"]) == ("closed", "已回访")
    _, counts = await shared.api("GET", "/api/tasks/counts", token=SUPERVISOR)
    assert counts == {"open": 0, "overdue": 0}
    listing = await asyncio.to_thread(ccctl, "tasks", "list", "--status", "closed", url=shared.url)
    assert listing.returncode == 0 and "发送资费单" in listing.stdout, listing.stderr


async def test_the_toolbar_plays_a_message_closes_it_and_a_task_with_notes(shared: ControllerProcess) -> None:
    """Headless Chromium: agent 1001 signs in on the toolbar, plays the open message (the <audio> element decodes the
    WAV served through the API with the session cookie), marks it done with a note, and closes a task."""
    from tests.browser import Browser

    open_items = [i for i in await inbox_of(shared, AGENT_1001) if i["status"] == "new"]
    if not open_items:  # run on its own: leave a message first
        assert (await Caller(VOICEMAIL_DID, caller=CALLER, steps=[Pause(1500), Speak(ms=9000),
                                                                    WaitForBye(15000)]).run()).ok
        open_items = await wait_for("a message", lambda: inbox_of(shared, AGENT_1001))
    item = open_items[0]
    status, task = await shared.api("POST", "/api/tasks", token=AGENT_1001, json={"title": "寄送发票"})
    assert status == 201, task
    async with Browser() as browser:
        toolbar = await browser.open(f"{shared.url}/toolbar?agent=1001&lang=zh")
        await toolbar.fill("#password", "demo-1001-pass")
        await toolbar.click("#login")
        row = f'#inbox li[data-item="{item["id"]}"]'
        await toolbar.wait_for(f"document.querySelector('{row}') !== null")
        assert item["caller"] in await toolbar.text(row)
        # Pressing play, as a person does (a user gesture: the autoplay policy refuses a script's play()).
        player = f"document.querySelector('{row} audio')"
        pressed = await toolbar.send("Runtime.evaluate", expression=f"{player}.play().then(() => 'playing', String)",
                                     userGesture=True, awaitPromise=True, returnByValue=True)
        assert pressed["result"].get("value") == "playing", pressed
        played = await toolbar.wait_for(f"(a => a.currentTime > 1 && a.duration)({player})")
        assert played >= 3, played
        await toolbar.fill(f"{row} .note", "已回电")
        await toolbar.click(f"{row} .done")
        await toolbar.wait_for(f"document.querySelector('{row}') === null")
        task_row = f'#tasks li[data-task="{task["id"]}"]'
        await toolbar.wait_for(f"document.querySelector('{task_row}') !== null")
        await toolbar.fill(f"{task_row} .note", "已寄出")
        await toolbar.click(f"{task_row} .close")
        await toolbar.wait_for(f"document.querySelector('{task_row}') === null")
        assert await toolbar.text("#error") == ""
    _, done = await shared.api("GET", f"/api/inbox/{item['id']}", token=SUPERVISOR)
    assert (done["status"], done["note"], done["done_by"]) == ("done", "已回电", "1001")
    _, closed = await shared.api("GET", f"/api/tasks/{task['id']}", token=SUPERVISOR)
    assert (closed["status"], closed["note"]) == ("closed", "已寄出")
