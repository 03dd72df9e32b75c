"""Typed views of ARI's JSON objects and events (fields as in Asterisk 22's events.json).

Only the fields the controller uses are typed; `raw` keeps the whole object. Unknown event types
parse to the base `Event` so new Asterisk versions do not break the stream, and a known one that is malformed
(a missing or wrong-typed object) to the base `Event` too: nothing routes on it.

This runs for every event of every call, so it is written for few Python calls (issue 19): one parser per event
type found in a table, fields read inline (`_str`'s test written out, not called), objects built positionally.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_NOTHING: dict[str, Any] = {}


def _str(obj: dict[str, Any], key: str) -> str:
    """obj[key] if it is a string, else "" (for the rare objects: the hot parsers write this test out)."""
    value = obj.get(key)
    return value if value.__class__ is str else ""


def _strings(values: list[Any]) -> list[Any]:
    """`values` with each one that is not a string made "" (in place: it is the caller's new list)."""
    for index, value in enumerate(values):
        if value.__class__ is not str:
            values[index] = ""
    return values


def _object(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else a TypeError: the event it came in is malformed."""
    if value.__class__ is not dict:
        raise TypeError(f"expected a JSON object, not {type(value).__name__}")
    return value


@dataclass(slots=True, unsafe_hash=True)
class Channel:
    """A channel as an event or an answer gives it. Read-only by convention: not `frozen`, whose generated
    __init__ sets each field through object.__setattr__ (half the cost of parsing a channel); compared and
    hashed as the frozen one was (every field but `raw`)."""

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
        """A field missing or not a string is "" (so is each field of a missing `caller` or `dialplan`); `obj`
        not an object is a TypeError."""
        if obj.__class__ is not dict:
            raise TypeError(f"a channel is a JSON object, not {type(obj).__name__}")
        try:  # Asterisk sends every field: read them without a call each
            caller = obj["caller"]
            dialplan = obj["dialplan"]
            values = [obj["id"], obj["name"], obj["state"], caller["number"], caller["name"], dialplan["context"],
                      dialplan["exten"], dialplan["app_name"], dialplan["app_data"], obj["language"],
                      obj["creationtime"]]
        except (KeyError, TypeError):  # a field missing, `caller` or `dialplan` not an object
            caller = obj.get("caller")
            caller = caller if caller.__class__ is dict else _NOTHING
            dialplan = obj.get("dialplan")
            dialplan = dialplan if dialplan.__class__ is dict else _NOTHING
            values = [obj.get("id"), obj.get("name"), obj.get("state"), caller.get("number"), caller.get("name"),
                      dialplan.get("context"), dialplan.get("exten"), dialplan.get("app_name"),
                      dialplan.get("app_data"), obj.get("language"), obj.get("creationtime")]
        for value in values:
            if value.__class__ is not str:
                _strings(values)
                break
        (channel_id, name, state, caller_number, caller_name, context, exten, app_name, app_data, language,
         creationtime) = values
        return cls(channel_id, name, state, caller_number, caller_name, context, exten, app_name, app_data, language,
                   creationtime, obj)

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
        obj = _object(obj)
        return cls(_str(obj, "id"), _str(obj, "bridge_type"), tuple(obj.get("channels") or ()), obj)


def _target_id(uri: str) -> str:
    """"channel:abc" -> "abc"; "bridge:xyz" -> "xyz"."""
    return uri.partition(":")[2]


@dataclass(slots=True, unsafe_hash=True)
class Playback:
    """Read-only by convention, not `frozen` (see Channel)."""

    id: str
    media_uri: str
    target_uri: str
    state: str  # queued, playing, continuing, done, failed, cancelled

    @property
    def target_id(self) -> str:
        return _target_id(self.target_uri)

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Playback:
        if obj.__class__ is not dict:
            raise TypeError(f"a playback is a JSON object, not {type(obj).__name__}")
        return cls(*_strings([obj.get("id"), obj.get("media_uri"), obj.get("target_uri"), obj.get("state")]))


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
        obj = _object(obj)
        return cls(
            _str(obj, "name"), _str(obj, "target_uri"), _str(obj, "state"), _str(obj, "format"),
            obj.get("duration"), obj.get("talking_duration"), obj.get("silence_duration"), _str(obj, "cause"),
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
        playback = self.playback
        return (playback.id, playback.target_uri.partition(":")[2])  # target_id's work, without its two calls


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


def _stasis_start(obj: dict[str, Any], kind: str, stamp: str, app: str) -> Event:
    args = obj.get("args")
    replace = obj.get("replace_channel")
    return StasisStart(kind, stamp, app, obj, "", Channel.parse(obj["channel"]), list(args) if args else [],
                       Channel.parse(replace) if replace else None)


def _dtmf(obj: dict[str, Any], kind: str, stamp: str, app: str) -> Event:
    return ChannelDtmfReceived(kind, stamp, app, obj, "", Channel.parse(obj["channel"]), _str(obj, "digit"),
                               int(obj.get("duration_ms") or 0))


def _hangup_request(obj: dict[str, Any], kind: str, stamp: str, app: str) -> Event:
    soft = bool(obj.get("soft"))
    return ChannelHangupRequest(kind, stamp, app, obj, "", Channel.parse(obj["channel"]),
                                0 if soft else int(obj.get("cause") or 0), soft)


def _destroyed(obj: dict[str, Any], kind: str, stamp: str, app: str) -> Event:
    return ChannelDestroyed(kind, stamp, app, obj, "", Channel.parse(obj["channel"]), int(obj.get("cause") or 0),
                            _str(obj, "cause_txt"))


def _one_object(cls: Callable[..., Event], key: str, parse_object: Callable[[Any], object]
                ) -> Callable[[dict[str, Any], str, str, str], Event]:
    """The parser of an event type whose one field is the object under `key` (a channel, a playback…)."""
    def parse(obj: dict[str, Any], kind: str, stamp: str, app: str) -> Event:
        return cls(kind, stamp, app, obj, "", parse_object(obj[key]))
    return parse


def _varset(obj: dict[str, Any], kind: str, stamp: str, app: str) -> Event:
    channel = obj.get("channel")
    return ChannelVarset(kind, stamp, app, obj, "", Channel.parse(channel) if channel else None,
                         _str(obj, "variable"), _str(obj, "value"))


def _bridge_event(cls: type[BridgeEvent]) -> Callable[[dict[str, Any], str, str, str], Event]:
    def parse(obj: dict[str, Any], kind: str, stamp: str, app: str) -> Event:
        channel = obj.get("channel")
        return cls(kind, stamp, app, obj, "", Bridge.parse(obj["bridge"]), Channel.parse(channel) if channel else None)
    return parse


def _dial(obj: dict[str, Any], kind: str, stamp: str, app: str) -> Event:
    caller = obj.get("caller")
    return Dial(kind, stamp, app, obj, "", Channel.parse(obj["peer"]), Channel.parse(caller) if caller else None,
                _str(obj, "dialstatus"), _str(obj, "dialstring"))


def _application_replaced(obj: dict[str, Any], kind: str, stamp: str, app: str) -> Event:
    return ApplicationReplaced(kind, stamp, app, obj)


#: The parser of each known event type: (message, its type, timestamp, application) -> the typed event.
_PARSERS: dict[str, Callable[[dict[str, Any], str, str, str], Event]] = {
    "StasisStart": _stasis_start,
    "ChannelDtmfReceived": _dtmf,
    "ChannelHangupRequest": _hangup_request,
    "ChannelDestroyed": _destroyed,
    "StasisEnd": _one_object(StasisEnd, "channel", Channel.parse),
    "ChannelStateChange": _one_object(ChannelStateChange, "channel", Channel.parse),
    "ChannelVarset": _varset,
    "ChannelEnteredBridge": _bridge_event(ChannelEnteredBridge),
    "ChannelLeftBridge": _bridge_event(ChannelLeftBridge),
    "BridgeDestroyed": _bridge_event(BridgeDestroyed),
    "PlaybackStarted": _one_object(PlaybackStarted, "playback", Playback.parse),
    "PlaybackFinished": _one_object(PlaybackFinished, "playback", Playback.parse),
    "RecordingStarted": _one_object(RecordingStarted, "recording", LiveRecording.parse),
    "RecordingFinished": _one_object(RecordingFinished, "recording", LiveRecording.parse),
    "RecordingFailed": _one_object(RecordingFailed, "recording", LiveRecording.parse),
    "Dial": _dial,
    "ApplicationReplaced": _application_replaced,
}


def parse_event(obj: dict[str, Any]) -> Event:
    """Turn one decoded WebSocket message into a typed event; a message that is not an object is a ValueError.

    A known type with a part missing or of the wrong type (a channel that is no object, a cause that is no number)
    parses to the generic `Event`, as an unknown type does."""
    if obj.__class__ is not dict:
        raise ValueError(f"an ARI event is a JSON object, not {type(obj).__name__}")
    try:  # Asterisk stamps every event: read them without a call each
        kind, stamp, app = obj["type"], obj["timestamp"], obj["application"]
    except KeyError:
        kind, stamp, app = obj.get("type"), obj.get("timestamp"), obj.get("application")
    if kind.__class__ is not str:
        kind = ""
    if stamp.__class__ is not str:
        stamp = ""
    if app.__class__ is not str:
        app = ""
    parser = _PARSERS.get(kind)
    if parser is not None:
        try:
            return parser(obj, kind, stamp, app)
        except (KeyError, TypeError, ValueError):
            pass  # a malformed known event degrades to the generic one below
    return Event(kind, stamp, app, obj)
