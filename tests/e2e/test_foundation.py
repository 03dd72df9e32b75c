"""The foundation end to end: real Asterisk, real SIP calls, the controller as a process."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import subprocess
import sys

import pytest

from tests.e2e.conftest import REPO, ControllerProcess, ari_get, hang_up_everything, wait_until
from tests.sipp import Caller, Pause

sys.path.insert(0, str(REPO / "tools"))
import sandbox

pytestmark = pytest.mark.e2e
DID = "4008001234"
# A DID no flow claims: its callers hear the default greeting (the hotline flow owns DID).
UNROUTED_DID = "4008000001"


def ccctl(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "controller.cli.main", "--url", url, "--token", "demo-admin-token",
                           *args], capture_output=True, text=True, timeout=60)


async def stasis_channels() -> list[dict]:  # type: ignore[type-arg]
    return [c for c in await ari_get("/channels") if c["dialplan"]["app_name"] == "Stasis"]


@pytest.mark.both_engines
async def test_first_call_is_answered_greeted_and_recorded(controller: ControllerProcess) -> None:
    result = await Caller(UNROUTED_DID, caller="13800138000", steps=[Pause(2500)]).run()
    assert result.ok, result.output + result.errors

    (record,) = await controller.wait_for_records(1)
    full = await controller.call_record(record["call_id"])
    assert full["caller"] == "13800138000"
    assert full["did"] == UNROUTED_DID
    assert full["direction"] == "inbound"
    assert full["answered_at"] is not None and full["answered_at"] >= full["started_at"]
    assert full["ended_at"] >= full["answered_at"] + 2.0  # the caller stayed 2.5 s
    assert full["end_reason"] == "caller_hangup"
    assert full["hangup_cause"] == 16
    playbacks = [e for e in full["events"] if e["kind"] == "playback"]
    assert playbacks and playbacks[0]["media"] == ["sound:ccc/welcome"]
    # The caller's number never reaches the log in clear.
    assert "13800138000" not in controller.log.read_text()
    # The record went to the engine this run chose (a PostgreSQL run leaves no SQLite file behind).
    on_postgresql = bool(controller.env.get("CCC_STORE_URL"))
    status = await controller.status()
    assert status is not None and status["store"]["engine"] == ("postgresql" if on_postgresql else "sqlite")
    assert controller.db.exists() is not on_postgresql
    assert [r["call_id"] for r in controller.rows("SELECT call_id FROM calls")] == [record["call_id"]]


async def test_hotline_call_is_answered_by_its_flow_and_recorded(controller: ControllerProcess) -> None:
    """The demo contract: SIPp calls 4008001234, the hotline flow answers and greets, the caller hangs up."""
    result = await Caller(DID, caller="13800138000", steps=[Pause(2500)]).run()
    assert result.ok, result.output + result.errors
    (record,) = await controller.wait_for_records(1)
    full = await controller.call_record(record["call_id"])
    assert (full["did"], full["end_reason"]) == (DID, "caller_hangup") and full["answered_at"] is not None
    prompts = [e.get("detail", e).get("text", "") for e in full["events"] if e["kind"] == "prompt"]
    assert prompts and "欢迎致电演示热线" in prompts[0]


async def test_fallback_route_answers_when_controller_is_not_connected(fresh_asterisk) -> None:  # type: ignore[no-untyped-def]
    caller = Caller(DID, steps=[Pause(4000)])
    await caller.start()
    channel = await wait_until(lambda: _channel_in_context("ccc-fallback"))
    result = await caller.wait()
    assert result.ok, result.output + result.errors  # 200 OK: the dialplan answered
    assert channel["state"] == "Up"


async def _channel_in_context(context: str) -> dict | None:  # type: ignore[type-arg]
    for channel in await ari_get("/channels"):
        if channel["dialplan"]["context"] == context:
            return channel  # type: ignore[no-any-return]
    return None


async def test_a_call_left_in_stasis_by_a_killed_controller_is_resumed_or_reaches_the_fallback(
        controller: ControllerProcess) -> None:
    """Killed mid-greeting: the next process resumes a call it has a live-call picture of (the IVR replays
    the node); a call whose picture is lost goes to the fallback route, never stays in silence."""
    kept = Caller(DID, caller="13800138001", steps=[Pause(15000)])
    await kept.start()
    await wait_until(lambda: _active_calls(controller))
    (kept_call,) = [c["call_id"] for c in (await controller.api("GET", "/api/calls"))[1]["active"]]
    lost = Caller(DID, caller="13800138002", steps=[Pause(15000)])
    await lost.start()
    await wait_until(lambda: _two_active_calls(controller))
    (lost_call,) = [c["call_id"] for c in (await controller.api("GET", "/api/calls"))[1]["active"]
                    if c["call_id"] != kept_call]
    await asyncio.sleep(0.3)  # the live-call picture is committed within milliseconds of each step
    controller.kill()  # SIGKILL while both calls are in Stasis, mid-greeting
    channels = await stasis_channels()  # Asterisk keeps them in Stasis, in silence
    assert len(channels) == 2
    with sqlite3.connect(controller.db) as db:  # the lost call's picture is gone (e.g. a restored backup)
        assert db.execute("SELECT COUNT(*) FROM live_call_pictures WHERE call_id = ?", (lost_call,)).fetchone()[0] > 0
        db.execute("DELETE FROM live_call_pictures WHERE call_id = ?", (lost_call,))
    await controller.start()
    moved = await wait_until(lambda: _channel_in_context("ccc-fallback"))
    still = [c["id"] for c in await stasis_channels()]
    assert moved["id"] not in still and len(still) == 1  # the kept call is still ours, in Stasis
    lost_record = await controller.call_record(lost_call)
    assert "recovered" in [e["kind"] for e in lost_record["events"]]
    kept_events = [e["kind"] for e in (await controller.call_record(kept_call))["events"]]
    assert "resumed_by_new_process" in kept_events and "flow_resumed" in kept_events, kept_events
    assert "recovered" not in kept_events
    await hang_up_everything()  # both channels (SIPp is stopped without a BYE below)
    kept.kill()
    lost.kill()
    records = {r["call_id"]: r for r in await controller.wait_for_records(2)}
    assert records[lost_call]["end_reason"] == "fallback"
    assert records[kept_call]["end_reason"] != "fallback"


async def _two_active_calls(controller: ControllerProcess) -> bool:
    return await _active_calls(controller) == 2


async def _active_calls(controller: ControllerProcess) -> int:
    status, body = await controller.api("GET", "/api/calls")  # live calls (no ARI/AMI round trip)
    return len(body["active"]) if status == 200 else 0


async def test_event_stream_reconnects_after_asterisk_restart(controller: ControllerProcess) -> None:
    await controller.wait_healthy()
    before = await controller.status()
    assert before is not None
    sandbox.stop()
    try:
        await wait_until(lambda: _disconnected(controller))
        # The ops CLI says so clearly (and at once) while Asterisk is down.
        status = await asyncio.to_thread(ccctl, controller.url, "status")
        assert status.returncode == 1 and "NOT REACHABLE" in status.stdout and "NOT CONNECTED" in status.stdout, \
            status.stdout + status.stderr
        assert "trunks      UNKNOWN (Asterisk AMI unavailable" in status.stdout
        trunks = await asyncio.to_thread(ccctl, controller.url, "trunks")
        assert trunks.returncode == 1 and "Asterisk AMI unavailable" in trunks.stderr
    finally:
        sandbox.start()  # the tests after this one need it, whatever happened here
    health = await wait_until(lambda: _reconnected(controller, before["ari_connections"]), timeout=30)
    assert health["ari_connected"]
    # And calls are handled again.
    result = await Caller(DID, steps=[Pause(1500)]).run()
    assert result.ok, result.output
    await controller.wait_for_records(1)


async def _disconnected(controller: ControllerProcess) -> bool:
    health = await controller.health()
    return bool(health) and not health["ari_connected"]


async def _reconnected(controller: ControllerProcess, connections: int) -> dict | None:  # type: ignore[type-arg]
    health = await controller.status()
    if health and health["ari_connected"] and health["ari_connections"] > connections:
        return health
    return None


async def test_graceful_stop_leaves_live_calls_in_asterisk(controller: ControllerProcess) -> None:
    """SIGTERM (an upgrade): the call stays in Stasis as it is, its record open, for the next process."""
    caller = Caller(DID, steps=[Pause(8000)])
    await caller.start()
    await wait_until(lambda: _active_calls(controller))
    (channel,) = await stasis_channels()
    assert controller.terminate() == 0
    await asyncio.sleep(1.5)
    assert [c["id"] for c in await stasis_channels()] == [channel["id"]]  # still there, still ours
    assert await _channel_in_context("ccc-fallback") is None
    with sqlite3.connect(controller.db) as db:
        assert db.execute("SELECT COUNT(*) FROM calls WHERE ended_at IS NULL").fetchone()[0] == 1
        assert db.execute("SELECT COUNT(*) FROM live_call_pictures WHERE json_extract(parts, '$.call') IS NOT NULL"
                          ).fetchone()[0] == 1
    caller.kill()


async def test_metrics_and_api_authentication(controller: ControllerProcess) -> None:
    assert (await Caller(DID, steps=[Pause(1000)]).run()).ok
    await controller.wait_for_records(1)
    status, text = await controller.api("GET", "/metrics", token="demo-supervisor-token")
    assert status == 200
    assert "ccc_ari_connected 1.0" in text
    assert "ccc_calls_started_total 1.0" in text
    assert "ccc_webhook_backlog 0.0" in text
    commits = re.search(r"^ccc_store_commits_total ([0-9.e+]+)$", text, re.M)
    writes = re.search(r"^ccc_store_writes_total ([0-9.e+]+)$", text, re.M)
    assert commits and writes, text
    assert 1 <= float(commits.group(1)) <= float(writes.group(1)), text  # the call's records: committed, batched
    assert (await controller.api("GET", "/metrics", token="nope"))[0] == 401
    assert (await controller.api("GET", "/metrics", token="demo-agent-1001-token"))[0] == 403
    assert (await controller.api("GET", "/api/calls", token="demo-agent-1001-token"))[0] == 403
    # A token in the URL counts only for the WebSocket (/ws): elsewhere it would end up in logs.
    assert (await controller.api("GET", "/api/calls?token=demo-admin-token", token=""))[0] == 401
    status, body = await controller.api("GET", "/no/such/route")
    assert status == 404 and "error" in body
