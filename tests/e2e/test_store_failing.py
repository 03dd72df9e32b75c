"""A failing store degrades, it does not stop the calls: with the controller's data directory on a
full disk (a tiny tmpfs in the controller's own mount namespace), a caller still reaches a ready
agent, the status says what is wrong, and once there is room again everything written meanwhile
is committed."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import REPO, ControllerProcess, demo_config
from tests.e2e.test_cli import ccctl
from tests.e2e.test_ivr_acd import ACD_DID, AGENTS, flows_dir, login
from tests.sipp import Caller, Phone, WaitForBye

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("nsenter")),
                       reason="needs root, unshare and nsenter to mount a tiny file system"),
]


class ControllerOnATinyDisk(ControllerProcess):
    """The controller with its data directory on an 8 MB tmpfs only it sees (its log stays outside)."""

    async def start(self, wait: bool = True) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        logfile = self.log.open("ab")  # opened before the mount: on the real disk
        script = (f"mount -t tmpfs -o size=8m,mode=0700 ccc-store-test {shlex.quote(str(self.data_dir))}"
                  f" && exec {shlex.quote(sys.executable)} -m controller --config {shlex.quote(str(self.config))}")
        self.process = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                                        env=self.env, stdout=logfile, stderr=subprocess.STDOUT, cwd=REPO)
        await self.wait_healthy()

    def in_its_namespace(self, command: str) -> None:
        assert self.process is not None
        subprocess.run(["nsenter", "-t", str(self.process.pid), "-m", "sh", "-c", command], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)

    def fill_the_disk(self) -> None:
        self.in_its_namespace(f"cat /dev/zero > {shlex.quote(str(self.data_dir / 'filler'))}")

    def free_the_disk(self) -> None:
        self.in_its_namespace(f"rm -f {shlex.quote(str(self.data_dir / 'filler'))}")


async def store_status(process: ControllerProcess) -> dict[str, Any]:
    status, body = await process.api("GET", "/api/status")
    assert status == 200, body
    return dict(body["controller"]["store"])


async def test_a_caller_reaches_an_agent_while_the_disk_is_full(fresh_asterisk: Path, tmp_path: Path) -> None:
    general = {"name": "general", "wrapup_seconds": 1, "ring_timeout": 8, "max_wait": 60, "announce_interval": 0,
               "no_agents": "wait"}
    config = demo_config(tmp_path, ivr={"flows_dir": str(flows_dir(tmp_path, "always"))},
                         acd={"center_name": "演示热线", "queues": [general], "agents": AGENTS})
    process = ControllerOnATinyDisk(tmp_path / "data", config=config)
    phone = Phone(15001, answer_after_ms=300, hold_ms=5000, calls=1)
    try:
        await process.start()
        await phone.start()
        assert (await store_status(process))["status"] == "ok"  # the positive twin of the check below

        process.fill_the_disk()
        await login(process, "1001")  # its state change cannot be committed: the store has a backlog
        await asyncio.sleep(1)
        # The caller has a number: its history is read before queueing (that read used to fail the call).
        caller = Caller(ACD_DID, caller="13800138000", steps=[WaitForBye(30000)])
        result = await caller.run()
        assert result.ok, result.errors
        assert (await phone.wait()).ok
        # Answered by the agent through the queue (the dialplan's fallback would ring the phone too).
        status, queue = await process.api("GET", "/api/queues/general")
        assert status == 200 and queue["answered"] == 1, queue

        store = await store_status(process)
        assert store["status"] == "degraded", store
        assert "full" in (store["last_error"] or ""), store
        assert store["pending"] > 0 and store["commit_failures"] > 0, store
        status, health = await process.api("GET", "/healthz")
        assert health["status"] == "degraded", health
        text = (await asyncio.to_thread(ccctl, "status", url=process.url)).stdout
        assert "store       DEGRADED since" in text and "database or disk is full" in text, text
        status, body = await process.api("GET", "/api/calls/nothing-like-this")
        assert status in (404, 503), body  # an API read still answers (404: read from what is committed)

        process.free_the_disk()
        deadline = time.monotonic() + 20
        while (store := await store_status(process))["status"] != "ok" and time.monotonic() < deadline:
            await asyncio.sleep(0.3)
        assert store["status"] == "ok" and store["pending"] == 0, store
        assert "store       ok" in (await asyncio.to_thread(ccctl, "status", url=process.url)).stdout
        # Nothing written while the disk was full was lost: the call's record, with its agent, is there.
        records = await process.wait_for_records(1)
        events = (await process.call_record(records[0]["call_id"]))["events"]
        answered = [event for event in events if event["kind"] == "agent_answered"]
        assert [event.get("agent_id") for event in answered] == ["1001"], events
        log_text = process.log.read_text()
        assert "store: commit failed" in log_text and "commits work again" in log_text
    finally:
        phone.kill()
        process.terminate()
        print(process.log.read_text()[-4000:])
