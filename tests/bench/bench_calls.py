"""Call throughput on the real Asterisk: the controller against a minimal ARI app, same run.

Both handle the same call — StasisStart, answer, play one second of silence, PlaybackFinished,
hang up — placed by SIPp at fixed rates. Printed per rate: calls that failed, and CPU seconds per
call of the handling process (its CPU clock: `cpu_seconds`). The minimal app (what
../shared/harness.md measured at ~1.4 ms/call) is the ceiling to compare with: machines here are
noisy, so read the ratio, not the absolute numbers.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.e2e.conftest import REPO, ControllerProcess, hang_up_everything
from tests.sipp import Caller, WaitForBye

sys.path.insert(0, str(REPO / "tools"))
import sandbox

RATES = [int(r) for r in os.environ.get("CCC_BENCH_RATES", "50,120,160").split(",")]
SECONDS = float(os.environ.get("CCC_BENCH_SECONDS", "8"))
DID = "4008000000"  # served by no flow: greeting (1 s silence), then hang-up

MINIMAL_APP = r'''
import asyncio, aiohttp, base64, json, sys
AUTH = {"Authorization": "Basic " + base64.b64encode(b"ccc:ccc-demo-ari").decode()}
async def call(s, cid):
    await s.post(f"http://127.0.0.1:8088/ari/channels/{cid}/answer")
    await s.post(f"http://127.0.0.1:8088/ari/channels/{cid}/play/pb-{cid}", params={"media": "sound:silence/1"})
async def main():
    async with aiohttp.ClientSession(headers=AUTH) as s:
        async with s.ws_connect("ws://127.0.0.1:8088/ari/events?app=ccc") as ws:
            print("ready", flush=True)
            async for m in ws:
                e = json.loads(m.data)
                if e["type"] == "StasisStart":
                    asyncio.ensure_future(call(s, e["channel"]["id"]))
                elif e["type"] == "PlaybackFinished":
                    cid = e["playback"]["target_uri"].split(":", 1)[1]
                    asyncio.ensure_future(s.delete(f"http://127.0.0.1:8088/ari/channels/{cid}"))
asyncio.run(main())
'''


def cpu_seconds(pid: int) -> float:
    """The process's CPU time (all its threads, ended ones too) to the nanosecond: its CPU clock as
    `clock_getcpuclockid(pid)` makes it (Linux: `~pid << 3 | CPUCLOCK_SCHED`), the scheduler's time that /proc's
    utime + stime round to clock ticks (10 ms each: an idle process's 5 s read 0 or 2 ms per second)."""
    return time.clock_gettime((~pid << 3) | 2)


async def place_calls(rate: int) -> tuple[int, int]:
    calls = int(rate * SECONDS)
    caller = Caller(DID, steps=[WaitForBye(timeout_ms=30_000)], calls=calls, rate=rate, timeout_s=int(SECONDS) + 60)
    caller.extra += ["-l", str(rate * 5)]
    result = await caller.run()
    stats = result.output
    failed = _sipp_count(stats, "Failed call")
    return calls, failed


def _sipp_count(output: str, label: str) -> int:
    for line in output.splitlines():
        if line.strip().startswith(label):
            parts = line.split("|")
            try:
                return int(parts[2].strip().split()[0]) if len(parts) > 2 else int(parts[1].strip().split()[0])
            except (IndexError, ValueError):
                return 0
    return 0


async def measure(pid: int, rate: int) -> tuple[int, int, float]:
    await hang_up_everything()
    before = cpu_seconds(pid)
    calls, failed = await place_calls(rate)
    await asyncio.sleep(1.0)
    return calls, failed, (cpu_seconds(pid) - before) / max(1, calls - failed)


async def run() -> None:
    sandbox.start()
    results: dict[str, dict[int, tuple[int, int, float]]] = {"minimal ARI app": {}, "controller": {}}

    minimal = subprocess.Popen([sys.executable, "-c", MINIMAL_APP], stdout=subprocess.PIPE, text=True)
    assert minimal.stdout is not None and minimal.stdout.readline().strip() == "ready"
    for rate in RATES:
        results["minimal ARI app"][rate] = await measure(minimal.pid, rate)
    minimal.terminate()
    minimal.wait()

    data_dir = Path(tempfile.mkdtemp(prefix="ccc-bench-"))
    config = data_dir / "controller.yaml"
    config.write_text((REPO / "demo/controller.yaml").read_text()
                      .replace("../ivr_flows", str(REPO / "ivr_flows"))
                      .replace("default_greeting: sound:ccc/welcome",
                               "default_greeting: sound:silence/1\n  no_flow: hangup")
                      .replace("level: ${CCC_LOG_LEVEL:-info}", "level: warning"))
    controller = ControllerProcess(data_dir, config=config, env={"CCC_LOG_LEVEL": "warning"})
    await controller.start()
    assert controller.process is not None
    for rate in RATES:
        results["controller"][rate] = await measure(controller.process.pid, rate)
    controller.terminate()

    print(f"{SECONDS:.0f} s of calls per rate; each call: answer, 1 s silence, hang up")
    print(f"{'handler':<18} {'calls/s':>8} {'calls':>6} {'failed':>7} {'CPU ms/call':>12}")
    for handler, by_rate in results.items():
        for rate, (calls, failed, cpu) in by_rate.items():
            print(f"{handler:<18} {rate:>8} {calls:>6} {failed:>7} {cpu * 1000:>12.2f}")
    for rate in RATES:
        base = results["minimal ARI app"][rate][2]
        ours = results["controller"][rate][2]
        print(f"at {rate} calls/s the controller spends {ours / base:.2f}x the minimal app's CPU per call")


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
