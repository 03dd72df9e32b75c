"""Typed views of ARI's JSON objects and events (fields as in Asterisk 22's events.json).

Only the fields the controller uses are typed; `raw` keeps the whole object. Unknown event types
parse to the base `Event` so new Asterisk versions do not break the stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _s(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    return value if isinstance(value, str) else ""


@dataclass(frozen=True, slots=True)
class Channel:
    id: str
    name: str
    state: str
    caller_number: str
    caller_name: str
    dialplan_context: str
    dialplan_exten: str
    app_name: str
    app_data: str
    language: str
    creationtime: str
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Channel:
        caller = obj.get("caller") or {}
        dialplan = obj.get("dialplan") or {}
        return cls(
            id=_s(obj, "id"),
            name=_s(obj, "name"),
            state=_s(obj, "state"),
            caller_number=_s(caller, "number"),
            caller_name=_s(caller, "name"),
            dialplan_context=_s(dialplan, "context"),
            dialplan_exten=_s(dialplan, "exten"),
            app_name=_s(dialplan, "app_name"),
            app_data=_s(dialplan, "app_data"),
            language=_s(obj, "language"),
            creationtime=_s(obj, "creationtime"),
            raw=obj,
        )

    def stasis_app_and_args(self) -> tuple[str, list[str]] | None:
        """("ccc", ["4008001234"]) when the channel sits in Stasis(ccc,4008001234), else None."""
        if self.app_name != "Stasis":
            return None
        app, *args = self.app_data.split(",")
        return app, args


@dataclass(frozen=True, slots=True)
class Bridge:
    id: str
    bridge_type: str
    channels: tuple[str, ...]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Bridge:
        return cls(_s(obj, "id"), _s(obj, "bridge_type"), tuple(obj.get("channels") or ()), obj)


def _target_id(uri: str) -> str:
    """"channel:abc" -> "abc"; "bridge:xyz" -> "xyz"."""
    return uri.partition(":")[2]


@dataclass(frozen=True, slots=True)
class Playback:
    id: str
    media_uri: str
    target_uri: str
    state: str  # queued, playing, continuing, done, failed, cancelled

    @property
    def target_id(self) -> str:
        return _target_id(self.target_uri)

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Playback:
        return cls(_s(obj, "id"), _s(obj, "media_uri"), _s(obj, "target_uri"), _s(obj, "state"))


@dataclass(frozen=True, slots=True)
class LiveRecording:
    name: str
    target_uri: str
    state: str  # queued, recording, paused, done, failed, canceled
    format: str
    duration: int | None
    talking_duration: int | None
    silence_duration: int | None
    cause: str

    @property
    def target_id(self) -> str:
        return _target_id(self.target_uri)

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> LiveRecording:
        return cls(
            _s(obj, "name"), _s(obj, "target_uri"), _s(obj, "state"), _s(obj, "format"),
            obj.get("duration"), obj.get("talking_duration"), obj.get("silence_duration"), _s(obj, "cause"),
        )


# ----------------------------------------------------------------------------------------------
# Events
# ----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Event:
    type: str
    timestamp: str
    application: str
    raw: dict[str, Any] = field(repr=False)
    node: str = field(default="", repr=False)  # the Asterisk server it came from (set by its EventStream)

    #: ids this event concerns, most specific first; the dispatcher routes by them.
    def routing_ids(self) -> tuple[str, ...]:
        return ()


@dataclass(slots=True)
class ChannelEvent(Event):
    channel: Channel = field(default=None)  # type: ignore[assignment]

    def routing_ids(self) -> tuple[str, ...]:
        return (self.channel.id,)


@dataclass(slots=True)
class StasisStart(ChannelEvent):
    args: list[str] = field(default_factory=list)
    replace_channel: Channel | None = None


@dataclass(slots=True)
class StasisEnd(ChannelEvent):
    pass


@dataclass(slots=True)
class ChannelDtmfReceived(ChannelEvent):
    digit: str = ""
    duration_ms: int = 0


@dataclass(slots=True)
class ChannelHangupRequest(ChannelEvent):
    """`cause`: the Q.850 cause of a hang-up from the far end (a BYE, a CANCEL), 0 when not given. A
    `soft` request (an ARI DELETE, a redirect) carries Asterisk's soft hang-up flag in ARI's `cause`
    (32 for an explicit one), which is no Q.850 cause: parsed as 0, the real cause comes with
    ChannelDestroyed."""

    cause: int = 0
    soft: bool = False


@dataclass(slots=True)
class ChannelDestroyed(ChannelEvent):
    cause: int = 0
    cause_txt: str = ""


@dataclass(slots=True)
class ChannelStateChange(ChannelEvent):
    pass


@dataclass(slots=True)
class ChannelVarset(Event):
    channel: Channel | None = None
    variable: str = ""
    value: str = ""

    def routing_ids(self) -> tuple[str, ...]:
        return (self.channel.id,) if self.channel else ()


@dataclass(slots=True)
class BridgeEvent(Event):
    bridge: Bridge = field(default=None)  # type: ignore[assignment]
    channel: Channel | None = None

    def routing_ids(self) -> tuple[str, ...]:
        return ((self.channel.id,) if self.channel else ()) + (self.bridge.id,)


@dataclass(slots=True)
class ChannelEnteredBridge(BridgeEvent):
    pass


@dataclass(slots=True)
class ChannelLeftBridge(BridgeEvent):
    pass


@dataclass(slots=True)
class BridgeDestroyed(BridgeEvent):
    pass


@dataclass(slots=True)
class PlaybackEvent(Event):
    playback: Playback = field(default=None)  # type: ignore[assignment]

    def routing_ids(self) -> tuple[str, ...]:
        return (self.playback.id, self.playback.target_id)


@dataclass(slots=True)
class PlaybackStarted(PlaybackEvent):
    pass


@dataclass(slots=True)
class PlaybackFinished(PlaybackEvent):
    pass


@dataclass(slots=True)
class RecordingEvent(Event):
    recording: LiveRecording = field(default=None)  # type: ignore[assignment]

    def routing_ids(self) -> tuple[str, ...]:
        return (self.recording.name, self.recording.target_id)


@dataclass(slots=True)
class RecordingStarted(RecordingEvent):
    pass


@dataclass(slots=True)
class RecordingFinished(RecordingEvent):
    pass


@dataclass(slots=True)
class RecordingFailed(RecordingEvent):
    pass


@dataclass(slots=True)
class Dial(Event):
    peer: Channel = field(default=None)  # type: ignore[assignment]
    caller: Channel | None = None
    dialstatus: str = ""
    dialstring: str = ""

    def routing_ids(self) -> tuple[str, ...]:
        return (self.peer.id,) + ((self.caller.id,) if self.caller else ())


@dataclass(slots=True)
class ApplicationReplaced(Event):
    pass


def _channel_fields(obj: dict[str, Any]) -> dict[str, Any]:
    return {"channel": Channel.parse(obj["channel"])} if isinstance(obj.get("channel"), dict) else {}


def parse_event(obj: dict[str, Any]) -> Event:
    """Turn one decoded WebSocket message into a typed event."""
    kind = _s(obj, "type")
    base: dict[str, Any] = {"type": kind, "timestamp": _s(obj, "timestamp"),
                            "application": _s(obj, "application"), "raw": obj}
    try:
        if kind == "StasisStart":
            replace = obj.get("replace_channel")
            return StasisStart(**base, **_channel_fields(obj), args=list(obj.get("args") or []),
                               replace_channel=Channel.parse(replace) if replace else None)
        if kind == "ChannelDtmfReceived":
            return ChannelDtmfReceived(**base, **_channel_fields(obj), digit=_s(obj, "digit"),
                                       duration_ms=int(obj.get("duration_ms") or 0))
        if kind == "ChannelHangupRequest":
            soft = bool(obj.get("soft"))
            return ChannelHangupRequest(**base, **_channel_fields(obj), soft=soft,
                                        cause=0 if soft else int(obj.get("cause") or 0))
        if kind == "ChannelDestroyed":
            return ChannelDestroyed(**base, **_channel_fields(obj), cause=int(obj.get("cause") or 0),
                                    cause_txt=_s(obj, "cause_txt"))
        if kind in _SIMPLE_CHANNEL_EVENTS:
            return _SIMPLE_CHANNEL_EVENTS[kind](**base, **_channel_fields(obj))
        if kind == "ChannelVarset":
            channel = obj.get("channel")
            return ChannelVarset(**base, channel=Channel.parse(channel) if channel else None,
                                 variable=_s(obj, "variable"), value=_s(obj, "value"))
        if kind in _BRIDGE_EVENTS:
            channel = obj.get("channel")
            return _BRIDGE_EVENTS[kind](**base, bridge=Bridge.parse(obj["bridge"]),
                                        channel=Channel.parse(channel) if channel else None)
        if kind in _PLAYBACK_EVENTS:
            return _PLAYBACK_EVENTS[kind](**base, playback=Playback.parse(obj["playback"]))
        if kind in _RECORDING_EVENTS:
            return _RECORDING_EVENTS[kind](**base, recording=LiveRecording.parse(obj["recording"]))
        if kind == "Dial":
            caller = obj.get("caller")
            return Dial(**base, peer=Channel.parse(obj["peer"]), caller=Channel.parse(caller) if caller else None,
                        dialstatus=_s(obj, "dialstatus"), dialstring=_s(obj, "dialstring"))
        if kind == "ApplicationReplaced":
            return ApplicationReplaced(**base)
    except (KeyError, TypeError, ValueError):
        pass  # a malformed known event degrades to the generic one below
    return Event(**base)


_SIMPLE_CHANNEL_EVENTS: dict[str, type[ChannelEvent]] = {
    "StasisEnd": StasisEnd,
    "ChannelStateChange": ChannelStateChange,
}
_BRIDGE_EVENTS: dict[str, type[BridgeEvent]] = {
    "ChannelEnteredBridge": ChannelEnteredBridge,
    "ChannelLeftBridge": ChannelLeftBridge,
    "BridgeDestroyed": BridgeDestroyed,
}
_PLAYBACK_EVENTS: dict[str, type[PlaybackEvent]] = {
    "PlaybackStarted": PlaybackStarted,
    "PlaybackFinished": PlaybackFinished,
}
_RECORDING_EVENTS: dict[str, type[RecordingEvent]] = {
    "RecordingStarted": RecordingStarted,
    "RecordingFinished": RecordingFinished,
    "RecordingFailed": RecordingFailed,
}
