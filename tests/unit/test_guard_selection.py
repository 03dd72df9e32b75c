"""Which channels the guard moves to the fallback route (controller/guard/selection.py)."""

from __future__ import annotations

from controller.ari.models import Bridge, Channel
from controller.guard.selection import strays


def channel(channel_id: str, app_data: str, state: str = "Up", app_name: str = "Stasis") -> Channel:
    return Channel.parse({"id": channel_id, "name": f"PJSIP/{channel_id}", "state": state,
                          "dialplan": {"context": "ccc-inbound", "exten": "4008001234", "app_name": app_name,
                                       "app_data": app_data}})


def bridge(bridge_id: str, call_id: str, *channel_ids: str) -> Bridge:
    return Bridge.parse({"id": bridge_id, "name": call_id, "bridge_type": "mixing", "channels": list(channel_ids)})


def moved(channels: list[Channel], bridges: list[Bridge]) -> list[str]:
    return [stray.channel_id for stray in strays(channels, bridges, "ccc")]


def test_ivr_and_waiting_callers_move_talking_ones_stay() -> None:
    channels = [channel("ivr", "ccc,4008001234"), channel("waiting", "ccc,4008005555"),
                channel("talking", "ccc,4008005555"), channel("agent", "ccc,leg,call-t")]
    bridges = [bridge("br-queue-1", "call-w", "waiting"), bridge("br-talk-1", "call-t", "talking", "agent")]
    strays_found = strays(channels, bridges, "ccc")
    assert [(s.channel_id, s.channel_name, s.did, s.queue_bridge) for s in strays_found] == [
        ("ivr", "PJSIP/ivr", "4008001234", None), ("waiting", "PJSIP/waiting", "4008005555", "br-queue-1")]


def test_agent_legs_helpers_and_other_applications_stay() -> None:
    channels = [channel("agent", "ccc,leg,call-1", state="Ringing"), channel("snoop", "ccc,snoop"),
                channel("click", "ccc,outbound"), channel("other-app", "other,4008001234"),
                channel("dialplan", "", app_name="Playback"), channel("no-args", "ccc")]
    assert moved(channels, []) == []


def test_caller_on_hold_or_consulting_stays_while_the_agent_is_on_the_call() -> None:
    caller = channel("caller", "ccc,4008005555")
    holding = bridge("br-hold-1", "call-1", "caller")  # the call's own holding bridge
    # On hold: the agent's leg is still in the call's talk bridge.
    assert moved([caller, channel("agent", "ccc,leg,call-1")],
                 [holding, bridge("br-talk-1", "call-1", "agent")]) == []
    # Consultation: the agent's answered leg is in another bridge with the consulted party.
    assert moved([caller, channel("agent", "ccc,leg,call-1"), channel("party", "ccc,leg,call-1")],
                 [holding, bridge("br-talk-2", "call-1", "agent", "party")]) == []
    # Positive: the agent's leg rings, or answered but was never bridged (the controller died in between):
    # nobody talks to the caller, who moves; the leg stays.
    assert moved([caller, channel("agent", "ccc,leg,call-1", state="Ringing")], [holding]) == ["caller"]
    assert moved([caller, channel("agent", "ccc,leg,call-1")], [holding]) == ["caller"]
    # Another call's talk bridge does not keep this caller.
    assert moved([caller], [holding, bridge("br-talk-9", "call-9", "x", "y")]) == ["caller"]


def test_a_caller_in_any_bridge_that_is_not_a_queue_stays() -> None:
    caller = channel("caller", "ccc,4008005555")
    assert moved([caller], [bridge("br-monitor-1", "call-1", "caller")]) == []
    assert moved([caller], [bridge("someone-elses", "", "caller")]) == []


def test_callers_waiting_in_a_queues_shared_holding_bridge_move_whatever_their_calls() -> None:
    """A queue's holding bridge holds all its waiting callers and is named after no call: each of them moves,
    while a caller on hold in their call's own holding bridge, with the agent in the talk bridge, stays."""
    shared = "br-queue-sales-0f51644ffe"
    channels = [channel("w1", "ccc,4008005555"), channel("w2", "ccc,4008005555"), channel("held", "ccc,4008005555"),
                channel("agent", "ccc,leg,call-h")]
    bridges = [Bridge.parse({"id": shared, "name": shared, "bridge_type": "holding", "channels": ["w1", "w2"]}),
               bridge("br-hold-2", "call-h", "held"), bridge("br-talk-2", "call-h", "agent")]
    assert [(s.channel_id, s.queue_bridge) for s in strays(channels, bridges, "ccc")] == [
        ("w1", shared), ("w2", shared)]


def test_a_pooled_talk_bridge_keeps_the_held_caller_by_the_legs_in_it() -> None:
    """Talk bridges come from a pool: named after no call. The agent's leg (`leg,<call>`) in one says the call is
    still busy: its caller on hold stays; another call's leg there does not keep them."""
    caller = channel("caller", "ccc,4008005555")
    holding = bridge("br-hold-1", "call-1", "caller")
    assert moved([caller, channel("agent", "ccc,leg,call-1")],
                 [holding, bridge("br-talk-1", "talk-pool", "agent")]) == []
    assert moved([caller, channel("agent", "ccc,leg,call-2")],
                 [holding, bridge("br-talk-1", "talk-pool", "agent")]) == ["caller"]
