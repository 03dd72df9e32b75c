"""Agents and queues changed live through /api/config on the real Asterisk, with calls in progress (README
"Administration (live configuration)", "Live calls and configuration changes"): no restart, no call disturbed."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import ControllerProcess, demo_config
from tests.e2e.test_ivr_acd import ACD_DID, flows_dir, rows, stop_after  # noqa: F401 - stop_after: a fixture
from tests.sipp import Caller, Pause, Phone, WaitForBye

pytestmark = pytest.mark.e2e
SKILLED_DID = "4008005556"
SPARE_DID = "4008005557"
QUEUE_FLOW = """
flow: {name}
language: zh
dids: ["{did}"]
nodes:
  queue: {{type: queue, queue: {queue}, answered: bye, overflow: bye, otherwise: bye}}
  bye: {{type: hangup}}
"""
AGENT_1001 = {"id": "1001", "name": "王芳", "number": "1001", "endpoint": "8001", "queues": {"general": 0}}
AGENT_1002 = {"id": "1002", "name": "李娜", "number": "1002", "endpoint": "8002", "queues": {"skilled": 0}}
AGENT_1006 = {"name": "赵敏", "number": "1006", "endpoint": "8005", "skills": {}, "queues": {"general": 0},
              "enabled": True}


def queue(name: str, **settings: Any) -> dict[str, Any]:
    return {"name": name, "ring_timeout": 8, "max_wait": 120, "announce_interval": 0, "no_agents": "wait",
            "announce_agent_number": False, **settings}


async def start(tmp_path: Path, queues: list[dict[str, Any]], agents: list[dict[str, Any]]) -> ControllerProcess:
    flows = flows_dir(tmp_path, "always")
    for name, did in (("skilled", SKILLED_DID), ("spare", SPARE_DID)):
        (flows / f"{name}.yaml").write_text(QUEUE_FLOW.format(name=f"to_{name}", did=did, queue=name))
    config = demo_config(tmp_path, ivr={"flows_dir": str(flows)}, acd={"queues": queues, "agents": agents})
    process = ControllerProcess(tmp_path / "data", config=config)
    await process.start()
    return process


async def until(what: str, check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll `check()` (a value, or an awaitable of one) until it gives something true."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout} s")
        await asyncio.sleep(0.1)


def state_of(process: ControllerProcess, agent_id: str, token: str | None = None) -> Callable[[], Awaitable[str]]:
    async def check() -> str:
        status, body = await (process.api("GET", f"/api/agents/{agent_id}", token=token) if token
                              else process.api("GET", f"/api/agents/{agent_id}"))
        return str(body.get("state")) if status == 200 else f"HTTP {status}"
    return check


async def in_state(process: ControllerProcess, agent_id: str, state: str, timeout: float = 20.0) -> None:
    check = state_of(process, agent_id)

    async def reached() -> bool:
        return await check() == state
    await until(f"agent {agent_id} {state} (is {await check()})", reached, timeout)


async def api_ok(process: ControllerProcess, method: str, path: str, token: str | None = None, *,
                 expect: int = 200, **kwargs: Any) -> Any:
    status, body = await (process.api(method, path, token=token, **kwargs) if token
                          else process.api(method, path, **kwargs))
    assert status == expect, (method, path, status, body)
    return body


def visits(process: ControllerProcess) -> list[dict[str, Any]]:
    found = rows(process, "SELECT * FROM queue_calls ORDER BY id")
    return [{**visit, "offers": [(o["agent_id"], o["result"]) for o in json.loads(visit["offers"])]}
            for visit in found]


def states(process: ControllerProcess, agent_id: str) -> list[dict[str, Any]]:
    return rows(process, "SELECT at, state, previous FROM agent_states WHERE agent_id = ? ORDER BY id", agent_id)


async def test_an_agent_added_live_takes_the_next_call_and_one_removed_while_talking_finishes_first(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    process = await start(tmp_path, [queue("general", wrapup_seconds=3)], [AGENT_1001])
    stop_after.append(process)
    talking_long = Phone(15001, answer_after_ms=300, hold_ms=16000)
    new_phone = Phone(15005, answer_after_ms=300, hold_ms=3000, calls=2)
    for phone in (talking_long, new_phone):
        await phone.start()
    await api_ok(process, "POST", "/api/agents/1001/login", json={"ready": True})
    first = Caller(ACD_DID, steps=[WaitForBye(60000)])
    await first.start()
    await in_state(process, "1001", "talking")
    second = Caller(ACD_DID, steps=[WaitForBye(60000)])  # waits: the only agent is busy
    await second.start()
    await until("the second caller waits", lambda: len(visits(process)) == 2)
    assert (await process.api("GET", "/api/agents/1006"))[0] == 404  # positive/negative pair: not there yet

    # Agent 1006 is created live, gets an agent token, logs in and goes ready: the waiting call rings at once.
    created = await api_ok(process, "PUT", "/api/config/agents/1006", json=AGENT_1006)
    assert [(c["op"], c["key"]) for c in created["changes"]] == [("add", "1006")]
    token = (await api_ok(process, "POST", "/api/tokens", json={"name": "desk-1006", "role": "agent",
                                                                 "agent_id": "1006"}, expect=201))["token"]
    await api_ok(process, "POST", "/api/agents/1006/login", token=token, json={"ready": False})
    await asyncio.sleep(1)
    assert visits(process)[1]["offers"] == []  # not ready: not offered
    await api_ok(process, "POST", "/api/agents/1006/ready", token=token)
    await in_state(process, "1006", "talking")
    # (the visit's row is the store's: committed within its batch window after the state the API shows)
    await until("the waiting call answered by 1006", lambda: visits(process)[1]["agent_id"] == "1006", timeout=5)
    assert await state_of(process, "1001")() == "talking"

    # 1006 goes not ready in their ACW; 1001, still talking, is removed live.
    await in_state(process, "1006", "acw")
    await api_ok(process, "POST", "/api/agents/1006/not_ready", token=token, json={"reason": "meal"})
    async with aiohttp.ClientSession() as http, http.ws_connect(
            process.url.replace("http", "ws") + "/ws", headers={"Authorization": "Bearer demo-agent-1001-token"}) as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "hello"  # 1001's toolbar, open
        removed = await api_ok(process, "DELETE", "/api/config/agents/1001")
        assert [(c["op"], c["key"]) for c in removed["changes"]] == [("remove", "1001")]
        assert await state_of(process, "1001")() == "talking"  # the call goes on
        # Finishing their call, they keep their toolbar: their token still works, their /ws stays open.
        status, still = await process.api("GET", "/api/agents/1001", token="demo-agent-1001-token")
        assert (status, still.get("state")) == (200, "talking"), still
        third = Caller(ACD_DID, steps=[WaitForBye(60000)])
        await third.start()

        # 1001's call ends when their phone hangs up (16 s after answering), then their ACW, then they are gone
        # and their toolbar is closed with why.
        assert (await first.wait()).ok
        message = await ws.receive(timeout=15)
        while message.type == aiohttp.WSMsgType.TEXT:  # their events until the close (state changes)
            message = await ws.receive(timeout=15)
    assert (message.type, message.data, message.extra) == (
        aiohttp.WSMsgType.CLOSE, 4001, "agent 1001 was removed from the configuration: ask a supervisor")
    gone = await until("agent 1001 gone", lambda: rows(
        process, "SELECT 1 FROM agent_states WHERE agent_id = '1001' AND state = 'logged_out'"), timeout=15)
    assert gone and (await process.api("GET", "/api/agents/1001"))[0] == 404
    status, refused = await process.api("GET", "/api/agents/1001", token="demo-agent-1001-token")
    assert status == 403, refused  # their agent token now: a clear refusal
    assert refused["error"] == "agent 1001 was removed from the configuration: ask a supervisor"
    history = states(process, "1001")
    assert [(h["state"], h["previous"]) for h in history][-3:] == [("talking", "ringing"), ("acw", "talking"),
                                                                   ("logged_out", "acw")]
    talk, acw, out = history[-3:]
    assert acw["at"] - talk["at"] >= 15.0  # the removal did not cut the call short
    # and the ACW lasted its wrap-up (each `at` is read when its row is written: 2.9999945 was seen, as below)
    assert 2.99 <= out["at"] - acw["at"] < 5.0
    first_visit, _, third_visit = visits(process)
    assert (first_visit["agent_id"], first_visit["outcome"]) == ("1001", "answered")
    assert third_visit["offers"] == [] and third_visit["outcome"] is None  # 1001 got no offer meanwhile

    # 1006 ready again: the third caller goes to them.
    await api_ok(process, "POST", "/api/agents/1006/ready", token=token)
    for caller in (second, third):
        assert (await caller.wait()).ok
    assert [(v["agent_id"], v["outcome"]) for v in visits(process)] == [
        ("1001", "answered"), ("1006", "answered"), ("1006", "answered")]
    assert visits(process)[2]["offers"] == [("1006", "answered")]
    for phone in (talking_long, new_phone):
        phone.kill()


async def test_queue_changes_live_wrap_up_and_skills_and_a_queue_with_a_caller_is_not_removed(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    queues = [queue("general", wrapup_seconds=6), queue("skilled", wrapup_seconds=0, skills={"billing": 5}),
              queue("spare", wrapup_seconds=0)]
    process = await start(tmp_path, queues, [AGENT_1001, AGENT_1002])
    stop_after.append(process)
    phone_1001 = Phone(15001, answer_after_ms=300, hold_ms=1500, calls=2)
    phone_1002 = Phone(15002, answer_after_ms=300, hold_ms=2000)
    for phone in (phone_1001, phone_1002):
        await phone.start()
    for agent_id in ("1001", "1002"):
        await api_ok(process, "POST", f"/api/agents/{agent_id}/login", json={"ready": True})

    # A wrap-up changed while 1001 is in ACW: that ACW keeps its end (6 s), the next call's uses 2 s.
    assert (await Caller(ACD_DID, steps=[WaitForBye(60_000)]).run()).ok
    await in_state(process, "1001", "acw")
    general = (await api_ok(process, "GET", "/api/config/queues/general"))["value"]
    changed = await api_ok(process, "PUT", "/api/config/queues/general", json={**general, "wrapup_seconds": 2})
    assert [(c["op"], c["key"]) for c in changed["changes"]] == [("change", "general")]

    # Meanwhile: a caller waits in "spare" (nobody serves it) and one in "skilled" (1002 lacks the skill).
    waiting_spare = Caller(SPARE_DID, steps=[Pause(25000)])
    skilled = Caller(SKILLED_DID, steps=[WaitForBye(40000)])
    for caller in (waiting_spare, skilled):
        await caller.start()

    async def waiting_in(name: str) -> int:
        return int((await api_ok(process, "GET", f"/api/queues/{name}"))["waiting"])

    async def both_waiting() -> bool:
        return await waiting_in("spare") == 1 and await waiting_in("skilled") == 1
    await until("callers waiting in spare and skilled", both_waiting)
    assert await state_of(process, "1002")() == "ready"  # ready, yet not offered the skilled call

    # Removing the queue a caller waits in is refused, and changes nothing.
    spare = await api_ok(process, "GET", "/api/config/queues/spare")
    status, refused = await process.api("DELETE", "/api/config/queues/spare")
    assert status == 409, refused
    assert (status, refused["error"]) == (409, "1 caller is waiting in queue spare: move them or wait until it is "
                                               "empty")
    assert await api_ok(process, "GET", "/api/config/queues/spare") == spare
    assert await waiting_in("spare") == 1

    # 1002 gets the skill: the waiting call goes to them at once.
    await api_ok(process, "PUT", "/api/config/agents/1002", json={**AGENT_1002, "skills": {"billing": 5}})
    await in_state(process, "1002", "talking", timeout=15)
    assert (await skilled.wait()).ok

    # The next call to general: 1001's ACW is the new 2 s.
    await in_state(process, "1001", "ready")
    assert (await Caller(ACD_DID, steps=[WaitForBye(60_000)]).run()).ok
    await in_state(process, "1001", "ready")

    def wrapups_so_far() -> list[float]:  # (the last rows are committed up to a batch window after the state)
        history = states(process, "1001")
        return [after["at"] - acw["at"] for acw, after in itertools.pairwise(history) if acw["state"] == "acw"]
    wrapups = await until("1001's two wrap-ups in the history", lambda: len(wrapups_so_far()) >= 2 and wrapups_so_far())
    assert len(wrapups) == 2, states(process, "1001")
    # (each `at` is read when its row is written, a few µs apart from the engine's own clock: 5.99996 was seen)
    assert 5.99 <= wrapups[0] < 8.0 and 1.99 <= wrapups[1] < 4.0, wrapups
    by_queue = {v["queue"]: v for v in visits(process)}
    assert by_queue["skilled"]["offers"] == [("1002", "answered")]

    # Once its caller has left, the queue can be removed.
    assert (await waiting_spare.wait()).ok

    async def spare_empty() -> bool:
        return await waiting_in("spare") == 0
    await until("the spare queue empty", spare_empty)
    removed = await api_ok(process, "DELETE", "/api/config/queues/spare")
    assert [(c["op"], c["key"]) for c in removed["changes"]] == [("remove", "spare")]
    assert (await process.api("GET", "/api/queues/spare"))[0] == 404

    # 1002 disabled while ready: logged out at once; neither the ACD nor their token lets them back in.
    await in_state(process, "1002", "ready")
    disabled = {**AGENT_1002, "skills": {"billing": 5}, "enabled": False}
    await api_ok(process, "PUT", "/api/config/agents/1002", json=disabled)
    await in_state(process, "1002", "logged_out", timeout=15)
    status, refused = await process.api("POST", "/api/agents/1002/login", json={"ready": True})
    assert (status, refused["error"]) == (409, "agent 1002 is disabled")
    status, refused = await process.api("GET", "/api/agents/1002", token="demo-agent-1002-token")
    assert (status, refused["error"]) == (403, "agent 1002 is disabled: ask a supervisor")
    for phone in (phone_1001, phone_1002):
        phone.kill()
