"""HTTP resources for calls: live calls, call records, a number's history, dispositions and notes."""

from __future__ import annotations

import time

from aiohttp import web

from controller.http.openapi import NUMBER_PATTERN, body_of, operation
from controller.http.server import caller_of, json_error, roles
from controller.plugins.calls.services import CallsService

AGENT_CALL = {"type": "object", "required": ["call_id", "direction", "number", "started_at", "talk_seconds"],
              "properties": {"call_id": {"type": "string"},
                             "direction": {"type": "string", "enum": ["inbound", "outbound"]},
                             "number": {"type": "string", "description": "the caller, or the number dialled"},
                             "started_at": {"type": "number"}, "ended_at": {"type": "number", "nullable": True},
                             "answered": {"type": "boolean"}, "talk_seconds": {"type": "number", "nullable": True},
                             "end_reason": {"type": "string", "nullable": True},
                             "disposition": {"type": "string", "nullable": True}}}
DISPOSITION_BODY = {"type": "object", "additionalProperties": False, "required": ["disposition"],
                    "properties": {"disposition": {"type": "string", "pattern": "^[a-z0-9_]{1,40}(?!\\n)$",
                                                   "description": "resolved, follow_up, complaint, …"},
                                   "notes": {"type": "string", "maxLength": 4000}}}


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

    @operation("A number's recent calls (来电历史), newest first, with agents and dispositions; an agent's"
               " token only for numbers that agent has served (a ringing call's screen pop carries it anyway)",
               tag="calls",
               query={"limit": {"type": "integer", "minimum": 1, "maximum": 100}},
               path={"number": {"type": "string", "pattern": NUMBER_PATTERN}},
               responses={200: {"type": "object", "required": ["number", "calls"]}})
    @roles("agent", "supervisor", "integration")
    async def history(request: web.Request) -> web.Response:
        number = request.match_info["number"]
        limit = int(request.query.get("limit", "10"))  # checked against the document by @operation
        await calls.records.flush()
        identity = caller_of(request)
        if identity.role == "agent" and not await calls.records.has_served(number, identity.agent_id or ""):
            return json_error(403, "an agent sees the history only of numbers they have served")
        return web.json_response({"number": number, "calls": await calls.records.history(number, limit=limit)})

    @operation("An agent's own recent calls (通话记录), newest first: queue calls they answered and calls they placed,"
               " with the number, talk time, how it ended and their disposition; an agent's token only its own",
               tag="calls",
               query={"limit": {"type": "integer", "minimum": 1, "maximum": 100, "description": "default 20"},
                      "days": {"type": "integer", "minimum": 1, "maximum": 90, "description": "default 7"}},
               responses={200: {"type": "object", "required": ["agent_id", "calls"],
                                "properties": {"agent_id": {"type": "string"},
                                               "calls": {"type": "array", "items": AGENT_CALL}}}},
               errors={403: "an agent's token asking for another agent's calls"})
    @roles("agent", "supervisor", "integration")
    async def agent_calls(request: web.Request) -> web.Response:
        agent_id = request.match_info["agent_id"]
        identity = caller_of(request)
        if identity.role == "agent" and identity.agent_id != agent_id:
            return json_error(403, "an agent sees only their own calls")
        limit, days = int(request.query.get("limit", "20")), int(request.query.get("days", "7"))  # checked
        await calls.records.flush()  # the call that just ended is in the list
        found = await calls.records.agent_calls(agent_id, since=time.time() - days * 86400, limit=limit)
        return web.json_response({"agent_id": agent_id, "calls": found}, headers={"Cache-Control": "no-store"})

    @operation("Set a call's disposition and notes (话后小结); an agent only for calls they handled",
               tag="calls", body=DISPOSITION_BODY, responses={200: {"type": "object"}})
    @roles("agent", "supervisor", "integration")
    async def disposition(request: web.Request) -> web.Response:
        call_id = request.match_info["call_id"]
        body = body_of(request)
        await calls.records.flush()
        if await calls.records.get(call_id) is None:
            return json_error(404, "no call with that id")
        identity = caller_of(request)
        if identity.role == "agent" and identity.agent_id not in await calls.records.agents_of(call_id):
            return json_error(403, "an agent may set the disposition only of calls they handled")
        agent_id = identity.agent_id if identity.role == "agent" else None
        calls.records.disposition(call_id, agent_id=agent_id, disposition=body["disposition"],
                                  notes=body.get("notes", ""))
        return web.json_response({"call_id": call_id, "disposition": body["disposition"],
                                  "notes": body.get("notes", "")})

    return [web.get("/api/calls", list_calls), web.get("/api/calls/{call_id}", get_call),
            web.get("/api/numbers/{number}/calls", history), web.get("/api/agents/{agent_id}/calls", agent_calls),
            web.post("/api/calls/{call_id}/disposition", disposition)]
