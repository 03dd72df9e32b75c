"""`ccctl report --json` against what a few real SIPp calls did: answered, transferred and surveyed, abandoned."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import ADMIN_TOKEN, REPO, ControllerProcess, demo_config
from tests.e2e.test_call_control import wait_for_state
from tests.e2e.test_ivr_acd import flows_dir, login, stop_after  # noqa: F401 (fixture)
from tests.sipp import Caller, Dtmf, Pause, Phone, WaitForBye

pytestmark = pytest.mark.e2e
SURVEY_DID, COMPLAINT_DID = "4008007001", "4008007002"
FLOWS = f"""
flow: reportdemo
language: zh
dids: ["{SURVEY_DID}"]
nodes:
  queue: {{type: queue, queue: general, answered: survey, otherwise: bye}}
  survey: {{type: survey, timeout: 3, retries: 1, next: bye}}
  bye: {{type: hangup}}
---
flow: complaintdemo
language: zh
dids: ["{COMPLAINT_DID}"]
nodes:
  queue: {{type: queue, queue: complaints, otherwise: bye}}
  bye: {{type: hangup}}
"""


def ccctl(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "controller.cli.main", "--url", url, "--token", ADMIN_TOKEN, *args],
                          capture_output=True, text=True, cwd=REPO, timeout=30)


@pytest.mark.both_engines
async def test_report_json_matches_the_calls(fresh_asterisk: Path, tmp_path: Path, store_env: dict[str, str],
                                             stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    flows = flows_dir(tmp_path, "always")
    for index, text in enumerate(FLOWS.split("---\n")):
        (flows / f"report{index}.yaml").write_text(text)
    queue = {"wrapup_seconds": 1, "ring_timeout": 8, "max_wait": 60, "announce_interval": 0,
             "announce_agent_number": False, "no_agents": "wait"}
    agents = [{"id": "1001", "name": "王芳", "number": "1001", "endpoint": "8001", "queues": {"general": 0}},
              {"id": "1002", "name": "李娜", "number": "1002", "endpoint": "8002", "queues": {"orders": 0}}]
    config = demo_config(tmp_path, ivr={"flows_dir": str(flows)},
                         acd={"queues": [{"name": "general", **queue}, {"name": "orders", **queue},
                                         {"name": "complaints", "category": "complaint", **queue}],
                              "agents": agents})
    process = ControllerProcess(tmp_path / "data", config=config, env=store_env)
    await process.start()
    stop_after.append(process)
    phones = [Phone(15001, answer_after_ms=300, hold_ms=3000, calls=2),
              Phone(15002, answer_after_ms=300, hold_ms=3000)]
    for phone in phones:
        await phone.start()
    await login(process, "1001")
    await login(process, "1002")

    # 1. Answered by 1001, transferred to orders, answered by 1002, then the caller rates 5.
    surveyed = Caller(SURVEY_DID, steps=[Pause(11000), Dtmf("5"), WaitForBye(30000)])
    await surveyed.start()
    call_id = (await wait_for_state(process, "1001", "talking"))["current_call"]
    status, body = await process.api("POST", f"/api/calls/{call_id}/transfer", json={"to": "queue:orders"})
    assert status == 200, body
    # 2. A complaint nobody answers: the caller gives up after 6 s (not a short abandon).
    abandoned = Caller(COMPLAINT_DID, steps=[Pause(6000)])
    assert (await abandoned.run()).ok
    assert (await surveyed.wait()).ok
    # 3. Answered by 1001 (ACW over), the agent hangs up, the caller does not rate.
    await wait_for_state(process, "1001", "ready")
    plain = Caller(SURVEY_DID, steps=[WaitForBye(40000)])
    assert (await plain.run()).ok
    await asyncio.sleep(1.5)

    result = await asyncio.to_thread(ccctl, process.url, "report", "--json", "--by", "queue")
    assert result.returncode == 0, result.stderr
    rows = {row["queue"]: row for row in json.loads(result.stdout)["rows"]}
    general, orders, complaints = rows["general"], rows["orders"], rows["complaints"]
    assert (general["offered"], general["answered"], general["transfer_rate"]) == (2, 2, 0.5)
    assert general["one_stop_rate"] == 0.5 and general["surveys"] == 0  # the survey is on the last visit
    assert (orders["offered"], orders["answered"], orders["surveys"], orders["survey_avg"]) == (1, 1, 1, 5.0)
    assert (complaints["offered"], complaints["abandoned"], complaints["abandon_rate"]) == (1, 1, 1.0)
    assert complaints["complaint_rate"] == 1.0
    total = json.loads((await asyncio.to_thread(ccctl, process.url, "report", "--json", "--by", "total")).stdout)
    (row,) = total["rows"]
    assert (row["offered"], row["answered"], row["abandoned"], row["surveys"]) == (4, 3, 1, 1)
    table = await asyncio.to_thread(ccctl, process.url, "report", "--by", "queue")
    assert table.returncode == 0 and "接通率" in table.stdout and "complaints" in table.stdout
    csv_out = await asyncio.to_thread(ccctl, process.url, "report", "--format", "csv", "--by", "agent")
    assert csv_out.stdout.splitlines()[0].startswith("interval_start,queue,agent_id")

    # The third call's screen pop showed the caller's two earlier calls (来电历史), newest first.
    _, polled = await process.api("GET", "/api/events?types=call.ringing")
    pops = [e["data"]["screen_pop"] for e in polled["events"] if e["type"] == "call.ringing"]
    assert [len(pop["history"]) for pop in pops][-1] == 2
    assert pops[-1]["history"][0]["queues"] == ["complaints"] and pops[-1]["history"][1]["agents"] == ["1001", "1002"]
    # The agent who answered leaves a disposition; another agent may not; the history shows it.
    first_call = pops[-1]["history"][1]["call_id"]
    note = {"disposition": "resolved", "notes": "查询话费，已解决"}
    status, _ = await process.api("POST", f"/api/calls/{first_call}/disposition", json=note,
                                  token="demo-agent-1001-token")
    assert status == 200
    assert (await process.api("POST", f"/api/calls/{first_call}/disposition", json=note,
                              token="demo-agent-1003-token"))[0] in (401, 403)
    assert (await process.api("POST", "/api/calls/nope/disposition", json=note))[0] == 404
    assert (await process.api("POST", f"/api/calls/{first_call}/disposition", json={"disposition": "Bad Value"}))[0] \
        == 400
    _, history = await process.api("GET", "/api/numbers/13800138000/calls?limit=5", token="demo-agent-1002-token")
    assert [c["call_id"] for c in history["calls"]][2] == first_call
    assert (history["calls"][2]["disposition"], history["calls"][2]["notes"]) == ("resolved", "查询话费，已解决")
    assert (await process.api("GET", "/api/numbers/12ab/calls"))[0] == 400
    # An agent sees only the history of numbers they have served (客户资料保密); supervisors any.
    stranger = "/api/numbers/13700137000/calls"
    assert (await process.api("GET", stranger, token="demo-agent-1002-token"))[0] == 403
    assert (await process.api("GET", stranger, token="demo-supervisor-token")) == \
        (200, {"number": "13700137000", "calls": []})
    for phone in phones:
        phone.kill()


def test_report_when_the_controller_is_down() -> None:
    result = ccctl("http://127.0.0.1:9", "report", "--json")
    assert result.returncode == 2 and "cannot reach the controller" in result.stderr
    bad = ccctl("http://127.0.0.1:9", "report", "--from", "last tuesday")
    assert bad.returncode == 2 and "is not a time" in bad.stderr
