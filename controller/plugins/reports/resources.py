"""HTTP resources for reports: KPIs by queue, agent or both, for a period, in intervals."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from controller.http.openapi import operation
from controller.http.server import json_error, roles
from controller.plugins.reports.campaigns import campaign_reports
from controller.plugins.reports.services import ReportService

BY = ("queue", "agent", "both", "total")
PERIOD = {"from": {"type": "number", "description": "epoch seconds (default: today 00:00)"},
          "to": {"type": "number", "description": "epoch seconds (default: now)"}}


def period_of(request: web.Request, now: float) -> tuple[float, float]:
    """The report's period from the query (ValueError naming what is wrong)."""
    midnight = time.mktime((*time.localtime(now)[:3], 0, 0, 0, 0, 0, -1))
    try:
        start = float(request.query.get("from", midnight))
        end = float(request.query.get("to", now))
    except ValueError:
        raise ValueError("from and to are epoch seconds") from None
    if end <= start:
        raise ValueError("to must be after from")
    return start, end


#: QA figures per agent for a period (README "Quality assurance"): `QaService.report`.
QaFigures = Callable[[float, float], Awaitable[list[dict[str, Any]]]]


def routes(reports: ReportService, qa_figures: QaFigures | None = None) -> list[web.RouteDef]:
    @operation("KPIs for a period (answer/abandon rate, service level, ASA, AHT, …; see docs/kpis.md)",
               tag="reports",
               query={**PERIOD, "interval": {"type": "integer", "enum": [15, 30, 60]},
                      "by": {"type": "string", "enum": list(BY)}},
               responses={200: {"type": "object", "required": ["rows"],
                                "properties": {"qa": {"type": "array", "items": {"type": "object"},
                                                      "description": "QA by agent: scores given in the period"}}}})
    @roles("supervisor", "integration")
    async def report(request: web.Request) -> web.Response:
        query = request.query
        try:
            start, end = period_of(request, reports.clock.now())
        except ValueError as exc:
            return json_error(400, str(exc))
        try:
            interval = int(query["interval"]) if query.get("interval") else None
        except ValueError:
            interval = -1  # refused below
        by = query.get("by", "queue")
        if by not in BY:
            return json_error(400, f"by must be one of {', '.join(BY)}")
        if interval not in (None, 15, 30, 60):
            return json_error(400, "interval must be 15, 30 or 60 (minutes)")
        await reports.store.flush()
        rows = await reports.report(start=start, end=end, interval_minutes=interval, by=by)
        qa = {"qa": await qa_figures(start, end)} if qa_figures is not None else {}
        return web.json_response({"rows": [row.as_dict() for row in rows], "start": start, "end": end,
                                  "interval_minutes": interval, "by": by, **qa})

    @operation("Outbound campaigns' figures for a period: contact rate, abandon rate, attempts per contact, results"
               " by disposition, talk time (README \"Outbound campaigns\")", tag="reports",
               query={**PERIOD, "campaign": {"type": "string", "maxLength": 64,
                                             "description": "only this campaign (even with no call in the period)"}},
               responses={200: {"type": "object", "required": ["campaigns"]}})
    @roles("supervisor", "integration")
    async def campaigns(request: web.Request) -> web.Response:
        try:
            start, end = period_of(request, reports.clock.now())
        except ValueError as exc:
            return json_error(400, str(exc))
        await reports.store.flush()
        found = await campaign_reports(reports.store, start=start, end=end, campaign=request.query.get("campaign"))
        return web.json_response({"campaigns": [r.as_dict() for r in found], "start": start, "end": end})

    return [web.get("/api/reports", report), web.get("/api/reports/campaigns", campaigns)]
