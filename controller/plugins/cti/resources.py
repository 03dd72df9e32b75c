"""CTI over HTTP: the live event WebSocket (/ws), polling (/api/events), schemas, webhooks.

An agent's token sees events about that agent, its queues' new messages and faxes, and changes of the
configuration its toolbar shows (AgentScope); supervisors, admins and integrations see all. A client
resumes after a disconnect with ?since=<last seq it processed>: the events it missed are sent first
(paged from the store, however many), then the live stream, with no gap or repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import struct
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from controller.http.list_query import list_query, list_window
from controller.http.openapi import MAX_ID, body_of, operation
from controller.http.server import Identity, caller_of, json_error, roles, track_socket
from controller.plugins.cti.notifier import WebhookNotifier
from controller.plugins.cti.schemas import all_schemas
from controller.plugins.cti.services import AgentScope, CtiEvent, EventBus, EventFilter

#: Events per page when a WebSocket client catches up, and the bounds of `limit` on /api/events.
REPLAY_PAGE = 1_000
LIMIT_MAX, LIMIT_DEFAULT = 10_000, 1_000
_DIGITS = re.compile(r"[0-9]{1,19}")
log = logging.getLogger("controller.cti")

SEQ_SCHEMA = {"type": "integer", "minimum": 0, "maximum": MAX_ID}
FILTER_QUERY: dict[str, dict[str, Any]] = {
    "types": {"type": "string", "description": "comma-separated event types or patterns (call.*)"},
    "queue": {"type": "string"}, "agent": {"type": "string"},
    "since": {**SEQ_SCHEMA, "description": "the last sequence number processed; not beyond the newest event"},
}
EVENTS_PAGE = {"type": "object", "required": ["events", "last_seq", "newest_seq"],
               "properties": {"events": {"type": "array", "items": {"type": "object"}},
                              "last_seq": {"type": "integer"}, "newest_seq": {"type": "integer"}}}
DEAD_LETTERS = {"type": "object", "required": ["webhook", "dead_letters"],
                "properties": {"webhook": {"type": "string"},
                               "dead_letters": {"type": "array", "items": {
                                   "type": "object", "required": ["seq", "attempts", "last_error", "failed_at"]}}}}
REPLAY_BODY = {"type": "object", "required": ["since"], "additionalProperties": False,
               "properties": {"since": {**SEQ_SCHEMA, "description": "send again every event after this one"}}}
DEAD_REPLAY_BODY = {"type": "object", "additionalProperties": False,
                    "properties": {"seqs": {"type": "array", "maxItems": 10_000, "uniqueItems": True,
                                            "items": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                                            "description": "which dead letters (default: all of the webhook's)"}}}


def scoped_filter(request: web.Request, identity: Identity,
                  agent_queues: Callable[[str], Collection[str] | None]) -> EventFilter:
    """The subscriber's own filter, narrowed to what its agent sees when the token is an agent's."""
    query = request.query
    wanted = EventFilter.parse(query.get("types"), query.get("queue"), query.get("agent"))
    if identity.role == "agent":
        return EventFilter(wanted.types, wanted.queue, scope=AgentScope(identity.agent_id or "-", agent_queues))
    return wanted


def _since(request: web.Request, bus: EventBus) -> int | None:
    """?since=, a sequence number a client can have seen (0 … the newest event); 400 otherwise."""
    value = request.query.get("since")
    if value is None:
        return None
    if not _DIGITS.fullmatch(value) or int(value) > MAX_ID:
        raise web.HTTPBadRequest(reason="since must be a sequence number (an integer from 0)")
    since = int(value)
    if since > bus.last_seq:
        raise web.HTTPBadRequest(reason=f"since={since} is beyond the newest event ({bus.last_seq})")
    return since


def _webhook_name(request: web.Request, webhooks: WebhookNotifier) -> str:
    name = request.match_info["name"]
    if not webhooks.has(name):
        raise web.HTTPNotFound(reason=f"no webhook named {name!r}")
    return name


def routes(bus: EventBus, webhooks: WebhookNotifier,
           agent_queues: Callable[[str], Collection[str] | None] = lambda _agent: None,
           fan_out: WsFanOut | None = None) -> list[web.RouteDef]:
    """`agent_queues`: an agent's queues as they are now, for the queue's work an agent sees (AgentScope)."""
    fan_out = fan_out or WsFanOut(bus)

    @operation("The live event stream (WebSocket); ?since= replays what a client missed first", tag="cti",
               query={**FILTER_QUERY, "token": {"type": "string", "description": "for browsers (no headers)"}},
               responses={101: {"type": "object"}},
               description="Upgrade to a WebSocket (the token may be given as ?token=). The first message is "
                           "`{\"type\": \"hello\", \"seq\": <newest>}`; with `since`, every event after it is "
                           "sent (paged from the store), then the live stream, with no gap or repeat.")
    @roles("agent", "supervisor", "integration")
    async def websocket(request: web.Request) -> web.StreamResponse:
        identity = caller_of(request)
        event_filter = scoped_filter(request, identity, agent_queues)
        since = _since(request, bus)
        # No permessage-deflate: one frame's bytes go to every client (and no compressor is kept per connection).
        ws = web.WebSocketResponse(heartbeat=20, compress=False)
        drain = (await ws.prepare(request)).drain
        track_socket(request, ws)  # closed when its token or session is revoked
        transport = request.transport
        if transport is None or ws.compress:  # (lost meanwhile; compression is never negotiated)
            return ws
        reader = asyncio.create_task(_drain_client(ws))
        client = _Client(ws, request, transport, event_filter, 0, reader)
        fan_out.join(client)  # before the replay, so nothing published meanwhile is missed
        hello_seq = bus.last_seq
        client.last = client.written = hello_seq if since is None else since  # without since: after the hello
        try:
            await ws.send_json({"type": "hello", "seq": hello_seq, "role": identity.role})
            await _serve(client, bus, drain)
            if client.ended and not ws.closed:
                client.flush()  # (the frames held before the stop, if the connection was full meanwhile)
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"controller stopping: resume with since")
        finally:
            reader.cancel()
            fan_out.leave(client)
            with contextlib.suppress(ConnectionError):
                await ws.close()
        return ws

    @operation("Events after a sequence number, oldest first (polling)", tag="cti",
               query={**FILTER_QUERY,
                      **list_query(window=False, limit_max=LIMIT_MAX, limit_default=LIMIT_DEFAULT,
                                   limit_description=f"events scanned per page (1–{LIMIT_MAX})")},
               responses={200: EVENTS_PAGE},
               description="`last_seq` is the last sequence number scanned (pass it as the next `since` to page on; "
                           "filtered-out events count as scanned); `newest_seq` the newest event. "
                           "An agent's token sees events about that agent, its queues' new voicemails and faxes, and "
                           "changes of the configuration its toolbar shows (README \"CTI\").")
    @roles("supervisor", "integration", "agent")
    async def poll(request: web.Request) -> web.Response:
        event_filter = scoped_filter(request, caller_of(request), agent_queues)
        since = _since(request, bus) or 0
        scanned = await bus.since(since, list_window(request, limit_default=LIMIT_DEFAULT).limit)
        events = [e.as_dict() for e in scanned if event_filter.matches(e)]
        return web.json_response({"events": events, "last_seq": scanned[-1].seq if scanned else since,
                                  "newest_seq": bus.last_seq})

    @operation("JSON Schemas of the CTI event types", tag="cti")
    @roles("supervisor", "integration", "agent")
    async def schemas(request: web.Request) -> web.Response:
        return web.json_response(all_schemas())

    @operation("Webhooks: each one's delivery cursor, backlog and dead letters", tag="webhooks",
               responses={200: {"type": "array", "items": {"type": "object"}}})
    @roles("integration")
    async def webhook_status(request: web.Request) -> web.Response:
        return web.json_response(await webhooks.status())

    @operation("Send a webhook every event after `since` again", tag="webhooks", body=REPLAY_BODY,
               responses={200: {"type": "object", "required": ["webhook", "replaying_from"]}},
               description="`since` must be at most the newest event's sequence number (400 otherwise).")
    @roles("integration")
    async def webhook_replay(request: web.Request) -> web.Response:
        name = _webhook_name(request, webhooks)
        since = int(body_of(request)["since"])
        if since > bus.last_seq:
            return json_error(400, f"since={since} is beyond the newest event ({bus.last_seq})")
        await webhooks.replay(name, since)
        return web.json_response({"webhook": name, "replaying_from": since + 1})

    @operation("A webhook's dead letters: events its receiver refused for good (4xx), oldest first",
               tag="webhooks", query=list_query(window=False),
               responses={200: DEAD_LETTERS})
    @roles("integration")
    async def dead_letters(request: web.Request) -> web.Response:
        name = _webhook_name(request, webhooks)
        limit = list_window(request).limit
        return web.json_response({"webhook": name, "dead_letters": await webhooks.dead_letters(name, limit)})

    @operation("Deliver a webhook's dead letters again (all, or the given `seqs`), before its next events",
               tag="webhooks", body=DEAD_REPLAY_BODY, body_required=False,
               responses={200: {"type": "object", "required": ["webhook", "requeued"]}})
    @roles("integration")
    async def dead_letters_replay(request: web.Request) -> web.Response:
        name = _webhook_name(request, webhooks)
        body = body_of(request) or {}
        requeued = await webhooks.replay_dead_letters(name, body.get("seqs"))
        return web.json_response({"webhook": name, "requeued": requeued})

    return [
        web.get("/ws", websocket),
        web.get("/api/events", poll),
        web.get("/api/events/schemas", schemas),
        web.get("/api/webhooks", webhook_status),
        web.post("/api/webhooks/{name}/replay", webhook_replay),
        web.get("/api/webhooks/{name}/dead-letters", dead_letters),
        web.post("/api/webhooks/{name}/dead-letters/replay", dead_letters_replay),
    ]


#: Frames a client's live stream holds while its connection's send buffer is full. Beyond it they are dropped and
#: the client catches up from the store once it reads.
LIVE_BACKLOG = 5_000


def text_frame(text: str) -> bytes:
    """`text` as one WebSocket text frame as a server sends it (RFC 6455 5.2: final, opcode 1, not masked)."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65_536:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload


class _Client:
    """One /ws connection's stream: what it wants, the last event handled for it, the frames held for it.

    `live`: the fan-out frames its events (else its task is catching up from the store). `written`: every event up
    to it was written or filtered out; a client falling behind starts again after it. Its data frames are written
    to the connection's transport directly: the WebSocketResponse negotiates no compression (so aiohttp's writer
    keeps no state about data frames) and writes its own control frames (pong, ping, close) whole, each in one
    write; nothing is written once the response is closed (the close frame is the last)."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, transport: asyncio.Transport,
                 event_filter: EventFilter, last: int, reader: asyncio.Task[None]) -> None:
        self.ws, self.transport, self.protocol = ws, transport, request.protocol
        self.filter, self.reader = event_filter, reader
        self.last = self.written = last
        self.live = self.ended = False
        self.frames: list[bytes] = []
        self.woken = asyncio.Event()
        reader.add_done_callback(lambda _reader: self.woken.set())

    def gone(self) -> bool:
        """The connection is closed or closing: nothing more is written to it."""
        return self.ws.closed or self.reader.done() or self.transport.is_closing()

    def flush(self) -> None:
        """Write the frames held, in one write; while the connection's send buffer is full, its task writes them
        once it drains (at most LIVE_BACKLOG are held: `WsFanOut._frame`)."""
        if not self.frames:
            self.written = self.last
        elif self.gone():
            self.frames.clear()
            self.woken.set()
        elif self.protocol.writing_paused:
            self.woken.set()
        else:
            self.transport.write(self.frames[0] if len(self.frames) == 1 else b"".join(self.frames))
            self.frames.clear()
            self.written = self.last

    def fall_behind(self) -> None:
        """Drop what is held: the client's task catches up from the store, after the last event written."""
        self.live = False
        self.frames.clear()
        self.last = self.written
        self.woken.set()


class WsFanOut:
    """The live stream of every /ws client, a listener of the bus: each committed batch is handed to it before
    anything newer is published (no queue, no task of its own); each event is framed once (if any client wants
    it) and the same bytes are held for every client whose filter matches; the frames held for a client in one
    batch leave in one write."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self.clients: set[_Client] = set()
        self._listening = False
        self.fell_behind = 0  # clients whose held frames went beyond LIVE_BACKLOG (they caught up from the store)
        bus.stop_listeners.append(self._stopped)

    def join(self, client: _Client) -> None:
        """Before the client's replay (or its hello's seq is read): nothing published from now on is missed."""
        if self._bus.stopped:
            client.ended = True
            return
        self.clients.add(client)
        if not self._listening:
            self._bus.listeners.append(self._deliver)
            self._listening = True

    def leave(self, client: _Client) -> None:
        self.clients.discard(client)
        if not self.clients and self._listening:
            self._bus.listeners.remove(self._deliver)
            self._listening = False

    def _stopped(self) -> None:
        """The controller is stopping: the clients resume with since from the next process."""
        for client in self.clients:
            client.ended = True
            client.woken.set()

    def _deliver(self, events: list[CtiEvent]) -> None:
        try:
            self._frame(events)
        except Exception:
            log.exception("CTI: the /ws fan-out failed; every client catches up from the store")
            for client in self.clients:
                client.fall_behind()

    def _frame(self, events: list[CtiEvent]) -> None:
        clients = [client for client in self.clients if client.live]
        for event in events:
            frame = None
            for client in clients:
                if not client.live or event.seq <= client.last:
                    continue  # catching up, or the event was in its replay
                if event.seq != client.last + 1:
                    client.fall_behind()  # never leave a hole: read it (and what follows) from the store
                    continue
                client.last = event.seq
                if client.filter.matches(event):
                    if frame is None:
                        frame = text_frame(event.text or event.as_json())  # (a published event has its text)
                    client.frames.append(frame)  # held for the flush below (inline: once per event and client)
                    if len(client.frames) > LIVE_BACKLOG:
                        client.fall_behind()
                        self.fell_behind += 1
        for client in clients:
            if client.live:
                client.flush()


async def _serve(client: _Client, bus: EventBus, drain: Callable[[], Awaitable[None]]) -> None:
    """The client's own task: catch up from the store while it is behind (a `since`, or frames it could not
    take), and write the live frames held while the connection's send buffer was full."""
    try:
        while not (client.ended or client.gone()):
            client.woken.clear()
            if not client.live:
                await _catch_up(client, bus, drain)
            elif client.frames:
                await drain()  # (at once unless the connection's send buffer is still full)
                client.flush()
            else:
                await client.woken.wait()
    except ConnectionError:
        return  # lost while waiting for the connection to drain


async def _catch_up(client: _Client, bus: EventBus, drain: Callable[[], Awaitable[None]]) -> None:
    """Send every event after `client.last`, a page per write, then hand the client to the live fan-out: nothing
    newer is published at that moment (no await in between), so the fan-out's next event for it is the one after
    its last. Pages come from the store when the client is far behind, however many."""
    while not (client.ended or client.gone()):
        page = await bus.since(client.last, REPLAY_PAGE)
        frames = [text_frame(event.as_json()) for event in page if client.filter.matches(event)]
        if page:
            client.last = page[-1].seq
        if frames and not client.gone():
            client.transport.write(b"".join(frames))
        client.written = client.last
        if len(page) < REPLAY_PAGE and client.last >= bus.last_seq:
            client.live = True
            return
        await drain()


async def _drain_client(ws: web.WebSocketResponse) -> None:
    """Read (and ignore) what the client sends, so pings are answered and a close is noticed."""
    async for message in ws:
        if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            break
