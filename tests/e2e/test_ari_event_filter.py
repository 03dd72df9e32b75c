"""Asterisk sends the controller only the event types it reads (ARI eventFilter, set on connect)."""

from __future__ import annotations

import re

import pytest

from controller.ari.events import UNUSED_EVENT_TYPES
from tests.e2e.conftest import ControllerProcess, ari_get
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
