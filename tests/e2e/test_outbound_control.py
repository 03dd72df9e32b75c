"""Call control on outbound calls on the real Asterisk (README "Call control on outbound calls"): on a
click-to-dial call and on a campaign call the agent holds and resumes, pauses and resumes the recording,
and consult-transfers the customer to a colleague, as on an inbound call; click-to-dial's ring timeouts
are settings. One controller for the module (SIPp phones: the agent 8001, the colleague 8002, the
customer behind the loopback trunk)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ControllerProcess, ari_get, demo_config, running_controller
from tests.e2e.test_call_control import agent_state, wait_for_state
from tests.e2e.test_consult import bridge_of
from tests.e2e.test_recording import rms
from tests.sipp import Phone, PhoneCaller, WaitForBye

pytestmark = pytest.mark.e2e
AGENT_1001 = "demo-agent-1001-token"
CUSTOMER = "13900139000"
RING_SECONDS = 6.0  # acd.outbound_agent_ring_seconds and outbound_customer_ring_seconds here (default 30)


@pytest.fixture(scope="module")
def shared(asterisk: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControllerProcess]:
    folder = tmp_path_factory.mktemp("outbound")
    agents = [{"id": "1001", "name": "王芳", "number": "1001", "endpoint": "8001", "queues": {"general": 0}},
              {"id": "1002", "name": "李娜", "number": "1002", "endpoint": "8002", "queues": {"general": 0}}]
    queue = {"name": "general", "wrapup_seconds": 1, "ring_timeout": 8, "announce_interval": 0,
             "announce_agent_number": False, "no_agents": "wait"}
    config = demo_config(folder, acd={"queues": [queue], "agents": agents, "outbound_agent_ring_seconds": RING_SECONDS,
                                      "outbound_customer_ring_seconds": RING_SECONDS})
    with running_controller(folder, config) as process:
        asyncio.run(process.api("POST", "/api/agents/1001/login", json={"ready": True}))
        yield process


async def talking_with_customer(call_id: str, customer_prefix: str) -> str:
    """Once the agent and the customer (their channel's id starts with `customer_prefix`) are bridged: the
    customer's channel."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for bridge in await ari_get("/bridges"):
            if bridge["id"].startswith("br-talk-") and len(bridge["channels"]) == 2 \
                    and any(c.startswith(customer_prefix) for c in bridge["channels"]):  # (pooled: named after no call)
                (customer,) = [c for c in bridge["channels"] if c.startswith(customer_prefix)]
                return str(customer)
        await asyncio.sleep(0.1)
    raise AssertionError(f"the agent and the customer were never bridged: {await ari_get('/bridges')}")


async def control_the_call(process: ControllerProcess, call_id: str, customer: str, agent_phone: Phone,
                           colleague: Phone) -> None:
    """What an agent does on an inbound call, on this outbound one: record, pause and resume the recording,
    hold and resume, consult a colleague and hand the customer over to them."""
    path = f"/api/calls/{call_id}"
    status, body = await process.api("POST", f"{path}/recording", token=AGENT_1001)
    assert (status, body["state"]) == (200, "recording"), body
    await asyncio.sleep(1.0)
    status, body = await process.api("POST", f"{path}/recording/pause", token=AGENT_1001)
    assert (status, body["state"]) == (200, "paused"), body
    await asyncio.sleep(2.0)
    status, body = await process.api("POST", f"{path}/recording/resume", token=AGENT_1001)
    assert (status, body["state"]) == (200, "recording"), body

    status, body = await process.api("POST", f"{path}/hold", token=AGENT_1001)
    assert (status, body["state"]) == (200, "held"), body
    assert (await agent_state(process, "1001"))["state"] == "on_hold"
    held_in = next(b for b in await ari_get("/bridges") if customer in b["channels"])
    assert (held_in["bridge_type"], held_in["channels"]) == ("holding", [customer]), held_in  # music, alone
    await asyncio.sleep(1.0)
    status, body = await process.api("POST", f"{path}/resume", token=AGENT_1001)
    assert (status, body["state"]) == (200, "talking") and body["held_for"] >= 0.9, body
    assert (await agent_state(process, "1001"))["state"] == "talking"
    assert len(await bridge_of(customer)) == 2  # back with the agent

    status, body = await process.api("POST", f"{path}/consult", json={"to": "phone:8002"}, token=AGENT_1001)
    assert (status, body["state"]) == (200, "consulting"), body
    party = body["party_channel"]
    assert customer not in await bridge_of(party)  # the agent talks to the colleague; the customer holds
    status, body = await process.api("POST", f"{path}/consult/complete", token=AGENT_1001)
    assert (status, body["state"]) == (200, "transferred"), body
    assert (await agent_phone.wait()).ok  # the agent's phone was hung up; the customer stays
    await asyncio.sleep(0.5)
    assert await bridge_of(customer) == {customer, party}  # the customer talks with the colleague now
    assert (await agent_state(process, "1001"))["current_call"] is None  # the agent is free at once


async def check_records(process: ControllerProcess, call_id: str) -> dict[str, Any]:
    """The call's events, CTI events and recording are those of an inbound call's same commands."""
    record = await process.call_record(call_id)
    kinds = [e["kind"] for e in record["events"]
             if e["kind"] in ("held", "resumed", "consult", "transfer", "recording_started")]
    assert kinds == ["recording_started", "held", "resumed", "held", "consult", "resumed", "transfer"], kinds
    expected = ["recording.started", "recording.paused", "recording.resumed", "call.held", "call.resumed",
                "call.held", "call.resumed", "call.transferred", "call.completed", "recording.stopped", "call.ended"]
    deadline = time.monotonic() + 5  # (the CTI stream's rows are written in batches)
    while True:
        cti = [row["type"] for row in process.rows("SELECT type FROM cti_events WHERE call_id = ? ORDER BY seq",
                                                   call_id) if row["type"] in expected]
        if cti == expected or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert cti == expected, cti
    _, found = await process.api("GET", f"/api/recordings?call_id={call_id}")
    (row,) = found["recordings"]
    assert row["agents"] == ["1001"] and row["caller"].endswith(CUSTOMER), row  # +86… on a campaign
    (pause,) = row["pauses"]
    assert 1.7 <= pause[1] - pause[0] <= 3.0, row
    wav = Path(row["file"])
    assert wav.exists() and row["duration"] > 6, row
    assert rms(wav, pause[0] + 0.3, pause[1] - pause[0] - 0.6) < 0.001  # nothing while paused
    assert rms(wav, pause[1] + 0.3, 1.0) > 0.005  # the customer's speech after it
    return record


async def test_click_to_dial_is_held_recorded_and_consult_transferred_to_a_colleague(
        fresh_asterisk: Path, shared: ControllerProcess) -> None:
    process = shared
    agent_phone = Phone(15001, answer_after_ms=300)                        # until the controller hangs it up
    colleague = Phone(15002, answer_after_ms=300)                          # until the customer hangs up
    customer = Phone(5090, answer_after_ms=500, hold_ms=13000, talk=True)  # speaks 7 s, hangs up after 13 s
    for phone in (agent_phone, colleague, customer):
        await phone.start()
    status, body = await process.api("POST", "/api/calls", json={"agent_id": "1001", "number": CUSTOMER},
                                     token=AGENT_1001)
    assert status == 202, body
    call_id = body["call_id"]
    customer_channel = await talking_with_customer(call_id, "leg-customer-")  # the agent's phone rang first
    await control_the_call(process, call_id, customer_channel, agent_phone, colleague)
    assert (await customer.wait()).ok
    assert (await colleague.wait()).ok
    await wait_for_state(process, "1001", "ready")  # outbound_wrapup_seconds 0: back as before
    await process.wait_for_records(1)
    record = await check_records(process, call_id)
    assert (record["direction"], record["did"], record["end_reason"]) == ("outbound", CUSTOMER, "customer_hangup")
    assert (await process.api("POST", f"/api/calls/{call_id}/disposition", json={"disposition": "resolved"},
                              token=AGENT_1001))[0] == 200


async def test_a_campaign_call_is_held_recorded_and_consult_transferred_to_a_colleague(
        fresh_asterisk: Path, shared: ControllerProcess) -> None:
    process = shared
    status, body = await process.api("POST", "/api/campaigns", json={
        "name": "control", "mode": "progressive", "agents": ["1001"], "hours": "00:00-24:00",
        "allow_holidays": True, "max_attempts": 1, "wrapup_seconds": 1})
    assert status == 201, body
    status, body = await process.api("POST", "/api/campaigns/control/contacts",
                                     json={"csv": f"number,name\n{CUSTOMER},张先生\n"})
    assert status == 200 and body["imported"] == 1, body
    agent_phone = Phone(15001, answer_after_ms=300)
    colleague = Phone(15002, answer_after_ms=300)
    customer = Phone(5090, answer_after_ms=500, hold_ms=13000, talk=True)
    for phone in (agent_phone, colleague, customer):
        await phone.start()
    assert (await process.api("POST", "/api/campaigns/control/start"))[0] == 200
    call_id = (await wait_for_state(process, "1001", "talking"))["current_call"]
    customer_channel = await talking_with_customer(call_id, "out-")  # the campaign dials the customer first
    await control_the_call(process, call_id, customer_channel, agent_phone, colleague)
    _, shown = await process.api("GET", "/api/campaigns/control")
    assert shown["stats"]["agents_busy"] == 0, shown  # free for the campaign while the customer talks on
    assert shown["status"] == "running" and shown["stats"]["by_status"] == {"dialing": 1}, shown
    assert (await customer.wait()).ok
    assert (await colleague.wait()).ok
    await process.wait_for_records(1)
    record = await check_records(process, call_id)
    assert [e["agent_id"] for e in record["events"] if e["kind"] == "agent_answered"] == ["1001"]
    deadline = time.monotonic() + 10
    while shown["status"] != "finished" and time.monotonic() < deadline:
        await asyncio.sleep(0.3)
        _, shown = await process.api("GET", "/api/campaigns/control")
    assert shown["stats"]["by_status"] == {"done": 1} and shown["status"] == "finished", shown
    assert (await process.api("POST", f"/api/calls/{call_id}/disposition", json={"disposition": "resolved"},
                              token=AGENT_1001))[0] == 200
    await wait_for_state(process, "1001", "ready")


async def test_click_to_dial_rings_the_agent_and_the_customer_as_long_as_the_settings_say(
        fresh_asterisk: Path, shared: ControllerProcess) -> None:
    process = shared
    silent_agent = Phone(15001, answer_after_ms=60000)  # rings, never answers in time
    await silent_agent.start()
    started = time.monotonic()
    status, body = await process.api("POST", "/api/calls", json={"agent_id": "1001", "number": CUSTOMER})
    assert status == 202, body
    await asyncio.sleep(2)
    assert (await agent_state(process, "1001"))["current_call"] == body["call_id"]  # still ringing
    agent = await wait_for_state(process, "1001", "ready", timeout=RING_SECONDS + 8)
    assert agent["current_call"] is None
    assert RING_SECONDS - 0.5 <= time.monotonic() - started <= RING_SECONDS + 4
    silent_agent.kill()

    agent_phone = Phone(15001, answer_after_ms=300)
    silent_customer = Phone(5090, answer_after_ms=60000)
    for phone in (agent_phone, silent_customer):
        await phone.start()
    status, body = await process.api("POST", "/api/calls", json={"agent_id": "1001", "number": CUSTOMER})
    assert status == 202, body
    assert (await agent_phone.wait()).ok  # hung up once the customer's ring timed out
    silent_customer.kill()
    record = await process.call_record(body["call_id"])
    assert record["end_reason"] == "customer_no_answer", record
    (dialled,) = [e for e in record["events"] if e["kind"] == "customer_dialled"]
    assert (dialled["status"], dialled["cause"]) == ("FAILED", 19), dialled  # Asterisk ended the ring: no answer
    rang = dialled["at"] - record["answered_at"]
    assert RING_SECONDS - 0.5 <= rang <= RING_SECONDS + 3, (rang, json.dumps(record["events"]))


async def test_a_number_dialled_on_the_agents_phone_is_held_and_resumed_as_an_inbound_call(
        fresh_asterisk: Path, shared: ControllerProcess) -> None:
    process = shared
    customer = Phone(5090, answer_after_ms=500, hold_ms=6000)
    await customer.start()
    agent_phone = PhoneCaller("8001", CUSTOMER, steps=[WaitForBye(30000)])  # until the controller hangs up
    await agent_phone.start()
    call_id = (await wait_for_state(process, "1001", "talking"))["current_call"]
    await talking_with_customer(call_id, "leg-customer-")
    status, body = await process.api("POST", f"/api/calls/{call_id}/hold", token=AGENT_1001)
    assert (status, body["state"]) == (200, "held"), body
    assert (await agent_state(process, "1001"))["state"] == "on_hold"
    await asyncio.sleep(0.5)
    status, body = await process.api("POST", f"/api/calls/{call_id}/resume", token=AGENT_1001)
    assert (status, body["state"]) == (200, "talking"), body
    assert (await customer.wait()).ok
    assert (await agent_phone.wait()).ok
    await wait_for_state(process, "1001", "ready")
    await process.wait_for_records(1)
    record = await process.call_record(call_id)
    assert [e["kind"] for e in record["events"] if e["kind"] in ("held", "resumed")] == ["held", "resumed"]
    assert record["end_reason"] == "customer_hangup", record
