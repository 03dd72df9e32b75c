"""Every ARI operation the controller uses, in one table.

The client builds requests only from these entries, and a test checks each one (method, path and
query parameters) against ARI's own Swagger description shipped with Asterisk
(/usr/share/asterisk/rest-api/*.json), so the client cannot call an operation that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str  # with {placeholders}, relative to /ari
    params: frozenset[str] = frozenset()  # allowed query parameters
    body: bool = False  # takes a JSON body (variables / fields)


def _ep(method: str, path: str, *params: str, body: bool = False) -> Endpoint:
    return Endpoint(method, path, frozenset(params), body)


_ORIGINATE = ("endpoint", "extension", "context", "priority", "label", "app", "appArgs", "callerId",
              "timeout", "otherChannelId", "originator", "formats")
_PLAY = ("media", "lang", "offsetms", "skipms")
_RECORD = ("name", "format", "maxDurationSeconds", "maxSilenceSeconds", "ifExists", "beep", "terminateOn")

ENDPOINTS: dict[str, Endpoint] = {
    # asterisk / applications
    "asterisk.info": _ep("GET", "/asterisk/info", "only"),
    "asterisk.ping": _ep("GET", "/asterisk/ping"),
    "asterisk.modules": _ep("GET", "/asterisk/modules"),
    "asterisk.module": _ep("GET", "/asterisk/modules/{moduleName}"),
    "asterisk.reload_module": _ep("PUT", "/asterisk/modules/{moduleName}"),
    "asterisk.get_global_var": _ep("GET", "/asterisk/variable", "variable"),
    "applications.list": _ep("GET", "/applications"),
    "sounds.get": _ep("GET", "/sounds/{soundId}"),
    "applications.get": _ep("GET", "/applications/{applicationName}"),
    "applications.filter": _ep("PUT", "/applications/{applicationName}/eventFilter", body=True),
    # channels
    "channels.list": _ep("GET", "/channels"),
    "channels.get": _ep("GET", "/channels/{channelId}"),
    "channels.originate": _ep("POST", "/channels/{channelId}", *_ORIGINATE, body=True),
    "channels.create": _ep("POST", "/channels/create", "endpoint", "app", "appArgs", "channelId",
                           "otherChannelId", "originator", "formats", body=True),
    "channels.dial": _ep("POST", "/channels/{channelId}/dial", "caller", "timeout"),
    "channels.hangup": _ep("DELETE", "/channels/{channelId}", "reason_code", "reason"),
    "channels.continue": _ep("POST", "/channels/{channelId}/continue", "context", "extension", "priority",
                             "label"),
    "channels.move": _ep("POST", "/channels/{channelId}/move", "app", "appArgs"),
    "channels.redirect": _ep("POST", "/channels/{channelId}/redirect", "endpoint"),
    "channels.answer": _ep("POST", "/channels/{channelId}/answer"),
    "channels.ring": _ep("POST", "/channels/{channelId}/ring"),
    "channels.ring_stop": _ep("DELETE", "/channels/{channelId}/ring"),
    "channels.progress": _ep("POST", "/channels/{channelId}/progress"),
    "channels.send_dtmf": _ep("POST", "/channels/{channelId}/dtmf", "dtmf", "before", "between", "duration",
                              "after"),
    "channels.mute": _ep("POST", "/channels/{channelId}/mute", "direction"),
    "channels.unmute": _ep("DELETE", "/channels/{channelId}/mute", "direction"),
    "channels.hold": _ep("POST", "/channels/{channelId}/hold"),
    "channels.unhold": _ep("DELETE", "/channels/{channelId}/hold"),
    "channels.start_moh": _ep("POST", "/channels/{channelId}/moh", "mohClass"),
    "channels.stop_moh": _ep("DELETE", "/channels/{channelId}/moh"),
    "channels.start_silence": _ep("POST", "/channels/{channelId}/silence"),
    "channels.stop_silence": _ep("DELETE", "/channels/{channelId}/silence"),
    "channels.play": _ep("POST", "/channels/{channelId}/play/{playbackId}", *_PLAY),
    "channels.record": _ep("POST", "/channels/{channelId}/record", *_RECORD),
    "channels.get_var": _ep("GET", "/channels/{channelId}/variable", "variable"),
    "channels.set_var": _ep("POST", "/channels/{channelId}/variable", "variable", "value"),
    "channels.snoop": _ep("POST", "/channels/{channelId}/snoop/{snoopId}", "spy", "whisper", "app", "appArgs"),
    # bridges
    "bridges.list": _ep("GET", "/bridges"),
    "bridges.create": _ep("POST", "/bridges/{bridgeId}", "type", "name"),
    "bridges.get": _ep("GET", "/bridges/{bridgeId}"),
    "bridges.destroy": _ep("DELETE", "/bridges/{bridgeId}"),
    "bridges.add_channel": _ep("POST", "/bridges/{bridgeId}/addChannel", "channel", "role", "absorbDTMF", "mute",
                               "inhibitConnectedLineUpdates"),
    "bridges.remove_channel": _ep("POST", "/bridges/{bridgeId}/removeChannel", "channel"),
    "bridges.start_moh": _ep("POST", "/bridges/{bridgeId}/moh", "mohClass"),
    "bridges.stop_moh": _ep("DELETE", "/bridges/{bridgeId}/moh"),
    "bridges.play": _ep("POST", "/bridges/{bridgeId}/play/{playbackId}", *_PLAY, "announcer_format"),
    "bridges.record": _ep("POST", "/bridges/{bridgeId}/record", *_RECORD, "recorder_format"),
    # playbacks
    "playbacks.get": _ep("GET", "/playbacks/{playbackId}"),
    "playbacks.stop": _ep("DELETE", "/playbacks/{playbackId}"),
    "playbacks.control": _ep("POST", "/playbacks/{playbackId}/control", "operation"),
    # recordings
    "recordings.live": _ep("GET", "/recordings/live/{recordingName}"),
    "recordings.stop": _ep("POST", "/recordings/live/{recordingName}/stop"),
    "recordings.cancel": _ep("DELETE", "/recordings/live/{recordingName}"),
    "recordings.pause": _ep("POST", "/recordings/live/{recordingName}/pause"),
    "recordings.unpause": _ep("DELETE", "/recordings/live/{recordingName}/pause"),
    "recordings.mute": _ep("POST", "/recordings/live/{recordingName}/mute"),
    "recordings.unmute": _ep("DELETE", "/recordings/live/{recordingName}/mute"),
    "recordings.stored": _ep("GET", "/recordings/stored/{recordingName}"),
    "recordings.stored_list": _ep("GET", "/recordings/stored"),
    "recordings.delete_stored": _ep("DELETE", "/recordings/stored/{recordingName}"),
    "recordings.stored_file": _ep("GET", "/recordings/stored/{recordingName}/file"),
}
