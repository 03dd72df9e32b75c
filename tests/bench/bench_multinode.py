"""Several Asterisk servers: the set-up time of a call whose agent's phone is on another node.

A caller on node a (SIPp) waits in a queue; agent 1001's phone is on node a, agent 1002's on node b
(dialled through the `ccc-node-b` trunk). Each round one agent is ready and the other logged out; the
set-up time is the controller's own stamps: the caller's call record starting (StasisStart) to the
`bridged` event (caller and agent in the talk bridge on node a), with the phone answering at once and no
agent-number announcement. Run inside a network namespace: `/work/bin/ccc-ns NAME .venv/bin/python -m
tests.bench bench_multinode`.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from controller.plugins.cti.resources import WsFanOut
from controller.plugins.cti.services import CtiEvent, EventBus, EventFilter
from tests.e2e.conftest import REPO, ControllerProcess, demo_config
from tests.sipp import Caller, Phone, WaitForBye

sys.path.insert(0, str(REPO / "tools"))
import sandbox

from tests.e2e.nodes import B_ADDRESS, set_up_two_nodes, tear_down_two_nodes

ROUNDS = int(os.environ.get("CCC_BENCH_ROUNDS", "10"))
DID = "4008006002"
FLOW = f"""
flow: nodebench
language: zh
dids: ["{DID}"]
nodes:
  queue: {{type: queue, queue: general, answered: bye, otherwise: bye}}
  bye: {{type: hangup}}
"""


class _Toolbar:
    """An agent toolbar's /ws connection as the fan-out sees it (resources._Client), writing nowhere."""

    def __init__(self, agent_id: str) -> None:
        self.filter = EventFilter.parse(None, agent_id=agent_id)
        self.live, self.last, self.frames, self.written = True, 0, [], 0

    def flush(self) -> None:
        self.frames.clear()
        self.written = self.last

    def fall_behind(self) -> None:
        raise AssertionError("a toolbar fell behind")


async def fan_out_cost(subscribers: int, events: int = 200) -> float:
    """CPU milliseconds to hand one CTI event to `subscribers` agent toolbars (the /ws fan-out filters each event
    for every client and frames it once for those it matches): the controller's per-event cost at that many
    agents."""
    bus = EventBus(None, time.time)  # type: ignore[arg-type]  # _fan_out touches no store
    fan_out = WsFanOut(bus)
    fan_out.clients = {_Toolbar(f"{n:04d}") for n in range(subscribers)}  # type: ignore[misc]
    bus.listeners.append(fan_out._deliver)
    started = time.process_time()
    for seq in range(1, events + 1):
        data = {"state": "ready"}
        agent = f"{seq % subscribers:04d}"
        text = json.dumps({"seq": seq, "type": "agent.state_changed", "at": time.time(), "call_id": None,
                           "agent_id": agent, "queue": None, "data": data})
        bus._fan_out([CtiEvent(seq, "agent.state_changed", time.time(), None, agent, None, data, text=text)])
        await asyncio.sleep(0)  # other tasks run between events, as they do live
    return (time.process_time() - started) / events * 1000


def ms(values: list[float]) -> str:
    return (f"median {statistics.median(values) * 1000:.1f} ms, max {max(values) * 1000:.1f} ms"
            f" (n={len(values)})")


async def set_up_times(process: ControllerProcess, agent_id: str, phone: Phone) -> list[float]:
    await phone.start()
    status, body = await process.api("POST", f"/api/agents/{agent_id}/login", json={"ready": True})
    assert status == 200, body
    before = {r["call_id"] for r in await process.call_records()}
    for _ in range(ROUNDS):
        result = await Caller(DID, steps=[WaitForBye(20000)]).run()
        assert result.ok, result.output + result.errors
        await asyncio.sleep(0.3)  # after-call work is 0 s: ready for the next one
    await phone.wait()
    await process.api("POST", f"/api/agents/{agent_id}/logout")
    times = []
    for record in await process.call_records():
        if record["call_id"] in before:
            continue
        events = (await process.call_record(record["call_id"]))["events"]
        bridged = next(e["at"] for e in events if e["kind"] == "bridged")
        times.append(bridged - record["started_at"])
    return times


async def run() -> None:
    for subscribers in (500, 5000):
        cost = await fan_out_cost(subscribers)
        print(f"CTI fan-out to {subscribers} agent toolbars: {cost:.2f} ms CPU per event"
              f" (at most {1000 / cost:.0f} events/s on one core)")
    sandbox.start()
    nodes = set_up_two_nodes()
    data = Path(tempfile.mkdtemp(prefix="ccc-bench-nodes-"))
    flows = data / "flows"
    flows.mkdir()
    (flows / "nodebench.yaml").write_text(FLOW)
    agents = [{"id": "1001", "name": "A", "number": "1001", "endpoint": "a/8001", "queues": {"general": 0}},
              {"id": "1002", "name": "B", "number": "1002", "endpoint": "b/8002", "queues": {"general": 0}}]
    config = demo_config(data, ivr={"flows_dir": str(flows)}, nodes=nodes.nodes_config(),
                         acd={"queues": [{"name": "general", "wrapup_seconds": 0, "announce_interval": 0,
                                          "announce_agent_number": False, "no_agents": "wait"}],
                              "agents": agents})
    process = ControllerProcess(data / "data", config=config, env={"CCC_LOG_LEVEL": "warning"})
    await process.start()
    try:
        local = await set_up_times(process, "1001", Phone(15001, answer_after_ms=0, hold_ms=300, calls=ROUNDS))
        phone_b = Phone(15002, answer_after_ms=0, hold_ms=300, calls=ROUNDS)
        phone_b.local_ip = B_ADDRESS
        remote = await set_up_times(process, "1002", phone_b)
        print(f"caller on a, phone on a: StasisStart -> bridged {ms(local)}")
        print(f"caller on a, phone on b (through the trunk): StasisStart -> bridged {ms(remote)}")
        print(f"cross-node cost: {(statistics.median(remote) - statistics.median(local)) * 1000:+.1f} ms (median)")
        (events,) = process.rows("SELECT count(*) AS n FROM cti_events")
        print(f"CTI events per queued call (agent logins and logouts included): {events['n'] / (2 * ROUNDS):.1f}")
    finally:
        process.terminate()
        tear_down_two_nodes(nodes)


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
