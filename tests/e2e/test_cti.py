"""CTI end to end: the event WebSocket, resume by sequence number, role scoping, webhooks."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
from aiohttp import web

from controller.plugins.cti.schemas import all_schemas
from tests.e2e.conftest import ADMIN_TOKEN, REPO, ControllerProcess, free_port
from tests.sipp import Caller, Pause

pytestmark = pytest.mark.e2e
DID = "4008001234"
SECRET = "webhook-test-secret"


def config_with_webhook(tmp_path: Path, receiver_port: int) -> Path:
    text = (REPO / "demo/controller.yaml").read_text().replace("../ivr_flows", str(REPO / "ivr_flows"))
    text += f"""
webhooks:
  - name: crm
    url: http://127.0.0.1:{receiver_port}/events
    secret: {SECRET}
    types: ["call.*"]
"""
    path = tmp_path / "controller.yaml"
    path.write_text(text)
    return path


class Receiver:
    """A CRM's webhook endpoint that can be taken down and brought back."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.events: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-CCC-Signature", "")):
            self.bad_signatures += 1
            return web.Response(status=401)
        event = json.loads(body)
        assert request.headers["X-CCC-Seq"] == str(event["seq"])
        self.events.append(event)
        return web.Response(status=204)

    async def up(self) -> None:
        app = web.Application()
        app.router.add_post("/events", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def down(self) -> None:
        if self.runner:
            await self.runner.cleanup()
            self.runner = None


async def read_events(ws: aiohttp.ClientWebSocketResponse, until: str, timeout: float = 20) -> list[dict]:  # type: ignore[type-arg]
    events = []
    async with asyncio.timeout(timeout):
        async for message in ws:
            event = json.loads(message.data)
            if event.get("type") == "hello":
                continue
            events.append(event)
            if event["type"] == until:
                return events
    return events


async def test_websocket_stream_resume_and_schemas(controller: ControllerProcess) -> None:
    schemas = all_schemas()
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{controller.url.replace('http', 'ws')}/ws?token={ADMIN_TOKEN}") as ws:
            result = await Caller(DID, caller="13800138000", steps=[Pause(2000)]).run()
            assert result.ok, result.output
            events = await read_events(ws, until="call.ended")
        types = [e["type"] for e in events]
        assert types[0] == "call.offered" and types[-1] == "call.ended"
        assert events[0]["data"]["caller"] == "13800138000" and events[0]["data"]["did"] == DID
        assert events[-1]["data"]["cause"] == 16
        seqs = [e["seq"] for e in events]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        for event in events:
            jsonschema.validate(event, schemas[event["type"]])
        assert len({e["call_id"] for e in events}) == 1

        # A client that was away resumes from the last sequence number it processed: nothing is missed.
        first = events[0]["seq"]
        async with http.ws_connect(f"{controller.url.replace('http', 'ws')}/ws?token={ADMIN_TOKEN}"
                                   f"&since={first}") as ws:
            replayed = await read_events(ws, until="call.ended", timeout=5)
        assert [e["seq"] for e in replayed] == seqs[1:]

        # An agent's token sees only that agent's events (none of this unassigned call);
        # a filter narrows the stream by type.
        status, body = await controller.api("GET", "/api/events?since=0", token="demo-agent-1001-token")
        assert status == 200 and body["events"] == []
        status, body = await controller.api("GET", "/api/events?since=0&types=call.ended")
        assert [e["type"] for e in body["events"]] == ["call.ended"]
        status, body = await controller.api("GET", "/api/events?since=abc")
        assert status == 400


async def test_websocket_needs_a_valid_token(controller: ControllerProcess) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            async with http.ws_connect(f"{controller.url.replace('http', 'ws')}/ws?token=wrong"):
                pass
        assert refused.value.status == 401


async def test_webhooks_are_signed_and_survive_the_receiver_being_down(fresh_asterisk: Path,
                                                                        tmp_path: Path) -> None:
    receiver = Receiver(free_port())
    controller = ControllerProcess(tmp_path / "data", config=config_with_webhook(tmp_path, receiver.port))
    await controller.start()
    try:
        await receiver.up()
        assert (await Caller(DID, steps=[Pause(1000)]).run()).ok
        await _wait_for(lambda: len(receiver.events) >= 2)
        await receiver.down()  # the CRM goes down; calls go on
        for _ in range(2):
            assert (await Caller(DID, steps=[Pause(800)]).run()).ok
        await asyncio.sleep(2)
        assert len(receiver.events) == 2
        await receiver.up()  # back: every event arrives, in order, none twice
        await _wait_for(lambda: len(receiver.events) >= 6, timeout=30)
        types = [e["type"] for e in receiver.events]
        assert types == ["call.offered", "call.ended"] * 3
        seqs = [e["seq"] for e in receiver.events]
        assert seqs == sorted(seqs) and len(set(seqs)) == 6
        assert receiver.bad_signatures == 0
    finally:
        controller.terminate()
        await receiver.down()


async def _wait_for(predicate, timeout: float = 15) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.1)
