"""A stop (SIGTERM, SIGINT) while the controller starts up ends the start-up at once, and cleanly: a start-up
step can wait without end (a PostgreSQL store waiting for another controller's schema migration). The e2e twin,
with the real lock and signals: tests/e2e/test_store_postgresql.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from controller.app import Controller
from controller.config import Config, IvrSettings


@pytest.mark.parametrize("stops", [1, 2])
async def test_a_stop_during_start_up_ends_it_and_closes_what_was_opened(tmp_path: Path, stops: int,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "flows").mkdir()
    controller = Controller(Config(data_dir=str(tmp_path / "data"), ivr=IvrSettings(flows_dir=str(tmp_path / "flows"))))
    stuck = asyncio.Event()

    async def open_without_end() -> None:  # the step after the store's: it never ends
        stuck.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(controller.events, "open", open_without_end)
    run = asyncio.create_task(controller.run())
    await asyncio.wait_for(stuck.wait(), 10)
    assert controller.store.is_open
    for _ in range(stops):  # (two: an impatient operator's second SIGTERM, before the first is acted on)
        controller.stop()
    await asyncio.wait_for(run, 10)  # it returns: neither stuck nor cancelled (the clean-up was not cut short)
    assert not controller.store.is_open  # the store that was opened is closed (what was queued committed)
