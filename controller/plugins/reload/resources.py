"""HTTP resources for reloading: `POST /api/config/reload` and its older name `POST /api/flows/reload` (the
configuration file, then the IVR flows, then the certificate: what SIGHUP does)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from controller.http.openapi import operation
from controller.http.server import roles

_PATHS = {"type": "array", "items": {"type": "string"}}
RELOAD_RESULT = {
    "type": "object", "required": ["ok", "errors", "flows", "configuration"],
    "properties": {
        "ok": {"type": "boolean"},
        "errors": {**_PATHS, "description": "why the reload was refused (the file's file:line:column lines, or "
                                            "the flows' errors); nothing changed then"},
        "flows": {**_PATHS, "description": "the flows live after the reload"},
        "configuration": {
            "type": "object", "required": ["applied", "restart_required", "managed_in_database", "problems"],
            "properties": {
                "applied": {**_PATHS, "description": "settings that changed and are live now (e.g. logging.level)"},
                "restart_required": {**_PATHS, "description": "settings that changed in the file but are used "
                                                             "only at start (e.g. http.port); the running value stays"},
                "managed_in_database": {**_PATHS, "description": "sections whose file version differs from the "
                                                                "database's, which wins (`ccctl config apply FILE`)"},
                "problems": {**_PATHS, "description": "the file's problems as file:line:column: message"}}}}}

Reload = Callable[[], Awaitable[dict[str, Any]]]


def routes(reload: Reload) -> list[web.RouteDef]:
    @operation("Reload the configuration file, the IVR flows and the certificate (what SIGHUP does)",
               tag="configuration",
               responses={200: RELOAD_RESULT, 422: RELOAD_RESULT},
               description="Every setting that can change without a restart is applied at once; the answer names "
                           "those that need a restart and the sections the database manages (ignored). A file or "
                           "flow with any problem changes nothing (422). Calls in progress finish on the flow "
                           "version they started with; new calls get the new one.")
    @roles()
    async def reload_everything(request: web.Request) -> web.Response:
        result = await reload()
        if not result["ok"]:
            result["error"] = "\n".join(result["errors"])
        return web.json_response(result, status=200 if result["ok"] else 422)

    return [web.post("/api/config/reload", reload_everything), web.post("/api/flows/reload", reload_everything)]
