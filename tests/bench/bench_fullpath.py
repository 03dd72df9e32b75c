"""The call a center handles, end to end: our controller against Asterisk alone (app_queue), same run.

Each call: a prompt (1 s of silence), menu key 1, a collected 2-digit entry, a queue, an agent's phone
answering, 2 s of talk, the agent hangs up, wrap-up 0. Call records are written and a CTI client
(WebSocket, every event) is connected. The same call done by Asterisk alone: `Background`/`WaitExten`,
`Read` of 2 digits, `Queue()` with app_queue members. AGENTS agents in QUEUES queues; every agent has its
own PJSIP endpoint, and all of them point at one SIPp UAS phone.

Printed per rate: failed calls, CPU ms per call of the controller and of Asterisk (utime + stime from
/proc, the load average next to them: wall-clock figures mean little on a shared machine), the total and
its ratio to app_queue's, the caller's last key -> agent's phone ringing (AMI DTMFEnd -> Newstate
Ringing) at p50/p99, the controller's RSS, and ARI requests and events per call (the controller's
/metrics), with the largest kinds of each.

    CCC_BENCH_RATES=5,10,20 CCC_BENCH_SECONDS=8 CCC_BENCH_AGENTS=100 CCC_BENCH_QUEUES=2 make bench
    .venv/bin/python -m tests.bench bench_fullpath        # this module only
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from panoramisk import Manager

from tests.bench.bench_calls import _sipp_count, cpu_seconds
from tests.e2e.conftest import ADMIN_TOKEN, REPO, ControllerProcess, demo_config, hang_up_everything
from tests.sipp import Caller, Dtmf, Pause, Phone, WaitForBye

sys.path.insert(0, str(REPO / "tools"))
import sandbox

RATES = [int(r) for r in os.environ.get("CCC_BENCH_RATES", "5,10,20").split(",")]
SECONDS = float(os.environ.get("CCC_BENCH_SECONDS", "8"))
AGENTS = int(os.environ.get("CCC_BENCH_AGENTS", "100"))
QUEUES = int(os.environ.get("CCC_BENCH_QUEUES", "2"))
PROFILE = os.environ.get("CCC_BENCH_PROFILE", "")  # a file: py-spy's folded stacks of the controller, all rates
PHONE_PORT = 15001
TALK_MS = 2000
OURS_DID, APP_QUEUE_DID = "40080051{:02d}", "40080052{:02d}"  # per queue
CALLER_STEPS = [Pause(1200), Dtmf("1"), Dtmf("23"), WaitForBye(timeout_ms=40_000)]


def endpoint(n: int) -> str:
    return f"bench{n:04d}"


def queue_of(n: int) -> int:
    return n % QUEUES


def asterisk_config() -> dict[str, str]:
    """Endpoints, app_queue queues and the app_queue dialplan, added to the sandbox for this run only."""
    pjsip = "".join(
        f"\n[{endpoint(n)}](phone-endpoint)\naors = {endpoint(n)}\n"
        f"[{endpoint(n)}](phone-aor)\ncontact = sip:{endpoint(n)}@127.0.0.1:{PHONE_PORT}\n"
        for n in range(AGENTS))
    queues = "".join(
        # autofill: callers are connected in parallel, as many as members are free; without it (this Asterisk's
        # default) only the head caller rings a member, and at 20 calls/s half the calls were still waiting 40 s
        # later while 48 of 50 members sat idle ("Not in use").
        f"\n[bench{q}]\nstrategy = leastrecent\nautofill = yes\ntimeout = 15\nretry = 1\nwrapuptime = 0\n"
        f"ringinuse = no\n"
        f"joinempty = yes\nleavewhenempty = no\nmusicclass = default\nannounce-frequency = 0\n"
        + "".join(f"member => PJSIP/{endpoint(n)}\n" for n in range(AGENTS) if queue_of(n) == q)
        for q in range(QUEUES))
    dialplan = "[ccc-inbound]\n" + "".join(
        f"exten => {APP_QUEUE_DID.format(q)},1,Goto(bench-aq{q},s,1)\n" for q in range(QUEUES))
    for q in range(QUEUES):
        dialplan += (f"\n[bench-aq{q}]\nexten => s,1,Answer()\n same => n,Background(silence/1)\n"
                     " same => n,WaitExten(5)\n same => n,Hangup()\n"
                     "exten => 1,1,Read(account,beep,2,,1,5)\n"
                     f" same => n,Queue(bench{q},,,,60)\n same => n,Hangup()\n")
    # The demo's AMI user cannot read DTMF events: a user of the bench's own reads them.
    manager = "\n[bench]\nsecret = bench-ami\ndeny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.1/255.255.255.255\n" \
              "read = call,dtmf\nwrite =\n"
    return {"pjsip_bench.conf": pjsip, "queues.conf+": queues, "dialplans/zz-bench.conf": dialplan,
            "manager.conf+": manager}


def install_asterisk_config() -> None:
    etc = sandbox.ROOT / "etc/asterisk"
    for name, text in asterisk_config().items():
        if name.endswith("+"):
            with (etc / name[:-1]).open("a") as conf:
                conf.write(text)
        else:
            (etc / name).write_text(text)
    with (etc / "pjsip.conf").open("a") as conf:
        conf.write('\n#tryinclude "pjsip_bench.conf"\n')
    for command in ("module reload res_pjsip.so", "queue reload all", "dialplan reload", "manager reload"):
        sandbox.cli(command)


def remove_asterisk_config() -> None:
    etc = sandbox.ROOT / "etc/asterisk"
    for name in ("pjsip_bench.conf", "dialplans/zz-bench.conf"):
        (etc / name).unlink(missing_ok=True)
    sandbox.install()
    for command in ("module reload res_pjsip.so", "queue reload all", "dialplan reload", "manager reload"):
        sandbox.cli(command)


def controller_config(data: Path) -> Path:
    nodes = """
  menu: {type: menu, prompt: ["sound:silence/1"], options: {"1": account}, timeout: 5, retries: 1, default: bye}
  account: {type: collect, prompt: ["sound:beep"], variable: account, min_digits: 2, max_digits: 2,
            next: queue, failure: bye}"""
    return bench_config(data, "bench", OURS_DID, nodes, AGENTS)


def bench_config(data: Path, prefix: str, did_pattern: str, nodes_before_queue: str, agents: int,
                 **queue_settings: Any) -> Path:
    """QUEUES flows (`<prefix>N`, DID `did_pattern`: the given nodes, then queue `<prefix>N`, then hang-up),
    their queues (wrap-up 0, no announcements) and `agents` agents on the bench's endpoints, agent n in queue
    n % QUEUES, in a demo configuration."""
    flows = data / "flows"
    flows.mkdir(parents=True)
    for q in range(QUEUES):
        (flows / f"{prefix}{q}.yaml").write_text(
            f"flow: {prefix}{q}\nlanguage: en\ndids: [\"{did_pattern.format(q)}\"]\nnodes:{nodes_before_queue}\n"
            f"  queue: {{type: queue, queue: {prefix}{q}, answered: bye, otherwise: bye}}\n  bye: {{type: hangup}}\n")
    return demo_config(
        data, ivr={"flows_dir": str(flows)},
        acd={"queues": [{"name": f"{prefix}{q}", "wrapup_seconds": 0, "announce_interval": 0,
                         "announce_agent_number": False, "no_agents": "wait", **queue_settings}
                        for q in range(QUEUES)],
             "agents": [{"id": f"{5000 + n}", "name": f"Bench {n}", "number": f"{5000 + n}",
                         "endpoint": endpoint(n), "queues": {f"{prefix}{queue_of(n)}": 0}} for n in range(agents)]})


@dataclass
class Latencies:
    """The caller's last key (AMI DTMFEnd received on the caller's channel) -> the agent's phone ringing."""

    keys: dict[str, float] = field(default_factory=dict)  # caller's uniqueid -> time of its latest key
    values: list[float] = field(default_factory=list)

    def on_dtmf(self, _manager: Manager, event: dict[str, str]) -> None:
        if event.get("Direction") == "Received":
            self.keys[event.get("Uniqueid", "")] = time.perf_counter()

    def on_newstate(self, _manager: Manager, event: dict[str, str]) -> None:
        if event.get("ChannelStateDesc") != "Ringing" or not event.get("Channel", "").startswith("PJSIP/bench"):
            return
        now = time.perf_counter()
        key = self.keys.pop(event.get("Linkedid", ""), None)
        if key is None and self.keys:
            # An agent leg the controller originates has its own linkedid: take the latest key pressed.
            caller = max(self.keys, key=lambda k: self.keys[k])
            key = self.keys.pop(caller)
        if key is not None:
            self.values.append(now - key)

    def percentile(self, p: float) -> float | None:
        if len(self.values) < 2:
            return self.values[0] if self.values else None
        return statistics.quantiles(self.values, n=100, method="inclusive")[int(p) - 1]


@dataclass
class Result:
    calls: int
    failed: int
    controller_ms: float | None
    asterisk_ms: float
    p50: float | None
    p99: float | None
    rss_mb: float | None = None
    requests: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    store: Counter[str] = field(default_factory=Counter)  # statements, commits, CTI events (the controller's)
    load: float = 0.0


def rss_mb(pid: int) -> float:
    match = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) / 1024 if match else 0.0


async def ari_counts(process: ControllerProcess) -> tuple[Counter[str], Counter[str]]:
    status, text = await process.api("GET", "/metrics")
    assert status == 200, text
    requests: Counter[str] = Counter()
    events: Counter[str] = Counter()
    for line in str(text).splitlines():
        if match := re.match(r'ccc_ari_requests_total\{operation="([^"]+)"\} ([0-9.e+]+)', line):
            requests[match.group(1)] = int(float(match.group(2)))
        elif match := re.match(r'ccc_ari_events_by_type_total\{type="([^"]+)"\} ([0-9.e+]+)', line):
            events[match.group(1)] = int(float(match.group(2)))
    return requests, events


#: The controller's store and CTI counters read from /metrics: what each call writes and publishes.
STORE_COUNTERS = {"ccc_store_writes": "statements", "ccc_store_commits": "commits", "ccc_cti_events": "CTI events"}


async def store_counts(process: ControllerProcess) -> Counter[str]:
    status, text = await process.api("GET", "/metrics")
    assert status == 200, text
    counts: Counter[str] = Counter()
    for line in str(text).splitlines():
        name, _, value = line.partition(" ")
        if name.removesuffix("_total") in STORE_COUNTERS:
            counts[STORE_COUNTERS[name.removesuffix("_total")]] = int(float(value))
    return counts


async def place_calls(did_pattern: str, rate: int) -> tuple[int, int]:
    per_queue = max(1, int(rate * SECONDS) // QUEUES)
    callers = []
    for q in range(QUEUES):
        caller = Caller(did_pattern.format(q), steps=CALLER_STEPS, calls=per_queue, rate=rate / QUEUES,
                        timeout_s=int(SECONDS) + 90)
        caller.extra += ["-l", str(rate * 20)]
        callers.append(caller)
    results = await asyncio.gather(*(c.run() for c in callers))
    failed = sum(_sipp_count(r.output, "Failed call") for r in results)
    if failed:
        errors = next(r.errors for r in results if r.errors)
        print(f"{failed} failed calls; SIPp's first errors:\n{errors[:600]}", flush=True)
    return per_queue * QUEUES, failed


async def measure(did_pattern: str, rate: int, asterisk_pid: int, latencies: Latencies,
                  controller: ControllerProcess | None) -> Result:
    await hang_up_everything()
    await asyncio.sleep(1.0)
    latencies.keys.clear()
    latencies.values.clear()
    pid = controller.process.pid if controller and controller.process else None
    before = (cpu_seconds(asterisk_pid), cpu_seconds(pid) if pid else 0.0)
    counts_before = await ari_counts(controller) if controller else (Counter(), Counter())
    store_before = await store_counts(controller) if controller else Counter()
    calls, failed = await place_calls(did_pattern, rate)
    await asyncio.sleep(1.5)
    done = max(1, calls - failed)
    result = Result(calls, failed,
                    (cpu_seconds(pid) - before[1]) * 1000 / done if pid else None,
                    (cpu_seconds(asterisk_pid) - before[0]) * 1000 / done,
                    latencies.percentile(50), latencies.percentile(99), load=os.getloadavg()[0])
    if controller and pid:
        result.rss_mb = rss_mb(pid)
        requests, events = await ari_counts(controller)
        result.requests = requests - counts_before[0]
        result.events = events - counts_before[1]
        result.store = await store_counts(controller) - store_before
    return result


async def settled(pid: int, idle_share: float = 0.03, limit_s: float = 120.0) -> None:
    """Wait until the process is idle (under `idle_share` of a core over a second): the controller renders the
    agents' number announcements after its start (README "ACD"), which is not the calls' cost."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        await asyncio.sleep(1.0)
        if cpu_seconds(pid) - before < idle_share:
            return


async def cti_client(process: ControllerProcess, seen: list[int]) -> None:
    """A CTI client reading every event (what a wallboard or CRM connector does)."""
    url = f"{process.url.replace('http', 'ws')}/ws?token={ADMIN_TOKEN}"
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        async for _message in ws:
            seen[0] += 1


async def start_profiler(controller: ControllerProcess) -> asyncio.subprocess.Process | None:
    """py-spy sampling the controller (README "Benchmarks": how to read the result), when asked for."""
    if not PROFILE or controller.process is None:
        return None
    py_spy = Path(sys.executable).parent / "py-spy"
    return await asyncio.create_subprocess_exec(
        str(py_spy), "record", "--pid", str(controller.process.pid), "--format", "raw", "--rate", "200",
        "--nonblocking", "--output", PROFILE, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


def summarize_profile(path: Path, top: int = 15) -> None:
    """The functions where the controller spends its samples: by own time, and controller code by inclusive time."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        samples = int(count)
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            if "controller/" in frame:
                inclusive[frame] += samples
    print(f"profile: {total} samples (py-spy, 200 Hz, every thread, idle excluded)")
    for title, counter in (("own time", own), ("inclusive, controller code", inclusive)):
        print(f"  {title}:")
        for frame, samples in counter.most_common(top):
            print(f"    {samples * 100 / max(1, total):5.1f}%  {frame[:150]}")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def _top(counter: Counter[str], per: int) -> str:
    return ", ".join(f"{name} {count / per:.1f}" for name, count in counter.most_common(12))


async def run() -> None:
    sandbox.start()
    asterisk_pid = sandbox._pid()
    assert asterisk_pid is not None
    install_asterisk_config()
    manager = Manager(host="127.0.0.1", port=5038, username="bench", secret="bench-ami")
    latencies = Latencies()
    manager.register_event("DTMFEnd", latencies.on_dtmf)
    manager.register_event("Newstate", latencies.on_newstate)
    await manager.connect()
    phone = Phone(PHONE_PORT, answer_after_ms=100, hold_ms=TALK_MS, calls=1_000_000, timeout_s=3600)
    results: dict[str, dict[int, Result]] = {"app_queue": {}, "controller": {}}
    try:
        await phone.start()
        for rate in RATES:
            results["app_queue"][rate] = await measure(APP_QUEUE_DID, rate, asterisk_pid, latencies, None)
        data = Path(tempfile.mkdtemp(prefix="ccc-bench-fullpath-"))
        controller = ControllerProcess(data / "data", config=controller_config(data),
                                       env={"CCC_LOG_LEVEL": "warning"})
        await controller.start()
        cti_seen = [0]
        cti = asyncio.create_task(cti_client(controller, cti_seen))
        try:
            for n in range(AGENTS):
                status, body = await controller.api("POST", f"/api/agents/{5000 + n}/login", json={"ready": True})
                assert status == 200, body
            assert controller.process is not None
            await settled(controller.process.pid)
            profiler = await start_profiler(controller)
            for rate in RATES:
                results["controller"][rate] = await measure(OURS_DID, rate, asterisk_pid, latencies, controller)
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                await profiler.wait()
        finally:
            cti.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
                await cti
            controller.terminate()
    finally:
        phone.kill()
        manager.close()
        remove_asterisk_config()
    print_table(results, cti_seen[0])
    if PROFILE:
        summarize_profile(Path(PROFILE))


def print_table(results: dict[str, dict[int, Result]], cti_events: int) -> None:
    print(f"{AGENTS} agents in {QUEUES} queues on one SIPp phone; {SECONDS:.0f} s of calls per rate; each call: "
          f"1 s prompt, key 1, 2-digit entry, queue, agent answers, {TALK_MS / 1000:.0f} s talk, agent hangs up")
    print(f"{'handler':<11} {'calls/s':>7} {'calls':>6} {'failed':>6} {'ctl ms':>7} {'ast ms':>7} {'total':>7} "
          f"{'x app_q':>7} {'key->ring p50/p99 ms':>20} {'RSS MB':>7} {'ARI req':>7} {'events':>7} {'load':>5}")
    for handler, by_rate in results.items():
        for rate, r in by_rate.items():
            done = max(1, r.calls - r.failed)
            total = r.asterisk_ms + (r.controller_ms or 0.0)
            base = results["app_queue"].get(rate)
            ratio = f"{total / base.asterisk_ms:.2f}" if base and base.asterisk_ms else "-"
            print(f"{handler:<11} {rate:>7} {r.calls:>6} {r.failed:>6} "
                  f"{'-' if r.controller_ms is None else f'{r.controller_ms:.1f}':>7} {r.asterisk_ms:>7.1f} "
                  f"{total:>7.1f} {ratio:>7} {_ms(r.p50) + '/' + _ms(r.p99):>20} "
                  f"{'-' if r.rss_mb is None else f'{r.rss_mb:.0f}':>7} "
                  f"{sum(r.requests.values()) / done if r.requests else 0:>7.1f} "
                  f"{sum(r.events.values()) / done if r.events else 0:>7.1f} {r.load:>5.1f}")
    for rate, r in results["controller"].items():
        done = max(1, r.calls - r.failed)
        print(f"at {rate} calls/s, per call: ARI requests {_top(r.requests, done)}")
        print(f"{'':>{len(str(rate)) + 16}}ARI events {_top(r.events, done)}")
        print(f"{'':>{len(str(rate)) + 16}}store and CTI {_top(r.store, done)}")
    print(f"CTI events read by the WebSocket client: {cti_events}")


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
