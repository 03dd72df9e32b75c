"""The supervisor console (/console) in headless Chromium, beside the agent's toolbar in a second browser
(each its own cookies): the supervisor's own browser phone registers to the real Asterisk; a SIPp caller
reaches the agent's browser phone through the queue; the supervisor listens, whispers and barges from the
agent's row (checked in Asterisk's bridges through ARI, and by the audio the supervisor's page receives),
forces the agent not ready (the toolbar shows it), moves a waiting call to another queue, acknowledges an
alert, and messages go both ways (one stored while the agent was away, one live, text never as HTML).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.browser import WEBRTC_ARGS, Browser, Page
from tests.e2e.conftest import ARI_HEADERS, ControllerProcess, sandbox
from tests.e2e.test_call_control import start, wait_for_state
from tests.e2e.test_desk import AGENT_PASSWORD, DESK_DID, DESK_FLOW, SCREENSHOTS, assert_chinese_is_drawn
from tests.e2e.test_ivr_acd import rows, stop_after  # noqa: F401 (fixture)
from tests.e2e.test_users import Browserish
from tests.e2e.test_webrtc import media_interface, page_audio, phone_status  # noqa: F401 (fixture)
from tests.sipp import Caller, Pause, TalkUntilBye

pytestmark = pytest.mark.e2e  # needs Debian's chromium and `make desk-js` (JsSIP)
SUPERVISOR, SUPERVISOR_PASSWORD = "supervisor", "demo-supervisor-pass"  # the demo's user (README "Users and roles")
SUPERVISOR_PHONE = "webrtc-sup-supervisor"
HOSTILE = '<img src=x onerror="window.pwned=1">请接 VIP 电话'  # a message is text, never markup


async def ari(path: str) -> Any:
    async with aiohttp.ClientSession(headers=ARI_HEADERS) as http, \
            http.get(f"http://127.0.0.1:8088/ari{path}", timeout=aiohttp.ClientTimeout(total=5)) as response:
        assert response.status == 200, path
        return await response.json()


async def bridges_by_member() -> tuple[dict[str, str], dict[str, set[str]]]:
    """Channel names by id, and each bridge's members (as channel-name prefixes, e.g. PJSIP/webrtc-1001)."""
    channels = {c["id"]: c["name"] for c in await ari("/channels")}
    members = {b["id"]: {channels.get(c, c).rsplit("-", 1)[0] for c in b["channels"]} for b in await ari("/bridges")}
    return channels, members


async def supervisor_bridge() -> set[str]:
    """The members of the bridge the supervisor's phone is in (its channel names without their suffix)."""
    _, members = await bridges_by_member()
    (bridge,) = [m for m in members.values() if f"PJSIP/{SUPERVISOR_PHONE}" in m]
    return bridge


async def monitor_mode(console: Page, mode: str) -> None:
    await console.wait_for(f"document.querySelector('#monitor-mode').dataset.mode === {mode!r}"
                           " && !document.querySelector('#monitor-box').hidden", timeout=30)


AGENT_ROW = "document.querySelector('#agents tr[data-agent=\"1001\"]')"


async def agent_action(console: Page, action: str) -> None:
    """Click one of the agent's row actions (listen, whisper, barge, not_ready, logout, message)."""
    button = f"{AGENT_ROW}?.querySelector('button[data-action={action}]')"
    await console.wait_for(f"!!{button}")
    await console.evaluate(f"{button}.click(); true")


async def agent_row_state(console: Page, state: str) -> None:
    await console.wait_for(f"{AGENT_ROW}?.querySelector('.state')?.dataset.state === {state!r}")


def has_text(selector: str, text: str) -> str:
    return f"[...document.querySelectorAll({selector!r})].some((e) => e.textContent === {text!r})"


async def snapshot(page: Page, name: str, showing: str | None = None) -> None:
    """A screenshot of the page from its top (where the supervisor's phone and monitoring show), or with the
    element `showing` scrolled into view."""
    scroll = f"document.querySelector({showing!r}).scrollIntoView()" if showing else "window.scrollTo(0, 0)"
    await page.evaluate(f"{scroll}; true")
    await page.screenshot(SCREENSHOTS / f"{name}.png")


async def received_packets(console: Page) -> int:
    return int((await page_audio(console))["received"])


async def test_a_supervisor_listens_whispers_barges_forces_not_ready_moves_a_call_and_messages_an_agent(
        media_interface: None, fresh_asterisk: Path, tmp_path: Path,  # noqa: F811
        stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    process = await start(tmp_path)
    stop_after.append(process)
    (tmp_path / "flows" / "desktest.yaml").write_text(DESK_FLOW)
    assert (await process.api("POST", "/api/flows/reload"))[0] == 200
    standards = (await process.api("GET", "/api/config/standards"))[1]
    # A talk standard of 4 s: the monitored call raises an alert for the console to acknowledge.
    assert (await process.api("PUT", "/api/config/standards", json={**standards, "max_talk_seconds": 4}))[0] == 200

    # A message written while the agent is away is stored and waits for their next login.
    office = Browserish(process.url)
    try:
        assert (await office.login(SUPERVISOR, SUPERVISOR_PASSWORD))[0] == 200
        status, waiting_message = await office.request("POST", "/api/messages",
                                                       json={"to": "1001", "text": "上线后请回电 / call me back"})
        assert status == 201, waiting_message
        status, phone = await office.request("GET", "/api/me/phone")  # the supervisor's own browser phone
        assert status == 200 and phone["endpoint"] == SUPERVISOR_PHONE
    finally:
        await office.close()
    _, sections = await process.api("GET", "/api/softphone/pjsip")
    assert SUPERVISOR in sections["supervisors"]
    assert f"[{SUPERVISOR_PHONE}](webrtc-endpoint)" in sections["pjsip_webrtc_conf"]

    async with Browser(*WEBRTC_ARGS) as agent_browser, \
            Browser(*WEBRTC_ARGS, "--window-size=1440,1300") as supervisor_browser:
        toolbar = await agent_browser.open(f"{process.url}/toolbar?agent=1001&lang=zh")
        await toolbar.evaluate("document.querySelector('#phone-choice').value = 'browser'; true")
        await toolbar.fill("#password", AGENT_PASSWORD)
        await toolbar.click("#login")
        await phone_status(toolbar, "registered")
        await toolbar.wait_for("document.querySelector('#state').dataset.state === 'ready'")
        # The message sent while away: there, unread, after the login.
        stored = f'#messages li[data-message="{waiting_message["id"]}"]'
        await toolbar.wait_for(f"document.querySelector({stored!r})?.classList.contains('unread')")
        assert "上线后请回电" in await toolbar.text(f"{stored} .text")
        # An agent writes to supervisors and admins only, not to fellow agents.
        recipients = await toolbar.evaluate(
            "[...document.querySelectorAll('#messages .msg-to option')].map((o) => o.value)")
        assert SUPERVISOR in recipients and "1002" not in recipients, recipients

        console = await supervisor_browser.open(f"{process.url}/console?lang=zh")
        await console.wait_for("!document.querySelector('#signin').hidden")
        await console.fill("#user", SUPERVISOR)
        await console.fill("#password", SUPERVISOR_PASSWORD)
        await console.click("#login")
        await phone_status(console, "registered")
        assert "transport=ws" in sandbox.cli(f"pjsip show aor {SUPERVISOR_PHONE}")  # registered to the real Asterisk
        await agent_row_state(console, "ready")
        await console.wait_for("!!document.querySelector('#nodes .node.up')")  # the controller's Asterisk node
        await console.wait_for("!!document.querySelector('#trunks tr[data-trunk=\"loopback-trunk\"]')")  # AMI's trunks
        await assert_chinese_is_drawn(console, "h1", "console-ready-zh")

        # A live message from the console to the agent: on the toolbar at once, as text.
        await agent_action(console, "message")
        assert await console.evaluate("document.querySelector('#messages .msg-to').value") == "1001"
        await console.fill("#messages .msg-text", HOSTILE)
        await console.click("#messages .msg-send")
        await toolbar.wait_for(has_text("#messages li.unread .text", HOSTILE))
        assert await toolbar.evaluate("document.querySelector('#messages img') === null && window.pwned === undefined")
        assert await toolbar.text("#messages h2 .unread") == "(2 条未读)"
        await snapshot(toolbar, "toolbar-message-zh", "#messages")
        # Read by the agent: the console shows the receipt; the agent answers, the console shows it unread.
        for _ in range(2):
            await toolbar.click("#messages li.unread button[data-action=read]")
            await toolbar.wait_for("document.querySelectorAll('#messages li.unread').length < 2")
        await toolbar.wait_for("document.querySelectorAll('#messages li.unread').length === 0")
        assert await toolbar.text("#messages h2 .unread") == ""
        await console.wait_for("document.querySelectorAll('#messages li.out .receipt').length === 2")
        await toolbar.evaluate(f"document.querySelector('#messages .msg-to').value = {SUPERVISOR!r}; true")
        await toolbar.fill("#messages .msg-text", "收到")
        await toolbar.click("#messages .msg-send")
        await console.wait_for(has_text("#messages li.unread .text", "收到"))
        await snapshot(console, "console-messages-zh", "#agents")

        # No call: the agent's row offers no listen, whisper or barge (and the monitoring bar is hidden).
        assert await console.evaluate(f"{AGENT_ROW}.querySelectorAll('button[data-action=listen],"
                                      " button[data-action=whisper], button[data-action=barge]').length") == 0
        assert not await console.visible("#monitor-box")
        assert await console.visible("#agents button[data-action=not_ready]")  # what applies now is there
        # A caller through the IVR to the queue; the agent answers in their page.
        caller = Caller(DESK_DID, caller="13800138000", steps=[TalkUntilBye()])
        await caller.start()
        await phone_status(toolbar, "ringing")
        await toolbar.click("#phone-answer")
        await phone_status(toolbar, "in_call")
        talking = await wait_for_state(process, "1001", "talking")

        # Listen: the supervisor's phone rings and the page answers it; it sits in a monitor bridge with a snoop
        # on the agent's leg, outside the talk bridge (the caller and the agent hear nothing of it).
        await agent_action(console, "listen")
        await monitor_mode(console, "listen")
        await phone_status(console, "in_call")
        listening = await supervisor_bridge()
        assert len(listening) == 2 and any(m.startswith("Snoop/") for m in listening), listening
        _, members = await bridges_by_member()
        (talk,) = [m for m in members.values() if "PJSIP/webrtc-1001" in m]
        assert f"PJSIP/{SUPERVISOR_PHONE}" not in talk and any(m.startswith("PJSIP/loopback-trunk") for m in talk), talk
        # The supervisor hears the call: audio with energy arrives in their page.
        heard = await console.wait_for(
            "(async () => { const s = await phone.session.connection.getStats(); let ok = null;"
            " s.forEach((r) => { if (r.type === 'inbound-rtp' && r.kind === 'audio' && r.packetsReceived > 100"
            " && r.totalAudioEnergy > 0) ok = r.packetsReceived; }); return ok; })()", timeout=20)
        assert heard > 100
        assert await console.text("#monitor-mode") == "监听" and await console.visible("#monitor-whisper")
        await snapshot(console, "console-listen-zh")

        # Whisper: the same phone call, a new snoop that also speaks to the agent; still outside the talk bridge.
        await console.click("#monitor-whisper")
        await monitor_mode(console, "whisper")
        whispering = await supervisor_bridge()
        assert len(whispering) == 2 and any(m.startswith("Snoop/") for m in whispering), whispering
        assert await console.evaluate("phone.status") == "in_call"  # not rung again
        before = await received_packets(console)
        await snapshot(console, "console-whisper-zh")

        # Barge: the supervisor joins the talk bridge with the caller and the agent.
        await console.click("#monitor-barge")
        await monitor_mode(console, "barge")
        barging = await supervisor_bridge()
        assert "PJSIP/webrtc-1001" in barging and any(m.startswith("PJSIP/loopback-trunk") for m in barging), barging
        assert len(barging) == 3, barging
        assert await received_packets(console) > before  # the audio goes on through the change
        await snapshot(console, "console-barge-zh")

        # The talk standard (4 s) was broken meanwhile: the alert is listed; acknowledged, every console sees it.
        await console.wait_for("!!document.querySelector('#alerts li.bad button[data-action=ack]')", timeout=20)
        alert_id = await console.evaluate("document.querySelector('#alerts li.bad').dataset.alert")
        await console.click("#alerts li.bad button[data-action=ack]")
        alert_row = f'#alerts li[data-alert="{alert_id}"]'
        await console.wait_for(f"document.querySelector({alert_row!r}).classList.contains('acked')")
        assert SUPERVISOR in await console.text(f"{alert_row} .ack")
        _, alerts = await process.api("GET", "/api/alerts")
        (acked,) = [a for a in alerts["alerts"] if a["id"] == int(alert_id)]
        assert acked["kind"] == "talk" and acked["acknowledged_by"] == f"user:{SUPERVISOR}", acked
        await snapshot(console, "console-alert-acknowledged-zh")

        # Stop: the supervisor's phone call ends, the call goes on between the caller and the agent.
        await console.click("#monitor-stop")
        await phone_status(console, "registered")
        await console.wait_for("document.querySelector('#monitor-box').hidden")
        _, members = await bridges_by_member()
        assert not any(f"PJSIP/{SUPERVISOR_PHONE}" in m for m in members.values()), members
        assert (await wait_for_state(process, "1001", "talking"))["current_call"] == talking["current_call"]

        # The agent hangs up; in after-call work the supervisor forces them not ready: the toolbar shows it.
        await toolbar.click("#phone-hangup")
        await wait_for_state(process, "1001", "acw")
        assert (await caller.wait()).ok
        reason = await console.evaluate("document.querySelector('#force-reason').value")
        await agent_action(console, "not_ready")
        forced = await wait_for_state(process, "1001", "not_ready")
        assert forced["reason"] == reason
        await toolbar.wait_for("document.querySelector('#state').dataset.state === 'not_ready'")
        assert await toolbar.text("#state") == "示忙" and await toolbar.text("#reason") != ""
        await agent_row_state(console, "not_ready")
        assert "就餐" in await console.evaluate(f"{AGENT_ROW}.querySelector('.state').textContent")  # the reason's name
        await snapshot(toolbar, "toolbar-forced-not-ready-zh")

        # A caller waits (nobody ready in general); the supervisor moves the call to the orders queue.
        waiting_caller = Caller(DESK_DID, caller="13900139000", steps=[Pause(25_000)])
        await waiting_caller.start()
        await console.wait_for("!!document.querySelector('#waiting tr[data-queue=\"general\"]')", timeout=20)
        call_id = await console.evaluate("document.querySelector('#waiting tr[data-queue=\"general\"]').dataset.call")
        await snapshot(console, "console-waiting-zh")
        (before_move,) = (await process.api("GET", "/api/queues/general"))[1]["calls"]
        await console.evaluate("document.querySelector('#waiting tr[data-call] select').value = 'orders'; true")
        await console.click("#waiting tr[data-call] button[data-action=move]")
        moved_row = f'#waiting tr[data-call="{call_id}"]'
        await console.wait_for(f"document.querySelector({moved_row!r})?.dataset.queue === 'orders'")
        _, orders = await process.api("GET", "/api/queues/orders")
        assert [c["call_id"] for c in orders["calls"]] == [call_id]
        assert orders["calls"][0]["waited"] >= before_move["waited"]  # the caller keeps their wait
        assert (await process.api("GET", "/api/queues/general"))[1]["calls"] == []
        # A bad move is refused and changes nothing.
        status, body = await process.api("POST", f"/api/calls/{call_id}/move", json={"queue": "orders"})
        assert status == 409 and "already" in body["error"], body
        assert (await process.api("POST", f"/api/calls/{call_id}/move", json={"queue": "general"},
                                  token="demo-agent-1001-token"))[0] == 403
        await snapshot(console, "console-moved-zh")
        waiting_caller.kill()

        # English: the same console after the language switch (its phone registers again by itself).
        await console.evaluate("localStorage.setItem('ccc.lang', 'en'); window.cccBeforeReload = true; true")
        await console.send("Page.navigate", url=f"{process.url}/console")
        await console.wait_for("window.cccBeforeReload === undefined && document.readyState === 'complete'")
        await phone_status(console, "registered")
        await agent_row_state(console, "not_ready")
        assert await console.text("h1") == "Supervisor console" and await console.text("#phone-status") == "registered"
        await snapshot(console, "console-en")
        assert await console.text("#error") == "" and await toolbar.text("#error") == ""

    moved = rows(process, "SELECT queue, outcome FROM queue_calls WHERE call_id = ? ORDER BY enqueued_at", call_id)
    assert moved[0] == {"queue": "general", "outcome": "overflowed"} and moved[1]["queue"] == "orders", moved
    events = rows(process, "SELECT data FROM cti_events WHERE type = 'call.overflowed' AND call_id = ?", call_id)
    assert json.loads(events[0]["data"])["reason"] == "moved", events
