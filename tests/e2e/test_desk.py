"""The agent toolbar and the wallboard in headless Chromium, with a real SIPp call through the queue."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser import Browser, Page
from tests.e2e.conftest import REPO, ControllerProcess
from tests.e2e.test_call_control import start, wait_for_state
from tests.e2e.test_ivr_acd import login, rows, stop_after  # noqa: F401 (fixture)
from tests.sipp import Caller, Phone, WaitForBye

pytestmark = pytest.mark.e2e  # needs Debian's chromium and a Chinese font: `make deps` installs them
AGENT_PASSWORD = "demo-1001-pass"  # the demo user 1001 (README "Users and roles")
SUPERVISOR_TOKEN = "demo-supervisor-token"
SCREENSHOTS = REPO / "var" / "screenshots"  # kept after the run, for a person to look at
DESK_DID = "4008006666"
DESK_FLOW = f"""
flow: desktest
language: zh
dids: ["{DESK_DID}"]
variables: {{account: ""}}
nodes:
  lookup: {{type: set, values: {{account: "'A-1024'"}}, next: queue}}
  queue: {{type: queue, queue: general, answered: bye, otherwise: bye}}
  bye: {{type: hangup}}
"""
CALL_BUTTONS = ("#hold", "#resume", "#transfer", "#hangup")


async def assert_chinese_is_drawn(page: Page, selector: str, name: str) -> None:
    """The page's Chinese text is drawn with real glyphs (each character its own shape), not as the
    empty boxes Chromium draws when no installed font has them; a screenshot is kept."""
    await page.screenshot(SCREENSHOTS / f"{name}.png")
    text = "".join(dict.fromkeys(c for c in await page.text(selector) if "\u4e00" <= c <= "\u9fff"))
    assert len(text) >= 2, text
    drawn = await page.glyphs_drawn(selector, text)
    assert drawn == {"distinct": len(text), "inked": len(text), "count": len(text)}, (text, drawn)
    latin = await page.glyphs_drawn(selector, "AB")  # the check itself tells different shapes apart
    assert latin["distinct"] == 2, latin


async def test_agent_takes_a_call_on_the_toolbar_and_the_wallboard_follows(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    process = await start(tmp_path)
    stop_after.append(process)
    (tmp_path / "flows" / "desktest.yaml").write_text(DESK_FLOW)  # a flow that learns something before the queue
    status, body = await process.api("POST", "/api/flows/reload")
    assert status == 200, body
    phone = Phone(15001, answer_after_ms=1500, calls=2)  # the agent's desk phone: the queue call, then a dial
    await phone.start()
    async with Browser() as browser:
        wallboard = await browser.open(f"{process.url}/wallboard?token={SUPERVISOR_TOKEN}&lang=zh")
        await wallboard.wait_for("document.querySelector('#agents tr[data-agent=\"1001\"]') !== null")
        assert "未登录" in await wallboard.text('#agents tr[data-agent="1001"] .state')

        await assert_chinese_is_drawn(wallboard, "h1", "wallboard-zh")

        toolbar = await browser.open(f"{process.url}/toolbar?agent=1001&lang=zh")
        assert await toolbar.text("#login") == "签入"
        await assert_chinese_is_drawn(toolbar, "#signin", "toolbar-signin-zh")
        await toolbar.fill("#password", AGENT_PASSWORD)  # the name field is filled from ?agent=1001
        await toolbar.click("#login")
        await toolbar.wait_for("document.querySelector('#state').dataset.state === 'ready'")
        assert await toolbar.text("#state") == "示闲"
        await assert_chinese_is_drawn(toolbar, "#desk", "toolbar-ready-zh")
        # No call: the call's buttons are not shown, and pressing one anyway sends nothing.
        assert [await toolbar.visible(b) for b in CALL_BUTTONS] == [False] * 4
        assert await toolbar.visible("#notready") and await toolbar.visible("#dial")
        assert not await toolbar.visible("#ready") and not await toolbar.visible("#endacw")  # ready already
        await toolbar.evaluate("window.cccRequests = []; const realFetch = window.fetch;"
                               "window.fetch = (url, options) => { cccRequests.push(String(url));"
                               " return realFetch(url, options); }; true")
        for button in (*CALL_BUTTONS, "#ready"):
            await toolbar.click(button)
        requests = await toolbar.wait_for("cccRequests.includes('/api/agents/1001/ready') && cccRequests")
        assert not [r for r in requests if r.startswith("/api/calls")], requests  # was /api/calls/null/hold, …
        assert await toolbar.text("#error") == ""

        # Reopened while logged in (a reload of the tab): the agent's state, not a blank desk.
        await toolbar.reload()
        await toolbar.wait_for("document.querySelector('#state').dataset.state === 'ready'")
        assert await toolbar.visible("#desk") and not await toolbar.visible("#signin")
        assert await toolbar.text("#state") == "示闲"
        # A new tab of the same browser: the session cookie is shared, so the desk shows at once, no error.
        again = await browser.open(f"{process.url}/toolbar?agent=1001&lang=zh")
        await again.wait_for("document.querySelector('#state').dataset.state === 'ready'")
        assert await again.visible("#desk") and not await again.visible("#signin")
        assert await again.text("#error") == "" and await again.text("#state") == "示闲"
        assert "token" not in await again.evaluate("location.href")  # nothing secret in the address
        await login(process, "1002")  # a ready colleague: in the transfer list once a call comes in
        await wallboard.wait_for("document.querySelector('#agents tr[data-agent=\"1001\"] .state')"
                                 "?.dataset.state === 'ready'")  # (no row before the first draw)

        caller = Caller(DESK_DID, caller="13800138000", steps=[WaitForBye(40000)])
        await caller.start()
        # The screen pop shows while the phone rings: who calls, from where, what the IVR learnt;
        # not the flow's internal variables, nor the region object as "[object Object]".
        await toolbar.wait_for("!document.querySelector('#pop').hidden")
        assert await toolbar.text("#pop-caller") == "13800138000"
        assert "北京" in await toolbar.text("#pop-region")
        assert await toolbar.text("#pop-data") == "account=A-1024"
        await toolbar.wait_for("document.querySelector('#state').dataset.state === 'talking'")
        # While talking: hold, transfer and hang up; resume only while on hold (a control shows when it applies).
        assert [await toolbar.visible(b) for b in CALL_BUTTONS] == [True, False, True, True]
        await toolbar.screenshot(SCREENSHOTS / "toolbar-talking-zh.png")
        await wallboard.wait_for("document.querySelector('#agents tr[data-agent=\"1001\"] .state')"
                                 ".dataset.state === 'talking'")
        await toolbar.wait_for("[...document.querySelector('#queues').options].some((o) => o.value === 'agent:1002')")

        await toolbar.click("#hold")
        await toolbar.wait_for("document.querySelector('#state').dataset.state === 'on_hold'")
        assert (await wait_for_state(process, "1001", "on_hold"))["current_call"]
        await toolbar.click("#resume")
        await toolbar.wait_for("document.querySelector('#state').dataset.state === 'talking'")
        await toolbar.click("#hangup")
        await toolbar.wait_for("document.querySelector('#state').dataset.state === 'acw'")
        assert (await caller.wait()).ok  # the flow said goodbye after the agent hung up
        await wallboard.wait_for("document.querySelector('#agents tr[data-agent=\"1001\"] .state')"
                                 ".dataset.state !== 'talking'")
        assert await toolbar.text("#error") == ""

        # After the call: the disposition (话后小结), then a click-to-dial from the toolbar.
        await toolbar.wait_for("!document.querySelector('#wrapup').hidden")
        await toolbar.evaluate("document.querySelector('#disposition').value = 'follow_up'")
        await toolbar.fill("#notes", "客户要求回电")
        await toolbar.click("#save")
        await toolbar.wait_for("document.querySelector('#saved').textContent === '✓'")
        customer = Phone(5090, answer_after_ms=500, hold_ms=2000)
        await customer.start()
        await toolbar.fill("#dial-number", "13900139000")
        await toolbar.click("#dial")
        await toolbar.wait_for("document.querySelector('#state').dataset.state === 'talking'")
        assert (await customer.wait()).ok
        await toolbar.wait_for("document.querySelector('#state').dataset.state !== 'talking'")
        assert await toolbar.text("#error") == ""

        # Logged out: the sign-in form is back, and signing in again works on the same page.
        await toolbar.click("#logout")
        await toolbar.wait_for("!document.querySelector('#signin').hidden")
        assert not await toolbar.visible("#desk")
        await toolbar.click("#login")
        await toolbar.wait_for("document.querySelector('#state').dataset.state === 'ready'")
        assert await toolbar.visible("#desk") and await toolbar.text("#error") == ""

    (visit,) = rows(process, "SELECT queue, outcome, agent_id FROM queue_calls")
    assert visit == {"queue": "general", "outcome": "answered", "agent_id": "1001"}
    (note,) = rows(process, "SELECT disposition, notes, agent_id FROM dispositions")
    assert note == {"disposition": "follow_up", "notes": "客户要求回电", "agent_id": "1001"}
    (outbound,) = rows(process, "SELECT did FROM calls WHERE direction = 'outbound'")
    assert outbound["did"] == "13900139000"
    phone.kill()


async def sign_in(page: Page, name: str, password: str) -> str:
    """Type a name and password on the toolbar and press 签入/Log in: the error shown (empty: none)."""
    await page.evaluate("document.querySelector('#error').textContent = 'pending'; true")
    await page.evaluate(f"document.querySelector('#agent').value = {name!r}; true")
    await page.fill("#password", password)
    await page.click("#login")
    return str(await page.wait_for(
        "(document.querySelector('#error').textContent !== 'pending' || !document.querySelector('#desk').hidden)"
        " && document.querySelector('#error').textContent"))


async def test_a_sign_in_that_gets_no_answer_says_the_controller_is_out_of_reach(
        controller: ControllerProcess) -> None:
    """A stopped controller (or a network down) answers nothing: the page says so under the form, in the page's
    language, rather than leaving a sign-in button that does nothing (a fetch that fails throws, not answers)."""
    async with Browser() as browser:
        english = await browser.open(f"{controller.url}/toolbar?lang=en")
        chinese = await browser.open(f"{controller.url}/toolbar?lang=zh")
        controller.terminate()
        assert await sign_in(english, "1001", AGENT_PASSWORD) == \
            "cannot reach the controller: check the network and try again"
        assert await sign_in(chinese, "1001", AGENT_PASSWORD) == "无法连接控制器：请检查网络，稍后再试"
        assert not await english.visible("#desk") and not await chinese.visible("#desk")
        # Without a password (a session kept by the tab): the same, not "type your password".
        await english.evaluate("document.querySelector('#error').textContent = 'pending'; true")
        await english.click("#login")
        assert await english.wait_for("document.querySelector('#error').textContent !== 'pending'"
                                      " && document.querySelector('#error').textContent") == \
            "cannot reach the controller: check the network and try again"


async def test_an_agent_signs_in_with_name_and_password_and_five_wrong_ones_lock_the_account(
        controller: ControllerProcess) -> None:
    async with Browser() as browser:
        toolbar = await browser.open(f"{controller.url}/toolbar?lang=en")
        assert await toolbar.visible("#password") and await toolbar.evaluate("!document.querySelector('#token')")
        errors = [await sign_in(toolbar, "1002", f"wrong-{attempt}") for attempt in range(1, 6)]
        assert errors[:4] == ["wrong name or password"] * 4, errors
        assert "locked" in errors[4], errors
        assert "locked" in await sign_in(toolbar, "1002", "demo-1002-pass")  # even the right one, while locked
        assert not await toolbar.visible("#desk")
        status, agent = await controller.api("GET", "/api/agents/1002")
        assert status == 200 and agent["state"] == "logged_out"

        # Another agent on a fresh page: name and password, no token anywhere, logged in and ready.
        other = await browser.open(f"{controller.url}/toolbar?lang=en")
        await other.evaluate("document.querySelector('#agent').value = '1001'; true")
        await other.fill("#password", AGENT_PASSWORD)
        await other.click("#login")
        await other.wait_for("document.querySelector('#state').dataset.state === 'ready'")
        assert await other.text("#error") == "" and "token" not in await other.evaluate("location.href")
        assert await other.evaluate("sessionStorage.getItem('ccc.token')") in (None, "")
        assert "ccc_session" not in await other.evaluate("document.cookie")  # HttpOnly: out of the page's reach
        # A supervisor's session in the same browser: the wallboard uses it, no token asked for.
        login_js = ("fetch('/api/auth/login', {method: 'POST', headers: {'Content-Type': 'application/json'},"
                    " body: JSON.stringify({name: 'supervisor', password: 'demo-supervisor-pass'})})"
                    ".then((r) => r.status)")
        board = await browser.open(f"{controller.url}/toolbar?lang=en")
        assert await board.evaluate(login_js) == 200
        wallboard = await browser.open(f"{controller.url}/wallboard?lang=en")
        await wallboard.wait_for("document.querySelector('#agents tr[data-agent=\"1001\"] .state')"
                                 "?.dataset.state === 'ready'")  # (no row before the first draw)
        assert "token" not in await wallboard.evaluate("location.href")
    _, entries = await controller.api("GET", "/api/audit", params={"target": "user:1002"})
    assert [e["action"] for e in entries["entries"]][:2] == ["login.refused", "user.locked"]
