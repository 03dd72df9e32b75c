"""The agent toolbar, the supervisor wallboard and console, the admin and QA pages: plain pages served by
the controller.

The pages hold no data and need no token to load; everything they show comes from the API and
the /ws event stream with the token the user types in (kept in the browser's session storage),
so the usual roles apply: an agent's token sees and drives only that agent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from controller.config import SoftphoneSettings
from controller.http.openapi import operation
from controller.http.server import caller_of, json_error, page, roles
from controller.plugins.desk.services import endpoint_of, phone_for, render_pjsip, supervisor_endpoint_of

STATIC = Path(__file__).with_name("static")
FILES = {"toolbar.html": "text/html", "wallboard.html": "text/html", "admin.html": "text/html",
         "console.html": "text/html", "desk.js": "text/javascript", "admin.js": "text/javascript",
         "desk.css": "text/css", "console.css": "text/css", "softphone.js": "text/javascript",
         "board.js": "text/javascript", "messages.js": "text/javascript",
         "qa.html": "text/html", "qa.js": "text/javascript",
         # JsSIP, bundled from the pinned npm package by `make` (npm ci; npm run build): README dependencies
         "vendor/jssip.min.js": "text/javascript"}
#: The pages' short addresses (the page itself is served from /desk/, with the query kept).
PAGES = {"/toolbar": "toolbar.html", "/wallboard": "wallboard.html", "/admin": "admin.html",
         "/console": "console.html", "/qa": "qa.html"}
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

    def redirect_to(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        @page
        async def redirect(request: web.Request) -> web.StreamResponse:
            query = f"?{request.query_string}" if request.query_string else ""
            return web.Response(status=302, headers={"Location": f"/desk/{name}{query}"})
        return redirect

    return [web.get("/desk/{name:[a-z]+/[a-z.]+|[a-z.]+}", static),
            *(web.get(path, redirect_to(name)) for path, name in PAGES.items())]


def api_routes(settings: SoftphoneSettings, agent_ids: Callable[[], list[str]],
               supervisors: Callable[[], list[str]]) -> list[web.RouteDef]:
    """`agent_ids`, `supervisors`: the agents and the supervisor/admin users as they are now (the managed
    configuration, the users), for Asterisk's endpoints."""
    @operation("The browser phone of this session's user: SIP URI, WebSocket URL, SIP password (an agent's, or a"
               " logged-in supervisor's or admin's for the console's listen, whisper and barge)", tag="auth",
               responses={200: PHONE}, errors={404: "no browser phone here (softphone.enabled is false)",
                                                403: "neither an agent nor a logged-in supervisor or admin"})
    @roles("agent", "supervisor")
    async def my_phone(request: web.Request) -> web.Response:
        identity = caller_of(request)
        if not settings.enabled:
            return json_error(404, "no browser phone: softphone.enabled is false in the configuration")
        if identity.agent_id is not None:
            endpoint = endpoint_of(settings, identity.agent_id)
        elif identity.role in ("supervisor", "admin") and identity.is_session:
            endpoint = supervisor_endpoint_of(settings, identity.name)
        else:
            return json_error(403, "only an agent, or a supervisor or admin logged in with a password, has a"
                                   " browser phone")
        return web.json_response(phone_for(settings, endpoint), headers={"Cache-Control": "no-store"})

    @operation("Every agent's and supervisor's WebRTC endpoint as pjsip.conf sections (for"
               " /etc/asterisk/pjsip_webrtc.conf)", tag="auth",
               responses={200: {"type": "object", "required": ["agents", "supervisors", "pjsip_webrtc_conf"],
                                "properties": {"agents": {"type": "array", "items": {"type": "string"}},
                                               "supervisors": {"type": "array", "items": {"type": "string"}},
                                               "pjsip_webrtc_conf": {"type": "string"}}}},
               errors={404: "no browser phone here (softphone.enabled is false)"})
    @roles("admin")
    async def pjsip_sections(request: web.Request) -> web.Response:
        if not settings.enabled:
            return json_error(404, "no browser phone: softphone.enabled is false in the configuration")
        agents, users = agent_ids(), supervisors()
        return web.json_response({"agents": agents, "supervisors": users,
                                  "pjsip_webrtc_conf": render_pjsip(settings, agents, users)},
                                 headers={"Cache-Control": "no-store"})

    return [web.get("/api/me/phone", my_phone), web.get("/api/softphone/pjsip", pjsip_sections)]
