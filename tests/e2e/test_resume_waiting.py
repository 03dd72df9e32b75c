"""Waiting and IVR callers survive a controller restart (issue 13), on the real Asterisk.

Ten SIPp callers wait in a queue whose only agent is not ready, and one caller listens to a menu; the
controller is SIGKILLed (or stopped with SIGTERM) and started again on the same data. The callers never
notice: the agent goes ready and serves the ten in arrival order with their waits counted from their
first enqueue (nobody reaches the fallback route, nobody is counted abandoned), and the caller in the
menu hears it again and their key works.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e import test_ivr_acd
from tests.e2e.conftest import ARI, ARI_HEADERS, ControllerProcess, ari_get, demo_config, pool_settled, wait_until
from tests.sipp import Caller, Dtmf, Pause, Phone, WaitForBye

pytestmark = pytest.mark.e2e

QUEUE_DID = "4008006001"
MENU_DID = "4008006002"
FLOWS = {
    "waitq": f"""
flow: waitq
language: zh
dids: ["{QUEUE_DID}"]
nodes:
  queue: {{type: queue, queue: general, answered: bye, otherwise: bye}}
  bye: {{type: hangup}}
""",
    "menuq": f"""
flow: menuq
language: zh
dids: ["{MENU_DID}"]
nodes:
  tag: {{type: set, values: {{came_by: "'hotline'"}}, next: hello}}
  hello: {{type: play, prompts: ["欢迎"], next: menu}}
  menu: {{type: menu, prompt: ["请按一"], timeout: 20, retries: 2, variable: choice,
          options: {{"1": one}}, default: bye}}
  one: {{type: play, prompts: ["您按了一"], next: bye}}
  bye: {{type: hangup}}
""",
}
TALK_DID = "4008006003"
FLOWS["talkq"] = f"""
flow: talkq
language: zh
dids: ["{TALK_DID}"]
nodes:
  queue: {{type: queue, queue: general, answered: thanks, otherwise: bye}}
  thanks: {{type: play, prompts: ["感谢您的来电"], next: bye}}
  bye: {{type: hangup}}
"""
AGENT = {"id": "1001", "name": "王芳", "number": "1001", "endpoint": "8001", "queues": {"general": 0}}
CALLERS = 10
stop_after = test_ivr_acd.stop_after  # the fixture: stops the controllers after the test, prints their logs
rows = test_ivr_acd.rows


def config(tmp_path: Path, **queue: Any) -> Path:
    flows = tmp_path / "flows"
    flows.mkdir()
    for name, text in FLOWS.items():
        (flows / f"{name}.yaml").write_text(text)
    general = {"name": "general", "wrapup_seconds": 0, "ring_timeout": 10, "max_wait": 300, "announce_interval": 0,
               "no_agents": "wait", "announce_agent_number": False, "service_level_seconds": 600, **queue}
    return demo_config(tmp_path, ivr={"flows_dir": str(flows)},
                       acd={"center_name": "演示热线", "queues": [general], "agents": [AGENT]})


async def waiting_calls(process: ControllerProcess) -> list[dict[str, Any]]:
    status, body = await process.api("GET", "/api/queues/general")
    assert status == 200, body
    return list(body["calls"])


async def until(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("stop", ["sigkill", "sigterm"])
async def test_waiting_and_menu_callers_survive_a_restart(stop: str, fresh_asterisk: Path, tmp_path: Path,
                                                          stop_after: list[ControllerProcess]) -> None:
    first = ControllerProcess(tmp_path / "data", config=config(tmp_path))
    stop_after.append(first)
    await first.start()
    status, body = await first.api("POST", "/api/agents/1001/login", json={"ready": False})
    assert status == 200, body
    phone = Phone(15001, answer_after_ms=200, hold_ms=800, calls=CALLERS, timeout_s=180)
    await phone.start()
    numbers = [f"139001390{index:02d}" for index in range(CALLERS)]
    callers = []
    for number in numbers:  # in this order: the order they must be served in
        caller = Caller(QUEUE_DID, caller=number, steps=[WaitForBye(150_000)])
        await caller.start()
        callers.append(caller)
        await asyncio.sleep(0.4)
    # The menu caller: the menu plays, the controller goes away and comes back, then they press 1.
    menu_caller = Caller(MENU_DID, caller="13700137000", steps=[Pause(14_000), Dtmf("1"), WaitForBye(30_000)])
    await menu_caller.start()
    await until(lambda: waiting_calls_count(first, CALLERS), 20, "ten callers waiting")
    await until(lambda: menu_entered(first), 10, "the menu caller in the menu")
    # The ten wait together in the queue's one holding bridge (music on hold), not in a bridge each.
    held = await until(lambda: holding_bridges(numbers), 10, "the callers in the queue's holding bridge")
    assert len(held) == 1 and len(next(iter(held.values()))) == CALLERS, held
    # What the next process resumes from is in the store (batched writer): not a fixed wait, which a loaded
    # machine's store thread can overrun.
    await until(lambda: saved_for_resume(first, held), 10, "the callers' queue and menu parts in the store")
    stopped_at = time.time()

    if stop == "sigkill":
        first.kill()
    else:
        assert first.process is not None
        first.process.send_signal(signal.SIGTERM)
        first.process.wait(15)
    started = time.monotonic()
    second = await started_again(first, stop_after)
    waiting = await until(lambda: waiting_calls_count(second, CALLERS), 10, "the ten callers back in the queue")
    seen_at, resumed_in = time.time(), time.monotonic() - started
    assert await holding_bridges(numbers) == held  # taken over as it was: same bridge, nobody moved
    # Their places: arrival order, and waits counted from the first enqueue (spanning the restart).
    first_enqueues = {v["call_id"]: v["enqueued_at"] for v in queue_visits(second)}
    assert [call["call_id"] for call in waiting] == list(first_enqueues)
    for call in waiting:
        assert call["waited"] == pytest.approx(seen_at - first_enqueues[call["call_id"]], abs=1.0)

    status, body = await second.api("POST", "/api/agents/1001/ready")
    assert status == 200, body
    for caller in callers:
        result = await caller.wait()
        assert result.ok, result.errors
    result = await menu_caller.wait()
    assert result.ok, result.errors
    await second.wait_for_records(CALLERS + 1)  # every call's end (and its data) is in the store

    visits = queue_visits(second)
    assert [v["outcome"] for v in visits] == ["answered"] * CALLERS, visits
    by_call = {r["call_id"]: r["caller"] for r in rows(second, "SELECT call_id, caller FROM calls")}
    served = sorted(visits, key=lambda v: v["answered_at"])
    assert [by_call[v["call_id"]] for v in served] == numbers  # first come, first served
    for visit in visits:  # one wait from the first enqueue to the answer, spanning the restart
        assert visit["wait_seconds"] == pytest.approx(visit["answered_at"] - visit["enqueued_at"], abs=1.0)
        assert visit["enqueued_at"] < stopped_at
    ended = {r["call_id"]: r for r in rows(second, "SELECT * FROM calls")}
    assert all(r["end_reason"] not in ("fallback", "lost") for r in ended.values()), ended
    events = [json.loads(r["detail"] or "{}") | {"kind": r["kind"], "call_id": r["call_id"]}
              for r in rows(second, "SELECT * FROM call_events")]
    assert not [e for e in events if e["kind"] in ("resume_failed", "recovered")]
    assert len([e for e in events if e["kind"] == "queue_resumed"]) == CALLERS

    # The menu caller heard the menu again after the restart, and their key was taken.
    menu_call = next(call_id for call_id, caller in by_call.items() if caller == "13700137000")
    menu_events = [e for e in events if e["call_id"] == menu_call]
    resumed = [e for e in menu_events if e["kind"] == "flow_resumed"]
    assert resumed and resumed[0]["node"] == "menu", menu_events
    after = menu_events[menu_events.index(resumed[0]):]
    assert [e.get("node") for e in after if e["kind"] == "node"][:2] == ["menu", "one"]
    assert any(e["kind"] == "input" and e.get("value") == "1" for e in after)
    data = json.loads(ended[menu_call]["data"])
    assert (data.get("came_by"), data.get("choice")) == ("hotline", "1")  # set before the restart, and after

    status, report = await second.api("GET", "/api/reports")
    assert status == 200, report
    row = next(r for r in report["rows"] if r.get("queue") == "general")
    assert (row["answered"], row["abandoned"], row["short_abandons"]) == (CALLERS, 0, 0), row
    # No bridge of a call is left but the pool's idle talk bridges; the queue's holding bridge stays for the next
    # callers.
    idle = (await wait_until(lambda: pool_settled(second), timeout=10))["idle"]
    bridges = await ari_get("/bridges")
    assert [b["id"] for b in bridges if b["id"].startswith("br-") and b["id"] not in idle] == list(held), bridges
    assert not [b for b in bridges if b["name"] in by_call], bridges
    print(f"resumed {CALLERS} waiting callers and 1 menu caller in {resumed_in:.2f} s after the process start")
    phone.kill()


async def holding_bridges(numbers: list[str]) -> dict[str, set[str]] | None:
    """The holding bridges (br-queue-*) the callers of these numbers are in, with those callers' channels; None
    until each of them is in one."""
    channels = {c["id"] for c in await ari_get("/channels") if c["caller"]["number"] in numbers}
    found = {b["id"]: set(b["channels"]) & channels for b in await ari_get("/bridges")
             if b["id"].startswith("br-queue-") and set(b["channels"]) & channels}
    return found if len(channels) == len(numbers) and sum(map(len, found.values())) == len(numbers) else None


async def saved_for_resume(process: ControllerProcess, held: dict[str, set[str]]) -> bool:
    """The live-call pictures hold each waiting caller's "queue" part in the holding bridge they are in, and the
    menu caller's "ivr" part at the menu."""
    parts = [json.loads(r["parts"]) for r in rows(process, "SELECT parts FROM live_call_pictures")]
    in_queue = [p["queue"] for p in parts if "queue" in p]
    at_menu = [p["ivr"] for p in parts if p.get("ivr", {}).get("node") == "menu"]
    return len(in_queue) == CALLERS and {q.get("bridge") for q in in_queue} == set(held) and len(at_menu) == 1


async def waiting_calls_count(process: ControllerProcess, count: int) -> list[dict[str, Any]] | None:
    calls = await waiting_calls(process)
    return calls if len(calls) >= count else None


async def menu_entered(process: ControllerProcess) -> bool:
    return bool(rows(process, "SELECT 1 FROM call_events WHERE kind = 'node' AND detail LIKE '%\"menu\"%'"))


def queue_visits(process: ControllerProcess) -> list[dict[str, Any]]:
    return rows(process, "SELECT * FROM queue_calls ORDER BY enqueued_at")


@pytest.mark.parametrize("answer_after_ms", [6000, 1500])
async def test_a_ring_in_progress_at_a_sigkill_is_settled(answer_after_ms: int, fresh_asterisk: Path,
                                                          tmp_path: Path, stop_after: list[ControllerProcess]) -> None:
    """The agent's phone rings when the controller dies. Still ringing when the new process takes over
    (answers at 6 s): it goes on ringing and its answer connects the caller. Answered while no process was
    there (1.5 s): Asterisk cannot put the leg into the application, the leg is gone, and RONA rules apply:
    the agent goes not ready (no_answer), the caller keeps their place and is served by the next agent."""
    first, phone, caller = await one_call_to_a_ready_agent(tmp_path, stop_after, QUEUE_DID,
                                                          Phone(15001, answer_after_ms=answer_after_ms, hold_ms=1500))
    await until(lambda: part_saved(first, "ring"), 10, "the ring saved")
    first.kill()
    if answer_after_ms < 3000:
        await asyncio.sleep(3)  # the phone answers while no controller is there
    second = await started_again(first, stop_after)
    if answer_after_ms < 3000:
        _, agent = await second.api("GET", "/api/agents/1001")
        assert (agent["state"], agent["reason"]) == ("not_ready", "no_answer"), agent
        assert len(await waiting_calls(second)) == 1  # the caller keeps their place
        phone.kill()
        phone = Phone(15001, answer_after_ms=300, hold_ms=1500, calls=1, timeout_s=60)
        await phone.start()
        status, body = await second.api("POST", "/api/agents/1001/ready")
        assert status == 200, body
    result = await caller.wait()
    assert result.ok, result.errors
    (visit,) = queue_visits(second)
    offers = json.loads(visit["offers"])
    assert (visit["outcome"], visit["agent_id"]) == ("answered", "1001"), visit
    if answer_after_ms < 3000:
        assert [o["result"] for o in offers] == ["no_answer", "answered"], offers
    else:
        assert [o["result"] for o in offers] == ["answered"], offers
        assert offers[0]["ring_seconds"] >= 5  # one ring, spanning the restart
    phone.kill()


async def part_saved(process: ControllerProcess, part: str) -> bool:
    return bool(rows(process, "SELECT 1 FROM live_call_pictures WHERE json_extract(parts, '$.' || ?) IS NOT NULL",
                     part))


async def one_call_to_a_ready_agent(tmp_path: Path, stop_after: list[ControllerProcess], did: str,
                                    phone: Phone) -> tuple[ControllerProcess, Phone, Caller]:
    """A controller with agent 1001 ready on `phone`, and one caller to `did` staying on the line."""
    process = ControllerProcess(tmp_path / "data", config=config(tmp_path))
    stop_after.append(process)
    await process.start()
    await phone.start()
    status, body = await process.api("POST", "/api/agents/1001/login", json={"ready": True})
    assert status == 200, body
    caller = Caller(did, caller="13900139000", steps=[WaitForBye(60_000)])
    await caller.start()
    return process, phone, caller


async def test_after_a_resumed_talk_the_flow_goes_on(fresh_asterisk: Path, tmp_path: Path,
                                                     stop_after: list[ControllerProcess]) -> None:
    """A call talking with an agent when the controller is SIGKILLed: after the new process resumed the
    talk and the agent hung up, the caller's flow goes on from its queue node's `answered` route."""
    first, phone, caller = await one_call_to_a_ready_agent(tmp_path, stop_after, TALK_DID,
                                                          Phone(15001, answer_after_ms=200, hold_ms=7000))
    await until(lambda: part_saved(first, "talk"), 10, "the talk saved")
    first.kill()
    second = await started_again(first, stop_after)
    result = await caller.wait()
    assert result.ok, result.errors
    await asyncio.sleep(0.5)
    events = [json.loads(r["detail"] or "{}") | {"kind": r["kind"]}
              for r in rows(second, "SELECT * FROM call_events ORDER BY id")]
    resumed = [e for e in events if e["kind"] == "flow_resumed"]
    assert resumed and (resumed[0]["node"], resumed[0]["after"]) == ("queue", "talk"), events
    after = events[events.index(resumed[0]):]
    assert [e.get("node") for e in after if e["kind"] == "node"] == ["thanks", "bye"]
    (visit,) = queue_visits(second)
    assert (visit["outcome"], visit["agent_id"]) == ("answered", "1001")
    phone.kill()


async def test_position_announcements_keep_their_beat_across_a_restart(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:
    """A waiting caller hears their position every 6 s; the controller is SIGKILLed 2 s after one: the new
    process announces next on the same beat (6 s after the last one), not at once."""
    first = ControllerProcess(tmp_path / "data", config=config(tmp_path, announce_interval=6))
    stop_after.append(first)
    await first.start()
    status, body = await first.api("POST", "/api/agents/1001/login", json={"ready": False})
    assert status == 200, body
    caller = Caller(QUEUE_DID, caller="13900139000", steps=[Pause(16_000)])
    await caller.start()
    await until(lambda: announcements(first), 10, "the first announcement")
    await asyncio.sleep(2)
    first.kill()
    second = await started_again(first, stop_after)
    result = await caller.wait()
    assert result.ok, result.errors
    times = await announcements(second)
    assert len(times) >= 2, times
    assert times[1] - times[0] == pytest.approx(6, abs=1.0), times


async def announcements(process: ControllerProcess) -> list[float]:
    return [r["at"] for r in rows(process, "SELECT at FROM call_events WHERE kind = 'announcement' ORDER BY id")]


async def test_a_waiting_caller_sent_to_the_fallback_while_no_controller_ran(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:
    """A caller taken out of the application while no controller runs (as the takeover guard does, here by
    ARI `continue` into the fallback context): the new process closes their queue visit as overflowed to
    `fallback` (never abandoned) and the call as `fallback`."""
    first = ControllerProcess(tmp_path / "data", config=config(tmp_path))
    stop_after.append(first)
    await first.start()
    status, body = await first.api("POST", "/api/agents/1001/login", json={"ready": False})
    assert status == 200, body
    caller = Caller(QUEUE_DID, caller="13900139000", steps=[Pause(12_000)])
    await caller.start()
    await until(lambda: waiting_calls_count(first, 1), 10, "the caller waiting")
    await asyncio.sleep(0.5)
    first.kill()
    (channel,) = [c for c in await ari_get("/channels") if c["caller"]["number"] == "13900139000"]
    async with aiohttp.ClientSession(headers=ARI_HEADERS) as http, http.post(
            f"{ARI}/channels/{channel['id']}/continue",
            params={"context": "ccc-fallback", "extension": QUEUE_DID, "priority": "1"}) as response:
        assert response.status == 204, await response.text()
    second = await started_again(first, stop_after)
    await asyncio.sleep(1.0)
    (visit,) = queue_visits(second)
    assert (visit["outcome"], visit["overflow_target"]) == ("overflowed", "fallback"), visit
    (call,) = rows(second, "SELECT * FROM calls")
    assert call["end_reason"] == "fallback", call
    caller.kill()


async def started_again(first: ControllerProcess, stop_after: list[ControllerProcess]) -> ControllerProcess:
    """A new controller process on the same data and configuration (the previous one is gone)."""
    second = ControllerProcess(first.data_dir, config=first.config)
    stop_after.append(second)
    await second.start()
    return second


async def test_a_menu_caller_resumes_in_a_changed_flow_at_the_node_of_the_same_id(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:
    """The flow is changed while no controller runs (an upgrade): the caller goes on at the node of the
    same id in the new version (its new prompt), and their key works there."""
    first = ControllerProcess(tmp_path / "data", config=config(tmp_path))
    stop_after.append(first)
    await first.start()
    caller = Caller(MENU_DID, caller="13700137000", steps=[Pause(10_000), Dtmf("1"), WaitForBye(30_000)])
    await caller.start()
    await until(lambda: menu_entered(first), 10, "the caller in the menu")
    await asyncio.sleep(0.5)
    first.kill()
    flow = tmp_path / "flows" / "menuq.yaml"
    flow.write_text(flow.read_text().replace("请按一", "新菜单，请按一"))
    await started_again(first, stop_after)
    result = await caller.wait()
    assert result.ok, result.errors
    second = stop_after[-1]
    await second.wait_for_records(1)
    events = [json.loads(r["detail"] or "{}") | {"kind": r["kind"]}
              for r in rows(second, "SELECT * FROM call_events ORDER BY id")]
    (resumed,) = [e for e in events if e["kind"] == "flow_resumed"]
    assert (resumed["node"], resumed["how"]) == ("menu", "same_node"), events
    after = events[events.index(resumed):]
    assert [e.get("node") for e in after if e["kind"] == "node"][:2] == ["menu", "one"]
