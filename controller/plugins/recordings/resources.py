"""HTTP resources for recordings: control on a live call, the index, and the audio (access-checked).

Agents may control and fetch only their own calls' recordings; supervisors and integrations any.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from controller.http.list_query import list_query, list_window
from controller.http.openapi import MAX_ID, operation
from controller.http.server import caller_of, json_error, roles
from controller.plugins.calls.services import CallsService
from controller.plugins.recordings.services import (
    RecordingError,
    RecordingService,
    effective_policy,
    policy_refusal,
)

RECORDING = {"type": "object", "required": ["id", "name", "call_id", "file", "pauses"]}
CONTROL = {"type": "object", "required": ["call_id", "recording", "state"]}
RECORDING_ID = {"recording_id": {"type": "integer", "minimum": 1, "maximum": MAX_ID}}
CONTROL_ERRORS = {409: "not possible now: the call is not being recorded, is already paused, or its recording"
                       " policy forbids it (`never`: no start; `always`: no stop)"}


def routes(recordings: RecordingService, calls: CallsService, current_call_of: Callable[[str], str | None],
           queue_policy_of: Callable[[str], str | None]) -> list[web.RouteDef]:
    """`current_call_of(agent_id)`: the agent's call; `queue_policy_of(call_id)`: the recording policy of
    the queue the call is in (None: in none)."""
    def may_control(request: web.Request, call_id: str) -> None:
        identity = caller_of(request)
        if identity.role == "agent" and (not identity.agent_id or current_call_of(identity.agent_id) != call_id):
            raise web.HTTPForbidden(reason="an agent may control recording only on their current call")

    async def control(request: web.Request, action: str) -> web.Response:
        call_id = request.match_info["call_id"]
        session = calls.active.get(call_id)
        if session is None:
            return json_error(404, "no live call with that id")
        may_control(request, call_id)
        refusal = policy_refusal(effective_policy(session.recording_policy, queue_policy_of(call_id)), action)
        if refusal is not None:
            return json_error(409, refusal)
        try:
            if action == "start":
                identity = caller_of(request)
                recording = await recordings.start(session, queue=None, agent_id=identity.agent_id,
                                                   reason="on_demand")
            elif action == "pause":
                recording = await recordings.pause(call_id)
            elif action == "resume":
                recording = await recordings.resume(call_id)
            else:
                stopped = await recordings.stop(call_id)
                if stopped is None:
                    raise RecordingError("the call is not being recorded")
                recording = stopped
        except RecordingError as exc:
            return json_error(409, str(exc))
        state = "stopped" if action == "stop" else "paused" if recording.paused else "recording"
        return web.json_response({"call_id": call_id, "recording": recording.name, "state": state,
                                  "pauses": recording.pauses})

    @operation("Start recording a live call (on demand; `always` flows and queues record by themselves)",
               tag="recordings", responses={200: CONTROL}, errors=CONTROL_ERRORS,
               description="Refused (409) when the call's flow or queue has `recording: never`.")
    @roles("agent", "supervisor", "integration")
    async def start(request: web.Request) -> web.Response:
        return await control(request, "start")

    @operation("Pause a call's recording (the span is written as silence), e.g. while a card number is read",
               tag="recordings", responses={200: CONTROL}, errors=CONTROL_ERRORS)
    @roles("agent", "supervisor", "integration")
    async def pause(request: web.Request) -> web.Response:
        return await control(request, "pause")

    @operation("Resume a paused recording", tag="recordings", responses={200: CONTROL}, errors=CONTROL_ERRORS)
    @roles("agent", "supervisor", "integration")
    async def resume(request: web.Request) -> web.Response:
        return await control(request, "resume")

    @operation("Stop recording a live call", tag="recordings", responses={200: CONTROL}, errors=CONTROL_ERRORS,
               description="Refused (409) when the call's flow or queue has `recording: always`.")
    @roles("agent", "supervisor", "integration")
    async def stop(request: web.Request) -> web.Response:
        return await control(request, "stop")

    @operation("Search the recordings index", tag="recordings",
               query={"call_id": {"type": "string"}, "agent": {"type": "string"}, "caller": {"type": "string"},
                      "queue": {"type": "string"}, **list_query()},
               responses={200: {"type": "object", "required": ["recordings"]}})
    @roles("agent", "supervisor", "integration")
    async def search(request: web.Request) -> web.Response:
        query = request.query
        identity = caller_of(request)
        agent = identity.agent_id if identity.role == "agent" else query.get("agent")
        window = list_window(request)
        rows = await recordings.index.search(call_id=query.get("call_id"), agent_id=agent, caller=query.get("caller"),
                                             queue=query.get("queue"), start=window.start, end=window.end,
                                             limit=window.limit)
        return web.json_response({"recordings": rows})

    async def visible(request: web.Request) -> dict[str, object]:
        try:
            recording_id = int(request.match_info["recording_id"])
        except ValueError:
            raise web.HTTPNotFound(reason="no recording with that id") from None
        if not 1 <= recording_id <= MAX_ID:  # beyond SQLite's integers: exists nowhere
            raise web.HTTPNotFound(reason="no recording with that id")
        row = await recordings.index.get(recording_id)
        if row is None or row["deleted_at"] is not None:
            raise web.HTTPNotFound(reason="no recording with that id")
        identity = caller_of(request)
        if identity.role == "agent" and identity.agent_id not in row["agents"]:
            raise web.HTTPForbidden(reason="an agent may fetch only recordings of their own calls")
        return row

    @operation("A recording's index entry (call, agents, caller, queue, start, duration, file, pauses)",
               tag="recordings", responses={200: RECORDING}, path=RECORDING_ID)
    @roles("agent", "supervisor", "integration")
    async def get(request: web.Request) -> web.Response:
        return web.json_response(await visible(request))

    @roles("agent", "supervisor", "integration")
    async def audio(request: web.Request) -> web.StreamResponse:
        """The recording's WAV file."""
        row = await visible(request)
        path = Path(str(row["file"]))
        if not await asyncio.to_thread(path.is_file):
            return json_error(404, "the recording's file is missing")
        return web.FileResponse(path, headers={"Content-Type": "audio/wav",
                                               "Content-Disposition": f'attachment; filename="{path.name}"'})

    return [
        web.post("/api/calls/{call_id}/recording", start),
        web.post("/api/calls/{call_id}/recording/pause", pause),
        web.post("/api/calls/{call_id}/recording/resume", resume),
        web.post("/api/calls/{call_id}/recording/stop", stop),
        web.get("/api/recordings", search),
        web.get("/api/recordings/{recording_id}", get),
        web.get("/api/recordings/{recording_id}/audio", audio),
    ]
