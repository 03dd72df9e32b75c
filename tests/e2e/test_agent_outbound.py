"""An agent's own outbound call, dialled on their phone: a SIPp UAC plays the agent's phone (it logs
in to Asterisk with its password), a SIPp UAS behind the loopback trunk plays the customer."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import ADMIN_TOKEN, ControllerProcess, ari_get, demo_config
from tests.e2e.test_call_control import agent_state, wait_for_state
from tests.e2e.test_cti import read_events
from tests.e2e.test_ivr_acd import flows_dir, login, stop_after  # noqa: F401 (fixture)
from tests.sipp import Phone, PhoneCaller, WaitForBye

pytestmark = pytest.mark.e2e
CUSTOMER = "13900139000"
HOTLINE = "4008001234"


async def start(tmp_path: Path, dialing: dict[str, Any] | None = None, **acd: Any) -> ControllerProcess:
    queue = {"name": "general", "wrapup_seconds": 5, "ring_timeout": 8, "announce_interval": 0,
             "announce_agent_number": False, "no_agents": "wait"}
    agents = [{"id": "1001", "name": "王芳", "number": "1001", "endpoint": "8001", "queues": {"general": 0},
               "caller_id": HOTLINE},
              {"id": "1002", "name": "李娜", "number": "1002", "endpoint": "8002", "queues": {"general": 0}}]
    config = demo_config(tmp_path, ivr={"flows_dir": str(flows_dir(tmp_path, "always"))},
                         acd={"queues": [queue], "agents": agents, **acd},
                         **({"dialing": dialing} if dialing else {}))
    process = ControllerProcess(tmp_path / "data", config=config)
    await process.start()
    return process


async def wait_for_bridge(timeout: float = 15) -> list[dict[str, Any]]:
    """The channels of the first bridge with two channels in it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for bridge in await ari_get("/bridges"):
            if len(bridge["channels"]) == 2:
                channels = {c["id"]: c for c in await ari_get("/channels")}
                return [channels[i] for i in bridge["channels"] if i in channels]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no bridge with both legs: {await ari_get('/bridges')}")


async def test_a_number_dialled_on_the_agents_phone_is_called_bridged_and_recorded(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    process = await start(tmp_path, outbound_wrapup_seconds=2)
    stop_after.append(process)
    customer = Phone(5090, answer_after_ms=800, hold_ms=3000)   # answers, talks 3 s, hangs up
    await customer.start()
    await login(process, "1001")
    assert (await process.api("POST", "/api/agents/1001/not_ready", json={"reason": "meal"}))[0] == 200
    async with aiohttp.ClientSession() as http, http.ws_connect(
            f"{process.url.replace('http', 'ws')}/ws?token={ADMIN_TOKEN}&types=call.*,agent.*") as ws:
        agent_phone = PhoneCaller("8001", CUSTOMER, steps=[WaitForBye(30000)])  # until the controller hangs up
        await agent_phone.start()
        agent = await wait_for_state(process, "1001", "talking")
        assert agent["reason"] == "outbound" and agent["current_call"], agent
        call_id = agent["current_call"]
        legs = await wait_for_bridge()
        assert sorted(leg["name"].split("-")[0] for leg in legs) == ["PJSIP/8001", "PJSIP/loopback"], legs
        trunk_leg = next(leg for leg in legs if leg["name"].startswith("PJSIP/loopback"))
        assert trunk_leg["caller"]["number"] == HOTLINE  # the agent's caller id, not the phone's 8001
        assert (await process.api("POST", "/api/calls", json={"agent_id": "1001", "number": CUSTOMER}))[0] == 409
        result = await customer.wait()
        assert result.ok, result.output + result.errors
        phone_result = await agent_phone.wait()
        assert phone_result.ok, phone_result.output + phone_result.errors  # the controller hung up the phone
        assert (await wait_for_state(process, "1001", "acw"))["current_call"] is None  # outbound_wrapup_seconds
        agent = await wait_for_state(process, "1001", "not_ready")
        assert agent["reason"] == "meal"  # then back as before the call
        events = await read_events(ws, until="call.ended", timeout=10)
    record = await process.call_record(call_id)
    assert (record["direction"], record["caller"], record["did"]) == ("outbound", "8001", CUSTOMER), record
    assert record["answered_at"] and record["ended_at"] and record["ended_at"] - record["answered_at"] >= 2.5
    assert (record["end_reason"], record["hangup_cause"]) == ("customer_hangup", 16), record
    dialled = [e for e in record["events"] if e["kind"] == "customer_dialled"]
    assert [(e["agent_id"], e["status"]) for e in dialled] == [("1001", "ANSWER")], record["events"]
    # Once connected the customer's channel is the call's own (README "Call control on outbound calls"): their
    # BYE is the call's end above (customer_hangup, 16), not a leg's; the agent's phone was a leg of it then.
    assert [e for e in record["events"] if e["kind"] == "leg_ended" and e["leg"] == "customer"] == [], record
    assert [e["leg"] for e in record["events"] if e["kind"] == "bridged"] == ["agent"], record
    # Events are published once committed, so the log-in and not-ready of before may still reach the new
    # socket: this call's part starts with its call.offered.
    first = next(i for i, e in enumerate(events) if e["call_id"] == call_id)
    mine = [e for e in events[first:] if e["call_id"] == call_id or e["agent_id"] == "1001"]
    types = [e["type"] for e in mine]
    assert types[:5] == ["call.offered", "agent.state_changed", "call.dialing", "call.answered",
                         "agent.state_changed"], types
    assert mine[0]["data"] | {"direction": "outbound"} == mine[0]["data"] and mine[0]["data"]["did"] == CUSTOMER
    assert (mine[1]["data"]["state"], mine[1]["data"]["reason"]) == ("talking", "outbound")
    assert (mine[2]["agent_id"], mine[2]["data"]["number"]) == ("1001", CUSTOMER)
    assert mine[3]["agent_id"] == "1001" and types[-1] == "call.ended"


async def test_a_bad_number_or_a_phone_without_agent_is_refused_and_recorded(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    process = await start(tmp_path, dialing={"allowed_prefixes": ["139", "0"], "denied_prefixes": []})
    stop_after.append(process)
    await login(process, "1001")
    for number, phone, reason, cause in (("12ab", "8001", "invalid_number", 28),
                                        ("13800138000", "8001", "number_not_allowed", 21),
                                        ("8999", "8001", "unknown_extension", 1),  # internal, no such phone
                                        (CUSTOMER, "8002", "not_logged_in", 21)):
        refused = PhoneCaller(phone, number, steps=[WaitForBye(20000)])  # the announcement, then a BYE
        result = await refused.run()
        assert result.ok, result.output + result.errors
        record = next(r for r in await process.wait_for_records(1) if r["caller"] == phone and r["did"] == number)
        record = await process.call_record(record["call_id"])
        assert (record["direction"], record["end_reason"], record["hangup_cause"]) == ("outbound", reason, cause)
        assert [e["reason"] for e in record["events"] if e["kind"] == "outbound_refused"] == [reason]
        assert not [e for e in record["events"] if e["kind"] == "customer_dialled"]  # nobody was dialled
        agent = await agent_state(process, "1001")
        assert (agent["state"], agent["current_call"]) == ("ready", None)  # the refused call changed nothing


async def test_a_busy_customer_is_signalled_to_the_agents_phone_and_frees_the_agent(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    process = await start(tmp_path)
    stop_after.append(process)
    customer = Phone(5090, answer_after_ms=500, reject=486)
    await customer.start()
    await login(process, "1001")
    agent_phone = PhoneCaller("8001", CUSTOMER, refused=True)  # expects an error status: 486 Busy Here
    await agent_phone.start()
    assert (await wait_for_state(process, "1001", "talking"))["reason"] == "outbound"
    result = await agent_phone.wait()
    assert result.ok, result.output + result.errors
    assert "486" in result.output
    assert (await customer.wait()).ok
    agent = await wait_for_state(process, "1001", "ready")
    assert agent["current_call"] is None
    (record,) = await process.wait_for_records(1)
    record = await process.call_record(record["call_id"])
    assert (record["end_reason"], record["hangup_cause"], record["answered_at"]) == ("customer_busy", 17, None)
    assert [e["status"] for e in record["events"] if e["kind"] == "customer_dialled"] == ["BUSY"]
