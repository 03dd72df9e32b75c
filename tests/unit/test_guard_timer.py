"""The guard's takeover timer (controller/guard/main.py): it sweeps only after `takeover_timeout`
without a healthy controller, counted again from zero each time the controller is seen."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from controller.config import Config, GuardSettings
from controller.guard.main import Guard, controller_present

TAKEOVER = 0.3


class FakeGuard(Guard):
    """The real timer; the controller's answer set by the test, sweeps counted instead of done."""

    def __init__(self) -> None:
        super().__init__(replace(Config(), guard=GuardSettings(takeover_timeout=TAKEOVER, check_interval=0.05,
                                                              ami_secret="s")))
        self.healthy_now = True
        self.sweeps = 0

    async def controller_healthy(self, http: object) -> bool:
        return self.healthy_now

    async def sweep(self) -> int:
        self.sweeps += 1
        return 0


@pytest.fixture
def guard() -> FakeGuard:
    return FakeGuard()


async def checks_for(guard: FakeGuard, seconds: float) -> None:
    for _ in range(round(seconds / 0.05)):
        await guard.check(None)  # type: ignore[arg-type]  # the fake answers without HTTP
        await asyncio.sleep(0.05)


async def test_nothing_while_the_controller_is_healthy(guard: FakeGuard) -> None:
    await checks_for(guard, TAKEOVER * 2)
    assert guard.sweeps == 0


async def test_sweeps_only_after_the_takeover_timeout_and_stops_when_a_controller_is_back(guard: FakeGuard) -> None:
    await checks_for(guard, 0.1)
    guard.healthy_now = False
    await checks_for(guard, TAKEOVER * 0.6)
    assert guard.sweeps == 0
    await checks_for(guard, TAKEOVER * 0.8)
    assert guard.sweeps > 0
    guard.healthy_now = True
    await checks_for(guard, 0.1)
    swept = guard.sweeps
    guard.healthy_now = False  # down again: the timer starts from zero
    await checks_for(guard, TAKEOVER * 0.6)
    assert guard.sweeps == swept


async def test_a_guard_started_without_a_controller_waits_the_full_timeout(guard: FakeGuard) -> None:
    guard.healthy_now = False
    await checks_for(guard, TAKEOVER * 0.6)
    assert guard.sweeps == 0
    await checks_for(guard, TAKEOVER * 0.8)
    assert guard.sweeps > 0


@pytest.mark.parametrize(("status", "body", "present"), [
    (200, {"status": "ok", "ari_connected": True}, True),
    (503, {"status": "degraded", "ari_connected": False}, False),
    (503, {"status": "standby", "ari_connected": False, "store_reachable": True}, True),  # taking over
    (503, {"status": "standby", "ari_connected": False, "store_reachable": False}, False),  # cannot take over
    (503, "standby", False),
])
def test_a_standby_that_reaches_the_store_counts_as_a_controller(status: int, body: object, present: bool) -> None:
    assert controller_present(status, body) is present
