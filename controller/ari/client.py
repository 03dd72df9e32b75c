"""A small, typed ARI REST client over aiohttp.

ari-py does not run on Python 3, so this is our own. Design points (see ../shared/harness.md):
- every request has a timeout, and failures map to the exceptions in `errors.py`;
- ids of channels, bridges, playbacks, snoops and recordings are chosen here (`new_id`), because
  ARI events can arrive before the REST response that caused them;
- requests are built only from the table in `endpoints.py`, which a test checks against the
  Swagger description Asterisk ships;
- the REST requests go through `transport.HttpPool` (lean keep-alive HTTP/1.1, a few µs of CPU each instead of
  aiohttp's 65-95): its pool stays well below http.conf's `sessionlimit`, and idle connections are closed before
  Asterisk's 15 s keep-alive would drop them under us. Recordings' downloads (`raw`) stay on aiohttp
  (`session`), whose connector is kept small so that both together stay below the limit; the event WebSocket
  is our own client (`websocket.py`, one connection).
"""

from __future__ import annotations

import base64
import collections
import re
import ssl
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import yarl

from controller import jsontext
from controller.ari.endpoints import ENDPOINTS
from controller.ari.errors import (
    AriBadRequest,
    AriConflict,
    AriDetached,
    AriError,
    AriNotFound,
    AriUnavailable,
    ChannelGone,
)
from controller.ari.models import Bridge, Channel, LiveRecording, Playback
from controller.ari.transport import HttpPool, TransportError
from controller.ids import unique_hex

QueryValue = str | int | float | bool | Sequence[str] | None

#: Connections of the aiohttp session beside the REST pool: recordings' downloads.
SESSION_CONNECTIONS = 8
#: Idle REST connections are closed after this, before Asterisk's keep-alive (http.conf, 15 s) drops them.
KEEPALIVE_TIMEOUT = 10.0


def new_id(prefix: str) -> str:
    """A client-chosen ARI object id, e.g. "pb-3f2a…"; the prefix tells what it is in logs."""
    return f"{prefix}-{unique_hex()}"


def basic_auth_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


_PLAIN = re.compile(r"[A-Za-z0-9._~:@,-]*").fullmatch


def _escape(text: str) -> str:
    """A path segment or a query key or value, percent-encoded so that Asterisk decodes it back exactly: res_ari
    splits the path at "/" before decoding each segment, http.c splits the query at "&" and "=" and decodes "+" as
    a space; so "/", "?", "#", "%", "&", "=", "+", spaces, control characters (CR, LF) and non-ASCII are escaped
    and nothing a caller sends can break the request line. The common case (ids, "sound:beep") is kept as it is."""
    return text if _PLAIN(text) else quote(text, safe=":@,")


def _query_text(params: Mapping[str, QueryValue], allowed: frozenset[str]) -> str:
    """"key=value&…" of the parameters that are not None (a bool as true/false, a sequence as the key repeated),
    each value percent-encoded; a ValueError naming every key `allowed` does not hold. The keys need no encoding:
    they are ARI's parameter names (endpoints.py), and any other is refused. One pass, without a call per plain
    value: this runs for every request."""
    text = ""
    unknown: list[str] = []
    for key, value in params.items():
        if value is None:
            continue
        if key not in allowed:
            unknown.append(key)
            continue
        if value.__class__ is str:
            pass
        elif isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, str | int | float):
            value = str(value)
        else:  # a repeated parameter (e.g. several media)
            for item in value:
                text += f"&{key}={item if _PLAIN(item) else _escape(item)}"
            continue
        text += f"&{key}={value if _PLAIN(value) else _escape(value)}"
    if unknown:
        raise ValueError(f"parameters not in the ARI description: {sorted(unknown)}")
    return text[1:]


class AriClient:
    def __init__(
        self,
        base_url: str,
        user: str,
        password: str,
        *,
        request_timeout: float = 5.0,
        pool_size: int = 50,
        node: str = "default",
        dial_route: Callable[[str], str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # The Asterisk server this client talks to (README "Several Asterisk servers"), and how a dial
        # string naming a phone on another node is dialled from here (through the trunk between them).
        self.node = node
        self.dial_route: Callable[[str], str] = dial_route or (lambda dial: dial)
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"ARI url: expected http://host:port/ari or https://…, not {base_url!r}")
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._base_path = parts.path  # "/ari"
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._tls = parts.scheme == "https"
        self._auth = basic_auth_header(user, password)
        self._timeout = request_timeout
        self._pool_size = pool_size
        self._pool: HttpPool | None = None
        self._session: aiohttp.ClientSession | None = None
        self._detached = False
        self.requests_sent: collections.Counter[str] = collections.Counter()  # by operation: what a call costs

    # -- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> AriClient:
        self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def open(self) -> None:
        if self._pool is None:
            self._pool = HttpPool(self._host, self._port, headers={"Authorization": self._auth},
                                  size=self._pool_size, idle_timeout=KEEPALIVE_TIMEOUT,
                                  ssl_context=ssl.create_default_context() if self._tls else None)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def detach(self) -> None:
        """From now on every request fails (AriUnavailable) without reaching Asterisk: on a graceful stop,
        what the ending call tasks would still do (hang up legs, destroy bridges) must not happen."""
        self._detached = True

    @property
    def session(self) -> aiohttp.ClientSession:
        """An aiohttp session with the auth header, for recordings' downloads (the REST
        requests have their own pool); at most SESSION_CONNECTIONS connections."""
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=SESSION_CONNECTIONS, keepalive_timeout=KEEPALIVE_TIMEOUT)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"Authorization": self._auth},
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            )
        return self._session

    @property
    def auth_header(self) -> str:
        return self._auth

    # -- the one request path -------------------------------------------------------------------

    async def request(
        self,
        operation: str,
        path_params: Mapping[str, str] | None = None,
        params: Mapping[str, QueryValue] | None = None,
        body: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        raw: bool = False,
    ) -> Any:
        """Run one operation from ENDPOINTS; returns decoded JSON (None for 204), or bytes if raw."""
        endpoint = ENDPOINTS[operation]
        self.requests_sent[operation] += 1
        path = endpoint.path
        if path_params:
            escaped = {}
            for key, value in path_params.items():
                value = value if value.__class__ is str else str(value)
                escaped[key] = value if _PLAIN(value) else _escape(value)  # an id we chose is plain: no call
            path = path.format_map(escaped)
        try:
            query = _query_text(params, endpoint.params) if params else ""
        except ValueError as exc:
            raise ValueError(f"{operation}: {exc}") from None
        if body is not None and not endpoint.body:
            raise ValueError(f"{operation} takes no body")
        if self._detached:
            raise AriDetached(endpoint.method, path, 0, "detached: the controller is stopping")
        target = f"{self._base_path}{path}?{query}" if query else self._base_path + path
        if raw:
            return await self._download(endpoint.method, path, target, timeout or self._timeout)
        pool = self._pool
        if pool is None:
            self.open()
            pool = self._pool
            assert pool is not None
        try:
            status, payload = await pool.request(endpoint.method, target,
                                                 None if body is None else jsontext.dumps(body).encode(),
                                                 timeout or self._timeout)
        except (OSError, TransportError) as exc:  # refused, reset, closed, timed out (TimeoutError is an OSError)
            raise AriUnavailable(endpoint.method, path, 0, f"{type(exc).__name__}: {exc}") from exc
        if status >= 400:
            raise self._error(endpoint.method, path, status, payload.decode(errors="replace"))
        return jsontext.loads(payload) if payload and status != 204 else None

    async def _download(self, method: str, path: str, target: str, timeout: float) -> bytes:
        """A raw answer (a recording's file, possibly large) through aiohttp, which streams it in."""
        try:
            async with self.session.request(method, yarl.URL(self._origin + target, encoded=True),
                                            timeout=aiohttp.ClientTimeout(total=timeout)) as response:
                if response.status >= 400:
                    raise self._error(method, path, response.status, await response.text(errors="replace"))
                return await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AriUnavailable(method, path, 0, f"{type(exc).__name__}: {exc}") from exc

    @staticmethod
    def _error(method: str, path: str, status: int, text: str) -> AriError:
        try:
            message = str(jsontext.loads(text).get("message", text))
        except (ValueError, AttributeError):
            message = text.strip()[:200]
        on_channel = path.startswith("/channels/") and not path.startswith("/channels/create")
        if on_channel and (status == 404 or (status in (409, 412, 422) and "not in stasis" in message.lower())):
            return ChannelGone(method, path, status, message)
        if status in (400, 422) and ("channel not found" in message.lower()
                                     or (path.startswith("/bridges/") and "channel not in stasis" in message.lower())):
            # Adding a channel that hung up meanwhile to a bridge: the channel is gone, not our request. Between its
            # StasisEnd and its end Asterisk answers 422 "Channel not in Stasis application" (an agent's phone that
            # hung up just after answering, the controller slow to bridge it: the flow failed at its queue node).
            return ChannelGone(method, path, status, message)
        if status == 400:
            return AriBadRequest(method, path, status, message)
        if status == 404:
            return AriNotFound(method, path, status, message)
        if status in (409, 412, 422):
            return AriConflict(method, path, status, message)
        if status >= 500:
            return AriUnavailable(method, path, status, message)
        return AriError(method, path, status, message)

    # -- asterisk / applications ------------------------------------------------------------------

    async def info(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("asterisk.info")
        return result

    async def ping(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("asterisk.ping")
        return result

    async def modules(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.request("asterisk.modules")
        return result

    async def reload_module(self, module: str) -> None:
        """`module reload` of one module (res_pjsip.so re-reads pjsip.conf and what it includes)."""
        await self.request("asterisk.reload_module", {"moduleName": module})

    async def applications(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.request("applications.list")
        return result

    async def filter_events(self, app: str, disallowed: Sequence[str]) -> None:
        """Ask Asterisk not to send `app` these event types (ARI eventFilter, Asterisk 13.26+/16.3+)."""
        await self.request("applications.filter", {"applicationName": app},
                           body={"disallowed": [{"type": kind} for kind in disallowed]})

    # -- channels ---------------------------------------------------------------------------------

    async def channels(self) -> list[Channel]:
        return [Channel.parse(obj) for obj in await self.request("channels.list")]

    async def channel(self, channel_id: str) -> Channel:
        return Channel.parse(await self.request("channels.get", {"channelId": channel_id}))

    async def _on_channel(
        self, operation: str, channel_id: str, *, timeout: float | None = None, **params: QueryValue
    ) -> Any:
        return await self.request(operation, {"channelId": channel_id}, params, timeout=timeout)

    async def answer(self, channel_id: str) -> None:
        await self._on_channel("channels.answer", channel_id)

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        await self._on_channel("channels.hangup", channel_id, reason=reason)

    async def ring(self, channel_id: str) -> None:
        await self._on_channel("channels.ring", channel_id)

    async def ring_stop(self, channel_id: str) -> None:
        await self._on_channel("channels.ring_stop", channel_id)

    async def start_moh(self, channel_id: str, moh_class: str | None = None) -> None:
        await self._on_channel("channels.start_moh", channel_id, mohClass=moh_class)

    async def stop_moh(self, channel_id: str) -> None:
        await self._on_channel("channels.stop_moh", channel_id)

    async def start_silence(self, channel_id: str) -> None:
        await self._on_channel("channels.start_silence", channel_id)

    async def stop_silence(self, channel_id: str) -> None:
        await self._on_channel("channels.stop_silence", channel_id)

    async def hold(self, channel_id: str) -> None:
        await self._on_channel("channels.hold", channel_id)

    async def unhold(self, channel_id: str) -> None:
        await self._on_channel("channels.unhold", channel_id)

    async def mute(self, channel_id: str, direction: str = "both") -> None:
        await self._on_channel("channels.mute", channel_id, direction=direction)

    async def unmute(self, channel_id: str, direction: str = "both") -> None:
        await self._on_channel("channels.unmute", channel_id, direction=direction)

    async def send_dtmf(self, channel_id: str, dtmf: str, *, between_ms: int = 100, duration_ms: int = 100) -> None:
        await self._on_channel("channels.send_dtmf", channel_id, dtmf=dtmf, between=between_ms,
                               duration=duration_ms)

    async def get_var(self, channel_id: str, variable: str) -> str | None:
        try:
            result = await self._on_channel("channels.get_var", channel_id, variable=variable)
        except AriNotFound:
            return None
        value = (result or {}).get("value")
        return value if isinstance(value, str) else None

    async def set_var(self, channel_id: str, variable: str, value: str, *, timeout: float | None = None) -> None:
        await self._on_channel("channels.set_var", channel_id, variable=variable, value=value, timeout=timeout)

    async def play(
        self, channel_id: str, media: str | Sequence[str], playback_id: str, *, lang: str | None = None
    ) -> Playback:
        result = await self.request(
            "channels.play",
            {"channelId": channel_id, "playbackId": playback_id},
            {"media": [media] if isinstance(media, str) else list(media), "lang": lang},
        )
        return Playback.parse(result)

    async def record(
        self,
        channel_id: str,
        name: str,
        *,
        fmt: str = "wav",
        max_duration: int = 0,
        max_silence: int = 0,
        beep: bool = False,
        terminate_on: str = "none",
        if_exists: str = "fail",
    ) -> LiveRecording:
        result = await self._on_channel(
            "channels.record", channel_id, name=name, format=fmt, maxDurationSeconds=max_duration,
            maxSilenceSeconds=max_silence, beep=beep, terminateOn=terminate_on, ifExists=if_exists,
        )
        return LiveRecording.parse(result)

    async def originate(
        self,
        channel_id: str,
        endpoint: str,
        *,
        app: str,
        app_args: str = "",
        caller_id: str | None = None,
        timeout: int = 30,
        variables: Mapping[str, str] | None = None,
        originator: str | None = None,
        formats: str | None = None,
    ) -> Channel:
        """Dial `endpoint` now; the answered channel enters Stasis(app, app_args)."""
        result = await self.request(
            "channels.originate",
            {"channelId": channel_id},
            {"endpoint": self.dial_route(endpoint), "app": app, "appArgs": app_args, "callerId": caller_id,
             "timeout": timeout, "originator": originator, "formats": formats},
            {"variables": dict(variables or {})},
        )
        return Channel.parse(result)

    async def originate_to_dialplan(
        self, channel_id: str, endpoint: str, *, context: str, extension: str = "s", caller_id: str | None = None,
        timeout: int = 30, variables: Mapping[str, str] | None = None,
    ) -> Channel:
        """Dial `endpoint` now; once answered, the channel runs the dialplan at context,extension,1."""
        result = await self.request(
            "channels.originate",
            {"channelId": channel_id},
            {"endpoint": endpoint, "context": context, "extension": extension, "priority": 1,
             "callerId": caller_id, "timeout": timeout},
            {"variables": dict(variables or {})},
        )
        return Channel.parse(result)

    async def create_channel(
        self,
        channel_id: str,
        endpoint: str,
        *,
        app: str,
        app_args: str = "",
        variables: Mapping[str, str] | None = None,
        originator: str | None = None,
    ) -> Channel:
        """Create a channel without dialling it (enters Stasis at once); `dial` rings it."""
        result = await self.request(
            "channels.create",
            None,
            {"endpoint": self.dial_route(endpoint), "app": app, "appArgs": app_args, "channelId": channel_id,
             "originator": originator},
            {"variables": dict(variables or {})},
        )
        return Channel.parse(result)

    async def dial(self, channel_id: str, *, caller: str | None = None, timeout: int = 30) -> None:
        await self._on_channel("channels.dial", channel_id, caller=caller, timeout=timeout)

    async def snoop(
        self, channel_id: str, snoop_id: str, *, app: str, spy: str = "none", whisper: str = "none",
        app_args: str = "",
    ) -> Channel:
        result = await self.request(
            "channels.snoop",
            {"channelId": channel_id, "snoopId": snoop_id},
            {"spy": spy, "whisper": whisper, "app": app, "appArgs": app_args},
        )
        return Channel.parse(result)

    async def redirect(self, channel_id: str, endpoint: str) -> None:
        await self._on_channel("channels.redirect", channel_id, endpoint=endpoint)

    async def continue_in_dialplan(
        self, channel_id: str, *, context: str | None = None, extension: str | None = None,
        priority: int | None = None, label: str | None = None, timeout: float | None = None,
    ) -> None:
        await self._on_channel("channels.continue", channel_id, context=context, extension=extension,
                               priority=priority, label=label, timeout=timeout)

    async def move(self, channel_id: str, app: str, app_args: str = "") -> None:
        await self._on_channel("channels.move", channel_id, app=app, appArgs=app_args)

    # -- bridges ----------------------------------------------------------------------------------

    async def create_bridge(self, bridge_id: str, bridge_type: str = "mixing", name: str = "") -> Bridge:
        result = await self.request("bridges.create", {"bridgeId": bridge_id}, {"type": bridge_type, "name": name})
        return Bridge.parse(result)

    async def bridges(self) -> list[Bridge]:
        return [Bridge.parse(obj) for obj in await self.request("bridges.list")]

    async def bridge(self, bridge_id: str) -> Bridge:
        return Bridge.parse(await self.request("bridges.get", {"bridgeId": bridge_id}))

    async def destroy_bridge(self, bridge_id: str) -> None:
        await self.request("bridges.destroy", {"bridgeId": bridge_id})

    async def add_to_bridge(
        self, bridge_id: str, channel_ids: str | Sequence[str], *, role: str | None = None,
        absorb_dtmf: bool | None = None, mute: bool | None = None,
    ) -> None:
        channels = [channel_ids] if isinstance(channel_ids, str) else list(channel_ids)
        await self.request("bridges.add_channel", {"bridgeId": bridge_id},
                           {"channel": ",".join(channels), "role": role, "absorbDTMF": absorb_dtmf, "mute": mute})

    async def remove_from_bridge(self, bridge_id: str, channel_id: str) -> None:
        await self.request("bridges.remove_channel", {"bridgeId": bridge_id}, {"channel": channel_id})

    async def bridge_start_moh(self, bridge_id: str, moh_class: str | None = None) -> None:
        await self.request("bridges.start_moh", {"bridgeId": bridge_id}, {"mohClass": moh_class})

    async def bridge_stop_moh(self, bridge_id: str) -> None:
        await self.request("bridges.stop_moh", {"bridgeId": bridge_id})

    async def bridge_play(
        self, bridge_id: str, media: str | Sequence[str], playback_id: str, *, lang: str | None = None
    ) -> Playback:
        result = await self.request(
            "bridges.play",
            {"bridgeId": bridge_id, "playbackId": playback_id},
            {"media": [media] if isinstance(media, str) else list(media), "lang": lang},
        )
        return Playback.parse(result)

    async def bridge_record(
        self, bridge_id: str, name: str, *, fmt: str = "wav", max_duration: int = 0, beep: bool = False,
        if_exists: str = "fail", terminate_on: str = "none",
    ) -> LiveRecording:
        result = await self.request(
            "bridges.record", {"bridgeId": bridge_id},
            {"name": name, "format": fmt, "maxDurationSeconds": max_duration, "beep": beep,
             "ifExists": if_exists, "terminateOn": terminate_on},
        )
        return LiveRecording.parse(result)

    # -- playbacks and recordings -----------------------------------------------------------------

    async def stop_playback(self, playback_id: str) -> None:
        await self.request("playbacks.stop", {"playbackId": playback_id})

    async def _on_recording(self, operation: str, name: str) -> Any:
        return await self.request(operation, {"recordingName": name})

    async def stop_recording(self, name: str) -> None:
        await self._on_recording("recordings.stop", name)

    async def cancel_recording(self, name: str) -> None:
        await self._on_recording("recordings.cancel", name)

    async def pause_recording(self, name: str) -> None:
        await self._on_recording("recordings.pause", name)

    async def unpause_recording(self, name: str) -> None:
        await self._on_recording("recordings.unpause", name)

    async def live_recording(self, name: str) -> LiveRecording:
        return LiveRecording.parse(await self._on_recording("recordings.live", name))

    async def stored_recording(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._on_recording("recordings.stored", name)
        return result

    async def delete_stored_recording(self, name: str) -> None:
        await self._on_recording("recordings.delete_stored", name)

    async def stored_recording_file(self, name: str) -> bytes:
        result: bytes = await self.request("recordings.stored_file", {"recordingName": name}, raw=True)
        return result
