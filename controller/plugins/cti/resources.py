"""CTI over HTTP: the live event WebSocket (/ws), polling (/api/events), schemas, webhook replay.

An agent's token sees only events about that agent; supervisors, admins and integrations see
all. A client resumes after a disconnect with ?since=<last seq it processed>: the events it
missed are sent first (from the store if need be), then the live stream, with no gap or repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import WSMsgType, web

from controller.http.openapi import MAX_ID, body_of, operation
from controller.http.server import Identity, caller_of, json_error, roles, track_socket
from controller.plugins.cti.notifier import WebhookNotifier
from controller.plugins.cti.schemas import all_schemas
from controller.plugins.cti.services import CtiEvent, EventBus, EventFilter


def scoped_filter(request: web.Request, identity: Identity) -> EventFilter:
    """The subscriber's own filter, narrowed to its agent when the token is an agent's."""
    query = request.query
    wanted = EventFilter.parse(query.get("types"), query.get("queue"), query.get("agent"))
    if identity.role == "agent":
        return EventFilter(wanted.types, wanted.queue, identity.agent_id or "-")
    return wanted


def _since(request: web.Request) -> int | None:
    value = request.query.get("since")
    if value is None:
        return None
    if not value.isdigit():
        raise web.HTTPBadRequest(reason="since must be a sequence number (a non-negative integer)")
    return int(value)


SINCE = {"type": "integer", "minimum": 0, "maximum": MAX_ID,
         "description": "the last sequence number the client processed: events after it come first"}
FILTERS = {"types": {"type": "string", "description": "comma-separated event type patterns, e.g. call.*"},
           "queue": {"type": "string"}, "agent": {"type": "string"}}
REPLAY_BODY = {"type": "object", "additionalProperties": False, "required": ["since"],
               "properties": {"since": SINCE}}


def routes(bus: EventBus, webhooks: WebhookNotifier) -> list[web.RouteDef]:
    @operation("The live event stream (WebSocket upgrade; the token may come as ?token= from a browser)",
               tag="cti", query={"since": SINCE, "token": {"type": "string"}, **FILTERS},
               responses={101: {"type": "object"}})
    @roles("agent", "supervisor", "integration")
    async def websocket(request: web.Request) -> web.StreamResponse:
        identity = caller_of(request)
        event_filter = scoped_filter(request, identity)
        since = _since(request)
        ws = web.WebSocketResponse(heartbeat=20)
        await ws.prepare(request)
        track_socket(request, ws)  # closed when its token or session is revoked
        subscriber = bus.subscribe()  # before the replay, so nothing published meanwhile is missed
        last = since if since is not None else bus.last_seq
        try:
            await ws.send_json({"type": "hello", "seq": bus.last_seq, "role": identity.role})
            if since is not None:
                for event in await bus.since(since):
                    if event_filter.matches(event):
                        await ws.send_str(json.dumps(event.as_dict(), ensure_ascii=False))
                    last = event.seq
            reader = asyncio.create_task(_drain_client(ws))
            try:
                while not ws.closed and not reader.done():
                    if subscriber.overflowed:
                        await ws.close(code=4008, message=f"too slow: resume with since={last}".encode())
                        break
                    getter = asyncio.ensure_future(subscriber.queue.get())
                    done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                    if getter not in done:
                        getter.cancel()
                        break
                    live: CtiEvent = getter.result()
                    if live.seq <= last:
                        continue
                    last = live.seq
                    if event_filter.matches(live):
                        await ws.send_str(json.dumps(live.as_dict(), ensure_ascii=False))
            finally:
                reader.cancel()
        finally:
            bus.unsubscribe(subscriber)
            with contextlib.suppress(ConnectionError):
                await ws.close()
        return ws

    @operation("Events after a sequence number (polling instead of the WebSocket)", tag="cti",
               query={"since": SINCE, "limit": {"type": "integer", "minimum": 1, "maximum": 10_000}, **FILTERS},
               responses={200: {"type": "object", "required": ["events", "last_seq"]}})
    @roles("supervisor", "integration", "agent")
    async def poll(request: web.Request) -> web.Response:
        event_filter = scoped_filter(request, caller_of(request))
        since = _since(request) or 0
        limit = min(int(request.query.get("limit", "1000")), 10_000)
        events = [e.as_dict() for e in await bus.since(since, limit) if event_filter.matches(e)]
        return web.json_response({"events": events, "last_seq": bus.last_seq})

    @roles("supervisor", "integration", "agent")
    async def schemas(request: web.Request) -> web.Response:
        return web.json_response(all_schemas())

    @roles("integration")
    async def webhook_status(request: web.Request) -> web.Response:
        return web.json_response(await webhooks.status())

    @operation("Send a webhook's events again from a sequence number on", tag="cti", body=REPLAY_BODY,
               responses={200: {"type": "object"}})
    @roles("integration")
    async def webhook_replay(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        since = body_of(request)["since"]
        if not webhooks.has(name):
            return json_error(404, f"no webhook named {name!r}")
        await webhooks.replay(name, since)
        return web.json_response({"webhook": name, "replaying_from": since + 1})

    return [
        web.get("/ws", websocket),
        web.get("/api/events", poll),
        web.get("/api/events/schemas", schemas),
        web.get("/api/webhooks", webhook_status),
        web.post("/api/webhooks/{name}/replay", webhook_replay),
    ]


async def _drain_client(ws: web.WebSocketResponse) -> None:
    """Read (and ignore) what the client sends, so pings are answered and a close is noticed."""
    async for message in ws:
        if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            break
