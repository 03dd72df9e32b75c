"""The ARI client against the real Asterisk: its endpoint table, error mapping and event stream."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from controller.ari.client import AriClient, new_id
from controller.ari.endpoints import ENDPOINTS
from controller.ari.errors import AriError, AriNotFound, AriUnavailable, ChannelGone
from controller.ari.events import EventStream
from controller.ari.models import Event, StasisEnd, StasisStart
from tests.sipp import Phone

pytestmark = pytest.mark.e2e
ARI_URL = "http://127.0.0.1:8088/ari"


def test_every_operation_the_client_uses_exists_in_the_shipped_swagger(asterisk: Path) -> None:
    operations: dict[tuple[str, str], set[str]] = {}
    bodies: set[tuple[str, str]] = set()
    for api_file in (asterisk / "usr/share/asterisk/rest-api").glob("*.json"):
        for api in json.loads(api_file.read_text())["apis"]:
            for op in api.get("operations", []):
                key = (op["httpMethod"], api["path"])
                operations[key] = {p["name"] for p in op.get("parameters", []) if p["paramType"] == "query"}
                if any(p["paramType"] == "body" for p in op.get("parameters", [])):
                    bodies.add(key)
    for name, endpoint in ENDPOINTS.items():
        key = (endpoint.method, endpoint.path)
        assert key in operations, f"{name}: {endpoint.method} {endpoint.path} is not an ARI operation"
        assert endpoint.params <= operations[key], f"{name}: unknown parameters {endpoint.params - operations[key]}"
        if endpoint.body:
            assert key in bodies, f"{name}: we send a body the operation does not take"


async def test_errors_map_to_named_exceptions(fresh_asterisk: Path) -> None:
    async with AriClient(ARI_URL, "ccc", "ccc-demo-ari") as ari:
        with pytest.raises(ChannelGone):
            await ari.answer("no-such-channel")
        with pytest.raises(AriNotFound):
            await ari.destroy_bridge("no-such-bridge")
        with pytest.raises(ValueError):
            await ari.request("channels.answer", {"channelId": "x"}, {"bogus": "1"})
    async with AriClient(ARI_URL, "ccc", "wrong-password") as ari:
        with pytest.raises(AriError) as info:
            await ari.info()
        assert info.value.status == 401
    async with AriClient("http://127.0.0.1:1/ari", "ccc", "x", request_timeout=1) as ari:
        with pytest.raises(AriUnavailable) as down:
            await ari.info()
        assert down.value.status == 0


async def test_operations_on_a_hung_up_channel_raise_channel_gone(fresh_asterisk: Path) -> None:
    """A real phone (SIPp on 15001) answers an originated call; after hang-up every op is ChannelGone."""
    phone = Phone(15001, answer_after_ms=200)
    await phone.start()
    events: asyncio.Queue[Event] = asyncio.Queue()
    connected = asyncio.Event()

    async def on_connected() -> None:
        connected.set()

    async with AriClient(ARI_URL, "ccc", "ccc-demo-ari") as ari:
        stream = EventStream(ari, "ccc-client-test", on_event=events.put_nowait, on_connected=on_connected)
        reader = asyncio.create_task(stream.run())
        try:
            await asyncio.wait_for(connected.wait(), 5)
            channel_id = new_id("test")
            await ari.originate(channel_id, "PJSIP/8001", app="ccc-client-test", timeout=10)
            start = await _next_of(events, StasisStart, 10)
            assert start.channel.id == channel_id  # the id we chose
            await ari.hangup(channel_id)
            await _next_of(events, StasisEnd, 5)
            for operation in (ari.answer(channel_id), ari.play(channel_id, "sound:beep", new_id("pb")),
                              ari.start_moh(channel_id), ari.hangup(channel_id)):
                with pytest.raises(ChannelGone):
                    await operation
        finally:
            reader.cancel()
            phone.kill()


async def _next_of(events: asyncio.Queue[Event], kind: type, timeout: float):  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while True:
            event = await events.get()
            if isinstance(event, kind):
                return event
