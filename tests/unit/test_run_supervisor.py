"""`make run`'s supervisor (tools/run.py `Supervised`): restart with back-off, stop at a crash loop,
never restart a controller that refused to run beside another one."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import run


def supervise(child: run.Supervised, seconds: float) -> None:
    child.start()
    deadline = time.monotonic() + seconds
    while not child.given_up and time.monotonic() < deadline:
        child.tend()
        time.sleep(0.01)


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run, "BACKOFF_INITIAL", 0.02)
    monkeypatch.setattr(run, "BACKOFF_MAX", 0.05)


def test_a_crashing_process_is_restarted_until_the_crash_loop_limit(capsys: pytest.CaptureFixture[str]) -> None:
    child = run.Supervised("controller", [sys.executable, "-c", "raise SystemExit(1)"], {})
    supervise(child, 20)
    assert child.given_up and len(child.restarts) == run.CRASH_LOOP_LIMIT
    out = capsys.readouterr().out
    assert out.count("starting it again") == run.CRASH_LOOP_LIMIT and "crash loop, not restarting it" in out


def test_a_process_that_keeps_running_is_left_alone() -> None:
    child = run.Supervised("controller", [sys.executable, "-c", "import time; time.sleep(30)"], {})
    supervise(child, 1)
    assert not child.given_up and child.restarts == [] and child.process is not None
    assert child.process.poll() is None
    child.stop()
    child.wait()


def test_a_controller_refusing_to_run_beside_another_is_not_restarted(capsys: pytest.CaptureFixture[str]) -> None:
    child = run.Supervised("controller", [sys.executable, "-c", "raise SystemExit(3)"], {})
    supervise(child, 20)
    assert child.given_up and child.restarts == []
    assert "another controller owns its data directory" in capsys.readouterr().out


def test_a_process_with_configuration_errors_is_not_restarted(capsys: pytest.CaptureFixture[str]) -> None:
    child = run.Supervised("guard", [sys.executable, "-c", "raise SystemExit(2)"], {})
    supervise(child, 20)
    assert child.given_up and child.restarts == []
    assert "guard refused to run: its configuration has errors" in capsys.readouterr().out
