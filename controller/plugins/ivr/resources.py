"""HTTP resources for the IVR: the flows that are live (reloading them: controller/plugins/reload/)."""

from __future__ import annotations

from aiohttp import web

from controller.http.openapi import operation
from controller.http.server import roles
from controller.plugins.ivr.services import IvrService


def routes(ivr: IvrService) -> list[web.RouteDef]:
    @operation("The IVR flows that are live: each with `version` (the first 12 hex digits of its file's"
               " SHA-256), and when they were loaded", tag="ivr", responses={200: {"type": "object"}})
    @roles("supervisor", "integration")
    async def list_flows(request: web.Request) -> web.Response:
        return web.json_response({"flows": ivr.flows(), "loaded_at": ivr.repository.loaded_at,
                                  "reloads": ivr.repository.version})

    return [web.get("/api/flows", list_flows)]
