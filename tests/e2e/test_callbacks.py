"""Callbacks on the real Asterisk (README "Callbacks"): virtual hold keeps the caller's place, agent-first
serving through the loopback trunk (the customer is a SIPp UAS on 127.0.0.1:5090), a restart in the
middle, and a busy customer retried at the configured interval until the callback lands on the list for a
person."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import test_ivr_acd
from tests.e2e.conftest import ControllerProcess, demo_config
from tests.e2e.test_resume_waiting import started_again, until, waiting_calls
from tests.sipp import Caller, Dtmf, Pause, Phone, WaitForBye

pytestmark = pytest.mark.e2e
stop_after = test_ivr_acd.stop_after  # the fixture
rows = test_ivr_acd.rows

DID = "4008007001"
FLOW = f"""
flow: cbq
language: zh
dids: ["{DID}"]
nodes:
  queue: {{type: queue, queue: general, answered: bye, otherwise: bye}}
  bye: {{type: hangup}}
"""
AGENTS = [{"id": "1001", "name": "王芳", "number": "1001", "endpoint": "8001", "queues": {"general": 0}},
          {"id": "1002", "name": "李娜", "number": "1002", "endpoint": "8002", "queues": {"general": 0}}]
#: Keep pressing 1 through the position announcement and the offer (a key during the announcement
#: does not count; one during the offer answers it).
TAKE_THE_OFFER = [Pause(3000), Dtmf("11111", gap_ms=2500), WaitForBye(60_000)]


def config(tmp_path: Path, **queue: Any) -> Path:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "cbq.yaml").write_text(FLOW)
    general = {"name": "general", "wrapup_seconds": 1, "ring_timeout": 10, "max_wait": 600, "announce_interval": 120,
               "no_agents": "wait", "announce_agent_number": False, "callback_offer_after": 300,
               "callback_order": "agent_first", "callback_retries": 1, "callback_retry_seconds": 6, **queue}
    return demo_config(tmp_path, ivr={"flows_dir": str(flows)},
                       acd={"center_name": "演示热线", "queues": [general], "agents": AGENTS})


def events(process: ControllerProcess, prefix: str) -> list[dict[str, Any]]:
    return [{**json.loads(row["data"]), "type": row["type"], "at": row["at"], "call_id": row["call_id"],
             "agent_id": row["agent_id"]}
            for row in rows(process, "SELECT * FROM cti_events WHERE type LIKE ? ORDER BY seq", f"{prefix}%")]


async def callbacks(process: ControllerProcess, status: str | None = None) -> list[dict[str, Any]]:
    code, body = await process.api("GET", "/api/callbacks" + (f"?status={status}" if status else ""))
    assert code == 200, body
    return list(body["callbacks"])


async def test_a_virtual_callback_keeps_its_place_across_a_restart_and_is_connected_agent_first(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:
    first = ControllerProcess(tmp_path / "data", config=config(tmp_path))
    stop_after.append(first)
    await first.start()
    for agent_id in ("1001", "1002"):  # logged in, not ready: the estimated wait is 180 s a caller per 2 agents
        status, body = await first.api("POST", f"/api/agents/{agent_id}/login", json={"ready": False})
        assert status == 200, body
    ahead = [f"1380013800{index}" for index in range(3)]
    on_line = []
    for position, number in enumerate(ahead, start=1):  # estimated 90-270 s, under the 300 s threshold: no offer
        caller = Caller(DID, caller=number, steps=[WaitForBye(150_000)])
        await caller.start()
        on_line.append(caller)
        await until(lambda n=position: _count(first, n), 15, f"{position} callers waiting")  # type: ignore[misc]
    keeper = Caller(DID, caller="13900139000", steps=TAKE_THE_OFFER)  # position 4: 360 s, offered
    await keeper.start()
    booked = await until(lambda: _callbacks_with(first, "waiting"), 40, "the callback booked")
    (callback,) = booked
    assert (callback["origin"], callback["number"], callback["queue"]) == ("virtual_hold", "13900139000", "general")
    await keeper.wait()  # the controller hung up on them
    later = Caller(DID, caller="13700137000", steps=[WaitForBye(150_000)])  # arrives after, stays on the line
    await later.start()
    waiting = await until(lambda: _count(first, 5), 15, "five in the queue")
    assert [c["callback"] for c in waiting] == [False, False, False, True, False], waiting
    assert waiting[3]["call_id"] == callback["call_id"]
    status, body = await first.api("GET", "/api/queues")
    assert status == 200 and (body["queues"][0]["waiting"], body["queues"][0]["callbacks_waiting"]) == (5, 1), body
    # The later caller (position 5) is offered too, and stays on the line (no key): a declined offer.
    declined = await until(lambda: _declined_offers(first), 40, "the later caller's offer declined")
    assert [e["call_id"] for e in events(first, "callback.offered")] == [callback["call_id"], declined[0]["call_id"]]
    await asyncio.sleep(0.5)  # the batched writer stores the last transitions

    first.kill()  # in the middle: the callback waits with no caller channel, three callers ahead, one behind
    second = await started_again(first, stop_after)
    waiting = await until(lambda: _count(second, 5), 20, "the five back in the queue")
    assert [c["callback"] for c in waiting] == [False, False, False, True, False], waiting
    assert waiting[3]["call_id"] == callback["call_id"]

    agent_phone = Phone(15001, answer_after_ms=300, hold_ms=2500, calls=5, timeout_s=150)
    customer = Phone(5090, answer_after_ms=800)  # answers, stays until the controller hangs up
    await agent_phone.start()
    await customer.start()
    status, body = await second.api("POST", "/api/agents/1001/ready")
    assert status == 200, body
    for caller in on_line:
        result = await caller.wait()
        assert result.ok, result.errors
    result = await later.wait()
    assert result.ok, result.errors
    result = await customer.wait()
    assert result.ok, result.output + result.errors  # the customer's phone rang, answered, and was hung up

    # Served in arrival order: the three ahead, then the callback, then the caller who came later.
    visits = rows(second, "SELECT * FROM queue_calls WHERE outcome = 'answered' ORDER BY answered_at")
    by_call = {r["call_id"]: r["caller"] for r in rows(second, "SELECT call_id, caller FROM calls")}
    assert [by_call[v["call_id"]] for v in visits] == [*ahead, "13900139000", "13700137000"], visits
    (kept,) = rows(second, "SELECT end_reason FROM calls WHERE call_id = ?", callback["call_id"])
    assert kept["end_reason"] == "callback_requested", kept  # their own call ended; the callback goes on
    (done,) = await callbacks(second, "connected")
    assert (done["attempts"], done["outcome"]) == (1, "answered") and done["connected_at"], done
    # Agent-first: the agent's phone rang with the screen pop saying "callback", then the customer was dialled.
    ringing = [e for e in events(second, "call.ringing") if e["call_id"] == callback["call_id"]]
    assert ringing and ringing[-1]["screen_pop"]["callback"] is True, ringing
    assert ringing[-1]["screen_pop"]["caller"] == "13900139000"
    dialing = events(second, "callback.dialing")
    assert [(e["agent_id"], e["attempt"], e["order"]) for e in dialing] == [("1001", 1, "agent_first")]
    assert dialing[0]["at"] >= ringing[-1]["at"]
    (connected,) = events(second, "callback.connected")
    assert connected["wait"] > 0 and connected["agent_id"] == "1001"
    customer_call = [r for r in rows(second, "SELECT * FROM call_events WHERE kind = 'customer_dialled'")]
    assert [json.loads(r["detail"])["status"] for r in customer_call] == ["ANSWER"]

    status, report = await second.api("GET", "/api/reports")
    assert status == 200, report
    row = next(r for r in report["rows"] if r.get("queue") == "general")
    assert (row["callback_offers"], row["callback_accepted"], row["callback_connected"],
            row["callback_attempts"]) == (2, 1, 1, 1), row
    assert row["callback_avg_connect_seconds"] and row["callback_avg_connect_seconds"] > 0
    agent_phone.kill()


async def test_a_busy_customer_is_retried_at_the_interval_then_listed_for_a_person(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:
    process = ControllerProcess(tmp_path / "data", config=config(tmp_path, callback_offer_after=150))
    stop_after.append(process)
    await process.start()
    status, body = await process.api("POST", "/api/agents/1001/login", json={"ready": False})
    assert status == 200, body
    keeper = Caller(DID, caller="13900139001", steps=TAKE_THE_OFFER)  # alone, 180 s estimated: offered
    await keeper.start()
    (callback,) = await until(lambda: _callbacks_with(process, "waiting"), 40, "the callback booked")
    await keeper.wait()
    agent_phone = Phone(15001, answer_after_ms=300, calls=2, timeout_s=90)  # answers, waits for the BYE
    customer = Phone(5090, answer_after_ms=300, reject=486, calls=2, timeout_s=90)  # busy, twice
    await agent_phone.start()
    await customer.start()
    status, body = await process.api("POST", "/api/agents/1001/ready")
    assert status == 200, body
    (failed,) = await until(lambda: _callbacks_with(process, "failed"), 60, "the callback on the person's list")
    assert (failed["id"], failed["attempts"], failed["outcome"]) == (callback["id"], 2, "busy"), failed
    dialing = events(process, "callback.dialing")
    assert [e["attempt"] for e in dialing] == [1, 2], dialing
    assert dialing[1]["at"] - dialing[0]["at"] >= 6  # callback_retry_seconds
    (retry,) = events(process, "callback.retry")
    assert (retry["attempt"], retry["outcome"]) == (1, "busy") and retry["due_at"] <= dialing[1]["at"] + 1
    assert [e["outcome"] for e in events(process, "callback.failed")] == ["busy"]
    assert (await callbacks(process, "waiting")) == []  # a positive check above, nothing left queued
    code, queue = await process.api("GET", "/api/queues/general")
    assert code == 200 and queue["calls"] == [], queue

    # The person calls the customer and closes it with a note; closing twice is refused.
    status, body = await process.api("POST", f"/api/callbacks/{callback['id']}/done", json={"note": "called, ok"})
    assert status == 200 and body["status"] == "done", body
    status, body = await process.api("POST", f"/api/callbacks/{callback['id']}/done", json={"note": "again"})
    assert status == 409, body
    assert (await callbacks(process, "failed")) == [] and len(await callbacks(process, "done")) == 1
    status, report = await process.api("GET", "/api/reports")
    row = next(r for r in report["rows"] if r.get("queue") == "general")
    assert (row["callback_offers"], row["callback_accepted"], row["callback_connected"],
            row["callback_attempts"]) == (1, 1, 0, 2), row

    # An agent's token: sees its queue's callbacks, books one for itself, not a personal one for a colleague.
    agent = "demo-agent-1001-token"
    status, body = await process.api("GET", "/api/callbacks", token=agent)
    assert status == 200 and [c["id"] for c in body["callbacks"]] == [callback["id"]], body
    booking = {"queue": "general", "number": "13900139001", "when": "next_morning"}
    status, body = await process.api("POST", "/api/callbacks", token=agent, json={**booking, "agent_id": "1002"})
    assert status == 403, body
    status, body = await process.api("POST", "/api/callbacks", token=agent, json={**booking, "agent_id": "1001"})
    assert status == 201 and body["status"] == "scheduled" and body["due_at"] > time.time(), body
    status, body = await process.api("POST", "/api/callbacks", json={**booking, "number": "0012025550100"})
    assert status == 409, body  # the dialing policy
    assert len(await callbacks(process, "scheduled")) == 1
    agent_phone.kill()
    customer.kill()


async def _count(process: ControllerProcess, count: int) -> list[dict[str, Any]] | None:
    calls = await waiting_calls(process)
    return calls if len(calls) >= count else None


async def _callbacks_with(process: ControllerProcess, status: str) -> list[dict[str, Any]]:
    return await callbacks(process, status)


async def _declined_offers(process: ControllerProcess) -> list[dict[str, Any]]:
    return [event for event in events(process, "callback.offered") if not event["accepted"]]


async def test_customer_first_reserves_the_agent_dials_the_customer_then_rings_the_agent(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:
    process = ControllerProcess(tmp_path / "data", config=config(tmp_path, callback_offer_after=150,
                                                                 callback_order="customer_first"))
    stop_after.append(process)
    await process.start()
    status, body = await process.api("POST", "/api/agents/1001/login", json={"ready": False})
    assert status == 200, body
    keeper = Caller(DID, caller="13900139002", steps=TAKE_THE_OFFER)
    await keeper.start()
    (callback,) = await until(lambda: _callbacks_with(process, "waiting"), 40, "the callback booked")
    await keeper.wait()
    customer = Phone(5090, answer_after_ms=1500)  # answers, stays until the controller hangs up
    agent_phone = Phone(15001, answer_after_ms=300, hold_ms=2000, timeout_s=60)
    await customer.start()
    await agent_phone.start()
    status, body = await process.api("POST", "/api/agents/1001/ready")
    assert status == 200, body
    result = await agent_phone.wait()
    assert result.ok, result.output + result.errors
    result = await customer.wait()
    assert result.ok, result.output + result.errors
    (done,) = await until(lambda: _callbacks_with(process, "connected"), 10, "the callback connected")
    assert (done["id"], done["attempts"]) == (callback["id"], 1), done
    (dialing,) = events(process, "callback.dialing")
    (connected,) = events(process, "callback.connected")
    assert dialing["order"] == "customer_first"
    # The agent was reserved (talking on the callback) before the customer was dialled; the customer's
    # leg is the call that rang the agent's phone once it answered.
    talking = [e for e in events(process, "agent.state_changed") if e["state"] == "talking"]
    assert talking and talking[0]["at"] <= dialing["at"], talking
    customer_calls = rows(process, "SELECT * FROM calls WHERE direction = 'outbound' AND did = ?", "13900139002")
    assert len(customer_calls) == 1 and customer_calls[0]["answered_at"] <= connected["at"], customer_calls
    assert connected["call_id"] == customer_calls[0]["call_id"]
    # That call is the customer's channel: the agent was its leg (rung after the customer answered), not the
    # other way round as agent-first does.
    record = await process.call_record(connected["call_id"])
    kinds = [e["kind"] for e in record["events"]]
    assert "callback" in kinds and "customer_dialled" not in kinds, kinds
    assert [e["leg"] for e in record["events"] if e["kind"] == "leg_ended"] == ["agent"], record["events"]
    ringing = [e for e in events(process, "call.ringing") if e["agent_id"] == "1001"]
    assert ringing and ringing[0]["screen_pop"]["callback"] is True
