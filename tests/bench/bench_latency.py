"""Latencies that callers and agents feel, and loading a big flow.

- Loading and validating an IVR flow of 1,000 nodes (pure, no Asterisk).
- On the real Asterisk, with SIPp: the controller's added latency from a DTMF event to the next
  playback request (the `dtmf` and `prompt` call events, both stamped by the controller), and the
  time from an agent going ready (the API request) to their phone ringing (AMI `Newstate`
  Ringing for the agent's channel, taken as it arrives).
Medians and maxima over a few calls: these machines are noisy.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from panoramisk import Manager

from controller.ivr.flow import load_flows
from tests.e2e.conftest import REPO, ControllerProcess, demo_config
from tests.sipp import Caller, Dtmf, Pause, Phone, WaitForBye

sys.path.insert(0, str(REPO / "tools"))
import sandbox

ROUNDS = int(os.environ.get("CCC_BENCH_ROUNDS", "5"))
MENU_DID, QUEUE_DID = "4008006001", "4008006002"

FLOWS = {
    "menubench.yaml": f"""
flow: menubench
language: en
dids: ["{MENU_DID}"]
nodes:
  menu: {{type: menu, prompt: ["sound:silence/1"], options: {{"1": after}}, timeout: 8, retries: 1, default: bye}}
  after: {{type: play, prompts: ["sound:beep"], next: bye}}
  bye: {{type: hangup}}
""",
    "queuebench.yaml": f"""
flow: queuebench
language: zh
dids: ["{QUEUE_DID}"]
nodes:
  queue: {{type: queue, queue: general, answered: bye, otherwise: bye}}
  bye: {{type: hangup}}
""",
}


def big_flow(nodes: int) -> str:
    lines = ["flow: big", "language: zh", 'dids: ["4008009999"]', "variables: {count: 0}", "nodes:"]
    for i in range(nodes - 1):
        kind = i % 4
        nxt = f"n{i + 1}"
        if kind == 0:
            lines.append(f'  n{i}: {{type: play, prompts: ["第{i}步"], next: {nxt}}}')
        elif kind == 1:
            lines.append(f'  n{i}: {{type: menu, prompt: ["请按1"], options: {{"1": {nxt}, "2": n0}},'
                         f" timeout: 5, retries: 2, default: {nxt}}}")
        elif kind == 2:
            lines.append(f"  n{i}: {{type: set, values: {{count: 'count + 1'}}, next: {nxt}}}")
        else:
            lines.append(f"  n{i}: {{type: switch, cases: [{{when: 'count > 100', next: {nxt}}}], default: {nxt}}}")
    lines.append(f"  n{nodes - 1}: {{type: hangup}}")
    return "\n".join(lines) + "\n"


def bench_flow_load() -> None:
    folder = Path(tempfile.mkdtemp(prefix="ccc-bench-flow-"))
    path = folder / "big.yaml"
    path.write_text(big_flow(1000))
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        flows, errors = load_flows([path])
        runs.append(time.perf_counter() - started)
        assert len(flows) == 1 and len(flows[0].nodes) == 1000 and not errors, errors
    print(f"load + validate a 1,000-node flow: median {statistics.median(runs) * 1000:.0f} ms"
          f" (best {min(runs) * 1000:.0f} ms)")


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:.1f} ms, max {max(values) * 1000:.1f} ms (n={len(values)})"


async def dtmf_to_playback(process: ControllerProcess) -> list[float]:
    latencies = []
    for _ in range(ROUNDS):
        await Caller(MENU_DID, steps=[Pause(400), Dtmf("1"), Pause(1500)]).run()
    await asyncio.sleep(1)
    with sqlite3.connect(process.db) as db:
        by_call: dict[str, list[tuple[float, str]]] = {}
        for call_id, at, kind in db.execute("SELECT call_id, at, kind FROM call_events ORDER BY id"):
            by_call.setdefault(call_id, []).append((at, kind))
    for events in by_call.values():
        # The menu's "input" row is written as the key arrives (keys are not stored one by one).
        dtmf = next((at for at, kind in events if kind == "input"), None)
        prompt = next((at for at, kind in events if kind == "prompt" and dtmf is not None and at >= dtmf), None)
        if dtmf is not None and prompt is not None:
            latencies.append(prompt - dtmf)
    return latencies


async def ready_to_ringing(process: ControllerProcess) -> list[float]:
    manager = Manager(host="127.0.0.1", port=5038, username="ccc", secret="ccc-demo-ami")
    ringing: asyncio.Queue[float] = asyncio.Queue()

    def on_newstate(_manager: Manager, event: dict[str, str]) -> None:
        if event.get("ChannelStateDesc") == "Ringing" and event.get("Channel", "").startswith("PJSIP/8001-"):
            ringing.put_nowait(time.perf_counter())

    manager.register_event("Newstate", on_newstate)
    await manager.connect()
    latencies = []
    try:
        for _ in range(ROUNDS):
            phone = Phone(15001, answer_after_ms=300, hold_ms=300)
            await phone.start()
            await process.api("POST", "/api/agents/1001/login", json={"ready": False})
            caller = Caller(QUEUE_DID, steps=[WaitForBye(20000)])
            await caller.start()
            await asyncio.sleep(1.5)  # the caller waits in the queue, nobody ready
            started = time.perf_counter()
            status, body = await process.api("POST", "/api/agents/1001/ready")
            assert status == 200, body
            async with asyncio.timeout(10):
                latencies.append(await ringing.get() - started)
            await caller.wait()
            phone.kill()
            await process.api("POST", "/api/agents/1001/logout")
    finally:
        manager.close()
    return latencies


async def run() -> None:
    bench_flow_load()
    sandbox.start()
    data = Path(tempfile.mkdtemp(prefix="ccc-bench-latency-"))
    flows = data / "flows"
    flows.mkdir()
    for name, text in FLOWS.items():
        (flows / name).write_text(text)
    config = demo_config(data, ivr={"flows_dir": str(flows)},
                         acd={"queues": [{"name": "general", "wrapup_seconds": 0, "announce_interval": 0,
                                          "announce_agent_number": False, "no_agents": "wait"}],
                              "agents": [{"id": "1001", "name": "A", "number": "1001", "endpoint": "8001",
                                          "queues": {"general": 0}}]})
    process = ControllerProcess(data / "data", config=config, env={"CCC_LOG_LEVEL": "warning"})
    await process.start()
    try:
        print(f"DTMF event -> next playback request (controller): {ms(await dtmf_to_playback(process))}")
        print(f"agent ready (API) -> agent's phone ringing: {ms(await ready_to_ringing(process))}")
    finally:
        process.terminate()


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
