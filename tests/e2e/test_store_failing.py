"""A failing store degrades, it does not stop the calls: with the controller's data directory on a
full disk (a tiny tmpfs in the controller's own mount namespace), a caller still reaches a ready
agent, the status says what is wrong, and once there is room again everything written meanwhile
is committed; a stop while the disk is full saves what is unsaved and the next start commits it."""

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
    """The controller with its data directory on an 8 MB tmpfs that only it sees (its log stays on the real
    disk). A keeper process holds that mount namespace, so a controller can be started in it again."""

    keeper: subprocess.Popen[bytes] | None = None

    async def start(self, wait: bool = True) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.keeper is None:
            mount = f"mount -t tmpfs -o size=8m,mode=0700 ccc-store-test {shlex.quote(str(self.data_dir))}"
            self.keeper = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                            f"{mount} && echo mounted && exec sleep 600"], stdout=subprocess.PIPE)
            assert self.keeper.stdout is not None and self.keeper.stdout.readline() == b"mounted\n"
        logfile = self.log.open("ab")  # opened outside the namespace: on the real disk
        self.process = subprocess.Popen(
            ["nsenter", "-t", str(self.keeper.pid), "-m", sys.executable, "-m", "controller", "--config",
             str(self.config)], env=self.env, stdout=logfile, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            await self.wait_healthy()
        except BaseException:
            self.terminate()  # as ControllerProcess.start: never a half-started controller left
            raise

    def in_its_namespace(self, command: str) -> None:
        assert self.keeper is not None
        subprocess.run(["nsenter", "-t", str(self.keeper.pid), "-m", "sh", "-c", command], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)

    def fill_the_disk(self) -> None:
        self.in_its_namespace(f"cat /dev/zero > {shlex.quote(str(self.data_dir / 'filler'))}")

    def free_the_disk(self) -> None:
        self.in_its_namespace(f"rm -f {shlex.quote(str(self.data_dir / 'filler'))}")

    def end(self) -> None:
        self.terminate()
        if self.keeper is not None:
            self.keeper.kill()
            self.keeper.wait()
        print(self.log.read_text()[-4000:])


def queue_config(tmp_path: Path) -> Path:
    general = {"name": "general", "wrapup_seconds": 1, "ring_timeout": 8, "max_wait": 60, "announce_interval": 0,
               "no_agents": "wait"}
    return demo_config(tmp_path, ivr={"flows_dir": str(flows_dir(tmp_path, "always"))},
                       acd={"center_name": "演示热线", "queues": [general], "agents": AGENTS})


async def a_call_reaches_agent_1001(process: ControllerProcess, phone: Phone) -> None:
    """The caller has a number: its history is read before queueing (that read used to fail the call)."""
    caller = Caller(ACD_DID, caller="13800138000", steps=[WaitForBye(60_000)])
    result = await caller.run()
    assert result.ok, result.errors
    assert (await phone.wait()).ok
    # Answered by the agent through the queue (the dialplan's fallback would ring the phone too).
    status, queue = await process.api("GET", "/api/queues/general")
    assert status == 200 and queue["answered"] == 1, queue


async def answered_by_1001(process: ControllerProcess) -> None:
    """The call's record, with the agent who answered, is in the store."""
    records = await process.wait_for_records(1)
    events = (await process.call_record(records[0]["call_id"]))["events"]
    answered = [event for event in events if event["kind"] == "agent_answered"]
    assert [event.get("agent_id") for event in answered] == ["1001"], events


async def store_status(process: ControllerProcess) -> dict[str, Any]:
    status, body = await process.api("GET", "/api/status")
    assert status == 200, body
    return dict(body["controller"]["store"])


async def test_a_caller_reaches_an_agent_while_the_disk_is_full(fresh_asterisk: Path, tmp_path: Path) -> None:
    process = ControllerOnATinyDisk(tmp_path / "data", config=queue_config(tmp_path))
    phone = Phone(15001, answer_after_ms=300, hold_ms=5000, calls=1)
    try:
        await process.start()
        await phone.start()
        assert (await store_status(process))["status"] == "ok"  # the positive twin of the check below

        process.fill_the_disk()
        await login(process, "1001")  # its state change cannot be committed: the store has a backlog
        await asyncio.sleep(1)
        await a_call_reaches_agent_1001(process, phone)

        store = await store_status(process)
        assert store["status"] == "degraded", store
        assert "full" in (store["last_error"] or ""), store
        assert store["pending"] > 0 and store["commit_failures"] > 0, store
        status, health = await process.api("GET", "/healthz")
        assert health["status"] == "degraded", health
        text = (await asyncio.to_thread(ccctl, "status", url=process.url)).stdout
        assert "store       DEGRADED since" in text and "database or disk is full" in text, text
        status, metrics = await process.api("GET", "/metrics")
        assert "ccc_store_ok 0.0" in metrics and "ccc_store_pending 0.0" not in metrics, metrics
        status, body = await process.api("GET", "/api/calls/nothing-like-this")
        assert status in (404, 503), body  # an API read still answers (404: read from what is committed)

        process.free_the_disk()
        deadline = time.monotonic() + 20
        while (store := await store_status(process))["status"] != "ok" and time.monotonic() < deadline:
            await asyncio.sleep(0.3)
        assert store["status"] == "ok" and store["pending"] == 0, store
        assert "store       ok" in (await asyncio.to_thread(ccctl, "status", url=process.url)).stdout
        status, metrics = await process.api("GET", "/metrics")
        assert "ccc_store_ok 1.0" in metrics and "ccc_store_pending 0.0" in metrics, metrics
        await answered_by_1001(process)  # nothing written while the disk was full was lost
        log_text = process.log.read_text()
        assert "store: commit failed" in log_text and "commits work again" in log_text
    finally:
        phone.kill()
        process.end()


async def test_a_stop_while_the_disk_is_full_saves_what_is_unsaved_for_the_next_start(
        fresh_asterisk: Path, tmp_path: Path) -> None:
    process = ControllerOnATinyDisk(tmp_path / "data", config=queue_config(tmp_path))
    phone = Phone(15001, answer_after_ms=300, hold_ms=3000, calls=1)
    try:
        await process.start()
        await phone.start()
        process.fill_the_disk()
        await login(process, "1001")
        await a_call_reaches_agent_1001(process, phone)
        assert process.terminate(timeout=30) == 0  # a graceful stop, the disk still full
        log_text = process.log.read_text()
        assert "statements could not be committed" in log_text and "controller.sqlite3.unsaved.jsonl" in log_text
        assert "LOST" not in log_text and "kept for a retry" not in log_text

        process.free_the_disk()
        await process.start()  # in the same file system: the saved statements are committed first
        assert "at the last stop are queued to be committed" in process.log.read_text()
        await answered_by_1001(process)
        status, agent = await process.api("GET", "/api/agents/1001")
        assert status == 200 and agent["state"] != "logged_out", agent  # the login survived too
    finally:
        phone.kill()
        process.end()
