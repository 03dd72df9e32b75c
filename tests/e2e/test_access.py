"""What an agent's token may act on, the recording policy, and the dialing limits, on the real Asterisk.

Ownership: every agent-scoped route (the agent's own state, their calls, recordings, history and
events) called with ANOTHER agent's token answers 403 and changes nothing, while the owner's token
is served (each refusal is paired with the owner's success).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import ControllerProcess, ari_get, demo_config, wait_until
from tests.e2e.test_call_control import wait_for_state
from tests.e2e.test_ivr_acd import AGENTS, flows_dir, login, stop_after  # noqa: F401 (fixture)
from tests.sipp import Caller, Phone, WaitForBye

pytestmark = pytest.mark.e2e
ACD_DID = "4008005555"
OWNER, OTHER = "demo-agent-1002-token", "demo-agent-1001-token"  # the call goes to 1002
CALLER = "13800138000"


async def start(tmp_path: Path, *, recording: str = "on_demand", **sections: Any) -> ControllerProcess:
    general = {"name": "general", "wrapup_seconds": 30, "ring_timeout": 6, "max_wait": 60, "announce_interval": 0,
               "announce_agent_number": False, "no_agents": "wait", "recording": recording}
    config = demo_config(tmp_path, ivr={"flows_dir": str(flows_dir(tmp_path, "always"))},
                         acd={"queues": [general], "agents": AGENTS, "standard_prompts": {"fees": "免收手续费。"}},
                         **sections)
    process = ControllerProcess(tmp_path / "data", config=config)
    await process.start()
    return process


async def status_of(process: ControllerProcess, method: str, path: str, token: str) -> int:
    async with aiohttp.ClientSession() as http, http.request(
            method, process.url + path, headers={"Authorization": f"Bearer {token}"}) as response:
        await response.read()
        return response.status


def agent_view(agent: dict[str, Any]) -> dict[str, Any]:
    return {key: agent.get(key) for key in ("state", "reason", "current_call", "endpoint")}


async def snapshot(process: ControllerProcess, call_id: str) -> dict[str, Any]:
    """What another agent's commands could change: agent 1002, the call's record and recording."""
    _, agent = await process.api("GET", "/api/agents/1002")
    _, record = await process.api("GET", f"/api/calls/{call_id}")
    _, recordings = await process.api("GET", f"/api/recordings?call_id={call_id}")
    return {"agent": agent_view(agent),
            "events": [e["kind"] for e in record["events"]], "recordings": recordings["recordings"]}


async def test_an_agent_token_cannot_act_on_a_colleague_or_their_call(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    process = await start(tmp_path, recording="always")
    stop_after.append(process)
    phone = Phone(15002, answer_after_ms=300, hold_ms=14000)  # agent 1002 talks 14 s, then hangs up
    await phone.start()
    await login(process, "1002")
    caller = Caller(ACD_DID, caller=CALLER, steps=[WaitForBye(40000)])
    await caller.start()
    call_id = (await wait_for_state(process, "1002", "talking"))["current_call"]
    before = await snapshot(process, call_id)
    for _ in range(50):  # the recording (queue policy `always`) starts as the agent answers
        if before["recordings"]:
            break
        await asyncio.sleep(0.1)
        before = await snapshot(process, call_id)
    channels = {c["id"] for c in await ari_get("/channels")}  # the caller, agent 1002, the recording's snoop
    assert before["agent"]["state"] == "talking" and len(before["recordings"]) == 1

    refused = [
        ("GET", "/api/agents/1002", None), ("GET", "/api/agents/1002/calls", None),
        ("POST", "/api/agents/1002/login", {"ready": True}),
        ("POST", "/api/agents/1002/ready", None), ("POST", "/api/agents/1002/not_ready", {"reason": "meal"}),
        ("POST", "/api/agents/1002/end_acw", None), ("POST", "/api/agents/1002/logout", None),
        ("POST", "/api/calls", {"agent_id": "1002", "number": "13900139000"}),
        ("POST", f"/api/calls/{call_id}/pickup", {"agent_id": "1002"}),
        ("POST", f"/api/calls/{call_id}/hold", None), ("POST", f"/api/calls/{call_id}/resume", None),
        ("POST", f"/api/calls/{call_id}/hangup", None),
        ("POST", f"/api/calls/{call_id}/transfer", {"to": "queue:general"}),
        ("POST", f"/api/calls/{call_id}/conference", {"to": "phone:8003"}),
        ("POST", f"/api/calls/{call_id}/conference/remove", {"to": "phone:8003"}),
        ("POST", f"/api/calls/{call_id}/consult", {"to": "phone:8003"}),
        ("POST", f"/api/calls/{call_id}/consult/complete", None),
        ("POST", f"/api/calls/{call_id}/consult/cancel", None),
        ("POST", f"/api/calls/{call_id}/consult/conference", None),
        ("POST", f"/api/calls/{call_id}/play", {"prompt": "fees"}),
        ("POST", f"/api/calls/{call_id}/recording", None), ("POST", f"/api/calls/{call_id}/recording/pause", None),
        ("POST", f"/api/calls/{call_id}/recording/resume", None),
        ("POST", f"/api/calls/{call_id}/recording/stop", None),
        ("POST", f"/api/calls/{call_id}/disposition", {"disposition": "resolved"}),
    ]
    wrong = []
    for method, path, body in refused:
        status, answer = await process.api(method, path, token=OTHER, json=body)
        if status != 403:
            wrong.append(f"{method} {path} with another agent's token: {status} {answer}")
    assert not wrong, "\n".join(wrong)
    # The owner may not dial numbers outside dialing.allowed_prefixes from the call either.
    for command in ("transfer", "conference", "consult"):
        status, body = await process.api("POST", f"/api/calls/{call_id}/{command}", token=OWNER,
                                         json={"to": "number:0085212345678"})
        assert status == 403 and "may not be dialled" in body["error"], (command, body)
    assert await snapshot(process, call_id) == before  # nothing changed
    assert {c["id"] for c in await ari_get("/channels")} == channels  # nothing else rang

    # The owner is served (the refusals above are about ownership, not about the routes).
    status, agent = await process.api("GET", "/api/agents/1002", token=OWNER)
    assert (status, agent["current_call"]) == (200, call_id)
    # Recording policy `always` (the queue's): the owner cannot stop it either, but may pause it.
    status, body = await process.api("POST", f"/api/calls/{call_id}/recording/stop", token=OWNER)
    assert status == 409 and "always" in body["error"], body
    assert (await process.api("POST", f"/api/calls/{call_id}/recording/pause", token=OWNER))[0] == 200
    assert (await process.api("POST", f"/api/calls/{call_id}/recording/resume", token=OWNER))[0] == 200
    assert (await process.api("POST", f"/api/calls/{call_id}/recording/stop"))[0] == 409  # admin neither

    assert (await caller.wait()).ok
    await wait_for_state(process, "1002", "acw")

    async def finished() -> dict[str, Any] | None:  # the duration is known once Asterisk says it finished
        _, found = await process.api("GET", f"/api/recordings?call_id={call_id}")
        (row,) = found["recordings"]
        return row if row["duration"] is not None else None

    row = await wait_until(finished, timeout=20)
    assert row["duration"] >= 10  # recorded to the end: the stop was refused
    after_call = [("GET", f"/api/recordings/{row['id']}"), ("GET", f"/api/recordings/{row['id']}/audio"),
                  ("GET", f"/api/numbers/{CALLER}/calls"), ("GET", "/api/agents/1002/calls")]
    for method, path in after_call:
        assert await status_of(process, method, path, OTHER) == 403, path
        assert await status_of(process, method, path, OWNER) == 200, path
    disposition = {"disposition": "resolved", "notes": "ok"}
    assert (await process.api("POST", f"/api/calls/{call_id}/disposition", token=OTHER, json=disposition))[0] == 403
    assert (await process.api("POST", f"/api/calls/{call_id}/disposition", token=OWNER, json=disposition))[0] == 200
    _, mine = await process.api("GET", "/api/recordings", token=OTHER)
    assert mine["recordings"] == []
    _, theirs = await process.api("GET", "/api/recordings", token=OWNER)
    assert [r["id"] for r in theirs["recordings"]] == [row["id"]]
    _, other_events = await process.api("GET", "/api/events?since=0&agent=1002", token=OTHER)
    _, owner_events = await process.api("GET", "/api/events?since=0", token=OWNER)
    assert all(e.get("agent_id") in (None, "1001") for e in other_events["events"]), other_events
    assert not any(e.get("call_id") == call_id for e in other_events["events"])
    assert any(e.get("call_id") == call_id for e in owner_events["events"])
    _, listed = await process.api("GET", "/api/agents", token=OTHER)
    assert [a["id"] for a in listed["agents"]] == ["1001"]


async def test_a_call_of_a_never_flow_cannot_be_recorded_through_the_api(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    process = await start(tmp_path)  # the queue records on demand
    stop_after.append(process)
    flow = tmp_path / "flows" / "acdtest.yaml"
    flow.write_text(flow.read_text().replace("language: zh\n", "language: zh\nrecording: never\n"))
    assert (await process.api("POST", "/api/flows/reload"))[0] == 200
    phone = Phone(15002, answer_after_ms=300, hold_ms=6000)
    await phone.start()
    await login(process, "1002")
    caller = Caller(ACD_DID, caller=CALLER, steps=[WaitForBye(60_000)])
    await caller.start()
    call_id = (await wait_for_state(process, "1002", "talking"))["current_call"]
    for token in (OWNER, "demo-supervisor-token", "demo-admin-token"):
        status, body = await process.api("POST", f"/api/calls/{call_id}/recording", token=token)
        assert status == 409 and "never" in body["error"], body
    assert (await caller.wait()).ok
    _, found = await process.api("GET", f"/api/recordings?call_id={call_id}")
    assert found["recordings"] == []
    # The same call flow without the policy is recorded on demand (the refusal is the policy's).
    flow.write_text(flow.read_text().replace("recording: never\n", ""))
    assert (await process.api("POST", "/api/flows/reload"))[0] == 200
    await wait_for_state(process, "1002", "acw")
    assert (await process.api("POST", "/api/agents/1002/end_acw"))[0] == 200
    second = Caller(ACD_DID, caller=CALLER, steps=[WaitForBye(60_000)])
    await second.start()
    phone2 = Phone(15002, answer_after_ms=300, hold_ms=4000)
    await phone2.start()
    call_id = (await wait_for_state(process, "1002", "talking"))["current_call"]
    status, body = await process.api("POST", f"/api/calls/{call_id}/recording", token=OWNER)
    assert (status, body["state"]) == (200, "recording"), body
    assert (await second.wait()).ok


async def test_dialing_is_limited_to_allowed_prefixes_and_a_rate_per_token(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    process = await start(tmp_path, dialing={"allowed_prefixes": ["139", "138"], "denied_prefixes": ["1380"],
                                             "rate_limit_calls": 2, "rate_limit_seconds": 60})
    stop_after.append(process)
    await login(process, "1001", ready=False)
    before = agent_view((await process.api("GET", "/api/agents/1001"))[1])
    for number in ("0085212345678", "13800001111", "13700137000"):
        status, body = await process.api("POST", "/api/calls", token=OTHER, json={"agent_id": "1001", "number": number})
        assert status == 403 and "may not be dialled" in body["error"], (number, body)
    assert agent_view((await process.api("GET", "/api/agents/1001"))[1]) == before
    assert await ari_get("/channels") == []  # nothing rang
    # Allowed numbers, for an agent who is logged out: refused by the ACD (409), yet counted.
    dial = {"agent_id": "1002", "number": "13900139000"}
    assert (await process.api("POST", "/api/calls", json=dial))[0] == 409
    assert (await process.api("POST", "/api/calls", json={**dial, "number": "13812345678"}))[0] == 409
    async with aiohttp.ClientSession() as http, http.post(
            process.url + "/api/calls", json=dial, headers={"Authorization": "Bearer demo-admin-token"}) as response:
        assert response.status == 429
        assert 1 <= int(response.headers["Retry-After"]) <= 60
    # Another token has its own allowance.
    assert (await process.api("POST", "/api/calls", token="demo-supervisor-token", json=dial))[0] == 409


async def test_a_dialled_number_unlocks_its_history_only_once_it_answered(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    process = await start(tmp_path)
    stop_after.append(process)
    agent_phone = Phone(15001, answer_after_ms=300, calls=2)  # until the controller hangs up, twice
    await agent_phone.start()
    await login(process, "1001", ready=False)
    history = "/api/numbers/13900139000/calls"
    dial = {"agent_id": "1001", "number": "13900139000"}

    busy = Phone(5090, reject=486)  # the customer's line is busy: they never talked
    await busy.start()
    status, first = await process.api("POST", "/api/calls", token=OTHER, json=dial)
    assert status == 202, first
    await wait_for_state(process, "1001", "talking", timeout=10)
    await wait_for_state(process, "1001", "not_ready", timeout=20)
    busy.kill()
    record = await process.call_record(first["call_id"])
    assert [e["status"] for e in record["events"] if e["kind"] == "customer_dialled"] == ["BUSY"]
    assert (await process.api("GET", history, token=OTHER))[0] == 403  # dialled, not served

    customer = Phone(5090, answer_after_ms=300, hold_ms=1500)  # this time they answer
    await customer.start()
    status, second = await process.api("POST", "/api/calls", token=OTHER, json=dial)
    assert status == 202, second
    assert (await customer.wait()).ok
    await wait_for_state(process, "1001", "not_ready", timeout=20)
    status, body = await process.api("GET", history, token=OTHER)
    assert status == 200 and [c["call_id"] for c in body["calls"]] == [second["call_id"], first["call_id"]], body
    assert (await process.api("GET", history, token=OWNER))[0] == 403  # 1002 never talked with them
