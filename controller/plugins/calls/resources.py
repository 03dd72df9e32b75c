"""HTTP resources for calls: live calls and call records."""

from __future__ import annotations

from aiohttp import web

from controller.http.server import json_error, roles
from controller.plugins.calls.services import CallsService


def routes(calls: CallsService) -> list[web.RouteDef]:
    @roles("supervisor", "integration")
    async def list_calls(request: web.Request) -> web.Response:
        live = [
            {"call_id": s.call_id, "caller": s.caller, "did": s.did, "state": s.state, "direction": s.direction}
            for s in calls.active.values()
        ]
        return web.json_response({"active": live, "recent": await calls.records.recent()})

    @roles("supervisor", "integration")
    async def get_call(request: web.Request) -> web.Response:
        record = await calls.records.get(request.match_info["call_id"])
        if record is None:
            return json_error(404, "no call with that id")
        return web.json_response(record)

    return [web.get("/api/calls", list_calls), web.get("/api/calls/{call_id}", get_call)]
