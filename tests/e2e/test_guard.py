"""The guard (ccc-guard) on the real Asterisk: when no controller comes back within the takeover
timeout, waiting and IVR callers reach the fallback route; talking calls are never touched; while a
controller is healthy it does nothing (issue 13, item 3)."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import REPO, ControllerProcess, ari_get, hang_up_everything
from tests.e2e.test_call_control import wait_for_state
from tests.e2e.test_ivr_acd import ACD_DID, HOTLINE, login, start_controller
from tests.sipp import Caller, Pause, Phone

pytestmark = pytest.mark.e2e
TAKEOVER = 3.0  # seconds, instead of the 30 s default
TALKING, WAITING, IVR, HELD = "13800000001", "13800000002", "13800000003", "13800000004"


class GuardProcess:
    def __init__(self, controller: ControllerProcess, log: Path) -> None:
        self.log = log
        env = {**controller.env, "CCC_TAKEOVER_TIMEOUT": str(TAKEOVER)}
        with log.open("wb") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "controller.guard", "--config",
                                             str(controller.config)], env=env, stdout=out,
                                            stderr=subprocess.STDOUT, cwd=REPO)

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after 10 s (its exit status then says so: -9)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


@pytest.fixture
async def cleanup() -> AsyncIterator[list[Any]]:
    """SIPp processes, the controller and the guard this test started: stopped whatever happens."""
    things: list[Any] = []
    yield things
    for thing in things:  # all stopped before any log is read: one unreadable log stops no process
        if isinstance(thing, ControllerProcess):
            thing.terminate()
        elif isinstance(thing, GuardProcess):
            thing.stop()
    for thing in things:
        if isinstance(thing, ControllerProcess | GuardProcess):
            print(thing.log.read_text(errors="replace")[-3000:])
    # The calls are still up (the talking and held ones by design): end them while the SIPp phones still
    # answer. A phone killed first never answers Asterisk's BYE, which Asterisk then repeats for 32 s
    # (SIP timer F) to that port, where the next test's phone on the same port takes it for a call:
    # SIPp aborts it ("unexpected BYE"), counts its one call (-m 1) as done and answers no offer.
    await hang_up_everything()
    deadline = time.monotonic() + 10
    while await ari_get("/channels") and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # the phones' 200 OK to the last BYEs
    for thing in things:
        if not isinstance(thing, ControllerProcess | GuardProcess):
            thing.kill()


async def channels_by_caller() -> dict[str, dict[str, Any]]:
    """The three callers' channels (agent legs carry the caller's number too: left out)."""
    return {c["caller"]["number"]: c for c in await ari_get("/channels") if c["caller"]["number"] in
            (TALKING, WAITING, IVR, HELD) and not c["dialplan"]["app_data"].startswith("ccc,leg,")}


async def bridges_of(channel_id: str) -> list[str]:
    return [b["id"] for b in await ari_get("/bridges") if channel_id in b["channels"]]


async def wait_for(what: str, check: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"not in time: {what}")


async def test_guard_moves_waiting_and_ivr_callers_after_the_takeover_timeout_and_leaves_talking_calls(
        fresh_asterisk: Path, demo_backend: str, tmp_path: Path, cleanup: list[Any]) -> None:
    controller = await start_controller(tmp_path)
    cleanup.append(controller)
    phone = Phone(15001, answer_after_ms=300)  # agent 1001's phone: stays on the line until a BYE
    await phone.start()
    cleanup.append(phone)
    await login(controller, "1001")
    talking = Caller(ACD_DID, caller=TALKING, steps=[Pause(60000)])  # a BYE before 60 s fails this SIPp
    await talking.start()
    cleanup.append(talking)

    async def talk_bridge() -> dict[str, Any] | None:
        for bridge in await ari_get("/bridges"):
            if bridge["id"].startswith("br-talk-") and len(bridge["channels"]) == 2:
                return bridge  # type: ignore[no-any-return]
        return None

    bridge = await wait_for("the caller talks to agent 1001", talk_bridge)
    # A second conversation, on hold: the caller waits in a holding bridge of the call (br-hold-*) with
    # music, while agent 1002's leg stays in the call's talk bridge. A talking call too: never touched.
    held_phone = Phone(15002, answer_after_ms=300)
    await held_phone.start()
    cleanup.append(held_phone)
    await login(controller, "1002")
    held = Caller(ACD_DID, caller=HELD, steps=[Pause(60000)])
    await held.start()
    cleanup.append(held)
    held_call = (await wait_for_state(controller, "1002", "talking"))["current_call"]

    async def put_on_hold() -> bool:  # refused (409) until the agent-number announcement is over and they talk
        status, body = await controller.api("POST", f"/api/calls/{held_call}/hold")
        return status == 200 and body["state"] == "held"

    # The announcement lasts 6.4 s, but up to three times that on a loaded machine (Asterisk's media threads
    # starved of CPU: 19.7 s was seen with the CI's load); each request waits 10 s for the call to take it.
    await wait_for("the second call is on hold", put_on_hold, timeout=60)
    waiting = Caller(ACD_DID, caller=WAITING, steps=[Pause(60000)])  # nobody else is ready: it waits
    ivr = Caller(HOTLINE, caller=IVR, steps=[Pause(60000)])  # the hotline's greeting and menu
    for caller in (waiting, ivr):
        await caller.start()
        cleanup.append(caller)

    async def settled() -> dict[str, dict[str, Any]] | None:
        found = await channels_by_caller()
        # (Both new callers in Stasis: under load the IVR caller may still be in the dialplan's first step.)
        if len(found) == 4 and all(found[n]["dialplan"]["app_name"] == "Stasis" for n in (WAITING, IVR)) \
                and any(b.startswith("br-queue-") for b in await bridges_of(found[WAITING]["id"])):
            return found
        return None

    before = await wait_for("a caller waits in the queue, one is in the IVR", settled)
    assert before[IVR]["dialplan"]["app_name"] == "Stasis" and await bridges_of(before[IVR]["id"]) == []

    guard = GuardProcess(controller, tmp_path / "guard.log")
    cleanup.append(guard)
    # A healthy controller: the guard leaves everything alone, well past the takeover timeout. (Counted from its
    # first check: a guard still starting up, as on a loaded machine, would see nothing and prove nothing.)
    await wait_for("the guard sees the controller", lambda: _log_has(guard, "controller is up"), timeout=30)
    await asyncio.sleep(TAKEOVER + 2.5)
    now = await channels_by_caller()
    assert {number: c["dialplan"]["context"] for number, c in now.items()} == {
        TALKING: "ccc-inbound", WAITING: "ccc-inbound", IVR: "ccc-inbound", HELD: "ccc-inbound"}
    assert all(c["dialplan"]["app_name"] == "Stasis" for c in now.values())
    assert "moved to the fallback route" not in guard.log.read_text()

    controller.kill()  # SIGKILL, and no controller comes back
    killed_at = time.time()

    async def moved() -> dict[str, dict[str, Any]] | None:
        found = await channels_by_caller()
        if all(found.get(n, {}).get("dialplan", {}).get("context") == "ccc-fallback" for n in (WAITING, IVR)):
            return found
        return None

    # (ARI may answer the guard's listing slowly under load: it retries every second.)
    after = await wait_for("the waiting and IVR callers reach the fallback route", moved, timeout=TAKEOVER + 30)
    # Not before the takeover timeout, counted from the guard's last healthy check, which came shortly before the
    # kill (it checks every second; its log says when it last saw the controller up).
    last_up, moves = guard_timeline(guard.log.read_text())
    assert len(moves) == 2 and all(at >= last_up + TAKEOVER - 0.002 for at in moves), (last_up, moves)
    assert killed_at - TAKEOVER - 2.5 < last_up < killed_at + 1, (last_up, killed_at)
    for number in (WAITING, IVR):
        assert after[number]["id"] == before[number]["id"]
        variable = await ari_get(f"/channels/{after[number]['id']}/variable?variable=CCC_FALLBACK")
        assert variable["value"] == "no-controller"
    # The waiting caller left the queue's holding bridge (empty now, for the next controller); the held
    # caller is still in their call's own.
    holding = {b["name"]: b["channels"] for b in await ari_get("/bridges") if b["id"].startswith("br-hold-")}
    assert holding == {held_call: [before[HELD]["id"]]}, holding
    assert [b["channels"] for b in await ari_get("/bridges") if b["id"].startswith("br-queue-")] == [[]]
    # The talking pair: still in Stasis, still in the same bridge together, nobody got a BYE.
    await asyncio.sleep(2)
    still = {b["id"]: b for b in await ari_get("/bridges")}
    assert bridge["id"] in still and sorted(still[bridge["id"]]["channels"]) == sorted(bridge["channels"])
    assert after[TALKING]["dialplan"]["context"] == "ccc-inbound"
    assert (await channels_by_caller())[TALKING]["dialplan"]["app_name"] == "Stasis"
    assert talking.process is not None and talking.process.returncode is None, "the talking caller got a BYE"
    assert phone.process is not None and phone.process.returncode is None, "the agent's phone got a BYE"
    # The call on hold: the caller still in its holding bridge, agent 1002 still in the talk bridge.
    held_now = (await channels_by_caller())[HELD]
    assert held_now["id"] == before[HELD]["id"] and held_now["dialplan"]["app_name"] == "Stasis"
    legs = {c["id"] for c in await ari_get("/channels") if c["dialplan"]["app_data"] == f"ccc,leg,{held_call}"}
    assert [b for b in await ari_get("/bridges") if b["id"].startswith("br-talk-") and len(b["channels"]) == 1
            and set(b["channels"]) <= legs], "agent 1002 left the held call's talk bridge"
    assert held_now["id"] in [c for b in await ari_get("/bridges") if b["name"] == held_call for c in b["channels"]]
    assert held.process is not None and held.process.returncode is None, "the held caller got a BYE"
    assert held_phone.process is not None and held_phone.process.returncode is None
    log = guard.log.read_text()
    assert log.count("moved to the fallback route") == 2, log
    assert guard.stop() == 0


async def test_guard_says_when_its_ami_user_may_not_move_calls(controller: ControllerProcess, tmp_path: Path) -> None:
    # The controller's own AMI user has no write permission `call`; the guard's user has it.
    for user, secret, complaint in (("ccc", "ccc-demo-ami", True), ("ccc-guard", "ccc-demo-guard", False)):
        controller.env.update(CCC_GUARD_AMI_USER=user, CCC_GUARD_AMI_SECRET=secret)
        guard = GuardProcess(controller, tmp_path / f"guard-{user}.log")
        try:
            await wait_for("the guard checked", lambda g=guard: _log_has(g, "controller is up"), timeout=15)
        finally:
            assert guard.stop() == 0
        log = guard.log.read_text()
        assert ("lacks write permission `call`" in log) is complaint, log


async def _log_has(guard: GuardProcess, text: str) -> bool:
    return text in guard.log.read_text()


def guard_timeline(log: str) -> tuple[float, list[float]]:
    """From the guard's log: when it last saw the controller up (its warning says how long before), and when
    it moved each caller (Unix times, from the log lines' local timestamps)."""
    def at(line: str) -> float:
        return datetime.strptime(line[:23], "%Y-%m-%dT%H:%M:%S.%f").timestamp()

    lines = log.splitlines()
    gone = [line for line in lines if "no controller owns ARI application" in line][-1]
    ago = re.search(r"last seen up ([0-9.]+) s ago", gone)
    assert ago is not None, gone  # it had seen the controller up before
    return at(gone) - float(ago.group(1)), [at(line) for line in lines if "moved to the fallback route" in line]


async def test_guard_without_its_ami_secret_refuses_to_start(tmp_path: Path) -> None:
    env = {**os.environ, "CCC_GUARD_AMI_SECRET": ""}
    process = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "controller.guard", "--config", str(REPO / "demo/controller.yaml")],
        env=env, capture_output=True, text=True, timeout=30, cwd=REPO)
    assert process.returncode == 2 and "guard.ami_secret" in process.stderr
    bad = {**os.environ, "CCC_TAKEOVER_TIMEOUT": "0"}
    process = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "controller.guard", "--config", str(REPO / "demo/controller.yaml")],
        env=bad, capture_output=True, text=True, timeout=30, cwd=REPO)
    assert process.returncode == 2 and "takeover_timeout" in process.stderr, process.stderr


async def test_the_guards_ari_user_can_only_read(fresh_asterisk: Path) -> None:
    auth = {"Authorization": "Basic " + base64.b64encode(b"ccc-guard:ccc-demo-guard-ari").decode()}
    async with aiohttp.ClientSession(headers=auth) as http:
        async with http.get("http://127.0.0.1:8088/ari/bridges") as response:
            assert response.status == 200
        async with http.post("http://127.0.0.1:8088/ari/bridges/br-guard-test") as response:
            assert response.status == 403
    assert "br-guard-test" not in [b["id"] for b in await ari_get("/bridges")]
