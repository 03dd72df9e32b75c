"""The e2e harness's own guarantees: what one test leaves behind does not reach the next one."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import aiohttp
import pytest

from tests.e2e import strays
from tests.e2e.conftest import ARI, ARI_HEADERS, REPO, ControllerProcess, ari_get, hang_up_then_kill, wait_until
from tests.sipp import Phone

pytestmark = pytest.mark.e2e
PHONE_PORT = 15001  # endpoint 8001's static contact (asterisk-conf/pjsip.conf)
PROBE_APP = "ccc-harness"  # the rung channels wait in this application once answered (no controller here)


async def ring_8001(http: aiohttp.ClientSession) -> str:
    channel_id = f"harness-{uuid.uuid4().hex[:12]}"
    params = {"endpoint": "PJSIP/8001", "app": PROBE_APP, "channelId": channel_id, "timeout": "10"}
    async with http.post(f"{ARI}/channels", params=params) as response:
        assert response.status == 200, await response.text()
    return channel_id


async def test_a_phone_stopped_mid_call_leaves_no_stray_bye_for_the_next_phone_on_its_port(
        fresh_asterisk: Path) -> None:
    """A test that fails mid-call stops its phones. Had they been killed before Asterisk hung the call up,
    Asterisk would send its unanswered BYE again for 32 s, and the next test's phone on the same port would
    take it for a call of its own: one call of its budget used, it would stop after its first real call
    (test_standby's `frozen` case failed that way after the `cut_off` case had failed before it)."""
    events = f"{ARI.replace('http', 'ws')}/events?app={PROBE_APP}"
    async with aiohttp.ClientSession(headers=ARI_HEADERS) as http, http.ws_connect(events):
        first = Phone(PHONE_PORT, answer_after_ms=100, hold_ms=60_000)
        await first.start()
        talking = await ring_8001(http)

        async def up() -> bool:
            return any(c["id"] == talking and c["state"] == "Up" for c in await ari_get("/channels"))
        await wait_until(up, 10)
        await hang_up_then_kill([first])  # the end of a test, passed or not

        following = Phone(PHONE_PORT, answer_after_ms=100, hold_ms=500)  # one call, then it exits
        await following.start()
        # Asterisk resends an unanswered BYE 0.5, 1.5 and 3.5 s after the first (SIP timer E): none comes.
        await asyncio.sleep(4.0)
        assert following.process is not None and following.process.returncode is None, await following.wait()
        # The positive twin: the phone answers the next real call and completes it.
        await ring_8001(http)
        result = await asyncio.wait_for(following.wait(), 20)
        assert result.ok, result.output + result.errors


# -- processes: none outlives its test or its test file (tests/e2e/strays.py) ---------------------------------

LEAKING_TESTS = '''
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.conftest import REPO, ControllerProcess, free_port


def controller(tmp_path: Path) -> ControllerProcess:
    return ControllerProcess(tmp_path / "data", env={"CCC_AGI_PORT": str(free_port())})


def note(pid: int) -> None:
    with Path(os.environ["CCC_TEST_PIDS"]).open("a") as pids:
        pids.write(f"{pid}\\n")


def test_fails_before_its_controller_reaches_a_teardown(tmp_path: Path) -> None:
    process = controller(tmp_path)
    asyncio.run(process.start(wait=False))
    note(process.process.pid)
    raise AssertionError("failed before the controller was handed to a teardown")


def test_kills_the_wrapper_but_not_the_controller_below_it(tmp_path: Path) -> None:
    process = controller(tmp_path)
    pid_file = tmp_path / "pid"
    command = f"{sys.executable} -m controller --config {process.config} & echo $! > {pid_file}; wait"
    wrapper = subprocess.Popen(["sh", "-c", command], env=process.env, cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not (pid_file.exists() and pid_file.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    note(int(pid_file.read_text()))
    wrapper.kill()
    wrapper.wait()
'''


def inner_pytest(tmp_path: Path, tests: str, *select: str) -> subprocess.CompletedProcess[str]:
    """A pytest of its own on `tests` with the e2e fixtures and hooks (tests/e2e/conftest.py as a plugin)."""
    folder = tmp_path / f"inner-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    (folder / "test_inner.py").write_text(tests)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.e2e.conftest",
                           "-o", "asyncio_default_fixture_loop_scope=function",
                           "--rootdir", str(folder), "--basetemp", str(folder / "tmp"), *select,
                           str(folder / "test_inner.py")], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "CCC_TEST_PIDS": str(tmp_path / "pids")})


@pytest.mark.parametrize("leak", ["fails_before_its_controller", "kills_the_wrapper"])
def test_a_controller_a_test_lost_track_of_is_gone_when_the_test_ends(leak: str, tmp_path: Path) -> None:
    """A test that failed before its teardown knew of its controller, or killed a wrapper (`sh`, `nsenter`,
    tools/run.py) whose Python child lives on, leaves no controller to hold port 4573 in the next test file."""
    try:
        result = inner_pytest(tmp_path, LEAKING_TESTS, "-k", leak)
        (pid,) = map(int, (tmp_path / "pids").read_text().split())
        assert result.returncode == (1 if leak.startswith("fails") else 0), result.stdout + result.stderr
        assert not strays.alive(pid), f"{strays.describe(pid)} outlived its test"
        assert "left pid" in result.stdout and "-m controller" in result.stdout, result.stdout  # the warning
    finally:
        strays.kill(map(int, (tmp_path / "pids").read_text().split()))


async def test_a_stray_controller_fails_the_next_file_s_first_test_with_its_pid_and_is_killed(
        tmp_path: Path) -> None:
    """One left by an earlier run (its pytest killed) fails one test, naming it, rather than a file's tests one
    by one on a FastAGI port already taken; it is killed, so the rest of the run goes on."""
    stray = ControllerProcess(tmp_path / "stray", env={strays.HARNESS_MARK: f"{os.getpid()}:0"})  # a run ended
    await stray.start(wait=False)
    try:
        result = inner_pytest(tmp_path, "def test_first() -> None:\n    pass\n\n\ndef test_second() -> None:\n"
                              "    pass\n")
        assert result.returncode == 1, result.stdout + result.stderr
        assert "1 passed, 1 error" in result.stdout, result.stdout
        assert f"pid {stray.process.pid} (" in result.stdout and "-m controller" in result.stdout, result.stdout
        assert f"Killed {stray.process.pid}" in result.stdout, result.stdout
        assert stray.process.wait(5) == -signal.SIGKILL
    finally:
        stray.kill()


async def test_the_controllers_of_another_e2e_run_still_going_are_not_strays(tmp_path: Path) -> None:
    """Another pytest in this namespace (it waits for the sandbox's lock) or on the host's network (another
    checkout's) keeps its controllers: only a run that has ended leaves strays."""
    theirs = ControllerProcess(tmp_path / "theirs")  # marked by this pytest, alive while the other one runs
    await theirs.start(wait=False)
    try:
        result = inner_pytest(tmp_path, "def test_first() -> None:\n    pass\n")
        assert result.returncode == 0 and "stray" not in result.stdout, result.stdout + result.stderr
        assert theirs.process is not None and theirs.process.poll() is None
    finally:
        theirs.kill()
