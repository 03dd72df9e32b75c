"""Attended (consult) transfer on the real Asterisk: complete, a busy target, cancel, and three-way."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.e2e.conftest import ControllerProcess, ari_get
from tests.e2e.test_call_control import agent_state, start, wait_for_state
from tests.e2e.test_ivr_acd import ACD_DID, login, stop_after  # noqa: F401 (fixture)
from tests.sipp import Caller, Pause, Phone, WaitForBye

pytestmark = pytest.mark.e2e


async def bridge_of(channel_id: str) -> set[str]:
    for bridge in await ari_get("/bridges"):
        if channel_id in bridge["channels"]:
            return set(bridge["channels"])
    return set()


async def test_consult_then_complete_and_a_busy_target_returns_the_caller(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    process = await start(tmp_path)
    stop_after.append(process)
    agent_phone = Phone(15001, answer_after_ms=300)            # until the controller hangs it up
    busy = Phone(15003, reject=486)                             # 8003 busy
    colleague = Phone(15002, answer_after_ms=300)               # 8002 takes the call, stays until BYE
    for phone in (agent_phone, busy, colleague):
        await phone.start()
    await login(process, "1001")
    caller = Caller(ACD_DID, steps=[Pause(14000)])              # the caller hangs up at the end
    await caller.start()
    call_id = (await wait_for_state(process, "1001", "talking"))["current_call"]
    path = f"/api/calls/{call_id}/consult"
    assert (await process.api("POST", f"{path}/complete"))[0] == 409  # nothing to complete yet
    status, body = await process.api("POST", path, json={"to": "phone:8003"})
    assert (status, body["state"], body["consult"]) == (200, "talking", "busy"), body  # back with the agent
    assert (await agent_state(process, "1001"))["state"] == "talking"

    status, body = await process.api("POST", path, json={"to": "phone:8002"})
    assert (status, body["state"]) == (200, "consulting"), body
    party = body["party_channel"]
    assert (await agent_state(process, "1001"))["state"] == "on_hold"  # the caller holds meanwhile
    together = await bridge_of(party)
    assert len(together) == 2  # agent and colleague, without the caller
    status, body = await process.api("POST", f"{path}/complete")
    assert (status, body["state"]) == (200, "transferred"), body
    assert (await agent_phone.wait()).ok  # the agent's phone was hung up
    await wait_for_state(process, "1001", "acw")
    await asyncio.sleep(0.5)
    assert len(await bridge_of(party)) == 2  # caller and colleague now
    assert (await caller.wait()).ok
    assert (await colleague.wait()).ok
    kinds = [e["kind"] for e in (await process.call_record(call_id))["events"]
             if e["kind"] in ("consult", "consult_failed", "transfer", "held", "resumed")]
    assert kinds == ["held", "resumed", "consult_failed", "held", "consult", "resumed", "transfer"]
    busy.kill()


async def test_consult_cancel_and_conference_and_the_target_hanging_up(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    process = await start(tmp_path)
    stop_after.append(process)
    agent_phone = Phone(15001, answer_after_ms=300, hold_ms=14000)
    colleague = Phone(15002, answer_after_ms=300)              # consulted, then cancelled
    expert = Phone(15003, answer_after_ms=300, hold_ms=1500)   # hangs up during the consultation
    outside = Phone(5090, answer_after_ms=300, hold_ms=4000)   # joins a three-way call, leaves after 4 s
    for phone in (agent_phone, colleague, expert, outside):
        await phone.start()
    await login(process, "1001")
    caller = Caller(ACD_DID, steps=[WaitForBye(40000)])
    await caller.start()
    call_id = (await wait_for_state(process, "1001", "talking"))["current_call"]
    path = f"/api/calls/{call_id}/consult"
    assert (await process.api("POST", path, json={"to": "phone:8002"}))[0] == 200
    assert (await process.api("POST", path, json={"to": "phone:8002"}))[0] == 409  # one at a time
    assert (await process.api("POST", f"/api/calls/{call_id}/resume"))[0] == 409  # complete/cancel first
    status, body = await process.api("POST", f"{path}/cancel")
    assert (status, body["state"]) == (200, "talking"), body
    assert (await colleague.wait()).ok  # the colleague's phone was hung up
    assert (await agent_state(process, "1001"))["state"] == "talking"

    assert (await process.api("POST", path, json={"to": "phone:8003"}))[0] == 200
    assert (await expert.wait()).ok  # the expert hung up: the caller is back with the agent
    await asyncio.sleep(0.5)
    assert (await agent_state(process, "1001"))["state"] == "talking"

    status, body = await process.api("POST", path, json={"to": "number:13900139000"})
    assert status == 200, body
    party = body["party_channel"]
    status, body = await process.api("POST", f"{path}/conference")
    assert (status, body["state"]) == (200, "conference"), body
    assert len(await bridge_of(party)) == 3  # caller, agent, outside party
    assert (await outside.wait()).ok  # the outside party leaves; caller and agent go on
    assert (await agent_state(process, "1001"))["state"] == "talking"
    assert (await caller.wait()).ok  # the agent hung up at 14 s: goodbye
    kinds = [e["kind"] for e in (await process.call_record(call_id))["events"]
             if e["kind"].startswith(("consult", "conference"))]
    assert kinds == ["consult", "consult_cancelled", "consult", "consult_cancelled", "consult", "conference_joined",
                     "conference_left"]
