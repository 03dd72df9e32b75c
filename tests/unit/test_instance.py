"""The single-instance guard: the data directory's lock and reading Asterisk's WebSocket sessions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from controller.instance import AnotherController, InstanceLock, sessions_of

SESSIONS = """Connection ID                         Type            RemoteAddr                       State Apps
------------------------------------- --------------- -------------------------------- ----- ----------------
a086ed12-5964-477d-b0a7-717066e21132  inbound         127.0.0.1:46082                  Up    ccc
b086ed12-5964-477d-b0a7-717066e21132  inbound         127.0.0.1:46083                  Up    other,ccc2
""".splitlines()


def test_sessions_of_finds_only_live_sessions_of_the_application() -> None:
    assert sessions_of("ccc", SESSIONS) == ["a086ed12-5964-477d-b0a7-717066e21132"]
    assert sessions_of("ccc2", SESSIONS) == ["b086ed12-5964-477d-b0a7-717066e21132"]
    assert sessions_of("cc", SESSIONS) == []
    assert sessions_of("ccc", SESSIONS[:2]) == []  # header only: nobody connected


def test_lock_is_released_when_the_holder_dies(tmp_path: Path) -> None:
    """The kernel drops the flock with the process: a SIGKILLed controller never blocks the next one."""
    code = ("import sys,time; from pathlib import Path; from controller.instance import InstanceLock; "
            "lock = InstanceLock(Path(sys.argv[1])).acquire(); print('locked', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "controller.lock")],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    with pytest.raises(AnotherController, match=f"pid {holder.pid}"):
        InstanceLock(tmp_path / "controller.lock").acquire()
    holder.kill()
    holder.wait()
    InstanceLock(tmp_path / "controller.lock").acquire().release()
