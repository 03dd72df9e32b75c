"""ARI's JSON to typed events (controller/ari/models.py): every field a handler reads, and what a bad event becomes.

The parser is hand-tuned (it runs for every event of every call): these tests pin what it gives, field by field,
for the events of a call and for malformed ones (a wrong type, a missing object, a non-string field).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from controller.ari.models import (
    ApplicationReplaced,
    Bridge,
    BridgeDestroyed,
    Channel,
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelEnteredBridge,
    ChannelHangupRequest,
    ChannelLeftBridge,
    ChannelStateChange,
    ChannelVarset,
    Dial,
    Event,
    LiveRecording,
    Playback,
    PlaybackFinished,
    PlaybackStarted,
    RecordingFailed,
    RecordingFinished,
    RecordingStarted,
    StasisEnd,
    StasisStart,
    parse_event,
)

CHANNEL: dict[str, Any] = {
    "id": "1764170000.123", "name": "PJSIP/trunk-0000007b", "state": "Up", "protocol_id": "1-4567@127.0.0.1",
    "caller": {"name": "张三", "number": "13800138000"}, "connected": {"name": "", "number": ""}, "accountcode": "",
    "dialplan": {"context": "ccc-inbound", "exten": "4008005100", "priority": 2, "app_name": "Stasis",
                 "app_data": "ccc,4008005100"},
    "creationtime": "2026-11-26T15:46:49.228+0000", "language": "zh", "tenantid": "",
}
STAMP = {"timestamp": "2026-11-26T15:46:50.001+0000", "asterisk_id": "02:42:ac:11:00:02", "application": "ccc"}


def message(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, **fields, **STAMP}


def test_a_channel_has_every_field() -> None:
    channel = Channel.parse(copy.deepcopy(CHANNEL))
    assert (channel.id, channel.name, channel.state, channel.caller_number, channel.caller_name,
            channel.dialplan_context, channel.dialplan_exten, channel.app_name, channel.app_data, channel.language,
            channel.creationtime) == (
        "1764170000.123", "PJSIP/trunk-0000007b", "Up", "13800138000", "张三", "ccc-inbound", "4008005100", "Stasis",
        "ccc,4008005100", "zh", "2026-11-26T15:46:49.228+0000")
    assert channel.raw == CHANNEL
    assert channel.stasis_app_and_args() == ("ccc", ["4008005100"])
    assert channel == Channel.parse(CHANNEL | {"protocol_id": "other"})  # raw is not compared
    assert hash(channel) == hash(Channel.parse(CHANNEL))


@pytest.mark.parametrize("broken", [
    {"id": 17, "name": None, "state": ["Up"], "caller": None, "dialplan": "ccc-inbound", "language": {}},
    {"id": 17, "caller": "13800138000", "dialplan": 5},
    {},
])
def test_a_channel_field_that_is_missing_or_not_a_string_is_empty(broken: dict[str, Any]) -> None:
    channel = Channel.parse(broken)
    assert (channel.id, channel.name, channel.state, channel.caller_number, channel.caller_name,
            channel.dialplan_context, channel.dialplan_exten, channel.app_name, channel.app_data, channel.language,
            channel.creationtime) == ("",) * 11
    assert channel.stasis_app_and_args() is None


def test_a_full_channel_with_a_field_that_is_not_a_string() -> None:
    channel = Channel.parse(CHANNEL | {"id": 17, "caller": {"name": None, "number": "13800138000"}})
    assert (channel.id, channel.caller_name, channel.caller_number, channel.name) == (
        "", "", "13800138000", "PJSIP/trunk-0000007b")


def test_the_events_of_a_call() -> None:
    start = parse_event(message("StasisStart", args=["4008005100", "x"], channel=CHANNEL))
    assert type(start) is StasisStart and start.args == ["4008005100", "x"] and start.replace_channel is None
    assert (start.type, start.timestamp, start.application, start.node) == (
        "StasisStart", STAMP["timestamp"], "ccc", "")
    assert start.channel.caller_number == "13800138000" and start.routing_ids() == ("1764170000.123",)
    replacing = parse_event(message("StasisStart", channel=CHANNEL, replace_channel=CHANNEL | {"id": "old"}))
    assert isinstance(replacing, StasisStart) and replacing.args == []
    assert replacing.replace_channel is not None and replacing.replace_channel.id == "old"

    dtmf = parse_event(message("ChannelDtmfReceived", digit="5", duration_ms=140, channel=CHANNEL))
    assert type(dtmf) is ChannelDtmfReceived and (dtmf.digit, dtmf.duration_ms, dtmf.channel.id) == (
        "5", 140, "1764170000.123")

    far = parse_event(message("ChannelHangupRequest", cause=17, channel=CHANNEL))
    soft = parse_event(message("ChannelHangupRequest", cause=32, soft=True, channel=CHANNEL))
    bare = parse_event(message("ChannelHangupRequest", channel=CHANNEL))
    assert isinstance(far, ChannelHangupRequest) and (far.cause, far.soft) == (17, False)
    assert isinstance(soft, ChannelHangupRequest) and (soft.cause, soft.soft) == (0, True)
    assert isinstance(bare, ChannelHangupRequest) and (bare.cause, bare.soft) == (0, False)

    destroyed = parse_event(message("ChannelDestroyed", cause=16, cause_txt="Normal Clearing", channel=CHANNEL))
    assert isinstance(destroyed, ChannelDestroyed) and (destroyed.cause, destroyed.cause_txt) == (16, "Normal Clearing")
    end = parse_event(message("StasisEnd", channel=CHANNEL))
    state = parse_event(message("ChannelStateChange", channel=CHANNEL))
    assert type(end) is StasisEnd and type(state) is ChannelStateChange and end.channel.id == state.channel.id

    varset = parse_event(message("ChannelVarset", variable="X", value="1", channel=CHANNEL))
    global_var = parse_event(message("ChannelVarset", variable="G", value=2))
    assert isinstance(varset, ChannelVarset) and (varset.variable, varset.value) == ("X", "1")
    assert varset.routing_ids() == ("1764170000.123",)
    assert isinstance(global_var, ChannelVarset) and global_var.channel is None and global_var.value == ""
    assert global_var.routing_ids() == ()

    peer = CHANNEL | {"id": "leg-agent-3f2a"}
    dial = parse_event(message("Dial", dialstatus="ANSWER", dialstring="bench0001", peer=peer, caller=CHANNEL))
    assert isinstance(dial, Dial) and (dial.dialstatus, dial.dialstring) == ("ANSWER", "bench0001")
    assert dial.routing_ids() == ("leg-agent-3f2a", "1764170000.123")
    lone = parse_event(message("Dial", dialstatus="RINGING", peer=peer))
    assert isinstance(lone, Dial) and lone.caller is None and lone.routing_ids() == ("leg-agent-3f2a",)


@pytest.mark.parametrize(("kind", "cls"), [("PlaybackStarted", PlaybackStarted),
                                           ("PlaybackFinished", PlaybackFinished)])
def test_playback_events(kind: str, cls: type[Event]) -> None:
    event = parse_event(message(kind, playback={"id": "pb-1", "media_uri": "sound:beep", "target_uri": "channel:c1",
                                                "language": "en", "state": "done"}))
    assert type(event) is cls and event.playback == Playback("pb-1", "sound:beep", "channel:c1", "done")  # type: ignore[attr-defined]
    assert event.routing_ids() == ("pb-1", "c1")


@pytest.mark.parametrize(("kind", "cls"), [("RecordingStarted", RecordingStarted),
                                           ("RecordingFinished", RecordingFinished),
                                           ("RecordingFailed", RecordingFailed)])
def test_recording_events(kind: str, cls: type[Event]) -> None:
    event = parse_event(message(kind, recording={"name": "r-1", "target_uri": "bridge:b1", "state": "done",
                                                 "format": "wav", "duration": 7, "cause": 3}))
    assert type(event) is cls
    assert event.recording == LiveRecording("r-1", "bridge:b1", "done", "wav", 7, None, None, "")  # type: ignore[attr-defined]
    assert event.routing_ids() == ("r-1", "b1")


@pytest.mark.parametrize(("kind", "cls"), [("ChannelEnteredBridge", ChannelEnteredBridge),
                                           ("ChannelLeftBridge", ChannelLeftBridge),
                                           ("BridgeDestroyed", BridgeDestroyed)])
def test_bridge_events(kind: str, cls: type[Event]) -> None:
    bridge = {"id": "br-1", "bridge_type": "mixing", "channels": ["a", "b"]}
    with_channel = parse_event(message(kind, bridge=bridge, channel=CHANNEL))
    assert type(with_channel) is cls and with_channel.routing_ids() == ("1764170000.123", "br-1")
    assert with_channel.bridge == Bridge("br-1", "mixing", ("a", "b"), {})  # type: ignore[attr-defined]
    alone = parse_event(message(kind, bridge=bridge))
    assert type(alone) is cls and alone.channel is None and alone.routing_ids() == ("br-1",)  # type: ignore[attr-defined]


def test_application_replaced_and_unknown_types() -> None:
    assert type(parse_event(message("ApplicationReplaced"))) is ApplicationReplaced
    unknown = parse_event(message("ChannelTalkingStarted", channel=CHANNEL))
    assert type(unknown) is Event and unknown.type == "ChannelTalkingStarted" and unknown.routing_ids() == ()
    assert unknown.raw["channel"] == CHANNEL


@pytest.mark.parametrize("obj", [
    message("PlaybackFinished"),  # no playback
    message("PlaybackFinished", playback="pb-1"),
    message("Dial", dialstatus="ANSWER"),  # no peer
    message("ChannelEnteredBridge", channel=CHANNEL),  # no bridge
    message("ChannelDtmfReceived", digit="1", duration_ms="long", channel=CHANNEL),
    message("ChannelDestroyed", cause="x", channel=CHANNEL),
    message("RecordingFinished", recording=None),
    message("StasisStart", args=["x"]),  # no channel
    message("ChannelHangupRequest", cause=16, channel="1764170000.123"),
    message("Dial", peer=CHANNEL, caller=["x"]),
])
def test_a_malformed_known_event_becomes_a_generic_one(obj: dict[str, Any]) -> None:
    """Nothing is routed on it (no ids), the stream goes on, and what came is kept in `raw`."""
    event = parse_event(obj)
    assert type(event) is Event and event.type == obj["type"] and event.routing_ids() == () and event.raw is obj
    assert (event.timestamp, event.application) == (STAMP["timestamp"], "ccc")


def test_a_message_whose_type_or_stamp_is_not_a_string() -> None:
    event = parse_event({"type": 7, "timestamp": None, "application": ["ccc"]})
    assert type(event) is Event and (event.type, event.timestamp, event.application) == ("", "", "")
    start = parse_event(message("StasisStart", args=None, channel=CHANNEL))
    assert isinstance(start, StasisStart) and start.args == []
