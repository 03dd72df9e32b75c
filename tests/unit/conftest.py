"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from controller.store.db import Store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A real store in the test's own directory (no writer task: writes are committed when awaited)."""
    store = Store(tmp_path / "s.sqlite3")
    await store.open()
    yield store
    await store.close()
