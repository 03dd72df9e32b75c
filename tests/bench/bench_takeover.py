"""Takeover by a standby controller (README "Active/standby controllers"), on the real Asterisk and PostgreSQL.

Two controllers on one PostgreSQL database (tests/pg_server.py), 20 live calls (5 talking with the demo's SIPp
phones, 5 waiting in the queue, 10 in an IVR menu). The leader is SIGKILLed; printed: the time from the kill
until the standby owns every live call (`active_calls` of its /api/status, and the waiting callers back in its
queue). Then the same with the leader cut off from PostgreSQL (a proxy that stops passing bytes): the standby
waits for the lease to expire (lease_seconds 3, renew_interval 0.5).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from tests.e2e.conftest import REPO, ControllerProcess, hang_up_everything
from tests.e2e.test_standby import (
    FULL,
    BlackholeProxy,
    check_nothing_lost,
    start_center,
    takeover_seconds,
)
from tests.pg_server import PostgresServer

sys.path.insert(0, str(REPO / "tools"))
import sandbox


async def one(postgres: PostgresServer, how: str) -> None:
    processes: list[ControllerProcess] = []
    proxy = BlackholeProxy(postgres.port)
    await proxy.start()
    center = None
    try:
        await hang_up_everything()
        center = await start_center(Path(tempfile.mkdtemp(prefix=f"ccc-bench-takeover-{how}-")), postgres, FULL,
                                    processes, leader_store_port=proxy.port if how == "cut off" else None)
        gone_at = time.monotonic()
        if how == "SIGKILL":
            center.leader.kill()
        else:
            proxy.cut.set()
        took = await takeover_seconds(center, gone_at)
        print(f"leader {how} with {FULL.total} live calls ({FULL.talking} talking, {FULL.waiting} waiting,"
              f" {FULL.in_menu} in an IVR menu): every call owned by the standby {took:.2f} s later"
              f" (target < 5 s; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)", flush=True)
        await check_nothing_lost(center)
        print(f"  every caller completed, one record per call, CTI sequence numbers without a gap ({how})")
    finally:
        if center is not None:
            center.kill_sipp()
        for process in processes:
            process.terminate()
        await proxy.close()
        await hang_up_everything()


async def run() -> None:
    sandbox.start()
    postgres = PostgresServer()
    postgres.start()
    try:
        for how in ("SIGKILL", "cut off"):
            await one(postgres, how)
    finally:
        postgres.stop()


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
