"""Workforce management against the real controller and Asterisk: a schedule imported with ccctl, real-time
adherence in the API and on the wallboard (headless Chromium) as the agent logs in and goes ready, and
`ccctl forecast` planning from the store's own queue records."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from controller.reports import erlang
from tests.browser import Browser
from tests.e2e.conftest import ADMIN_TOKEN, ControllerProcess, demo_config
from tests.e2e.test_call_control import wait_for_state
from tests.e2e.test_ivr_acd import ACD_DID, flows_dir
from tests.sipp import Caller, Pause, Phone

pytestmark = pytest.mark.e2e
SUPERVISOR_TOKEN = "demo-supervisor-token"
WFM = {"history_days": 14, "holdout_days": 2, "holidays": "CN", "adherence_grace_seconds": 1}
QUEUE = {"name": "general", "wrapup_seconds": 2, "ring_timeout": 4, "max_wait": 60, "announce_interval": 0,
         "announce_agent_number": False, "no_agents": "wait"}
AGENTS = [{"id": agent, "name": name, "number": agent, "endpoint": f"800{agent[-1]}", "queues": {"general": 0}}
          for agent, name in (("1001", "王芳"), ("1002", "李娜"), ("1003", "张伟"))]


def ccctl(process: ControllerProcess, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "controller.cli.main", "--url", process.url, "--token", ADMIN_TOKEN,
                           *args], capture_output=True, text=True, timeout=120, input=stdin)


@pytest.fixture
async def wfm_controller(fresh_asterisk: Path, tmp_path: Path) -> Any:
    config = demo_config(tmp_path, wfm=WFM, ivr={"flows_dir": str(flows_dir(tmp_path, "always"))},
                         acd={"queues": [QUEUE], "agents": AGENTS})
    process = ControllerProcess(tmp_path / "data", config=config)
    await process.start()
    try:
        yield process
    finally:
        process.terminate()
        print(process.log.read_text()[-3000:])


async def adherence_of(process: ControllerProcess, agent_id: str) -> dict[str, Any]:
    status, body = await process.api("GET", "/api/adherence", token=SUPERVISOR_TOKEN)
    assert status == 200, body
    return next(row for row in body["agents"] if row["agent_id"] == agent_id)


async def wait_adherence(process: ControllerProcess, agent_id: str, status: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    row: dict[str, Any] = {}
    while time.monotonic() < deadline:
        row = await adherence_of(process, agent_id)
        if row["status"] == status:
            return row
        await asyncio.sleep(0.2)
    raise AssertionError(f"{agent_id}: expected {status}, have {row}")


def local(moment: float) -> str:
    return datetime.fromtimestamp(moment).strftime("%Y-%m-%d %H:%M")


async def test_an_agent_on_shift_but_logged_out_is_out_of_adherence_until_ready(wfm_controller: ControllerProcess,
                                                                                  tmp_path: Path) -> None:
    process = wfm_controller
    now = time.time()
    schedule = tmp_path / "shifts.csv"
    schedule.write_text(f"agent_id,start,end,activity\n1001,{local(now - 3600)},{local(now + 7 * 3600)},work\n"
                        f"1003,{local(now + 3600)},{local(now + 9 * 3600)},work\n")
    result = await asyncio.to_thread(ccctl, process, "shifts", "import", str(schedule))
    assert result.returncode == 0 and "2 shifts added" in result.stdout, result.stdout + result.stderr
    # A bad row refuses the whole file and changes nothing.
    status, body = await process.api("POST", "/api/shifts", json={
        "csv": f"agent_id,start,end\n1002,{local(now)},{local(now + 3600)}\n9999,{local(now)},{local(now + 3600)}\n"})
    assert status == 400 and "row 2: no agent '9999'" in body["error"], body
    status, listed = await process.api("GET", "/api/shifts", token=SUPERVISOR_TOKEN,
                                       params={"from": str(now - 7200), "to": str(now + 86400)})
    assert status == 200 and sorted(s["agent_id"] for s in listed["shifts"]) == ["1001", "1003"], listed
    # Agents may not read the schedule's adherence (supervisors only).
    status, _ = await process.api("GET", "/api/adherence", token="demo-agent-1001-token")
    assert status == 403

    # On shift and logged out: out of adherence (past the 1-second grace) …
    out = await wait_adherence(process, "1001", "out")
    assert out["scheduled"] == "work" and out["state"] == "logged_out" and out["out_since"] is not None
    # … while 1003 (shift later today, logged out) is in adherence, and 1002 (no shift) is not judged.
    assert (await adherence_of(process, "1003"))["status"] == "in"
    assert (await adherence_of(process, "1002"))["status"] == "unscheduled"
    # A shift entered as JSON (1002 at a meeting now: logged out is as scheduled), then deleted again.
    status, body = await process.api("POST", "/api/shifts", token=SUPERVISOR_TOKEN, json={"shifts": [
        {"agent_id": "1002", "start": now - 60, "end": now + 3600, "activity": "meeting"}]})
    assert (status, body) == (201, {"added": 1})
    meeting = await adherence_of(process, "1002")
    assert (meeting["status"], meeting["scheduled"]) == ("in", "meeting")
    listing = await asyncio.to_thread(ccctl, process, "shifts", "list", "--agent", "1002", "--json")
    (shift,) = json.loads(listing.stdout)["shifts"]
    deleted = await asyncio.to_thread(ccctl, process, "shifts", "delete", str(shift["id"]))
    assert deleted.returncode == 0 and f"shift {shift['id']} deleted" in deleted.stdout
    assert (await adherence_of(process, "1002"))["status"] == "unscheduled"
    assert (await process.api("DELETE", f"/api/shifts/{shift['id']}"))[0] == 404  # gone
    async with Browser() as browser:
        wallboard = await browser.open(f"{process.url}/wallboard?token={SUPERVISOR_TOKEN}&lang=en")
        cell = '#agents tr[data-agent="1001"] td.adherence'
        await wallboard.wait_for(f"document.querySelector('{cell}')?.dataset.adherence === 'out'")
        assert (await wallboard.text(cell)).startswith("OUT")
        assert await wallboard.evaluate(
            "document.querySelector('#agents tr[data-agent=\"1003\"] td.adherence').dataset.adherence") == "in"

        # Logged in but not ready: still out of adherence once the grace has passed.
        status, body = await process.api("POST", "/api/agents/1001/login", json={"ready": False})
        assert status == 200, body
        not_ready = await wait_adherence(process, "1001", "out")
        assert not_ready["state"] == "not_ready"
        # Ready: in adherence, in the API and on the wallboard.
        status, body = await process.api("POST", "/api/agents/1001/ready", json={})
        assert status == 200, body
        ready = await wait_adherence(process, "1001", "in", timeout=15)
        assert ready["state"] == "ready" and ready["out_since"] is None
        await wallboard.wait_for(f"document.querySelector('{cell}').dataset.adherence === 'in'")
        assert "OUT" not in await wallboard.text(cell)

    # Talking to a caller from the queue is on the phones too; the intraday view counts the call.
    phone = Phone(15001, answer_after_ms=300)
    await phone.start()
    caller = asyncio.create_task(Caller(ACD_DID, steps=[Pause(5000)]).run())
    await wait_for_state(process, "1001", "talking")
    talking = await adherence_of(process, "1001")
    assert (talking["status"], talking["state"]) == ("in", "talking")
    assert (await caller).ok
    await wait_for_state(process, "1001", "ready")
    intraday = json.loads((await asyncio.to_thread(ccctl, process, "intraday", "--queue", "general", "--json")).stdout)
    (current,) = [r for r in intraday["rows"] if r["start"] <= time.time() < r["start"] + 1800]
    assert current["actual_calls"] == 1 and current["actual_aht_seconds"] > 2, current
    assert current["scheduled_on_shift"] == 1  # 1001 (1003's shift starts in an hour)
    table = await asyncio.to_thread(ccctl, process, "intraday", "--queue", "general")
    assert table.returncode == 0 and "forecast" in table.stdout and "on shift" in table.stdout

    # The adherence report: 1001's scheduled time so far, only part of it in adherence.
    status, report = await process.api("GET", "/api/reports/adherence", token=SUPERVISOR_TOKEN,
                                       params={"from": str(now - 3600), "to": str(time.time())})
    assert status == 200, report
    (row,) = [r for r in report["rows"] if r["agent_id"] == "1001"]
    assert row["scheduled_seconds"] > 3000 and row["in_adherence_seconds"] < 60
    # Adherence on the command line.
    listing = await asyncio.to_thread(ccctl, process, "adherence")
    assert listing.returncode == 0 and "1001" in listing.stdout and "unscheduled" in listing.stdout


def seed_history(db: Path, days: int, per_day: int, at: tuple[int, int], talk_seconds: float) -> None:
    """Answered queue visits on each of the last `days` days, `per_day` a minute apart from `at` (local time)."""
    today = date.today()
    with sqlite3.connect(db) as connection:
        for back in range(1, days + 1):
            day = today - timedelta(back)
            start = datetime(day.year, day.month, day.day, *at).timestamp()
            for number in range(per_day):
                enqueued = start + 60 * number
                connection.execute(
                    "INSERT INTO queue_calls (call_id, queue, enqueued_at, left_at, outcome, wait_seconds, agent_id,"
                    " answered_at, talk_ended_at) VALUES (?, 'general', ?, ?, 'answered', 5, '1001', ?, ?)",
                    (f"seed-{back}-{number}", enqueued, enqueued + 5, enqueued + 5, enqueued + 5 + talk_seconds))


async def test_ccctl_forecast_plans_from_the_store_s_records(wfm_controller: ControllerProcess) -> None:
    process = wfm_controller
    seed_history(process.db, days=14, per_day=10, at=(10, 0), talk_seconds=200)
    tomorrow = (date.today() + timedelta(1)).isoformat()
    result = await asyncio.to_thread(ccctl, process, "forecast", "--queue", "general", "--start", tomorrow,
                                     "--busy-only")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "queue general: 1 day(s) from " + tomorrow in out and "Erlang C: 80% answered within 20 s" in out
    assert "accuracy on the last 2 held-out days: MAPE" in out
    assert "interval" in out and "agents" in out
    plan = json.loads((await asyncio.to_thread(ccctl, process, "forecast", "--queue", "general", "--start",
                                               tomorrow, "--json")).stdout)
    rows = {datetime.fromtimestamp(r["start"]).strftime("%H:%M"): r for r in plan["rows"]}
    busy = rows["10:00"]
    assert 7 <= busy["calls"] <= 11, busy  # ten calls every day at 10:00–10:09
    assert busy["aht_seconds"] == pytest.approx(200, rel=0.05)
    assert busy["agents"] == erlang.agents_needed(calls=busy["calls"], aht_seconds=busy["aht_seconds"]).agents >= 2
    assert busy["scheduled_agents"] == erlang.scheduled(busy["agents"], 0.3)
    assert f"{datetime.fromtimestamp(busy['start']).strftime('%m-%d')} 10:00" in out
    assert rows["03:00"]["agents"] == 0 and rows["03:00"]["calls"] < 0.5
    # CSV export: one row per interval, the same figures.
    exported = await asyncio.to_thread(ccctl, process, "forecast", "--queue", "general", "--start", tomorrow,
                                       "--format", "csv")
    table = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert len(table) == 48 and {"start", "calls", "aht_seconds", "agents", "scheduled_agents"} <= set(table[0])
    assert [int(r["agents"]) for r in table] == [r["agents"] for r in plan["rows"]]
    # A queue that does not exist is a clear error.
    missing = await asyncio.to_thread(ccctl, process, "forecast", "--queue", "nope")
    assert missing.returncode == 1 and "no queue 'nope'" in missing.stderr
    # The intraday view of today: forecast next to what happened so far (nothing today) and who was on the phones.
    intraday = json.loads((await asyncio.to_thread(ccctl, process, "intraday", "--queue", "general", "--json")).stdout)
    now_row = [r for r in intraday["rows"] if r["start"] <= time.time() < r["start"] + 1800]
    assert now_row and now_row[0]["actual_calls"] == 0 and now_row[0]["staffed"] == 0
