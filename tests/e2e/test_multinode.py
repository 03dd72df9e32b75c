"""Several Asterisk servers under one controller: node a (127.0.0.1) and node b (127.0.0.2), one queue.

Agents' phones are SIPp UAS on the node their endpoint names (`b/8002`: endpoint 8002 on node b, contact
127.0.0.2:15002). A caller on node a reaches a phone on node b through the `ccc-node-b` trunk.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e import test_ivr_acd
from tests.e2e.conftest import ARI_HEADERS, ControllerProcess, demo_config
from tests.e2e.nodes import B_ADDRESS, TwoNodes
from tests.sipp import Caller, Phone, WaitForBye

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
ACD_DID, ACD_FLOW = test_ivr_acd.ACD_DID, test_ivr_acd.ACD_FLOW  # DID -> queue general
stop_after = test_ivr_acd.stop_after  # the fixture that stops the test's controllers and prints their logs
A_CHANNEL, B_CHANNEL = "ccc-sandbox-", "ccc-node-b-"  # inbound channel ids begin with their node's systemname


def agent(agent_id: str, endpoint: str, queue: str = "general") -> dict[str, Any]:
    return {"id": agent_id, "name": f"agent {agent_id}", "number": agent_id, "endpoint": endpoint,
            "queues": {queue: 0}}


async def start(tmp_path: Path, nodes: TwoNodes, agents: list[dict[str, Any]],
                stop_after: list[ControllerProcess]) -> ControllerProcess:
    """The controller, handed to `stop_after` before it starts: copying the prompts to node b may fail after."""
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "acdtest.yaml").write_text(ACD_FLOW)
    general = {"name": "general", "wrapup_seconds": 1, "ring_timeout": 8, "max_wait": 60, "announce_interval": 0,
               "no_agents": "wait"}
    other = {**general, "name": "other"}  # a queue nobody calls: its agents stay ready
    config = demo_config(tmp_path, ivr={"flows_dir": str(flows)}, nodes=nodes.nodes_config(),
                         acd={"center_name": "演示热线", "queues": [general, other], "agents": agents})
    process = ControllerProcess(tmp_path / "data", config=config)
    stop_after.append(process)
    await process.start()
    nodes.sync_prompts()
    return process


def caller_on_b(steps: list[Any]) -> Caller:
    caller = Caller(ACD_DID, steps=steps)
    caller.extra = [f"{B_ADDRESS}:5060"]
    caller.local_ip = B_ADDRESS
    return caller


def phone_on_b(port: int, **kwargs: Any) -> Phone:
    phone = Phone(port, **kwargs)
    phone.local_ip = B_ADDRESS
    return phone


def ccctl(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "controller.cli.main", "--url", url, "--token", "demo-admin-token",
                           *args], capture_output=True, text=True, timeout=60)


async def ari_get(address: str, path: str) -> Any:
    async with aiohttp.ClientSession(headers=ARI_HEADERS) as http, \
            http.get(f"http://{address}:8088/ari{path}") as response:
        return await response.json()


async def login(process: ControllerProcess, agent_id: str) -> None:
    status, body = await process.api("POST", f"/api/agents/{agent_id}/login", json={"ready": True})
    assert status == 200, body


async def agent_state(process: ControllerProcess, agent_id: str) -> tuple[str, str | None]:
    status, body = await process.api("GET", f"/api/agents/{agent_id}")
    assert status == 200, body
    return body["state"], body.get("reason")


async def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := await check():
            return result
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {what}")


async def test_a_caller_on_node_a_is_answered_by_an_agent_whose_phone_is_on_node_b(
        two_nodes: TwoNodes, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:
    process = await start(tmp_path, two_nodes, [agent("1001", "b/8002")], stop_after)
    health = await process.health()
    assert health is not None and health["nodes"] == {"a": "up", "b": "up"}
    phone = phone_on_b(15002, answer_after_ms=300, hold_ms=12000)
    await phone.start()
    await login(process, "1001")
    caller = Caller(ACD_DID, steps=[WaitForBye(60_000)])
    await caller.start()

    async def talking() -> bool:
        return (await agent_state(process, "1001"))[0] == "talking"
    await wait_for(talking, 20, "agent 1001 talking")
    # The call's bridge is on node a (the caller's), with the caller and the trunk leg to node b in it;
    # node b has the phone's call from the trunk and no bridge of ours.
    # (The queue's holding bridge, shared by its waiting callers, stays on node a, empty, for the next caller.)
    async def talk_bridge_on_a() -> list[dict[str, Any]]:
        bridges = [b for b in await ari_get("127.0.0.1", "/bridges")  # (not the pool's idle talk bridges)
                   if b["id"].startswith("br-") and not b["id"].startswith("br-queue-") and b["channels"]]
        return bridges if any(len(b["channels"]) == 2 for b in bridges) else []
    a_bridges = await wait_for(talk_bridge_on_a, 12, "the talk bridge on node a (after the agent-number prompt)")
    assert len(a_bridges) == 1, a_bridges
    a_channels = {c["id"]: c for c in await ari_get("127.0.0.1", "/channels")}
    assert any(c["name"].startswith("PJSIP/ccc-node-b-") for c in a_channels.values()), a_channels
    assert [b for b in await ari_get(B_ADDRESS, "/bridges") if b["id"].startswith("br-")] == []
    b_channels = await ari_get(B_ADDRESS, "/channels")
    assert {c["name"].split("-")[0] for c in b_channels} >= {"PJSIP/ccc"}, b_channels  # the trunk leg arrives
    assert any(c["name"].startswith("PJSIP/8002-") for c in b_channels), b_channels  # and rings the phone
    assert (await phone.wait()).ok
    assert (await caller.wait()).ok
    (record,) = await process.wait_for_records(1)
    assert record["channel_id"].startswith(A_CHANNEL)
    (visit,) = process.rows("SELECT outcome, agent_id FROM queue_calls")
    assert visit == {"outcome": "answered", "agent_id": "1001"}


async def test_one_queue_serves_callers_of_both_nodes_in_arrival_order(
        two_nodes: TwoNodes, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:
    process = await start(tmp_path, two_nodes, [agent("1001", "a/8001")], stop_after)
    phone = Phone(15001, answer_after_ms=300, hold_ms=2000, calls=3)
    await phone.start()
    callers = [caller_on_b([WaitForBye(40000)]), Caller(ACD_DID, steps=[WaitForBye(40000)]),
               caller_on_b([WaitForBye(40000)])]
    for caller in callers:  # b, a, b: each waits before the agent logs in
        await caller.start()
        await asyncio.sleep(1.5)

    async def three_waiting() -> bool:
        return len(process.rows("SELECT id FROM queue_calls")) == 3
    await wait_for(three_waiting, 10, "three callers waiting")
    await login(process, "1001")
    for caller in callers:
        assert (await caller.wait()).ok
    assert (await phone.wait()).ok
    visits = process.rows("SELECT q.outcome, q.answered_at, c.channel_id FROM queue_calls q "
                          "JOIN calls c ON c.call_id = q.call_id ORDER BY q.enqueued_at")
    assert [v["outcome"] for v in visits] == ["answered"] * 3
    assert [v["channel_id"].startswith(B_CHANNEL) for v in visits] == [True, False, True]
    assert [v["channel_id"].startswith(A_CHANNEL) for v in visits] == [False, True, False]
    answered = [v["answered_at"] for v in visits]
    assert answered == sorted(answered), visits  # first come, first served, whichever node they called


async def test_node_b_down_makes_its_agents_not_ready_ends_its_calls_and_leaves_node_a_calls_alone(
        two_nodes: TwoNodes, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:
    process = await start(tmp_path, two_nodes, [agent("1001", "a/8001"), agent("1002", "b/8002", "other")], stop_after)
    phone_a = Phone(15001, answer_after_ms=300, hold_ms=15000)
    await phone_a.start()
    await login(process, "1001")
    a_caller = Caller(ACD_DID, steps=[WaitForBye(40000)])  # talks to agent 1001 on node a
    await a_caller.start()

    async def a_talking() -> bool:
        return (await agent_state(process, "1001"))[0] == "talking"
    await wait_for(a_talking, 20, "agent 1001 talking")
    await login(process, "1002")  # ready (in a queue nobody calls), phone on node b
    b_caller = caller_on_b([WaitForBye(40000)])  # waits in the queue on node b (1001 is busy)
    await b_caller.start()

    async def b_waiting() -> bool:
        return len(process.rows("SELECT id FROM queue_calls")) == 2
    await wait_for(b_waiting, 10, "node b's caller queued")
    assert await agent_state(process, "1002") == ("ready", None)

    two_nodes.kill_b()  # a crash: a graceful `core stop` would hang its calls up itself, reporting each

    async def b_agent_unreachable() -> bool:
        return await agent_state(process, "1002") == ("not_ready", "phone_unreachable")
    await wait_for(b_agent_unreachable, 15, "agent 1002 not ready (phone_unreachable)")
    assert await agent_state(process, "1001") == ("talking", None)  # node a's agent: untouched
    health = await process.health()
    assert health is not None and health["nodes"] == {"a": "up", "b": "down"}
    status, body = await process.api("GET", "/api/status")
    assert status == 200 and body["controller"]["nodes"]["b"]["down"] is True
    assert body["asterisk"]["nodes"]["a"]["reachable"] and not body["asterisk"]["nodes"]["b"]["reachable"]
    lines = ccctl(process.url, "status").stdout.splitlines()
    assert any(line.startswith("node a ") and " up;" in line for line in lines), lines
    assert any(line.startswith("node b ") and "DOWN since" in line for line in lines), lines
    status, metrics = await process.api("GET", "/metrics")
    assert 'ccc_node_up{node="a"} 1.0' in metrics and 'ccc_node_up{node="b"} 0.0' in metrics, metrics

    async def b_call_ended() -> list[dict[str, Any]]:
        return [r for r in await process.call_records() if r["ended_at"] and r["channel_id"].startswith(B_CHANNEL)]
    (b_record,) = await wait_for(b_call_ended, 10, "node b's call ended")
    assert b_record["end_reason"] == "node_down"
    # Node a's call goes on to its natural end: the agent's phone hangs up after 15 s.
    assert (await a_caller.wait()).ok
    assert (await phone_a.wait()).ok
    a_record = next(r for r in await process.wait_for_records(2) if r["channel_id"].startswith(A_CHANNEL))
    assert a_record["end_reason"] not in ("node_down", "lost"), a_record

    two_nodes.start_b()

    async def b_agent_back() -> bool:
        return (await agent_state(process, "1002"))[0] == "ready"
    await wait_for(b_agent_back, 20, "agent 1002 ready again once node b is back")


async def test_a_call_on_node_b_is_resumed_on_node_b_after_a_controller_restart(
        two_nodes: TwoNodes, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:
    process = await start(tmp_path, two_nodes, [agent("1001", "a/8001")], stop_after)
    # On node a: the call crosses from b to a. The phone talks 30 s: time for the restart on a loaded machine.
    phone = Phone(15001, answer_after_ms=300, hold_ms=30000)
    await phone.start()
    await login(process, "1001")
    caller = caller_on_b([WaitForBye(60000)])
    await caller.start()

    async def talking() -> bool:
        return (await agent_state(process, "1001"))[0] == "talking"
    await wait_for(talking, 20, "agent 1001 talking")

    async def talk_bridge_on_b() -> list[dict[str, Any]]:
        return [b for b in await ari_get(B_ADDRESS, "/bridges") if b["id"].startswith("br-talk-")
                and len(b["channels"]) == 2]
    (bridge,) = await wait_for(talk_bridge_on_b, 12, "the talk bridge on node b")
    await asyncio.sleep(0.5)  # the talk part is committed within milliseconds

    process.kill()
    again = ControllerProcess(process.data_dir, config=process.config)
    stop_after.append(again)
    await again.start()
    # The new process takes the call over on node b: same bridge, same legs, the agent still talking on it.
    (record,) = await again.call_records()
    events = [e["kind"] for e in (await again.call_record(record["call_id"]))["events"]]
    assert "resumed_by_new_process" in events, events
    assert await agent_state(again, "1001") == ("talking", None)
    bridges_now = {b["id"]: b["channels"] for b in await ari_get(B_ADDRESS, "/bridges")}
    assert bridges_now.get(bridge["id"]) == bridge["channels"], bridges_now
    assert (await phone.wait()).ok  # the phone hangs up at its time: the caller gets a BYE, not a drop
    assert (await caller.wait()).ok
    (record,) = await again.wait_for_records(1)
    assert record["channel_id"].startswith(B_CHANNEL) and record["end_reason"] not in ("lost", "fallback", "node_down")
