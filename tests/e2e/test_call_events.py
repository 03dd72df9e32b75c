"""What the CTI stream and the call record say about a call's end, an IVR back-end failure, an
overflow, and a call's phase, checked on the real Asterisk with SIPp callers."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import ADMIN_TOKEN, ControllerProcess
from tests.e2e.test_cti import read_events
from tests.e2e.test_ivr_acd import login, start_controller, stop_after  # noqa: F401 (fixture)
from tests.sipp import Caller, Dtmf, Pause, Phone, WaitForBye

pytestmark = pytest.mark.e2e
DID = "4008001234"


async def test_a_caller_who_hangs_up_with_a_bye_ends_with_cause_16(controller: ControllerProcess) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(
            f"{controller.url.replace('http', 'ws')}/ws?token={ADMIN_TOKEN}&types=call.*") as ws:
        result = await Caller(DID, caller="13800138000", steps=[Pause(3000)]).run()  # then a plain BYE
        assert result.ok, result.output + result.errors
        events = await read_events(ws, until="call.ended", timeout=20)
    ended = events[-1]
    assert ended["type"] == "call.ended", events
    assert (ended["data"]["cause"], ended["data"]["reason"]) == (16, "caller_hangup"), ended
    record = await controller.call_record(ended["call_id"])
    assert (record["hangup_cause"], record["hangup_cause_txt"]) == (16, "Normal Clearing"), record


SURVEY_DID = "4008007777"
SURVEY_FLOW = f"""
flow: surveytest
language: zh
dids: ["{SURVEY_DID}"]
nodes:
  queue: {{type: queue, queue: general, answered: survey, otherwise: bye}}
  survey: {{type: survey, timeout: 20, retries: 1}}
  bye: {{type: hangup}}
"""


async def start_with_flow(tmp_path: Path, name: str, flow: str, **queue: Any) -> ControllerProcess:
    """The test controller (queue `general`, agents 1001 and 1002) with one more flow, loaded live."""
    process = await start_controller(tmp_path, **queue)
    (Path(process.config).parent / "flows" / f"{name}.yaml").write_text(flow)
    assert (await process.api("POST", "/api/flows/reload"))[0] == 200
    return process


async def live_states(process: ControllerProcess) -> list[str]:
    status, body = await process.api("GET", "/api/calls")
    assert status == 200, body
    return [call["state"] for call in body["active"]]


async def wait_for_live_state(process: ControllerProcess, state: str, timeout: float = 20) -> list[str]:
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        states = await live_states(process)
        seen.append(",".join(states))
        if state in states:
            return seen
        await asyncio.sleep(0.1)
    raise AssertionError(f"no live call ever {state}: {seen[-20:]}")


async def test_the_survey_after_the_agent_is_its_own_phase_and_a_bye_there_is_cause_16(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    process = await start_with_flow(tmp_path, "surveytest", SURVEY_FLOW, announce_agent_number=False)
    stop_after.append(process)
    agent_phone = Phone(15001, answer_after_ms=300, hold_ms=2500)  # the agent hangs up after 2.5 s
    await agent_phone.start()
    await login(process, "1001")
    async with aiohttp.ClientSession() as http, http.ws_connect(
            f"{process.url.replace('http', 'ws')}/ws?token={ADMIN_TOKEN}&types=call.*") as ws:
        caller = Caller(SURVEY_DID, caller="13800138000", steps=[Pause(12000)])  # in the survey, then a BYE
        await caller.start()
        await wait_for_live_state(process, "talking")
        seen = await wait_for_live_state(process, "survey")
        assert "talking" not in seen[-1].split(","), seen  # the caller alone in the survey is not talking
        result = await caller.wait()
        assert result.ok, result.output + result.errors
        events = await read_events(ws, until="call.ended", timeout=20)
    ended = events[-1]
    assert ended["type"] == "call.ended" and ended["data"]["reason"] == "caller_hangup", events
    assert ended["data"]["cause"] == 16, ended
    record = await process.call_record(ended["call_id"])
    assert record["hangup_cause"] == 16, record
    # The agent's side: their phone hung up with a BYE (normal clearing) before the survey.
    assert [(e["leg"], e["by"], e["cause"]) for e in record["events"] if e["kind"] == "leg_ended"] == \
        [("agent", "far_end", 16)], record["events"]
    agent_phone.kill()


BYE_DID = "4008006666"
BYE_FLOW = f"""
flow: byetest
language: zh
dids: ["{BYE_DID}"]
nodes:
  bye: {{type: hangup, prompt: ["再见"]}}
"""


async def test_a_call_the_flow_hangs_up_ends_with_the_cause_of_its_bye(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    """ARI reports our own DELETE as a soft hang-up request whose `cause` is Asterisk's soft hang-up
    flag (32), not a Q.850 cause: the call's cause is the one its BYE carried (16)."""
    process = await start_with_flow(tmp_path, "byetest", BYE_FLOW)
    stop_after.append(process)
    async with aiohttp.ClientSession() as http, http.ws_connect(
            f"{process.url.replace('http', 'ws')}/ws?token={ADMIN_TOKEN}&types=call.*") as ws:
        result = await Caller(BYE_DID, caller="13800138000", steps=[WaitForBye(20000)]).run()
        assert result.ok, result.output + result.errors
        events = await read_events(ws, until="call.ended", timeout=20)
    ended = events[-1]
    assert ended["type"] == "call.ended" and ended["data"]["reason"] == "controller_hangup", events
    assert (ended["data"]["cause"], ended["data"]["cause_txt"]) == (16, "Normal Clearing"), ended
    record = await process.call_record(ended["call_id"])
    assert (record["hangup_cause"], record["end_reason"]) == (16, "controller_hangup"), record


async def test_a_failing_ivr_back_end_is_logged_counted_and_published(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    """The hotline's bill inquiry (2) with its billing back-end down (nothing on 127.0.0.1:8090)."""
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", 8090)) != 0, "a back-end listens on 8090: the test needs it down"
    process = await start_controller(tmp_path)
    stop_after.append(process)
    async with aiohttp.ClientSession() as http, http.ws_connect(
            f"{process.url.replace('http', 'ws')}/ws?token={ADMIN_TOKEN}&types=ivr.*,call.ended") as ws:
        caller = Caller("4008001234", caller="13800138000", steps=[Pause(2500), Dtmf("2"), Pause(5000)])
        result = await caller.run()
        assert result.ok, result.output + result.errors
        events = await read_events(ws, until="call.ended", timeout=20)
    failed = [e for e in events if e["type"] == "ivr.http_failed"]
    assert [(e["data"]["flow"], e["data"]["node"], e["data"]["outcome"]) for e in failed] == \
        [("hotline", "customer", "connection_error"), ("hotline", "bill_lookup", "connection_error")], failed
    assert "127.0.0.1:8090" in failed[0]["data"]["error"] and "13800138000" not in str(failed[0])
    nodes = [e["data"]["node"] for e in events if e["type"] == "ivr.node_entered"]
    assert nodes[nodes.index("bill_lookup") + 1] == "bill_failed"  # the flow took the failure route
    status, metrics = await process.api("GET", "/metrics")
    assert status == 200
    assert 'ccc_ivr_http_requests_total{flow="hotline",node="bill_lookup",outcome="connection_error"} 1.0' \
        in metrics, metrics
    warnings = [line for line in process.log.read_text().splitlines() if "back-end request failed" in line]
    assert len(warnings) == 2 and all("WARNING" in line for line in warnings), warnings
    assert "node customer" in warnings[0] and "node bill_lookup" in warnings[1], warnings
    assert not [line for line in warnings if "13800138000" in line or "138****8000" in line]  # no caller data
    record = await process.call_record(failed[0]["call_id"])
    assert [e["node"] for e in record["events"] if e["kind"] == "http_failed"] == ["customer", "bill_lookup"]


OVERFLOW_DID = "4008008888"
OVERFLOW_FLOW = f"""
flow: overflowtest
language: zh
dids: ["{OVERFLOW_DID}"]
nodes:
  queue: {{type: queue, queue: general, otherwise: offer}}
  offer: {{type: callback, prompt: ["如需回拨请按1"], timeout: 3, retries: 1, next: bye, declined: bye}}
  bye: {{type: hangup}}
"""


async def test_call_overflowed_names_where_the_flow_takes_the_caller(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    """The queue's overflow setting says voicemail, but the flow offers a callback: the event says callback."""
    # Nobody logged in: the caller waits 2 s, then the queue overflows ("voicemail", it says).
    process = await start_with_flow(tmp_path, "overflowtest", OVERFLOW_FLOW, max_wait=2, overflow="voicemail")
    stop_after.append(process)
    async with aiohttp.ClientSession() as http, http.ws_connect(
            f"{process.url.replace('http', 'ws')}/ws?token={ADMIN_TOKEN}&types=call.*,ivr.*") as ws:
        result = await Caller(OVERFLOW_DID, caller="13800138000", steps=[Pause(7000)]).run()
        assert result.ok, result.output + result.errors
        events = await read_events(ws, until="call.ended", timeout=20)
    types = [e["type"] for e in events]
    overflowed = [e for e in events if e["type"] == "call.overflowed"]
    assert len(overflowed) == 1, types
    assert (overflowed[0]["queue"], overflowed[0]["data"]["target"]) == ("general", "callback"), overflowed
    assert overflowed[0]["data"]["wait"] >= 1.9
    offer = next(i for i, e in enumerate(events) if e["type"] == "ivr.node_entered" and e["data"]["node"] == "offer")
    assert types.index("call.overflowed") < offer  # published as the flow takes the caller there
    record = await process.call_record(overflowed[0]["call_id"])
    assert [(e["queue"], e["target"]) for e in record["events"] if e["kind"] == "overflowed"] == \
        [("general", "callback")], record["events"]
