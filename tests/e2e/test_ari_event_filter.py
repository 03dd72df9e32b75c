"""Asterisk sends the controller only the event types it reads (ARI eventFilter, set on connect)."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from typing import Any

import pytest
import sandbox  # tools/sandbox.py (conftest puts tools/ on the path)

from controller.ari.events import UNUSED_EVENT_TYPES
from tests.e2e.conftest import ControllerProcess, ari_get, channel_events, wait_until
from tests.sipp import Caller, Pause

pytestmark = pytest.mark.e2e
DID = "4008001234"  # the demo hotline: answer, greeting, menu


async def events_by_type(controller: ControllerProcess) -> dict[str, int]:
    status, text = await controller.api("GET", "/metrics")
    assert status == 200, text
    return {m.group(1): int(float(m.group(2))) for m in
            re.finditer(r'ccc_ari_events_by_type_total\{type="([^"]+)"\} ([0-9.e+]+)', str(text))}


async def test_the_controller_receives_the_events_it_reads_and_not_the_ones_it_ignores(
        controller: ControllerProcess) -> None:
    application = await ari_get("/applications/ccc")
    assert {item["type"] for item in application["events_disallowed"]} == set(UNUSED_EVENT_TYPES), application

    result = await Caller(DID, steps=[Pause(2500)]).run()
    assert result.ok, result.output + result.errors
    received = await events_by_type(controller)
    # A call in Stasis with a prompt: the events the calls wait for arrive ...
    assert received.get("StasisStart", 0) >= 1 and received.get("StasisEnd", 0) >= 1, received
    assert received.get("PlaybackFinished", 0) >= 1, received
    # ... and the ones no handler reads (Asterisk sets a dozen variables on such a call) do not.
    assert not set(received) & set(UNUSED_EVENT_TYPES), received


async def test_asterisk_does_not_create_the_message_types_stasis_conf_declines(
        controller: ControllerProcess) -> None:
    """asterisk-conf/stasis.conf declines ChannelVarset (README "Configure Asterisk"): the application
    filter above only stops Asterisk from writing an event it has already built, a declined type is never built.
    A second application subscribed to every channel sees the call's other channel events but no variable set,
    although the inbound dialplan sets CCC_DID and Asterisk sets STASISSTATUS and the RTP statistics."""
    seen: list[dict[str, Any]] = []
    async with channel_events("ccc-probe") as ws:
        async def read() -> None:
            async for message in ws:
                seen.append(json.loads(message.data))

        async def hung_up() -> bool:
            return any(event["type"] == "ChannelDestroyed" for event in seen)

        reader = asyncio.create_task(read())
        try:
            result = await Caller(DID, steps=[Pause(2500)]).run()
            assert result.ok, result.output + result.errors
            await wait_until(hung_up)
        finally:
            reader.cancel()
    types = Counter(event["type"] for event in seen)
    # The call's channel was seen going through the dialplan (Set, then Stasis) and hanging up ...
    dialplan_apps = {event["dialplan_app"] for event in seen if event["type"] == "ChannelDialplan"}
    assert {"Set", "Stasis"} <= dialplan_apps, types
    assert types["ChannelHangupRequest"] >= 1, types
    # ... and not one variable set was published.
    assert types["ChannelVarset"] == 0, types
    # Asterisk's own CDR engine is off (asterisk-conf/cdr.conf): the controller writes the call records.
    assert re.search(r"Logging:\s+Disabled", sandbox.cli("cdr show status")), sandbox.cli("cdr show status")

