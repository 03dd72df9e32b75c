"""CCC_TRACEMALLOC (README "Memory growth: tracemalloc"): SIGUSR2 writes what grew between two reports, in the
data directory, from a controller taking real calls; without it SIGUSR2 only logs how to turn it on."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.e2e.conftest import ControllerProcess, wait_until
from tests.e2e.test_foundation import DID
from tests.sipp import Caller, Pause

pytestmark = pytest.mark.e2e


async def reports_after_signal(process: ControllerProcess, count: int) -> list[Path]:
    """SIGUSR2, then the data directory's reports once the `count`th is written (each is logged once written)."""
    assert process.process is not None
    os.kill(process.process.pid, signal.SIGUSR2)

    async def written() -> bool:
        return process.log.read_text().count("tracemalloc: traced") >= count

    await wait_until(written, timeout=60)
    return sorted(process.data_dir.glob("tracemalloc-*.txt"), key=lambda path: path.stat().st_mtime)


async def test_sigusr2_writes_allocation_reports_with_ccc_tracemalloc_and_only_a_hint_without(
        fresh_asterisk: Path, tmp_path: Path) -> None:
    traced = ControllerProcess(tmp_path / "traced", env={"CCC_TRACEMALLOC": "8"})
    await traced.start()
    try:
        (first,) = await reports_after_signal(traced, 1)
        result = await Caller(DID, steps=[Pause(1500)]).run()  # a call between the two reports
        assert result.ok, result.output + result.errors
        await traced.wait_for_records(1)
        reports = await reports_after_signal(traced, 2)
        assert len(reports) == 2 and reports[0] == first
        second = reports[1].read_text()
        assert "since the previous snapshot" in second and "== the 25 tracebacks that grew most" in second
        assert "/controller/" in second  # the controller's own code is among what allocated since
        assert (await traced.health()) is not None  # and it keeps serving
    finally:
        traced.terminate()

    untraced = ControllerProcess(tmp_path / "untraced")
    await untraced.start()
    try:
        assert untraced.process is not None
        os.kill(untraced.process.pid, signal.SIGUSR2)

        async def hinted() -> bool:
            return "allocation tracing is off; start the controller with CCC_TRACEMALLOC" in untraced.log.read_text()

        await wait_until(hinted)
        assert (await untraced.health()) is not None  # SIGUSR2's default action would have ended it
        assert not list(untraced.data_dir.glob("tracemalloc-*"))
    finally:
        untraced.terminate()

