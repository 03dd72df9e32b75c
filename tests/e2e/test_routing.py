"""Routing on the real Asterisk (SIPp caller, SIPp agent phones): a call no top-level agent takes goes to
a lower-level agent when the queue's escalation step comes, and not before; the wait estimate callers
hear comes from measured talk times, kept across a restart in the store."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ControllerProcess, demo_config
from tests.e2e.test_ivr_acd import ACD_DID, events_of, flows_dir, kinds, login, rows, stop_after
from tests.sipp import Caller, Pause, Phone, WaitForBye

pytestmark = pytest.mark.e2e
__all__ = ["stop_after"]  # the fixture, shared with test_ivr_acd

ESCALATE_AFTER = 10.0  # seconds: only level >= 7 before, any level with the skill from then
AGENTS = [
    {"id": "1001", "name": "王芳", "number": "1001", "endpoint": "8001", "skills": {"support": 9},
     "queues": {"general": 0}},
    {"id": "1002", "name": "李娜", "number": "1002", "endpoint": "8002", "skills": {"support": 4},
     "queues": {"general": 0}},
]


async def start_escalating(tmp_path: Path, **queue: Any) -> ControllerProcess:
    general = {"name": "general", "skills": {"support": 1}, "wrapup_seconds": 2, "ring_timeout": 3, "max_wait": 60,
               "announce_interval": 0, "no_agents": "wait",
               "escalation": [{"after": 0, "min_level": 7}, {"after": ESCALATE_AFTER, "min_level": 1}], **queue}
    config = demo_config(tmp_path, ivr={"flows_dir": str(flows_dir(tmp_path, "always"))},
                         acd={"center_name": "演示热线", "queues": [general], "agents": AGENTS})
    process = ControllerProcess(tmp_path / "data", config=config)
    await process.start()
    return process


def offers_after_enqueue(visit: dict[str, Any]) -> list[tuple[str, str, float]]:
    """(agent, result, seconds after the call was queued) of each ring of the visit."""
    return [(o["agent_id"], o["result"], o["at"] - visit["enqueued_at"]) for o in json.loads(visit["offers"])]


async def test_a_call_the_top_agent_does_not_answer_goes_to_a_lower_level_at_the_escalation_time(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:
    process = await start_escalating(tmp_path)
    stop_after.append(process)
    top = Phone(15001, answer_after_ms=20000)  # rings, never answered in time
    lower = Phone(15002, answer_after_ms=300, hold_ms=3000)
    await top.start()
    await lower.start()
    await login(process, "1001")
    await login(process, "1002")
    caller = Caller(ACD_DID, steps=[WaitForBye(40000)])
    result = await caller.run()
    top.kill()
    lower.kill()
    assert result.ok, result.output + result.errors
    (visit,) = rows(process, "SELECT * FROM queue_calls")
    assert (visit["outcome"], visit["agent_id"]) == ("answered", "1002")
    offers = offers_after_enqueue(visit)
    assert [(agent, outcome) for agent, outcome, _ in offers] == [("1001", "no_answer"), ("1002", "answered")]
    assert offers[0][2] < 1.5  # the top agent rang at once...
    # ...the lower-level one, ready all along, only from the escalation step on (not after the RONA at 3 s)
    assert ESCALATE_AFTER - 0.1 <= offers[1][2] < ESCALATE_AFTER + 1.5, offers
    assert ESCALATE_AFTER <= visit["wait_seconds"] < ESCALATE_AFTER + 4, visit
    states = [r["state"] for r in rows(process, "SELECT state FROM agent_states WHERE agent_id = '1002' ORDER BY id")]
    assert states[:3] == ["ready", "ringing", "talking"]  # no other ring before


async def test_a_call_while_the_top_agent_is_not_ready_waits_for_the_escalation_time(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:
    process = await start_escalating(tmp_path)
    stop_after.append(process)
    lower = Phone(15002, answer_after_ms=300, hold_ms=3000)
    await lower.start()
    await login(process, "1001", ready=False)
    await login(process, "1002")
    caller = Caller(ACD_DID, steps=[WaitForBye(40000)])
    await caller.start()
    await asyncio.sleep(ESCALATE_AFTER - 3)
    _status, waiting = await process.api("GET", "/api/agents/1002")
    assert waiting["state"] == "ready", waiting  # not rung while only level 7+ qualify
    result = await caller.wait()
    lower.kill()
    assert result.ok, result.output + result.errors
    (visit,) = rows(process, "SELECT * FROM queue_calls")
    assert (visit["outcome"], visit["agent_id"]) == ("answered", "1002")
    ((agent, outcome, at),) = offers_after_enqueue(visit)
    assert (agent, outcome) == ("1002", "answered")
    assert ESCALATE_AFTER - 0.1 <= at < ESCALATE_AFTER + 1.5, at
    assert ESCALATE_AFTER <= visit["wait_seconds"] < ESCALATE_AFTER + 4, visit


async def agent_state(process: ControllerProcess, agent_id: str, wanted: str, timeout: float = 15) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        _status, agent = await process.api("GET", f"/api/agents/{agent_id}")
        if agent["state"] == wanted:
            return
        assert asyncio.get_running_loop().time() < deadline, agent
        await asyncio.sleep(0.2)


async def test_the_wait_estimate_uses_talk_times_measured_before_a_restart(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:
    """A short call is measured; the controller restarts; a caller waiting behind a call just answered
    hears "less than a minute" (the measured talk of seconds), not the two minutes of the default."""
    first = await start_escalating(tmp_path, announce_interval=30)
    stop_after.append(first)
    quick = Phone(15001, answer_after_ms=300, hold_ms=3000)
    await quick.start()
    await login(first, "1001")
    assert (await Caller(ACD_DID, steps=[WaitForBye(60_000)]).run()).ok
    quick.kill()
    await agent_state(first, "1001", "ready")  # after the wrap-up: the snapshot holds the measured talk
    first.terminate()
    second = ControllerProcess(first.data_dir, config=first.config)
    stop_after.append(second)
    await second.start()
    await agent_state(second, "1001", "ready")
    busy = Phone(15001, answer_after_ms=300, hold_ms=15000)
    await busy.start()
    talking = Caller(ACD_DID, steps=[WaitForBye(40000)])
    await talking.start()
    await agent_state(second, "1001", "talking")
    assert (await Caller(ACD_DID, caller="13900139000", steps=[Pause(4000)]).run()).ok
    for _ in range(50):  # the caller's hang-up reaches the store
        visits = rows(second, "SELECT * FROM queue_calls ORDER BY id")
        if visits[-1]["outcome"] is not None:
            break
        await asyncio.sleep(0.1)
    assert [v["outcome"] for v in visits] == ["answered", "answered", "abandoned"], visits
    (announcement, *_) = kinds(await events_of(second, visits[-1]["call_id"]), "announcement")
    assert "您是下一位，预计等待不到1分钟" in announcement["text"], announcement  # default: 大约2分钟
    await talking.wait()
    busy.kill()
