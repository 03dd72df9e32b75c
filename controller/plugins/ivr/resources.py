"""HTTP resources for the IVR: the flows that are live, and reloading them."""

from __future__ import annotations

from aiohttp import web

from controller.http.openapi import operation
from controller.http.server import roles
from controller.plugins.ivr.services import IvrService

RELOAD_RESULT = {"type": "object", "required": ["ok", "errors", "flows"],
                 "properties": {"ok": {"type": "boolean"}, "errors": {"type": "array", "items": {"type": "string"}},
                                "flows": {"type": "array", "items": {"type": "string"}}}}


def routes(ivr: IvrService) -> list[web.RouteDef]:
    @operation("The IVR flows that are live: each with `version` (the first 12 hex digits of its file's"
               " SHA-256), and when they were loaded", tag="ivr", responses={200: {"type": "object"}})
    @roles("supervisor", "integration")
    async def list_flows(request: web.Request) -> web.Response:
        return web.json_response({"flows": ivr.flows(), "loaded_at": ivr.repository.loaded_at,
                                  "reloads": ivr.repository.version})

    @operation("Reload the flows from disk (refused, old flows kept, when any file is invalid)", tag="ivr",
               responses={200: RELOAD_RESULT, 422: RELOAD_RESULT},
               description="Calls in progress finish on the version they started with; new calls get the new one.")
    @roles()
    async def reload_flows(request: web.Request) -> web.Response:
        result = await ivr.reload()
        if not result["ok"]:
            result["error"] = "\n".join(result["errors"])
        return web.json_response(result, status=200 if result["ok"] else 422)

    return [web.get("/api/flows", list_flows), web.post("/api/flows/reload", reload_flows)]
