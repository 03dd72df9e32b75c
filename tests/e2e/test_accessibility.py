"""Accessibility, measured in headless Chromium on /toolbar, /wallboard and /admin as they are drawn: the WCAG 2
contrast of every visible text (4.5:1, 3:1 for large text) over the background it sits on, an accessible name on
every control, and a visible focus ring on every control reached with the Tab key (README "Agent toolbar")."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.browser import Browser, Page
from tests.e2e.conftest import ControllerProcess
from tests.e2e.test_admin_page import sign_in as admin_sign_in
from tests.e2e.test_call_control import wait_for_state
from tests.e2e.test_desk import AGENT_PASSWORD, DESK_DID, SCREENSHOTS
from tests.e2e.test_ivr_acd import stop_after  # noqa: F401 (fixture)
from tests.e2e.test_toolbar_controls import HOLD_STANDARD, start
from tests.sipp import Caller, Phone, WaitForBye

pytestmark = pytest.mark.e2e


async def audit(page: Page, where: str, *, focus: bool = False) -> dict[str, Any]:
    """Every problem the page shows now, by kind; a screenshot of the state audited is kept."""
    await page.screenshot(SCREENSHOTS / f"a11y-{where}.png")
    found: dict[str, Any] = {"contrast": await page.contrast_failures(),
                             "unlabelled": await page.unlabelled_controls()}
    if focus:
        found["no_focus_ring"] = await page.controls_without_focus_ring()
    return {kind: problems for kind, problems in found.items() if problems}


async def test_the_audit_finds_what_it_looks_for(fresh_asterisk: Path, tmp_path: Path,
                                                 stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    """The measure itself: a grey too light, a button with no name and a control with its focus ring taken away
    are each reported; their fixed twins are not."""
    process = await start(tmp_path)
    stop_after.append(process)
    async with Browser() as browser:
        page = await browser.open(f"{process.url}/toolbar?lang=en")
        await page.evaluate("""document.body.insertAdjacentHTML("beforeend",
          '<div id="probe" style="background:#fff"><span id="light" style="color:#999">light grey</span>' +
          '<span style="color:#767676">dark enough</span><b style="font-size:24px;color:#949494">large</b>' +
          '<button id="nameless"></button><button id="named" aria-label="named"></button>' +
          '<input id="ringless" style="outline:none" aria-label="no ring"></div>'); true""")
        contrast = await page.contrast_failures()
        assert [(f["element"], f["ratio"]) for f in contrast] == [("span#light", 2.85)], contrast
        assert await page.unlabelled_controls() == ["button#nameless"]
        assert any(c.startswith("input#ringless") for c in await page.controls_without_focus_ring())
        assert not any(c.startswith("button#named") for c in await page.controls_without_focus_ring())


async def test_toolbar_wallboard_and_admin_meet_wcag_contrast_with_labels_and_focus(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    process = await start(tmp_path)
    stop_after.append(process)
    phone = Phone(15001, answer_after_ms=300)
    await phone.start()
    problems: dict[str, Any] = {}
    async with Browser() as browser:
        toolbar = await browser.open(f"{process.url}/toolbar?agent=1001&lang=zh")
        await toolbar.send("Emulation.setDeviceMetricsOverride", width=1280, height=1000, deviceScaleFactor=1,
                           mobile=False)
        problems["toolbar signin"] = await audit(toolbar, "toolbar-signin-zh", focus=True)
        await toolbar.fill("#password", AGENT_PASSWORD)
        await toolbar.click("#login")
        await toolbar.wait_for("document.querySelector('#state').dataset.state === 'ready'")
        problems["toolbar ready"] = await audit(toolbar, "toolbar-ready-zh", focus=True)

        caller = Caller(DESK_DID, caller="13800138000", steps=[WaitForBye(60000)])
        await caller.start()
        await toolbar.wait_for("document.querySelector('#state').dataset.state === 'talking'")
        await toolbar.click("#hold")
        await wait_for_state(process, "1001", "on_hold")
        await asyncio.sleep(HOLD_STANDARD + 0.8)  # the hold timer is red now (white on the danger colour)
        await toolbar.wait_for("document.querySelector('#hold-timer').classList.contains('over')")
        problems["toolbar on hold"] = await audit(toolbar, "toolbar-hold-zh", focus=True)

        wallboard = await browser.open(f"{process.url}/wallboard?token=demo-supervisor-token&lang=en")
        await wallboard.wait_for("document.querySelector('#agents tr[data-agent=\"1001\"]') !== null")
        problems["wallboard"] = await audit(wallboard, "wallboard-en", focus=True)

        await toolbar.click("#resume")
        await toolbar.click("#hangup")
        await toolbar.wait_for("document.querySelector('#state').dataset.state === 'acw'")
        problems["toolbar acw"] = await audit(toolbar, "toolbar-acw-zh")
        assert (await caller.wait()).ok
    phone.kill()
    # A disabled agent: the admin page greys their row, which must stay readable.
    status, body = await process.api("PUT", "/api/config/agents/1009", json={
        "name": "停用", "number": "1009", "endpoint": "8009", "skills": {}, "queues": {}, "enabled": False})
    assert status == 200, body
    async with Browser() as browser:  # its own: the agent's session would send the admin page to the toolbar
        admin = await admin_sign_in(browser, process, "admin", lang="en")
        tabs = await admin.evaluate("[...document.querySelectorAll('#tabs button')].map((b) => b.dataset.tab)")
        assert len(tabs) >= 5, tabs
        for tab in tabs:
            button = f"document.querySelector('#tabs button[data-tab={tab}]')"
            await admin.evaluate(f"{button}.click(); true")
            await admin.wait_for(f"{button}.classList.contains('current')")
            problems[f"admin {tab}"] = await audit(admin, f"admin-{tab}-en", focus=tab == tabs[0])
    failures = {where: found for where, found in problems.items() if found}
    assert failures == {}, "\n".join(f"{where}: {json.dumps(found, ensure_ascii=False)}"
                                      for where, found in failures.items())
