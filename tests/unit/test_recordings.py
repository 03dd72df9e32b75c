"""Recording retention (pure logic around the index): old files deleted, their rows marked."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from controller.config import Config
from controller.plugins.recordings.services import RecordingService


class FakeIndex:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.deleted_ids: list[int] = []

    async def older_than(self, before: float) -> list[dict[str, Any]]:
        return [row for row in self.rows if row["started_at"] < before]

    def deleted(self, recording_id: int) -> None:
        self.deleted_ids.append(recording_id)


async def test_purge_deletes_recordings_older_than_the_retention(tmp_path: Path) -> None:
    day = 86400.0
    now = 100 * day
    old, recent, missing = tmp_path / "old.wav", tmp_path / "recent.wav", tmp_path / "gone.wav"
    old.write_bytes(b"RIFF")
    recent.write_bytes(b"RIFF")
    index = FakeIndex([{"id": 1, "file": str(old), "started_at": now - 40 * day},
                       {"id": 2, "file": str(recent), "started_at": now - 5 * day},
                       {"id": 3, "file": str(missing), "started_at": now - 90 * day}])
    service = RecordingService(config=Config(), ari=None, index=index, publish=lambda *a, **k: None)  # type: ignore[arg-type]
    assert await service.purge(30, now=now) == 2
    assert index.deleted_ids == [1, 3] and not old.exists() and recent.exists()


async def test_a_failing_retention_run_does_not_end_the_job(caplog: Any) -> None:
    """A store that cannot be read (disk I/O error) must not end the controller's task group."""
    from dataclasses import replace

    from controller.store.db import StoreUnavailable

    class UnreadableIndex(FakeIndex):
        async def older_than(self, before: float) -> list[dict[str, Any]]:
            raise StoreUnavailable("the store cannot be read (disk I/O error)")

    config = Config()
    config = replace(config, asterisk=replace(config.asterisk, recordings_retention_days=30.0))
    service = RecordingService(config=config, ari=None, index=UnreadableIndex([]), publish=lambda *a, **k: None)  # type: ignore[arg-type]
    job = asyncio.create_task(service.run(every_seconds=0.01))
    await asyncio.sleep(0.1)
    assert not job.done()  # still running
    job.cancel()
    assert "retention stopped early" in caplog.text
