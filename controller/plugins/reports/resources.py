"""HTTP resources for reports: KPIs by queue, agent or both, for a period, in intervals."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from controller.http.openapi import operation
from controller.http.server import json_error, roles
from controller.plugins.reports.services import ReportService

BY = ("queue", "agent", "both", "total")


#: QA figures per agent for a period (README "Quality assurance"): `QaService.report`.
QaFigures = Callable[[float, float], Awaitable[list[dict[str, Any]]]]


def routes(reports: ReportService, qa_figures: QaFigures | None = None) -> list[web.RouteDef]:
    @operation("KPIs for a period (answer/abandon rate, service level, ASA, AHT, …; see docs/kpis.md)",
               tag="reports",
               query={"from": {"type": "number", "description": "epoch seconds (default: today 00:00)"},
                      "to": {"type": "number", "description": "epoch seconds (default: now)"},
                      "interval": {"type": "integer", "enum": [15, 30, 60]},
                      "by": {"type": "string", "enum": list(BY)}},
               responses={200: {"type": "object", "required": ["rows"],
                                "properties": {"qa": {"type": "array", "items": {"type": "object"},
                                                      "description": "QA by agent: scores given in the period"}}}})
    @roles("supervisor", "integration")
    async def report(request: web.Request) -> web.Response:
        query = request.query
        now = reports.clock.now()
        midnight = time.mktime((*time.localtime(now)[:3], 0, 0, 0, 0, 0, -1))
        try:
            start = float(query.get("from", midnight))
            end = float(query.get("to", now))
            interval = int(query["interval"]) if query.get("interval") else None
        except ValueError:
            return json_error(400, "from and to are epoch seconds, interval is 15, 30 or 60")
        by = query.get("by", "queue")
        if by not in BY:
            return json_error(400, f"by must be one of {', '.join(BY)}")
        if interval not in (None, 15, 30, 60):
            return json_error(400, "interval must be 15, 30 or 60 (minutes)")
        if end <= start:
            return json_error(400, "to must be after from")
        await reports.store.flush()
        rows = await reports.report(start=start, end=end, interval_minutes=interval, by=by)
        qa = {"qa": await qa_figures(start, end)} if qa_figures is not None else {}
        return web.json_response({"rows": [row.as_dict() for row in rows], "start": start, "end": end,
                                  "interval_minutes": interval, "by": by, **qa})

    return [web.get("/api/reports", report)]
