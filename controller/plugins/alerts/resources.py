"""HTTP resources of the alerts: the recent ones with who acknowledged them, and acknowledging one."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from controller.http.list_query import list_query, list_window
from controller.http.openapi import MAX_ID, body_of, operation
from controller.http.server import caller_of, json_error, roles
from controller.plugins.alerts.services import AlertRefused, AlertService

ALERT_ID = {"alert_id": {"type": "integer", "minimum": 1, "maximum": MAX_ID,
                         "description": "the alert.raised event's sequence number"}}
ALERT = {"type": "object", "required": ["id", "at", "kind", "subject", "value", "threshold", "acknowledged_by"]}
ALERTS = {"type": "object", "required": ["alerts"], "properties": {"alerts": {"type": "array", "items": ALERT}}}
QUERY: dict[str, dict[str, Any]] = {"hours": {"type": "number", "minimum": 0.1, "maximum": 168, "default": 24,
                   "description": "how far back (hours)"},
         "open": {"type": "string", "enum": ["true", "false"], "description": "true: only those not acknowledged"}}
ACK_BODY = {"type": "object", "additionalProperties": False,
            "properties": {"note": {"type": "string", "maxLength": 500, "description": "what was done about it"}}}


def routes(alerts: AlertService) -> list[web.RouteDef]:
    @operation("The service-standard alerts raised recently, newest first, with who acknowledged each",
               tag="alerts", query={**QUERY, **list_query(window=False, limit_max=1000, limit_default=200)},
               responses={200: ALERTS})
    @roles("supervisor")
    async def recent(request: web.Request) -> web.Response:
        found = await alerts.recent(float(request.query.get("hours", 24)),
                                    open_only=request.query.get("open") == "true",
                                    limit=list_window(request, limit_default=200).limit)
        return web.json_response({"alerts": found})

    @operation("Acknowledge an alert (once; every console is told)", tag="alerts", path=ALERT_ID, body=ACK_BODY,
               body_required=False, responses={200: ALERT},
               errors={404: "no alert with that id", 409: "already acknowledged (the answer says by whom)"})
    @roles("supervisor")
    async def acknowledge(request: web.Request) -> web.Response:
        identity = caller_of(request)
        try:
            alert = await alerts.acknowledge(int(request.match_info["alert_id"]), identity.actor,
                                             (body_of(request) or {}).get("note", ""))
        except AlertRefused as exc:
            return json_error(exc.status, exc.message)
        return web.json_response(alert)

    return [web.get("/api/alerts", recent), web.post("/api/alerts/{alert_id}/acknowledge", acknowledge)]
