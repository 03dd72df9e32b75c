"""The IVR and the ACD on the real Asterisk: SIPp callers pressing keys (RFC 2833), SIPp agent phones."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ControllerProcess, demo_config
from tests.sipp import Caller, Dtmf, Pause, Phone, WaitForBye

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
HOTLINE = "4008001234"
ACD_DID = "4008005555"

ACD_FLOW = f"""
flow: acdtest
language: zh
dids: ["{ACD_DID}"]
nodes:
  queue: {{type: queue, queue: general, answered: bye, overflow: overflowed, otherwise: bye}}
  overflowed: {{type: play, prompts: ["坐席繁忙"], next: bye}}
  bye: {{type: hangup}}
"""

AGENTS = [
    {"id": "1001", "name": "王芳", "number": "1001", "endpoint": "8001", "queues": {"general": 0}},
    {"id": "1002", "name": "李娜", "number": "1002", "endpoint": "8002", "queues": {"general": 0}},
]


def flows_dir(tmp_path: Path, hours: str) -> Path:
    """The demo flows (business hours replaced, so tests do not depend on the time of day) + a queue flow."""
    target = tmp_path / "flows"
    target.mkdir()
    for source in (REPO / "ivr_flows").glob("*.yaml"):
        text = source.read_text().replace('hours: {daily: ["08:00-22:00"]}', f"hours: {hours}")
        (target / source.name).write_text(text)
    (target / "acdtest.yaml").write_text(ACD_FLOW)
    return target


async def start_controller(tmp_path: Path, *, hours: str = "always", env: dict[str, str] | None = None,
                           **queue: Any) -> ControllerProcess:
    general = {"name": "general", "wrapup_seconds": 2, "ring_timeout": 4, "max_wait": 60, "announce_interval": 0,
               "no_agents": "wait", **queue}
    config = demo_config(tmp_path, ivr={"flows_dir": str(flows_dir(tmp_path, hours))},
                         acd={"center_name": "演示热线", "queues": [general], "agents": AGENTS})
    process = ControllerProcess(tmp_path / "data", config=config, env=env)
    await process.start()
    return process


@pytest.fixture
async def stop_after() -> AsyncIterator[list[ControllerProcess]]:
    """The controllers a test appends: all stopped after it, then their logs' tails printed (a log that cannot be
    read, or a controller restarted on the same log, stops none of them)."""
    processes: list[ControllerProcess] = []
    yield processes
    for process in processes:
        process.terminate()
    for log in dict.fromkeys(process.log for process in processes):
        with contextlib.suppress(OSError):
            print(log.read_text(errors="replace")[-3000:])


def rows(process: ControllerProcess, sql: str, *params: Any) -> list[dict[str, Any]]:
    return process.rows(sql, *params)


async def events_of(process: ControllerProcess, call_id: str) -> list[dict[str, Any]]:
    record = await process.call_record(call_id)
    return list(record["events"])


def kinds(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e.get("detail", e) | {"kind": e["kind"]} for e in events if e["kind"] == kind]


async def login(process: ControllerProcess, agent_id: str, ready: bool = True) -> None:
    status, body = await process.api("POST", f"/api/agents/{agent_id}/login", json={"ready": ready})
    assert status == 200, body


async def test_bill_inquiry_reads_the_balance_back(fresh_asterisk: Path, demo_backend: str, tmp_path: Path,
                                                   stop_after: list[ControllerProcess]) -> None:
    process = await start_controller(tmp_path)
    stop_after.append(process)
    caller = Caller(HOTLINE, caller="13800138000",
                    steps=[Pause(2500), Dtmf("2"), Pause(14000), Dtmf("2"), WaitForBye(20000)])
    result = await caller.run()
    assert result.ok, result.output + result.errors
    (record,) = await process.wait_for_records(1)
    events = await events_of(process, record["call_id"])
    nodes = [e["node"] for e in kinds(events, "node")]
    assert nodes == ["greeting", "hours", "customer", "main_menu", "bill_lookup", "bill_read", "bill_menu",
                     "goodbye"]
    # Both keys were taken (the second one ends the call from the bill menu, not the menu's timeouts).
    assert [(e["node"], e["value"]) for e in kinds(events, "input")] == [("main_menu", "2"), ("bill_menu", "2")]
    prompts = [e["text"] for e in kinds(events, "prompt")]
    assert "money zh '380.00'" in prompts and "date zh '2026-12-01'" in prompts
    assert record["end_reason"] in ("controller_hangup", "caller_hangup")


async def test_wrong_key_three_times_reaches_the_default_route(
        fresh_asterisk: Path, demo_backend: str, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:
    process = await start_controller(tmp_path)
    stop_after.append(process)
    # Each wrong key is pressed while the menu prompt plays (barge-in), after the "invalid" prompt.
    caller = Caller(HOTLINE, steps=[Pause(8000), Dtmf("6"), Pause(5000), Dtmf("7"), Pause(5000), Dtmf("8"),
                                    Pause(7000)])
    result = await caller.run()
    assert result.ok, result.output + result.errors
    (record,) = await process.wait_for_records(1)
    nodes = [e["node"] for e in kinds(await events_of(process, record["call_id"]), "node")]
    assert nodes[:5] == ["greeting", "hours", "customer", "main_menu", "general"]
    queued = rows(process, "SELECT * FROM queue_calls")
    assert [(q["queue"], q["outcome"]) for q in queued] == [("general", "abandoned")]


async def test_after_hours_voicemail_is_stored(fresh_asterisk: Path, demo_backend: str, tmp_path: Path,
                                               stop_after: list[ControllerProcess]) -> None:
    process = await start_controller(tmp_path, hours='{daily: []}')  # closed every day
    stop_after.append(process)
    # The key answers the after-hours menu (keys during a prompt that cannot be interrupted do not count).
    caller = Caller(HOTLINE, steps=[Pause(18000), Dtmf("1"), Pause(10000)])
    result = await caller.run()
    assert result.ok, result.output + result.errors
    (record,) = await process.wait_for_records(1)
    nodes = [e["node"] for e in kinds(await events_of(process, record["call_id"]), "node")]
    assert nodes == ["greeting", "hours", "after_hours", "after_hours_menu", "voicemail"]
    await asyncio.sleep(1)
    (voicemail,) = rows(process, "SELECT * FROM ivr_records WHERE kind = 'voicemail'")
    payload = json.loads(voicemail["payload"])
    assert voicemail["call_id"] == record["call_id"]
    # The record's payload is the call event's detail, one text (encoded once for both).
    assert [e["detail"] for e in rows(process, "SELECT detail FROM call_events WHERE kind = 'voicemail'")] \
        == [voicemail["payload"]]
    recording = fresh_asterisk / "var/spool/asterisk/recording" / f"{payload['recording']}.wav"
    assert recording.exists()  # the SIPp caller sends no audio: a WAV header and no samples


@pytest.mark.both_engines
async def test_longest_idle_agent_number_acw_then_ready(fresh_asterisk: Path, tmp_path: Path, store_env: dict[str, str],
                                                        stop_after: list[ControllerProcess]) -> None:
    process = await start_controller(tmp_path, env=store_env)
    stop_after.append(process)
    # Agents stay on the line past the agent-number announcement (about 4 s) before hanging up.
    phones = [Phone(15001, answer_after_ms=300, hold_ms=7000, calls=2),
              Phone(15002, answer_after_ms=300, hold_ms=7000, calls=1)]
    for phone in phones:
        await phone.start()
    await login(process, "1001")
    await asyncio.sleep(0.2)
    await login(process, "1002")
    first = Caller(ACD_DID, steps=[WaitForBye(60_000)])
    await first.start()
    await asyncio.sleep(2.5)
    second = Caller(ACD_DID, steps=[WaitForBye(60_000)])
    await second.start()
    for result in (await first.wait(), await second.wait()):
        assert result.ok, result.errors
    for _ in range(50):  # wrap-up is 2 s, then ready again by itself
        _status, agent = await process.api("GET", "/api/agents/1001")
        if agent["state"] == "ready":
            break
        await asyncio.sleep(0.1)
    assert agent["state"] == "ready", agent
    third = Caller(ACD_DID, steps=[WaitForBye(60_000)])
    assert (await third.run()).ok
    visits = rows(process, "SELECT * FROM queue_calls ORDER BY id")
    assert [(v["agent_id"], v["outcome"]) for v in visits] == [("1001", "answered"), ("1002", "answered"),
                                                              ("1001", "answered")]
    records = await process.wait_for_records(3)
    events = await events_of(process, visits[0]["call_id"])
    order = [e["kind"] for e in events if e["kind"] in ("announcement", "bridged")]
    assert order == ["announcement", "bridged"]
    assert "幺零零幺号为您服务" in kinds(events, "announcement")[0]["text"]
    states = [r["state"] for r in rows(process, "SELECT state FROM agent_states WHERE agent_id = '1001' ORDER BY id")]
    assert states[:6] == ["ready", "ringing", "talking", "acw", "ready", "ringing"]
    # Each agent's ACW lasted the queue's whole wrap-up (2 s), no less, and ended by itself.
    for agent_id in ("1001", "1002"):
        history = rows(process, "SELECT at, state, previous FROM agent_states WHERE agent_id = ? ORDER BY id", agent_id)
        wrapups = [(row, after) for row, after in itertools.pairwise(history) if row["state"] == "acw"]
        assert wrapups, history
        for acw, after in wrapups:
            assert (after["state"], after["previous"]) == ("ready", "acw")
            # Late only by load; early by at most uvloop's timer granularity (libuv's loop time is in whole
            # milliseconds and cached per loop iteration: a 2 s timer may fire ~1 ms before 2 s of wall clock).
            assert 1.99 <= after["at"] - acw["at"] < 4.0, (agent_id, after["at"] - acw["at"])
    assert len(records) == 3
    for phone in phones:
        phone.kill()


async def test_rona_goes_to_the_next_agent(fresh_asterisk: Path, tmp_path: Path,
                                           stop_after: list[ControllerProcess]) -> None:
    process = await start_controller(tmp_path)
    stop_after.append(process)
    sleepy = Phone(15001, answer_after_ms=20000)
    awake = Phone(15002, answer_after_ms=300, hold_ms=6000)
    await sleepy.start()
    await awake.start()
    await login(process, "1001")
    await asyncio.sleep(0.2)
    await login(process, "1002")
    caller = Caller(ACD_DID, steps=[WaitForBye(60_000)])
    assert (await caller.run()).ok
    (visit,) = rows(process, "SELECT * FROM queue_calls")
    offers = json.loads(visit["offers"])
    assert [(o["agent_id"], o["result"]) for o in offers][-1] == ("1002", "answered")
    assert offers[0]["agent_id"] == "1001" and offers[0]["result"] != "answered"
    _status, agent = await process.api("GET", "/api/agents/1001")
    assert (agent["state"], agent["reason"]) == ("not_ready", "no_answer")
    sleepy.kill()
    awake.kill()


async def test_abandon_overflow_and_position_announcements(fresh_asterisk: Path, tmp_path: Path,
                                                           stop_after: list[ControllerProcess]) -> None:
    process = await start_controller(tmp_path, max_wait=8, overflow="voicemail", announce_interval=3)
    stop_after.append(process)
    await login(process, "1001", ready=False)
    first = Caller(ACD_DID, steps=[WaitForBye(60_000)])  # waits until the maximum wait: overflow
    await first.start()
    await asyncio.sleep(1.5)
    second = Caller(ACD_DID, caller="13900139000", steps=[Pause(5000)])  # hangs up while waiting
    assert (await second.run()).ok
    assert (await first.wait()).ok
    visits = rows(process, "SELECT * FROM queue_calls ORDER BY id")
    assert [v["outcome"] for v in visits] == ["overflowed", "abandoned"]
    assert visits[0]["overflow_target"] == "voicemail" and visits[0]["wait_seconds"] >= 7.5
    assert 4 <= visits[1]["wait_seconds"] <= 7
    announcements = kinds(await events_of(process, visits[1]["call_id"]), "announcement")
    assert announcements and announcements[0]["position"] == 2
    assert "您前面还有1位客户" in announcements[0]["text"]
    await process.wait_for_records(2)
    shutil.rmtree(tmp_path / "flows", ignore_errors=True)
