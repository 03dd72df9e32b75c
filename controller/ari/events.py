"""The ARI event WebSocket: connect, read, reconnect with backoff, forever.

Reading never waits on handling: each event is parsed and handed to `on_event`, which must not
block (the dispatcher only puts it in the owner's inbox). Asterisk drops a WebSocket reader that
falls 100 ms behind, so nothing slow may run in this loop. `on_connected` (re-adoption of calls
left in Stasis) runs as a separate task each time the connection comes up. The WebSocket is our own
client (websocket.py): each event is handled from its `data_received`, with no task or queue in between.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import functools
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from urllib.parse import quote, urlsplit

import orjson

from controller import jsontext
from controller.ari import websocket
from controller.ari.client import AriClient
from controller.ari.errors import AriError
from controller.ari.models import ApplicationReplaced, Event, parse_event
from controller.ari.transport import TransportError
from controller.hooks import nothing

log = logging.getLogger("controller.ari.events")

#: Event types Asterisk sends per call that no handler reads: turned off on connect (ARI eventFilter), so
#: Asterisk writes and we parse and route about half as many events (README "Benchmarks"). A handler
#: that starts using one must take it off this list (tests/unit/test_ari_event_filter.py checks).
UNUSED_EVENT_TYPES: tuple[str, ...] = (
    "ChannelVarset", "ChannelStateChange", "ChannelDialplan", "ChannelCallerId", "ChannelConnectedLine",
    "ChannelCreated", "ChannelEnteredBridge", "ChannelLeftBridge", "BridgeCreated", "BridgeDestroyed",
    "BridgeVideoSourceChanged", "PlaybackStarted", "PlaybackContinuing", "RecordingStarted",
)


#: Connecting and the WebSocket handshake must be done within this (seconds); then the keep-alive watches it.
CONNECT_TIMEOUT = 5.0
#: An event above this (bytes) ends the connection (a bug or an attack, not ARI: its largest are a few kB).
MAX_EVENT_SIZE = 16 * 1024 * 1024

#: Upper bounds (seconds) of the event lag histogram's buckets (`ccc_ari_event_lag_seconds`).
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def _event_lag(event: Event, now: float) -> float | None:
    """Seconds between Asterisk stamping the event ("2026-11-26T15:46:49.228+0000") and us reading it.
    (`fromisoformat` takes under a microsecond, `strptime` about 60: this runs for every event.)"""
    try:
        return now - datetime.fromisoformat(event.timestamp).timestamp()
    except (ValueError, TypeError):
        return None


class EventStream:
    def __init__(
        self,
        client: AriClient,
        app: str,
        *,
        on_event: Callable[[Event], None],
        on_connected: Callable[[], Awaitable[None]],
        on_disconnected: Callable[[], None] = nothing,
        on_replaced: Callable[[], None] | None = None,
        backoff_initial: float = 0.2,
        backoff_max: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self.app = app
        self._on_event = on_event
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._on_replaced = on_replaced
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self.connected = asyncio.Event()
        self.connections = 0  # how many times we connected (1 + reconnects)
        self.events_received = 0
        self.events_by_type: collections.Counter[str] = collections.Counter()  # what Asterisk sends us
        self.last_lag: float | None = None
        self.lag_counts = [0] * (len(LAG_BUCKETS) + 1)  # events per LAG_BUCKETS bucket (the last: above them)
        self.lag_sum = 0.0
        self._clock = clock
        self.ping_interval = 10.0  # our keep-alive (websocket.py): a ping every 10 s, 5 s for an answer
        self.pong_timeout = 5.0
        self._replaced = False  # ApplicationReplaced came on the current connection

    def _target(self) -> str:
        """The events resource's request target, e.g. "/ari/events?app=ccc&subscribeAll=false"."""
        path = urlsplit(self._client.base_url).path
        return f"{path}/events?app={quote(self.app, safe='')}&subscribeAll=false"

    async def _connect(self) -> websocket.WebSocket:
        parts = urlsplit(self._client.base_url)
        tls = parts.scheme == "https"
        assert parts.hostname is not None  # AriClient checked its url
        return await websocket.connect(
            parts.hostname, parts.port or (443 if tls else 80), self._target(),
            headers={"Authorization": self._client.auth_header}, timeout=CONNECT_TIMEOUT,
            ssl_context=ssl.create_default_context() if tls else None, ping_interval=self.ping_interval,
            pong_timeout=self.pong_timeout, max_size=MAX_EVENT_SIZE)

    async def run(self) -> None:
        """Connect and read until cancelled; reconnect after any failure. The re-adoption that follows
        each connect runs in this task group, so it never outlives the stream."""
        async with asyncio.TaskGroup() as tasks:
            await self._connect_forever(tasks)

    async def _connect_forever(self, tasks: asyncio.TaskGroup) -> None:
        delay = self._backoff_initial
        while True:
            reason = ""
            try:
                socket = await self._connect()
                try:
                    self.connections += 1
                    self.connected.set()
                    delay = self._backoff_initial
                    log.info("ARI event stream connected app=%s node=%s connection=%d", self.app, self._client.node,
                             self.connections)
                    await self._filter_events()
                    tasks.create_task(self._run_on_connected())
                    self._replaced = False
                    socket.start(functools.partial(self._handle, socket))  # the events so far, then each as it comes
                    reason = await socket.wait_closed()
                finally:
                    if socket.open:
                        socket.close(websocket.GOING_AWAY)  # cancelled (stopping), or the filter request failed
                if self._replaced and self._on_replaced is not None:
                    # Another process took our application name: never take it back (the two
                    # would take turns stealing each other's calls); the owner decides what to do.
                    self._on_replaced()
                    return
                if self._replaced:
                    delay = self._backoff_max  # no owner to tell: at least do not fight over it quickly
            except asyncio.CancelledError:
                raise
            except (OSError, TransportError, TimeoutError) as exc:
                log.warning("ARI event stream unavailable (node %s): %s %s; retrying in %.1f s", self._client.node,
                            type(exc).__name__, exc, delay)
            finally:
                if self.connected.is_set():
                    self.connected.clear()
                    log.warning("ARI event stream disconnected (node %s)%s", self._client.node,
                                f": {reason}" if reason else "")
                    self._on_disconnected()
            await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))
            delay = min(self._backoff_max, delay * 2)

    async def _filter_events(self) -> None:
        """Turn off the event types no handler reads (a failure only costs the saving: events still flow)."""
        try:
            await self._client.filter_events(self.app, UNUSED_EVENT_TYPES)
        except AriError as exc:
            log.warning("ARI event filter not set (%s): receiving every event type", exc)

    async def _run_on_connected(self) -> None:
        try:
            await self._on_connected()
        except Exception:
            log.exception("re-adoption after connect failed")

    def _handle(self, socket: websocket.WebSocket, message: bytes) -> None:
        """One text message from the socket, in the order Asterisk sent them (called from its data_received)."""
        try:
            try:
                obj = orjson.loads(message)
            except orjson.JSONDecodeError:
                obj = jsontext.loads(message)  # what orjson refuses but older JSON text holds (NaN), else ValueError
            event = parse_event(obj)
        except ValueError:  # not UTF-8, not JSON, not an event object
            log.warning("undecodable ARI event dropped")
            return
        self.events_received += 1
        event.node = self._client.node
        self.events_by_type[event.type] += 1
        lag = _event_lag(event, self._clock())
        if lag is not None:
            self.last_lag = lag
            self.lag_counts[bisect.bisect_left(LAG_BUCKETS, lag)] += 1
            self.lag_sum += lag
        if event.__class__ is ApplicationReplaced:
            log.error("ARI application %s was taken over by another connection", self.app)
            self._replaced = True
            socket.close()  # nothing after it is read
            return
        try:
            self._on_event(event)
        except Exception:
            log.exception("event handler failed for %s", event.type)
