"""One controller per data directory and ARI application (issue 13, item 5), on the real Asterisk."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.e2e.conftest import ARI_HEADERS, ControllerProcess, ari_get, free_port
from tests.e2e.test_foundation import UNROUTED_DID, wait_until
from tests.sipp import Caller, Pause

pytestmark = pytest.mark.e2e


async def _exit_status(process: ControllerProcess, timeout: float = 30) -> int:
    assert process.process is not None
    return await asyncio.to_thread(process.process.wait, timeout)


async def _connections(process: ControllerProcess) -> int:
    """How many times the controller connected its event stream (1: never lost its application); it is
    connected now."""
    status, body = await process.api("GET", "/api/status")
    assert status == 200 and body["controller"]["ari_connected"], body
    return int(body["controller"]["ari_connections"])


async def test_second_controller_on_the_same_data_dir_refuses_and_the_first_keeps_serving(
        controller: ControllerProcess) -> None:
    second = ControllerProcess(controller.data_dir)  # same data directory, another HTTP port
    second.log = controller.data_dir / "second.log"
    await second.start(wait=False)
    try:
        assert await _exit_status(second) == 3
    finally:
        second.terminate()  # one that did not refuse
    message = second.log.read_text()
    assert "not starting: another controller" in message and "data directory" in message, message
    assert f"pid {controller.process.pid}" in message, message  # type: ignore[union-attr]
    # The first one never lost its application: it still answers calls and records them.
    assert await _connections(controller) == 1
    result = await Caller(UNROUTED_DID, steps=[Pause(2500)]).run()
    assert result.ok, result.output + result.errors
    (record,) = await controller.wait_for_records(1)
    assert record["end_reason"] != "fallback"


async def test_second_controller_on_another_data_dir_refuses_to_take_the_ari_application(
        controller: ControllerProcess, tmp_path) -> None:  # type: ignore[no-untyped-def]
    other = ControllerProcess(tmp_path / "other")
    await other.start(wait=False)
    try:
        assert await _exit_status(other) == 3
    finally:
        other.terminate()  # one that did not refuse
    message = other.log.read_text()
    assert "ARI application 'ccc' is already served by another process" in message, message
    assert await _connections(controller) == 1
    assert (await Caller(UNROUTED_DID, steps=[Pause(2000)]).run()).ok


async def test_application_replaced_stops_the_controller_without_touching_its_calls(
        controller: ControllerProcess) -> None:
    caller = Caller(UNROUTED_DID, steps=[Pause(15000)])
    await caller.start()

    async def call_in_stasis() -> list[dict]:  # type: ignore[type-arg]
        return [c for c in await ari_get("/channels") if c["dialplan"]["app_name"] == "Stasis"]

    (channel,) = await wait_until(call_in_stasis)
    # Someone else connects a WebSocket for the same application name (Asterisk: ApplicationReplaced).
    async with aiohttp.ClientSession(headers=ARI_HEADERS) as http, \
            http.ws_connect("ws://127.0.0.1:8088/ari/events?app=ccc&subscribeAll=false"):
        assert await _exit_status(controller) == 3
        log = controller.log.read_text()
        assert "taken over by another process (ApplicationReplaced)" in log, log[-3000:]
        assert "stopping: handing" not in log  # no graceful hand-over of calls it no longer owns
        await asyncio.sleep(1)
        (still,) = await call_in_stasis()  # the call was left where it was, for the new owner
        assert still["id"] == channel["id"] and still["dialplan"]["context"] != "ccc-fallback"
    caller.kill()



async def test_when_the_check_cannot_be_made_the_newer_controller_wins_and_the_older_one_steps_back(
        controller: ControllerProcess, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # An AMI user that may not run CLI commands: the newcomer cannot see the live session and starts.
    newcomer = ControllerProcess(tmp_path / "newcomer", env={
        "CCC_AMI_USER": "ccc-guard", "CCC_AMI_SECRET": "ccc-demo-guard", "CCC_AGI_PORT": str(free_port())})
    try:
        await newcomer.start()
        assert "cannot check whether ARI application ccc is taken (AMI: Permission denied)" in newcomer.log.read_text()
        # Asterisk gave it the application: the older one got ApplicationReplaced and left without a fight.
        assert await _exit_status(controller) == 3
        assert "ApplicationReplaced" in controller.log.read_text()
        await asyncio.sleep(6)  # longer than the event stream's reconnect back-off: nobody takes it back
        assert await _connections(newcomer) == 1
        result = await Caller(UNROUTED_DID, steps=[Pause(2000)]).run()
        assert result.ok, result.output + result.errors
        assert len(await newcomer.wait_for_records(1)) == 1
    finally:
        newcomer.terminate()
