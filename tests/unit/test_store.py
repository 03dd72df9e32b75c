"""The store keeps a batch whose commit failed and commits it later: no record is dropped."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from controller.store import db
from controller.store.db import Store


async def test_a_failed_commit_is_retried_and_nothing_is_lost(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "RETRY_SECONDS", (0.05, 0.2))
    store = Store(tmp_path / "s.sqlite3")
    await store.open()
    writer = asyncio.create_task(store.run_writer())
    await store.execute("CREATE TABLE t (n INTEGER)")
    real_commit = store._commit_sync
    failures = [sqlite3.OperationalError("disk I/O error")] * 2

    def flaky_commit(batch: list[tuple[str, Any]]) -> None:
        if failures:
            raise failures.pop()
        real_commit(batch)

    monkeypatch.setattr(store, "_commit_sync", flaky_commit)
    store.write("INSERT INTO t VALUES (1)")
    with pytest.raises(sqlite3.OperationalError):
        await store.flush()  # whoever waits learns of the failure ...
    store.write("INSERT INTO t VALUES (2)")
    async with asyncio.timeout(5):
        while failures or store._pending:  # ... and the writer tries again with backoff
            await asyncio.sleep(0.02)
    assert [row["n"] for row in await store.fetchall("SELECT n FROM t ORDER BY rowid")] == [1, 2]
    writer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writer
    await store.close()
    store.write("INSERT INTO t VALUES (3)")  # after close: refused loudly, not silently kept
    assert store._pending == []
