"""The ARI event WebSocket: connect, read, reconnect with backoff, forever.

Reading never waits on handling: each event is parsed and handed to `on_event`, which must not
block (the dispatcher only puts it in the owner's inbox). Asterisk drops a WebSocket reader that
falls 100 ms behind, so nothing slow may run in this loop. `on_connected` (re-adoption of calls
left in Stasis) runs as a separate task each time the connection comes up.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

import aiohttp

from controller.ari.client import AriClient
from controller.ari.errors import AriError
from controller.ari.models import ApplicationReplaced, Event, parse_event

log = logging.getLogger("controller.ari.events")

#: Event types Asterisk sends per call that no handler reads: turned off on connect (ARI eventFilter), so
#: Asterisk writes and we parse and route about half as many events (README "Benchmarks"). A handler
#: that starts using one must take it off this list (tests/unit/test_ari_event_filter.py checks).
UNUSED_EVENT_TYPES: tuple[str, ...] = (
    "ChannelVarset", "ChannelStateChange", "ChannelDialplan", "ChannelCallerId", "ChannelConnectedLine",
    "ChannelCreated", "ChannelEnteredBridge", "ChannelLeftBridge", "BridgeCreated", "BridgeDestroyed",
    "BridgeVideoSourceChanged", "PlaybackStarted", "PlaybackContinuing", "RecordingStarted",
)


def _event_lag(event: Event, now: float) -> float | None:
    """Seconds between Asterisk stamping the event and us reading it."""
    try:
        return now - datetime.strptime(event.timestamp, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
    except ValueError:
        return None


class EventStream:
    def __init__(
        self,
        client: AriClient,
        app: str,
        *,
        on_event: Callable[[Event], None],
        on_connected: Callable[[], Awaitable[None]],
        on_disconnected: Callable[[], None] = lambda: None,
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
        self._clock = clock

    def _ws_url(self) -> str:
        base = self._client.base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        return f"{base}/events?app={self.app}&subscribeAll=false"

    async def run(self) -> None:
        """Connect and read until cancelled; reconnect after any failure. The re-adoption that follows
        each connect runs in this task group, so it never outlives the stream."""
        async with asyncio.TaskGroup() as tasks:
            await self._connect_forever(tasks)

    async def _connect_forever(self, tasks: asyncio.TaskGroup) -> None:
        delay = self._backoff_initial
        while True:
            try:
                async with self._client.session.ws_connect(
                    self._ws_url(), heartbeat=10.0, timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
                    max_msg_size=16 * 1024 * 1024,
                ) as ws:
                    self.connections += 1
                    self.connected.set()
                    delay = self._backoff_initial
                    log.info("ARI event stream connected app=%s node=%s connection=%d", self.app, self._client.node,
                             self.connections)
                    await self._filter_events()
                    tasks.create_task(self._run_on_connected())
                    replaced = await self._read(ws)
                    if replaced and self._on_replaced is not None:
                        # Another process took our application name: never take it back (the two
                        # would take turns stealing each other's calls); the owner decides what to do.
                        self._on_replaced()
                        return
                    if replaced:
                        delay = self._backoff_max  # no owner to tell: at least do not fight over it quickly
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("ARI event stream unavailable (node %s): %s; retrying in %.1f s", self._client.node,
                            type(exc).__name__, delay)
            finally:
                if self.connected.is_set():
                    self.connected.clear()
                    log.warning("ARI event stream disconnected (node %s)", self._client.node)
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

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> bool:
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                if message.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                    break
                continue
            try:
                event = parse_event(json.loads(message.data))
            except ValueError:
                log.warning("undecodable ARI event dropped")
                continue
            self.events_received += 1
            event.node = self._client.node
            self.events_by_type[event.type] += 1
            if self.events_received % 64 == 1:  # sample the lag; computing it for every event is wasteful
                self.last_lag = _event_lag(event, self._clock())
            if isinstance(event, ApplicationReplaced):
                log.error("ARI application %s was taken over by another connection", self.app)
                return True
            try:
                self._on_event(event)
            except Exception:
                log.exception("event handler failed for %s", event.type)
        return False

