"""What this machine charges for waking a process that slept: the same Python work, woken 1, 5 and 20 ms apart.

Why it is in `make bench`: on the VMs these benches run on (Firecracker, kernel command line
`cpuidle_haltpoll.force=1 haltpoll.guest_halt_poll_ns=0`), an idle vCPU halts at once and the next wake-up runs on
cold caches. A process woken every 20 ms spends 2-3x the CPU of the same work woken every 1 ms (README
"Benchmarks", third round, seventh session). At 10 calls/s both the controller and Asterisk wake this sparsely, and
their CPU per call includes that; at 60-80 calls/s much less. So a figure per call at a low rate says as much about
the machine as about the code, and this line, measured in the same run, says how much.

A child process blocks on a pipe; the parent writes one byte per wake-up at the given spacing; the child does a
fixed piece of work (an ARI event's JSON parsed, kept and encoded again, UNITS times) and reports its own CPU time
(CLOCK_PROCESS_CPUTIME_ID: the scheduler's run time, in ns). Run it alone:

    .venv/bin/python -m tests.bench.wake_probe
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SPACINGS_MS = (1.0, 5.0, 20.0)
WAKE_UPS = 100  # per spacing: 2 s at 20 ms
UNITS = 20  # pieces of work per wake-up: ~0.1 ms when warm on these machines
HALT_POLL = Path("/sys/module/haltpoll/parameters/guest_halt_poll_ns")

_EVENT = json.dumps({
    "type": "ChannelDtmfReceived", "timestamp": "2026-11-27T10:00:00.000+0000", "application": "ccc", "digit": "1",
    "duration_ms": 120, "channel": {"id": "1764237600.1234", "name": "PJSIP/trunk-00000042", "state": "Up",
                                    "caller": {"name": "", "number": "13912345678"}, "language": "zh",
                                    "dialplan": {"context": "ccc-in", "exten": "4008005100", "priority": 4}},
})


@dataclass(frozen=True)
class WakeCost:
    spacing_ms: float
    cpu_us: float  # the child's CPU per wake-up


def _child(read_end: int, write_back: int) -> None:
    """Wake at each byte, do the work; at end of input, write the CPU time used to `write_back`."""
    kept: dict[int, str] = {}
    started = time.clock_gettime(time.CLOCK_PROCESS_CPUTIME_ID)
    while os.read(read_end, 1):
        for n in range(UNITS):
            kept[n] = json.dumps(json.loads(_EVENT))
    os.write(write_back, str(time.clock_gettime(time.CLOCK_PROCESS_CPUTIME_ID) - started).encode())


def cost_at(spacing_ms: float, wake_ups: int = WAKE_UPS) -> WakeCost:
    """The child's CPU per wake-up when woken every `spacing_ms`."""
    wake_read, wake_write = os.pipe()
    back_read, back_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        os.close(wake_write)
        os.close(back_read)
        try:
            _child(wake_read, back_write)
        finally:
            os._exit(0)
    os.close(wake_read)
    os.close(back_write)
    period = spacing_ms / 1000
    due = time.monotonic()
    for _ in range(wake_ups):
        due += period
        if (left := due - time.monotonic()) > 0:
            time.sleep(left)
        os.write(wake_write, b"x")
    os.close(wake_write)
    used = float(os.read(back_read, 64) or b"0")
    os.close(back_read)
    os.waitpid(pid, 0)
    return WakeCost(spacing_ms, used / wake_ups * 1e6)


def measure() -> list[WakeCost]:
    return [cost_at(spacing) for spacing in SPACINGS_MS]


def halt_poll_ns() -> str:
    """The guest's halt-poll window (0: an idle vCPU halts at once), or "-" where there is none."""
    try:
        return HALT_POLL.read_text().strip()
    except OSError:
        return "-"


def describe(costs: list[WakeCost]) -> str:
    figures = ", ".join(f"{cost.cpu_us:.0f} us at {cost.spacing_ms:g} ms" for cost in costs)
    ratio = costs[-1].cpu_us / costs[0].cpu_us if costs[0].cpu_us > 0 else float("nan")
    return (f"this machine: the same Python work per wake-up costs {figures} apart ({ratio:.1f}x when sparse; "
            f"guest halt-poll {halt_poll_ns()} ns): CPU per call at low rates includes cold wake-ups")


def main() -> int:
    print(describe(measure()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
