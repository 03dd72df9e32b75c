"""`make run` (tools/run.py): everything starts, the demo hotline answers, Ctrl-C leaves nothing behind;
`make stop` ends a run started in the background."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO
from tests.sipp import Caller, Pause

sys.path.insert(0, str(REPO / "tools"))
import sandbox

pytestmark = pytest.mark.e2e


def processes(pattern: str) -> list[str]:
    result = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True)
    return [line for line in result.stdout.splitlines() if "pgrep" not in line]


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
        assert processes("controller.demo.backend") == backends_before
        assert not sandbox.running()
    finally:
        if run.poll() is None:  # a failed check: stop it the way a user would, so nothing is orphaned
            run.send_signal(signal.SIGINT)
            try:
                await asyncio.to_thread(run.wait, 60)
            except subprocess.TimeoutExpired:
                run.kill()
        sandbox.start()  # the rest of the session's tests share one Asterisk


async def test_make_stop_ends_a_run_started_in_the_background(asterisk: Path, tmp_path: Path) -> None:
    sandbox.stop()
    backends_before = processes("controller.demo.backend")
    with (tmp_path / "run.log").open("w") as log:
        run = subprocess.Popen([sys.executable, "tools/run.py"], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True)  # as with `make run &`
    try:
        deadline = time.monotonic() + 90
        while "Ctrl-C" not in (tmp_path / "run.log").read_text():
            assert run.poll() is None and time.monotonic() < deadline, (tmp_path / "run.log").read_text()
            await asyncio.sleep(0.2)
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
        if run.poll() is None:
            run.send_signal(signal.SIGINT)
            try:
                await asyncio.to_thread(run.wait, 60)
            except subprocess.TimeoutExpired:
                run.kill()
        sandbox.start()

