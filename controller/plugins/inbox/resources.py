"""HTTP resources of the inbox (voicemail as work) and the follow-up tasks (工单).

An agent sees the items and tasks addressed to them and, unassigned, to their queues; supervisors and
integrations see all. The caller's number is shown to whoever may see the item (they call it back);
logs and CTI events never carry it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from controller.http.list_query import list_query, list_window
from controller.http.openapi import body_of, operation
from controller.http.server import caller_of, json_error, roles
from controller.plugins.inbox import schemas
from controller.plugins.inbox.services import InboxError, InboxService, Viewer

ITEM_ERRORS = {409: "not possible now: the item is done, its caller's number is unknown, or the agent's phone"
                    " cannot place the call"}
TASK_ERRORS = {409: "the task is already closed"}
CREATE_ERRORS = {404: "no such agent, queue or call",
                 409: "no agent named: a token that is not an agent's must name `agent_id` (or a `queue`)"}


def routes(inbox: InboxService, *, agent_queues: Callable[[str], list[str] | None],
           queue_exists: Callable[[str], bool], call_exists: Callable[[str], Any]) -> list[web.RouteDef]:
    """`agent_queues(agent_id)`: the agent's queues (None: no such agent); `call_exists(call_id)`: awaitable."""

    def viewer(request: web.Request) -> Viewer:
        identity = caller_of(request)
        if identity.role != "agent":
            return Viewer(None, None)
        if not identity.agent_id:
            raise web.HTTPForbidden(reason="this agent token names no agent")
        return Viewer(identity.agent_id, agent_queues(identity.agent_id) or [])

    def actor(request: web.Request) -> str:
        identity = caller_of(request)
        return identity.agent_id if identity.role == "agent" and identity.agent_id else identity.name

    async def item_of(request: web.Request) -> dict[str, Any]:
        item = await inbox.visible_item(request.match_info["item_id"], viewer(request))
        if item is None:
            raise web.HTTPNotFound(reason="no inbox item with that id")
        return item

    def acting_agent(request: web.Request, named: str | None) -> str:
        """The agent a request acts for: an agent's token only for itself; others must name one."""
        identity = caller_of(request)
        if identity.role == "agent":
            if named is not None and named != identity.agent_id:
                raise web.HTTPForbidden(reason="an agent's token may act only for its own agent")
            return str(identity.agent_id)
        if named is None:
            raise web.HTTPConflict(reason="agent_id: required unless an agent's token is used")
        if agent_queues(named) is None:
            raise web.HTTPNotFound(reason=f"no agent {named!r}")
        return named

    @operation("The inbox: callers' messages (voicemail) for the agent and their queues (supervisors: all),"
               " newest first", tag="inbox", query={**schemas.STATUS_QUERY, **list_query(window=False)},
               responses={200: schemas.ITEMS})
    @roles("agent", "supervisor", "integration")
    async def list_items(request: web.Request) -> web.Response:
        who = viewer(request)
        items = await inbox.records.items(agent_id=who.agent_id, queues=who.queues,
                                          status=request.query.get("status"), limit=list_window(request).limit)
        return web.json_response({"items": items})

    @operation("One inbox item: caller, time, duration, IVR data, status, callback call, note", tag="inbox",
               path=schemas.ITEM_ID, responses={200: schemas.ITEM})
    @roles("agent", "supervisor", "integration")
    async def get_item(request: web.Request) -> web.Response:
        return web.json_response(await item_of(request))

    @operation("A message's audio (WAV; range requests are served)", tag="inbox", path=schemas.ITEM_ID,
               responses={200: {"type": "string", "format": "binary"}},
               errors={410: "the message's file is gone (retention or removed by hand)"})
    @roles("agent", "supervisor", "integration")
    async def audio(request: web.Request) -> web.StreamResponse:
        item = await item_of(request)
        path = Path(item["file"])
        if not await asyncio.to_thread(path.is_file):
            return json_error(410, "the message's file is gone")
        return web.FileResponse(path, headers={"Content-Type": "audio/wav", "Cache-Control": "private, no-store"})

    @operation("Assign an item to an agent (an agent may take one for themselves)", tag="inbox",
               path=schemas.ITEM_ID, body=schemas.ASSIGN_BODY, responses={200: schemas.ITEM},
               errors={**ITEM_ERRORS, **CREATE_ERRORS})
    @roles("agent", "supervisor", "integration")
    async def assign(request: web.Request) -> web.Response:
        item = await item_of(request)
        agent_id = acting_agent(request, body_of(request)["agent_id"])
        try:
            return web.json_response(await inbox.assign(item, agent_id, actor(request)))
        except InboxError as exc:
            return json_error(409, str(exc))

    @operation("Call the caller back with click-to-dial (the agent's phone rings first); the item is linked to"
               " the call", tag="inbox", path=schemas.ITEM_ID, body=schemas.CALLBACK_BODY, body_required=False,
               responses={202: schemas.ITEM}, errors={**ITEM_ERRORS, **CREATE_ERRORS})
    @roles("agent", "supervisor", "integration")
    async def call_back(request: web.Request) -> web.Response:
        item = await item_of(request)
        agent_id = acting_agent(request, (body_of(request) or {}).get("agent_id"))
        try:
            return web.json_response(await inbox.call_back(item, agent_id), status=202)
        except InboxError as exc:
            return json_error(409, str(exc))

    @operation("Mark an item done with a note", tag="inbox", path=schemas.ITEM_ID, body=schemas.DONE_BODY,
               responses={200: schemas.ITEM}, errors=ITEM_ERRORS)
    @roles("agent", "supervisor", "integration")
    async def done(request: web.Request) -> web.Response:
        item = await item_of(request)
        identity = caller_of(request)
        try:
            return web.json_response(await inbox.done(item, actor(request), body_of(request)["note"],
                                                      identity.agent_id if identity.role == "agent" else None))
        except InboxError as exc:
            return json_error(409, str(exc))

    @operation("Voicemail response times by queue (arrival to call-back or done) for a period", tag="reports",
               query=list_query(), responses={200: schemas.REPORT})
    @roles("supervisor", "integration")
    async def report(request: web.Request) -> web.Response:
        window = list_window(request)
        end = window.end if window.end is not None else inbox.now()
        start = window.start if window.start is not None else end - 86400
        return web.json_response(await inbox.report(start, end))

    # -- follow-up tasks --------------------------------------------------------------------------

    async def task_of(request: web.Request) -> dict[str, Any]:
        task = await inbox.records.task(request.match_info["task_id"])
        if task is None or not viewer(request).sees(task):
            raise web.HTTPNotFound(reason="no task with that id")
        return task

    @operation("Follow-up tasks (工单) for the agent and their queues (supervisors: all), by due time",
               tag="tasks", query={**schemas.TASK_STATUS_QUERY, **list_query(window=False)},
               responses={200: schemas.TASKS})
    @roles("agent", "supervisor", "integration")
    async def list_tasks(request: web.Request) -> web.Response:
        who = viewer(request)
        tasks = await inbox.records.tasks(agent_id=who.agent_id, queues=who.queues,
                                          status=request.query.get("status"), limit=list_window(request).limit)
        now = inbox.now()
        return web.json_response({"tasks": [{**task, "overdue": task["status"] == "open" and task["due_at"] < now}
                                            for task in tasks]})

    @operation("Create a follow-up task from a call: what, for whom (the agent, a colleague or a queue), due by"
               " default one working day later (Chinese calendar with make-up workdays)", tag="tasks",
               body=schemas.TASK_BODY, responses={201: schemas.TASK}, errors=CREATE_ERRORS)
    @roles("agent", "supervisor", "integration")
    async def create_task(request: web.Request) -> web.Response:
        body = body_of(request)
        identity = caller_of(request)
        agent_id, queue = body.get("agent_id"), body.get("queue")
        if agent_id is None and queue is None:
            if identity.role != "agent":
                return json_error(409, "agent_id or queue: required unless an agent's token is used")
            agent_id = identity.agent_id
        if agent_id is not None and agent_queues(agent_id) is None:
            return json_error(404, f"no agent {agent_id!r}")
        if queue is not None and not queue_exists(queue):
            return json_error(404, f"no queue {queue!r}")
        if body.get("call_id") is not None and not await call_exists(body["call_id"]):
            return json_error(404, "no call with that id")
        task = await inbox.create_task(title=body["title"], created_by=actor(request), call_id=body.get("call_id"),
                                       agent_id=agent_id, queue=queue, due_at=body.get("due_at"))
        return web.json_response(task, status=201)

    @operation("Open and overdue follow-up tasks (for the wallboard)", tag="tasks", responses={200: schemas.COUNTS})
    @roles("agent", "supervisor", "integration")
    async def counts(request: web.Request) -> web.Response:
        return web.json_response(await inbox.task_counts())

    @operation("One follow-up task", tag="tasks", path=schemas.TASK_ID, responses={200: schemas.TASK})
    @roles("agent", "supervisor", "integration")
    async def get_task(request: web.Request) -> web.Response:
        return web.json_response(await task_of(request))

    @operation("Close a follow-up task with a note", tag="tasks", path=schemas.TASK_ID, body=schemas.DONE_BODY,
               responses={200: schemas.TASK}, errors=TASK_ERRORS)
    @roles("agent", "supervisor", "integration")
    async def close_task(request: web.Request) -> web.Response:
        task = await task_of(request)
        try:
            return web.json_response(await inbox.close_task(task, actor(request), body_of(request)["note"]))
        except InboxError as exc:
            return json_error(409, str(exc))

    return [
        web.get("/api/inbox", list_items),
        web.get("/api/inbox/report", report),
        web.get("/api/inbox/{item_id}", get_item),
        web.get("/api/inbox/{item_id}/audio", audio),
        web.post("/api/inbox/{item_id}/assign", assign),
        web.post("/api/inbox/{item_id}/callback", call_back),
        web.post("/api/inbox/{item_id}/done", done),
        web.get("/api/tasks", list_tasks),
        web.post("/api/tasks", create_task),
        web.get("/api/tasks/counts", counts),
        web.get("/api/tasks/{task_id}", get_task),
        web.post("/api/tasks/{task_id}/close", close_task),
    ]
