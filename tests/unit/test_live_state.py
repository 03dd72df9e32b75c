"""The live-call picture on a real SQLite file: parts saved, replaced, dropped, read back after a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from controller.plugins.calls.live_state import LiveCallState
from controller.store.db import Store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = Store(tmp_path / "s.sqlite3")
    await store.open()
    yield store
    await store.close(retry_seconds=0)


async def test_parts_are_saved_replaced_and_dropped(store: Store) -> None:
    live = LiveCallState(store, lambda: 100.0)
    live.save("c1", "call", {"channel_id": "ch1", "did": "4000"})
    live.save("c1", "talk", {"agent_id": "a1", "talk_bridge": "br-talk-1"})
    live.save("c1", "talk", {"agent_id": "a2", "talk_bridge": "br-talk-1"})  # replaced, not added
    live.save("c2", "call", {"channel_id": "ch2", "did": "中文"})
    await store.flush()
    assert await live.load_all() == {
        "c1": {"call": {"channel_id": "ch1", "did": "4000"}, "talk": {"agent_id": "a2", "talk_bridge": "br-talk-1"}},
        "c2": {"call": {"channel_id": "ch2", "did": "中文"}},
    }
    live.drop("c1", "talk")
    live.drop("c2")
    await store.flush()
    assert await live.load_all() == {"c1": {"call": {"channel_id": "ch1", "did": "4000"}}}


async def test_the_picture_survives_a_new_process(tmp_path: Path) -> None:
    first = Store(tmp_path / "s.sqlite3")
    await first.open()
    LiveCallState(first, lambda: 1.0).save("c1", "queue", {"queue": "sales", "enqueued_at": 12.5})
    await first.close(retry_seconds=0)
    second = Store(tmp_path / "s.sqlite3")
    await second.open()
    try:
        assert await LiveCallState(second, lambda: 2.0).load_all() == {"c1": {"queue": {"queue": "sales",
                                                                                        "enqueued_at": 12.5}}}
    finally:
        await second.close(retry_seconds=0)


async def test_an_unreadable_part_is_left_out(store: Store) -> None:
    live = LiveCallState(store, lambda: 1.0)
    live.save("c1", "call", {"channel_id": "ch1"})
    await store.execute("INSERT INTO live_calls (call_id, part, data, updated_at) VALUES ('c1', 'ivr', '{bad', 1)")
    await store.execute("INSERT INTO live_calls (call_id, part, data, updated_at) VALUES ('c2', 'ivr', '[1]', 1)")
    assert await live.load_all() == {"c1": {"call": {"channel_id": "ch1"}}}


async def test_a_frozen_store_drops_writes(store: Store) -> None:
    live = LiveCallState(store, lambda: 1.0)
    live.save("c1", "call", {"channel_id": "ch1"})
    await store.flush()
    store.freeze()
    live.drop("c1")
    live.save("c2", "call", {"channel_id": "ch2"})
    await store.flush()
    assert await live.load_all() == {"c1": {"call": {"channel_id": "ch1"}}}
