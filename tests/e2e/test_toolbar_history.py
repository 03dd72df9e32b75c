"""The toolbar's recent calls come from the store (GET /api/agents/{id}/calls), and its lists follow the live
configuration (config.changed on the agent's own event stream), in headless Chromium with real SIPp calls."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.browser import Browser, Page
from tests.e2e.conftest import ControllerProcess
from tests.e2e.test_call_control import wait_for_state
from tests.e2e.test_desk import AGENT_PASSWORD, DESK_DID, SCREENSHOTS
from tests.e2e.test_ivr_acd import stop_after  # noqa: F401 (fixture)
from tests.e2e.test_toolbar_controls import start
from tests.sipp import Caller, Phone, WaitForBye

pytestmark = pytest.mark.e2e
AGENT_1001, AGENT_1002 = "demo-agent-1001-token", "demo-agent-1002-token"
CALLER, CUSTOMER = "13800138000", "02088881234"


async def recent_rows(page: Page, count: int) -> list[dict[str, str]]:
    """The toolbar's recent calls once it shows `count` rows: each row's text and its button's number."""
    await page.wait_for(f"document.querySelectorAll('#recent li').length === {count}", timeout=20)
    return list(await page.evaluate(
        "[...document.querySelectorAll('#recent li')].map((li) => ({text: li.textContent, call: li.dataset.call,"
        " number: li.querySelector('.redial').dataset.number}))"))


async def sign_in(page: Page) -> None:
    await page.fill("#password", AGENT_PASSWORD)
    await page.click("#login")
    await page.wait_for("!document.querySelector('#desk').hidden && document.querySelector('#state').dataset.state")


async def agent_events(process: ControllerProcess, token: str, since: int) -> list[dict[str, Any]]:
    status, page = await process.api("GET", f"/api/events?types=config.changed&since={since}", token=token)
    assert status == 200, page
    return [event["data"] for event in page["events"]]


async def test_the_recent_calls_come_from_the_server_with_click_to_dial_and_the_lists_follow_the_configuration(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    process = await start(tmp_path)
    stop_after.append(process)
    desk_phone = Phone(15001, answer_after_ms=300, calls=3)  # 1001: the queue call, the dial, the redial
    customer = Phone(5090, answer_after_ms=300, hold_ms=2000, calls=2)  # behind the trunk
    for phone in (desk_phone, customer):
        await phone.start()
    async with Browser() as browser:
        toolbar = await browser.open(f"{process.url}/toolbar?agent=1001&lang=en")
        await sign_in(toolbar)
        await toolbar.wait_for("document.querySelector('#state').dataset.state === 'ready'")
        assert await recent_rows(toolbar, 0) == []

        # A queue call answered on the desk phone, hung up on the toolbar, with a disposition.
        caller = Caller(DESK_DID, caller=CALLER, steps=[WaitForBye(60000)])
        await caller.start()
        await toolbar.wait_for("document.querySelector('#state').dataset.state === 'talking'")
        inbound_call = (await wait_for_state(process, "1001", "talking"))["current_call"]
        await asyncio.sleep(2.5)  # some talk
        await toolbar.click("#hangup")
        await toolbar.wait_for("document.querySelector('#state').dataset.state === 'acw'")
        assert (await caller.wait()).ok
        await toolbar.evaluate("document.querySelector('#disposition').value = 'complaint'; true")
        await toolbar.click("#save")
        await toolbar.wait_for("document.querySelector('#recent li') !== null"
                               " && document.querySelector('#recent li').textContent.includes('complaint')")
        (row,) = await recent_rows(toolbar, 1)
        assert row["call"] == inbound_call and row["number"] == CALLER
        assert "inbound" in row["text"] and CALLER in row["text"] and "0:0" in row["text"], row

        # A number dialled from the toolbar: the newest row, outbound, the customer's number.
        await toolbar.fill("#dial-number", CUSTOMER)
        await toolbar.click("#dial")
        await toolbar.wait_for("document.querySelector('#state').dataset.state === 'talking'", timeout=20)
        await toolbar.wait_for("document.querySelector('#state').dataset.state !== 'talking'", timeout=20)
        await toolbar.wait_for("document.querySelectorAll('#recent li').length === 2"
                               " && document.querySelector('#recent li').textContent.includes(':')", timeout=20)
        newest, older = await recent_rows(toolbar, 2)
        assert newest["number"] == CUSTOMER and "outbound" in newest["text"], newest
        assert older["call"] == inbound_call
        await toolbar.screenshot(SCREENSHOTS / "toolbar-recent-calls-en.png")

        # The API: the agent's own calls only; a supervisor sees anyone's.
        status, mine = await process.api("GET", "/api/agents/1001/calls", token=AGENT_1001)
        assert status == 200, mine
        assert [(c["direction"], c["number"], c["disposition"]) for c in mine["calls"]] == [
            ("outbound", CUSTOMER, None), ("inbound", CALLER, "complaint")]
        assert mine["calls"][1]["talk_seconds"] >= 2 and mine["calls"][0]["answered"] is True
        assert (await process.api("GET", "/api/agents/1001/calls", token=AGENT_1002))[0] == 403
        status, theirs = await process.api("GET", "/api/agents/1002/calls", token=AGENT_1002)
        assert (status, theirs["calls"]) == (200, [])  # a colleague's list: not 1001's calls
        assert (await process.api("GET", "/api/agents/1001/calls", token="demo-supervisor-token"))[1] == mine

        # The configuration the toolbar shows changes: its lists follow at once, without a reload. The agent's
        # stream tells them of a new not-ready reason, not of a DID (nothing of theirs).
        _, before = await process.api("GET", "/api/events?since=0&limit=1", token=AGENT_1001)
        since = before["newest_seq"]
        assert (await process.api("PUT", "/api/config/not_ready_reasons/mentoring"))[0] == 200
        assert (await process.api("PUT", "/api/config/dids/4008009999", json="acdtest"))[0] == 200
        await toolbar.wait_for("[...document.querySelector('#reasons').options].some((o) => o.value === 'mentoring')")
        seen = await agent_events(process, AGENT_1001, since)
        assert seen == [{"kind": "not_ready_reason", "key": "mentoring", "op": "add"}], seen
        assert len(await agent_events(process, "demo-supervisor-token", since)) == 2  # the DID was changed too

    # A new browser (nothing kept in its storage): the same list, from the server; its button dials again.
    async with Browser() as browser:
        again = await browser.open(f"{process.url}/toolbar?agent=1001&lang=zh")
        await sign_in(again)
        rows = await recent_rows(again, 2)
        assert [r["number"] for r in rows] == [CUSTOMER, CALLER] and "呼出" in rows[0]["text"]
        assert "投诉" in rows[1]["text"]  # the disposition in the page's language
        await again.click(f'#recent .redial[data-number="{CUSTOMER}"]')
        await again.wait_for("document.querySelectorAll('#recent li').length === 3", timeout=30)
    assert (await customer.wait()).ok
    desk_phone.kill()
