"""The agent toolbar, the supervisor wallboard, the admin and QA pages: plain pages served by the controller.

The pages hold no data and need no token to load; everything they show comes from the API and
the /ws event stream with the token the user types in (kept in the browser's session storage),
so the usual roles apply: an agent's token sees and drives only that agent.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from controller.config import SoftphoneSettings
from controller.http.openapi import operation
from controller.http.server import caller_of, json_error, page, roles
from controller.plugins.desk.services import phone_for, render_pjsip

STATIC = Path(__file__).with_name("static")
FILES = {"toolbar.html": "text/html", "wallboard.html": "text/html", "admin.html": "text/html",
         "desk.js": "text/javascript", "admin.js": "text/javascript", "desk.css": "text/css",
         "qa.html": "text/html", "qa.js": "text/javascript",
         "softphone.js": "text/javascript",
         # JsSIP, bundled from the pinned npm package by `make` (npm ci; npm run build): README dependencies
         "vendor/jssip.min.js": "text/javascript"}
PHONE = {"type": "object", "required": ["endpoint", "uri", "websocket_url", "password"],
         "properties": {"endpoint": {"type": "string"}, "uri": {"type": "string"},
                        "websocket_url": {"type": "string"}, "authorization_user": {"type": "string"},
                        "password": {"type": "string"}, "ice_servers": {"type": "array"}}}


def routes() -> list[web.RouteDef]:
    @page
    async def static(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in FILES:
            raise web.HTTPNotFound()
        if not (STATIC / name).is_file():  # the JsSIP bundle before `make` built it
            return json_error(503, f"{name} is not built: run `make` (npm ci, npm run build)")
        return web.Response(body=(STATIC / name).read_bytes(), content_type=FILES[name], charset="utf-8",
                            headers={"Cache-Control": "no-cache", "X-Frame-Options": "DENY",
                                     "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})

    def redirect(request: web.Request, name: str) -> web.Response:
        query = f"?{request.query_string}" if request.query_string else ""
        return web.Response(status=302, headers={"Location": f"/desk/{name}{query}"})

    @page
    async def toolbar(request: web.Request) -> web.StreamResponse:
        return redirect(request, "toolbar.html")

    @page
    async def wallboard(request: web.Request) -> web.StreamResponse:
        return redirect(request, "wallboard.html")

    @page
    async def admin(request: web.Request) -> web.StreamResponse:
        return redirect(request, "admin.html")

    @page
    async def quality(request: web.Request) -> web.StreamResponse:
        return redirect(request, "qa.html")

    return [web.get("/desk/{name:[a-z]+/[a-z.]+|[a-z.]+}", static), web.get("/toolbar", toolbar),
            web.get("/wallboard", wallboard), web.get("/admin", admin), web.get("/qa", quality)]


def api_routes(settings: SoftphoneSettings, agent_ids: Callable[[], list[str]]) -> list[web.RouteDef]:
    """`agent_ids`: the agents as they are now (the managed configuration), for Asterisk's endpoints."""
    @operation("The browser phone of the agent this session is: SIP URI, WebSocket URL, SIP password", tag="auth",
               responses={200: PHONE}, errors={404: "no browser phone here (softphone.enabled is false)",
                                                403: "not an agent"})
    @roles("agent")
    async def my_phone(request: web.Request) -> web.Response:
        identity = caller_of(request)
        if not settings.enabled:
            return json_error(404, "no browser phone: softphone.enabled is false in the configuration")
        if identity.agent_id is None:
            return json_error(403, "only an agent has a browser phone")
        return web.json_response(phone_for(settings, identity.agent_id), headers={"Cache-Control": "no-store"})

    @operation("Every agent's WebRTC endpoint as pjsip.conf sections (for /etc/asterisk/pjsip_webrtc.conf)",
               tag="auth", responses={200: {"type": "object", "required": ["agents", "pjsip_webrtc_conf"],
                                            "properties": {"agents": {"type": "array", "items": {"type": "string"}},
                                                           "pjsip_webrtc_conf": {"type": "string"}}}},
               errors={404: "no browser phone here (softphone.enabled is false)"})
    @roles("admin")
    async def pjsip_sections(request: web.Request) -> web.Response:
        if not settings.enabled:
            return json_error(404, "no browser phone: softphone.enabled is false in the configuration")
        agents = agent_ids()
        return web.json_response({"agents": agents, "pjsip_webrtc_conf": render_pjsip(settings, agents)},
                                 headers={"Cache-Control": "no-store"})

    return [web.get("/api/me/phone", my_phone), web.get("/api/softphone/pjsip", pjsip_sections)]
