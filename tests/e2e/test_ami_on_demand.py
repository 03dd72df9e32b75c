"""The controller's AMI connection is open only while it is used (README "Benchmarks", sixth session).

Asterisk 22.10 wakes every logged-in AMI session's thread for every AMI event it publishes, whatever the
session's `Events:` setting, and builds AMI events at all only while some session is logged in: an idle
connection of ours cost Asterisk that on every call. What needs AMI (trunks, channel counts) still works."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, ControllerProcess, wait_until
from tests.e2e.test_guard import GuardProcess

sys.path.insert(0, str(REPO / "tools"))
import sandbox

pytestmark = pytest.mark.e2e
AMI_USER, GUARD_AMI_USER = "ccc", "ccc-guard"  # the demo configuration's AMI users (asterisk-conf/manager.conf)


def ami_sessions(user: str) -> int:
    """Sessions of `user` that Asterisk lists (`manager show connected`: one row per session, user first)."""
    rows = sandbox.cli("manager show connected").splitlines()
    return sum(1 for row in rows if row.split()[:1] == [user])


def ami_logins(controller: ControllerProcess) -> int:
    """The controller's AMI logins so far (its debug log says each)."""
    return controller.log.read_text().count("AMI logged in (")


async def test_the_controller_holds_no_ami_session_between_uses(controller: ControllerProcess) -> None:
    async def idle() -> bool:
        return ami_sessions(AMI_USER) == 0

    await wait_until(idle, timeout=10)  # the start-up login closed once idle
    for path in ("/api/asterisk/trunks", "/api/status"):  # what the supervisors' console asks every 10 s
        logins = ami_logins(controller)
        status, body = await controller.api("GET", path)
        answered = time.monotonic()
        assert status == 200, body
        channels = body["channels"] if path.endswith("trunks") else body["asterisk"]["channels"]
        assert channels["active_calls"] == 0 and "calls_processed" in channels, body
        assert ami_logins(controller) == logins + 1  # logged in for it
        # ... and closed right after, without another request: a session kept up makes Asterisk build its AMI
        # events for every call meanwhile (2 s after each use, as before, was ~20 % of an open console's time).
        await wait_until(idle, timeout=10, interval=0.05)
        assert time.monotonic() - answered < 1.0, path
    status, body = await controller.api("GET", "/api/status")
    assert body["controller"]["nodes"]["default"]["ami_reachable"] is True  # (a login worked: not connected now)


async def test_the_guard_holds_no_ami_session_while_it_watches(controller: ControllerProcess, tmp_path: Path) -> None:
    controller.env.update(CCC_GUARD_AMI_USER=GUARD_AMI_USER, CCC_GUARD_AMI_SECRET="ccc-demo-guard")
    guard = GuardProcess(controller, tmp_path / "guard.log")
    try:
        async def checked() -> bool:  # its start-up permission check ran (over AMI), and the controller is up
            return "controller is up" in guard.log.read_text()

        await wait_until(checked, timeout=15)
        log = guard.log.read_text()
        assert "AMI not available" not in log and "lacks write permission" not in log, log  # logged in, asked

        async def idle() -> bool:
            return ami_sessions(GUARD_AMI_USER) == 0

        await wait_until(idle, timeout=10)
        assert guard.process.poll() is None  # still watching, without a session
    finally:
        assert guard.stop() == 0
