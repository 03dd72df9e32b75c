"""Every call control on the agent toolbar, in headless Chromium, with a real SIPp caller through the queue:
hold with its timer (red past the hold standard), recording start/pause/resume, a standard prompt played to
the caller, a consult transfer to a colleague completed, the readable screen pop; no call controls without a
call; the keyboard shortcut for hold. Screenshots in zh and en go to var/screenshots/."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.browser import Browser, Page
from tests.e2e.conftest import REPO, ControllerProcess, demo_config
from tests.e2e.test_call_control import wait_for_state
from tests.e2e.test_desk import AGENT_PASSWORD, DESK_DID, DESK_FLOW, SCREENSHOTS
from tests.e2e.test_ivr_acd import flows_dir, login, rows, stop_after  # noqa: F401 (fixture)
from tests.sipp import Caller, Pause, Phone, WaitForBye

pytestmark = pytest.mark.e2e
HOLD_STANDARD = 2  # seconds: a short hold standard, so the timer turns red within the test
#: The controls that act on a call: none may show without one.
CALL_CONTROLS = ("#call", "#hold", "#resume", "#hangup", "#transfer", "#consult", "#conference-add",
                 "#rec-start", "#play")


async def start(tmp_path: Path) -> ControllerProcess:
    queue = {"wrapup_seconds": 30, "ring_timeout": 8, "max_wait": 60, "announce_interval": 0,
             "announce_agent_number": False, "no_agents": "wait"}
    agents = [{"id": "1001", "name": "王芳", "number": "1001", "endpoint": "8001", "queues": {"general": 0}},
              {"id": "1002", "name": "李娜", "number": "1002", "endpoint": "8002", "queues": {"orders": 0}}]
    flows = flows_dir(tmp_path, "always")
    (flows / "desktest.yaml").write_text(DESK_FLOW)
    standards = yaml.safe_load((REPO / "demo" / "controller.yaml").read_text())["standards"]
    config = demo_config(tmp_path, ivr={"flows_dir": str(flows)},
                         standards={**standards, "max_hold_seconds": HOLD_STANDARD},
                         acd={"queues": [{"name": "general", **queue}, {"name": "orders", **queue}],
                              "agents": agents, "standard_prompts": {"fees": "本业务免收手续费。"},
                              "not_ready_reasons": ["meal", "meeting", "coaching"]})
    process = ControllerProcess(tmp_path / "data", config=config)
    await process.start()
    return process


async def sign_in(page: Page) -> None:
    await page.fill("#password", AGENT_PASSWORD)  # the name from ?agent=1001
    await page.click("#login")
    await page.wait_for("document.querySelector('#state').dataset.state === 'ready'")


async def played_prompt(process: ControllerProcess, call_id: str, timeout: float = 20) -> dict[str, Any]:
    """The call's standard-prompt event and its playback's end, once the caller has heard it."""
    deadline = time.monotonic() + timeout
    seen: dict[str, Any] = {}
    while time.monotonic() < deadline:
        events = (await process.call_record(call_id))["events"]
        seen = {e["kind"]: (e.get("name") or (e.get("detail") or {}).get("name"))
                if e["kind"] == "standard_prompt" else e.get("state")
                for e in events if e["kind"] in ("standard_prompt", "playback")}
        if seen.get("playback") == "done":
            return seen
        await asyncio.sleep(0.2)
    return seen


UNNAMED = ("[...document.querySelectorAll('button, input, select')].filter((e) => e.getClientRects().length > 0"
           " && !(e.getAttribute('aria-label') || (e.labels && e.labels.length) || e.textContent.trim()"
           " || e.placeholder)).map((e) => e.id || e.outerHTML.slice(0, 80))")


async def call_events(process: ControllerProcess, call_id: str, kind: str, timeout: float = 20) -> list[Any]:
    """The call's events of one kind, once there is one (empty: none within the timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in (await process.call_record(call_id))["events"] if e["kind"] == kind]
        if found:
            return found
        await asyncio.sleep(0.2)
    return []


async def visible(page: Page, selectors: tuple[str, ...]) -> dict[str, bool]:
    return {selector: await page.visible(selector) for selector in selectors}


async def test_agent_holds_records_plays_a_prompt_and_consult_transfers_from_the_toolbar(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    process = await start(tmp_path)
    stop_after.append(process)
    agent_phone = Phone(15001, answer_after_ms=300)   # until the controller hangs it up (consult complete)
    colleague = Phone(15002, answer_after_ms=300)     # 8002, consulted, then takes the caller until BYE
    expert = Phone(15003, answer_after_ms=300)        # 8003, added to a conference, removed by the agent
    for phone in (agent_phone, colleague, expert):
        await phone.start()
    async with Browser() as browser:
        toolbar = await browser.open(f"{process.url}/toolbar?agent=1001&lang=zh")
        await sign_in(toolbar)
        # No call: none of the call's controls shows; the not-ready reasons are the server's live list.
        assert await visible(toolbar, CALL_CONTROLS) == dict.fromkeys(CALL_CONTROLS, False)
        assert await toolbar.visible("#dial") and await toolbar.visible("#notready")
        reasons = await toolbar.evaluate("[...document.querySelector('#reasons').options].map((o) => o.value)")
        assert reasons == ["meal", "meeting", "coaching"]
        assert await toolbar.text("#shortcut-list") != ""
        assert await toolbar.evaluate(UNNAMED) == []
        await toolbar.screenshot(SCREENSHOTS / "toolbar-controls-idle-zh.png")

        caller = Caller(DESK_DID, caller="13800138000", steps=[Pause(40000)])  # hangs up at the end
        await caller.start()
        await toolbar.wait_for("!document.querySelector('#pop').hidden")
        region = await toolbar.text("#pop-region")
        assert "北京" in region and "object" not in region, region
        assert await toolbar.text("#pop-data") == "account=A-1024"  # what the IVR learnt, no internal variables
        pop = await toolbar.text("#pop")
        assert "call_id" not in pop and "language" not in pop and "[object" not in pop, pop
        await toolbar.wait_for("document.querySelector('#state').dataset.state === 'talking'")
        call_id = (await wait_for_state(process, "1001", "talking"))["current_call"]
        assert await toolbar.text("#call-id") == call_id
        shown = await visible(toolbar, CALL_CONTROLS)
        assert shown == {**dict.fromkeys(CALL_CONTROLS, True), "#resume": False}, shown
        await toolbar.wait_for("/^0:0[1-9]$/.test(document.querySelector('#talk-timer').textContent)")
        assert await toolbar.evaluate(UNNAMED) == []  # every control shown has an accessible name

        # Hold by the keyboard shortcut (Alt+H): the hold timer runs, then turns red past the standard.
        await toolbar.evaluate("dispatchEvent(new KeyboardEvent('keydown', {key: 'h', code: 'KeyH', altKey: true}))")
        await toolbar.wait_for("document.querySelector('#state').dataset.state === 'on_hold'")
        await wait_for_state(process, "1001", "on_hold")
        assert await toolbar.visible("#hold-timer") and await toolbar.visible("#resume")
        assert not await toolbar.visible("#hold")
        assert await toolbar.evaluate("!document.querySelector('#hold-timer').classList.contains('over')")
        await toolbar.wait_for("document.querySelector('#hold-timer').classList.contains('over')",
                               timeout=HOLD_STANDARD + 3)
        assert await toolbar.text("#hold-timer") in ("0:02", "0:03", "0:04")
        assert await toolbar.evaluate("getComputedStyle(document.querySelector('#hold-timer')).backgroundColor") \
            == "rgb(179, 38, 30)"  # the danger red
        await toolbar.screenshot(SCREENSHOTS / "toolbar-controls-hold-zh.png")
        await toolbar.click("#resume")
        await toolbar.wait_for("document.querySelector('#state').dataset.state === 'talking'")
        assert not await toolbar.visible("#hold-timer")

        # Recording: start, pause, resume, with its state shown.
        for button, state in (("#rec-start", "recording"), ("#rec-pause", "paused"), ("#rec-resume", "recording")):
            await toolbar.click(button)
            await toolbar.wait_for(f"document.querySelector('#rec-state').dataset.state === '{state}'")
        assert await toolbar.text("#rec-state") == "录音中"

        # A standard recording played to the caller (the server's list).
        assert await toolbar.evaluate("[...document.querySelector('#prompts').options].map((o) => o.value)") \
            == ["fees"]
        await toolbar.click("#play")
        played = await played_prompt(process, call_id)
        assert played == {"standard_prompt": "fees", "playback": "done"}, played
        assert await toolbar.text("#error") == ""

        # Conference: add an expert on 8003, then remove them (the caller and the agent talk on).
        await toolbar.evaluate("document.querySelector('#party-kind').value = 'phone'; true")
        await toolbar.fill("#party", "8003")
        await toolbar.click("#conference-add")
        assert await call_events(process, call_id, "conference_joined")
        await toolbar.click("#conference-remove")
        assert await call_events(process, call_id, "conference_left")
        assert (await expert.wait()).ok  # hung up by the controller
        assert await toolbar.text("#error") == ""

        # Consult the colleague on 8002, then complete the transfer.
        await toolbar.fill("#party", "8002")
        await toolbar.click("#consult")
        await toolbar.wait_for("!document.querySelector('#consult-complete').hidden", timeout=30)
        assert await toolbar.visible("#consult-cancel") and await toolbar.visible("#consult-conference")
        assert not await toolbar.visible("#transfer") and not await toolbar.visible("#resume")
        await toolbar.screenshot(SCREENSHOTS / "toolbar-controls-consult-zh.png")
        await toolbar.click("#consult-complete")
        await toolbar.wait_for("document.querySelector('#state').dataset.state === 'acw'")
        assert await toolbar.text("#error") == ""
        assert not await toolbar.visible("#call")
        await toolbar.wait_for("/^0:[0-2][0-9]$/.test(document.querySelector('#acw-left').textContent)")

        english = await browser.open(f"{process.url}/toolbar?agent=1001&lang=en")
        await english.wait_for("document.querySelector('#state').dataset.state === 'acw'")
        assert await english.text("#state") == "after-call work"
        assert await visible(english, CALL_CONTROLS) == dict.fromkeys(CALL_CONTROLS, False)
        await english.screenshot(SCREENSHOTS / "toolbar-controls-acw-en.png")

        assert (await caller.wait()).ok
        assert (await colleague.wait()).ok
    record = await process.call_record(call_id)
    kinds = [e["kind"] for e in record["events"]]
    assert "standard_prompt" in kinds and "consult" in kinds and "transfer" in kinds, kinds
    assert kinds.index("held") < kinds.index("resumed") < kinds.index("standard_prompt") < kinds.index("consult")
    status, found = await process.api("GET", "/api/recordings", params={"call_id": call_id})
    assert status == 200 and len(found["recordings"]) == 1, found
    assert len(found["recordings"][0]["pauses"]) == 1, found  # paused once from the toolbar
    agent_phone.kill()


async def test_agent_picks_up_a_colleagues_ringing_call_transfers_it_to_a_number_and_redials_from_history(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    process = await start(tmp_path)
    stop_after.append(process)
    away = Phone(15001, answer_after_ms=30000)        # 1001 is away from the desk: their phone just rings
    picker_phone = Phone(15002, answer_after_ms=300, calls=2)  # 1002: the picked-up call, then a redial
    customer = Phone(5090, answer_after_ms=300, hold_ms=2500, calls=2)  # behind the trunk: transfer, redial
    for phone in (away, picker_phone, customer):
        await phone.start()
    await login(process, "1001")
    async with Browser() as browser:
        toolbar = await browser.open(f"{process.url}/toolbar?agent=1002&lang=en")
        await toolbar.fill("#password", "demo-1002-pass")
        await toolbar.click("#login")
        await toolbar.wait_for("document.querySelector('#state').dataset.state === 'ready'")
        assert not await toolbar.visible("#pickup-row")  # nobody's phone rings yet

        caller = Caller(DESK_DID, caller="13800138000", steps=[WaitForBye(60000)])
        await caller.start()
        ringing = await wait_for_state(process, "1001", "ringing")
        await toolbar.wait_for("document.querySelector('#pickups .pickup') !== null")
        assert await toolbar.visible("#pickups .pickup")
        assert await toolbar.evaluate("document.querySelector('#pickups .pickup').dataset.call") \
            == ringing["current_call"]
        assert "王芳 (1001)" in await toolbar.text("#pickups")
        await toolbar.screenshot(SCREENSHOTS / "toolbar-controls-pickup-en.png")
        await toolbar.click("#pickups .pickup")
        await toolbar.wait_for("document.querySelector('#state').dataset.state === 'talking'")
        assert not await toolbar.visible("#pickup-row")
        assert (await wait_for_state(process, "1001", "ready"))["current_call"] is None

        # The transfer list: queues, then every colleague with their state (only a ready one can be chosen).
        await toolbar.wait_for("[...document.querySelector('#queues').options].some((o) => o.value === 'agent:1001')")
        colleague = await toolbar.evaluate(
            "(() => { const o = [...document.querySelector('#queues').options].find((o) => o.value === 'agent:1001');"
            " return {text: o.text, disabled: o.disabled}; })()")
        assert colleague == {"text": "王芳 (1001) · ready", "disabled": False}, colleague
        await toolbar.fill("#transfer-number", "13900139000")  # a number instead: blind transfer out
        await toolbar.click("#transfer")
        await toolbar.wait_for("document.querySelector('#state').dataset.state === 'acw'", timeout=30)
        assert await toolbar.text("#error") == ""
        assert (await caller.wait()).ok

        # Click-to-dial from the recent calls: the caller's number, dialled again.
        await toolbar.wait_for("document.querySelector('#recent .redial[data-number=\"13800138000\"]') !== null")
        await toolbar.click('#recent .redial[data-number="13800138000"]')
        await toolbar.wait_for("document.querySelector('#state').dataset.state === 'talking'")
        assert (await customer.wait()).ok
    outbound = [r["did"] for r in rows(process, "SELECT did FROM calls WHERE direction = 'outbound'")]
    assert "13800138000" in outbound, outbound
    (visit,) = rows(process, "SELECT queue, outcome, agent_id FROM queue_calls")
    assert visit["agent_id"] == "1002", visit
    away.kill()
    picker_phone.kill()
