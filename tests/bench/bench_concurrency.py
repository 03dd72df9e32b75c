"""Many calls at once, and a long steady run (issue 19): memory, event lag, routing, and leaks.

1. **Concurrency**: `CCC_BENCH_CONCURRENT` calls (1,000) arrive (`CCC_BENCH_RAMP_RATE`, 50 calls/s) and wait in
   two queues with music on hold (their agents are logged in, not ready): all of them in Stasis in one
   controller process. Printed: the controller's RSS idle and with every call waiting (target under 200 MB),
   the ARI event lag's p99 over the ramp (`ccc_ari_event_lag_seconds`, target under 50 ms), then
   `CCC_BENCH_CONCURRENCY_AGENTS` agents (50) go ready at once: the time from that to each of their phones
   ringing (p50/p99/max), and to the last waiting call answered.
2. **Soak**: calls at a steady rate (`CCC_BENCH_SOAK_RATE`, 2 calls/s) for `CCC_BENCH_SOAK_MINUTES` (10; or
   `--minutes N` when run as `python -m tests.bench.bench_concurrency`): queue, agent answers, 1 s of talk.
   Printed: RSS, asyncio tasks, open files and store backlog at the start, every `CCC_BENCH_SOAK_SAMPLE_SECONDS`
   (60) and at the end, idle before against idle after (what a leak would grow), and the RSS's slope in MB per
   minute after `CCC_BENCH_SOAK_WARMUP_MINUTES` (2) of warm-up (least squares over the samples). With
   `CCC_TRACEMALLOC=<frames>` in the environment the controller traces its allocations and the soak sends it
   SIGUSR2 at each sample: its `tracemalloc-*.txt` reports (what grew between two samples) are left in the data
   directory printed.

Agents' endpoints and phones as in bench_fullpath (one SIPp phone answers for every endpoint).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import tempfile
import time
from pathlib import Path

from panoramisk import Manager

from tests.bench import bench_fullpath as fullpath
from tests.bench.bench_calls import _sipp_count, cpu_seconds
from tests.e2e.conftest import ControllerProcess, hang_up_everything
from tests.sipp import Caller, Phone, WaitForBye

CONCURRENT = int(os.environ.get("CCC_BENCH_CONCURRENT", "1000"))
RAMP_RATE = float(os.environ.get("CCC_BENCH_RAMP_RATE", "50"))
AGENTS = min(fullpath.AGENTS, int(os.environ.get("CCC_BENCH_CONCURRENCY_AGENTS", "50")))
QUEUES = fullpath.QUEUES
SOAK_MINUTES = float(os.environ.get("CCC_BENCH_SOAK_MINUTES", "10"))
SOAK_RATE = float(os.environ.get("CCC_BENCH_SOAK_RATE", "2"))
SOAK_SAMPLE_SECONDS = float(os.environ.get("CCC_BENCH_SOAK_SAMPLE_SECONDS", "60"))
# What fills up in the first minutes (bounded caches: the CTI events kept for replays, the last 500 talk and ring
# times per queue) is left out of the slope.
SOAK_WARMUP_MINUTES = float(os.environ.get("CCC_BENCH_SOAK_WARMUP_MINUTES", "2"))
TRACING = bool(os.environ.get("CCC_TRACEMALLOC"))  # the controller inherits it (controller/memtrace.py)
DID = "40080053{:02d}"
TALK_MS = 1000
STARTED: list[Caller] = []  # SIPp callers, killed at the end whatever happens


def controller_config(data: Path) -> Path:
    return fullpath.bench_config(data, "wait", DID, "", AGENTS, max_wait=3600)


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def metrics(process: ControllerProcess) -> str:
    status, text = await process.api("GET", "/metrics")
    assert status == 200, text
    return str(text)


def metric(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name + labels)} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def lag_buckets(text: str) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of `ccc_ari_event_lag_seconds`."""
    return [(float("inf") if bound == "+Inf" else float(bound), float(count)) for bound, count in
            re.findall(r'^ccc_ari_event_lag_seconds_bucket\{le="([^"]+)"\} ([0-9.e+]+)$', text, re.MULTILINE)]


def lag_quantile(before: str, after: str, q: float) -> tuple[float, int]:
    """The q-quantile's bucket bound of the events read between the two scrapes, and their number."""
    start = dict(lag_buckets(before))
    deltas = [(bound, count - start.get(bound, 0.0)) for bound, count in lag_buckets(after)]
    total = deltas[-1][1] if deltas else 0.0
    for bound, count in deltas:
        if count >= q * total:
            return bound, int(total)
    return float("inf"), int(total)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] if ordered else float("nan")


async def until(condition: object, timeout: float, what: str) -> float:
    """Poll `condition()` (async) each 0.2 s; the seconds it took. Raises after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await condition():  # type: ignore[operator]
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s")


class Rings:
    """When each agent endpoint's phone starts ringing (AMI Newstate Ringing)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_newstate(self, _manager: Manager, event: dict[str, str]) -> None:
        if event.get("ChannelStateDesc") == "Ringing" and event.get("Channel", "").startswith("PJSIP/bench"):
            self.times.append(time.monotonic())


async def concurrency(controller: ControllerProcess, rings: Rings) -> None:
    assert controller.process is not None
    pid = controller.process.pid
    idle_rss, idle_text = fullpath.rss_mb(pid), await metrics(controller)
    await trace_report(controller)  # with CCC_TRACEMALLOC: the next report is what the waiting calls hold
    per_queue = CONCURRENT // QUEUES
    callers = [Caller(DID.format(q), steps=[WaitForBye(timeout_ms=900_000)], calls=per_queue,
                      rate=RAMP_RATE / QUEUES, timeout_s=1200) for q in range(QUEUES)]
    STARTED.extend(callers)
    for caller in callers:
        caller.extra += ["-l", str(per_queue)]
        await caller.start()
    started, cpu_before = time.monotonic(), cpu_seconds(pid)

    async def all_waiting() -> bool:
        return metric(await metrics(controller), "ccc_calls", '{state="queued"}') >= per_queue * QUEUES

    ramp = await until(all_waiting, per_queue * QUEUES / RAMP_RATE + 120, f"{per_queue * QUEUES} calls waiting")
    await asyncio.sleep(5.0)  # every call waiting, music playing
    text = await metrics(controller)
    rss, files, tasks = fullpath.rss_mb(pid), open_files(pid), metric(text, "ccc_asyncio_tasks")
    await trace_report(controller)
    cpu = cpu_seconds(pid) - cpu_before
    p99, events = lag_quantile(idle_text, text, 0.99)
    p50, _ = lag_quantile(idle_text, text, 0.50)
    print(f"{per_queue * QUEUES} calls waiting in {QUEUES} queues with music, all in Stasis after {ramp:.1f} s "
          f"(started {time.monotonic() - started:.0f} s ago; load {os.getloadavg()[0]:.1f}):")
    print(f"  controller RSS: {idle_rss:.0f} MB idle -> {rss:.0f} MB with every call waiting "
          f"({(rss - idle_rss) * 1024 / max(1, per_queue * QUEUES):.0f} kB per call); target < 200 MB")
    print(f"  asyncio tasks {tasks:.0f}, open files {files}, controller CPU {cpu * 1000 / (per_queue * QUEUES):.1f} ms"
          f" per call up to now")
    print(f"  ARI event lag over {events} events: p50 <= {p50 * 1000:g} ms, p99 <= {p99 * 1000:g} ms "
          f"(histogram bucket bounds); target p99 < 50 ms")

    rings.times.clear()
    ready_at = time.monotonic()
    results = await asyncio.gather(*(controller.api("POST", f"/api/agents/{5000 + n}/ready")
                                     for n in range(AGENTS)))
    assert all(status == 200 for status, _ in results), results

    async def first_rings() -> bool:
        return len(rings.times) >= AGENTS

    await until(first_rings, 60, f"{AGENTS} agents' phones ringing")
    to_ring = [t - ready_at for t in rings.times[:AGENTS]]

    async def none_waiting() -> bool:
        return metric(await metrics(controller), "ccc_calls", '{state="queued"}') == 0

    drained = await until(none_waiting, per_queue * QUEUES * 2 + 120, "every waiting call answered")
    failed = 0
    for caller in callers:
        result = await caller.wait()
        failed += _sipp_count(result.output, "Failed call")
    print(f"  {AGENTS} agents ready at once: ready -> phone ringing p50 {percentile(to_ring, 50) * 1000:.0f} ms, "
          f"p99 {percentile(to_ring, 99) * 1000:.0f} ms, max {max(to_ring) * 1000:.0f} ms; the last waiting call "
          f"answered after {drained:.1f} s; failed calls {failed}")


def slope_per_minute(samples: list[dict[str, float]], key: str) -> float:
    """The least-squares slope of `key` against the samples' `minute` (nan with fewer than two samples)."""
    if len(samples) < 2:
        return float("nan")
    mean_t = sum(s["minute"] for s in samples) / len(samples)
    mean_v = sum(s[key] for s in samples) / len(samples)
    spread = sum((s["minute"] - mean_t) ** 2 for s in samples)
    return sum((s["minute"] - mean_t) * (s[key] - mean_v) for s in samples) / spread if spread else float("nan")


async def trace_report(controller: ControllerProcess) -> None:
    """With CCC_TRACEMALLOC, have the controller write a report of what grew since the previous one, and wait
    until it is written (the first one in a worker thread would ignore a second signal meanwhile)."""
    if not TRACING:
        return
    assert controller.process is not None
    written = controller.log.read_text().count("tracemalloc: traced")
    os.kill(controller.process.pid, signal.SIGUSR2)

    async def done() -> bool:
        return controller.log.read_text().count("tracemalloc: traced") > written

    await until(done, 120, "the tracemalloc report")


async def soak_sample(controller: ControllerProcess, label: str, minute: float = 0.0) -> dict[str, float]:
    assert controller.process is not None
    pid = controller.process.pid
    await trace_report(controller)
    text = await metrics(controller)
    sample = {"minute": minute, "rss_mb": fullpath.rss_mb(pid), "tasks": metric(text, "ccc_asyncio_tasks"),
              "files": float(open_files(pid)), "calls": sum(float(n) for n in re.findall(
                  r"^ccc_calls\{[^}]*\} ([0-9.e+]+)$", text, re.MULTILINE)),
              "store_pending": metric(text, "ccc_store_pending")}
    print(f"  {label:<14} RSS {sample['rss_mb']:6.1f} MB  tasks {sample['tasks']:5.0f}  open files "
          f"{sample['files']:4.0f}  live calls {sample['calls']:4.0f}  store pending {sample['store_pending']:.0f}",
          flush=True)
    return sample


async def soak(controller: ControllerProcess, minutes: float) -> None:
    calls = max(1, int(SOAK_RATE * minutes * 60))
    print(f"soak: {calls} calls at {SOAK_RATE:g} calls/s for {minutes:g} min (queue, agent answers, "
          f"{TALK_MS / 1000:g} s talk); {AGENTS} agents ready")
    await hang_up_everything()
    await asyncio.sleep(2.0)
    idle_before = await soak_sample(controller, "idle before")
    caller = Caller(DID.format(0), steps=[WaitForBye(timeout_ms=120_000)], calls=calls, rate=SOAK_RATE,
                    timeout_s=int(minutes * 60) + 300)
    STARTED.append(caller)
    caller.extra += ["-l", str(max(10, int(SOAK_RATE * 30)))]
    await caller.start()
    started = time.monotonic()
    samples = []
    while caller.process is not None and caller.process.returncode is None:
        minute = (time.monotonic() - started) / 60
        samples.append(await soak_sample(controller, f"{minute:.1f} min", minute))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(caller.process.wait()), timeout=SOAK_SAMPLE_SECONDS)
    result = await caller.wait()
    failed = _sipp_count(result.output, "Failed call")
    await asyncio.sleep(3.0)
    idle_after = await soak_sample(controller, "idle after")
    warm = [sample for sample in samples if sample["minute"] >= SOAK_WARMUP_MINUTES] or samples[-1:]
    first, last = warm[0], warm[-1]
    print(f"  failed calls {failed} of {calls}; after {SOAK_WARMUP_MINUTES:g} min of warm-up: RSS "
          f"{last['rss_mb'] - first['rss_mb']:+.1f} MB, slope {slope_per_minute(warm, 'rss_mb'):+.2f} MB/min "
          f"({len(warm)} samples); idle before -> idle after: RSS "
          f"{idle_after['rss_mb'] - idle_before['rss_mb']:+.1f} MB, tasks "
          f"{idle_after['tasks'] - idle_before['tasks']:+.0f}, open files "
          f"{idle_after['files'] - idle_before['files']:+.0f}")
    if TRACING:
        reports = sorted(controller.data_dir.glob("tracemalloc-*.txt"))
        print(f"  tracemalloc: {len(reports)} reports in {controller.data_dir}")


async def run(minutes: float) -> None:
    fullpath.sandbox.start()
    fullpath.install_asterisk_config()
    rings = Rings()
    manager = Manager(host="127.0.0.1", port=5038, username="bench", secret="bench-ami")
    manager.register_event("Newstate", rings.on_newstate)
    await manager.connect()
    phone = Phone(fullpath.PHONE_PORT, answer_after_ms=100, hold_ms=TALK_MS, calls=10_000_000, timeout_s=7200)
    data = Path(tempfile.mkdtemp(prefix="ccc-bench-concurrency-"))
    controller = ControllerProcess(data / "data", config=controller_config(data), env={"CCC_LOG_LEVEL": "warning"})
    try:
        await phone.start()
        await hang_up_everything()
        await controller.start()
        assert controller.process is not None
        for n in range(AGENTS):
            status, body = await controller.api("POST", f"/api/agents/{5000 + n}/login", json={"ready": False})
            assert status == 200, body
        await fullpath.settled(controller.process.pid)
        await concurrency(controller, rings)
        if minutes > 0:
            await soak(controller, minutes)
    finally:
        for caller in STARTED:
            caller.kill()
        controller.terminate()
        phone.kill()
        manager.close()
        await hang_up_everything()
        fullpath.remove_asterisk_config()


def main(minutes: float = SOAK_MINUTES) -> None:
    asyncio.run(run(minutes))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=SOAK_MINUTES, help="the soak's length (0: none)")
    main(parser.parse_args().minutes)
