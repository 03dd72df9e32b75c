"""Calls survive the controller (issue 13), on the real Asterisk: callers talking with agents keep talking
through a SIGKILL, and through a SIGTERM then a start (an upgrade); the new process takes every call over."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ControllerProcess, ari_get, demo_config, wait_until
from tests.e2e.test_call_control import wait_for_state
from tests.e2e.test_ivr_acd import ACD_DID, flows_dir, login, rows, stop_after  # noqa: F401 (fixture)
from tests.sipp import Caller, Pause, Phone, WaitForBye

pytestmark = pytest.mark.e2e
AGENTS = [{"id": f"100{i}", "name": f"坐席{i}", "number": f"100{i}", "endpoint": f"800{i}", "queues": {"general": 0}}
          for i in (1, 2, 3)]
#: How long each agent's phone stays on the line before it hangs up itself (spans the restart).
TALK_MS = 22_000
SUPERVISOR = "demo-supervisor-token"


def start_config(tmp_path: Path, **queue: Any) -> Path:
    general = {"name": "general", "wrapup_seconds": 5, "ring_timeout": 8, "max_wait": 60, "announce_interval": 0,
               "announce_agent_number": False, "no_agents": "wait", **queue}
    return demo_config(tmp_path, ivr={"flows_dir": str(flows_dir(tmp_path, "always"))},
                       acd={"queues": [general], "agents": AGENTS})


async def our_bridges() -> dict[str, list[str]]:
    return {b["id"]: sorted(b["channels"]) for b in await ari_get("/bridges") if b["id"].startswith("br-")}


def as_before_migration_19(db: Path) -> None:
    """The store as a controller before migration 19 leaves it: the ACD's saved state (agents, queues' durations)
    in the single acd_snapshot row, rewritten whole at each commit, the live-call picture one row per call and part
    (`live_calls`, before migration 20), the CTI events' index on time (before migration 22), and schema version 18."""
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        agents = {agent_id: json.loads(saved) for agent_id, saved in
                  conn.execute("SELECT agent_id, snapshot FROM acd_saved_agents")}
        queues: dict[str, dict[str, list[list[float]]]] = {}
        for queue, kind, ended_at, seconds in conn.execute(
                "SELECT queue, kind, ended_at, seconds FROM acd_queue_durations ORDER BY ended_at"):
            queues.setdefault(queue, {"talks": [], "rings": []})[f"{kind}s"].append([ended_at, seconds])
        pictures = list(conn.execute("SELECT call_id, parts, updated_at FROM live_call_pictures"))
        assert agents and queues and pictures, "nothing saved"
        conn.execute("INSERT INTO acd_snapshot (id, saved_at, snapshot) VALUES (1, ?, ?)",
                     (time.time(), json.dumps({"version": 1, "agents": agents, "queues": queues})))
        conn.executemany("INSERT INTO live_calls (call_id, part, data, updated_at) VALUES (?, ?, ?, ?)",
                         [(call_id, part, json.dumps(data), updated_at) for call_id, parts, updated_at in pictures
                          for part, data in json.loads(parts).items()])
        for table in ("acd_saved_agents", "acd_saved_queues", "live_call_pictures", "acd_queue_durations"):
            conn.execute(f"DROP TABLE {table}")
        conn.execute("DROP INDEX cti_events_alerts")  # (migration 22's)
        conn.execute("CREATE INDEX cti_events_at ON cti_events(at)")
        conn.execute("PRAGMA user_version = 18")


async def restart(process: ControllerProcess, how: str) -> tuple[ControllerProcess, float]:
    """Stop the controller (SIGKILL, or SIGTERM as for an upgrade; "upgrade": SIGKILL a controller whose store is as
    the one before migration 19 left it), start a new process on the same data; returns it and the seconds from its
    start until it is healthy."""
    if how in ("kill", "upgrade"):
        process.kill()
        if how == "upgrade":
            as_before_migration_19(process.db)
    else:
        assert process.terminate() == 0
        assert "leaving 3 live calls in Asterisk" in process.log.read_text()
    again = ControllerProcess(process.data_dir, config=process.config)
    started = time.monotonic()
    await again.start()
    return again, time.monotonic() - started


@pytest.mark.parametrize("how", ["kill", "term", "upgrade"])
async def test_talking_calls_survive_a_restart(fresh_asterisk: Path, tmp_path: Path, how: str,
                                               stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    process = ControllerProcess(tmp_path / "data", config=start_config(tmp_path))
    await process.start()
    stop_after.append(process)
    phones = [Phone(15001 + i, answer_after_ms=300, hold_ms=TALK_MS) for i in range(3)]
    for phone in phones:
        await phone.start()
    for agent in AGENTS:
        await login(process, agent["id"])
    callers = [Caller(ACD_DID, caller=f"1380013800{i}", steps=[WaitForBye(90_000)]) for i in range(3)]
    for caller in callers:
        await caller.start()
        await asyncio.sleep(0.3)
    calls = {agent["id"]: (await wait_for_state(process, agent["id"], "talking"))["current_call"]
             for agent in AGENTS}
    await asyncio.sleep(0.5)  # the talk parts are committed within milliseconds
    bridges = await our_bridges()
    talk_bridges = {bridge_id: channels for bridge_id, channels in bridges.items()
                    if bridge_id.startswith("br-talk-") and channels}
    assert len(talk_bridges) == 3 and all(len(channels) == 2 for channels in talk_bridges.values()), bridges
    # The pool's idle talk bridges (made ahead): the next process finds them nobody's and removes them.
    idle = {bridge_id for bridge_id, channels in bridges.items() if bridge_id.startswith("br-talk-") and not channels}
    assert idle, bridges

    process, took = await restart(process, how)
    stop_after.append(process)
    # Nothing moved: the same bridges hold the same two legs, every agent is talking on the same call.
    for agent in AGENTS:
        view = await wait_for_state(process, agent["id"], "talking", timeout=15)
        assert view["current_call"] == calls[agent["id"]]
    async def as_before() -> bool:  # (and the idle ones removed by the new process's clean-up after the resume)
        return {b: c for b, c in (await our_bridges()).items() if b.startswith("br-talk-")} == talk_bridges
    await wait_until(as_before, timeout=10)
    if how == "upgrade":  # the single row was read, then replaced by a row per agent in the first batch
        await asyncio.sleep(0.5)
        assert rows(process, "SELECT * FROM acd_snapshot") == []
        saved = {row["agent_id"]: json.loads(row["snapshot"])["state"]
                 for row in rows(process, "SELECT agent_id, snapshot FROM acd_saved_agents")}
        assert saved == dict.fromkeys(calls, "talking"), saved
        assert rows(process, "SELECT * FROM live_calls") == []  # moved: a row per call
        assert len(rows(process, "SELECT * FROM live_call_pictures")) == 3
        assert len(rows(process, "SELECT * FROM acd_queue_durations WHERE kind = 'ring'")) == 3  # the answers'
    status = await process.status()
    assert status is not None and status["active_calls"] == 3, status
    # The live counters cover the day, not the process: the 3 calls answered before the restart count.
    status_code, queue = await process.api("GET", "/api/queues/general")
    assert (queue["offered"], queue["answered"], queue["abandoned"], queue["service_level"]) == (3, 3, 0, 1.0), queue

    # Call control works on a resumed call.
    first = calls["1001"]
    status_code, body = await process.api("POST", f"/api/calls/{first}/hold")
    assert (status_code, body.get("state")) == (200, "held"), body
    assert (await wait_for_state(process, "1001", "on_hold", timeout=3))["current_call"] == first
    await asyncio.sleep(0.5)
    status_code, body = await process.api("POST", f"/api/calls/{first}/resume")
    assert status_code == 200 and body["held_for"] >= 0.4, body
    await wait_for_state(process, "1001", "talking", timeout=3)

    # The phones hang up when their time is up (none got a BYE before: their scenario would fail);
    # the agents go to after-call work and the callers hear the flow's end (a BYE).
    for phone in phones:
        result = await phone.wait()
        assert result.ok, result.output + result.errors
    for agent in AGENTS:
        await wait_for_state(process, agent["id"], "acw", timeout=10)
    for caller in callers:
        result = await caller.wait()
        assert result.ok, result.output + result.errors
    await process.wait_for_records(3)
    for agent_id, call_id in calls.items():
        (visit,) = rows(process, "SELECT answered_at, talk_ended_at, outcome, agent_id FROM queue_calls"
                        " WHERE call_id = ?", call_id)
        assert (visit["outcome"], visit["agent_id"]) == ("answered", agent_id)
        talk = visit["talk_ended_at"] - visit["answered_at"]
        assert TALK_MS / 1000 - 2 <= talk <= TALK_MS / 1000 + 5, visit  # one talk time, across the restart
        ended = rows(process, "SELECT data FROM cti_events WHERE type = 'call.ended' AND call_id = ?", call_id)
        assert len(ended) == 1, ended
        assert json.loads(ended[0]["data"])["reason"] != "lost"
        (record,) = rows(process, "SELECT ended_at, end_reason FROM calls WHERE call_id = ?", call_id)
        assert record["ended_at"] is not None and record["end_reason"] != "lost", record
    assert rows(process, "SELECT * FROM live_call_pictures") == []
    assert not [b for b, channels in (await our_bridges()).items() if not channels]
    print(f"{how}: the new process was healthy {took:.2f} s after its start")


async def test_a_recorded_call_is_one_file_across_a_restart(fresh_asterisk: Path, tmp_path: Path,
                                                           stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    """Asterisk goes on recording while no controller is there; the new process takes the recording over:
    paused before the restart, resumed after it, one file for the whole call, its index row right."""
    process = ControllerProcess(tmp_path / "data", config=start_config(tmp_path, recording="always"))
    await process.start()
    stop_after.append(process)
    phone = Phone(15001, answer_after_ms=300, hold_ms=12_000, talk=True)
    await phone.start()
    await login(process, "1001")
    caller = Caller(ACD_DID, steps=[WaitForBye(60_000)])
    await caller.start()
    call_id = (await wait_for_state(process, "1001", "talking"))["current_call"]
    await asyncio.sleep(1.0)
    status, body = await process.api("POST", f"/api/calls/{call_id}/recording/pause")
    assert (status, body["state"]) == (200, "paused"), body
    await asyncio.sleep(0.5)
    process.kill()
    await asyncio.sleep(1.0)
    process = ControllerProcess(process.data_dir, config=process.config)
    await process.start()
    stop_after.append(process)
    assert (await process.api("POST", f"/api/calls/{call_id}/recording/pause"))[0] == 409  # still paused
    status, body = await process.api("POST", f"/api/calls/{call_id}/recording/resume")
    assert (status, body["state"]) == (200, "recording"), body
    assert (await phone.wait()).ok
    assert (await caller.wait()).ok
    await process.wait_for_records(1)
    await asyncio.sleep(1.0)
    _, found = await process.api("GET", f"/api/recordings?call_id={call_id}")
    (row,) = found["recordings"]
    assert row["ended_at"] is not None and row["agents"] == ["1001"], row
    (pause,) = row["pauses"]
    assert 0.8 <= pause[0] <= 2.5 and pause[1] - pause[0] >= 2.0, row  # paused across the restart
    wav = Path(row["file"])
    seconds = float(subprocess.run(["soxi", "-D", str(wav)], capture_output=True, text=True, check=True).stdout)
    assert 10.5 <= seconds <= 14 and abs(seconds - row["duration"]) <= 1.0, (seconds, row)
    assert rows(process, "SELECT * FROM live_call_pictures") == []


async def test_a_caller_who_hangs_up_while_no_controller_runs(fresh_asterisk: Path, tmp_path: Path,
                                                             stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    """The new process closes the call: the agent left alone in the bridge is hung up and goes to after-call
    work, the record says the caller hung up (one call.ended), no bridge of ours is left."""
    process = ControllerProcess(tmp_path / "data", config=start_config(tmp_path))
    await process.start()
    stop_after.append(process)
    phone = Phone(15001, answer_after_ms=300)  # stays until it gets a BYE
    await phone.start()
    await login(process, "1001")
    caller = Caller(ACD_DID, steps=[Pause(4000)])  # hangs up itself after 4 s of talk
    await caller.start()
    call_id = (await wait_for_state(process, "1001", "talking"))["current_call"]
    await asyncio.sleep(0.5)
    process.kill()
    assert (await caller.wait()).ok
    await asyncio.sleep(0.5)
    assert [c["id"] for c in await ari_get("/channels") if c["id"].startswith("leg-agent-")]  # still up
    process = ControllerProcess(process.data_dir, config=process.config)
    await process.start()
    stop_after.append(process)
    assert (await phone.wait()).ok  # its BYE came from the new process
    await wait_for_state(process, "1001", "acw", timeout=15)
    (record,) = rows(process, "SELECT end_reason, ended_at FROM calls WHERE call_id = ?", call_id)
    assert record["end_reason"] == "caller_hangup" and record["ended_at"] is not None, record
    (visit,) = rows(process, "SELECT outcome, talk_ended_at FROM queue_calls WHERE call_id = ?", call_id)
    assert visit["outcome"] == "answered" and visit["talk_ended_at"] is not None, visit
    assert len(rows(process, "SELECT seq FROM cti_events WHERE type = 'call.ended' AND call_id = ?", call_id)) == 1
    assert rows(process, "SELECT * FROM live_call_pictures") == []
    assert await our_bridges() == {}


async def test_a_consultation_and_a_listening_supervisor_go_on_across_a_restart(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    """Call 1: the caller on hold while the agent consults a colleague, SIGKILL, the new process completes
    the consultation (caller with the colleague, agent in ACW). Call 2: a supervisor listening through a
    snoop goes on listening, then switches to barge (three-way) and stops."""
    process = ControllerProcess(tmp_path / "data", config=start_config(tmp_path))
    await process.start()
    stop_after.append(process)
    agent_phones = [Phone(15001, answer_after_ms=300), Phone(15002, answer_after_ms=300, hold_ms=20_000)]
    colleague = Phone(15003, answer_after_ms=300)  # 8003: consulted, then takes the call until the caller leaves
    supervisor = Phone(15004, answer_after_ms=300)  # 8004: until the controller hangs up
    for phone in (*agent_phones, colleague, supervisor):
        await phone.start()
    await login(process, "1001")
    first_caller = Caller(ACD_DID, caller="13800138001", steps=[Pause(16_000)])
    await first_caller.start()
    first = (await wait_for_state(process, "1001", "talking"))["current_call"]
    await login(process, "1002")
    second_caller = Caller(ACD_DID, caller="13800138002", steps=[WaitForBye(60_000)])
    await second_caller.start()
    second = (await wait_for_state(process, "1002", "talking"))["current_call"]
    status, body = await process.api("POST", f"/api/calls/{first}/consult", json={"to": "phone:8003"})
    assert (status, body["state"]) == (200, "consulting"), body
    party = body["party_channel"]
    status, watch = await process.api("POST", f"/api/calls/{second}/monitor", json={"mode": "listen", "phone": "8004"},
                                      token=SUPERVISOR)
    assert (status, watch["mode"]) == (200, "listen"), watch
    await asyncio.sleep(0.5)

    process.kill()
    process = ControllerProcess(process.data_dir, config=process.config)
    await process.start()
    stop_after.append(process)
    assert (await wait_for_state(process, "1001", "on_hold", timeout=3))["current_call"] == first
    bridges = {b["id"]: set(b["channels"]) for b in await ari_get("/bridges")}
    assert bridges[watch["monitor_bridge"]] == {watch["supervisor_channel"], watch["snoop_channel"]}
    assert any(channels == {party, agent} for channels in bridges.values()
               for agent in channels if agent.startswith("leg-agent-"))  # agent and colleague, no caller
    status, body = await process.api("POST", f"/api/calls/{first}/consult/complete")
    assert (status, body["state"]) == (200, "transferred"), body
    assert (await agent_phones[0].wait()).ok
    await wait_for_state(process, "1001", "acw")
    status, body = await process.api("POST", f"/api/calls/{second}/monitor", json={"mode": "barge"}, token=SUPERVISOR)
    assert (status, body["mode"]) == (200, "barge"), body
    assert watch["supervisor_channel"] in {c for b in await ari_get("/bridges") if b["id"] == watch["talk_bridge"]
                                           for c in b["channels"]}
    status, body = await process.api("POST", f"/api/calls/{second}/monitor", json={"mode": "stop"}, token=SUPERVISOR)
    assert (status, body["mode"]) == (200, "stop"), body
    assert (await supervisor.wait()).ok
    assert (await first_caller.wait()).ok
    assert (await colleague.wait()).ok
    assert (await agent_phones[1].wait()).ok
    assert (await second_caller.wait()).ok
    await process.wait_for_records(2)
    kinds = [e["kind"] for e in (await process.call_record(first))["events"]
             if e["kind"] in ("consult", "transfer", "held", "resumed")]
    assert kinds == ["held", "consult", "resumed", "transfer"]
    assert rows(process, "SELECT * FROM live_call_pictures") == []
    assert not [b for b, channels in (await our_bridges()).items() if not channels]


async def test_an_agents_outbound_call_is_ended_cleanly_by_the_next_process(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    """Click-to-dial is not resumed: after a SIGKILL the new process hangs up both phones (the agent's phone
    never reaches the callers' fallback route), closes the record and frees the agent."""
    process = ControllerProcess(tmp_path / "data", config=start_config(tmp_path))
    await process.start()
    stop_after.append(process)
    agent_phone = Phone(15001, answer_after_ms=300)  # both stay until they get a BYE
    customer = Phone(5090, answer_after_ms=300)
    for phone in (agent_phone, customer):
        await phone.start()
    await login(process, "1001")
    status, body = await process.api("POST", "/api/calls", json={"agent_id": "1001", "number": "13900139000"})
    assert status == 202, body
    for _ in range(50):  # the customer answered: both phones are bridged
        if any(len(b["channels"]) == 2 for b in await ari_get("/bridges")):
            break
        await asyncio.sleep(0.1)
    process.kill()
    process = ControllerProcess(process.data_dir, config=process.config)
    await process.start()
    stop_after.append(process)
    assert (await agent_phone.wait()).ok
    assert (await customer.wait()).ok
    assert not [c for c in await ari_get("/channels") if c["dialplan"]["context"] == "ccc-fallback"]
    (record,) = rows(process, "SELECT ended_at, end_reason FROM calls WHERE call_id = ?", body["call_id"])
    assert record["ended_at"] is not None and record["end_reason"] == "lost", record
    assert (await wait_for_state(process, "1001", "ready", timeout=10))["current_call"] is None
    assert await our_bridges() == {}
