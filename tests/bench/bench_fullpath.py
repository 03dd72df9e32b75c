"""The call a center handles, end to end: our controller against Asterisk alone (app_queue), same run.

Each call: a prompt (1 s of silence), menu key 1, a collected 2-digit entry, a queue, an agent's phone
answering, 2 s of talk, the agent hangs up, wrap-up 0. Call records are written and a CTI client
(WebSocket, every event) is connected. The same call done by Asterisk alone: `Background`/`WaitExten`,
`Read` of 2 digits, `Queue()` with app_queue members (the queues are taken out of Asterisk before the controller's
rates: app_queue's device-state work is its own cost). Each setup (CCC_BENCH_SETUPS, agents x queues: 100 agents
in 2 queues, then 500 in 20, where app_queue's device-state work grows with queues x members) gives every
agent its own PJSIP endpoint; up to AGENTS_PER_PHONE endpoints share one SIPp UAS phone.

Printed per setup and rate: failed calls, CPU ms per call of the controller and of Asterisk (each process's
CPU clock, `cpu_seconds`; the load average next to them: wall-clock figures mean little on a shared machine), the
controller's share of Asterisk's CPU, the total and its ratio to app_queue's, the caller's last key -> agent's
phone ringing (AMI DTMFEnd -> Newstate Ringing) at p50/p99, the controller's RSS, and ARI requests and events
per call (the controller's /metrics), with the largest kinds of each; at the end, issue 19's targets with the
measured figure and met / not met (printed, never asserted). First and last, what this machine charges for a
sparse wake-up (wake_probe): at low rates the CPU per call of every handler includes it.

One run per handler and rate is noisy (app_queue's own figure moved 11.9-17.6 ms per call between quiet runs):
CCC_BENCH_ROUNDS=N runs every handler N times per setup, interleaved (round_order: app_queue[, floor], controller,
then the reverse, ...), with the same calls each time, prints each round's table, then the median of the rounds
per handler and rate (summarize_rounds), from which the ratios and the targets are computed.

    CCC_BENCH_SETUPS=100x2,500x20 CCC_BENCH_RATES=10,30,60,80 CCC_BENCH_SECONDS=8 make bench
    .venv/bin/python -m tests.bench bench_fullpath        # this module only
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from panoramisk import Manager

from tests.bench.bench_calls import _sipp_count, cpu_seconds
from tests.e2e.conftest import ADMIN_TOKEN, ARI, ARI_HEADERS, REPO, ControllerProcess, demo_config, hang_up_everything
from tests.sipp import Caller, CallerStep, Dtmf, Pause, Phone, WaitForBye

sys.path.insert(0, str(REPO / "tools"))
import sandbox

RATES = [int(r) for r in os.environ.get("CCC_BENCH_RATES", "10,30,60,80").split(",")]
SECONDS = float(os.environ.get("CCC_BENCH_SECONDS", "8"))
AGENTS = int(os.environ.get("CCC_BENCH_AGENTS", "100"))  # the single setup of bench_concurrency (and of
QUEUES = int(os.environ.get("CCC_BENCH_QUEUES", "2"))    # this bench when only these two are given)
PROFILE = os.environ.get("CCC_BENCH_PROFILE", "")  # a file: py-spy's folded stacks of the controller, all rates
PERF = os.environ.get("CCC_BENCH_PERF", "")  # a path prefix: `perf record` of Asterisk per handler and rate
# "1": count every AMI event per call by kind (VarSet by variable): what each path makes Asterisk publish
AMI_EVENTS = os.environ.get("CCC_BENCH_AMI_EVENTS", "") == "1"
# "1": also run the call through `floor_app` (a bare Python ARI application on the controller's ARI client): the floor
FLOOR = os.environ.get("CCC_BENCH_FLOOR", "") == "1"
# N: every setup runs its handlers N times, interleaved (round_order), then prints the rounds' medians
ROUNDS = int(os.environ.get("CCC_BENCH_ROUNDS", "1"))
PHONE_PORT = 15001
AGENTS_PER_PHONE = 250  # endpoints answered by one SIPp UAS phone (ports PHONE_PORT, PHONE_PORT + 1, ...)
TALK_MS = 2000
ANSWER_MS = 100
OURS_DID, APP_QUEUE_DID = "40080051{:02d}", "40080052{:02d}"  # per queue (up to 100 queues)
# A caller still on the line 45 s after the entry failed (at 80 calls/s on 100 agents the last waits ~15 s).
CALLER_STEPS: list[CallerStep] = [Pause(1200), Dtmf("1"), Dtmf("23"), WaitForBye(timeout_ms=45_000)]
FIRST_KEY, LAST_KEY = "1", "3"  # the menu's key; the entry's last digit, after which the call queues
SATURATION_RATE = 60  # issue 19: no failed call at this rate


@dataclass(frozen=True)
class Setup:
    """`agents` agents in `queues` queues, agent n in queue n % queues, on endpoint bench<n>."""

    agents: int
    queues: int

    @property
    def name(self) -> str:
        return f"{self.agents} agents in {self.queues} queues"

    @property
    def phones(self) -> int:
        return math.ceil(self.agents / AGENTS_PER_PHONE)

    @property
    def agent_capacity(self) -> float:
        """Calls per second the agents can take (ring + talk each), per queue the slowest: above it callers
        wait for an agent, and key -> ringing measures that wait, not the set-up."""
        smallest_queue = self.agents // self.queues
        return smallest_queue * self.queues / ((ANSWER_MS + TALK_MS) / 1000)

    def queue_of(self, n: int) -> int:
        return n % self.queues


def _setups() -> list[Setup]:
    text = os.environ.get("CCC_BENCH_SETUPS", "")
    if not text:
        given = "CCC_BENCH_AGENTS" in os.environ or "CCC_BENCH_QUEUES" in os.environ
        text = f"{AGENTS}x{QUEUES}" if given else "100x2,500x20"
    setups = []
    for item in text.split(","):
        agents, _, queues = item.strip().partition("x")
        setups.append(Setup(int(agents), int(queues)))
    return setups


SETUPS = _setups()
DEFAULT_SETUP = Setup(AGENTS, QUEUES)


def endpoint(n: int) -> str:
    return f"bench{n:04d}"


def queue_of(n: int) -> int:
    return DEFAULT_SETUP.queue_of(n)


def asterisk_config(setup: Setup = DEFAULT_SETUP) -> dict[str, str]:
    """Endpoints, app_queue queues and the app_queue dialplan, added to the sandbox for this run only."""
    pjsip = "".join(
        f"\n[{endpoint(n)}](phone-endpoint)\naors = {endpoint(n)}\n"
        f"[{endpoint(n)}](phone-aor)\ncontact = sip:{endpoint(n)}@127.0.0.1:{PHONE_PORT + n // AGENTS_PER_PHONE}\n"
        for n in range(setup.agents))
    queues = "".join(
        # autofill: callers are connected in parallel, as many as members are free; without it (this Asterisk's
        # default) only the head caller rings a member, and at 20 calls/s half the calls were still waiting 40 s
        # later while 48 of 50 members sat idle ("Not in use").
        f"\n[bench{q}]\nstrategy = leastrecent\nautofill = yes\ntimeout = 15\nretry = 1\nwrapuptime = 0\n"
        f"ringinuse = no\n"
        f"joinempty = yes\nleavewhenempty = no\nmusicclass = default\nannounce-frequency = 0\n"
        + "".join(f"member => PJSIP/{endpoint(n)}\n" for n in range(setup.agents) if setup.queue_of(n) == q)
        for q in range(setup.queues))
    dialplan = "[ccc-inbound]\n" + "".join(
        f"exten => {APP_QUEUE_DID.format(q)},1,Goto(bench-aq{q},s,1)\n" for q in range(setup.queues))
    for q in range(setup.queues):
        dialplan += (f"\n[bench-aq{q}]\nexten => s,1,Answer()\n same => n,Background(silence/1)\n"
                     " same => n,WaitExten(5)\n same => n,Hangup()\n"
                     "exten => 1,1,Read(account,beep,2,,1,5)\n"
                     f" same => n,Queue(bench{q},,,,60)\n same => n,Hangup()\n")
    # The demo's AMI user cannot read DTMF events: a user of the bench's own reads them, and only the two
    # kinds it needs (Asterisk writes no other event to it, and the bench parses no other).
    manager = "\n[bench]\nsecret = bench-ami\ndeny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.1/255.255.255.255\n" \
              + ("read = all\nwrite =\n" if AMI_EVENTS else
                 "read = call,dtmf\nwrite =\neventfilter = Event: DTMFEnd\neventfilter = Event: Newstate\n")
    return {"pjsip_bench.conf": pjsip, "queues.conf+": queues, "dialplans/zz-bench.conf": dialplan,
            "manager.conf+": manager}


def install_asterisk_config(setup: Setup = DEFAULT_SETUP) -> float:
    """Add the setup's endpoints, queues and dialplan to the sandbox; the seconds the reloads took."""
    etc = sandbox.ROOT / "etc/asterisk"
    for name, text in asterisk_config(setup).items():
        if name == "queues.conf+":
            continue  # load_app_queue_queues
        if name.endswith("+"):
            with (etc / name[:-1]).open("a") as conf:
                conf.write(text)
        else:
            (etc / name).write_text(text)
    with (etc / "pjsip.conf").open("a") as conf:
        conf.write('\n#tryinclude "pjsip_bench.conf"\n')
    started = time.monotonic()
    for command in ("module reload res_pjsip.so", "dialplan reload", "manager reload"):
        sandbox.cli(command, timeout=60)
    # A configuration Asterisk took only in part would make every figure below wrong: check the last of each.
    last = setup.agents - 1
    assert f"Endpoint:  {endpoint(last)}" in sandbox.cli(f"pjsip show endpoint {endpoint(last)}"), \
        f"Asterisk did not load endpoint {endpoint(last)}"
    load_app_queue_queues(setup)
    return time.monotonic() - started


def load_app_queue_queues(setup: Setup) -> None:
    """Give app_queue the setup's queues (the sandbox's own queues.conf and the bench's after it): at the setup's
    start, and again before app_queue's rates of a later round (drop_app_queue_queues took them out)."""
    queues_conf = sandbox.ROOT / "etc/asterisk/queues.conf"
    shutil.copy2(REPO / "asterisk-conf/queues.conf", queues_conf)
    with queues_conf.open("a") as conf:
        conf.write(asterisk_config(setup)["queues.conf+"])
    sandbox.cli("queue reload all", timeout=60)
    members = sandbox.cli(f"queue show bench{setup.queues - 1}").count("PJSIP/bench")
    assert members == sum(setup.queue_of(n) == setup.queues - 1 for n in range(setup.agents)), \
        f"queue bench{setup.queues - 1} has {members} members"


def drop_app_queue_queues() -> None:
    """Take the bench's app_queue queues out of Asterisk before the controller's rates: app_queue follows its
    members' device states whether callers wait or not (every change walks queues x members, asterisk#1961),
    which is app_queue's cost, not the controller's (at 500 agents in 20 queues the controller's ARI requests
    timed out while they were loaded)."""
    shutil.copy2(REPO / "asterisk-conf/queues.conf", sandbox.ROOT / "etc/asterisk/queues.conf")
    sandbox.cli("queue reload all", timeout=60)
    assert "PJSIP/bench" not in sandbox.cli("queue show"), "app_queue still has the bench's queues"


def remove_asterisk_config() -> None:
    etc = sandbox.ROOT / "etc/asterisk"
    for name in ("pjsip_bench.conf", "dialplans/zz-bench.conf"):
        (etc / name).unlink(missing_ok=True)
    sandbox.install()
    for command in ("module reload res_pjsip.so", "queue reload all", "dialplan reload", "manager reload"):
        sandbox.cli(command, timeout=60)


def controller_config(data: Path, setup: Setup) -> Path:
    # The same sound files app_queue's dialplan plays (a plain string would be text to speak: "sound colon
    # silence slash one", 2 s of speech each key cut short). Named by their folder: the sandbox's sounds/en is
    # a link into /etc/alternatives that resolves only inside the chroot, where the flow check cannot see it.
    nodes = """
  menu: {type: menu, prompt: [{sound: en_US_f_Allison/silence/1}], options: {"1": account}, timeout: 5, retries: 1,
         default: bye}
  account: {type: collect, prompt: [{sound: en_US_f_Allison/beep}], variable: account, min_digits: 2, max_digits: 2,
            next: queue, failure: bye}"""
    return bench_config(data, "bench", OURS_DID, nodes, setup.agents, queues=setup.queues)


def bench_config(data: Path, prefix: str, did_pattern: str, nodes_before_queue: str, agents: int,
                 queues: int = QUEUES, **queue_settings: Any) -> Path:
    """`queues` flows (`<prefix>N`, DID `did_pattern`: the given nodes, then queue `<prefix>N`, then hang-up),
    their queues (wrap-up 0, no announcements) and `agents` agents on the bench's endpoints, agent n in queue
    n % queues, in a demo configuration."""
    flows = data / "flows"
    flows.mkdir(parents=True)
    for q in range(queues):
        (flows / f"{prefix}{q}.yaml").write_text(
            f"flow: {prefix}{q}\nlanguage: en\ndids: [\"{did_pattern.format(q)}\"]\nnodes:{nodes_before_queue}\n"
            f"  queue: {{type: queue, queue: {prefix}{q}, answered: bye, otherwise: bye}}\n  bye: {{type: hangup}}\n")
    return demo_config(
        data, ivr={"flows_dir": str(flows)},
        acd={"queues": [{"name": f"{prefix}{q}", "wrapup_seconds": 0, "announce_interval": 0,
                         "announce_agent_number": False, "no_agents": "wait", **queue_settings}
                        for q in range(queues)],
             "agents": [{"id": f"{5000 + n}", "name": f"Bench {n}", "number": f"{5000 + n}",
                         "endpoint": endpoint(n), "queues": {f"{prefix}{n % queues}": 0}} for n in range(agents)]})


def _caller_queue(event: dict[str, str]) -> int:
    """The queue a caller's key event belongs to: its app_queue context, or the last digits of our DID."""
    if match := re.fullmatch(r"bench-aq(\d+)", event.get("Context", "")):
        return int(match.group(1))
    exten = event.get("Exten", "")
    for pattern in (OURS_DID, APP_QUEUE_DID):
        prefix = pattern.split("{")[0]
        if exten.startswith(prefix) and exten[len(prefix):].isdigit():
            return int(exten[len(prefix):])
    return -1


@dataclass
class Latencies:
    """The caller's last key (AMI DTMFEnd received on the caller's channel) -> the agent's phone ringing.

    app_queue's agent leg shares the caller's linkedid. The leg the controller originates has its own: it is
    given the caller of its queue who finished the entry longest ago and has not rung an agent yet (queues
    serve their callers in order)."""

    queues: int = 1
    keys: dict[str, float] = field(default_factory=dict)  # caller's uniqueid -> time of its entry's last key
    waiting: dict[int, deque[str]] = field(default_factory=dict)  # queue -> callers in the order they queued
    first_keys: list[float] = field(default_factory=list)  # times of the menu's key, one per call
    values: list[float] = field(default_factory=list)
    ami_events: Counter[str] = field(default_factory=Counter)  # with CCC_BENCH_AMI_EVENTS: every event by kind

    def clear(self) -> None:
        self.keys.clear()
        self.waiting.clear()
        self.first_keys.clear()
        self.values.clear()
        self.ami_events.clear()

    def on_any(self, _manager: Manager, event: dict[str, str]) -> None:
        kind = event.get("Event", "")
        self.ami_events[f"VarSet {event.get('Variable', '')}" if kind == "VarSet" else kind] += 1

    def on_dtmf(self, _manager: Manager, event: dict[str, str]) -> None:
        if event.get("Direction") != "Received":
            return
        now = time.perf_counter()
        if event.get("Digit") == FIRST_KEY:
            self.first_keys.append(now)
        elif event.get("Digit") == LAST_KEY:
            caller = event.get("Uniqueid", "")
            self.keys[caller] = now
            self.waiting.setdefault(_caller_queue(event), deque()).append(caller)

    def on_newstate(self, _manager: Manager, event: dict[str, str]) -> None:
        match = re.match(r"PJSIP/bench(\d+)-", event.get("Channel", ""))
        if event.get("ChannelStateDesc") != "Ringing" or not match:
            return
        now = time.perf_counter()
        key = self.keys.pop(event.get("Linkedid", ""), None)
        waiting = self.waiting.get(int(match.group(1)) % self.queues, deque())
        while key is None and waiting:
            key = self.keys.pop(waiting.popleft(), None)
        if key is not None:
            self.values.append(now - key)

    def percentile(self, p: float) -> float | None:
        if len(self.values) < 2:
            return self.values[0] if self.values else None
        return statistics.quantiles(self.values, n=100, method="inclusive")[int(p) - 1]

    def offered_rate(self) -> float | None:
        """Calls per second that reached the menu's key (whether SIPp placed them at the rate asked)."""
        if len(self.first_keys) < 2:
            return None
        return (len(self.first_keys) - 1) / (max(self.first_keys) - min(self.first_keys))


@dataclass
class Result:
    calls: int
    failed: int
    controller_ms: float | None
    asterisk_ms: float
    p50: float | None
    p99: float | None
    offered: float | None = None
    rss_mb: float | None = None
    requests: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    ami_events: Counter[str] = field(default_factory=Counter)
    perf: dict[str, float] = field(default_factory=dict)  # with CCC_BENCH_PERF: Asterisk's perf stat counters
    store: Counter[str] = field(default_factory=Counter)  # statements, commits, CTI events (the controller's)
    load: float = 0.0
    left_behind: int = 0  # channels still up after the rate's calls ended, hung up by the bench
    window_s: float = 0.0  # wall-clock seconds over which the CPU was measured (calls placed, then 1.5 s)

    @property
    def total_ms(self) -> float:
        return self.asterisk_ms + (self.controller_ms or 0.0)


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
STORE_COUNTERS = {"ccc_store_writes": "statements", "ccc_store_commits": "commits", "ccc_cti_events": "CTI events",
                  "ccc_store_round_trips": "store round trips"}


async def store_counts(process: ControllerProcess) -> Counter[str]:
    status, text = await process.api("GET", "/metrics")
    assert status == 200, text
    counts: Counter[str] = Counter()
    for line in str(text).splitlines():
        name, _, value = line.rpartition(" ")
        if name.removesuffix("_total") in STORE_COUNTERS:
            counts[STORE_COUNTERS[name.removesuffix("_total")]] = int(float(value))
        elif match := re.match(r'ccc_store_writes_by_kind_total\{kind="(.*)"\}$', name):
            counts[f"{STORE_KIND}{match.group(1)}"] = int(float(value))
    return counts


#: The prefix of a statement kind's count in `store_counts` (`ccc_store_writes_by_kind`).
STORE_KIND = "store: "


async def place_calls(setup: Setup, did_pattern: str, rate: int) -> tuple[int, int]:
    """One SIPp caller process placing SECONDS x `rate` calls, spread over the queues' numbers in turn (an
    injection file); failed = not completed successfully (a call SIPp never placed counts as failed)."""
    calls = max(setup.queues, int(rate * SECONDS))
    numbers = Path(tempfile.mkdtemp(prefix="ccc-bench-numbers-")) / "numbers.csv"
    numbers.write_text("SEQUENTIAL\n" + "".join(f"{did_pattern.format(q)};\n" for q in range(setup.queues)))
    caller = Caller("[field0]", steps=CALLER_STEPS, calls=calls, rate=rate, timeout_s=int(SECONDS) + 150)
    caller.extra += ["-inf", str(numbers), "-l", str(calls)]  # no cap on calls at once: callers may queue
    result = await caller.run()
    successful = _sipp_count(result.output, "Successful call")
    failed = calls - successful
    if failed:
        print(f"{failed} failed calls; SIPp's first errors:\n{(result.errors or result.output)[:600]}", flush=True)
    return calls, failed


async def ari_channels() -> int:
    async with aiohttp.ClientSession(headers=ARI_HEADERS) as http, \
            http.get(f"{ARI}/channels", timeout=aiohttp.ClientTimeout(total=10)) as response:
        return len(await response.json())


async def wait_for_quiet(asterisk_pid: int, controller: ControllerProcess | None, setup: Setup) -> int:
    """Between rates: wait for the calls to end (a saturated rate's stragglers), hang up what is left (counted),
    wait for every agent to be ready again and for both processes to be idle. Channels left behind."""
    deadline = time.monotonic() + 30
    while (left := await ari_channels()) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    await hang_up_everything()
    if controller is not None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status, body = await controller.api("GET", "/api/agents")
            busy = [a["id"] for a in body["agents"] if a.get("state") != "ready"] if status == 200 else ["?"]
            if not busy:
                break
            await asyncio.sleep(0.5)
        else:
            print(f"{len(busy)} of {setup.agents} agents still not ready: {busy[:5]}", flush=True)
        assert controller.process is not None
        await settled(controller.process.pid)
    await settled(asterisk_pid, idle_share=0.1, limit_s=20)
    return left


async def start_asterisk_perf(asterisk_pid: int, name: str) -> list[asyncio.subprocess.Process]:
    """`perf record` (samples) and `perf stat` (task-clock, context switches, system calls: counts that vary less
    with the machine's load than CPU time) of Asterisk's threads while one handler's calls run, when asked for
    (README "Benchmarks": `perf report -i <file> --sort dso,sym` reads the samples)."""
    if not PERF:
        return []
    pid = str(asterisk_pid)
    return [await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.DEVNULL,
                                                 stderr=asyncio.subprocess.DEVNULL) for command in (
        ("perf", "record", "-F", "499", "-g", "-p", pid, "-o", f"{PERF}-{name}.data"),
        ("perf", "stat", "-x", ",", "-e", PERF_STAT_EVENTS, "-p", pid, "-o", f"{PERF}-{name}.stat"))]


PERF_STAT_EVENTS = "task-clock,context-switches,raw_syscalls:sys_enter"


def perf_stat_counts(name: str) -> dict[str, float]:
    """The `perf stat -x ,` file's counters by event name."""
    counts = {}
    for line in Path(f"{PERF}-{name}.stat").read_text().splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[2] in PERF_STAT_EVENTS.split(","):
            with contextlib.suppress(ValueError):
                counts[fields[2]] = float(fields[0])
    return counts


async def measure(setup: Setup, did_pattern: str, rate: int, asterisk_pid: int, latencies: Latencies,
                  controller: ControllerProcess | None, handler_pid: int | None = None,
                  round_number: int = 1) -> Result:
    """One rate through app_queue (no controller, no `handler_pid`), the controller, or another ARI application
    (`handler_pid`: its CPU is measured as the controller's)."""
    left = await wait_for_quiet(asterisk_pid, controller, setup)
    latencies.clear()
    pid = controller.process.pid if controller and controller.process else handler_pid
    handler = "controller" if controller else "floor" if handler_pid else "app_queue"
    perf_name = f"{setup.name}-{handler}-{rate}" + (f"-round{round_number}" if ROUNDS > 1 else "")
    perf = await start_asterisk_perf(asterisk_pid, perf_name)
    before = (cpu_seconds(asterisk_pid), cpu_seconds(pid) if pid else 0.0)
    counts_before = await ari_counts(controller) if controller else (Counter(), Counter())
    store_before = await store_counts(controller) if controller else Counter()
    started = time.monotonic()
    calls, failed = await place_calls(setup, did_pattern, rate)
    await asyncio.sleep(1.5)
    window_s = time.monotonic() - started
    for process in perf:
        process.send_signal(signal.SIGINT)  # perf writes its file on SIGINT
        await process.wait()
    done = max(1, calls - failed)
    result = Result(calls, failed,
                    (cpu_seconds(pid) - before[1]) * 1000 / done if pid else None,
                    (cpu_seconds(asterisk_pid) - before[0]) * 1000 / done,
                    latencies.percentile(50), latencies.percentile(99), latencies.offered_rate(),
                    load=os.getloadavg()[0], left_behind=left, ami_events=latencies.ami_events.copy(),
                    perf=perf_stat_counts(perf_name) if perf else {}, window_s=window_s)
    if controller and pid and controller.process and controller.process.poll() is None:
        result.rss_mb = rss_mb(pid)
        requests, events = await ari_counts(controller)
        result.requests = requests - counts_before[0]
        result.events = events - counts_before[1]
        result.store = await store_counts(controller) - store_before
    return result


async def measure_floor(setup: Setup, asterisk_pid: int, latencies: Latencies, round_number: int = 1
                        ) -> dict[int, Result]:
    """Every rate through `floor_app`, the bare ARI application (it takes the controller's application name, so
    it runs alone, before the controller starts)."""
    log = Path(tempfile.mkdtemp(prefix="ccc-bench-floor-")) / "floor.log"
    with log.open("wb") as errors:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.bench.floor_app", str(setup.agents), str(setup.queues), cwd=REPO,
            stdout=asyncio.subprocess.PIPE, stderr=errors)
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line.strip() == b"ready", f"floor_app did not start: {line!r}"
        return {rate: await measure(setup, OURS_DID, rate, asterisk_pid, latencies, None, process.pid, round_number)
                for rate in RATES}
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()
        if process.returncode not in (0, -signal.SIGTERM):
            print(f"floor_app exited with {process.returncode}; {log}:\n{log.read_text()[-2000:]}", flush=True)
        await hang_up_everything()  # (its bridges too: the controller makes its own)


async def settled(pid: int, idle_share: float = 0.03, limit_s: float = 120.0) -> None:
    """Wait until the process is idle (under `idle_share` of a core over a second): the controller renders the
    agents' number announcements after its start (README "ACD"), which is not the calls' cost."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        await asyncio.sleep(1.0)
        if cpu_seconds(pid) - before < idle_share:
            return


async def idle_cpu_ms_per_s(pid: int, seconds: float = 5.0) -> float:
    """The process's CPU over `seconds` with nothing to do (agents logged in, no call): its cost per unit of time."""
    before = cpu_seconds(pid)
    await asyncio.sleep(seconds)
    return (cpu_seconds(pid) - before) * 1000 / seconds


async def cti_client(process: ControllerProcess, seen: list[int]) -> None:
    """A CTI client reading every event (what a wallboard or CRM connector does)."""
    url = f"{process.url.replace('http', 'ws')}/ws?token={ADMIN_TOKEN}"
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        async for _message in ws:
            seen[0] += 1


async def start_profiler(controller: ControllerProcess, output: str) -> asyncio.subprocess.Process | None:
    """py-spy sampling the controller (README "Benchmarks": how to read the result), when asked for."""
    if not output or controller.process is None:
        return None
    py_spy = Path(sys.executable).parent / "py-spy"
    return await asyncio.create_subprocess_exec(
        str(py_spy), "record", "--pid", str(controller.process.pid), "--format", "raw", "--rate", "200",
        "--nonblocking", "--output", output, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


def profile_path(setup: Setup) -> str:
    """CCC_BENCH_PROFILE for the first setup, `<it>.<agents>x<queues>` for the others."""
    if not PROFILE or setup == SETUPS[0]:
        return PROFILE
    return f"{PROFILE}.{setup.agents}x{setup.queues}"


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
    print(f"profile {path}: {total} samples (py-spy, 200 Hz, every thread, idle excluded)")
    for title, counter in (("own time", own), ("inclusive, controller code", inclusive)):
        print(f"  {title}:")
        for frame, samples in counter.most_common(top):
            print(f"    {samples * 100 / max(1, total):5.1f}%  {frame[:150]}")


@dataclass
class SetupResults:
    setup: Setup
    app_queue: dict[int, Result] = field(default_factory=dict)
    controller: dict[int, Result] = field(default_factory=dict)
    floor: dict[int, Result] = field(default_factory=dict)  # CCC_BENCH_FLOOR: the bare ARI application's
    cti_events: int = 0
    reload_s: float = 0.0
    controller_exit: str = ""  # why the controller's rates stopped early
    idle_ms_per_s: float | None = None  # the controller's CPU idle, agents logged in (ms per second)


async def run_setup(setup: Setup, asterisk_pid: int) -> SetupResults:
    """Every handler at every rate on one setup (its endpoints, queues and phones exist for this setup only),
    CCC_BENCH_ROUNDS times: with more than one round, each round's table, then the medians' (`summarize_rounds`)."""
    started = time.monotonic()
    reload_s = install_asterisk_config(setup)
    print(f"{setup.name}: Asterisk's endpoints, queues and dialplan loaded in {reload_s:.1f} s", flush=True)
    manager = Manager(host="127.0.0.1", port=5038, username="bench", secret="bench-ami")
    latencies = Latencies(setup.queues)
    manager.register_event("DTMFEnd", latencies.on_dtmf)
    manager.register_event("Newstate", latencies.on_newstate)
    if AMI_EVENTS:
        manager.register_event("*", latencies.on_any)
    await manager.connect()
    phones = [Phone(PHONE_PORT + p, answer_after_ms=ANSWER_MS, hold_ms=TALK_MS, calls=10_000_000, timeout_s=3600)
              for p in range(setup.phones)]
    for phone in phones:
        phone.extra += ["-l", "10000"]  # calls at once: never the limit
    rounds: list[SetupResults] = []
    try:
        for phone in phones:
            await phone.start()
        app_queue_loaded = True
        for number in range(1, ROUNDS + 1):
            out = SetupResults(setup, reload_s=reload_s)
            for handler in round_order(number):
                if handler == "app_queue":
                    if not app_queue_loaded:
                        load_app_queue_queues(setup)
                        app_queue_loaded = True
                    out.app_queue = {rate: await measure(setup, APP_QUEUE_DID, rate, asterisk_pid, latencies, None,
                                                         round_number=number) for rate in RATES}
                    continue
                if app_queue_loaded:
                    drop_app_queue_queues()
                    app_queue_loaded = False
                if handler == "floor":
                    out.floor = await measure_floor(setup, asterisk_pid, latencies, number)
                else:
                    await run_controller(out, asterisk_pid, latencies, number)
            rounds.append(out)
            if ROUNDS > 1:
                print_table(out, f"round {number} of {ROUNDS}, handlers in this order: "
                                 f"{', '.join(round_order(number))}")
    finally:
        for phone in phones:
            phone.kill()
        manager.close()
        remove_asterisk_config()
    if ROUNDS == 1:
        result = rounds[0]
        print_table(result)
    else:
        result = summarize_rounds(rounds)
        print_table(result, f"MEDIAN of {ROUNDS} rounds per handler and rate: failed calls and calls summed over the "
                            "rounds; ctl/ast, total and x app_q computed from the medians (total = median ctl ms + "
                            "median ast ms); ARI requests, events, store and CTI per call over all rounds' calls")
    print(f"({setup.name}: {time.monotonic() - started:.0f} s)", flush=True)
    return result


def round_order(number: int) -> list[str]:
    """The handlers of round `number` (from 1) in the order they run: app_queue[, floor], controller in odd rounds,
    the reverse in even ones, so that over an even number of rounds each handler runs as early on average as the
    others (a machine whose load drifts during the run favours none of them)."""
    order = ["app_queue", *(["floor"] if FLOOR else []), "controller"]
    return order if number % 2 else order[::-1]


async def run_controller(out: SetupResults, asterisk_pid: int, latencies: Latencies, round_number: int) -> None:
    """A fresh controller (its own data directory: every round starts alike) with its agents logged in and a CTI
    client, through every rate; the results go into `out`. app_queue's queues must be out of Asterisk."""
    setup = out.setup
    data = Path(tempfile.mkdtemp(prefix="ccc-bench-fullpath-"))
    controller = ControllerProcess(data / "data", config=controller_config(data, setup),
                                   env={"CCC_LOG_LEVEL": "warning"})
    await controller.start()
    cti_seen = [0]
    cti = asyncio.create_task(cti_client(controller, cti_seen))
    try:
        for n in range(setup.agents):
            status, body = await controller.api("POST", f"/api/agents/{5000 + n}/login", json={"ready": True})
            assert status == 200, body
        assert controller.process is not None
        await settled(controller.process.pid)
        out.idle_ms_per_s = await idle_cpu_ms_per_s(controller.process.pid)
        profiler = await start_profiler(controller, profile_path(setup)) if round_number == 1 else None
        for rate in RATES:
            if controller.process.poll() is not None:  # a crash under load: report it, go on with the next setup
                out.controller_exit = (f"the controller exited (code {controller.process.returncode}) before "
                                       f"{rate} calls/s; its log: {controller.log}")
                break
            out.controller[rate] = await measure(setup, OURS_DID, rate, asterisk_pid, latencies, controller,
                                                 round_number=round_number)
        if controller.process.poll() is not None and not out.controller_exit:
            out.controller_exit = (f"the controller exited (code {controller.process.returncode}) during or after "
                                   f"{max(out.controller, default=0)} calls/s; its log: {controller.log}")
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            await profiler.wait()
    finally:
        cti.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
            await cti
        out.cti_events = cti_seen[0]
        controller.terminate()
        await hang_up_everything()


def _median(values: list[float | None]) -> float | None:
    measured = [value for value in values if value is not None]
    return statistics.median(measured) if measured else None


def median_result(results: list[Result]) -> Result:
    """One handler's rounds at one rate as one row: the median of each figure per call or per rate (CPU, key ->
    ringing, offered rate, RSS, load); calls, failed calls, channels left behind and the counters summed (a failure
    in any round shows; the counters per call are then over all the rounds' calls)."""
    counters: list[Counter[str]] = [Counter(), Counter(), Counter(), Counter()]
    perf: Counter[str] = Counter()
    for r in results:
        for total, counts in zip(counters, (r.requests, r.events, r.ami_events, r.store), strict=True):
            total.update(counts)
        perf.update(r.perf)
    return Result(
        calls=sum(r.calls for r in results), failed=sum(r.failed for r in results),
        controller_ms=_median([r.controller_ms for r in results]),
        asterisk_ms=statistics.median(r.asterisk_ms for r in results),
        p50=_median([r.p50 for r in results]), p99=_median([r.p99 for r in results]),
        offered=_median([r.offered for r in results]), rss_mb=_median([r.rss_mb for r in results]),
        requests=counters[0], events=counters[1], ami_events=counters[2], store=counters[3], perf=dict(perf),
        load=statistics.median(r.load for r in results), left_behind=sum(r.left_behind for r in results),
        window_s=sum(r.window_s for r in results))


def summarize_rounds(rounds: list[SetupResults]) -> SetupResults:
    """A setup's rounds as one SetupResults of `median_result` rows per handler and rate (a rate a round lacks,
    after its controller exited, is the median of the rounds that have it); printed and held against the targets
    like one round's."""
    first = rounds[0]

    def medians(handler: str) -> dict[int, Result]:
        by_rate: dict[int, list[Result]] = {}
        for out in rounds:
            for rate, result in getattr(out, handler).items():
                by_rate.setdefault(rate, []).append(result)
        return {rate: median_result(results) for rate, results in by_rate.items()}

    return SetupResults(
        first.setup, app_queue=medians("app_queue"), controller=medians("controller"), floor=medians("floor"),
        cti_events=sum(out.cti_events for out in rounds), reload_s=first.reload_s,
        controller_exit="; ".join(f"round {n}: {out.controller_exit}" for n, out in enumerate(rounds, 1)
                                  if out.controller_exit),
        idle_ms_per_s=_median([out.idle_ms_per_s for out in rounds]))


async def run() -> None:
    if ROUNDS < 1:
        raise SystemExit(f"CCC_BENCH_ROUNDS must be 1 or more, not {ROUNDS}")
    await print_wake_cost()
    sandbox.start()
    asterisk_pid = sandbox._pid()
    assert asterisk_pid is not None
    results = [await run_setup(setup, asterisk_pid) for setup in SETUPS]
    print_targets(results)
    await print_wake_cost()
    for setup in SETUPS:
        if profile_path(setup):
            summarize_profile(Path(profile_path(setup)))


async def print_wake_cost() -> None:
    """What this machine charges for a sparse wake-up (tests/bench/wake_probe.py), in a process of its own."""
    probe = await asyncio.create_subprocess_exec(sys.executable, "-m", "tests.bench.wake_probe", cwd=REPO,
                                                 stdout=asyncio.subprocess.PIPE)
    out, _ = await probe.communicate()
    print(out.decode().strip(), flush=True)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def _top(counter: Counter[str], per: int, most: int = 12) -> str:
    return ", ".join(f"{name} {count / per:.1f}" for name, count in counter.most_common(most))


def print_table(out: SetupResults, title: str = "") -> None:
    """One setup's rows (`title`, when given, says which round or that they are the rounds' medians)."""
    setup = out.setup
    if title:
        print(f"\n{title}:", end="")
    print(f"\n{setup.name} on {setup.phones} SIPp phone(s) (the agents take about {setup.agent_capacity:.0f} calls/s);"
          f" {SECONDS:.0f} s of calls per rate, CPU per completed call; each call: 1 s prompt, key 1, 2-digit entry,"
          f" queue, agent answers, {TALK_MS / 1000:.0f} s talk, agent hangs up")
    print(f"{'handler':<10} {'calls/s':>7} {'menu/s':>6} {'calls':>5} {'failed':>6} {'ctl ms':>6} {'ast ms':>6} "
          f"{'ctl/ast':>7} {'total':>6} {'x app_q':>7} {'key->ring p50/p99 ms':>20} {'RSS MB':>6} "
          f"{'ARI req':>7} {'events':>6} {'load':>5}")
    for handler, by_rate in (("app_queue", out.app_queue), ("floor", out.floor), ("controller", out.controller)):
        for rate, r in by_rate.items():
            done = max(1, r.calls - r.failed)
            base = out.app_queue.get(rate)
            ratio = f"{r.total_ms / base.asterisk_ms:.2f}" if base and base.asterisk_ms else "-"
            share = f"{r.controller_ms / r.asterisk_ms:.2f}" if r.controller_ms is not None and r.asterisk_ms else "-"
            print(f"{handler:<10} {rate:>7} {'-' if r.offered is None else f'{r.offered:.0f}':>6} {r.calls:>5} "
                  f"{r.failed:>6} {'-' if r.controller_ms is None else f'{r.controller_ms:.1f}':>6} "
                  f"{r.asterisk_ms:>6.1f} {share:>7} {r.total_ms:>6.1f} {ratio:>7} "
                  f"{_ms(r.p50) + '/' + _ms(r.p99):>20} {'-' if r.rss_mb is None else f'{r.rss_mb:.0f}':>6} "
                  f"{sum(r.requests.values()) / done if r.requests else 0:>7.1f} "
                  f"{sum(r.events.values()) / done if r.events else 0:>6.1f} {r.load:>5.1f}")
    for handler, by_rate in (("app_queue", out.app_queue), ("controller", out.controller)):
        for rate, r in by_rate.items():
            if r.left_behind:
                print(f"{handler} at {rate} calls/s: {r.left_behind} channels of the previous rate were still up"
                      " and were hung up before it")
    for rate, r in out.controller.items():
        done = max(1, r.calls - r.failed)
        print(f"at {rate} calls/s, per call: ARI requests {_top(r.requests, done)}")
        print(f"{'':>{len(str(rate)) + 16}}ARI events {_top(r.events, done)}")
        totals = Counter({name: n for name, n in r.store.items() if not name.startswith(STORE_KIND)})
        print(f"{'':>{len(str(rate)) + 16}}store and CTI {_top(totals, done)}")
        kinds = Counter({name.removeprefix(STORE_KIND): n for name, n in r.store.items()
                         if name.startswith(STORE_KIND)})
        print(f"{'':>{len(str(rate)) + 16}}store statements by kind {_top(kinds, done, 30)}")
    print(f"CTI events read by the WebSocket client: {out.cti_events}", flush=True)
    if out.idle_ms_per_s is not None:
        print(f"controller CPU idle ({setup.agents} agents logged in, no call): {out.idle_ms_per_s:.1f} ms per second")
    for rate, r in out.controller.items():
        if r.controller_ms is not None and r.window_s:
            done = max(1, r.calls - r.failed)
            print(f"at {rate} calls/s: controller CPU {r.controller_ms * done / r.window_s:.0f} ms per second over"
                  f" {r.window_s:.1f} s")
    for handler, by_rate in (("app_queue", out.app_queue), ("controller", out.controller)):
        for rate, r in by_rate.items():
            done = max(1, r.calls - r.failed)
            if r.perf:
                print(f"{handler} at {rate} calls/s, Asterisk per call (perf stat): "
                      f"{r.perf.get('task-clock', 0) / done:.1f} ms task-clock, "
                      f"{r.perf.get('context-switches', 0) / done:.0f} context switches, "
                      f"{r.perf.get('raw_syscalls:sys_enter', 0) / done:.0f} system calls")
            if AMI_EVENTS:
                print(f"{handler} at {rate} calls/s, AMI events per call: {sum(r.ami_events.values()) / done:.1f}: "
                      + ", ".join(f"{name} {count / done:.1f}" for name, count in r.ami_events.most_common(60)))
    if out.controller_exit:
        print(f"NOTE: {out.controller_exit}", flush=True)


def _span(values: list[float], unit: str, digits: int = 1) -> str:
    if not values:
        return "-"
    low, high = min(values), max(values)
    return f"{low:.{digits}f}{unit}" if high - low < 10 ** -digits else f"{low:.{digits}f}-{high:.{digits}f}{unit}"


def _verdict(met: bool | None) -> str:
    return "not measured" if met is None else "met" if met else "NOT MET"


def targets(out: SetupResults) -> list[tuple[str, str, bool | None]]:
    """Issue 19's targets for one setup: (target, measured, met); None = no rate measured it.

    CPU figures count the rates where our controller failed no call; key -> ringing the rates below the agents'
    capacity (above it callers wait for a free agent) where it failed none."""
    clean = {rate: r for rate, r in out.controller.items() if r.failed == 0}
    controller_ms = [r.controller_ms for r in clean.values() if r.controller_ms is not None]
    shares = [r.controller_ms / r.asterisk_ms for r in clean.values() if r.controller_ms is not None and r.asterisk_ms]
    ratios = [r.total_ms / out.app_queue[rate].asterisk_ms for rate, r in clean.items()
              if rate in out.app_queue and out.app_queue[rate].failed == 0 and out.app_queue[rate].asterisk_ms]
    below = {rate: r.p99 * 1000 for rate, r in clean.items() if rate < out.setup.agent_capacity and r.p99 is not None}
    at_saturation = out.controller.get(SATURATION_RATE)
    rows: list[tuple[str, str, bool | None]] = [
        ("controller CPU per call <= 8 ms", _span(controller_ms, " ms"),
         max(controller_ms) <= 8 if controller_ms else None),
        ("controller <= 1/4 of Asterisk's CPU", _span(shares, "", 2), max(shares) <= 0.25 if shares else None),
        ("total CPU per call <= 1.3x app_queue's", _span(ratios, "x", 2), max(ratios) <= 1.3 if ratios else None),
    ]
    if out.setup.agents >= 500:  # where app_queue's queues x members device-state work shows (asterisk#1961)
        rows.append(("total CPU per call < app_queue's", _span(ratios, "x", 2), max(ratios) < 1 if ratios else None))
    rows += [
        (f"no failed call at {SATURATION_RATE} calls/s",
         f"{at_saturation.failed} of {at_saturation.calls} failed" if at_saturation
         else "controller exited" if out.controller_exit and SATURATION_RATE in RATES else "-",
         at_saturation.failed == 0 if at_saturation else False if out.controller_exit and SATURATION_RATE in RATES
         else None),
        ("key -> ringing p99 < 20 ms below saturation",
         ", ".join(f"{p99:.0f} ms at {rate}/s" for rate, p99 in below.items()) or "-",
         max(below.values()) < 20 if below else None),
    ]
    return rows


def print_targets(results: list[SetupResults]) -> None:
    """Issue 19's targets, each with the figure measured in this run: printed, never asserted (a speed target in
    a test would fail on a loaded machine; `make bench` is where they are read)."""
    print(f"\ntargets (issue 19), rates {', '.join(map(str, RATES))} calls/s; CPU over the rates where the "
          "controller failed no call, ratios against app_queue at the same rate"
          + (f" (the medians of {ROUNDS} rounds; a failure in any round counts):" if ROUNDS > 1 else ":"))
    for out in results:
        print(f"  {out.setup.name}:")
        for target, measured, met in targets(out):
            print(f"    {target:<46} {measured:>30}   {_verdict(met)}")


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
