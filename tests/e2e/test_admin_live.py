"""DIDs, webhooks and standard prompts administered live on the real Asterisk (README "Administration (live
configuration)"): a change made through /api/config is what the next SIPp call gets, with no restart.

One controller for the whole story (starting one costs more than the checks): a DID added through the API
routes the next call to its flow, a webhook added through the API receives that call's events, a standard
prompt changed while the agent talks is the one the caller hears next, a removed prompt is refused; then the
webhook is removed and another added, and the next call's events reach only the new one.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from controller.media.prompts import prompt_key
from tests.e2e.conftest import ControllerProcess, demo_config, free_port
from tests.e2e.test_call_control import wait_for_state
from tests.e2e.test_cti import SECRET, Receiver
from tests.e2e.test_ivr_acd import AGENTS, flows_dir, login, stop_after  # noqa: F401 (fixture)
from tests.sipp import Caller, Pause, Phone, WaitForBye

pytestmark = pytest.mark.e2e
NEW_DID = "4008007777"  # no flow lists it and the file maps it nowhere
HOTLINE = "4008001234"
FEES = "本业务免收手续费。"
FEES_NOW = "自下月起，本业务每笔收取一元手续费。"


async def start(tmp_path: Path) -> ControllerProcess:
    general = {"name": "general", "wrapup_seconds": 1, "ring_timeout": 8, "max_wait": 60, "announce_interval": 0,
               "announce_agent_number": False, "no_agents": "wait"}
    config = demo_config(tmp_path, ivr={"flows_dir": str(flows_dir(tmp_path, "always"))},
                         acd={"queues": [general], "agents": AGENTS, "standard_prompts": {"fees": FEES}})
    process = ControllerProcess(tmp_path / "data", config=config)
    await process.start()
    return process


async def until(what: str, predicate: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def call_events(receiver: Receiver, call_id: str) -> list[str]:
    return [e["type"] for e in receiver.events if e.get("call_id") == call_id]


async def played_media(process: ControllerProcess, call_id: str) -> list[list[str]]:
    """What the call's record says each standard prompt played (the media URIs given to Asterisk)."""
    events = (await process.call_record(call_id))["events"]
    media = []
    for before, after in itertools.pairwise(events):
        if before["kind"] == "standard_prompt" and after["kind"] == "playback":
            media.append(after["media"])
    return media


async def test_dids_webhooks_and_prompts_changed_through_the_api_take_effect_on_the_next_call(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    process = await start(tmp_path)
    stop_after.append(process)
    crm, erp = Receiver(free_port()), Receiver(free_port())
    for receiver in (crm, erp):
        await receiver.up()
    try:
        await the_story(process, crm, erp)
    finally:
        for receiver in (crm, erp):
            await receiver.down()


async def the_story(process: ControllerProcess, crm: Receiver, erp: Receiver) -> None:
    # A DID naming a flow that is not loaded: 422 with the path, and nothing changes.
    _, before = await process.api("GET", "/api/config")
    status, body = await process.api("PUT", f"/api/config/dids/{NEW_DID}", json="nope")
    assert status == 422, body
    assert body["problems"] == [f"dids[{NEW_DID}]: flow 'nope' is not loaded (loaded: acdtest, hotline, hotline_en)"]
    assert (await process.api("GET", "/api/config"))[1] == before

    # The DID goes to the queue flow, and a webhook is added: both through the API, no restart.
    status, body = await process.api("PUT", f"/api/config/dids/{NEW_DID}", json="acdtest")
    assert status == 200, body
    hook = {"url": f"http://127.0.0.1:{crm.port}/events", "secret": SECRET, "types": ["call.*"]}
    status, body = await process.api("PUT", "/api/config/webhooks/crm", json=hook)
    assert status == 200, body
    assert body["changes"][0]["after"]["secret"] == "***"  # never shown back
    status, body = await process.api("GET", "/api/config/webhooks/crm")
    assert status == 200 and body["value"]["secret"] == "***", body
    status, body = await process.api("PUT", "/api/config/webhooks/crm", json={**hook, "secret": "***", "timeout": 4})
    assert status == 200 and body["changes"][0]["op"] == "change", body  # "***": the secret stays (signed below)

    agent_phone = Phone(15001, answer_after_ms=300, hold_ms=30000)
    await agent_phone.start()
    await login(process, "1001")
    caller = Caller(NEW_DID, steps=[WaitForBye(45000)])
    await caller.start()
    first = (await wait_for_state(process, "1001", "talking", timeout=20))["current_call"]
    record = await process.call_record(first)
    assert (record["did"], record["flow"]) == (NEW_DID, "acdtest"), record  # routed by the new DID

    # The standard prompt changed while the agent talks is the one played next; a removed one is 404.
    status, body = await process.api("PUT", "/api/config/standard_prompts/fees", "demo-supervisor-token",
                                     json=FEES_NOW)
    assert status == 200, body
    status, body = await process.api("POST", f"/api/calls/{first}/play", json={"prompt": "fees"})
    assert (status, body.get("played")) == (200, "fees"), body
    assert await played_media(process, first) == [[f"sound:ccc/tts/{prompt_key(FEES_NOW, 'zh')}"]]
    status, body = await process.api("DELETE", "/api/config/standard_prompts/fees", "demo-supervisor-token")
    assert status == 200, body
    status, body = await process.api("POST", f"/api/calls/{first}/play", json={"prompt": "fees"})
    assert status == 404 and "no standard prompt 'fees'" in body["error"], body
    status, body = await process.api("POST", f"/api/calls/{first}/hangup")
    assert status == 200, body
    assert (await caller.wait()).ok

    # The new webhook got the call's events, signed with its secret.
    await until("the crm webhook's call.ended", lambda: "call.ended" in call_events(crm, first))
    assert call_events(crm, first)[0] == "call.offered" and "call.answered" in call_events(crm, first)
    assert crm.problems() == []

    # "***" keeps the secret; erp is added, crm removed: the next call's events reach erp only.
    status, body = await process.api("PUT", "/api/config/webhooks/erp",
                                     json={**hook, "url": f"http://127.0.0.1:{erp.port}/events", "secret": "***"})
    assert status == 422, body  # a new webhook has no secret to keep
    status, body = await process.api("PUT", "/api/config/webhooks/erp",
                                     json={**hook, "url": f"http://127.0.0.1:{erp.port}/events"})
    assert status == 200, body
    status, body = await process.api("DELETE", "/api/config/webhooks/crm")
    assert status == 200, body
    taken = len(crm.deliveries)
    result = await Caller(HOTLINE, steps=[Pause(2000)]).run()
    assert result.ok, result.output
    second = next(r["call_id"] for r in await process.call_records() if r["call_id"] != first)
    await until("the erp webhook's call.ended", lambda: "call.ended" in call_events(erp, second))
    await asyncio.sleep(1.0)  # what crm would get, it would have got by now
    assert len(crm.deliveries) == taken and call_events(crm, second) == []
    assert erp.problems() == []
    status, webhooks = await process.api("GET", "/api/webhooks")
    assert status == 200 and [w["name"] for w in webhooks] == ["erp"], webhooks

    # Secrets stay out of the audit log: the changes' rows, and an apply's text (tried, refused, unchanged).
    document = f"webhooks:\n  - {{name: erp, url: 'http://127.0.0.1:{erp.port}/events', secret: {SECRET}}}\n"
    for query, text in (("dry_run=true", document), ("", document), ("", document + "  - {name: x}\n")):
        status, body = await process.api("POST", f"/api/config/apply?{query}", json={"yaml": text})
        assert status in (200, 422), body
    status, entries = await process.api("GET", "/api/audit?limit=1000")
    assert status == 200 and any(e["target"] == "webhook:crm" for e in entries["entries"]), entries
    assert SECRET not in json.dumps(entries, ensure_ascii=False)
    agent_phone.kill()
