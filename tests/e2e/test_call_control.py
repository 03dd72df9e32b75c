"""Call control on the real Asterisk: an agent holds, resumes and transfers a SIPp caller to another queue."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ControllerProcess, ari_get, demo_config
from tests.e2e.test_ivr_acd import ACD_DID, flows_dir, login, rows, stop_after  # noqa: F401 (fixture)
from tests.sipp import Caller, Phone, WaitForBye

pytestmark = pytest.mark.e2e
AGENT_1002_TOKEN = "demo-agent-1002-token"
SUPERVISOR = "demo-supervisor-token"


async def start(tmp_path: Path, **queue_settings: Any) -> ControllerProcess:
    queue = {"wrapup_seconds": 5, "ring_timeout": 8, "max_wait": 60, "announce_interval": 0,
             "announce_agent_number": False, "no_agents": "wait", **queue_settings}
    agents = [{"id": "1001", "name": "王芳", "number": "1001", "endpoint": "8001", "queues": {"general": 0}},
              {"id": "1002", "name": "李娜", "number": "1002", "endpoint": "8002", "queues": {"orders": 0}}]
    config = demo_config(tmp_path, ivr={"flows_dir": str(flows_dir(tmp_path, "always"))},
                         acd={"queues": [{"name": "general", **queue}, {"name": "orders", **queue}],
                              "agents": agents, "standard_prompts": {"fees": "本业务免收手续费。"}})
    process = ControllerProcess(tmp_path / "data", config=config)
    await process.start()
    return process


async def agent_state(process: ControllerProcess, agent_id: str) -> dict[str, Any]:
    status, agent = await process.api("GET", f"/api/agents/{agent_id}")
    assert status == 200, agent
    return dict(agent)


async def wait_for_state(process: ControllerProcess, agent_id: str, state: str, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        agent = await agent_state(process, agent_id)
        if agent["state"] == state:
            return agent
        await asyncio.sleep(0.1)
    raise AssertionError(f"agent {agent_id} never {state}: {agent}")


async def test_hold_resume_then_blind_transfer_to_another_queue(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    process = await start(tmp_path)
    stop_after.append(process)
    first_agent = Phone(15001, answer_after_ms=300)            # stays until the controller hangs up
    second_agent = Phone(15002, answer_after_ms=300, hold_ms=3000)
    for phone in (first_agent, second_agent):
        await phone.start()
    await login(process, "1001")
    await login(process, "1002")
    caller = Caller(ACD_DID, steps=[WaitForBye(45000)])
    await caller.start()

    call_id = (await wait_for_state(process, "1001", "talking"))["current_call"]
    # Bad commands change nothing: not on hold yet, an unknown queue, another agent's call, bad bodies.
    assert (await process.api("POST", f"/api/calls/{call_id}/resume"))[0] == 409
    assert (await process.api("POST", f"/api/calls/{call_id}/transfer", json={"to": "queue:nope"}))[0] == 409
    assert (await process.api("POST", f"/api/calls/{call_id}/transfer", json={"to": "8002"}))[0] == 400
    assert (await process.api("POST", f"/api/calls/{call_id}/hold", token=AGENT_1002_TOKEN))[0] == 403
    assert (await process.api("POST", "/api/calls/no-such-call/hold"))[0] == 404  # no live call with that id
    assert (await agent_state(process, "1001"))["state"] == "talking"

    status, body = await process.api("POST", f"/api/calls/{call_id}/hold")
    assert (status, body["state"]) == (200, "held"), body
    assert (await agent_state(process, "1001"))["state"] == "on_hold"
    assert (await process.api("POST", f"/api/calls/{call_id}/hold"))[0] == 409  # already on hold
    await asyncio.sleep(1.5)
    status, body = await process.api("POST", f"/api/calls/{call_id}/resume")
    assert status == 200 and body["held_for"] >= 1.4, body
    assert (await agent_state(process, "1001"))["state"] == "talking"

    status, body = await process.api("POST", f"/api/calls/{call_id}/transfer", json={"to": "queue:orders"})
    assert (status, body["state"]) == (200, "transferring"), body
    assert (await wait_for_state(process, "1001", "acw"))["current_call"] is None
    await wait_for_state(process, "1002", "talking")
    result = await caller.wait()  # agent 1002 hangs up after 3 s; the flow says goodbye
    assert result.ok, result.output + result.errors

    visits = rows(process, "SELECT queue, outcome, agent_id FROM queue_calls ORDER BY id")
    assert visits == [{"queue": "general", "outcome": "answered", "agent_id": "1001"},
                      {"queue": "orders", "outcome": "answered", "agent_id": "1002"}]
    await process.wait_for_records(1)
    events = [e for e in (await process.call_record(call_id))["events"]
              if e["kind"] in ("held", "resumed", "transfer", "bridged")]
    assert [e["kind"] for e in events] == ["bridged", "held", "resumed", "transfer", "bridged"]
    detail = events[3].get("detail", events[3])
    assert detail["to"] == "queue:orders"
    # The report sees the hold and the transfer (README "KPIs").
    status, report = await process.api("GET", "/api/reports?by=queue")
    general = next(r for r in report["rows"] if r["queue"] == "general")
    assert general["transfer_rate"] == 1.0 and general["avg_hold"] >= 1.4, json.dumps(general)
    for phone in (first_agent, second_agent):
        phone.kill()


async def test_click_to_dial_rings_the_agent_then_the_customer(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    process = await start(tmp_path)
    stop_after.append(process)
    agent_phone = Phone(15001, answer_after_ms=300)                    # until the controller hangs up
    customer = Phone(5090, answer_after_ms=500, hold_ms=2500)          # behind the loopback trunk
    await agent_phone.start()
    await customer.start()
    await login(process, "1001")
    assert (await process.api("POST", "/api/agents/1001/not_ready", json={"reason": "meal"}))[0] == 200
    dial = {"agent_id": "1001", "number": "13900139000"}
    assert (await process.api("POST", "/api/calls", json={**dial, "number": "12ab"}))[0] == 400
    assert (await process.api("POST", "/api/calls", json=dial, token=AGENT_1002_TOKEN))[0] == 403
    assert (await process.api("POST", "/api/calls", json={**dial, "agent_id": "1002"}))[0] == 409  # logged out
    status, body = await process.api("POST", "/api/calls", json=dial)
    assert (status, body["state"]) == (202, "ringing_agent"), body
    assert (await process.api("POST", "/api/calls", json=dial))[0] == 409  # already on a call
    assert (await agent_state(process, "1001"))["current_call"] == body["call_id"]
    result = await customer.wait()  # the customer answered, talked 2.5 s and hung up
    assert result.ok, result.output + result.errors
    agent = await wait_for_state(process, "1001", "not_ready")
    assert agent["reason"] == "meal"  # back as before the call
    assert (await agent_phone.wait()).ok  # the controller hung up the agent's phone
    record = await process.call_record(body["call_id"])
    assert (record["direction"], record["did"]) == ("outbound", "13900139000")
    dialled = [e.get("detail", e) for e in record["events"] if e["kind"] == "customer_dialled"]
    assert dialled and dialled[0]["status"] == "ANSWER"


async def test_click_to_dial_when_the_agent_does_not_answer(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    process = await start(tmp_path)
    stop_after.append(process)
    busy_phone = Phone(15001, reject=486)
    await busy_phone.start()
    await login(process, "1001")
    status, body = await process.api("POST", "/api/calls", json={"agent_id": "1001", "number": "13900139000"})
    assert status == 202, body
    agent = await wait_for_state(process, "1001", "ready")  # free again, nothing stuck
    assert agent["current_call"] is None
    busy_phone.kill()


async def test_supervisor_listens_whispers_barges_and_leaves(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    process = await start(tmp_path)
    stop_after.append(process)
    agent_phone = Phone(15001, answer_after_ms=300, hold_ms=16000, talk=True)
    supervisor_phone = Phone(15003, answer_after_ms=300)  # 8003, until the controller hangs up
    for phone in (agent_phone, supervisor_phone):
        await phone.start()
    await login(process, "1001")
    caller = Caller(ACD_DID, steps=[WaitForBye(40000)])
    await caller.start()
    call_id = (await wait_for_state(process, "1001", "talking"))["current_call"]
    path = f"/api/calls/{call_id}/monitor"
    listen = {"mode": "listen", "phone": "8003"}
    assert (await process.api("POST", path, json=listen, token="demo-agent-1001-token"))[0] == 403
    assert (await process.api("POST", path, json=listen, token="demo-integration-token"))[0] == 403
    assert (await process.api("POST", path, json={"mode": "spy", "phone": "8003"}, token=SUPERVISOR))[0] == 400
    assert (await process.api("POST", path, json={"mode": "listen"}, token=SUPERVISOR))[0] == 409  # no phone

    async def members(bridge_id: str) -> set[str]:
        return set((await ari_get(f"/bridges/{bridge_id}"))["channels"])

    status, first = await process.api("POST", path, json=listen, token=SUPERVISOR)
    assert (status, first.get("mode")) == (200, "listen"), first
    supervisor, talk = first["supervisor_channel"], first["talk_bridge"]
    assert await members(first["monitor_bridge"]) == {supervisor, first["snoop_channel"]}
    assert supervisor not in await members(talk) and len(await members(talk)) == 2  # caller and agent only

    status, whisper = await process.api("POST", path, json={"mode": "whisper"}, token=SUPERVISOR)
    assert status == 200 and whisper["snoop_channel"] != first["snoop_channel"], whisper
    assert await members(whisper["monitor_bridge"]) == {supervisor, whisper["snoop_channel"]}
    for _ in range(30):  # the replaced snoop channel is hung up (asynchronously on Asterisk's side)
        if first["snoop_channel"] not in {c["id"] for c in await ari_get("/channels")}:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the listen snoop channel is still there after whisper")

    status, barge = await process.api("POST", path, json={"mode": "barge"}, token=SUPERVISOR)
    assert status == 200 and barge["snoop_channel"] is None, barge
    assert supervisor in await members(talk) and len(await members(talk)) == 3  # a three-way call

    status, back = await process.api("POST", path, json={"mode": "listen"}, token=SUPERVISOR)
    assert status == 200 and supervisor not in await members(talk), back
    assert await members(back["monitor_bridge"]) == {supervisor, back["snoop_channel"]}
    status, _ = await process.api("POST", path, json={"mode": "stop"}, token=SUPERVISOR)
    assert status == 200
    assert (await supervisor_phone.wait()).ok  # the supervisor's phone was hung up; the call goes on
    assert (await agent_state(process, "1001"))["state"] == "talking"
    assert (await caller.wait()).ok
    modes = [e.get("detail", e)["mode"] for e in (await process.call_record(call_id))["events"]
             if e["kind"] == "monitor"]
    assert modes == ["listen", "whisper", "barge", "listen", "stop"]
    agent_phone.kill()


async def test_conference_goes_on_when_the_agent_leaves_first(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    process = await start(tmp_path)
    stop_after.append(process)
    agent_phone = Phone(15001, answer_after_ms=300, hold_ms=6000)   # the agent leaves after 6 s
    third_party = Phone(5090, answer_after_ms=500, hold_ms=9000)     # an outside expert, through the trunk
    for phone in (agent_phone, third_party):
        await phone.start()
    await login(process, "1001")
    caller = Caller(ACD_DID, steps=[WaitForBye(40000)])
    await caller.start()
    call_id = (await wait_for_state(process, "1001", "talking"))["current_call"]
    path = f"/api/calls/{call_id}/conference"
    assert (await process.api("POST", path, json={"to": "8002"}))[0] == 400
    assert (await process.api("POST", path, json={"to": "number:13900139000"}, token=AGENT_1002_TOKEN))[0] == 403
    status, body = await process.api("POST", path, json={"to": "number:13900139000"},
                                     token="demo-agent-1001-token")
    assert (status, body["state"]) == (200, "conference"), body
    party = body["party_channel"]
    bridges = [b for b in await ari_get("/bridges") if party in b["channels"]]
    assert len(bridges) == 1 and len(bridges[0]["channels"]) == 3  # caller, agent, third party
    assert (await agent_phone.wait()).ok  # the agent hung up ...
    await asyncio.sleep(1.0)
    (bridge,) = [b for b in await ari_get("/bridges") if party in b["channels"]]
    assert len(bridge["channels"]) == 2  # ... and the caller still talks with the third party
    assert caller.process is not None and caller.process.returncode is None
    assert (await agent_state(process, "1001"))["state"] == "acw"  # the agent who left is free
    assert (await third_party.wait()).ok
    assert (await caller.wait()).ok  # the last party left: the flow said goodbye
    kinds_seen = [e["kind"] for e in (await process.call_record(call_id))["events"]
                  if e["kind"].startswith("conference")]
    assert kinds_seen == ["conference_joined", "conference_left"]


async def test_a_party_is_removed_from_the_conference_by_command(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    process = await start(tmp_path)
    stop_after.append(process)
    agent_phone = Phone(15001, answer_after_ms=300, hold_ms=12000)
    colleague = Phone(15002, answer_after_ms=300)                    # stays until the controller hangs up
    for phone in (agent_phone, colleague):
        await phone.start()
    await login(process, "1001")
    caller = Caller(ACD_DID, steps=[WaitForBye(40000)])
    await caller.start()
    call_id = (await wait_for_state(process, "1001", "talking"))["current_call"]
    status, body = await process.api("POST", f"/api/calls/{call_id}/conference", json={"to": "phone:8002"})
    assert (status, body.get("parties")) == (200, ["PJSIP/8002"]), body
    party = body["party_channel"]
    remove = f"/api/calls/{call_id}/conference/remove"
    assert (await process.api("POST", remove, json={"to": "phone:8003"}))[0] == 409   # not in the conference
    assert (await process.api("POST", remove, json={"to": "phone:8002"}, token=AGENT_1002_TOKEN))[0] == 403
    status, body = await process.api("POST", remove, json={"to": "phone:8002"}, token="demo-agent-1001-token")
    assert (status, body["state"], body["parties"]) == (200, "talking", []), body
    assert (await colleague.wait()).ok                                               # hung up by the controller
    bridges = [b for b in await ari_get("/bridges") if party in b["channels"] or len(b["channels"]) == 2]
    assert len(bridges) == 1 and party not in bridges[0]["channels"]                  # caller and agent talk on
    assert (await agent_state(process, "1001"))["state"] == "talking"
    assert (await caller.wait()).ok
    left = [e for e in (await process.call_record(call_id))["events"] if e["kind"] == "conference_left"]
    assert len(left) == 1 and (left[0].get("detail") or left[0])["removed_by"] == "1001", left
    agent_phone.kill()


async def test_blind_transfer_out_and_back_to_the_queue_when_nobody_answers(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    process = await start(tmp_path, wrapup_seconds=2)
    stop_after.append(process)
    agent_phone = Phone(15001, answer_after_ms=300, calls=2)  # answers twice, until hung up
    busy_colleague = Phone(15002, reject=486)                  # 8002 is busy
    customer = Phone(5090, answer_after_ms=500, hold_ms=3000)  # an outside number, through the trunk
    for phone in (agent_phone, busy_colleague, customer):
        await phone.start()
    await login(process, "1001")
    caller = Caller(ACD_DID, steps=[WaitForBye(45000)])
    await caller.start()
    call_id = (await wait_for_state(process, "1001", "talking"))["current_call"]
    path = f"/api/calls/{call_id}/transfer"
    status, body = await process.api("POST", path, json={"to": "phone:8002"})
    assert (status, body["state"]) == (200, "back_to_queue"), body  # 8002 busy: the caller is not lost
    agent = await wait_for_state(process, "1001", "talking")  # after ACW, the same agent has the caller again
    assert agent["current_call"] == call_id
    status, body = await process.api("POST", path, json={"to": "number:13900139000"})
    assert (status, body["state"]) == (200, "transferred"), body
    assert (await agent_state(process, "1001"))["state"] in ("acw", "ready")  # free at once
    assert (await customer.wait()).ok
    assert (await caller.wait()).ok
    assert (await agent_phone.wait()).ok
    visits = rows(process, "SELECT queue, outcome, agent_id FROM queue_calls ORDER BY id")
    assert [(v["outcome"], v["agent_id"]) for v in visits] == [("answered", "1001"), ("answered", "1001")]
    kinds_seen = [e["kind"] for e in (await process.call_record(call_id))["events"]
                  if e["kind"].startswith("transfer")]
    assert kinds_seen == ["transfer", "transfer_failed", "transfer", "transfer_connected"]
    busy_colleague.kill()


async def bridge_of(channel_id: str, *, without: str = "", timeout: float = 10) -> set[str]:
    """The channels in the two-party bridge that holds `channel_id` (and not `without`) on Asterisk,
    once there is one."""
    deadline = time.monotonic() + timeout
    while True:
        for bridge in await ari_get("/bridges"):
            members = set(bridge["channels"])
            if channel_id in members and len(members) == 2 and without not in members:
                return members
        assert time.monotonic() < deadline, f"{channel_id} is in no two-party bridge (without {without!r})"
        await asyncio.sleep(0.1)


async def test_transfer_to_a_named_agent_comes_back_when_they_do_not_answer_then_hands_over(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    process = await start(tmp_path, ring_timeout=4, wrapup_seconds=30)
    stop_after.append(process)
    first_agent = Phone(15001, answer_after_ms=300)      # stays until the controller hangs up
    away = Phone(15002, answer_after_ms=30000)           # 1002 is away from the desk: it just rings
    for phone in (first_agent, away):
        await phone.start()
    await login(process, "1001")
    await login(process, "1002")                         # serves another queue: a transfer still reaches them
    caller = Caller(ACD_DID, steps=[WaitForBye(60000)])
    await caller.start()
    call_id = (await wait_for_state(process, "1001", "talking"))["current_call"]
    path = f"/api/calls/{call_id}/transfer"
    assert (await process.api("POST", path, json={"to": "agent:9999"}))[0] == 409       # no such agent
    await process.api("POST", "/api/agents/1002/not_ready", json={"reason": "meal"})
    status, body = await process.api("POST", path, json={"to": "agent:1002"})
    assert status == 409 and "not ready" in body["error"], body                       # not disturbed
    assert (await process.api("POST", path, json={"to": "agent:1002"}, token=AGENT_1002_TOKEN))[0] == 403
    await process.api("POST", "/api/agents/1002/ready")

    status, body = await process.api("POST", path, json={"to": "agent:1002"})        # rings 4 s, no answer
    assert (status, body["state"]) == (200, "talking"), body
    assert body["transfer"] != "answer", body
    agent = await agent_state(process, "1002")
    assert (agent["state"], agent["reason"]) == ("not_ready", "no_answer")             # RONA
    agent = await agent_state(process, "1001")
    assert (agent["state"], agent["current_call"]) == ("talking", call_id)
    caller_channel = (await process.call_record(call_id))["channel_id"]
    (first_agent_channel,) = await bridge_of(caller_channel) - {caller_channel}        # back with agent 1001
    away.kill()

    colleague = Phone(15002, answer_after_ms=300, hold_ms=3000)
    await colleague.start()
    await process.api("POST", "/api/agents/1002/ready")
    status, body = await process.api("POST", path, json={"to": "agent:1002"}, token="demo-agent-1001-token")
    assert (status, body["state"], body["agent_id"]) == (200, "transferred", "1002"), body
    assert (await agent_state(process, "1001"))["state"] == "acw"
    agent = await wait_for_state(process, "1002", "talking")
    assert agent["current_call"] == call_id
    await bridge_of(caller_channel, without=first_agent_channel)                       # now with 1002
    await wait_for_state(process, "1002", "acw")                                      # 1002 hung up after 3 s
    assert (await caller.wait()).ok                                                   # the flow said goodbye
    assert (await colleague.wait()).ok

    (visit,) = rows(process, "SELECT agent_id, outcome, offers FROM queue_calls")
    assert (visit["agent_id"], visit["outcome"]) == ("1001", "answered")
    results = [(o["agent_id"], o["result"]) for o in json.loads(visit["offers"])]
    assert results[0] == ("1001", "answered") and results[-1] == ("1002", "transfer_answered"), results
    assert results[1][0] == "1002" and results[1][1] != "transfer_answered", results
    kinds_seen = [e["kind"] for e in (await process.call_record(call_id))["events"]
                  if e["kind"].startswith("transfer") or e["kind"] in ("agent_answered", "bridged")]
    assert kinds_seen == ["agent_answered", "bridged", "transfer_failed", "transfer", "agent_answered", "bridged"]
    status, events = await process.api("GET", "/api/events?since=0&types=call.ringing")
    pops = [e["data"]["screen_pop"] for e in events["events"] if e["agent_id"] == "1002"]
    first = next(e["data"]["screen_pop"] for e in events["events"] if e["agent_id"] == "1001")
    assert pops and all(pop["transferred_by"] == "1001" and pop["caller"] == first["caller"]
                        and pop["data"] == first["data"] for pop in pops), (pops, first)
    first_agent.kill()


async def test_a_colleague_picks_up_a_call_ringing_elsewhere(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    process = await start(tmp_path)
    stop_after.append(process)
    away = Phone(15001, answer_after_ms=30000)                 # 1001 is away from the desk: it just rings
    colleague = Phone(15002, answer_after_ms=300, hold_ms=2500)
    for phone in (away, colleague):
        await phone.start()
    await login(process, "1001")
    await login(process, "1002", ready=False)  # busy with paperwork (示忙), and serving another queue
    caller = Caller(ACD_DID, steps=[WaitForBye(40000)])
    await caller.start()
    call_id = (await wait_for_state(process, "1001", "ringing"))["current_call"]
    assert (await process.api("POST", f"/api/calls/{call_id}/pickup", json={"agent_id": "1002"},
                              token="demo-agent-1001-token"))[0] == 403  # not for someone else
    status, body = await process.api("POST", f"/api/calls/{call_id}/pickup", json={"agent_id": "1002"},
                                     token=AGENT_1002_TOKEN)
    assert (status, body["state"]) == (200, "ringing"), body
    await wait_for_state(process, "1002", "talking")
    assert (await agent_state(process, "1001"))["state"] == "ready"  # no RONA for the one who was away
    assert (await caller.wait()).ok
    (visit,) = rows(process, "SELECT agent_id, outcome, offers FROM queue_calls")
    assert (visit["agent_id"], visit["outcome"]) == ("1002", "answered")
    assert [(o["agent_id"], o["result"]) for o in json.loads(visit["offers"])] == [("1001", "picked_up"),
                                                                                    ("1002", "answered")]
    assert (await process.api("POST", f"/api/calls/{call_id}/pickup", json={"agent_id": "1001"}))[0] == 404  # over
    away.kill()


async def test_agent_plays_a_standard_recording_to_the_caller(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    process = await start(tmp_path)
    stop_after.append(process)
    agent_phone = Phone(15001, answer_after_ms=300, hold_ms=12000)
    await agent_phone.start()
    await login(process, "1001")
    caller = Caller(ACD_DID, steps=[WaitForBye(40000)])
    await caller.start()
    call_id = (await wait_for_state(process, "1001", "talking"))["current_call"]
    path = f"/api/calls/{call_id}/play"
    status, body = await process.api("POST", path, json={"prompt": "nope"})
    assert status == 404 and "fees" in body["error"]  # names the configured ones
    status, body = await process.api("POST", path, json={"prompt": "fees"}, token="demo-agent-1001-token")
    assert (status, body["played"]) == (200, "fees"), body  # answers once the caller has heard it
    assert (await agent_state(process, "1001"))["state"] == "talking"  # and is with the agent again
    assert (await caller.wait()).ok
    events = [e for e in (await process.call_record(call_id))["events"] if e["kind"] in ("standard_prompt", "playback")]
    assert [e["kind"] for e in events][:2] == ["standard_prompt", "playback"]
    assert events[1]["state"] == "done"
