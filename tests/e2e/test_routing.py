"""Timed relaxation on the real Asterisk: a call no top-level agent takes goes to a lower-level agent
when the queue's escalation step comes, and not before (SIPp caller, SIPp agent phones)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ControllerProcess, demo_config
from tests.e2e.test_ivr_acd import ACD_DID, flows_dir, login, rows, stop_after
from tests.sipp import Caller, Phone, WaitForBye

pytestmark = pytest.mark.e2e
__all__ = ["stop_after"]  # the fixture, shared with test_ivr_acd

ESCALATE_AFTER = 10.0  # seconds: only level >= 7 before, any level with the skill from then
AGENTS = [
    {"id": "1001", "name": "王芳", "number": "1001", "endpoint": "8001", "skills": {"support": 9},
     "queues": {"general": 0}},
    {"id": "1002", "name": "李娜", "number": "1002", "endpoint": "8002", "skills": {"support": 4},
     "queues": {"general": 0}},
]


async def start_escalating(tmp_path: Path) -> ControllerProcess:
    general = {"name": "general", "skills": {"support": 1}, "wrapup_seconds": 2, "ring_timeout": 3, "max_wait": 60,
               "announce_interval": 0, "no_agents": "wait",
               "escalation": [{"after": 0, "min_level": 7}, {"after": ESCALATE_AFTER, "min_level": 1}]}
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
