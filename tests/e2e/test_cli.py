"""ccctl against the live controller and Asterisk, and when they are down."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import ADMIN_TOKEN, ControllerProcess
from tests.sipp import Caller, Pause

pytestmark = pytest.mark.e2e


def ccctl(*args: str, url: str = "http://127.0.0.1:1") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "controller.cli.main", "--url", url, "--token", ADMIN_TOKEN,
                           *args], capture_output=True, text=True, timeout=60)


async def test_status_text_and_json(controller: ControllerProcess) -> None:
    text = await asyncio.to_thread(ccctl, "status", url=controller.url)
    assert text.returncode == 0, text.stderr
    assert "ARI stream  connected" in text.stdout and "reachable, 22." in text.stdout
    assert "agents      logged_out" in text.stdout and "general 0 waiting" in text.stdout
    assert "trunks      " in text.stdout and "loopback-trunk" in text.stdout
    data = json.loads((await asyncio.to_thread(ccctl, "status", "--json", url=controller.url)).stdout)
    assert data["asterisk"]["reachable"] is True and data["asterisk"]["version"].startswith("22.")
    assert data["controller"]["ari_connected"] is True
    assert sum(data["agents_by_state"].values()) == 5 and data["queues"]["general"]["waiting"] == 0
    calls = await asyncio.to_thread(ccctl, "calls", url=controller.url)
    assert calls.returncode == 0 and "no active calls" in calls.stdout
    calls_json = json.loads((await asyncio.to_thread(ccctl, "calls", "--json", url=controller.url)).stdout)
    assert calls_json["active"] == [] and isinstance(calls_json["recent"], list)
    trunks = json.loads((await asyncio.to_thread(ccctl, "trunks", "--json", url=controller.url)).stdout)
    assert "loopback-trunk" in {t["name"] for t in trunks["pjsip"]}


async def test_tail_shows_the_live_events(controller: ControllerProcess) -> None:
    tail = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller.cli.main", "--url", controller.url, "--token", ADMIN_TOKEN,
        "tail", "--types", "call.*", "--count", "2", "--json", stdout=asyncio.subprocess.PIPE)
    await asyncio.sleep(1.0)
    assert (await Caller("4008001234", steps=[Pause(1000)]).run()).ok
    stdout, _ = await asyncio.wait_for(tail.communicate(), 20)
    events = [json.loads(line) for line in stdout.decode().splitlines()]
    assert [e["type"] for e in events] == ["call.offered", "call.ended"]


@pytest.mark.parametrize("command", [["status"], ["calls"], ["trunks"], ["tail", "--count", "1"],
                                     ["status", "--json"], ["agents"], ["queues", "--json"],
                                     ["agent", "ready", "1001"], ["report"], ["report", "--json"],
                                     ["recordings", "list"], ["recordings", "show", "1"], ["flows", "reload"],
                                     ["audit"], ["config", "export"], ["config", "reload"], ["agents", "list"],
                                     ["agents", "add", "1009", "--name", "x"], ["queues", "edit", "general",
                                                                                "--wrapup", "3"]])
def test_commands_fail_clearly_when_the_controller_is_down(command: list[str], tmp_path: Path) -> None:
    result = ccctl(*command)
    assert result.returncode == 2
    assert "cannot reach the controller at http://127.0.0.1:1" in result.stderr


async def test_agent_commands_agents_and_queues_survive_a_restart(controller: ControllerProcess) -> None:
    url = controller.url
    login = await asyncio.to_thread(ccctl, "agent", "login", "1003", "--phone", "8004", url=url)
    assert login.returncode == 0, login.stderr
    assert "agent 1003" in login.stdout and ": ready on 8004" in login.stdout
    pause = await asyncio.to_thread(ccctl, "agent", "pause", "1003", "--reason", "meal", "--json", url=url)
    assert json.loads(pause.stdout)["state"] == "not_ready" and json.loads(pause.stdout)["reason"] == "meal"
    bad = await asyncio.to_thread(ccctl, "agent", "pause", "1003", "--reason", "nap", url=url)
    assert bad.returncode == 1 and "nap" in bad.stderr  # not a configured reason: nothing changed
    unknown = await asyncio.to_thread(ccctl, "agent", "ready", "9999", url=url)
    assert unknown.returncode == 1 and "9999" in unknown.stderr
    table = await asyncio.to_thread(ccctl, "agents", url=url)
    line = next(row for row in table.stdout.splitlines() if row.startswith("1003"))
    assert "not_ready" in line and "meal" in line and "8004" in line
    queues = json.loads((await asyncio.to_thread(ccctl, "queues", "--json", url=url)).stdout)
    assert {q["name"] for q in queues["queues"]} >= {"general", "orders"}
    assert "service level" in (await asyncio.to_thread(ccctl, "queues", url=url)).stdout

    # A restarted controller comes back with the agent logged in, in the same state.
    controller.terminate()
    await controller.start()
    after = json.loads((await asyncio.to_thread(ccctl, "agents", "--json", url=controller.url)).stdout)
    agent = next(a for a in after["agents"] if a["id"] == "1003")
    assert (agent["state"], agent["reason"], agent["endpoint"]) == ("not_ready", "meal", "8004")
    logout = await asyncio.to_thread(ccctl, "agent", "logout", "1003", url=controller.url)
    assert logout.returncode == 0 and "logged_out" in logout.stdout
