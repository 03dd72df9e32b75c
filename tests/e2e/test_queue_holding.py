"""The queues' shared holding bridges on the real Asterisk (controller/plugins/acd/holding.py): callers of a
queue wait together in its one holding bridge, and when Asterisk restarts (it lost the bridge) the next caller
waits in the same bridge, created again; after the calls no bridge of a call is left."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from panoramisk import Manager

from tests.e2e.conftest import ControllerProcess, ari_get, hang_up_then_kill, pool_settled, wait_until
from tests.e2e.test_resume_waiting import QUEUE_DID, config, holding_bridges, stop_after  # noqa: F401 (fixture)
from tests.sipp import Caller, Phone, WaitForBye
from tools import sandbox

pytestmark = pytest.mark.e2e


async def test_callers_share_the_queues_bridge_which_comes_back_after_an_asterisk_restart(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    controller = ControllerProcess(tmp_path / "data", config=config(tmp_path))
    stop_after.append(controller)
    await controller.start()
    status, body = await controller.api("POST", "/api/agents/1001/login", json={"ready": False})
    assert status == 200, body
    early = ["13900139001", "13900139002"]
    callers = [Caller(QUEUE_DID, caller=number, steps=[WaitForBye(60_000)]) for number in early]
    for caller in callers:
        await caller.start()
    held = await wait_until(lambda: holding_bridges(early), timeout=20)
    assert len(held) == 1, held  # both in the queue's one holding bridge
    (bridge_id,) = held
    assert [b["id"] for b in await ari_get("/bridges") if b["id"].startswith("br-")] == [bridge_id]
    before = await controller.status()
    assert before is not None
    sandbox.stop()  # the callers' channels and the bridge are gone with it
    try:
        for caller in callers:
            caller.kill()
    finally:
        sandbox.start()

    async def reconnected() -> bool:
        health = await controller.status()
        return bool(health) and health["ari_connected"] and health["ari_connections"] > before["ari_connections"]

    await wait_until(reconnected, timeout=30)
    assert not [b for b in await ari_get("/bridges") if b["id"].startswith("br-")]
    phone = Phone(15001, answer_after_ms=200, hold_ms=800, calls=1, timeout_s=60)
    await phone.start()
    try:
        late = Caller(QUEUE_DID, caller="13900139003", steps=[WaitForBye(60_000)])
        await late.start()
        again = await wait_until(lambda: holding_bridges(["13900139003"]), timeout=20)
        assert list(again) == [bridge_id]  # the same bridge, made again
        status, body = await controller.api("POST", "/api/agents/1001/ready")
        assert status == 200, body
        result = await late.wait()
        assert result.ok, result.errors
        await asyncio.sleep(0.5)
        # No bridge of the call is left but the pool's idle talk bridges; the queue's stays, empty, for the next caller.
        idle = (await wait_until(lambda: pool_settled(controller), timeout=10))["idle"]
        bridges = await ari_get("/bridges")
        assert [(b["id"], b["channels"]) for b in bridges if b["id"].startswith("br-") and b["id"] not in idle] \
            == [(bridge_id, [])], bridges
    finally:
        phone.kill()


async def test_each_waiting_caller_hears_music_of_their_own_and_no_announcer_plays_to_an_empty_bridge(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    """Issue 19: a bridge's own music (an announcer channel) played all the time, waiting callers or not (56 ms of
    Asterisk's CPU a second with 20 queues). Asterisk's holding bridge plays each participant music of their own
    when it has no announcer, as app_queue does: what Asterisk says (AMI MusicOnHoldStart) per caller channel."""
    controller = ControllerProcess(tmp_path / "data", config=config(tmp_path))
    stop_after.append(controller)
    await controller.start()
    status, body = await controller.api("POST", "/api/agents/1001/login", json={"ready": False})
    assert status == 200, body
    ami = Manager(host="127.0.0.1", port=5038, username="ccc", secret="ccc-demo-ami")
    await ami.connect()
    music: list[tuple[str, str, str]] = []
    ami.register_event("MusicOnHold*", lambda manager, message: music.append(
        (str(message.get("Event")), str(message.get("Channel")), str(message.get("Class")))))
    numbers = ["13900139011", "13900139012"]
    callers = [Caller(QUEUE_DID, caller=number, steps=[WaitForBye(60_000)]) for number in numbers]
    try:
        for caller in callers:
            await caller.start()
        held = await wait_until(lambda: holding_bridges(numbers), timeout=20)
        assert len(held) == 1, held
        names = {c["name"] for c in await ari_get("/channels") if c["caller"]["number"] in numbers}

        async def started() -> bool:
            return {channel for event, channel, _ in music if event == "MusicOnHoldStart"} >= names

        await wait_until(started, timeout=10)
        assert {klass for event, channel, klass in music if channel in names} == {"default"}, music
        channels = [c["name"] for c in await ari_get("/channels")]
        assert not [name for name in channels if name.startswith("Announcer/")], channels
        assert [event for event, channel, _ in music if channel not in names] == [], music  # no other music source
    finally:
        await hang_up_then_kill(callers)
        ami.close()
    # Once they are gone nothing plays in Asterisk: each one's music stopped with them.
    async def no_channel_left() -> bool:
        return not await ari_get("/channels")

    await wait_until(no_channel_left, timeout=20)  # (no announcer either)
    assert {channel for event, channel, _ in music if event == "MusicOnHoldStop"} == names, music
