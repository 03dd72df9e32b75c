"""A real softphone (Debian's baresip) as an agent's phone, set up the way the README says.

The README ("Real softphones"): register the softphone as user 800N with the phone's password to
the PBX on 127.0.0.1:5060, log the agent in on that phone, go ready. The SIPp caller then reaches
the queue and the ring goes to baresip, which answers by itself; nothing listens on the demo's
static contact (127.0.0.1:15001), so the call can only be answered by the softphone.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest

from tests.baresip import Softphone
from tests.e2e.conftest import ControllerProcess, ari_get, sandbox
from tests.e2e.test_call_control import bridge_of, start, wait_for_state
from tests.e2e.test_ivr_acd import ACD_DID, rows, stop_after  # noqa: F401 (fixture)
from tests.sipp import Caller, WaitForBye

pytestmark = pytest.mark.e2e  # needs Debian's baresip: `make deps` installs it


def phone_contacts(aor: str) -> list[str]:
    """host:port of the AOR's contacts, in the order Asterisk keeps them (it dials the first)."""
    listing = sandbox.cli(f"pjsip show aor {aor}")
    return re.findall(rf"^\s*Contact:\s+{aor}/sip:\S*@([\d.]+:\d+)", listing, re.MULTILINE)


async def test_baresip_registers_as_an_agent_phone_and_answers_a_queue_call(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    process = await start(tmp_path)
    stop_after.append(process)
    softphone = Softphone("8001", "ccc-demo-8001")  # the demo password of phone 8001 (asterisk-conf/pjsip.conf)
    await softphone.start()
    try:
        # From 127.0.0.1, the address the loopback trunk also sends from: registered all the same.
        assert "ccc-asterisk" in await softphone.wait_registered()
        assert phone_contacts("8001") == [f"127.0.0.1:{softphone.sip_port}", "127.0.0.1:15001"]  # rung first

        status, agent = await process.api("POST", "/api/agents/1001/login", json={"phone": "8001"})
        assert status == 200, agent
        assert agent["state"] == "ready"  # logging in makes the agent ready unless asked otherwise

        caller = Caller(ACD_DID, caller="13800138000", steps=[WaitForBye(40000)])
        await caller.start()
        answered = await softphone.wait_for("CALL_ESTABLISHED")  # answered by itself (answermode=auto)
        assert answered["direction"] == "incoming"
        assert answered["peeruri"].startswith("sip:13800138000@"), answered  # the caller's number shows
        talking = await wait_for_state(process, "1001", "talking")
        assert talking["current_call"]

        # The caller and the softphone's leg are in one bridge.
        caller_channel = (await process.call_record(talking["current_call"]))["channel_id"]
        members = await bridge_of(caller_channel)
        names = {c["id"]: c["name"] for c in await ari_get("/channels")}
        assert sorted(names[c].split("-")[0] for c in members) == ["PJSIP/8001", "PJSIP/loopback"], names

        await softphone.command("hangup")  # the agent hangs up on the softphone
        await softphone.wait_for("CALL_CLOSED")
        assert (await caller.wait()).ok  # the flow said goodbye after the agent left
        await wait_for_state(process, "1001", "acw")
    finally:
        await softphone.stop()
    deadline = time.monotonic() + 5
    while phone_contacts("8001") != ["127.0.0.1:15001"] and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert phone_contacts("8001") == ["127.0.0.1:15001"]  # unregistered: the static contact (SIPp's) again
    (visit,) = rows(process, "SELECT queue, outcome, agent_id FROM queue_calls")
    assert visit == {"queue": "general", "outcome": "answered", "agent_id": "1001"}
