"""CTI over HTTP: the live event WebSocket (/ws), polling (/api/events), schemas, webhooks.

An agent's token sees events about that agent, its queues' new messages and faxes, and changes of the
configuration its toolbar shows (AgentScope); supervisors, admins and integrations see all. A client
resumes after a disconnect with ?since=<last seq it processed>: the events it missed are sent first
(paged from the store, however many), then the live stream, with no gap or repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from controller.http.list_query import list_query, list_window
from controller.http.openapi import MAX_ID, body_of, operation
from controller.http.server import Identity, caller_of, json_error, roles, track_socket
from controller.plugins.cti.notifier import WebhookNotifier
from controller.plugins.cti.schemas import all_schemas
from controller.plugins.cti.services import AgentScope, CtiEvent, EventBus, EventFilter, Subscriber

#: Events per page when a WebSocket client catches up, and the bounds of `limit` on /api/events.
REPLAY_PAGE = 1_000
LIMIT_MAX, LIMIT_DEFAULT = 10_000, 1_000
_DIGITS = re.compile(r"[0-9]{1,19}")

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
           agent_queues: Callable[[str], Collection[str] | None] = lambda _agent: None) -> list[web.RouteDef]:
    """`agent_queues`: an agent's queues as they are now, for the queue's work an agent sees (AgentScope)."""
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
        ws = web.WebSocketResponse(heartbeat=20)
        await ws.prepare(request)
        track_socket(request, ws)  # closed when its token or session is revoked
        subscriber = bus.subscribe()  # before the replay, so nothing published meanwhile is missed
        hello_seq = bus.last_seq
        start = hello_seq if since is None else since  # without since: everything after the hello's seq
        try:
            await ws.send_json({"type": "hello", "seq": hello_seq, "role": identity.role})
            reader = asyncio.create_task(_drain_client(ws))
            try:
                await _stream(bus, ws, subscriber, event_filter, start, reader, _corkable(request.transport))
            finally:
                reader.cancel()
            if subscriber.closed:
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"controller stopping: resume with since")
        finally:
            bus.unsubscribe(subscriber)
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


async def _stream(bus: EventBus, ws: web.WebSocketResponse, subscriber: Subscriber, event_filter: EventFilter,
                  last: int, reader: asyncio.Task[None], sock: socket.socket | None = None) -> None:
    """Send every event after `last`: pages from the store until caught up, then the live queue.

    The subscriber was registered before the first page, so an event published meanwhile is either
    in a page or in the queue (both is skipped by its number). A client too slow for the live queue
    (it overflowed) catches up from the store again the same way. The live events that queued while
    the client's task waited (those of one commit, when busy) are sent together, as one TCP segment
    (`_corked`, when `sock` is given), rather than one socket send each.
    """

    async def send(events: Iterable[CtiEvent]) -> None:
        frames = [event.as_json() for event in events if event_filter.matches(event)]  # encoded once for all
        with _corked(sock) if sock is not None and len(frames) > 1 else contextlib.nullcontext():
            for frame in frames:
                await ws.send_str(frame)

    def client_left(_reader: asyncio.Task[None]) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # (a full queue: the loop below sees `reader.done()`)
            subscriber.queue.put_nowait(None)

    reader.add_done_callback(client_left)  # wakes the wait below: no second waiter per event

    catching_up = last < bus.last_seq
    while not (ws.closed or reader.done() or subscriber.closed):
        if catching_up or subscriber.overflowed:
            catching_up = subscriber.overflowed = False
            while not subscriber.queue.empty():  # all of it is in the pages read below
                subscriber.queue.get_nowait()
            while not ws.closed:
                page = await bus.since(last, REPLAY_PAGE)
                await send(page)
                if page:
                    last = page[-1].seq
                if len(page) < REPLAY_PAGE:
                    break
            continue
        queued = [await subscriber.queue.get()]
        while not subscriber.queue.empty():
            queued.append(subscriber.queue.get_nowait())
        live: list[CtiEvent] = []
        ended = False
        for event in queued:
            if event is None:
                ended = True  # the controller is stopping, or the client left
                break
            if event.seq <= last:
                continue  # already sent from a page
            if event.seq != last + 1:
                catching_up = True  # never leave a hole: read it (and what follows) from the store
                break
            last = event.seq
            live.append(event)
        await send(live)
        if ended:
            return


def _corkable(transport: asyncio.BaseTransport | None) -> socket.socket | None:
    """The connection's TCP socket when its sends can be held (TCP_CORK: Linux), else None."""
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or not hasattr(socket, "TCP_CORK") or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    return sock  # type: ignore[no-any-return]


@contextlib.contextmanager
def _corked(sock: socket.socket) -> Iterator[None]:
    """Hold the socket's sends while several frames are written, then send them as one segment: each loopback send
    costs ~10-20 µs of kernel time. (aiohttp writes each frame to the transport at once, and has no call for
    several frames.)"""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # (closed meanwhile)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)


async def _drain_client(ws: web.WebSocketResponse) -> None:
    """Read (and ignore) what the client sends, so pings are answered and a close is noticed."""
    async for message in ws:
        if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            break
