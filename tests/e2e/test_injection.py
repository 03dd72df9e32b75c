"""Injection through what callers and peers control: FastAGI values, the dialled number, the caller id.

The AGI side is played over a raw TCP socket, so the test sees the exact bytes the controller
sends back; the SIP side is SIPp on the real Asterisk.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.e2e.conftest import ADMIN_TOKEN, ControllerProcess, demo_config, free_port
from tests.e2e.test_cti import read_events
from tests.e2e.test_ivr_acd import AGENTS, events_of, kinds, login, stop_after  # noqa: F401 (fixture)
from tests.sipp import Caller, Dtmf, Pause, Phone, WaitForBye

pytestmark = pytest.mark.e2e
AGI_PORT = 4573
MAIN_DID = "4008007001"


class RecordingBackend:
    """A CRM that records each request's exact path and query, and answers a chosen tier."""

    def __init__(self, tier: str = "vip") -> None:
        self.port = free_port()
        self.tier = tier
        self.requests: list[str] = []  # raw path and query, as sent
        self.decoded: list[tuple[str, dict[str, str]]] = []  # the path and query the server acts on
        self._runner: web.AppRunner | None = None

    async def answer(self, request: web.Request) -> web.Response:
        self.requests.append(request.raw_path)
        self.decoded.append((request.path, dict(request.query)))
        return web.json_response({"tier": self.tier, "balance": "1.00"})

    async def up(self) -> None:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self.answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def down(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def backend() -> AsyncIterator[RecordingBackend]:
    server = RecordingBackend(tier="vip\nEXEC Goto(evil,s,1)")
    await server.up()
    yield server
    await server.down()


@pytest.fixture
async def injected(fresh_asterisk: Path, tmp_path: Path, backend: RecordingBackend,
                   stop_after: list[ControllerProcess]) -> ControllerProcess:  # noqa: F811
    """The controller with two flows of our own (one for a DID, one reachable by hand-over only)
    and the recording back-end as its CRM."""
    main = f"""
flow: inj_main
language: en
dids: ["{MAIN_DID}"]
nodes:
  lookup: {{type: http, url: "http://127.0.0.1:{backend.port}/users/{{caller}}/balance?number={{caller}}",
           map: {{balance: balance}}, next: bye, failure: bye}}
  bye: {{type: hangup}}
"""
    secret = """
flow: inj_secret
language: en
nodes:
  staff_only: {type: hangup}
"""
    return await start_with_flows(
        tmp_path, stop_after, [main, secret],
        customers={"tier_url": f"http://127.0.0.1:{backend.port}/customer?number={{number}}", "timeout": 2,
                   "default_tier": "regular"})


async def start_with_flows(tmp_path: Path, stop_after: list[ControllerProcess], flows: list[str],  # noqa: F811
                           **sections: Any) -> ControllerProcess:
    """The controller with only these flows (YAML texts) and some configuration sections replaced."""
    flows_dir = tmp_path / "flows"
    flows_dir.mkdir()
    for index, text in enumerate(flows):
        (flows_dir / f"flow{index}.yaml").write_text(text)
    process = ControllerProcess(tmp_path / "data",
                                config=demo_config(tmp_path, ivr={"flows_dir": str(flows_dir)}, **sections))
    await process.start()
    stop_after.append(process)
    return process


async def agi_session(script: str, *, headers: str = "", answer: bytes = b"200 result=1\n",
                      local_addr: tuple[str, int] | None = None) -> list[bytes]:
    """Play Asterisk's side of one FastAGI request; return every line the controller sent, as bytes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", AGI_PORT, local_addr=local_addr)
    writer.write(f"agi_network: yes\nagi_network_script: {script}\nagi_uniqueid: 1700000000.1\n{headers}\n"
                 .encode())
    await writer.drain()
    lines = []
    async with asyncio.timeout(10):
        with contextlib.suppress(ConnectionResetError):  # a refused peer is closed unread: a reset
            while line := await reader.readline():
                lines.append(line)
                writer.write(answer)
                await writer.drain()
    writer.close()
    return lines


FAILED_CONTROL = [b'SET VARIABLE CCC_STATUS "FAILED"\n',
                  b'SET VARIABLE CCC_ERROR "control character in the request"\n']


@pytest.mark.parametrize("script", [
    "route?did=4008001234%0AEXEC%20Goto%20evil,s,1",
    "route?did=4008001234%0DEXEC%20Goto%20evil,s,1",
    "ivr?flow=hotline&did=4008001234%0AEXEC%20Goto%20evil,s,1",
    "ivr?flow=hotline%0AEXEC%20Goto%20evil,s,1",
    "lookup?number=13800138000%0AEXEC%20Goto%20evil,s,1",
])
async def test_a_newline_in_an_agi_query_never_becomes_a_second_command(controller: ControllerProcess,
                                                                        script: str) -> None:
    assert await agi_session(script) == FAILED_CONTROL
    assert "refused a request with a control character" in controller.log.read_text()


async def test_agi_accepts_only_digits_for_a_did_and_known_flows(controller: ControllerProcess) -> None:
    assert await agi_session("ivr?flow=hotline&did=4008001234,flow=hotline_en") == [
        b'SET VARIABLE CCC_STATUS "FAILED"\n', b'SET VARIABLE CCC_ERROR "the DID must be digits only"\n']
    assert await agi_session("route?did=4008001234;x") == [
        b'SET VARIABLE CCC_STATUS "FAILED"\n', b'SET VARIABLE CCC_ERROR "the DID must be digits only"\n']
    assert await agi_session("ivr?flow=no_such_flow") == [
        b'SET VARIABLE CCC_STATUS "FAILED"\n', b"SET VARIABLE CCC_ERROR \"unknown flow 'no_such_flow'\"\n"]
    # The positive case: a clean request is answered with the routing decision.
    assert await agi_session("route?did=4008001234") == [
        b'SET VARIABLE CCC_DID "4008001234"\n', b'SET VARIABLE CCC_FLOW "hotline"\n',
        b'SET VARIABLE CCC_ROUTE "flow"\n', b'SET VARIABLE CCC_STATUS "OK"\n']


async def test_a_tier_answer_with_a_newline_is_not_sent(injected: ControllerProcess,
                                                        backend: RecordingBackend) -> None:
    lines = await agi_session("lookup?number=13800138000")
    assert b'SET VARIABLE CCC_TIER "regular"\n' in lines  # the default, not the back-end's answer
    assert not any(b"EXEC" in line or b"evil" in line for line in lines), lines
    assert lines[-1] == b'SET VARIABLE CCC_STATUS "OK"\n'
    assert backend.requests == ["/customer?number=13800138000"]


async def test_agi_peers_outside_the_allow_list_are_refused(controller: ControllerProcess) -> None:
    # 127.0.0.2 is a loopback address but not on the default allow-list (127.0.0.1, ::1).
    assert await agi_session("route?did=4008001234", local_addr=("127.0.0.2", 0)) == []
    assert "not in agi.allowed_peers" in controller.log.read_text()
    assert (await agi_session("route?did=4008001234"))[-1] == b'SET VARIABLE CCC_STATUS "OK"\n'


async def test_a_request_uri_cannot_choose_a_flow(injected: ControllerProcess) -> None:
    """SIPp dials '4008007001,flow=inj_secret': the DID's own flow serves the call."""
    result = await Caller(f"{MAIN_DID},flow=inj_secret", caller="13800138000", steps=[WaitForBye(10_000)]).run()
    assert result.ok, result.output + result.errors
    (record,) = await injected.wait_for_records(1)
    assert record["did"] == MAIN_DID
    nodes = [e["node"] for e in kinds(await events_of(injected, record["call_id"]), "node")]
    assert nodes == ["lookup", "bye"]


async def test_the_agi_handover_still_chooses_its_flow(controller: ControllerProcess) -> None:
    """The positive side: the FastAGI /ivr hand-over (dialplan 4008009004) runs hotline_en, not the
    DID's own flow (hotline)."""
    result = await Caller("4008009004", caller="13800138000", steps=[Pause(3000)]).run()
    assert result.ok, result.output + result.errors
    (record,) = await controller.wait_for_records(1)
    assert record["did"] == "4008001234"
    nodes = [e["node"] for e in kinds(await events_of(controller, record["call_id"]), "node")]
    assert nodes[0] == "menu", nodes  # hotline_en's first node (hotline starts with "greeting")


@pytest.mark.parametrize("caller", ["x&admin=1", "../../internal/keys"])
async def test_caller_ids_are_percent_encoded_in_back_end_urls(injected: ControllerProcess,
                                                               backend: RecordingBackend, caller: str) -> None:
    result = await Caller(MAIN_DID, caller=caller, steps=[WaitForBye(10_000)]).run()
    assert result.ok, result.output + result.errors
    await injected.wait_for_records(1)
    # The caller id stays one path segment and one query value: no extra parameter, no other path.
    assert backend.decoded == [(f"/users/{caller}/balance", {"number": caller})], backend.requests
    raw_path = backend.requests[0].partition("?")[0]
    assert raw_path.startswith("/users/") and raw_path.count("/") == 3, backend.requests


PIN = "3456789"  # keys ascending within one call (see tests.sipp.Dtmf)
SENSITIVE_DID = "4008007002"


async def test_a_sensitive_pin_stays_out_of_store_log_cti_and_screen_pop(
        fresh_asterisk: Path, tmp_path: Path, backend: RecordingBackend,
        stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    """An account number (not sensitive) and a PIN (sensitive) typed on a real call: the flow sends
    the PIN to its back-end, and the PIN is nowhere else; the account number shows where it should."""
    bank = f"""
flow: bank
language: en
dids: ["{SENSITIVE_DID}"]
nodes:
  account: {{type: collect, prompt: ["Account."], variable: account, min_digits: 2, max_digits: 2, next: pin}}
  pin: {{type: collect, prompt: ["PIN."], variable: pin, min_digits: 7, max_digits: 7, sensitive: true,
        next: verify}}
  verify: {{type: http, url: "http://127.0.0.1:{backend.port}/verify?account={{account}}&pin={{pin}}",
           map: {{balance: balance}}, next: agents, failure: agents}}
  agents: {{type: queue, queue: general, answered: bye, otherwise: bye}}
  bye: {{type: hangup}}
"""
    one_agent = {"center_name": "test", "agents": [AGENTS[0]],
                 "queues": [{"name": "general", "wrapup_seconds": 1, "announce_interval": 0,
                             "announce_agent_number": False, "no_agents": "wait"}]}
    process = await start_with_flows(tmp_path, stop_after, [bank], acd=one_agent)
    phone = Phone(15001, answer_after_ms=500, hold_ms=2000)
    await phone.start()
    await login(process, "1001")
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(
                f"{process.url.replace('http', 'ws')}/ws?token={ADMIN_TOKEN}") as ws:
            caller = Caller(SENSITIVE_DID, caller="13800138000",
                            steps=[Pause(1500), Dtmf("12"), Pause(1500), Dtmf(PIN), WaitForBye(30_000)])
            result = await caller.run()
            assert result.ok, result.output + result.errors
            events = await read_events(ws, until="call.ended", timeout=30)
    finally:
        phone.kill()
    (record,) = await process.wait_for_records(1)
    # The flow could use the PIN: its back-end got it.
    assert backend.decoded == [("/verify", {"account": "12", "pin": PIN})]
    # CTI: the inputs were announced, the PIN without its digits; the screen pop masks it.
    inputs = [e["data"] for e in events if e["type"] == "ivr.input_collected"]
    assert [(i["variable"], i.get("digits")) for i in inputs] == [("account", "12"), ("pin", None)]
    pop = next(e for e in events if e["type"] == "call.ringing")["data"]["screen_pop"]
    assert (pop["data"]["account"], pop["data"]["pin"]) == ("12", "***")
    assert PIN not in json.dumps(events)
    # The call record: the account number, the PIN masked, no digit-by-digit DTMF rows.
    record_events = await events_of(process, record["call_id"])
    assert [(e["variable"], e["value"]) for e in kinds(record_events, "input")] == [("account", "12"), ("pin", "***")]
    assert kinds(record_events, "dtmf") == []
    await asyncio.sleep(1.5)  # the store commits in batches
    process.terminate()
    stored = b"".join(path.read_bytes() for path in process.data_dir.glob("controller.sqlite3*"))
    assert b'"value":"12"' in stored and b'"value":"***"' in stored  # stored (compact JSON), the PIN masked
    assert PIN.encode() not in stored
    log = process.log.read_text()
    assert record["call_id"] in log and PIN not in log


async def test_public_healthz_says_only_ok_or_degraded(controller: ControllerProcess) -> None:
    assert await controller.health() == {"status": "ok", "ari_connected": True, "prompts_ready": True,
                                         "nodes": {"default": "up"}}  # each Asterisk node's up/down, nothing more
    async with aiohttp.ClientSession() as http, http.get(controller.url + "/api/status") as response:
        assert response.status == 401  # the details need a token
    details = await controller.status()
    assert details is not None and details["active_calls"] == 0 and details["flows"]["live"] >= 1


async def test_a_phone_with_a_trailing_newline_is_refused(controller: ControllerProcess) -> None:
    status, body = await controller.api("POST", "/api/agents/1001/login", json={"phone": "8001\n", "ready": True})
    assert status == 400, body
    status, agent = await controller.api("GET", "/api/agents/1001")
    assert status == 200 and agent["state"] == "logged_out", agent
    status, body = await controller.api("POST", "/api/agents/1001/login", json={"phone": "8001", "ready": True})
    assert status == 200, body
