"""The caller's moves between bridges on the real Asterisk, and the ARI requests they cost (issue 19).

From the queue's holding bridge into the talk bridge, addChannel alone: Asterisk departs the Stasis bridge a channel
is in before adding it to another (res/stasis/control.c, `control_swap_channel_in_bridge`). Out of the talk bridge
at its end, DELETE alone when the flow hangs the caller up next with nothing played. Where media comes in between
(the agent's number after the hold; a prompt after the talk), the caller is removed first (removeChannel answers once
the channel is out; a prompt asked for while the channel is still leaving a bridge never starts) and the media plays.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ControllerProcess, ari_get, pool_settled, wait_until
from tests.e2e.test_resume_waiting import QUEUE_DID, TALK_DID, config, stop_after  # noqa: F401 (fixture)
from tests.sipp import Caller, Phone, WaitForBye

pytestmark = pytest.mark.e2e


async def ari_requests(controller: ControllerProcess) -> Counter[str]:
    """The controller's ARI requests so far, by operation (its /metrics)."""
    status, text = await controller.api("GET", "/metrics")
    assert status == 200, text
    return Counter({operation: int(float(count)) for operation, count in
                    re.findall(r'ccc_ari_requests_total\{operation="([^"]+)"\} ([0-9.e+]+)', str(text))})


async def talking(number: str) -> tuple[str, dict[str, list[str]]] | None:
    """(the caller's channel, the controller's bridges with their channels) once the caller is in a talk bridge."""
    channels = [c["id"] for c in await ari_get("/channels") if c["caller"]["number"] == number]
    bridges = {b["id"]: b["channels"] for b in await ari_get("/bridges") if b["id"].startswith("br-")}
    in_talk = [bridge_id for bridge_id, members in bridges.items()
               if bridge_id.startswith("br-talk-") and set(channels) & set(members)]
    return (channels[0], bridges) if in_talk else None


def of_kind(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e.get("detail", e) | {"kind": e["kind"], "at": e.get("at")} for e in events if e["kind"] == kind]


async def one_call(controller: ControllerProcess, did: str, number: str, hold_ms: int) -> tuple[
        Counter[str], tuple[str, dict[str, list[str]]], list[dict[str, Any]]]:
    """One caller through the queue to agent 1001, who hangs up after `hold_ms`: the ARI requests the call cost,
    the caller's channel with the bridges while they talked, and the call's record events."""
    status, body = await controller.api("POST", "/api/agents/1001/login", json={"ready": True})
    assert status == 200, body
    phone = Phone(15001, answer_after_ms=300, hold_ms=hold_ms, calls=1, timeout_s=60)
    await phone.start()
    try:
        before = await ari_requests(controller)
        caller = Caller(did, caller=number, steps=[WaitForBye(60_000)])
        await caller.start()
        during_talk = await wait_until(lambda: talking(number), timeout=30, interval=0.05)
        result = await caller.wait()
        assert result.ok, result.output + result.errors
        (record,) = await controller.wait_for_records(1)
        assert record["end_reason"] == "controller_hangup", record  # the flow's hang-up node ended the call
        assert record["answered_at"], record  # answered by ccc-inbound's Answer(), recorded all the same
        requests = await ari_requests(controller) - before
        events = list((await controller.call_record(record["call_id"]))["events"])
    finally:
        phone.kill()
    # No bridge of the call is left but the talk bridge, empty and idle in the pool (with the one made ahead); the
    # queue's holding bridge stays, empty.
    settled = await wait_until(lambda: pool_settled(controller), timeout=10)
    assert settled["state"]["idle"] == 2, settled
    bridges = [(b["id"].split("-")[1], b["channels"]) for b in await ari_get("/bridges")
               if b["id"].startswith("br-") and b["id"] not in settled["idle"]]
    assert bridges == [("queue", [])], bridges
    return requests, during_talk, events


async def test_a_caller_moves_from_the_hold_into_the_talk_and_is_hung_up_with_no_remove_request(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    controller = ControllerProcess(tmp_path / "data", config=config(tmp_path))  # no agent-number announcement
    stop_after.append(controller)
    await controller.start()
    # The flow: queue, then (`answered: bye`) a hang-up node with no prompt.
    requests, (caller_channel, bridges), events = await one_call(controller, QUEUE_DID, "13900139001", 2000)
    # Asterisk took the caller out of the holding bridge when addChannel put them in the talk bridge.
    (holding,) = [members for bridge_id, members in bridges.items() if bridge_id.startswith("br-queue-")]
    (talk,) = [members for bridge_id, members in bridges.items() if bridge_id.startswith("br-talk-") and members]
    assert caller_channel not in holding and caller_channel in talk and len(talk) == 2, bridges
    assert [e["kind"] for e in events if e["kind"] in ("agent_answered", "bridged")] == ["agent_answered", "bridged"]
    assert requests["bridges.remove_channel"] == 0, requests
    assert requests["bridges.add_channel"] == 2, requests  # into the holding bridge, then caller and agent talk
    assert requests["channels.answer"] == 0, requests  # the dialplan answered before Stasis()
    # The holding bridge (made for the first caller), the talk bridge (the pool was empty) and one more made ahead for
    # the next call; none destroyed (the talk bridge went back to the pool); the caller hung up.
    assert (requests["bridges.create"], requests["bridges.destroy"], requests["channels.hangup"]) == (3, 0, 1), \
        requests


async def test_media_between_and_after_the_bridges_plays_because_the_caller_is_removed_first(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    controller = ControllerProcess(tmp_path / "data", config=config(tmp_path, announce_agent_number=True))
    stop_after.append(controller)
    await controller.start()
    # The flow: queue, then (`answered: thanks`) a prompt, then the hang-up. The agent stays past their number.
    requests, _, events = await one_call(controller, TALK_DID, "13900139002", 7000)
    kinds = [e["kind"] for e in events if e["kind"] in ("agent_answered", "announcement", "playback", "bridged")]
    assert kinds == ["agent_answered", "announcement", "playback", "bridged", "playback"], events
    announced, thanks = of_kind(events, "playback")
    # Both played to their end: neither was handed to a bridge the caller was leaving (that one never starts).
    assert (announced["state"], thanks["state"]) == ("done", "done"), events
    assert requests["bridges.remove_channel"] == 2, requests  # out of the hold, then out of the talk bridge
