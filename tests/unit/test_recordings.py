"""Recording retention (pure logic around the index): old files deleted, their rows marked."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from controller.ari.dispatcher import Dispatcher
from controller.ari.errors import AriError, ChannelGone
from controller.ari.models import Channel, StasisStart
from controller.config import Config
from controller.plugins.calls.legs import start_snoop
from controller.plugins.calls.session import CallSession
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


class SnoopingAri:
    """As Asterisk: POST /snoop answers before the snoop channel is in Stasis, and recording a channel
    that is not in Stasis yet answers 422."""

    node = "default"

    def __init__(self) -> None:
        self.snooped: list[str] = []
        self.in_stasis: set[str] = set()
        self.recorded: list[str] = []
        self.hung_up: list[str] = []

    async def snoop(self, channel_id: str, snoop_id: str, **kwargs: Any) -> None:
        self.snooped.append(snoop_id)

    async def record(self, channel_id: str, name: str, **kwargs: Any) -> None:
        if channel_id not in self.in_stasis:
            raise ChannelGone("POST", f"/channels/{channel_id}/record", 422, "Channel not in Stasis application")
        self.recorded.append(channel_id)

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        self.hung_up.append(channel_id)


class Swallow:
    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def call_session(ari: SnoopingAri, dispatcher: Dispatcher) -> CallSession:
    caller = Channel("caller", "caller", "Up", "13900000000", "", "", "", "", "", "zh", "", {})
    return CallSession(call_id="C1", channel=caller, did="100", direction="inbound", ari=ari,  # type: ignore[arg-type]
                       dispatcher=dispatcher, records=Swallow(), app_name="ccc",  # type: ignore[arg-type]
                       fallback_context="fallback")


async def test_a_snoop_that_never_enters_our_application_is_an_error_and_is_hung_up() -> None:
    ari, dispatcher = SnoopingAri(), Dispatcher(lambda event: None)
    session = call_session(ari, dispatcher)
    with pytest.raises(AriError, match="did not enter the application"):
        await start_snoop(session, "caller", "snoop-1", app="ccc", spy="both", timeout=0.05)
    assert ari.hung_up == ["snoop-1"] and dispatcher.owner_of("snoop-1") is session


async def test_the_call_is_recorded_once_the_snoop_channel_is_in_our_application() -> None:
    ari, dispatcher = SnoopingAri(), Dispatcher(lambda event: None)
    session = call_session(ari, dispatcher)
    service = RecordingService(config=Config(), ari=ari, index=Swallow(), publish=lambda *a, **k: None)  # type: ignore[arg-type]
    start = asyncio.create_task(service.start(session, queue="sales", agent_id="a1", reason="queue_policy"))
    for _ in range(20):
        await asyncio.sleep(0)
    (snoop,) = ari.snooped
    assert not start.done() and ari.recorded == []  # waiting for the snoop's StasisStart
    ari.in_stasis.add(snoop)
    snoop_channel = Channel(snoop, snoop, "Up", "", "", "", "", "", "", "zh", "", {})
    dispatcher.dispatch(StasisStart("StasisStart", "", "", {}, channel=snoop_channel, args=["snoop"]))
    recording = await start
    assert ari.recorded == [snoop] and recording.snoop_id == snoop
    assert dispatcher.owner_of(snoop) is session  # its later events go to the call
