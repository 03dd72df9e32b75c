"""The e2e harness's own guarantees: what one test leaves behind does not reach the next one."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.conftest import ARI, ARI_HEADERS, ari_get, hang_up_then_kill, wait_until
from tests.sipp import Phone

pytestmark = pytest.mark.e2e
PHONE_PORT = 15001  # endpoint 8001's static contact (asterisk-conf/pjsip.conf)
PROBE_APP = "ccc-harness"  # the rung channels wait in this application once answered (no controller here)


async def ring_8001(http: aiohttp.ClientSession) -> str:
    channel_id = f"harness-{uuid.uuid4().hex[:12]}"
    params = {"endpoint": "PJSIP/8001", "app": PROBE_APP, "channelId": channel_id, "timeout": "10"}
    async with http.post(f"{ARI}/channels", params=params) as response:
        assert response.status == 200, await response.text()
    return channel_id


async def test_a_phone_stopped_mid_call_leaves_no_stray_bye_for_the_next_phone_on_its_port(
        fresh_asterisk: Path) -> None:
    """A test that fails mid-call stops its phones. Had they been killed before Asterisk hung the call up,
    Asterisk would send its unanswered BYE again for 32 s, and the next test's phone on the same port would
    take it for a call of its own: one call of its budget used, it would stop after its first real call
    (test_standby's `frozen` case failed that way after the `cut_off` case had failed before it)."""
    events = f"{ARI.replace('http', 'ws')}/events?app={PROBE_APP}"
    async with aiohttp.ClientSession(headers=ARI_HEADERS) as http, http.ws_connect(events):
        first = Phone(PHONE_PORT, answer_after_ms=100, hold_ms=60_000)
        await first.start()
        talking = await ring_8001(http)

        async def up() -> bool:
            return any(c["id"] == talking and c["state"] == "Up" for c in await ari_get("/channels"))
        await wait_until(up, 10)
        await hang_up_then_kill([first])  # the end of a test, passed or not

        following = Phone(PHONE_PORT, answer_after_ms=100, hold_ms=500)  # one call, then it exits
        await following.start()
        # Asterisk resends an unanswered BYE 0.5, 1.5 and 3.5 s after the first (SIP timer E): none comes.
        await asyncio.sleep(4.0)
        assert following.process is not None and following.process.returncode is None, await following.wait()
        # The positive twin: the phone answers the next real call and completes it.
        await ring_8001(http)
        result = await asyncio.wait_for(following.wait(), 20)
        assert result.ok, result.output + result.errors
