"""CTI end to end: a SIPp call through the hotline IVR into the queue, seen on a WebSocket and a webhook."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest

from controller.plugins.cti.schemas import all_schemas
from tests.e2e.conftest import ADMIN_TOKEN, ControllerProcess, demo_config, free_port
from tests.e2e.test_cti import SECRET, Receiver, read_events
from tests.e2e.test_ivr_acd import flows_dir, login, stop_after  # noqa: F401 (fixture)
from tests.sipp import Caller, Dtmf, Pause, Phone

pytestmark = pytest.mark.e2e


async def collect(http: aiohttp.ClientSession, url: str, into: list[dict[str, Any]]) -> None:
    """Keep every event a WebSocket gets (not the hello) until cancelled."""
    async with http.ws_connect(url) as ws:
        async for message in ws:
            event = json.loads(message.data)
            if event["type"] != "hello":
                into.append(event)


async def test_ivr_to_queue_event_sequence_on_websocket_and_webhook(
        fresh_asterisk: Path, demo_backend: str, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    receiver = Receiver(free_port())
    await receiver.up()
    config = demo_config(
        tmp_path, ivr={"flows_dir": str(flows_dir(tmp_path, "always"))},
        acd={"center_name": "演示热线",
             "queues": [{"name": name, "wrapup_seconds": 1, "announce_interval": 0, "announce_agent_number": False,
                         "no_agents": "wait"} for name in ("general", "general_gd", "orders", "complaints")],
             "agents": [{"id": "1001", "name": "王芳", "number": "1001", "endpoint": "8001",
                         "queues": {"general": 0}},
                        {"id": "1002", "name": "李娜", "number": "1002", "endpoint": "8002",
                         "queues": {"orders": 0}}]},
        webhooks=[{"name": "crm", "url": f"http://127.0.0.1:{receiver.port}/events", "secret": SECRET,
                   "types": ["call.*", "ivr.*"]}])
    process = ControllerProcess(tmp_path / "data", config=config)
    await process.start()
    stop_after.append(process)
    phone = Phone(15001, answer_after_ms=500, hold_ms=3000)
    await phone.start()
    agent_events: dict[str, list[dict[str, Any]]] = {"1001": [], "1002": []}
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(
                f"{process.url.replace('http', 'ws')}/ws?token={ADMIN_TOKEN}&types=call.*,ivr.*") as ws:
            agents = [asyncio.create_task(collect(http, f"{process.url.replace('http', 'ws')}/ws?token="
                                                        f"demo-agent-{agent}-token", agent_events[agent]))
                      for agent in agent_events]
            await asyncio.sleep(0.5)
            await login(process, "1001")
            await login(process, "1002")
            # 0 in the main menu: a person (the agent answers, talks 3 s and hangs up; the caller leaves)
            caller = Caller("4008001234", caller="13800138000", steps=[Pause(8000), Dtmf("0"), Pause(9000)])
            assert (await caller.run()).ok
            events = await read_events(ws, until="call.ended", timeout=30)
            call_id = events[-1]["call_id"]
            async with asyncio.timeout(10):
                while not any(e["type"] == "call.ended" for e in agent_events["1001"]):
                    await asyncio.sleep(0.1)
            await asyncio.sleep(1)  # anything else for agent 1002 would have arrived by now
            for task in agents:
                task.cancel()
        types = [e["type"] for e in events]
        order = ["call.offered", "ivr.node_entered", "ivr.input_collected", "call.queued", "call.ringing",
                 "call.answered", "call.completed", "call.ended"]
        positions = [types.index(kind) for kind in order]
        assert positions == sorted(positions), types
        schemas = all_schemas()
        for event in events:
            jsonschema.validate(event, schemas[event["type"]])
        nodes = [e["data"]["node"] for e in events if e["type"] == "ivr.node_entered"]
        assert nodes[:4] == ["greeting", "hours", "customer", "main_menu"]
        collected = next(e for e in events if e["type"] == "ivr.input_collected")
        assert (collected["data"]["node"], collected["data"]["digits"]) == ("main_menu", "0")
        pop = next(e for e in events if e["type"] == "call.ringing")["data"]["screen_pop"]
        assert pop["caller"] == "13800138000" and pop["data"]["menu_choice"] == "0"
        assert pop["tier"] == "regular" and pop["region"]["province"] == "北京市"  # from the demo CRM, phonenumbers

        # The webhook receiver got the same events, in order, each signed.
        async with asyncio.timeout(15):
            while len(receiver.events) < len(events):
                await asyncio.sleep(0.1)
        assert [e["seq"] for e in receiver.events] == [e["seq"] for e in events]
        assert receiver.problems() == []

        # The agent's own token got the call's ringing, answer, completion and end; a colleague's token none of
        # this call, but its own log-in (the filter lets the right things through).
        mine = [(e["type"], e["call_id"]) for e in agent_events["1001"] if e["call_id"] == call_id]
        assert mine == [("call.ringing", call_id), ("call.answered", call_id), ("call.completed", call_id),
                        ("call.ended", call_id)], mine
        assert all(e["agent_id"] == "1001" for e in agent_events["1001"])
        assert [e for e in agent_events["1002"] if e["call_id"] == call_id] == []
        assert ("agent.state_changed", "1002") in {(e["type"], e["agent_id"]) for e in agent_events["1002"]}
    finally:
        phone.kill()
        await receiver.down()
