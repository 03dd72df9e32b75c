"""The agent toolbar and the wallboard in headless Chromium, with a real SIPp call through the queue."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser import Browser
from tests.e2e.conftest import ControllerProcess
from tests.e2e.test_call_control import start, wait_for_state
from tests.e2e.test_ivr_acd import ACD_DID, login, rows, stop_after  # noqa: F401 (fixture)
from tests.sipp import Caller, Phone, WaitForBye

pytestmark = pytest.mark.e2e  # needs Debian's chromium: `make deps` installs it
AGENT_TOKEN = "demo-agent-1001-token"
SUPERVISOR_TOKEN = "demo-supervisor-token"


async def test_agent_takes_a_call_on_the_toolbar_and_the_wallboard_follows(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    process = await start(tmp_path)
    stop_after.append(process)
    phone = Phone(15001, answer_after_ms=1500, calls=2)  # the agent's desk phone: the queue call, then a dial
    await phone.start()
    async with Browser() as browser:
        wallboard = await browser.open(f"{process.url}/wallboard?token={SUPERVISOR_TOKEN}&lang=zh")
        await wallboard.wait_for("document.querySelector('#agents tr[data-agent=\"1001\"]') !== null")
        assert "未登录" in await wallboard.text('#agents tr[data-agent="1001"] .state')

        toolbar = await browser.open(f"{process.url}/toolbar?agent=1001&lang=zh")
        assert await toolbar.text("#login") == "签入"
        await toolbar.fill("#token", AGENT_TOKEN)
        await toolbar.click("#login")
        await toolbar.wait_for("document.querySelector('#state').dataset.state === 'ready'")
        assert await toolbar.text("#state") == "示闲"
        await login(process, "1002")  # a ready colleague: in the transfer list once a call comes in
        await wallboard.wait_for("document.querySelector('#agents tr[data-agent=\"1001\"] .state')"
                                 ".dataset.state === 'ready'")

        caller = Caller(ACD_DID, caller="13800138000", steps=[WaitForBye(40000)])
        await caller.start()
        # The screen pop shows while the phone rings: who calls, from where.
        await toolbar.wait_for("!document.querySelector('#pop').hidden")
        assert await toolbar.text("#pop-caller") == "13800138000"
        assert "北京" in await toolbar.text("#pop-region")
        await toolbar.wait_for("document.querySelector('#state').dataset.state === 'talking'")
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

    (visit,) = rows(process, "SELECT queue, outcome, agent_id FROM queue_calls")
    assert visit == {"queue": "general", "outcome": "answered", "agent_id": "1001"}
    (note,) = rows(process, "SELECT disposition, notes, agent_id FROM dispositions")
    assert note == {"disposition": "follow_up", "notes": "客户要求回电", "agent_id": "1001"}
    (outbound,) = rows(process, "SELECT did FROM calls WHERE direction = 'outbound'")
    assert outbound["did"] == "13900139000"
    phone.kill()
