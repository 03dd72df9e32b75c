"""HTTP: staffing plans (forecast), the intraday view, shifts, and adherence (README "Forecasting and staffing")."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any

from aiohttp import web

from controller.http.openapi import MAX_ID, body_of, operation
from controller.http.server import caller_of, json_error, roles
from controller.plugins.wfm.schedules import ACTIVITIES, ScheduleError, Shift, parse_csv
from controller.plugins.wfm.services import MAX_PLAN_DAYS, UnknownQueue, WfmService

DAY = {"type": "string", "pattern": "^(20[0-9]{2}|2100)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])(?!\\n)$",
       "description": "YYYY-MM-DD (local), 2000 to 2100"}
QUEUE = {"type": "string", "minLength": 1, "maxLength": 64}
INTERVAL = {"type": "integer", "enum": [15, 30, 60], "description": "minutes (default: wfm.interval_minutes)"}
TIME = {"type": "number", "minimum": 0, "maximum": 1e11}
SHIFT = {"type": "object", "additionalProperties": False, "required": ["agent_id", "start", "end"],
         "properties": {"agent_id": {"type": "string", "minLength": 1, "maxLength": 64}, "start": TIME, "end": TIME,
                        "activity": {"enum": list(ACTIVITIES)}}}
SHIFTS_BODY = {"type": "object", "additionalProperties": False, "minProperties": 1, "maxProperties": 1,
               "description": "either shifts (JSON) or csv (header agent_id,start,end[,activity]; times"
                              " 'YYYY-MM-DD HH:MM' local or epoch seconds)",
               "properties": {"shifts": {"type": "array", "minItems": 1, "maxItems": 10000, "items": SHIFT},
                              "csv": {"type": "string", "minLength": 1, "maxLength": 2_000_000}}}
PLAN = {"type": "object", "required": ["queue", "interval_minutes", "accuracy", "targets", "rows"]}
ADHERENCE = {"type": "object", "required": ["agents"], "properties": {"agents": {"type": "array", "items": {
    "type": "object", "required": ["agent_id", "status", "scheduled", "state", "out_since"]}}}}


def _day(text: str | None, default: date) -> date:
    """A YYYY-MM-DD day from 2000 to 2100 (ValueError otherwise: the calendar and history need a real date)."""
    day = date.fromisoformat(text) if text else default
    if not 2000 <= day.year <= 2100:
        raise ValueError("a day from 2000 to 2100")
    return day


def routes(wfm: WfmService) -> list[web.RouteDef]:
    async def for_day(request: web.Request, parameter: str,
                      view: Callable[[str, date, int], Awaitable[dict[str, Any]]]) -> web.Response:
        """A queue's view of a day (the `parameter` query, default today) at the requested interval."""
        query = request.query
        try:
            day = _day(query.get(parameter), wfm.today())
        except ValueError:
            return json_error(400, f"{parameter}: not a date from 2000 to 2100 (YYYY-MM-DD)")
        try:
            body = await view(query["queue"], day, int(query.get("interval", wfm.settings.interval_minutes)))
        except UnknownQueue as exc:
            return json_error(404, str(exc))
        return web.json_response(body)

    @operation("Staffing plan: per interval, forecast calls and AHT from the store's history, agents needed"
               " (Erlang C, or Erlang A with the queue's patience) and to schedule (shrinkage), with the"
               " forecast's accuracy on held-out days", tag="wfm",
               query={"queue": QUEUE, "days": {"type": "integer", "minimum": 1, "maximum": MAX_PLAN_DAYS},
                      "interval": INTERVAL, "start": {**DAY, "description": "first day (default: today)"}},
               responses={200: PLAN}, errors={404: "no such queue"}, required_query=("queue",))
    @roles("supervisor")
    async def plan(request: web.Request) -> web.Response:
        days = int(request.query.get("days", 1))
        return await for_day(request, "start", lambda queue, day, interval: wfm.plan(
            queue, first_day=day, days=days, interval_minutes=interval))

    @operation("Intraday view: per interval of a day, forecast against actual calls and AHT, agents needed,"
               " scheduled on shift and staffed (on the phones)", tag="wfm",
               query={"queue": QUEUE, "day": {**DAY, "description": "default: today"}, "interval": INTERVAL},
               responses={200: PLAN}, errors={404: "no such queue"}, required_query=("queue",))
    @roles("supervisor")
    async def intraday(request: web.Request) -> web.Response:
        return await for_day(request, "day", wfm.intraday)

    @operation("Agents' shifts overlapping a period", tag="wfm",
               query={"from": {**TIME, "description": "epoch seconds (default: today 00:00)"},
                      "to": {**TIME, "description": "epoch seconds (default: a day after from)"},
                      "agent_id": {"type": "string", "minLength": 1, "maxLength": 64}},
               responses={200: {"type": "object", "required": ["shifts"]}})
    @roles("supervisor")
    async def list_shifts(request: web.Request) -> web.Response:
        start = float(request.query.get("from", datetime.combine(wfm.today(), datetime.min.time()).timestamp()))
        end = float(request.query.get("to", start + 86400))
        found = await wfm.shifts.between(start, end, request.query.get("agent_id"))
        return web.json_response({"shifts": [{"id": shift_id, **shift.as_dict()} for shift_id, shift in found]})

    @operation("Add agents' shifts (JSON rows or a CSV import); a bad row refuses them all", tag="wfm",
               body=SHIFTS_BODY, responses={201: {"type": "object", "required": ["added"]}})
    @roles("supervisor")
    async def add_shifts(request: web.Request) -> web.Response:
        body = body_of(request)
        try:
            if "csv" in body:
                shifts = parse_csv(body["csv"])
            else:
                shifts = [Shift(row["agent_id"], float(row["start"]), float(row["end"]), row.get("activity", "work"))
                          for row in body["shifts"]]
            await wfm.add_shifts(shifts, caller_of(request).name)
        except ScheduleError as exc:
            return json_error(400, str(exc))
        return web.json_response({"added": len(shifts)}, status=201)

    @operation("Delete a shift", tag="wfm", path={"shift_id": {"type": "integer", "minimum": 1, "maximum": MAX_ID}},
               responses={200: {"type": "object", "required": ["deleted"]}})
    @roles("supervisor")
    async def delete_shift(request: web.Request) -> web.Response:
        shift_id = int(request.match_info["shift_id"])
        if not await wfm.shifts.delete(shift_id):
            return json_error(404, f"no shift {shift_id}")
        return web.json_response({"deleted": shift_id})

    @operation("Real-time adherence: each agent's scheduled activity against their state now (out of adherence"
               " after wfm.adherence_grace_seconds)", tag="wfm", responses={200: ADHERENCE})
    @roles("supervisor")
    async def adherence(request: web.Request) -> web.Response:
        return web.json_response({"agents": [row.as_dict() for row in await wfm.adherence()],
                                  "grace_seconds": wfm.settings.adherence_grace_seconds})

    @operation("Adherence report: per scheduled agent, time scheduled and time in adherence in a period", tag="wfm",
               query={"from": {**TIME, "description": "epoch seconds (default: today 00:00)"},
                      "to": {**TIME, "description": "epoch seconds (default: now)"}},
               responses={200: {"type": "object", "required": ["rows"]}})
    @roles("supervisor")
    async def adherence_report(request: web.Request) -> web.Response:
        start = float(request.query.get("from", datetime.combine(wfm.today(), datetime.min.time()).timestamp()))
        end = float(request.query.get("to", wfm.now()))
        if end <= start:
            return json_error(400, "to must be after from")
        return web.json_response({"rows": await wfm.adherence_report(start, end), "start": start, "end": end})

    return [web.get("/api/forecast", plan), web.get("/api/intraday", intraday), web.get("/api/shifts", list_shifts),
            web.post("/api/shifts", add_shifts), web.delete("/api/shifts/{shift_id}", delete_shift),
            web.get("/api/adherence", adherence), web.get("/api/reports/adherence", adherence_report)]
