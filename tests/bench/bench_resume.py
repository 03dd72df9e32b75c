"""Resume after a crash on the real Asterisk: how long until a new controller process owns every live call.

200 live calls in mixed states (CCC_BENCH_RESUME_CALLS): 5 talking with agents (the demo's five SIPp phones,
staying on the line), callers waiting in a queue (agents all busy) and callers listening to an IVR menu.
The controller is SIGKILLed and started again on the same data. Printed: the time from the new process's
start to every call owned again (`active_calls` of /api/status, and the waiting callers back in the queue),
and the CPU seconds the new process had used by then (interpreter start and imports included).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import yaml

from tests.bench.bench_calls import cpu_seconds
from tests.e2e.conftest import REPO, ControllerProcess, hang_up_everything
from tests.e2e.test_resume_waiting import FLOWS, MENU_DID, QUEUE_DID
from tests.sipp import Caller, Phone, WaitForBye

sys.path.insert(0, str(REPO / "tools"))
import sandbox

CALLS = int(os.environ.get("CCC_BENCH_RESUME_CALLS", "200"))
TALKING = 5  # the demo's phones 8001-8005
IVR_SHARE = 0.4  # of the calls not talking
RATE = int(os.environ.get("CCC_BENCH_RESUME_RATE", "40"))
def write_config(root: Path, flows: dict[str, str]) -> Path:
    """The demo configuration with these flows, the five demo agents in one queue `general` (no wrap-up,
    no announcements, callers wait when nobody is ready)."""
    flows_dir = root / "flows"
    flows_dir.mkdir(parents=True)
    for name, text in flows.items():
        (flows_dir / f"{name}.yaml").write_text(text)
    config = yaml.safe_load((REPO / "demo" / "controller.yaml").read_text())
    config["ivr"]["flows_dir"] = str(flows_dir)
    agents = [{"id": f"100{i}", "name": f"A{i}", "number": f"100{i}", "endpoint": f"800{i}", "queues": {"general": 0}}
              for i in range(1, TALKING + 1)]
    config["acd"] = {"center_name": "演示热线", "agents": agents, "queues": [
        {"name": "general", "wrapup_seconds": 0, "ring_timeout": 10, "max_wait": 3600, "announce_interval": 0,
         "no_agents": "wait", "announce_agent_number": False}]}
    path = root / "controller.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    return path


async def status(process: ControllerProcess) -> tuple[int, int, bool]:
    """(live calls owned, callers waiting in the queue, ARI connected); -1 while the process does not answer."""
    body = await process.status()
    if body is None:
        return -1, -1, False
    code, queue = await process.api("GET", "/api/queues/general")
    waiting = len(queue["calls"]) if code == 200 else -1
    return int(body.get("active_calls", -1)), waiting, bool(body.get("ari_connected"))


async def until(check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise RuntimeError("the calls did not reach the expected state")


async def run() -> None:
    sandbox.start()
    await hang_up_everything()
    data_dir = Path(tempfile.mkdtemp(prefix="ccc-bench-resume-"))
    config = write_config(data_dir, FLOWS)
    env = {"CCC_LOG_LEVEL": "warning"}
    first = ControllerProcess(data_dir / "data", config=config, env=env)
    await first.start()
    phones = [Phone(15000 + i, answer_after_ms=200, calls=1, timeout_s=600) for i in range(1, TALKING + 1)]
    callers: list[Caller] = []
    second: ControllerProcess | None = None
    try:
        for phone in phones:
            await phone.start()
        for i in range(1, TALKING + 1):
            await first.api("POST", f"/api/agents/100{i}/login", json={"ready": True})
        ivr = int((CALLS - TALKING) * IVR_SHARE)
        queued = CALLS - ivr
        for did, count in ((QUEUE_DID, queued), (MENU_DID, ivr)):
            caller = Caller(did, steps=[WaitForBye(600_000)], calls=count, rate=RATE, timeout_s=700)
            caller.extra += ["-l", str(count)]
            await caller.start()
            callers.append(caller)
        waiting = queued - TALKING

        async def all_up() -> bool:
            active, in_queue, _ = await status(first)
            return active >= CALLS and in_queue >= waiting
        await until(all_up, 60 + CALLS / RATE * 2)
        await asyncio.sleep(1.0)  # the last transitions reach the store
        first.kill()
        second = ControllerProcess(data_dir / "data", config=config, env=env)
        started = time.monotonic()
        await second.start(wait=False)
        assert second.process is not None
        owned_at = back_at = connected_at = None
        while time.monotonic() - started < 60 and (owned_at is None or back_at is None):
            active, in_queue, connected = await status(second)
            now = time.monotonic() - started
            if connected_at is None and connected:
                connected_at = now
            if owned_at is None and active >= CALLS:
                owned_at = now
            if back_at is None and in_queue >= waiting:
                back_at = now
            await asyncio.sleep(0.02)
        cpu = cpu_seconds(second.process.pid)
        await asyncio.sleep(1.0)
        with sqlite3.connect(second.db) as db:
            failed = db.execute("SELECT COUNT(*) FROM call_events WHERE kind = 'resume_failed'").fetchone()[0]
        by_state = (await second.status() or {}).get("calls_by_state")
        print(f"{CALLS} live calls: {TALKING} talking, {waiting} waiting in a queue, {ivr} in an IVR menu; SIGKILL,"
              f" then a new process")
        print(f"every call owned again {owned_at if owned_at is not None else float('nan'):.2f} s after the process"
              f" start (target < 2 s); the waiting callers back in the queue at"
              f" {back_at if back_at is not None else float('nan'):.2f} s")
        print(f"(of which: the process answering with ARI connected at {connected_at or float('nan'):.2f} s;"
              f" load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
        print(f"CPU used by the new process by then: {cpu:.2f} s (interpreter start and imports included)")
        print(f"calls by state after the resume: {by_state}; calls that could not be resumed: {failed}")
    finally:
        for caller in callers:
            caller.kill()
        for phone in phones:
            phone.kill()
        await hang_up_everything()
        for process in (first, second):
            if process is not None:
                process.terminate()


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
