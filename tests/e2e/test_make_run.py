"""`make run` (tools/run.py): everything starts, the demo hotline answers, Ctrl-C leaves nothing behind;
`make stop` ends a run started in the background."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests.e2e import strays
from tests.e2e.conftest import REPO, ari_get
from tests.sipp import Caller, Pause

sys.path.insert(0, str(REPO / "tools"))
import sandbox

pytestmark = pytest.mark.e2e


def _network_namespace(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:  # gone meanwhile
        return None


def processes(pattern: str) -> list[str]:
    """The processes matching `pattern` in this test's network namespace: the e2e groups (tools/e2e.py) and
    other checkouts run the same programs at the same time, each in a namespace of its own."""
    result = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True)
    ours = _network_namespace(os.getpid())
    return [line for line in result.stdout.splitlines()
            if "pgrep" not in line and _network_namespace(line.split()[0]) == ours]


def _start_in_background(log_path: Path) -> subprocess.Popen[bytes]:
    """`make run &`: its own session, output to a file."""
    with log_path.open("w") as log:
        return subprocess.Popen([sys.executable, "tools/run.py"], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


async def _wait_for_banner(run: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 90
    while "Ctrl-C" not in log_path.read_text():
        assert run.poll() is None and time.monotonic() < deadline, log_path.read_text()
        await asyncio.sleep(0.2)


async def _stop_like_a_user(run: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    """After a test, passed or failed: Ctrl-C the run if it still goes, so nothing is orphaned, and start
    the sandbox again (the rest of the session's tests share one Asterisk)."""
    if run.poll() is None:
        run.send_signal(signal.SIGINT)
        try:
            await asyncio.to_thread(run.wait, 60)
        except subprocess.TimeoutExpired:
            strays.kill([run.pid])  # with its controller, guard and back-end, not tools/run.py alone
            run.wait()
    sandbox.start()


async def test_make_run_answers_the_hotline_and_ctrl_c_stops_everything(asterisk: Path) -> None:
    sandbox.stop()  # `make run` starts (and stops) its own Asterisk
    backends_before = processes("controller.demo.backend")  # the session's own back-end may be running
    run = subprocess.Popen([sys.executable, "tools/run.py"], cwd=REPO, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        banner = []
        deadline = time.monotonic() + 90
        assert run.stdout is not None
        while time.monotonic() < deadline:
            line = await asyncio.to_thread(run.stdout.readline)
            banner.append(line)
            if "Ctrl-C" in line or not line:
                break
        text = "".join(banner)
        assert "Controller              http://127.0.0.1:8080  (health: /healthz)" in text, text
        result = await Caller("4008001234", steps=[Pause(3000)]).run()
        assert result.ok, result.output + result.errors
        # What the README tells a user to run next, from a plain shell (no CCC_SANDBOX_ROOT): every check passes.
        shell_env = {k: v for k, v in os.environ.items() if k != "CCC_SANDBOX_ROOT"}
        doctor = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "controller.cli.main", "doctor", "--config", "demo/controller.yaml"],
            cwd=REPO, capture_output=True, text=True, env=shell_env, timeout=60)
        assert doctor.returncode == 0 and "FAIL" not in doctor.stdout, doctor.stdout + doctor.stderr
        assert "PASS  sound files the flows need are present" in doctor.stdout, doctor.stdout
        run.send_signal(signal.SIGINT)
        rest, _ = await asyncio.to_thread(run.communicate, timeout=60)
        assert run.returncode == 0 and "[run] stopped" in rest, rest
        assert processes("controller --config demo/controller.yaml") == []
        assert processes("controller.guard --config demo/controller.yaml") == []
        assert processes("controller.demo.backend") == backends_before
        assert not sandbox.running()
    finally:
        await _stop_like_a_user(run)


async def test_make_stop_ends_a_run_started_in_the_background(asterisk: Path, tmp_path: Path) -> None:
    sandbox.stop()
    backends_before = processes("controller.demo.backend")
    run = _start_in_background(tmp_path / "run.log")
    try:
        await _wait_for_banner(run, tmp_path / "run.log")
        stop = await asyncio.to_thread(subprocess.run, ["make", "stop"], cwd=REPO, capture_output=True, text=True,
                                       timeout=90)
        assert stop.returncode == 0 and "[stop] stopped" in stop.stdout, stop.stdout + stop.stderr
        assert await asyncio.to_thread(run.wait, 30) == 0
        assert processes("controller --config demo/controller.yaml") == []
        assert processes("controller.demo.backend") == backends_before
        assert not sandbox.running()
        again = await asyncio.to_thread(subprocess.run, ["make", "stop"], cwd=REPO, capture_output=True, text=True,
                                        timeout=60)
        assert again.returncode == 0 and "no run in progress" in again.stdout  # idempotent
    finally:
        await _stop_like_a_user(run)



async def _healthz() -> dict | None:  # type: ignore[type-arg]
    """The demo controller's /healthz body, or None while it does not answer."""
    try:
        async with aiohttp.ClientSession() as http, http.get("http://127.0.0.1:8080/healthz",
                                                              timeout=aiohttp.ClientTimeout(total=2)) as r:
            return await r.json()  # type: ignore[no-any-return]
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None


async def test_make_run_restarts_a_killed_controller_and_keeps_asterisk_up(asterisk: Path, tmp_path: Path) -> None:
    sandbox.stop()
    log_path = tmp_path / "run.log"
    run = _start_in_background(log_path)
    try:
        await _wait_for_banner(run, log_path)
        controller_starts = r"\[run\] controller started \(pid (\d+)\)"
        (first_pid,) = re.findall(controller_starts, log_path.read_text())
        first = await _healthz()
        assert first is not None and first["ari_connected"]
        asterisk_started = (await ari_get("/asterisk/info"))["status"]["startup_time"]
        caller = Caller("4008001234", steps=[Pause(20000)])  # a call in Asterisk while the controller dies
        await caller.start()
        await asyncio.sleep(2)
        (channel,) = [c for c in await ari_get("/channels") if c["caller"]["number"] == "13800138000"]

        os.kill(int(first_pid), signal.SIGKILL)
        deadline = time.monotonic() + 60
        while True:  # the killed one answers nothing: once a second one started, an answer is its
            health = await _healthz()
            if len(re.findall(controller_starts, log_path.read_text())) == 2 and health and health["ari_connected"]:
                break
            assert run.poll() is None and time.monotonic() < deadline, log_path.read_text()
            await asyncio.sleep(0.3)
        text = log_path.read_text()
        pids = re.findall(controller_starts, text)
        assert len(pids) == 2 and pids[1] != first_pid, text
        assert "[run] controller exited (status -9); starting it again in 1 s" in text, text
        # Asterisk was not restarted, and the call that was up when the controller died is still up.
        assert (await ari_get("/asterisk/info"))["status"]["startup_time"] == asterisk_started
        assert channel["id"] in [c["id"] for c in await ari_get("/channels")]
        assert caller.process is not None and caller.process.returncode is None
        caller.kill()

        stop = await asyncio.to_thread(subprocess.run, ["make", "stop"], cwd=REPO, capture_output=True, text=True,
                                       timeout=90)
        assert stop.returncode == 0 and "[stop] stopped" in stop.stdout, stop.stdout + stop.stderr
        assert await asyncio.to_thread(run.wait, 30) == 0
        assert processes("controller --config demo/controller.yaml") == []
        assert processes("controller.guard --config demo/controller.yaml") == []
        assert not sandbox.running()
    finally:
        await _stop_like_a_user(run)
