"""HTTP resources for the ACD: agents (state control) and queues (live statistics).

An agent's token may read and change only its own agent; supervisors and admins any agent;
integrations (a CRM, the toolbar's back-end) any agent too, as they act for agents.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from aiohttp import web

from controller.acd.dialing import RateLimiter, number_refusal
from controller.acd.engine import AcdError
from controller.http.openapi import CALL_CONFLICT, NUMBER_PATTERN, body_of, operation
from controller.http.server import caller_of, json_error, roles
from controller.plugins.acd.services import AcdService

AGENT = {"type": "object", "required": ["id", "state"],
         "properties": {"id": {"type": "string"}, "state": {"type": "string"},
                        "reason": {"type": "string", "nullable": True}}}
QUEUE = {"type": "object", "required": ["name", "waiting"]}
DESK_OPTIONS = {"type": "object", "required": ["not_ready_reasons", "standard_prompts", "max_hold_seconds"],
                "properties": {"not_ready_reasons": {"type": "array", "items": {"type": "string"}},
                               "standard_prompts": {"type": "array", "items": {"type": "string"}},
                               "max_hold_seconds": {"type": "number"}, "max_acw_seconds": {"type": "number"}}}
LOGIN_BODY = {"type": "object", "additionalProperties": False,
              "properties": {"phone": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,40}(?!\\n)$"},
                             "ready": {"type": "boolean"}}}
TRANSFER_BODY = {"type": "object", "additionalProperties": False, "required": ["to"],
                 "properties": {"to": {"type": "string",
                                       "pattern": "^(queue:[A-Za-z0-9_.-]{1,40}|node:[A-Za-z0-9_.-]{1,60}|"
                                                  "number:\\+?[0-9]{3,20}|phone:[A-Za-z0-9_.-]{1,40}|agent:[A-Za-z0-9_.-]{1,40})(?!\\n)$",
                                       "description": "queue:NAME (data and priority travel with the call),"
                                                      " node:ID (back to the IVR), number:DIGITS,"
                                                      " phone:ENDPOINT, or agent:ID (a ready colleague,"
                                                      " through the ACD; the caller comes back if they"
                                                      " do not answer)"}}}
DIAL_BODY = {"type": "object", "additionalProperties": False, "required": ["agent_id", "number"],
             "properties": {"agent_id": {"type": "string", "minLength": 1, "maxLength": 40},
                            "number": {"type": "string", "pattern": NUMBER_PATTERN,
                                       "description": "the customer's number, dialled through the trunk"}}}
MONITOR_BODY = {"type": "object", "additionalProperties": False, "required": ["mode"],
                "properties": {"mode": {"type": "string", "enum": ["listen", "whisper", "barge", "stop"]},
                               "phone": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,80}(?!\\n)$",
                                         "description": "the supervisor's phone (endpoint), rung the first time"}}}
PARTY = "^(number:\\+?[0-9]{3,20}|phone:[A-Za-z0-9_.-]{1,40})(?!\\n)$"
CONFERENCE_BODY = {"type": "object", "additionalProperties": False, "required": ["to"],
                   "properties": {"to": {"type": "string", "pattern": PARTY,
                                         "description": "number:DIGITS (through the trunk) or phone:ENDPOINT"}}}
PLAY_BODY = {"type": "object", "additionalProperties": False, "required": ["prompt"],
             "properties": {"prompt": {"type": "string", "minLength": 1, "maxLength": 60,
                                       "description": "a name under acd.standard_prompts"}}}
MOVE_BODY = {"type": "object", "additionalProperties": False, "required": ["queue"],
             "properties": {"queue": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,40}(?!\\n)$",
                                      "description": "the queue the call goes on waiting in"}}}
PICKUP_BODY = {"type": "object", "additionalProperties": False, "required": ["agent_id"],
               "properties": {"agent_id": {"type": "string", "minLength": 1, "maxLength": 40}}}
CONTROL_RESULT = {"type": "object", "required": ["call_id", "state"],
                  "properties": {"call_id": {"type": "string"}, "state": {"type": "string"}}}
#: Commands that may wait for a phone to answer (or a prompt to end) before they answer.
LONG_COMMANDS = ("monitor", "conference", "play", "consult", "transfer")
#: Answers of the agent commands beyond the common ones.
AGENT_CONFLICT = {409: "the agent is not in a state for this command (the message says why)"}
TOO_MANY_DIALS = {429: "this token dialled too often (dialing.rate_limit_*): retry after Retry-After seconds"}
TIMED_OUT = {504: "the call did not carry out the command in time"}
COMMAND_ERRORS = {**CALL_CONFLICT, **TIMED_OUT}
DIAL_ERRORS = {**CALL_CONFLICT, **TOO_MANY_DIALS, **TIMED_OUT}
DIALS = ("transfer", "conference", "consult")  # commands that may dial a number:DIGITS
DIAL_POLICY = ("A number is dialled only when its longest matching prefix is one of dialing.allowed_prefixes,"
               " not of dialing.denied_prefixes (else 403); each token may dial dialing.rate_limit_calls times"
               " per dialing.rate_limit_seconds (else 429 with Retry-After).")
NOT_READY_BODY = {"type": "object", "additionalProperties": False, "required": ["reason"],
                  "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 40}}}


def as_json(view: Any) -> dict[str, Any]:
    """An engine's view as a JSON object. The views are fresh snapshots of plain values: their fields as they are
    (dataclasses.asdict deep-copied each one: ~50 us per agent, and an agent's command reads it 3 times: the
    audit's before and after, the answer)."""
    if dataclasses.is_dataclass(view) and not isinstance(view, type):
        return {field.name: getattr(view, field.name) for field in dataclasses.fields(view)}
    return dict(view)


def agent_json(acd: AcdService, agent_id: str) -> dict[str, Any]:
    if not acd.engine.has_agent(agent_id):  # removed: their call and its ACW are over
        return {"id": agent_id, "state": "logged_out", "removed": True}
    view = as_json(acd.engine.agent(agent_id))
    config = acd.agent_configs.get(agent_id)
    if config is not None:
        view.setdefault("id", agent_id)
        view.update(name=config.name, number=config.number, queues=dict(config.queues), skills=dict(config.skills))
    return view


def queue_json(acd: AcdService, name: str) -> dict[str, Any]:
    stats = as_json(acd.engine.queue_stats(name))
    stats["name"] = name
    config = acd.queue_configs.get(name)
    stats["title"] = config.title if config else ""
    # Of the waiting calls, the callbacks keeping their place with no caller on the line (README "Callbacks").
    stats["callbacks_waiting"] = sum(1 for view in acd.engine.waiting(name)
                                     if acd.callbacks is not None and acd.callbacks.owns(view.call_id))
    return stats


def routes(acd: AcdService, is_live: Callable[[str], bool]) -> list[web.RouteDef]:
    """The ACD's routes; `is_live(call_id)`: whether a call with that id is up (else commands answer 404)."""
    dial_limiter = RateLimiter.following(lambda: acd.config.dialing)

    def refuse_dial(request: web.Request, number: str) -> web.Response | None:
        """403 when the dialing policy refuses the number, 429 when this token dialled too often; None: go on."""
        refusal = number_refusal(acd.config.dialing, number)
        if refusal is not None:
            return json_error(403, f"this number may not be dialled: {refusal}")
        wait = dial_limiter.acquire(caller_of(request).name)
        if wait is not None:
            return json_error(429, f"too many dials from this token: retry in {math.ceil(wait)} s",
                              {"Retry-After": str(math.ceil(wait))})
        return None

    def own_agent(request: web.Request) -> str:
        """The agent in the path, refused when an agent's token names another agent."""
        agent_id = request.match_info["agent_id"]
        identity = caller_of(request)
        if identity.role == "agent" and identity.agent_id != agent_id:
            raise web.HTTPForbidden(reason="an agent's token may act only on its own agent")
        if not acd.engine.has_agent(agent_id):  # a removed agent is known until their call and its ACW are over
            raise web.HTTPNotFound(reason=f"no agent {agent_id!r}")
        return agent_id

    def run(request: web.Request, action: str, **arguments: Any) -> web.Response:
        agent_id = own_agent(request)
        try:
            acd.command(action, agent_id, **arguments)
        except AcdError as exc:
            return json_error(409, str(exc))
        return web.json_response(agent_json(acd, agent_id))

    @operation("List agents and their states", tag="agents", responses={200: {"type": "object"}})
    @roles("agent", "supervisor", "integration")
    async def list_agents(request: web.Request) -> web.Response:
        identity = caller_of(request)
        ids = ([identity.agent_id] if identity.role == "agent" and identity.agent_id
               else [view.id for view in acd.engine.agents()])
        return web.json_response({"agents": [agent_json(acd, agent_id) for agent_id in ids if agent_id]})

    @operation("The agents' directory (通讯录): name, number (工号) and state of every agent, for a"
               " toolbar's transfer list; no call data", tag="agents", responses={200: {"type": "object"}})
    @roles("agent", "supervisor", "integration")
    async def directory(request: web.Request) -> web.Response:
        # A ringing colleague's call id, so a toolbar can pick it up (抢接): the id only, none of its data.
        entries = [{"id": view.id, "name": view.name, "number": view.number, "state": view.state, "since": view.since,
                    "ringing_call": view.current_call if view.state == "ringing" else None}
                   for view in acd.engine.agents()]
        return web.json_response({"agents": entries})

    @operation("What an agent's toolbar offers now: the not-ready reasons, the standard prompts' names, the hold"
               " and ACW standards (seconds)", tag="agents", responses={200: DESK_OPTIONS})
    @roles("agent", "supervisor", "integration")
    async def desk_options(request: web.Request) -> web.Response:
        standards = acd.standards
        return web.json_response({"not_ready_reasons": list(acd.engine.not_ready_reasons),
                                  "standard_prompts": sorted(acd.standard_prompts),
                                  "max_hold_seconds": standards.max_hold_seconds,
                                  "max_acw_seconds": standards.max_acw_seconds})

    @operation("An agent's state", tag="agents", responses={200: AGENT})
    @roles("agent", "supervisor", "integration")
    async def get_agent(request: web.Request) -> web.Response:
        return web.json_response(agent_json(acd, own_agent(request)))

    @operation("Log an agent in (optionally on another phone)", tag="agents", body=LOGIN_BODY,
               responses={200: AGENT}, errors=AGENT_CONFLICT, body_required=False)
    @roles("agent", "supervisor", "integration")
    async def login(request: web.Request) -> web.Response:
        body = body_of(request) or {}
        return run(request, "login", endpoint=body.get("phone"), ready=body.get("ready", True))

    @operation("Set an agent ready (示闲); also ends after-call work", tag="agents",
               responses={200: AGENT}, errors=AGENT_CONFLICT)
    @roles("agent", "supervisor", "integration")
    async def ready(request: web.Request) -> web.Response:
        return run(request, "ready")

    @operation("Set an agent not ready (示忙) with a reason", tag="agents", body=NOT_READY_BODY,
               responses={200: AGENT}, errors=AGENT_CONFLICT)
    @roles("agent", "supervisor", "integration")
    async def not_ready(request: web.Request) -> web.Response:
        return run(request, "not_ready", reason=body_of(request)["reason"])

    @operation("End after-call work early", tag="agents",
               responses={200: AGENT}, errors=AGENT_CONFLICT)
    @roles("agent", "supervisor", "integration")
    async def end_acw(request: web.Request) -> web.Response:
        return run(request, "end_acw")

    @operation("Log an agent out", tag="agents",
               responses={200: AGENT}, errors=AGENT_CONFLICT)
    @roles("agent", "supervisor", "integration")
    async def logout(request: web.Request) -> web.Response:
        return run(request, "logout")

    @operation("Queues and their live statistics", tag="queues", responses={200: {"type": "object"}})
    @roles("agent", "supervisor", "integration")
    async def list_queues(request: web.Request) -> web.Response:
        return web.json_response({"queues": [queue_json(acd, name) for name in acd.queue_configs]})

    @operation("A queue: statistics and the calls waiting, in order", tag="queues", responses={200: QUEUE})
    @roles("supervisor", "integration")
    async def get_queue(request: web.Request) -> web.Response:
        name = request.match_info["queue"]
        if name not in acd.queue_configs:
            return json_error(404, f"no queue {name!r}")
        body = queue_json(acd, name)
        # A callback (virtual hold, README "Callbacks") waits like the others, with no caller on the line.
        body["calls"] = [as_json(view) | {"callback": bool(acd.callbacks and acd.callbacks.owns(view.call_id))}
                         for view in acd.engine.waiting(name)]
        return web.json_response(body)

    async def call_command(request: web.Request, action: str, target: str | None = None,
                           options: dict[str, str] | None = None) -> web.Response:
        identity = caller_of(request)
        acting_for = identity.agent_id if identity.role == "agent" else None
        if identity.role == "agent" and not acting_for:
            return json_error(403, "this agent token names no agent")
        if not is_live(request.match_info["call_id"]):
            return json_error(404, "no live call with that id")
        if action in DIALS and target is not None and target.startswith("number:"):
            refused = refuse_dial(request, target.removeprefix("number:"))
            if refused is not None:
                return refused
        try:
            result = await acd.control(request.match_info["call_id"], action, target=target, agent_id=acting_for,
                                       timeout=40.0 if action in LONG_COMMANDS else 10.0,
                                       options=options)
        except PermissionError as exc:
            return json_error(403, str(exc))
        except AcdError as exc:
            return json_error(409, str(exc))
        except TimeoutError:
            return json_error(504, "the call did not carry out the command in time")
        return web.json_response(result)

    @operation("Put a call on hold: the caller hears music, the agent is on hold (保持)", tag="calls",
               responses={200: CONTROL_RESULT},
               errors=COMMAND_ERRORS)
    @roles("agent", "supervisor", "integration")
    async def hold(request: web.Request) -> web.Response:
        return await call_command(request, "hold")

    @operation("Take a call off hold", tag="calls", responses={200: CONTROL_RESULT},
               errors=COMMAND_ERRORS)
    @roles("agent", "supervisor", "integration")
    async def resume(request: web.Request) -> web.Response:
        return await call_command(request, "resume")

    @operation("Transfer a call (转接) to a queue, an IVR node, a number or a phone (blind: the agent goes to"
               " after-call work at once), or to a named agent (the agent stays until the colleague answers)",
               tag="calls",
               body=TRANSFER_BODY, responses={200: CONTROL_RESULT},
               errors=DIAL_ERRORS, description=DIAL_POLICY)
    @roles("agent", "supervisor", "integration")
    async def transfer(request: web.Request) -> web.Response:
        return await call_command(request, "transfer", body_of(request)["to"])

    @operation("Hang up the agent's side of a call (挂机); the caller goes on in the flow (survey, goodbye)",
               tag="calls", responses={200: CONTROL_RESULT},
               errors=COMMAND_ERRORS)
    @roles("agent", "supervisor", "integration")
    async def hangup(request: web.Request) -> web.Response:
        return await call_command(request, "hangup")

    @operation("Click-to-dial (外呼): ring the agent's phone, then the customer through the trunk", tag="calls",
               body=DIAL_BODY, responses={202: CONTROL_RESULT},
               errors={**AGENT_CONFLICT, **TOO_MANY_DIALS}, description=DIAL_POLICY)
    @roles("agent", "supervisor", "integration")
    async def dial(request: web.Request) -> web.Response:
        body = body_of(request)
        identity = caller_of(request)
        if identity.role == "agent" and identity.agent_id != body["agent_id"]:
            return json_error(403, "an agent's token may dial only for its own agent")
        refused = refuse_dial(request, body["number"])
        if refused is not None:
            return refused
        try:
            result = await acd.click_to_dial(body["agent_id"], body["number"])
        except AcdError as exc:
            return json_error(409, str(exc))
        return web.json_response(result, status=202)

    @operation("Supervisor monitoring: listen (监听), whisper to the agent (耳语), barge in (强插), or stop;"
               " switch modes during the call", tag="calls", body=MONITOR_BODY, responses={200: CONTROL_RESULT},
               errors=COMMAND_ERRORS)
    @roles("supervisor")
    async def monitor(request: web.Request) -> web.Response:
        body = body_of(request)
        return await call_command(request, "monitor", body["mode"], {"phone": body.get("phone", "")})

    @operation("Conference (三方通话): ring a third party and add them to the call; anyone may leave",
               tag="calls", body=CONFERENCE_BODY, responses={200: CONTROL_RESULT},
               errors=DIAL_ERRORS, description=DIAL_POLICY)
    @roles("agent", "supervisor", "integration")
    async def conference(request: web.Request) -> web.Response:
        return await call_command(request, "conference", body_of(request)["to"])

    @operation("Remove one party from a conference (the others stay on the call)", tag="calls",
               body=CONFERENCE_BODY, responses={200: CONTROL_RESULT},
               errors=COMMAND_ERRORS)
    @roles("agent", "supervisor", "integration")
    async def conference_remove(request: web.Request) -> web.Response:
        return await call_command(request, "conference_remove", body_of(request)["to"])

    @operation("Pick up (抢接) a waiting call ringing on a colleague's phone: the picker's phone rings instead",
               tag="calls", body=PICKUP_BODY, responses={200: CONTROL_RESULT},
               errors={409: "the call is not waiting in a queue, or the agent cannot take it"})
    @roles("agent", "supervisor", "integration")
    async def pickup(request: web.Request) -> web.Response:
        body = body_of(request)
        identity = caller_of(request)
        if identity.role == "agent" and identity.agent_id != body["agent_id"]:
            return json_error(403, "an agent may pick up calls only for themselves")
        if not is_live(request.match_info["call_id"]):
            return json_error(404, "no live call with that id")
        try:
            return web.json_response(acd.pickup(request.match_info["call_id"], body["agent_id"]))
        except AcdError as exc:
            return json_error(409, str(exc))

    @operation("Move a waiting call to another queue (a supervisor's decision): it keeps its wait there",
               tag="calls", body=MOVE_BODY, responses={200: CONTROL_RESULT},
               errors={404: "no live call with that id",
                       409: "the call is not waiting in a queue, is a callback, or is in that queue already"})
    @roles("supervisor")
    async def move(request: web.Request) -> web.Response:
        call_id = request.match_info["call_id"]
        if not is_live(call_id):
            return json_error(404, "no live call with that id")
        try:
            return web.json_response(acd.move(call_id, body_of(request)["queue"], by=caller_of(request).actor))
        except AcdError as exc:
            return json_error(409, str(exc))

    @operation("Play a standard recording to the caller (fees, opening an account…); back to the agent after",
               tag="calls", body=PLAY_BODY, responses={200: CONTROL_RESULT},
               errors={**COMMAND_ERRORS, 404: "no live call with that id, or no standard prompt of that name"})
    @roles("agent", "supervisor", "integration")
    async def play(request: web.Request) -> web.Response:
        name = body_of(request)["prompt"]
        if name not in acd.standard_prompts:  # the prompts as administered now (README "Standard prompts")
            return json_error(404, acd.no_standard_prompt(name))
        return await call_command(request, "play", name)

    @operation("Attended transfer (咨询转接), step 1: the caller holds while the agent talks to the target",
               tag="calls", body=CONFERENCE_BODY, responses={200: CONTROL_RESULT},
               errors=DIAL_ERRORS, description=DIAL_POLICY)
    @roles("agent", "supervisor", "integration")
    async def consult(request: web.Request) -> web.Response:
        return await call_command(request, "consult", body_of(request)["to"])

    def consult_step(action: str, summary: str) -> web.RouteDef:
        @operation(summary, tag="calls", responses={200: CONTROL_RESULT}, errors=COMMAND_ERRORS)
        @roles("agent", "supervisor", "integration")
        async def handler(request: web.Request) -> web.Response:
            return await call_command(request, f"consult_{action}")

        return web.post(f"/api/calls/{{call_id}}/consult/{action}", handler)

    return [
        web.post("/api/calls/{call_id}/consult", consult),
        consult_step("complete", "Attended transfer: the caller now talks with the consulted party; the agent is free"),
        consult_step("cancel", "Attended transfer: drop the consulted party and take the caller back"),
        consult_step("conference", "Attended transfer: make it a three-way call"),
        web.post("/api/calls", dial),
        web.post("/api/calls/{call_id}/play", play),
        web.post("/api/calls/{call_id}/pickup", pickup),
        web.post("/api/calls/{call_id}/move", move),
        web.post("/api/calls/{call_id}/conference", conference),
        web.post("/api/calls/{call_id}/conference/remove", conference_remove),
        web.post("/api/calls/{call_id}/monitor", monitor),
        web.post("/api/calls/{call_id}/hold", hold),
        web.post("/api/calls/{call_id}/hangup", hangup),
        web.post("/api/calls/{call_id}/resume", resume),
        web.post("/api/calls/{call_id}/transfer", transfer),
        web.get("/api/agents", list_agents),
        web.get("/api/directory", directory),
        web.get("/api/desk/options", desk_options),
        web.get("/api/agents/{agent_id}", get_agent),
        web.post("/api/agents/{agent_id}/login", login),
        web.post("/api/agents/{agent_id}/ready", ready),
        web.post("/api/agents/{agent_id}/not_ready", not_ready),
        web.post("/api/agents/{agent_id}/end_acw", end_acw),
        web.post("/api/agents/{agent_id}/logout", logout),
        web.get("/api/queues", list_queues),
        web.get("/api/queues/{queue}", get_queue),
    ]
