"""HTTP resources for callbacks (README "Callbacks"): the list (the failed ones are the list for a person),
scheduling one after a call, and closing one with a note.

An agent's token sees the callbacks of its queues and its own personal ones, schedules for its queues or
for itself (not personal ones for a colleague), and closes those it sees; supervisors, admins and
integrations all.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from controller.acd.dialing import number_refusal
from controller.http.openapi import NUMBER_PATTERN, body_of, operation
from controller.http.server import caller_of, json_error, roles
from controller.plugins.acd.callbacks import CallbackService

NAME = "^[A-Za-z0-9_.-]{1,40}(?!\\n)$"
WHEN = "^(asap|next_morning|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2})(?!\\n)$"
CALLBACK = {"type": "object", "required": ["id", "status", "queue"],
            "properties": {"id": {"type": "integer"}, "status": {"type": "string"}, "queue": {"type": "string"},
                           "origin": {"type": "string"}, "attempts": {"type": "integer"}}}
SCHEDULE_BODY = {
    "type": "object", "additionalProperties": False, "required": ["queue", "number", "when"],
    "properties": {
        "queue": {"type": "string", "pattern": NAME},
        "number": {"type": "string", "pattern": NUMBER_PATTERN, "description": "the customer's number"},
        "when": {"type": "string", "pattern": WHEN,
                 "description": "asap, next_morning, or a local time 2026-10-09T10:00; moved into the queue's"
                                " business_hours on a working day of the Chinese calendar (调休 included)"},
        "agent_id": {"type": "string", "pattern": NAME,
                     "description": "a personal callback: only this agent takes it (else anyone in the queue)"},
        "call_id": {"type": "string", "maxLength": 64, "description": "the call it was promised on"},
    }}
DONE_BODY = {"type": "object", "additionalProperties": False, "required": ["note"],
             "properties": {"note": {"type": "string", "minLength": 1, "maxLength": 400}}}
STATUSES = ["waiting", "serving", "scheduled", "retry", "connected", "failed", "done"]


def routes(callbacks: CallbackService) -> list[web.RouteDef]:
    acd = callbacks.acd

    def visible(request: web.Request, row: dict[str, Any]) -> bool:
        identity = caller_of(request)
        if identity.role != "agent":
            return True
        agent = acd.agent_configs.get(identity.agent_id or "")
        if agent is None:
            return False
        return row.get("agent_id") == agent.id or (row.get("agent_id") is None and row["queue"] in agent.queues)

    @operation("Callbacks, newest first: status=failed is the list for a person", tag="callbacks",
               query={"status": {"type": "string", "enum": STATUSES},
                      "limit": {"type": "integer", "minimum": 1, "maximum": 500}},
               responses={200: {"type": "object", "required": ["callbacks"],
                                "properties": {"callbacks": {"type": "array", "items": CALLBACK}}}})
    @roles("agent", "supervisor", "integration")
    async def list_callbacks(request: web.Request) -> web.Response:
        rows = await callbacks.records.listing(status=request.query.get("status"), since=None,
                                               limit=int(request.query.get("limit", "100")))
        return web.json_response({"callbacks": [row for row in rows if visible(request, row)]})

    @operation("Schedule a callback (after a call: \"call back tomorrow 10:00\"), for the queue or one agent",
               tag="callbacks", body=SCHEDULE_BODY, responses={201: CALLBACK},
               errors={422: "a time that is not a real date (2026-02-30T10:00)",
                       409: "the dialing policy refuses the number (dialing.allowed_prefixes/denied_prefixes)"})
    @roles("agent", "supervisor", "integration")
    async def schedule(request: web.Request) -> web.Response:
        body = body_of(request)
        identity = caller_of(request)
        agent_id = body.get("agent_id")
        if identity.role == "agent":
            agent = acd.agent_configs.get(identity.agent_id or "")
            if agent is None or (agent_id is not None and agent_id != agent.id) or body["queue"] not in agent.queues:
                return json_error(403, "an agent schedules callbacks for its own queues, personal ones for itself")
        refusal = number_refusal(acd.config.dialing, body["number"])
        if refusal is not None:
            return json_error(409, f"this number may not be dialled: {refusal}")
        if body["queue"] not in acd.queue_configs or (agent_id is not None and agent_id not in acd.agent_configs):
            return json_error(404, f"no queue {body['queue']!r}" if body["queue"] not in acd.queue_configs
                              else f"no agent {agent_id!r}")
        try:
            callback = callbacks.schedule(queue=body["queue"], number=body["number"], when=body["when"],
                                          agent_id=agent_id, call_id=body.get("call_id"))
        except ValueError as exc:
            return json_error(422, str(exc))
        return web.json_response({"id": callback.id, "status": callback.status, "queue": callback.queue,
                                  "origin": callback.origin, "attempts": 0, "due_at": callback.due_at,
                                  "agent_id": callback.agent_id}, status=201)

    @operation("Close a callback with a note (a person called the customer, or it is cancelled)", tag="callbacks",
               body=DONE_BODY, path={"callback_id": {"type": "integer", "minimum": 1, "maximum": 2**53}},
               responses={200: CALLBACK}, errors={409: "the callback is closed already, or being dialled now"})
    @roles("agent", "supervisor", "integration")
    async def done(request: web.Request) -> web.Response:
        callback_id = int(request.match_info["callback_id"])
        row = await callbacks.records.get(callback_id)
        if row is None or not visible(request, row):
            return json_error(404, f"no callback {callback_id}")
        try:
            closed = await callbacks.close(callback_id, body_of(request)["note"], caller_of(request).name)
        except (LookupError, ValueError) as exc:
            return json_error(409, str(exc))
        return web.json_response(closed)

    return [
        web.get("/api/callbacks", list_callbacks),
        web.post("/api/callbacks", schedule),
        web.post("/api/callbacks/{callback_id}/done", done),
    ]
