"""Talk bridges from a pool, on the real Asterisk (controller/plugins/calls/bridge_pool.py, issue 19): a connected
call takes an idle mixing bridge and gives it back empty, instead of bridges.create + bridges.destroy per call.
Checked at each step through ARI's own listing of the bridges: who is in which bridge, and that no bridge leaks."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import ARI, ARI_HEADERS, ControllerProcess, ari_get, pool_settled, talk_bridges, wait_until
from tests.e2e.test_bridge_moves import ari_requests
from tests.e2e.test_resume_waiting import QUEUE_DID, config, stop_after  # noqa: F401 (fixture)
from tests.sipp import Caller, Pause, Phone, WaitForBye

pytestmark = pytest.mark.e2e

#: Another ARI application on the same Asterisk, which puts a channel of its own into our talk bridge.
FOREIGN_APP = "ccc-pool-intruder"


async def caller_channel(number: str) -> str | None:
    """The caller's channel (the agent's leg shows the caller's number too)."""
    return next((c["id"] for c in await ari_get("/channels")
                 if c["caller"]["number"] == number and not c["id"].startswith("leg-")), None)


async def bridge_of(number: str) -> tuple[str, set[str]] | None:
    """(talk bridge id, its channels) once the caller `number` is in a talk bridge with someone."""
    channel = await caller_channel(number)
    return next(((bridge_id, members) for bridge_id, members in (await talk_bridges()).items()
                 if channel in members and len(members) >= 2), None)


async def agent_1001_ready(tmp_path: Path, stop_after: list[ControllerProcess], *, hold_ms: int,  # noqa: F811
                           ) -> tuple[ControllerProcess, Phone]:
    """A controller whose flow hangs up once the call is answered, agent 1001 ready on a phone taking 2 calls."""
    controller = ControllerProcess(tmp_path / "data", config=config(tmp_path))
    stop_after.append(controller)
    await controller.start()
    status, body = await controller.api("POST", "/api/agents/1001/login", json={"ready": True})
    assert status == 200, body
    phone = Phone(15001, answer_after_ms=300, hold_ms=hold_ms, calls=2, timeout_s=60)
    await phone.start()
    return controller, phone


async def one_talk(controller: ControllerProcess, number: str, steps: list[Any]) -> tuple[str, set[str], Caller]:
    caller = Caller(QUEUE_DID, caller=number, steps=steps)
    await caller.start()
    bridge_id, members = await wait_until(lambda: bridge_of(number), timeout=30, interval=0.05)
    return bridge_id, members, caller


async def test_consecutive_calls_to_one_agent_reuse_a_bridge_and_never_meet(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    controller, phone = await agent_1001_ready(tmp_path, stop_after, hold_ms=1500)
    try:
        # Call 1: its talk bridge holds exactly its caller and the agent's leg.
        first, members, caller = await one_talk(controller, "13900139011", [WaitForBye(30_000)])
        first_caller = await caller_channel("13900139011")
        (first_leg,) = members - {first_caller}
        assert first_leg.startswith("leg-agent-"), members
        assert (await caller.wait()).ok
        await controller.wait_for_records(1)
        # Given back: empty, idle, kept in Asterisk (not destroyed); nothing else of ours is left.
        settled = await wait_until(lambda: pool_settled(controller), timeout=10)
        assert first in settled["idle"], settled
        before = await ari_requests(controller)

        # Call 2 to the same agent: an idle bridge, with only this call's caller and a new leg of the agent.
        second, members, caller = await one_talk(controller, "13900139012", [WaitForBye(30_000)])
        second_caller = await caller_channel("13900139012")
        assert second in settled["idle"], (second, settled)
        assert second_caller in members and len(members) == 2, members
        (second_leg,) = members - {second_caller}
        assert second_leg.startswith("leg-agent-") and second_leg != first_leg, members
        assert all(first_caller not in channels and first_leg not in channels
                   for channels in (await talk_bridges()).values())
        assert (await caller.wait()).ok
        await controller.wait_for_records(2)
        after = await wait_until(lambda: pool_settled(controller), timeout=10)
        requests = await ari_requests(controller) - before
    finally:
        phone.kill()
    assert after["state"]["taken_reused"] == settled["state"]["taken_reused"] + 1, (settled, after)
    assert after["state"]["taken_created"] == settled["state"]["taken_created"], (settled, after)
    assert requests["bridges.destroy"] == 0, requests  # the call's bridge went back to the pool
    assert requests["bridges.create"] <= 1, requests  # at most one made ahead, off the call path (MIN_IDLE)
    assert second in after["idle"], after


async def test_a_bridge_left_with_a_channel_in_it_is_not_reused(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    """A channel the call never added (another application's) is in the talk bridge when the call ends: the
    listing that confirms a bridge empty sees it; the bridge is destroyed, the next caller gets another one."""
    controller, agent_phone = await agent_1001_ready(tmp_path, stop_after, hold_ms=3000)
    stranger = Phone(15002, answer_after_ms=200, timeout_s=60)  # 8002: stays until it gets a BYE
    await stranger.start()
    url = f"{ARI.replace('http', 'ws')}/events?app={FOREIGN_APP}"
    try:
        async with aiohttp.ClientSession(headers=ARI_HEADERS) as http, http.ws_connect(url):
            first, members, caller = await one_talk(controller, "13900139021", [WaitForBye(30_000)])
            async with http.post(f"{ARI}/channels", params={"endpoint": "PJSIP/8002", "app": FOREIGN_APP,
                                                             "channelId": "intruder-1"}) as response:
                assert response.status == 200, await response.text()

            async def intruder_up() -> bool:
                channels = {c["id"]: c for c in await ari_get("/channels")}
                return channels.get("intruder-1", {}).get("state") == "Up"
            await wait_until(intruder_up, timeout=10)
            await asyncio.sleep(0.3)  # (in Stasis once answered)
            async with http.post(f"{ARI}/bridges/{first}/addChannel", params={"channel": "intruder-1"}) as response:
                assert response.status == 204, await response.text()
            assert (await talk_bridges())[first] == members | {"intruder-1"}
            assert (await caller.wait()).ok
            await controller.wait_for_records(1)

            async def destroyed() -> bool:
                return first not in await talk_bridges()
            await wait_until(destroyed, timeout=10)  # not given to anyone: gone
            # The next caller gets a bridge of their own, with the agent only.
            second, members, caller = await one_talk(controller, "13900139022", [Pause(1000)])
            second_caller = await caller_channel("13900139022")
            assert second != first and "intruder-1" not in members and len(members) == 2, members
            assert second_caller in members
            assert (await caller.wait()).ok
            await controller.wait_for_records(2)
            async with http.delete(f"{ARI}/channels/intruder-1"):
                pass
        settled = await wait_until(lambda: pool_settled(controller), timeout=10)
        assert first not in settled["idle"], settled
    finally:
        agent_phone.kill()
        stranger.kill()


async def test_an_idle_bridge_asterisk_no_longer_has_is_replaced_and_the_call_connects(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    """Idle bridges destroyed behind the pool's back (no reconnect tells it): the next call's addChannel answers
    404, the call goes on in a new bridge, the stale one is forgotten without a request."""
    controller, phone = await agent_1001_ready(tmp_path, stop_after, hold_ms=1500)
    try:
        _, _, caller = await one_talk(controller, "13900139031", [WaitForBye(30_000)])
        assert (await caller.wait()).ok
        await controller.wait_for_records(1)
        stale = (await wait_until(lambda: pool_settled(controller), timeout=10))["idle"]
        async with aiohttp.ClientSession(headers=ARI_HEADERS) as http:
            for bridge_id in stale:
                async with http.delete(f"{ARI}/bridges/{bridge_id}") as response:
                    assert response.status == 204, await response.text()
        before = await ari_requests(controller)
        second, members, caller = await one_talk(controller, "13900139032", [WaitForBye(30_000)])
        assert second not in stale and len(members) == 2, (second, members)
        assert (await caller.wait()).ok
        await controller.wait_for_records(2)
        requests = await ari_requests(controller) - before
    finally:
        phone.kill()
    assert requests["bridges.destroy"] == 0, requests  # the stale one is forgotten, not deleted
    settled = await wait_until(lambda: pool_settled(controller), timeout=10)
    assert second in settled["idle"] and not settled["idle"] & stale, settled
